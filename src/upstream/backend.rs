//! One php-fpm pool as the balancer sees it: where it is, how much traffic it
//! takes, whether it may take traffic now, and what it has served.
//!
//! "May take traffic" is four separate facts, kept apart on purpose so each
//! owner can change its own without touching the others:
//! - `enabled`: the operator's word (admin API drain/enable);
//! - `alive`: the active liveness checker's verdict (ping over FastCGI);
//! - `session_ok`: the session checker's verdict (drains a node whose PHP
//!   sessions would not be shared);
//! - the passive failure window (`max_fails` within `fail_timeout`).

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::fastcgi::conn::Endpoint;
use crate::health::fpm_status::FpmStatus;
use crate::health::passive::FailureWindow;
use crate::upstream::pool::Pool;

/// Why a backend is not taking new requests, if it is not (named in the
/// admin API by `admin::view::state_names`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Up,
    /// Liveness checks or the passive failure window say it is down.
    Down,
    /// Drained by the session checker: alive, but its sessions are not shared.
    DrainedBySession,
    /// Drained by an operator through the admin API.
    DrainedByOperator,
}

/// Counters kept per backend for logs, the status page and metrics.
#[derive(Debug, Default)]
pub struct BackendStats {
    pub requests: AtomicU64,
    pub responses_2xx: AtomicU64,
    pub responses_3xx: AtomicU64,
    pub responses_4xx: AtomicU64,
    pub responses_5xx: AtomicU64,
    /// Failures of the backend itself (connect, reset, timeout, protocol).
    pub failures: AtomicU64,
    /// Requests that carried the session cookie.
    pub session_requests: AtomicU64,
    /// ... and got a new session id back: the backend did not find the session.
    pub session_resets: AtomicU64,
    /// Upstream time of exchanges (time to the response head).
    pub latency: LatencyHistogram,
}

/// Upper bounds of the latency buckets, in seconds (Prometheus' defaults:
/// they fit PHP pages from a ping to a slow report).
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A lock-free histogram of upstream times with fixed buckets.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last slot is +Inf.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The upper bound of the bucket that holds the `q` quantile (0..1) of
    /// what was observed: None before any observation, or when it lies past
    /// the last bucket.
    pub fn quantile_bound(&self, q: f64) -> Option<Duration> {
        let (buckets, total, _) = self.snapshot();
        if total == 0 {
            return None;
        }
        let wanted = (q * total as f64).ceil() as u64;
        buckets
            .iter()
            .find(|(_, count)| *count >= wanted)
            .map(|(bound, _)| Duration::from_secs_f64(*bound))
    }

    /// Cumulative counts per bucket bound (Prometheus' `le`), the +Inf
    /// count last, and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut acc = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len());
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            acc += self.counts[i].load(Ordering::Relaxed);
            buckets.push((*bound, acc));
        }
        acc += self.counts[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (buckets, acc, sum)
    }
}

impl BackendStats {
    /// Counts a response from this backend by status class.
    pub fn record_status(&self, status: u16) {
        let counter = match status {
            200..=299 => &self.responses_2xx,
            300..=399 => &self.responses_3xx,
            400..=499 => &self.responses_4xx,
            _ => &self.responses_5xx,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One php-fpm pool behind the balancer.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    /// The backend group locations pick (`backends[].group`, default `main`).
    pub group: String,
    /// Takes requests only when no other backend of its group can (nginx `backup`).
    pub backup: bool,
    /// Whether the connection cap follows the pool's reported size (no
    /// `max_conns` in the config).
    pub auto_cap: bool,
    /// What it was built from, to tell on reload whether it can be kept.
    pub shape: Option<crate::upstream::discovery::BackendShape>,
    pub endpoint: Endpoint,
    /// Share of requests; changed in place by a reload.
    weight: AtomicU32,
    pub pool: Pool,
    pub stats: BackendStats,
    enabled: AtomicBool,
    alive: AtomicBool,
    session_ok: AtomicBool,
    failures: Mutex<FailureWindow>,
    /// Idle php-fpm workers per the last status poll; -1 while unknown.
    fpm_idle: AtomicI64,
    /// The pool's last status page, if polled.
    fpm_status: ArcSwapOption<FpmStatus>,
}

impl Backend {
    pub fn new(
        name: String,
        endpoint: Endpoint,
        weight: u32,
        pool: Pool,
        failures: FailureWindow,
    ) -> Self {
        Backend {
            name,
            group: crate::config::MAIN_GROUP.to_owned(),
            backup: false,
            auto_cap: false,
            shape: None,
            endpoint,
            weight: AtomicU32::new(weight),
            pool,
            stats: BackendStats::default(),
            enabled: AtomicBool::new(true),
            alive: AtomicBool::new(true),
            session_ok: AtomicBool::new(true),
            failures: Mutex::new(failures),
            fpm_idle: AtomicI64::new(-1),
            fpm_status: ArcSwapOption::empty(),
        }
    }

    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub fn set_weight(&self, weight: u32) {
        self.weight.store(weight, Ordering::Relaxed);
    }

    /// The state that decides whether it takes new requests at `now`.
    pub fn state(&self, now: Instant) -> State {
        if !self.enabled.load(Ordering::Relaxed) {
            State::DrainedByOperator
        } else if !self.alive.load(Ordering::Relaxed) || self.passively_down(now) {
            State::Down
        } else if !self.session_ok.load(Ordering::Relaxed) {
            State::DrainedBySession
        } else {
            State::Up
        }
    }

    /// Whether the selector may give it a new request at `now`.
    pub fn is_available(&self, now: Instant) -> bool {
        self.state(now) == State::Up
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn set_alive(&self, alive: bool) {
        self.alive.store(alive, Ordering::Relaxed);
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    pub fn set_session_ok(&self, ok: bool) {
        self.session_ok.store(ok, Ordering::Relaxed);
    }

    pub fn is_session_ok(&self) -> bool {
        self.session_ok.load(Ordering::Relaxed)
    }

    /// The pool's last status page, if polled.
    pub fn fpm_status(&self) -> Option<Arc<FpmStatus>> {
        self.fpm_status.load_full()
    }

    /// Records a fresh status page (None: the poll failed).
    pub fn set_fpm_status(&self, status: Option<FpmStatus>) {
        self.set_fpm_idle_workers(status.as_ref().map(|s| s.idle_processes));
        self.fpm_status.store(status.map(Arc::new));
    }

    /// Idle php-fpm workers per the last status poll, if known.
    pub fn fpm_idle_workers(&self) -> Option<u64> {
        u64::try_from(self.fpm_idle.load(Ordering::Relaxed)).ok()
    }

    pub fn set_fpm_idle_workers(&self, idle: Option<u64>) {
        let v = idle.and_then(|i| i64::try_from(i).ok()).unwrap_or(-1);
        self.fpm_idle.store(v, Ordering::Relaxed);
    }

    fn passively_down(&self, now: Instant) -> bool {
        match self.failures.lock() {
            Ok(window) => window.is_down(now),
            Err(poisoned) => poisoned.into_inner().is_down(now),
        }
    }

    /// Records a failed attempt (connect error, reset, timeout, garbage).
    /// Returns true when this failure took the backend out of rotation.
    pub fn record_failure(&self, now: Instant) -> bool {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        match self.failures.lock() {
            Ok(mut window) => window.record_failure(now),
            Err(poisoned) => poisoned.into_inner().record_failure(now),
        }
    }

    /// A failure a script may cause, of a request that began when the
    /// backend had answered `answered_before` requests: true when it is
    /// excused rather than counted, which takes an answer meanwhile (the
    /// backend is alive) and at least twice as many answers as such
    /// failures (see `FailureWindow::excuse`).
    pub fn excuse_failure(&self, now: Instant, answered_before: u64) -> bool {
        let answered = self.answered();
        if answered <= answered_before {
            return false;
        }
        match self.failures.lock() {
            Ok(mut window) => window.excuse(now, answered_before, answered),
            Err(poisoned) => poisoned.into_inner().excuse(now, answered_before, answered),
        }
    }

    /// Records a successful exchange: nginx forgets earlier failures then.
    pub fn record_success(&self) {
        match self.failures.lock() {
            Ok(mut window) => window.record_success(),
            Err(poisoned) => poisoned.into_inner().record_success(),
        }
    }

    /// Responses it has answered so far (a head arrived): a count that
    /// moves while a request runs shows the backend alive meanwhile.
    pub fn answered(&self) -> u64 {
        self.stats.requests.load(Ordering::Relaxed)
    }

    /// Counts a finished exchange for the stats.
    pub fn record_exchange(&self, status: u16, upstream_time: Duration) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats.record_status(status);
        self.stats.latency.observe(upstream_time);
    }
}

/// A backend for unit tests: one connection, a queue of one, 1 s
/// timeouts, passive health off.
#[cfg(test)]
pub(crate) fn for_tests(name: &str, endpoint: Endpoint) -> Arc<Backend> {
    let second = Duration::from_secs(1);
    let settings = crate::upstream::pool::PoolSettings {
        max_conns: 1,
        queue_size: 1,
        connect_timeout: second,
        queue_timeout: second,
        idle_timeout: second,
    };
    let pool = Pool::new(endpoint.clone(), settings);
    let window = FailureWindow::new(0, second);
    Arc::new(Backend::new(name.into(), endpoint, 1, pool, window))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_histogram_is_cumulative() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(20));
        let (buckets, count, sum) = h.snapshot();
        assert_eq!(buckets[0], (0.005, 1));
        assert_eq!(buckets[3], (0.05, 2));
        assert_eq!(buckets.last().copied(), Some((10.0, 2)));
        assert_eq!(count, 3);
        assert!((sum - 20.033).abs() < 1e-6);
    }

    #[test]
    fn quantile_bounds_come_from_the_buckets() {
        let h = LatencyHistogram::default();
        assert_eq!(h.quantile_bound(0.9), None);
        for _ in 0..9 {
            h.observe(Duration::from_millis(3));
        }
        h.observe(Duration::from_millis(300));
        assert_eq!(h.quantile_bound(0.9), Some(Duration::from_millis(5)));
        assert_eq!(h.quantile_bound(1.0), Some(Duration::from_millis(500)));
        h.observe(Duration::from_secs(60));
        assert_eq!(h.quantile_bound(1.0), None, "past the last bucket");
    }
}
