//! Passive health, nginx's `max_fails` / `fail_timeout`: a backend that fails
//! `max_fails` times within `fail_timeout` is taken out of rotation for
//! `fail_timeout`, then tried again by real traffic.
//!
//! A pure type, driven by the caller's clock so it is tested without sockets.

use std::time::Duration;

use tokio::time::Instant;

/// The failure count of one backend and, when it tripped, until when it is out.
#[derive(Debug, Clone)]
pub struct FailureWindow {
    max_fails: u32,
    fail_timeout: Duration,
    fails: u32,
    first_fail: Option<Instant>,
    down_until: Option<Instant>,
}

impl FailureWindow {
    /// `max_fails == 0` turns passive health off, as in nginx.
    pub fn new(max_fails: u32, fail_timeout: Duration) -> Self {
        FailureWindow {
            max_fails,
            fail_timeout,
            fails: 0,
            first_fail: None,
            down_until: None,
        }
    }

    /// Counts a failure at `now`; true when this one took the backend out.
    pub fn record_failure(&mut self, now: Instant) -> bool {
        if self.max_fails == 0 || self.is_down(now) {
            return false;
        }
        match self.first_fail {
            Some(first) if now.duration_since(first) < self.fail_timeout => {}
            _ => {
                self.fails = 0;
                self.first_fail = Some(now);
            }
        }
        self.fails += 1;
        if self.fails >= self.max_fails {
            self.down_until = Some(now + self.fail_timeout);
            self.fails = 0;
            self.first_fail = None;
            return true;
        }
        false
    }

    /// A successful exchange forgets earlier failures. It does not end a
    /// trip: an exchange that started before the backend went out and
    /// ends well says nothing of the failures that took it out (nginx
    /// waits out `fail_timeout` the same way).
    pub fn record_success(&mut self) {
        self.fails = 0;
        self.first_fail = None;
    }

    /// Whether the backend is out of rotation at `now`.
    pub fn is_down(&self, now: Instant) -> bool {
        self.down_until.is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_S: Duration = Duration::from_secs(10);

    #[test]
    fn one_failure_trips_with_nginx_defaults_and_heals_after_fail_timeout() {
        let t0 = Instant::now();
        let mut w = FailureWindow::new(1, TEN_S);
        assert!(!w.is_down(t0));
        assert!(w.record_failure(t0));
        assert!(w.is_down(t0 + Duration::from_secs(9)));
        assert!(!w.is_down(t0 + TEN_S));
    }

    #[test]
    fn failures_must_fall_within_the_window() {
        let t0 = Instant::now();
        let mut w = FailureWindow::new(3, TEN_S);
        assert!(!w.record_failure(t0));
        assert!(!w.record_failure(t0 + Duration::from_secs(5)));
        // The window started at t0 and has passed: the count restarts.
        assert!(!w.record_failure(t0 + Duration::from_secs(11)));
        assert!(!w.record_failure(t0 + Duration::from_secs(12)));
        assert!(w.record_failure(t0 + Duration::from_secs(13)));
        assert!(w.is_down(t0 + Duration::from_secs(14)));
    }

    #[test]
    fn success_forgets_failures() {
        let t0 = Instant::now();
        let mut w = FailureWindow::new(2, TEN_S);
        assert!(!w.record_failure(t0));
        w.record_success();
        assert!(!w.record_failure(t0 + Duration::from_secs(1)));
        assert!(!w.is_down(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn a_success_while_out_does_not_bring_it_back() {
        let t0 = Instant::now();
        let mut w = FailureWindow::new(1, TEN_S);
        assert!(w.record_failure(t0));
        // A request sent before the trip ends well.
        w.record_success();
        assert!(w.is_down(t0 + Duration::from_secs(1)));
        assert!(!w.is_down(t0 + TEN_S));
    }

    #[test]
    fn zero_max_fails_disables() {
        let t0 = Instant::now();
        let mut w = FailureWindow::new(0, TEN_S);
        for i in 0..10 {
            assert!(!w.record_failure(t0 + Duration::from_millis(i)));
        }
        assert!(!w.is_down(t0));
    }

    #[test]
    fn failures_while_down_do_not_extend_it() {
        let t0 = Instant::now();
        let mut w = FailureWindow::new(1, TEN_S);
        assert!(w.record_failure(t0));
        assert!(!w.record_failure(t0 + Duration::from_secs(5)));
        assert!(!w.is_down(t0 + TEN_S));
    }
}
