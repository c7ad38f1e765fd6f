//! A client socket that tells its connection's [`ConnActivity`] when bytes
//! come in, for the head timer (see `http::activity`), and that gives up on a client
//! that takes nothing of what fpmlb writes for `send_timeout` (nginx's
//! `send_timeout`): the write fails, hyper ends the connection, and the
//! response's backend exchange is dropped with it.
//!
//! Nothing is parsed or buffered here: reads and writes go straight to the
//! socket; the wrapper only looks at whether a read returned bytes and at
//! how long a write has been waiting.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::http::activity::ConnActivity;

/// A client socket whose reads are reported to its activity.
pub struct Watched<S> {
    inner: S,
    activity: Arc<ConnActivity>,
    /// For the log line of a send timeout.
    remote: SocketAddr,
    send_timeout: Duration,
    /// Running while a write waits for the client to take bytes.
    write_stalled: Option<Pin<Box<Sleep>>>,
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
        }
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

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.stalled(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
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
