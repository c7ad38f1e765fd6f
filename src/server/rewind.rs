//! A client stream that hands out bytes read ahead before reading more: what
//! followed a PROXY header in its first reads (`proxy_protocol`), the
//! bytes fpmlb read to tell HTTP/2's preface from an HTTP/1 request line,
//! the byte that woke a parked connection, and what hyper had read but not
//! parsed when it gave a connection back (see `server::serve`).
//!
//! hyper-util keeps a type like this private (its auto builder's), so this
//! is the same dozen lines, with the stream taken back out whole.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner`, with `ahead` read first.
#[derive(Debug)]
pub struct Rewind<S> {
    ahead: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(inner: S, ahead: Bytes) -> Rewind<S> {
        Rewind { ahead, inner }
    }

    /// The stream, and what of `ahead` was not read yet.
    pub fn into_parts(self) -> (S, Bytes) {
        (self.inner, self.ahead)
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.ahead.is_empty() {
            let n = this.ahead.len().min(buf.remaining());
            buf.put_slice(&this.ahead[..n]);
            this.ahead.advance(n);
            if this.ahead.is_empty() {
                // Let go of the buffer it was a slice of (hyper's read
                // buffer, when a parked connection wakes with leftovers).
                this.ahead = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn bytes_ahead_come_first_then_the_stream() {
        let inner: &[u8] = b" world";
        let mut r = Rewind::new(inner, Bytes::from_static(b"hello"));
        let mut small = [0u8; 3];
        r.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"hel");
        let mut rest = String::new();
        r.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "lo world");
        let (_, ahead) = r.into_parts();
        assert!(ahead.is_empty());
    }

    #[tokio::test]
    async fn what_was_not_read_comes_back_out() {
        let inner: &[u8] = b"";
        let mut r = Rewind::new(inner, Bytes::from_static(b"abcdef"));
        let mut two = [0u8; 2];
        r.read_exact(&mut two).await.unwrap();
        let (_, ahead) = r.into_parts();
        assert_eq!(&ahead[..], b"cdef");
    }
}
