//! An HTTP/2 connection's streams, run on the connection's own task.
//!
//! hyper runs each HTTP/2 stream (the request handler and the sending of
//! its response) as a future handed to an executor. With tokio's, every
//! stream is a task of its own, which the runtime's other threads steal:
//! each frame then crosses threads twice (the stream's task writes into
//! h2's shared state and wakes the connection's task, which wakes the
//! stream's back), a wake-up and a lock hand-over each. fpmlb's executor
//! ([`StreamExec`]) hands the stream to the connection's task instead,
//! which polls it beside the connection ([`Streams`]), as an HTTP/1.1
//! connection runs its request on its own task. A connection's streams
//! then share one thread, as they share one worker process in nginx and
//! one thread in HAProxy; connections still spread over all of them. A
//! stream whose handler panics is reset; its connection goes on.
//! Measured with h2load, one connection of 256 streams, on the 2-core
//! reference machine: README, Performance.
//!
//! Each stream runs under its response's [`SendClock`]: one whose body
//! has waited `timeouts.client_send` for the client to ask for more (a
//! client that grants the stream no flow-control window) ends, and h2
//! resets it (`http::send_clock`).
//!
//! The streams a connection may have at once are bounded by
//! `max_concurrent_streams` (hyper hands over one per accepted stream), so
//! the channel between the two, unbounded, is bounded by that.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Sleep;

use crate::http::send_clock::{SEND_CLOCK, SendClock};

type Stream = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The executor given to hyper's HTTP/2 connection: each stream goes to
/// the connection's [`Streams`].
#[derive(Clone)]
pub struct StreamExec {
    to_conn: mpsc::UnboundedSender<Stream>,
    /// `timeouts.client_send`.
    send_timeout: Duration,
    /// The client, for log lines.
    remote: SocketAddr,
}

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        // A panic ends its own stream (h2 resets it when its handle is
        // dropped), not its connection's other streams, as it would as a
        // task of its own.
        let stream = AssertUnwindSafe(stream).catch_unwind().map(|ended| {
            if ended.is_err() {
                tracing::error!("an HTTP/2 stream's handler panicked: stream reset");
            }
        });
        let stream = timed(stream, self.send_timeout, self.remote);
        // The connection's task is gone (hyper hands streams over only
        // while it polls the connection, so never in practice): the
        // stream still runs, on a task of its own.
        if let Err(mpsc::error::SendError(stream)) = self.to_conn.send(Box::pin(stream)) {
            tokio::spawn(stream);
        }
    }
}

/// `stream`, polled under its response's [`SendClock`], ended when its
/// response has waited `send_timeout` for the client: dropped, the stream
/// is reset (RST_STREAM) and its response's body, with what it holds of
/// the script's output, released.
async fn timed<F: Future<Output = ()>>(stream: F, send_timeout: Duration, remote: SocketAddr) {
    let clock = Arc::new(SendClock::new());
    let mut stream = std::pin::pin!(stream);
    // Armed only while the response waits and the stream is pending.
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    std::future::poll_fn(move |cx| {
        if SEND_CLOCK
            .sync_scope(Arc::clone(&clock), || stream.as_mut().poll(cx))
            .is_ready()
        {
            return Poll::Ready(());
        }
        let Some(since) = clock.waiting_since() else {
            timer = None;
            return Poll::Pending;
        };
        let deadline = since + send_timeout;
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        tracing::info!(client = %remote, "an HTTP/2 stream's client took nothing of its response for {send_timeout:?} (timeouts.client_send): stream reset");
        Poll::Ready(())
    })
    .await;
}

/// The streams of one connection, polled by the connection's task.
pub struct Streams {
    handed: mpsc::UnboundedReceiver<Stream>,
    running: FuturesUnordered<Stream>,
}

impl Streams {
    /// The streams of a connection from `remote`, each reset when its
    /// response waits `send_timeout` for the client.
    pub fn new(send_timeout: Duration, remote: SocketAddr) -> (StreamExec, Streams) {
        let (to_conn, handed) = mpsc::unbounded_channel();
        let streams = Streams {
            handed,
            running: FuturesUnordered::new(),
        };
        let exec = StreamExec {
            to_conn,
            send_timeout,
            remote,
        };
        (exec, streams)
    }

    /// Takes the streams handed over and runs those that were woken; never
    /// ready (a connection's streams end with the connection, see
    /// [`Streams::finish`]).
    pub fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Poll::Ready(Some(stream)) = self.handed.poll_recv(cx) {
            self.running.push(stream);
        }
        while let Poll::Ready(Some(())) = self.running.poll_next_unpin(cx) {}
        Poll::Pending
    }

    /// Runs the streams still going after their connection ended (as
    /// tasks of their own would go on) until each has ended: a stream
    /// whose client is gone ends at its next write.
    pub async fn finish(mut self) {
        self.handed.close();
        while let Some(stream) = self.handed.recv().await {
            self.running.push(stream);
        }
        while self.running.next().await.is_some() {}
    }

    /// How many streams are running.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn streams() -> (StreamExec, Streams) {
        Streams::new(Duration::from_secs(60), ([127, 0, 0, 1], 1).into())
    }

    #[tokio::test]
    async fn streams_run_on_the_connections_task_and_finish_after_it() {
        let (exec, mut streams) = streams();
        let done = Arc::new(AtomicUsize::new(0));
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let d = Arc::clone(&done);
        exec.execute(async move {
            d.fetch_add(1, Ordering::SeqCst);
        });
        let d = Arc::clone(&done);
        exec.execute(async move {
            let _ = wait.await;
            d.fetch_add(1, Ordering::SeqCst);
        });
        // Nothing runs until the connection's task polls them.
        assert_eq!(done.load(Ordering::SeqCst), 0);
        let polled = std::future::poll_fn(|cx| Poll::Ready(streams.poll_run(cx))).await;
        assert!(polled.is_pending());
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert_eq!(streams.len(), 1, "the waiting stream is still running");
        let _ = release.send(());
        streams.finish().await;
        assert_eq!(done.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_panicking_stream_ends_alone() {
        let (exec, streams) = streams();
        let (tx, rx) = tokio::sync::oneshot::channel();
        exec.execute(async {
            panic!("a handler's bug");
        });
        exec.execute(async move {
            let _ = tx.send(7);
        });
        streams.finish().await;
        assert_eq!(rx.await.ok(), Some(7));
    }

    #[tokio::test]
    async fn a_stream_handed_after_the_connection_still_runs() {
        let (exec, streams) = streams();
        drop(streams);
        let (tx, rx) = tokio::sync::oneshot::channel();
        exec.execute(async move {
            let _ = tx.send(7);
        });
        assert_eq!(rx.await.ok(), Some(7));
    }
}
