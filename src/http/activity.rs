//! What one client connection is doing, shared by the server (its idle
//! timer) and the requests on it: how many are in flight, and when the last
//! one ended. A request holds an [`InFlight`] from its start until its
//! response body is done (the body carries it, see `response`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Requests in flight on one client connection and when it was last busy.
#[derive(Debug, Default)]
pub struct ConnActivity {
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` when the last request ended.
    last_done_ms: AtomicU64,
}

/// Held by a request from its start until its response body is done.
#[derive(Debug)]
pub struct InFlight {
    activity: Arc<ConnActivity>,
    epoch: Instant,
}

impl InFlight {
    pub fn begin(activity: &Arc<ConnActivity>, epoch: Instant) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            activity: Arc::clone(activity),
            epoch,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.last_done_ms.store(ms, Ordering::Relaxed);
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves when the connection has had no request in flight for `idle`.
pub async fn idle_expired(activity: &ConnActivity, epoch: Instant, idle: Duration) {
    loop {
        let last = Duration::from_millis(activity.last_done_ms.load(Ordering::Relaxed));
        let deadline = epoch + last + idle;
        if Instant::now() >= deadline && activity.in_flight.load(Ordering::Relaxed) == 0 {
            return;
        }
        let wake = if Instant::now() >= deadline {
            Instant::now() + idle
        } else {
            deadline
        };
        tokio::time::sleep_until(wake).await;
    }
}
