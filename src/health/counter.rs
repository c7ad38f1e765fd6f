//! Hysteresis for active checks: a backend goes down after `fall`
//! consecutive failures and comes back after `rise` consecutive successes,
//! so one lost packet does not flap it (HAProxy's rise/fall).

/// Consecutive-result counting for one backend.
#[derive(Debug, Clone)]
pub struct Hysteresis {
    rise: u32,
    fall: u32,
    up: bool,
    /// Results in a row that disagree with `up`.
    streak: u32,
}

impl Hysteresis {
    /// Starts up: a backend takes traffic until checks say otherwise (passive
    /// health covers the first seconds).
    pub fn new(rise: u32, fall: u32) -> Self {
        Hysteresis {
            rise: rise.max(1),
            fall: fall.max(1),
            up: true,
            streak: 0,
        }
    }

    /// Starts in a known state (a reload keeps what was learnt).
    pub fn with_state(rise: u32, fall: u32, up: bool) -> Self {
        Hysteresis {
            up,
            ..Hysteresis::new(rise, fall)
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Records one check; `Some(new state)` when this result flipped it.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { self.fall } else { self.rise };
        if self.streak >= needed {
            self.up = ok;
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_after_fall_failures_in_a_row() {
        let mut h = Hysteresis::new(2, 3);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), Some(false));
        assert!(!h.is_up());
    }

    #[test]
    fn a_success_resets_the_failure_streak() {
        let mut h = Hysteresis::new(2, 3);
        h.record(false);
        h.record(false);
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert!(h.is_up());
    }

    #[test]
    fn rises_after_rise_successes() {
        let mut h = Hysteresis::new(2, 1);
        assert_eq!(h.record(false), Some(false));
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(true), Some(true));
        assert!(h.is_up());
    }

    #[test]
    fn zero_counts_mean_one() {
        let mut h = Hysteresis::new(0, 0);
        assert_eq!(h.record(false), Some(false));
        assert_eq!(h.record(true), Some(true));
    }
}
