//! When to renew and when to try again: pure arithmetic on times, so the
//! renewal loop's timing is tested without a CA or a clock.

use std::time::{Duration, SystemTime};

/// First wait after a failed order; doubles per failure in a row.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(60);

/// Longest wait between two tries: Let's Encrypt allows 5 failed
/// validations per name and hour, so at most one try an hour keeps an
/// account that keeps failing (a DNS record pointing elsewhere) within it.
pub const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// When to renew a certificate valid from `not_before` to `not_after`: when
/// less than `renew_before` is left, or less than a third of its lifetime if
/// that is shorter (a 6-day certificate renews with 2 days left, not 30);
/// earlier by up to a tenth of that margin, by `jitter` in 0..=1, so that
/// balancers that got their certificates together do not all renew at once.
#[must_use]
pub fn renew_at(
    not_before: SystemTime,
    not_after: SystemTime,
    renew_before: Duration,
    jitter: f64,
) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let margin = renew_before.min(lifetime / 3);
    let spread = margin.mul_f64(0.1 * jitter.clamp(0.0, 1.0));
    not_after
        .checked_sub(margin + spread)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The wait after the `failures`-th failure in a row (1 = the first):
/// [`BACKOFF_FIRST`] doubling up to [`BACKOFF_MAX`], then ±10% by `jitter`
/// in 0..=1 (0.5 = none).
#[must_use]
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = BACKOFF_FIRST
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX);
    base.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// Closer than this, a new certificate's renewal time counts as due at
/// issue (tests use 30 s certificates, renewed 20 s after issue).
pub const DUE_AT_ISSUE: Duration = Duration::from_secs(10);

/// When to order next after an order gave a certificate due for renewal
/// at `due`: then; or, when that is already (nearly) past, a certificate
/// issued expired or with a clock ahead of the CA's, as after a failure
/// (`failures` counts it, [`backoff`] waits): never an order loop against
/// the CA's rate limits. `failures` is reset otherwise.
#[must_use]
pub fn after_issue(
    due: SystemTime,
    now: SystemTime,
    failures: &mut u32,
    jitter: f64,
) -> SystemTime {
    if due < now + DUE_AT_ISSUE {
        *failures = failures.saturating_add(1);
        now + backoff(*failures, jitter)
    } else {
        *failures = 0;
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn at(days: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + DAY * u32::try_from(days).unwrap()
    }

    #[test]
    fn ninety_day_certificates_renew_thirty_days_before() {
        assert_eq!(renew_at(at(100), at(190), 30 * DAY, 0.0), at(160));
        // Up to a tenth of the margin earlier with jitter.
        assert_eq!(renew_at(at(100), at(190), 30 * DAY, 1.0), at(157));
    }

    #[test]
    fn short_lifetimes_renew_with_a_third_left() {
        assert_eq!(renew_at(at(100), at(106), 30 * DAY, 0.0), at(104));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let renew = renew_at(t0, t0 + Duration::from_secs(30), 30 * DAY, 0.0);
        assert_eq!(renew, t0 + Duration::from_secs(20));
    }

    #[test]
    fn renew_before_wins_when_shorter() {
        assert_eq!(renew_at(at(100), at(190), 10 * DAY, 0.0), at(180));
    }

    /// A certificate due at issue (expired, or a clock ahead) waits as a
    /// failure would, doubling; a sound one resets the count.
    #[test]
    fn a_certificate_due_at_issue_backs_off() {
        let now = at(100);
        let mut failures = 0;
        assert_eq!(
            after_issue(at(90), now, &mut failures, 0.5),
            now + Duration::from_secs(60)
        );
        assert_eq!(
            after_issue(now, now, &mut failures, 0.5),
            now + Duration::from_secs(120)
        );
        assert_eq!(failures, 2);
        let soon = now + Duration::from_secs(20);
        assert_eq!(
            after_issue(soon, now, &mut failures, 0.5),
            soon,
            "a 30 s certificate"
        );
        assert_eq!(failures, 0);
    }

    #[test]
    fn backoff_doubles_to_an_hour() {
        let b = |n| backoff(n, 0.5);
        assert_eq!(b(1), Duration::from_secs(60));
        assert_eq!(b(2), Duration::from_secs(120));
        assert_eq!(b(3), Duration::from_secs(240));
        assert_eq!(b(7), Duration::from_secs(3600));
        assert_eq!(b(1000), Duration::from_secs(3600));
        assert_eq!(backoff(1, 0.0), Duration::from_secs(54));
        assert_eq!(backoff(1, 1.0), Duration::from_secs(66));
    }
}
