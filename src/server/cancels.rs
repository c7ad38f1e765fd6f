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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

/// Cancelled requests a connection may have before its share counts: a
/// browser tab open for hours cancels a few; an attack, every one.
pub const CANCEL_BUDGET: u64 = 100;

/// The counts of one connection.
#[derive(Debug, Default)]
pub struct Cancels {
    requests: AtomicU64,
    cancelled: AtomicU64,
    tripped: AtomicBool,
    notify: Notify,
}

/// Held by a request's handler; counts the request as cancelled when it is
/// dropped before [`CancelWatch::answered`].
#[derive(Debug)]
pub struct CancelWatch {
    cancels: Arc<Cancels>,
    answered: bool,
}

impl Cancels {
    pub fn new() -> Arc<Cancels> {
        Arc::new(Cancels::default())
    }

    /// A request starts.
    pub fn watch(self: &Arc<Self>) -> CancelWatch {
        self.requests.fetch_add(1, Ordering::Relaxed);
        CancelWatch {
            cancels: Arc::clone(self),
            answered: false,
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

    fn cancelled(&self) {
        let cancelled = self.cancelled.fetch_add(1, Ordering::Relaxed) + 1;
        let requests = self.requests.load(Ordering::Relaxed);
        if cancelled > CANCEL_BUDGET
            && cancelled * 2 > requests
            && !self.tripped.swap(true, Ordering::Relaxed)
        {
            self.notify.notify_one();
        }
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
            self.cancels.cancelled();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tripped(c: &Cancels) -> bool {
        c.tripped.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn over_the_budget_and_most_requests_trips() {
        let c = Cancels::new();
        for _ in 0..CANCEL_BUDGET {
            drop(c.watch());
        }
        assert!(!tripped(&c), "the budget itself is allowed");
        drop(c.watch());
        assert!(tripped(&c));
        // The waiter wakes (the notification is kept for it).
        tokio::time::timeout(std::time::Duration::from_secs(5), c.exceeded())
            .await
            .unwrap();
        assert_eq!(c.counts(), (CANCEL_BUDGET + 1, CANCEL_BUDGET + 1));
    }

    #[test]
    fn a_long_busy_connection_with_some_cancels_does_not() {
        let c = Cancels::new();
        for i in 0..2000 {
            let w = c.watch();
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
