//! Balancing policies: which backend gets the next request.
//!
//! A policy only chooses among the backends the caller says are eligible (up,
//! and not yet tried for this request); it never opens connections. Each
//! policy is built for one backend table and keeps its state sized to it, so
//! a reload builds a new one with the new table.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a policy may know of each backend when choosing.
pub trait Candidate {
    fn weight(&self) -> u32;
    /// Requests in flight now (for least_conn).
    fn in_flight(&self) -> usize;
    /// Idle php-fpm workers per the last status poll (for least_busy), if known.
    fn idle_workers(&self) -> Option<u64>;
}

/// A balancing policy over a fixed table of backends.
pub trait Selector: Send + Sync + std::fmt::Debug {
    /// Index of the chosen backend among `table`, considering only indexes
    /// for which `eligible` is true; None when none is.
    fn select(&self, table: &[&dyn Candidate], eligible: &dyn Fn(usize) -> bool) -> Option<usize>;
}

/// Plain round robin: one atomic counter, the next eligible backend after it.
/// Used when every weight is equal (nginx's weighted round robin then gives
/// the same order).
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Selector for RoundRobin {
    fn select(&self, table: &[&dyn Candidate], eligible: &dyn Fn(usize) -> bool) -> Option<usize> {
        let n = table.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // The k-th eligible backend: with some out, the others still
        // alternate evenly (a plain "next one up" would give the backend
        // after a drained one a double share).
        let count = (0..n).filter(|&i| eligible(i)).count();
        if count == 0 {
            return None;
        }
        (0..n).filter(|&i| eligible(i)).nth(start % count)
    }
}

/// nginx's smooth weighted round robin: each pick adds every eligible
/// backend's weight to its running score, picks the highest, and takes the
/// total off the winner. Weights 5,1,1 give a a b a c a a, never a burst.
#[derive(Debug)]
pub struct SmoothWeighted {
    current: Mutex<Vec<i64>>,
}

impl SmoothWeighted {
    pub fn new(size: usize) -> Self {
        SmoothWeighted {
            current: Mutex::new(vec![0; size]),
        }
    }
}

impl Selector for SmoothWeighted {
    fn select(&self, table: &[&dyn Candidate], eligible: &dyn Fn(usize) -> bool) -> Option<usize> {
        let mut current = match self.current.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if current.len() != table.len() {
            current.resize(table.len(), 0);
        }
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, backend) in table.iter().enumerate() {
            if !eligible(i) {
                continue;
            }
            let weight = i64::from(backend.weight());
            current[i] += weight;
            total += weight;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            current[b] -= total;
        }
        best
    }
}

/// Fewest requests in flight relative to weight; ties go round robin so an
/// idle cluster still spreads load.
#[derive(Debug, Default)]
pub struct LeastConn {
    tie: RoundRobin,
}

impl Selector for LeastConn {
    fn select(&self, table: &[&dyn Candidate], eligible: &dyn Fn(usize) -> bool) -> Option<usize> {
        // Compare in_flight/weight as cross products to stay in integers.
        let score = |i: usize| {
            (
                table[i].in_flight() as u128,
                u128::from(table[i].weight().max(1)),
            )
        };
        let best = (0..table.len()).filter(|&i| eligible(i)).min_by(|&a, &b| {
            let (fa, wa) = score(a);
            let (fb, wb) = score(b);
            (fa * wb).cmp(&(fb * wa))
        })?;
        let (fb, wb) = score(best);
        self.tie.select(table, &|i| {
            eligible(i) && {
                let (f, w) = score(i);
                f * wb == fb * w
            }
        })
    }
}

/// Most idle php-fpm workers (from each pool's status page), minus what we
/// already have in flight since that poll; ties round robin. Backends with no
/// figure yet count as having `max` idle workers, so they are tried.
#[derive(Debug, Default)]
pub struct LeastBusy {
    tie: RoundRobin,
}

impl Selector for LeastBusy {
    fn select(&self, table: &[&dyn Candidate], eligible: &dyn Fn(usize) -> bool) -> Option<usize> {
        let free = |i: usize| -> i64 {
            let idle = table[i]
                .idle_workers()
                .map_or(i64::MAX / 2, |v| i64::try_from(v).unwrap_or(i64::MAX / 2));
            idle - i64::try_from(table[i].in_flight()).unwrap_or(i64::MAX / 2)
        };
        let best = (0..table.len()).filter(|&i| eligible(i)).map(free).max()?;
        self.tie.select(table, &|i| eligible(i) && free(i) == best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        weight: u32,
        in_flight: usize,
        idle: Option<u64>,
    }

    impl Candidate for Fake {
        fn weight(&self) -> u32 {
            self.weight
        }
        fn in_flight(&self) -> usize {
            self.in_flight
        }
        fn idle_workers(&self) -> Option<u64> {
            self.idle
        }
    }

    fn fakes(weights: &[u32]) -> Vec<Fake> {
        weights
            .iter()
            .map(|&weight| Fake {
                weight,
                in_flight: 0,
                idle: None,
            })
            .collect()
    }

    fn picks(
        selector: &dyn Selector,
        table: &[Fake],
        n: usize,
        eligible: &dyn Fn(usize) -> bool,
    ) -> Vec<usize> {
        let refs: Vec<&dyn Candidate> = table.iter().map(|f| f as &dyn Candidate).collect();
        (0..n)
            .filter_map(|_| selector.select(&refs, eligible))
            .collect()
    }

    #[test]
    fn round_robin_cycles_and_skips_ineligible() {
        let table = fakes(&[1, 1, 1]);
        let rr = RoundRobin::default();
        assert_eq!(picks(&rr, &table, 6, &|_| true), vec![0, 1, 2, 0, 1, 2]);
        let got = picks(&rr, &table, 4, &|i| i != 1);
        assert!(got.iter().all(|&i| i != 1));
        assert_eq!(got.iter().filter(|&&i| i == 0).count(), 2);
        // With one of three out, the other two alternate.
        let got = picks(&rr, &table, 300, &|i| i != 2);
        assert_eq!(got.iter().filter(|&&i| i == 0).count(), 150);
        assert!(got.windows(2).all(|w| w[0] != w[1]), "{got:?}");
        assert_eq!(picks(&rr, &table, 3, &|_| false), Vec::<usize>::new());
    }

    #[test]
    fn smooth_weighted_matches_nginx_sequence() {
        // The sequence from nginx's commit that introduced smooth WRR.
        let table = fakes(&[5, 1, 1]);
        let swrr = SmoothWeighted::new(3);
        assert_eq!(
            picks(&swrr, &table, 7, &|_| true),
            vec![0, 0, 1, 0, 2, 0, 0]
        );
    }

    #[test]
    fn smooth_weighted_spreads_by_weight_over_skips() {
        let table = fakes(&[3, 2, 1]);
        let swrr = SmoothWeighted::new(3);
        let got = picks(&swrr, &table, 600, &|_| true);
        let count = |k| got.iter().filter(|&&i| i == k).count();
        assert_eq!((count(0), count(1), count(2)), (300, 200, 100));
        let got = picks(&swrr, &table, 50, &|i| i != 0);
        assert!(got.iter().all(|&i| i != 0));
    }

    #[test]
    fn least_conn_prefers_fewest_in_flight_per_weight() {
        let mut table = fakes(&[1, 1, 2]);
        table[0].in_flight = 3;
        table[1].in_flight = 1;
        table[2].in_flight = 1; // 1/2 beats 1/1
        let lc = LeastConn::default();
        assert_eq!(picks(&lc, &table, 3, &|_| true), vec![2, 2, 2]);
        assert_eq!(picks(&lc, &table, 1, &|i| i != 2), vec![1]);
    }

    #[test]
    fn least_conn_ties_go_round_robin() {
        let table = fakes(&[1, 1, 1]);
        let lc = LeastConn::default();
        let mut got = picks(&lc, &table, 3, &|_| true);
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2]);
    }

    #[test]
    fn least_busy_prefers_idle_workers() {
        let mut table = fakes(&[1, 1, 1]);
        table[0].idle = Some(0);
        table[1].idle = Some(3);
        table[2].idle = Some(3);
        table[2].in_flight = 2;
        let lb = LeastBusy::default();
        assert_eq!(picks(&lb, &table, 2, &|_| true), vec![1, 1]);
        // Unknown figures count as idle, so a new pool gets tried.
        table[0].idle = None;
        assert_eq!(picks(&lb, &table, 1, &|_| true), vec![0]);
    }
}
