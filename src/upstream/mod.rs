//! The backends and how requests are spread over them.
//!
//! `backend` is one php-fpm pool and its state, `pool` its kept-alive
//! connections (mechanism), `select` the balancing policies (policy). This
//! module holds the current table of backends with its policy, swapped as a
//! whole on reload so a request sees one consistent table from start to end.

pub mod backend;
pub mod discovery;
pub mod pool;
pub mod select;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use crate::config::Balance;
use backend::Backend;
use select::{Candidate, LeastBusy, LeastConn, RoundRobin, Selector, SmoothWeighted};

impl Candidate for Backend {
    fn weight(&self) -> u32 {
        Backend::weight(self)
    }
    fn in_flight(&self) -> usize {
        let figures = self.pool.figures();
        figures.in_use + figures.waiting
    }
    fn idle_workers(&self) -> Option<u64> {
        self.fpm_idle_workers()
    }
}

/// One table of backends with the policy built for it.
#[derive(Debug)]
pub struct BackendSet {
    pub backends: Vec<Arc<Backend>>,
    selector: Box<dyn Selector>,
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
        BackendSet { backends, selector }
    }

    /// The next backend for a request, among those up at `now` and not in
    /// `tried` (backends this request already failed on).
    pub fn pick(&self, now: Instant, tried: &[Arc<Backend>]) -> Option<Arc<Backend>> {
        let table: Vec<&dyn Candidate> = self
            .backends
            .iter()
            .map(|b| b.as_ref() as &dyn Candidate)
            .collect();
        let eligible = |i: usize| {
            let b = &self.backends[i];
            b.is_available(now) && !tried.iter().any(|t| Arc::ptr_eq(t, b))
        };
        self.selector
            .select(&table, &eligible)
            .map(|i| Arc::clone(&self.backends[i]))
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
