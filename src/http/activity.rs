//! What one client connection is doing, shared by the server (its head and
//! idle timers) and the requests on it: how many requests are in flight,
//! when the last one ended, and since when a request head has been coming
//! in. A request holds an [`InFlight`] from its start until its response
//! body is done (the body carries it, see `response`).
//!
//! Two timers, as nginx and HAProxy keep them apart: a head must be whole
//! within `client_header` of its first byte (or of the connection's start:
//! a client that connects and sends nothing is a head that never came), and
//! a kept-alive connection with nothing in flight and no head coming is
//! closed after `client_idle`. hyper's own header timer cannot tell the two
//! apart (it runs from the end of the previous response), so the server
//! reports the bytes it reads ([`ConnActivity::saw_head_bytes`]).

use crate::http::per_client::RequestSlot;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Set once a request was sent to a backend (its script may run on after
/// the client cancels it): in the request's extensions, read by the
/// connection's count of cancelled requests (`server/cancels.rs`).
#[derive(Debug, Clone, Default)]
pub struct Dispatched(Arc<AtomicBool>);

impl Dispatched {
    /// The request goes to a backend.
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// `head_started_ms` when no head is coming.
const NO_HEAD: u64 = u64::MAX;

/// Requests in flight on one client connection and when it was last busy.
#[derive(Debug)]
pub struct ConnActivity {
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` when the last request ended.
    last_done_ms: AtomicU64,
    /// Milliseconds since `epoch` of the first byte of a head not yet
    /// whole, or [`NO_HEAD`].
    head_started_ms: AtomicU64,
    /// HTTP/2: heads are frames of streams, bounded by h2 itself; the head
    /// timer only covered the connection preface.
    multiplexed: AtomicBool,
    /// Wakes the head timer when a head starts.
    head_started: Notify,
    /// A request asked to close the connection after its response.
    closing: AtomicBool,
    /// When the connection opened: the times above count from it.
    epoch: Instant,
}

impl ConnActivity {
    /// A new connection: its first head is due from now (its epoch).
    pub fn new() -> ConnActivity {
        ConnActivity {
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            multiplexed: AtomicBool::new(false),
            head_started: Notify::new(),
            closing: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since the connection opened.
    pub fn now_ms(&self) -> u64 {
        ms_since(self.epoch)
    }

    /// Bytes came in: with no request in flight they are the start of the
    /// next head.
    pub fn saw_head_bytes(&self) {
        let ms = self.now_ms();
        if self.in_flight.load(Ordering::Relaxed) == 0
            && !self.multiplexed.load(Ordering::Relaxed)
            && self
                .head_started_ms
                .compare_exchange(NO_HEAD, ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.head_started.notify_one();
        }
    }

    /// Whether the connection speaks HTTP/2.
    pub fn is_multiplexed(&self) -> bool {
        self.multiplexed.load(Ordering::Relaxed)
    }

    /// A request asked that the connection close after its response
    /// (HTTP/1.0 without keep-alive, `Connection: close`).
    pub fn set_closing(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Nothing in flight, no head coming, and not HTTP/2.
    pub fn is_quiet(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started_ms.load(Ordering::Relaxed) == NO_HEAD
            && !self.multiplexed.load(Ordering::Relaxed)
    }

    /// The connection speaks HTTP/2: no head timer from now on.
    pub fn set_multiplexed(&self) {
        self.multiplexed.store(true, Ordering::Relaxed);
        self.head_started_ms.store(NO_HEAD, Ordering::Relaxed);
    }

    /// `after` past the end of the last request (past the connection's
    /// start while none has ended): when a connection with nothing in
    /// flight since has been idle, or quiet, that long.
    pub fn since_last_request(&self, after: Duration) -> Instant {
        let last = Duration::from_millis(self.last_done_ms.load(Ordering::Relaxed));
        self.epoch + last + after
    }
}

impl Default for ConnActivity {
    fn default() -> Self {
        ConnActivity::new()
    }
}

/// Milliseconds from `epoch` to now.
fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
}

/// Held by a request from its start until its response body is done.
#[derive(Debug)]
pub struct InFlight {
    activity: Arc<ConnActivity>,
    /// The request's place among its client's requests at the backends
    /// (`http::per_client`), held as long as the request.
    place: Option<RequestSlot>,
}

impl InFlight {
    /// A request's head is whole (hyper parsed it): its head timer stops.
    pub fn begin(activity: &Arc<ConnActivity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.head_started_ms.store(NO_HEAD, Ordering::Relaxed);
        InFlight {
            activity: Arc::clone(activity),
            place: None,
        }
    }

    /// Holds `place` until the response body is done (a streamed response
    /// keeps its worker until then).
    pub fn hold(&mut self, place: RequestSlot) {
        self.place = Some(place);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = self.activity.now_ms();
        self.activity.last_done_ms.store(ms, Ordering::Relaxed);
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves when the connection has had no request in flight for `idle`.
pub async fn idle_expired(activity: &ConnActivity, idle: Duration) {
    loop {
        let deadline = activity.since_last_request(idle);
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

/// Resolves when the connection has had no request in flight and no head
/// coming for `quiet`: an HTTP/1.1 connection then holds nothing worth
/// hyper's buffers, and the server parks it (see `server::serve`).
pub async fn quiet_for(activity: &ConnActivity, quiet: Duration) {
    loop {
        let deadline = activity.since_last_request(quiet);
        let now = Instant::now();
        if now >= deadline && activity.is_quiet() {
            return;
        }
        tokio::time::sleep_until(if now >= deadline {
            now + quiet
        } else {
            deadline
        })
        .await;
    }
}

/// Resolves when a request head has been coming in for `timeout` without
/// being whole (HAProxy's `timeout http-request`).
pub async fn head_expired(activity: &ConnActivity, timeout: Duration) {
    let epoch = activity.epoch;
    loop {
        // Registered before the load, so a head that starts in between
        // still wakes this loop.
        let started_signal = activity.head_started.notified();
        let started = activity.head_started_ms.load(Ordering::Relaxed);
        if started == NO_HEAD {
            started_signal.await;
            continue;
        }
        let deadline = epoch + Duration::from_millis(started) + timeout;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `head_expired` resolves within `within` of paused time.
    async fn expires(activity: &Arc<ConnActivity>, within: Duration) -> bool {
        tokio::time::timeout(within, head_expired(activity, Duration::from_secs(10)))
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_runs_out_of_head_time() {
        let activity = Arc::new(ConnActivity::new());
        assert!(!expires(&activity, Duration::from_secs(9)).await);
        assert!(expires(&activity, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_kept_alive_connection_has_no_head_timer() {
        let activity = Arc::new(ConnActivity::new());
        // A request came and went.
        drop(InFlight::begin(&activity));
        assert!(!expires(&activity, Duration::from_secs(60)).await);
        // The next head starts: from its first byte, 10 s.
        tokio::time::advance(Duration::from_secs(5)).await;
        activity.saw_head_bytes();
        assert!(!expires(&activity, Duration::from_secs(9)).await);
        assert!(expires(&activity, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_quiet_only_after_its_request_and_before_the_next_head() {
        let activity = Arc::new(ConnActivity::new());
        let quiet = Duration::from_secs(1);
        let resolves = |within| {
            let activity = Arc::clone(&activity);
            async move {
                tokio::time::timeout(within, quiet_for(&activity, quiet))
                    .await
                    .is_ok()
            }
        };
        // A new connection waits for its first head: not quiet.
        assert!(!resolves(Duration::from_secs(5)).await);
        let request = InFlight::begin(&activity);
        assert!(!resolves(Duration::from_secs(5)).await, "in flight");
        drop(request);
        assert!(!resolves(Duration::from_millis(900)).await);
        assert!(resolves(Duration::from_millis(200)).await);
        // The next head's first bytes: not quiet until it is served.
        activity.saw_head_bytes();
        assert!(!resolves(Duration::from_secs(5)).await);
        drop(InFlight::begin(&activity));
        assert!(resolves(Duration::from_millis(1100)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn body_bytes_and_http2_do_not_start_a_head() {
        let activity = Arc::new(ConnActivity::new());
        let request = InFlight::begin(&activity);
        activity.saw_head_bytes(); // a body, while in flight
        assert!(!expires(&activity, Duration::from_secs(30)).await);
        drop(request);
        activity.set_multiplexed();
        activity.saw_head_bytes(); // HTTP/2 frames
        assert!(!expires(&activity, Duration::from_secs(30)).await);
    }
}
