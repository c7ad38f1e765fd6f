//! Whether an HTTP/2 response waits for its client, and since when: what
//! `timeouts.client_send` bounds on a stream.
//!
//! Over HTTP/1.1 a client that takes nothing leaves fpmlb's socket write
//! pending, which `server/watched.rs` times. Over HTTP/2 a client can
//! grant a stream no flow-control window (or never renew it) while it
//! keeps its connection busy: nothing waits on the socket, the response
//! sits in h2's buffers and its body is simply never asked for more, with
//! the script's output (read ahead, or its worker) held for as long as the
//! client likes. So a response body reports, through the [`SendClock`] of
//! the stream it runs in (a task-local, set by the stream's runner in
//! `server/streams.rs` around each poll), when it gave bytes and when it
//! was asked for more; the runner resets a stream whose body has waited
//! `client_send` to be asked, as nginx times a stream blocked on its send
//! window. A body asked and waiting for the script is the backend's time
//! (`timeouts.read`), not this.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// `waiting_ms` while the body is not waiting for the client.
const NOT_WAITING: u64 = u64::MAX;

/// One stream's response: since when it waits for the client.
#[derive(Debug)]
pub struct SendClock {
    epoch: Instant,
    /// Milliseconds since `epoch` since which the body waits to be asked
    /// for more, or [`NOT_WAITING`].
    waiting_ms: AtomicU64,
}

impl SendClock {
    pub fn new() -> SendClock {
        SendClock {
            epoch: Instant::now(),
            waiting_ms: AtomicU64::new(NOT_WAITING),
        }
    }

    /// Since when the response waits for its client, if it does.
    pub fn waiting_since(&self) -> Option<Instant> {
        let ms = self.waiting_ms.load(Ordering::Relaxed);
        (ms != NOT_WAITING).then(|| self.epoch + Duration::from_millis(ms))
    }

    fn set_waiting(&self, waiting: bool) {
        let ms = if waiting {
            u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NOT_WAITING - 1)
        } else {
            NOT_WAITING
        };
        self.waiting_ms.store(ms, Ordering::Relaxed);
    }
}

impl Default for SendClock {
    fn default() -> Self {
        SendClock::new()
    }
}

tokio::task_local! {
    /// The clock of the HTTP/2 stream being polled (none over HTTP/1.1).
    pub static SEND_CLOCK: std::sync::Arc<SendClock>;
}

/// The response is ready, or its body gave bytes: it waits for the client
/// to ask for more.
pub fn waiting() {
    let _ = SEND_CLOCK.try_with(|clock| clock.set_waiting(true));
}

/// The body is asked for more (or ended): the client is taking it.
pub fn asked() {
    let _ = SEND_CLOCK.try_with(|clock| clock.set_waiting(false));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_body_reports_to_its_streams_clock_only() {
        // Outside a stream (HTTP/1.1): nothing to report to, no panic.
        waiting();
        asked();
        let clock = Arc::new(SendClock::new());
        assert!(clock.waiting_since().is_none());
        SEND_CLOCK.sync_scope(Arc::clone(&clock), waiting);
        assert!(clock.waiting_since().is_some());
        SEND_CLOCK.sync_scope(Arc::clone(&clock), asked);
        assert!(clock.waiting_since().is_none());
    }
}
