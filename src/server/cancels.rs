//! Requests a client cancels before they are answered, per connection: the
//! HTTP/2 rapid reset (CVE-2023-44487) past what the h2 library catches.
//!
//! h2 closes a connection whose client resets more than 20 streams that
//! the server has not yet accepted (`max_pending_accept_reset_streams`):
//! HEADERS and RST_STREAM sent back to back. A client that waits for each
//! stream to be accepted before resetting it is not caught there, and each
//! such request may already have reached php-fpm, where the script runs on
//! after fpmlb dropped the exchange: the pool's slot is free again while
//! the worker is still busy, so resets would let one connection keep every
//! worker busy with abandoned work. fpmlb counts the requests whose handler
//! is dropped before it gave an answer (on HTTP/2 that is a reset; on
//! HTTP/1.1 the connection is gone anyway), and once a connection has
//! cancelled more than [`CANCEL_BUDGET`] requests and more than half of all
//! its requests, it is shut down (GOAWAY, the requests in flight finish).
//! A browser cancels a stream now and then (a page left, a fetch aborted):
//! never hundreds, never most of them.
//!
//! A share can be padded: a client that sends one cheap request (a 404,
//! `/missing.php`, which php-fpm answers at once) for each one it cancels
//! never reaches half. So a second rule counts time, not shares: more than
//! [`DISPATCHED_CANCEL_BUDGET`] requests cancelled after they went to a
//! backend within [`DISPATCHED_CANCEL_WINDOW`] shut the connection down
//! too, whatever else it sent. Not on a trusted proxy's connection (a CDN
//! carries many users' aborts on one).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::http::activity::Dispatched;

/// Cancelled requests a connection may have before its share counts: a
/// browser tab open for hours cancels a few; an attack, every one.
pub const CANCEL_BUDGET: u64 = 100;

/// Requests cancelled after they reached a backend that one connection may
/// have within [`DISPATCHED_CANCEL_WINDOW`]: each left a script running
/// for nobody. A person leaves a page or two a second at most.
pub const DISPATCHED_CANCEL_BUDGET: u64 = 100;

/// The window of [`DISPATCHED_CANCEL_BUDGET`].
pub const DISPATCHED_CANCEL_WINDOW: Duration = Duration::from_secs(10);

/// The counts of one connection.
#[derive(Debug, Default)]
pub struct Cancels {
    requests: AtomicU64,
    cancelled: AtomicU64,
    tripped: AtomicBool,
    notify: Notify,
    /// The rate rule applies (not a trusted proxy's connection).
    rated: bool,
    /// Requests cancelled after they reached a backend: since when, how many.
    window: Mutex<Option<(Instant, u64)>>,
}

/// Held by a request's handler; counts the request as cancelled when it is
/// dropped before [`CancelWatch::answered`].
#[derive(Debug)]
pub struct CancelWatch {
    cancels: Arc<Cancels>,
    answered: bool,
    dispatched: Dispatched,
}

impl Cancels {
    /// The counts of a new connection; `rated`: the rate rule applies
    /// (false for a trusted proxy's).
    pub fn new(rated: bool) -> Arc<Cancels> {
        Arc::new(Cancels {
            rated,
            ..Cancels::default()
        })
    }

    /// A request starts; `dispatched` is set when it goes to a backend.
    pub fn watch(self: &Arc<Self>, dispatched: Dispatched) -> CancelWatch {
        self.requests.fetch_add(1, Ordering::Relaxed);
        CancelWatch {
            cancels: Arc::clone(self),
            answered: false,
            dispatched,
        }
    }

    /// (cancelled, requests) so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.cancelled.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
        )
    }

    /// Resolves once the connection is over its budget.
    pub async fn exceeded(&self) {
        loop {
            let notified = self.notify.notified();
            if self.tripped.load(Ordering::Relaxed) {
                return;
            }
            notified.await;
        }
    }

    fn cancelled(&self, dispatched: bool) {
        let cancelled = self.cancelled.fetch_add(1, Ordering::Relaxed) + 1;
        let requests = self.requests.load(Ordering::Relaxed);
        let by_share = cancelled > CANCEL_BUDGET && cancelled * 2 > requests;
        let by_rate = dispatched && self.rated && self.dispatched_cancel(Instant::now());
        if (by_share || by_rate) && !self.tripped.swap(true, Ordering::Relaxed) {
            self.notify.notify_one();
        }
    }

    /// Counts a request cancelled after it reached a backend; true past
    /// [`DISPATCHED_CANCEL_BUDGET`] within the window.
    fn dispatched_cancel(&self, now: Instant) -> bool {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let (since, count) = match *window {
            Some((since, count)) if now.duration_since(since) < DISPATCHED_CANCEL_WINDOW => {
                (since, count + 1)
            }
            _ => (now, 1),
        };
        *window = Some((since, count));
        count > DISPATCHED_CANCEL_BUDGET
    }
}

impl CancelWatch {
    /// The handler gave its answer (the response head).
    pub fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for CancelWatch {
    fn drop(&mut self) {
        if !self.answered {
            self.cancels.cancelled(self.dispatched.is_set());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tripped(c: &Cancels) -> bool {
        c.tripped.load(Ordering::Relaxed)
    }

    fn watch(c: &Arc<Cancels>) -> CancelWatch {
        c.watch(Dispatched::default())
    }

    /// A request that reached a backend, then was cancelled.
    fn cancel_dispatched(c: &Arc<Cancels>) {
        let d = Dispatched::default();
        let w = c.watch(d.clone());
        d.set();
        drop(w);
    }

    #[tokio::test]
    async fn over_the_budget_and_most_requests_trips() {
        let c = Cancels::new(true);
        for _ in 0..CANCEL_BUDGET {
            drop(watch(&c));
        }
        assert!(!tripped(&c), "the budget itself is allowed");
        drop(watch(&c));
        assert!(tripped(&c));
        // The waiter wakes (the notification is kept for it).
        tokio::time::timeout(std::time::Duration::from_secs(5), c.exceeded())
            .await
            .unwrap();
        assert_eq!(c.counts(), (CANCEL_BUDGET + 1, CANCEL_BUDGET + 1));
    }

    /// One answered request for each cancelled one keeps the share under
    /// half; the rate of cancels that reached a backend trips it all the
    /// same, and only it: cancels before dispatch, or spread over time,
    /// or on a trusted proxy's connection, do not.
    #[tokio::test(start_paused = true)]
    async fn padding_does_not_hide_a_rate_of_dispatched_cancels() {
        let c = Cancels::new(true);
        for _ in 0..DISPATCHED_CANCEL_BUDGET {
            watch(&c).answered();
            cancel_dispatched(&c);
        }
        assert!(!tripped(&c), "at the budget");
        watch(&c).answered();
        cancel_dispatched(&c);
        assert!(tripped(&c), "past it, padded to half");
        assert!(
            c.counts().0 * 2 <= c.counts().1,
            "the share rule alone would not trip (not more than half)"
        );

        // Spread over windows: never past the budget in one.
        let c = Cancels::new(true);
        for _ in 0..3 {
            for _ in 0..DISPATCHED_CANCEL_BUDGET {
                watch(&c).answered();
                cancel_dispatched(&c);
            }
            tokio::time::advance(DISPATCHED_CANCEL_WINDOW).await;
        }
        assert!(!tripped(&c));

        // A trusted proxy's connection: the share rule only.
        let c = Cancels::new(false);
        for _ in 0..3 * DISPATCHED_CANCEL_BUDGET {
            watch(&c).answered();
            cancel_dispatched(&c);
        }
        assert!(!tripped(&c));
    }

    #[test]
    fn a_long_busy_connection_with_some_cancels_does_not() {
        let c = Cancels::new(true);
        for i in 0..2000 {
            let w = watch(&c);
            if i % 10 == 0 {
                drop(w); // 10% cancelled: 200 of them
            } else {
                w.answered();
            }
        }
        assert_eq!(c.counts(), (200, 2000));
        assert!(!tripped(&c));
    }
}
