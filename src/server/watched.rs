//! A client socket that tells its connection's [`ConnActivity`] when bytes
//! come in, for the head timer (see `http::activity`), and that gives up on a client
//! that takes nothing of what fpmlb writes for `send_timeout` (nginx's
//! `send_timeout`): the write fails, hyper ends the connection, and the
//! response's backend exchange is dropped with it.
//!
//! Nothing is parsed or buffered here: reads and writes go straight to the
//! socket; the wrapper only looks at whether a read returned bytes and at
//! how long a write has been waiting, and sends the file windows that a
//! static body's placeholders stand for with `sendfile` (see
//! `http::files::zero_copy`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_util::either::Either;

use super::rewind::Rewind;
use crate::http::activity::ConnActivity;
use crate::http::files::zero_copy::{self, Windows};

/// The TCP socket under a stream, which `sendfile` can write to: none
/// under TLS.
pub trait Tcp {
    fn tcp(&self) -> Option<&TcpStream>;
}

impl Tcp for TcpStream {
    fn tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl<S: Tcp> Tcp for Rewind<S> {
    fn tcp(&self) -> Option<&TcpStream> {
        self.inner().tcp()
    }
}

impl<L: Tcp, R> Tcp for Either<L, R> {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Either::Left(l) => l.tcp(),
            Either::Right(_) => None,
        }
    }
}

/// A client socket whose reads are reported to its activity.
pub struct Watched<S> {
    inner: S,
    activity: Arc<ConnActivity>,
    /// For the log line of a send timeout.
    remote: SocketAddr,
    send_timeout: Duration,
    /// Running while a write waits for the client to take bytes.
    write_stalled: Option<Pin<Box<Sleep>>>,
    /// The file windows this connection's bodies queue (cleartext only).
    windows: Option<Arc<Windows>>,
}

impl<S> Watched<S> {
    pub fn new(
        inner: S,
        remote: SocketAddr,
        activity: Arc<ConnActivity>,
        send_timeout: Duration,
    ) -> Watched<S> {
        Watched {
            inner,
            activity,
            remote,
            send_timeout,
            write_stalled: None,
            windows: None,
        }
    }

    /// The windows through which this connection's static bodies go out
    /// zero-copy; `None` where they cannot (TLS).
    pub fn zero_copy(&mut self) -> Option<Arc<Windows>>
    where
        S: Tcp,
    {
        self.inner.tcp()?;
        Some(Arc::clone(self.windows.get_or_insert_default()))
    }

    /// The client, for log lines.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// A write (or flush) that is still pending after `send_timeout` of
    /// pending fails; one that made progress starts the clock again.
    fn stalled<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.write_stalled = None;
            return polled;
        }
        let timeout = self.send_timeout;
        let timer = self
            .write_stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.write_stalled = None;
        tracing::info!(client = %self.remote, "client took nothing of its response for {timeout:?} (timeouts.client_send): connection closed");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client took nothing of its response for timeouts.client_send",
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && buf.filled().len() > before
        {
            this.activity.saw_head_bytes();
        }
        polled
    }
}

/// A placeholder on a connection that sends no file windows: the write
/// fails (the connection closes), and its bytes never go out.
fn no_windows() -> io::Error {
    io::Error::other("a file placeholder on a connection that sends no file windows")
}

impl<S: Tcp> Watched<S> {
    /// Runs the system call `write` on the TCP socket once it is writable,
    /// again whenever the socket was full.
    fn poll_tcp_write(
        &self,
        cx: &mut Context<'_>,
        write: impl Fn(&TcpStream) -> rustix::io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let Some(tcp) = self.inner.tcp() else {
            return Poll::Ready(Err(no_windows()));
        };
        loop {
            std::task::ready!(tcp.poll_write_ready(cx))?;
            match tcp.try_io(Interest::WRITABLE, || write(tcp).map_err(io::Error::from)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                written => return Poll::Ready(written),
            }
        }
    }

    /// Sends (some of) the file window that the placeholder `mark` stands
    /// for, with `sendfile` from the page cache to the socket.
    fn poll_send_window(&self, cx: &mut Context<'_>, mark: &[u8]) -> Poll<io::Result<usize>> {
        let Some(windows) = &self.windows else {
            return Poll::Ready(Err(no_windows()));
        };
        let segment = windows.resolve(mark)?;
        let sent = std::task::ready!(self.poll_tcp_write(cx, |tcp| {
            let mut at = segment.offset;
            rustix::fs::sendfile(tcp, &*segment.file, Some(&mut at), segment.len)
        }));
        Poll::Ready(match sent {
            // The file shrank under its Content-Length: the response is
            // cut, never passed on short as if whole.
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ended before its Content-Length",
            )),
            Ok(n) => {
                windows.sent(mark, n);
                Ok(n)
            }
            Err(e) => Err(e),
        })
    }

    /// Writes the bytes that come before a file window (a response's head,
    /// a multipart boundary) with `MSG_MORE`: the kernel holds them for the
    /// window's `sendfile`, which follows at once, so that head and file
    /// leave in the same segments (one wake-up of the client, not two; the
    /// last `sendfile` of a window pushes everything out).
    fn poll_write_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_tcp_write(cx, |tcp| {
            rustix::net::sendmsg(
                tcp,
                bufs,
                &mut rustix::net::SendAncillaryBuffer::default(),
                rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL,
            )
        })
    }
}

impl<S: AsyncWrite + Unpin + Tcp> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = if zero_copy::is_mark(buf) {
            this.poll_send_window(cx, buf)
        } else {
            Pin::new(&mut this.inner).poll_write(cx, buf)
        };
        this.stalled(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // The bytes before a placeholder go out first, then its window.
        let polled = match bufs.iter().position(|b| zero_copy::is_mark(b)) {
            None => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
            Some(i) if bufs[..i].iter().all(|b| b.is_empty()) => {
                this.poll_send_window(cx, &bufs[i])
            }
            Some(i) => this.poll_write_more(cx, &bufs[..i]),
        };
        this.stalled(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.stalled(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A connected pair: the client end and the wrapped server end.
    async fn pair() -> (TcpStream, Watched<TcpStream>, Arc<ConnActivity>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, remote) = listener.accept().await.unwrap();
        let activity = Arc::new(ConnActivity::new());
        let watched = Watched::new(
            server,
            remote,
            Arc::clone(&activity),
            Duration::from_secs(1),
        );
        (client, watched, activity)
    }

    /// Reads what the client end receives until `len` bytes came.
    async fn receive(client: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut got = vec![0u8; len];
        tokio::time::timeout(Duration::from_secs(30), client.read_exact(&mut got))
            .await
            .expect("the bytes never came")
            .unwrap();
        got
    }

    /// The head goes out held for the window (`MSG_MORE`) and the
    /// window's `sendfile` pushes both, whatever the window's size: a held
    /// head that nothing pushed would never reach the client.
    #[tokio::test]
    async fn a_placeholder_goes_out_as_its_file_window() {
        for len in [1, 4000, 250_000] {
            a_placeholder_goes_out_as(len).await;
        }
    }

    async fn a_placeholder_goes_out_as(len: usize) {
        use std::io::Write;
        let (mut client, mut server, _) = pair().await;
        let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&content).unwrap();
        let file = Arc::new(file);
        let windows = server.zero_copy().expect("a TCP socket sends windows");
        // As hyper writes a response: head bytes, then the body's frame,
        // each write resuming where the last one stopped.
        let head = Bytes::from_static(b"HEAD");
        let frame = windows.push(Arc::clone(&file), 1000, len).unwrap();
        let reading = tokio::spawn(async move { receive(&mut client, 4 + len).await });
        let (mut h, mut f) = (&head[..], &frame[..]);
        while !h.is_empty() || !f.is_empty() {
            let n = server
                .write_vectored(&[io::IoSlice::new(h), io::IoSlice::new(f)])
                .await
                .unwrap();
            let from_head = n.min(h.len());
            h = &h[from_head..];
            f = &f[n - from_head..];
        }
        let got = reading.await.unwrap();
        assert_eq!(&got[..4], b"HEAD");
        assert!(
            got[4..] == content[1000..1000 + len],
            "the window's bytes differ ({len})"
        );
        assert_eq!(windows.pending(), 0);
    }

    #[tokio::test]
    async fn a_placeholder_with_no_window_fails_the_write() {
        let (_client, mut server, _) = pair().await;
        // Another connection's window: never this socket's bytes.
        let other = Windows::default();
        let frame = other
            .push(Arc::new(tempfile::tempfile().unwrap()), 0, 10)
            .unwrap();
        assert!(server.write_all(&frame).await.is_err());
        server.zero_copy();
        assert!(server.write_all(&frame).await.is_err());
        // A file shorter than its window: cut, never zeros or short.
        let windows = server.zero_copy().unwrap();
        let frame = windows
            .push(Arc::new(tempfile::tempfile().unwrap()), 0, 10)
            .unwrap();
        let e = server.write_all(&frame).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn a_client_that_reads_nothing_fails_the_write_after_send_timeout() {
        let (mut client, mut server, _) = pair().await;
        // Until the socket buffers are full, writes go through.
        let chunk = vec![b'x'; 64 * 1024];
        let failed = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Err(e) = server.write_all(&chunk).await {
                    return e;
                }
            }
        })
        .await
        .expect("the write never gave up");
        assert_eq!(failed.kind(), io::ErrorKind::TimedOut);
        // A client that reads keeps the connection going: what is queued
        // drains, and a new write goes through.
        let mut sink = vec![0u8; 1 << 20];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), client.read(&mut sink)).await
        {
            if n == 0 {
                break;
            }
        }
        server.write_all(b"more").await.unwrap();
    }
}
