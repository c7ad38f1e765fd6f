//! Passive health, nginx's `max_fails` / `fail_timeout`: a backend that fails
//! `max_fails` times within `fail_timeout` is taken out of rotation for
//! `fail_timeout`, then tried again by real traffic.
//!
//! Failures a script may cause (a timeout, a worker killed under its
//! request) are excused while the backend answers at least twice as many
//! requests as it has such failures, over the last one to two
//! `fail_timeout`s ([`FailureWindow::excuse`]): one slow or crashing page on
//! a working node is that page's failure, but a node where most pages hang
//! (a local mount or database gone) is taken out.
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
    excuses: Option<Excuses>,
}

/// Failures excused in the current and the previous window of
/// `fail_timeout`, and the backend's answer count when each began.
#[derive(Debug, Clone, Copy)]
struct Excuses {
    start: Instant,
    answered_at_start: u64,
    excused: u64,
    prev_answered_at_start: u64,
    prev_excused: u64,
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
            excuses: None,
        }
    }

    /// A failure a script may cause, at `now`, of a request that began when
    /// the backend had answered `answered_before` requests; it has answered
    /// `answered` by now. Excused (true: not to be counted) when the
    /// backend answered at least twice as many requests as it had such
    /// failures, this one included, since the previous window began (or
    /// since this request did, if later windows were empty).
    pub fn excuse(&mut self, now: Instant, answered_before: u64, answered: u64) -> bool {
        let window = self.fail_timeout.max(Duration::from_secs(1));
        let fresh = Excuses {
            start: now,
            answered_at_start: answered_before,
            excused: 0,
            prev_answered_at_start: answered_before,
            prev_excused: 0,
        };
        let e = self.excuses.get_or_insert(fresh);
        let age = now.duration_since(e.start);
        if age >= window.saturating_mul(2) {
            *e = fresh;
        } else if age >= window {
            e.prev_answered_at_start = e.answered_at_start;
            e.prev_excused = e.excused;
            e.start = now;
            e.answered_at_start = answered;
            e.excused = 0;
        }
        let answers = answered.saturating_sub(e.prev_answered_at_start.min(answered_before));
        let failures = e.prev_excused + e.excused + 1;
        let excused = failures.saturating_mul(2) <= answers;
        if excused {
            e.excused += 1;
        }
        excused
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

    /// A script's failures on a node that answers others are excused while
    /// they are at most half its answers; past that they count, and an old
    /// window's answers stop excusing new failures.
    #[test]
    fn failures_a_script_may_cause_are_excused_while_the_node_answers() {
        let t0 = Instant::now();
        let mut w = FailureWindow::new(1, TEN_S);
        // 10 answers while the first slow request ran: excused.
        assert!(w.excuse(t0, 100, 110));
        // Four more with no answer between: 5 failures for 10 answers.
        for _ in 0..4 {
            assert!(w.excuse(t0, 110, 110));
        }
        // The sixth is over half: counted.
        assert!(!w.excuse(t0, 110, 110));
        assert!(w.record_failure(t0));
        // A window later, the last window still counts: 5 excused for 40
        // answers, so more are excused.
        let t1 = t0 + TEN_S;
        assert!(w.excuse(t1, 139, 140));
        // Two empty windows later, only this request's span counts: one
        // answer meanwhile is not twice one failure.
        let t2 = t1 + TEN_S * 3;
        assert!(!w.excuse(t2, 140, 141));
        assert!(w.excuse(t2, 141, 143));
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
