//! The backends and how requests are spread over them.
//!
//! `backend` is one php-fpm pool and its state, `pool` its kept-alive
//! connections (mechanism), `exchange` one request over one of them,
//! `select` the balancing policies (policy), `discovery` builds the table
//! from the config. This module holds the current table of backends with its
//! policy, swapped as a whole on reload so a request sees one consistent
//! table from start to end.

pub mod backend;
pub mod discovery;
pub mod exchange;
pub mod pool;
pub mod select;
mod slots;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use crate::config::Balance;
use backend::Backend;
use pool::{PoolError, Slot};
use select::{Candidate, LeastBusy, LeastConn, RoundRobin, Selector, SmoothWeighted};

impl Candidate for Backend {
    fn weight(&self) -> u32 {
        Backend::weight(self)
    }
    fn in_flight(&self) -> usize {
        let figures = self.pool.figures();
        figures.in_use + figures.waiting
    }
    /// php-fpm's idle workers at the last status poll, and the workers
    /// that hold fpmlb's own idle kept connections: php-fpm counts those as
    /// active (a worker waiting for the next request on a kept connection
    /// is "Reading headers"), yet they are free for fpmlb. Without them,
    /// the pool fpmlb had just used looked the busiest.
    fn idle_workers(&self) -> Option<u64> {
        let kept = u64::try_from(self.pool.idle_count()).unwrap_or(0);
        self.fpm_idle_workers()
            .map(|idle| idle.saturating_add(kept))
    }
}

/// One table of backends with the policy built for it.
#[derive(Debug)]
pub struct BackendSet {
    pub backends: Vec<Arc<Backend>>,
    selector: Box<dyn Selector>,
    /// Round robin waits in one queue for the whole table (see `pick_slot`).
    shared_queue: bool,
}

impl BackendSet {
    pub fn new(backends: Vec<Arc<Backend>>, balance: Balance) -> BackendSet {
        let equal_weights = backends.windows(2).all(|w| w[0].weight() == w[1].weight());
        let selector: Box<dyn Selector> = match balance {
            Balance::RoundRobin if equal_weights => Box::new(RoundRobin::default()),
            Balance::RoundRobin => Box::new(SmoothWeighted::new(backends.len())),
            Balance::LeastConn => Box::new(LeastConn::default()),
            Balance::LeastBusy => Box::new(LeastBusy::default()),
        };
        let shared_queue = balance == Balance::RoundRobin;
        BackendSet {
            backends,
            selector,
            shared_queue,
        }
    }

    /// Which backends may take a request of `group` at `now`, not in
    /// `tried` (backends this request already failed on): the group's
    /// backends that are up, or, when none of them is, its backups (nginx's
    /// `backup`: used only when every primary server is unavailable).
    fn eligible(&self, now: Instant, tried: &[Arc<Backend>], group: &str) -> Vec<bool> {
        let usable = |b: &Arc<Backend>, backup: bool| {
            b.group == group
                && b.backup == backup
                && b.is_available(now)
                && !tried.iter().any(|t| Arc::ptr_eq(t, b))
        };
        let primary: Vec<bool> = self.backends.iter().map(|b| usable(b, false)).collect();
        if primary.contains(&true) {
            return primary;
        }
        self.backends.iter().map(|b| usable(b, true)).collect()
    }

    /// The next backend of `group` for a request, among those up at `now`
    /// and not in `tried`.
    pub fn pick(&self, now: Instant, tried: &[Arc<Backend>], group: &str) -> Option<Arc<Backend>> {
        let mask = self.eligible(now, tried, group);
        self.choose(&mask)
    }

    fn choose(&self, mask: &[bool]) -> Option<Arc<Backend>> {
        let table: Vec<&dyn Candidate> = self
            .backends
            .iter()
            .map(|b| b.as_ref() as &dyn Candidate)
            .collect();
        let eligible = |i: usize| mask.get(i).copied().unwrap_or(false);
        self.selector
            .select(&table, &eligible)
            .map(|i| Arc::clone(&self.backends[i]))
    }

    /// Picks a backend for a request and takes a connection slot in it,
    /// waiting at most `wait`:
    /// - the policy's choice, when it has a free slot (the common case);
    /// - with round robin, when that pool is busy: another eligible pool
    ///   with a free slot, else the first slot to free in any eligible pool.
    ///   One queue for the cluster, as HAProxy's: a request does not wait
    ///   behind a slow pool while another frees up first;
    /// - with the other policies, a slot in the chosen pool.
    ///
    /// `Ok(None)`: no backend eligible. `Err`: no slot within `wait` (or
    /// every queue full), with the backend the policy had chosen.
    pub async fn pick_slot(
        &self,
        now: Instant,
        tried: &[Arc<Backend>],
        wait: Duration,
        group: &str,
    ) -> Result<Option<(Arc<Backend>, Slot)>, (Arc<Backend>, PoolError)> {
        let mask = self.eligible(now, tried, group);
        let Some(chosen) = self.choose(&mask) else {
            return Ok(None);
        };
        if let Some(slot) = chosen.pool.try_slot() {
            return Ok(Some((chosen, slot)));
        }
        let eligible: Vec<&Arc<Backend>> = if self.shared_queue {
            let start = self
                .backends
                .iter()
                .position(|b| Arc::ptr_eq(b, &chosen))
                .unwrap_or(0);
            let n = self.backends.len();
            (0..n)
                .map(|k| (start + k) % n)
                .filter(|&i| mask[i])
                .map(|i| &self.backends[i])
                .collect()
        } else {
            vec![&chosen]
        };
        for b in &eligible {
            if let Some(slot) = b.pool.try_slot() {
                return Ok(Some((Arc::clone(b), slot)));
            }
        }
        let waits = eligible
            .iter()
            .map(|b| Box::pin(async move { (Arc::clone(b), b.pool.slot().await) }));
        let first = async move {
            let mut pending: Vec<_> = waits.collect();
            let mut last_err = None;
            while !pending.is_empty() {
                let ((backend, result), _, rest) = futures_util::future::select_all(pending).await;
                match result {
                    Ok(slot) => return Ok((backend, slot)),
                    Err(e) => last_err = Some((backend, e)),
                }
                pending = rest;
            }
            Err(last_err)
        };
        match tokio::time::timeout(wait, first).await {
            Ok(Ok(found)) => Ok(Some(found)),
            Ok(Err(Some(err))) => Err(err),
            Ok(Err(None)) | Err(_) => Err((chosen, PoolError::QueueTimeout(wait))),
        }
    }

    pub fn find(&self, name: &str) -> Option<&Arc<Backend>> {
        self.backends.iter().find(|b| b.name == name)
    }
}

/// The current table, shared by the front end, the health checker and the
/// admin API; replaced atomically on reload.
#[derive(Debug)]
pub struct Upstream {
    current: ArcSwap<BackendSet>,
}

impl Upstream {
    pub fn new(set: BackendSet) -> Upstream {
        Upstream {
            current: ArcSwap::from_pointee(set),
        }
    }

    /// The table as it is now; hold it for the whole request.
    pub fn snapshot(&self) -> Arc<BackendSet> {
        self.current.load_full()
    }

    /// Installs a new table; requests already running keep the old one.
    pub fn replace(&self, set: BackendSet) {
        self.current.store(Arc::new(set));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::conn::Endpoint;
    use crate::health::passive::FailureWindow;
    use crate::upstream::pool::{Pool, PoolSettings};

    fn backend(name: &str, port: u16) -> Arc<Backend> {
        grouped(name, port, "main", false)
    }

    fn grouped(name: &str, port: u16, group: &str, backup: bool) -> Arc<Backend> {
        let endpoint = Endpoint::Tcp(([127, 0, 0, 1], port).into());
        let settings = PoolSettings {
            max_conns: 1,
            queue_size: 8,
            connect_timeout: Duration::from_secs(1),
            queue_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
        };
        let pool = Pool::new(endpoint.clone(), settings);
        let mut b = Backend::new(
            name.into(),
            endpoint,
            1,
            pool,
            FailureWindow::new(0, Duration::from_secs(1)),
        );
        b.group = group.into();
        b.backup = backup;
        Arc::new(b)
    }

    #[test]
    fn a_group_picks_its_own_backends_and_backups_only_when_none_is_left() {
        let a = grouped("a", 1, "main", false);
        let b = grouped("b", 2, "main", false);
        let spare = grouped("spare", 3, "main", true);
        let admin = grouped("admin", 4, "admin", false);
        let set = BackendSet::new(
            vec![a.clone(), b.clone(), spare.clone(), admin.clone()],
            Balance::RoundRobin,
        );
        let now = Instant::now();
        let names = |group: &str, tried: &[Arc<Backend>]| -> Vec<String> {
            (0..4)
                .filter_map(|_| set.pick(now, tried, group).map(|b| b.name.clone()))
                .collect()
        };
        let mut main = names("main", &[]);
        main.sort();
        assert_eq!(main, ["a", "a", "b", "b"], "never the backup nor admin");
        assert_eq!(names("admin", &[]), ["admin"; 4]);
        assert!(names("nope", &[]).is_empty());
        // a is down and b failed this request: the backup takes it.
        a.set_alive(false);
        assert_eq!(names("main", std::slice::from_ref(&b)), ["spare"; 4]);
        // The admin group has no backup: nothing.
        admin.set_enabled(false);
        assert!(names("admin", &[]).is_empty());
        a.set_alive(true);
        assert_eq!(names("main", std::slice::from_ref(&b)), ["a"; 4]);
    }

    /// Lets the other tasks run until `cond` holds; a state that never
    /// comes fails the test instead of hanging it.
    async fn until(what: &str, cond: impl Fn() -> bool) {
        for _ in 0..100 {
            if cond() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("never happened: {what}");
    }

    #[tokio::test]
    async fn a_worker_on_an_idle_kept_connection_counts_as_idle() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let _accept = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                kept.push(s);
            }
        });
        let b = backend("a", port);
        assert_eq!(b.idle_workers(), None, "no status poll yet");
        b.set_fpm_idle_workers(Some(1));
        assert_eq!(b.idle_workers(), Some(1));
        b.pool.acquire().await.unwrap().release();
        assert_eq!(b.pool.figures().idle, 1);
        assert_eq!(b.idle_workers(), Some(2), "its worker is free for fpmlb");
    }

    fn waiting(b: &Backend) -> usize {
        b.pool.figures().waiting
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_waits_in_one_queue_for_the_first_free_pool() {
        let (a, b) = (backend("a", 1), backend("b", 2));
        let set = BackendSet::new(vec![Arc::clone(&a), Arc::clone(&b)], Balance::RoundRobin);
        let now = Instant::now();
        let held_a = a.pool.try_slot().unwrap();
        let held_b = b.pool.try_slot().unwrap();
        // Both full: the next request waits in both queues at once...
        let waiter = tokio::spawn(async move {
            let picked = set
                .pick_slot(now, &[], Duration::from_secs(5), "main")
                .await;
            picked.map(|found| found.map(|(backend, _)| backend.name.clone()))
        });
        until("the request waits for a and for b", || {
            waiting(&a) == 1 && waiting(&b) == 1
        })
        .await;
        // ... and takes whichever frees first: b, not round robin's a.
        drop(held_b);
        let got = waiter.await.unwrap();
        assert!(
            matches!(got.as_ref(), Ok(Some(name)) if name == "b"),
            "{got:?}"
        );
        assert_eq!(waiting(&a), 0, "it left a's queue");
        drop(held_a);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_chosen_pool_spills_to_a_free_one_and_times_out_when_all_stay_full() {
        let (a, b) = (backend("a", 1), backend("b", 2));
        let backends = vec![Arc::clone(&a), Arc::clone(&b)];
        let now = Instant::now();
        let twin = BackendSet::new(backends.clone(), Balance::RoundRobin);
        assert_eq!(
            twin.pick(now, &[], "main").unwrap().name,
            "a",
            "round robin starts at a"
        );
        let set = BackendSet::new(backends, Balance::RoundRobin);
        let _held_a = a.pool.try_slot().unwrap();
        // Round robin starts at a, which is full: b's free slot is taken.
        let (picked, slot) = set
            .pick_slot(now, &[], Duration::from_millis(50), "main")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(picked.name, "b");
        let err = set
            .pick_slot(now, &[], Duration::from_millis(50), "main")
            .await;
        assert!(matches!(err, Err((_, PoolError::QueueTimeout(_)))));
        drop(slot);
    }

    #[tokio::test(start_paused = true)]
    async fn least_conn_waits_only_for_its_choice() {
        let (a, b) = (backend("a", 1), backend("b", 2));
        let set = BackendSet::new(vec![Arc::clone(&a), Arc::clone(&b)], Balance::LeastConn);
        let now = Instant::now();
        let held_a = a.pool.try_slot().unwrap();
        let held_b = b.pool.try_slot().unwrap();
        let waiter = tokio::spawn(async move {
            let picked = set
                .pick_slot(now, &[], Duration::from_millis(50), "main")
                .await;
            picked.map(|found| found.map(|(backend, _)| backend.name.clone()))
        });
        until("the request waits for one pool", || {
            waiting(&a) + waiting(&b) == 1
        })
        .await;
        // The other pool frees a slot: least_conn does not take it.
        let chosen = if waiting(&a) == 1 { "a" } else { "b" };
        let (_still_held, freed) = if chosen == "a" {
            (held_a, held_b)
        } else {
            (held_b, held_a)
        };
        drop(freed);
        let err = waiter.await.unwrap();
        assert!(
            matches!(&err, Err((backend, PoolError::QueueTimeout(_))) if backend.name == chosen),
            "{err:?}"
        );
    }
}
