//! Kept-alive FastCGI connections to one backend, capped at `max_conns`.
//!
//! Why a cap: a php-fpm worker that holds a kept-alive connection serves
//! nobody else until it is closed, so more connections than the pool's
//! `pm.max_children` leave requests stuck in php-fpm's listen backlog. Every
//! open connection (in use or idle) is covered by one permit of `slots`; a
//! request that finds none free waits, first come first served (but for a
//! waiter on the thread that frees a permit, see `slots`), for at most
//! `queue_timeout`, and at most `queue_size` requests wait at once.
//!
//! Who holds what: a [`PooledConn`] holds a permit and the connection for one
//! exchange. `release` puts the connection back on the idle stack and frees
//! the permit; dropping it instead closes the connection (an exchange that
//! failed or was abandoned leaves the connection in an unknown state).
//!
//! The details are in the submodules:
//! - `cap.rs`: the cap a wait for a worker teaches, the patience, the
//!   judgement of that wait and the question for a free worker;
//! - `sharing.rs`: pools shared with other clients (the order of reuse,
//!   recycling, the nudge);
//! - `readiness.rs`: scripts that work on after `fastcgi_finish_request()`
//!   (the readiness check, holding connections back).

mod cap;
mod readiness;
mod sharing;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::slots::{Permit, Slots};
use tokio::time::Instant;

use crate::fastcgi::conn::{Connection, Endpoint, Readiness};

pub use cap::{LEARNED_CAP_HOLD, WORKER_PATIENCE, WORKER_PATIENCE_MAX, worker_patience};
pub use readiness::{CHECK_EVERY, HOLD_BACK_FOR};
pub use sharing::{RECYCLE_AFTER, RECYCLE_GAP, SHARED_NUDGE};

use cap::{Cap, Judged};
use readiness::{READY_WAIT, WORKED_ON};

/// Timeouts and bounds of a pool, from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    pub max_conns: usize,
    pub queue_size: usize,
    pub connect_timeout: Duration,
    pub queue_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("{waiting} requests already wait for a connection")]
    QueueFull { waiting: usize },
    #[error("no connection free within {0:?}")]
    QueueTimeout(Duration),
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// fpmlb itself could not open a connection: out of file descriptors,
    /// socket buffers or memory. No fault of the backend's, and no
    /// other backend would fare better.
    #[error(
        "fpmlb cannot open a connection ({0}): its own limits (open files: LimitNOFILE, ulimit -n)"
    )]
    Local(std::io::Error),
}

/// The errors of a connect that say fpmlb itself is short (of file
/// descriptors, socket buffers, memory), not the backend. Not
/// EADDRNOTAVAIL: an address this host cannot reach from (`::1` with IPv6
/// off, nginx's "Cannot assign requested address") is the backend's
/// config, and local ports run out per destination, not for every backend.
const LOCAL_SHORTAGE: [i32; 4] = [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM];

/// Whether a failed connect says fpmlb itself is short (`LOCAL_SHORTAGE`):
/// no verdict on the backend, for requests and health checks alike.
pub fn is_local_shortage(e: &std::io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|code| LOCAL_SHORTAGE.contains(&code))
}

impl PoolError {
    /// A failed connect: [`PoolError::Local`] when the shortage is fpmlb's
    /// own (a client holding many files open can cause it), else
    /// [`PoolError::Connect`].
    fn connecting(e: std::io::Error) -> PoolError {
        if is_local_shortage(&e) {
            PoolError::Local(e)
        } else {
            PoolError::Connect(e)
        }
    }
}

#[derive(Debug)]
struct Idle {
    conn: Connection,
    since: Instant,
    /// When it was opened (it is recycled at [`RECYCLE_AFTER`]).
    born: Instant,
    /// The serving thread it was opened on, whose I/O driver it is
    /// registered with (`crate::runtime`).
    home: Option<usize>,
}

#[derive(Debug)]
struct Inner {
    endpoint: Endpoint,
    settings: PoolSettings,
    slots: Arc<Slots>,
    cap: Mutex<Cap>,
    /// `cap.owed > 0`, readable without the lock by every finishing exchange.
    owes_permits: AtomicBool,
    idle: Mutex<Vec<Idle>>,
    waiting: AtomicUsize,
    opened: AtomicU64,
    reused: AtomicU64,
    /// New connections whose request has waited past the patience with no
    /// answer (until twice that): while any does, connections that finish
    /// an exchange are closed.
    starving: AtomicUsize,
    /// New connections (being opened, or lent) whose request has had no
    /// answer yet: nothing shows that they hold a worker, so they are no
    /// evidence that the pool is full (see [`PooledConn::waiting_for_worker`]).
    unheard: AtomicUsize,
    /// Kept-alive connections closed to give their worker back.
    given_back: AtomicU64,
    /// Connections closed otherwise after holding a worker, or maybe
    /// holding one (a failed or abandoned exchange, a probe's own, one whose
    /// worker was not back in time): counted in [`Pool::freed`].
    closed: AtomicU64,
    /// Kept-alive connections closed at RECYCLE_AFTER.
    recycled: AtomicU64,
    /// The pool was seen to have fewer workers than connections.
    oversubscribed: AtomicBool,
    /// A question for a free worker is out ([`Pool::ask_for_free_worker`]).
    asking: AtomicBool,
    /// When a kept connection was last recycled ([`RECYCLE_GAP`]).
    last_recycle: Mutex<Option<Instant>>,
    /// See [`PoolFigures::worked_on`].
    worked_on: AtomicU64,
    /// A checked connection was found open when next taken, and how many
    /// were found closed (see [`CHECKS_CLOSED_LIMIT`]).
    ///
    /// [`CHECKS_CLOSED_LIMIT`]: readiness::CHECKS_CLOSED_LIMIT
    checked_open: AtomicBool,
    checked_closed: AtomicU64,
    /// Readiness checks are off: this php-fpm closes a connection after
    /// answering one.
    checks_off: AtomicBool,
    /// Until when (ms after `created`; 0: not) connections are held back
    /// until their script has ended ([`HOLD_BACK_FOR`]).
    hold_back_until: AtomicU64,
    created: Instant,
    /// Exchanges asked whether to check (see [`CHECK_EVERY`]).
    check_turn: AtomicU64,
}

/// The connection pool of one backend. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    pub fn new(endpoint: Endpoint, settings: PoolSettings) -> Pool {
        let max_conns = settings.max_conns;
        let slots = Slots::new(max_conns);
        Pool {
            inner: Arc::new(Inner {
                endpoint,
                settings,
                cap: Mutex::new(Cap {
                    reported: max_conns,
                    learned: None,
                    withheld: 0,
                    owed: 0,
                    withdrawn: Vec::new(),
                }),
                owes_permits: AtomicBool::new(false),
                slots,
                idle: Mutex::new(Vec::new()),
                waiting: AtomicUsize::new(0),
                opened: AtomicU64::new(0),
                reused: AtomicU64::new(0),
                starving: AtomicUsize::new(0),
                unheard: AtomicUsize::new(0),
                given_back: AtomicU64::new(0),
                closed: AtomicU64::new(0),
                recycled: AtomicU64::new(0),
                oversubscribed: AtomicBool::new(false),
                asking: AtomicBool::new(false),
                last_recycle: Mutex::new(None),
                worked_on: AtomicU64::new(0),
                checked_open: AtomicBool::new(false),
                checked_closed: AtomicU64::new(0),
                checks_off: AtomicBool::new(false),
                hold_back_until: AtomicU64::new(0),
                created: Instant::now(),
                check_turn: AtomicU64::new(0),
            }),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        match self.inner.idle.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A connection for one exchange: an idle one if a live one is kept,
    /// else a new one. `reused` on the result says which.
    pub async fn acquire(&self) -> Result<PooledConn, PoolError> {
        self.acquire_within(self.inner.settings.queue_timeout).await
    }

    /// As `acquire`, but always a new connection (after a kept-alive one
    /// died under a request).
    pub async fn acquire_fresh(&self) -> Result<PooledConn, PoolError> {
        self.acquire_with(self.inner.settings.queue_timeout, false)
            .await
    }

    /// A connection for one of fpmlb's own requests (health check, status
    /// poll, session probe), waiting at most `wait` for a slot: an idle one
    /// borrowed without making it younger, or a new one closed after use,
    /// so that checks never keep a php-fpm worker.
    pub async fn acquire_for_probe(&self, wait: Duration) -> Result<PooledConn, PoolError> {
        let mut conn = self.acquire_with(wait, true).await?;
        conn.probe = true;
        Ok(conn)
    }

    /// As `acquire`, waiting at most `wait` for a slot (health checks wait
    /// less than requests).
    pub async fn acquire_within(&self, wait: Duration) -> Result<PooledConn, PoolError> {
        self.acquire_with(wait, true).await
    }

    async fn acquire_with(&self, wait: Duration, reuse: bool) -> Result<PooledConn, PoolError> {
        let slot = match self.try_slot() {
            Some(slot) => slot,
            None => match tokio::time::timeout(wait, self.slot()).await {
                Ok(slot) => slot?,
                Err(_) => return Err(PoolError::QueueTimeout(wait)),
            },
        };
        slot.connect(reuse).await
    }

    /// A connection slot, if one is free now.
    pub fn try_slot(&self) -> Option<Slot> {
        let permit = self.inner.slots.try_acquire()?;
        Some(Slot {
            permit,
            pool: self.clone(),
        })
    }

    /// Waits for a connection slot, first come first served (but for a
    /// waiter on the thread that frees one, see `slots`), as one of at most
    /// `queue_size` waiters. Cancel-safe: dropping the future leaves
    /// the queue (the caller bounds the wait).
    pub async fn slot(&self) -> Result<Slot, PoolError> {
        let waiting = self.inner.waiting.fetch_add(1, Ordering::Relaxed);
        let _leave = WaitGuard(&self.inner.waiting);
        if waiting >= self.inner.settings.queue_size {
            return Err(PoolError::QueueFull { waiting });
        }
        match self.inner.slots.acquire().await {
            Ok(permit) => Ok(Slot {
                permit,
                pool: self.clone(),
            }),
            // The pool holds its slots while anyone waits; treat it as a
            // timeout anyway.
            Err(_) => Err(PoolError::QueueTimeout(Duration::ZERO)),
        }
    }

    /// The most recently used idle connection that is still open, not idle
    /// for too long and not to be recycled; the others taken on the way
    /// are closed. One opened on the asking thread comes first: its
    /// readiness then comes from that thread's own I/O driver, not from
    /// another thread woken for it (`crate::runtime`).
    fn take_idle(&self, now: Instant) -> Option<Idle> {
        let here = crate::runtime::current();
        loop {
            let mut idle = {
                let mut stack = self.idle();
                let at = match stack.iter().rposition(|i| i.home == here) {
                    Some(at) => at,
                    None => stack.len().checked_sub(1)?,
                };
                stack.remove(at)
            };
            if now.duration_since(idle.since) < self.inner.settings.idle_timeout
                && self.reusable(&mut idle.conn)
                && !self.recycle(idle.born, now)
            {
                return Some(idle);
            }
        }
    }

    /// An idle connection opened on another serving thread, moved to the
    /// one asking (`crate::runtime`): each of its reads would otherwise
    /// wake its own thread to pass the readiness on. `None` (closed) if it
    /// cannot be moved.
    fn on_this_thread(&self, idle: Idle) -> Option<Idle> {
        let here = crate::runtime::current();
        if here.is_none() || idle.home == here {
            return Some(idle);
        }
        match idle.conn.rehome() {
            Ok(conn) => Some(Idle {
                conn,
                home: here,
                ..idle
            }),
            Err(e) => {
                tracing::debug!(backend = %self.inner.endpoint, "a kept connection could not move to this thread: {e}");
                None
            }
        }
    }

    /// Connections closed so far (given back, recycled, or closed
    /// otherwise): each gave its php-fpm worker, if it had one, to whoever
    /// queued for one. Counted before the close, so that whoever reads
    /// this after the worker was freed sees it.
    fn freed(&self) -> u64 {
        self.inner.given_back.load(Ordering::Relaxed)
            + self.inner.recycled.load(Ordering::Relaxed)
            + self.inner.closed.load(Ordering::Relaxed)
    }

    /// Closes `conn` otherwise than by giving it back or recycling it.
    fn close(&self, conn: Connection) {
        self.inner.closed.fetch_add(1, Ordering::Relaxed);
        drop(conn);
    }

    /// Where the pool connects to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// Keeps a connection whose exchange ended cleanly, idle since
    /// `since`, unless its worker is to be given back.
    fn put_back(&self, conn: Connection, since: Instant, born: Instant, home: Option<usize>) {
        let now = Instant::now();
        if self.inner.starving.load(Ordering::Relaxed) > 0 {
            // Closing it frees its php-fpm worker for the connection that
            // waits in the listen queue. Not gated by RECYCLE_GAP: each
            // freed worker goes to the oldest connection queued, which in a
            // pool shared with another balancer is often theirs, so the
            // waiting one may need several; the wait, and so these closes,
            // end at twice the patience.
            self.inner.given_back.fetch_add(1, Ordering::Relaxed);
            drop(conn);
            return;
        }
        if self.recycle(born, now) {
            drop(conn);
            return;
        }
        let mut idle = self.idle();
        // Most recently used on top; a borrowed one that was idle for a
        // while goes back where its age puts it.
        let at = idle.partition_point(|i| i.since <= since);
        idle.insert(
            at,
            Idle {
                conn,
                since,
                born,
                home,
            },
        );
    }

    /// Closes idle connections unused for longer than the idle timeout or
    /// older than [`RECYCLE_AFTER`], so that php-fpm workers are not held by
    /// connections nobody needs; and lets a learned cap expire.
    pub fn close_idle(&self, now: Instant) -> usize {
        {
            let mut cap = self.cap();
            if cap.learned.is_some() {
                self.apply_cap(&mut cap, now);
            }
        }
        let limit = self.inner.settings.idle_timeout;
        let mut idle = self.idle();
        let before = idle.len();
        idle.retain(|i| !self.recycle(i.born, now) && now.duration_since(i.since) < limit);
        before - idle.len()
    }

    /// Closes every idle connection (backend removed, or shutting down).
    pub fn close_all_idle(&self) {
        self.idle().clear();
    }

    /// Kept-alive connections idle now (each holds a php-fpm worker).
    pub fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// Current figures for the status page and metrics.
    pub fn figures(&self) -> PoolFigures {
        let (withheld, learned) = {
            let cap = self.cap();
            let held = cap.held(Instant::now());
            (cap.withheld, held.map(|(learned, _)| learned))
        };
        let cap = self.inner.settings.max_conns - withheld;
        let idle = self.idle_count();
        let free = self.inner.slots.available_permits();
        PoolFigures {
            cap,
            in_use: cap.saturating_sub(free),
            idle,
            waiting: self.inner.waiting.load(Ordering::Relaxed),
            opened: self.inner.opened.load(Ordering::Relaxed),
            reused: self.inner.reused.load(Ordering::Relaxed),
            given_back: self.inner.given_back.load(Ordering::Relaxed),
            recycled: self.inner.recycled.load(Ordering::Relaxed),
            worked_on: self.inner.worked_on.load(Ordering::Relaxed),
            learned,
        }
    }
}

/// A snapshot of a pool's connections.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PoolFigures {
    /// Most connections it may open now.
    pub cap: usize,
    /// Connections carrying an exchange now (or being opened).
    pub in_use: usize,
    /// Kept-alive connections waiting for a request.
    pub idle: usize,
    /// Requests waiting for a connection slot.
    pub waiting: usize,
    /// Connections opened since start.
    pub opened: u64,
    /// Exchanges that reused a kept-alive connection.
    pub reused: u64,
    /// Kept-alive connections closed to free a php-fpm worker for a new
    /// connection waiting in the pool's listen queue.
    pub given_back: u64,
    /// Kept-alive connections closed at [`RECYCLE_AFTER`] of age (after
    /// their exchange, or idle), which gives their worker to whoever queued
    /// for one meanwhile; closes at the idle timeout are not counted.
    pub recycled: u64,
    /// Scripts seen working on after their whole response
    /// (`fastcgi_finish_request()`): requests that waited
    /// [`WORKER_PATIENCE`] or more for one, and connections held back
    /// `WORKED_ON` or more until one ended.
    pub worked_on: u64,
    /// The cap learnt from a new connection that waited for a php-fpm
    /// worker, while it holds ([`LEARNED_CAP_HOLD`]): the workers fpmlb
    /// was seen to have, others holding the rest (or `max_conns` above
    /// `pm.max_children`). `cap` comes down to it as connections in use
    /// finish.
    pub learned: Option<usize>,
}

struct WaitGuard<'a>(&'a AtomicUsize);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection slot of a pool, taken but not yet used: the right to open
/// (or reuse) one connection.
#[derive(Debug)]
pub struct Slot {
    permit: Permit,
    pool: Pool,
}

impl Slot {
    /// Turns the slot into a connection: a kept-alive one if `reuse` and a
    /// live one is idle, else a new one.
    pub async fn connect(self, reuse: bool) -> Result<PooledConn, PoolError> {
        let Slot { permit, pool } = self;
        let kept = if reuse {
            pool.take_idle(Instant::now())
                .and_then(|idle| pool.on_this_thread(idle))
        } else {
            None
        };
        if let Some(idle) = kept {
            pool.inner.reused.fetch_add(1, Ordering::Relaxed);
            return Ok(PooledConn {
                conn: Some(idle.conn),
                permit: Some(permit),
                pool,
                reused: true,
                unheard: None,
                starving: false,
                judged: None,
                born: idle.born,
                home: idle.home,
                idle_since: Some(idle.since),
                probe: false,
                ready_wait: READY_WAIT,
            });
        }
        // Counted from now: a connection being opened holds no worker yet.
        let unheard = Arc::new(Unheard::new(&pool));
        let conn = Connection::connect(&pool.inner.endpoint, pool.inner.settings.connect_timeout)
            .await
            .map_err(PoolError::connecting)?;
        pool.inner.opened.fetch_add(1, Ordering::Relaxed);
        if pool.shared() {
            pool.nudge_later(Arc::downgrade(&unheard));
        }
        Ok(PooledConn {
            conn: Some(conn),
            permit: Some(permit),
            pool,
            reused: false,
            unheard: Some(unheard),
            starving: false,
            judged: None,
            born: Instant::now(),
            home: crate::runtime::current(),
            idle_since: None,
            probe: false,
            ready_wait: READY_WAIT,
        })
    }
}

/// A connection lent for one exchange, with the permit that covers it.
#[derive(Debug)]
pub struct PooledConn {
    conn: Option<Connection>,
    /// Given back to the pool's slots on drop, or kept back when the cap
    /// was lowered meanwhile.
    permit: Option<Permit>,
    pool: Pool,
    /// Whether it was kept alive from an earlier exchange.
    pub reused: bool,
    /// A new connection not answered yet, counted in the pool's `unheard`
    /// (and watched by [`Pool::nudge_later`]).
    unheard: Option<Arc<Unheard>>,
    /// Counted in the pool's `starving`.
    starving: bool,
    /// Its request waited past the patience while others held workers.
    judged: Option<Judged>,
    /// When the connection was opened.
    born: Instant,
    /// The serving thread it was opened on.
    home: Option<usize>,
    /// When it went idle before this exchange (a reused connection).
    idle_since: Option<Instant>,
    /// Lent to one of fpmlb's own requests: given back as it was found
    /// (see [`Pool::acquire_for_probe`]).
    probe: bool,
    /// How long its worker may be busy after the response before the
    /// connection is closed (the exchange's read timeout).
    ready_wait: Duration,
}

impl PooledConn {
    pub fn conn(&mut self) -> Option<&mut Connection> {
        self.conn.as_mut()
    }

    /// Gives a connection whose exchange ended cleanly back to the pool,
    /// once its worker is back for the next request: php-fpm sends
    /// END_REQUEST at `fastcgi_finish_request()` and its worker runs the
    /// script on, so a connection whose readiness check is not answered yet
    /// keeps its slot, on a task of its own, until the answer comes (or is
    /// closed after `ready_wait`).
    pub fn release(mut self) {
        self.answered();
        self.unheard = None;
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.probe && self.idle_since.is_none() {
            // A probe's new connection: closed, it holds a worker nobody
            // asked for.
            self.pool.close(conn);
            return;
        }
        if conn.checks_pending() == 0 || !self.pool.holds_back() {
            // Lent again at once: the check's answer comes with the next
            // exchange (see `Pool::reusable`).
            self.keep(conn);
            return;
        }
        conn.ack_now();
        match conn.check_ready_now() {
            Readiness::Ready => self.keep(conn),
            Readiness::Broken => self.pool.close(conn),
            Readiness::Busy => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    self.pool.close(conn);
                    return;
                };
                runtime.spawn(async move {
                    let since = Instant::now();
                    let wait = self.ready_wait;
                    match tokio::time::timeout(wait, conn.await_ready()).await {
                        Ok(Readiness::Ready) => {
                            let waited = since.elapsed();
                            if waited >= WORKED_ON {
                                self.pool.hold_back(waited, Instant::now());
                            }
                            self.keep(conn);
                        }
                        Ok(_) => self.pool.close(conn),
                        Err(_) => {
                            tracing::info!(
                                backend = %self.pool.inner.endpoint,
                                "a script worked on for {wait:?} after its whole response \
                                 (fastcgi_finish_request()); its connection was closed"
                            );
                            self.pool.close(conn);
                        }
                    }
                });
            }
        }
    }

    /// Keeps a connection whose worker is back for the next request.
    fn keep(&self, conn: Connection) {
        match (self.probe, self.idle_since) {
            // A probe's new connection: closed, it holds a worker nobody
            // asked for.
            (true, None) => self.pool.close(conn),
            // A probe's borrowed connection: as idle as before.
            (true, Some(since)) => self.pool.put_back(conn, since, self.born, self.home),
            (false, _) => self
                .pool
                .put_back(conn, Instant::now(), self.born, self.home),
        }
    }
}

/// One of the pool's `unheard` connections, counted until dropped.
#[derive(Debug)]
struct Unheard(Arc<Inner>);

impl Unheard {
    fn new(pool: &Pool) -> Self {
        pool.inner.unheard.fetch_add(1, Ordering::Relaxed);
        Unheard(Arc::clone(&pool.inner))
    }
}

impl Drop for Unheard {
    fn drop(&mut self) {
        self.0.unheard.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        // Dropped before its answer (its client gone, the exchange failed):
        // nothing showed that it waited for a worker, as when its wait is
        // over, and the cap lowered at a judgement is given back before
        // its permit is (kept back only if a cap still owes it).
        self.wait_over();
        if let Some(conn) = self.conn.take() {
            self.pool.close(conn);
        }
        if let Some(permit) = self.permit.take()
            && self.pool.keep_back_permit()
        {
            permit.forget();
        }
    }
}

#[cfg(test)]
mod tests;
