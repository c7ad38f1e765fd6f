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
//! A script that sends its whole response with `fastcgi_finish_request()`
//! and works on (php-src#10335) keeps its worker after END_REQUEST. One
//! exchange in [`CHECK_EVERY`] sends a readiness check behind its request,
//! which php-fpm answers once the script has ended; the next exchange on
//! the connection reads the answer, and when its request waited
//! [`WORKER_PATIENCE`] or more for it, the pool holds back for
//! [`HOLD_BACK_FOR`]: every exchange is checked, and `release` keeps a
//! connection whose answer has not come, with its permit, on a task of its
//! own until it comes (see `fastcgi::conn::Readiness`).
//!
//! When the cap is above the pool's real size (no `max_conns` and no status
//! page: the default of 8 over a pool of 4 workers), a new connection lands
//! in php-fpm's listen queue, and its request waits there until a worker
//! frees. With kept-alive connections no worker ever frees: each serves its
//! one connection until that closes. So a new connection that gets no answer
//! within [`WORKER_PATIENCE`] makes the pool give workers back (its idle
//! connections are closed at once, and connections that finish an exchange
//! are closed rather than kept) and lower its cap to the connections that
//! were being served (answered or kept: a new connection not answered yet
//! shows no worker, and at start-up every first page may be slow), so the
//! next requests wait in fpmlb's queue, first come
//! first served, rather than in php-fpm's listen queue; until the waiting
//! one is answered or has waited that long again. If that answer comes
//! soon after a worker was given back (within the patience), the connection
//! had waited for one, and the lower cap holds for [`LEARNED_CAP_HOLD`] (a
//! dynamic pool may have spawned workers since; a further wait meanwhile
//! lowers it by one at most, and only at that cap). A script slower than
//! the patience looks the same until its answer comes late, with no worker
//! given back, or not by twice the patience: it had a worker all along, and
//! the cap is given back at once (kept, a cap learnt from slow pages would
//! fall by one with each, and queue the site behind them). Under load some
//! worker is given back within any patience, so the timing alone would
//! take every page between one and two patiences for a wait: at the
//! judgement fpmlb also asks php-fpm on a connection of its own whether a
//! worker is free (see [`Pool::ask_for_free_worker`]); answered before the
//! judged connection, with at most one worker given back, it shows one was,
//! and the cap is given back at once.
//!
//! Sharing a pool with others (a second fpmlb of an HA pair, nginx,
//! HAProxy, a cron job over cgi-fcgi): php-fpm hands a freed worker to the
//! oldest connection in its listen queue, so a worker comes round only when
//! some connection closes. Three rules keep fpmlb's connections from
//! pinning workers others wait for:
//! - the most recently used idle connection is reused first (LIFO), so the
//!   ones a lull made surplus age out after `timeouts.idle`;
//! - a kept connection is closed once it is [`RECYCLE_AFTER`] old (after
//!   its exchange, or by the idle sweep), one of the pool's at most every
//!   [`RECYCLE_GAP`], so workers fpmlb holds are given back that often
//!   even under full load: a connection another client queued in the
//!   meantime gets one, and fpmlb's replacement queues behind it (and, if
//!   it waits, makes this pool learn its share as above); and in a pool
//!   that learnt a share, a new connection with no answer after
//!   [`SHARED_NUDGE`] has the least recently used idle connection closed
//!   for it (within the same [`RECYCLE_GAP`]), rather than waiting the
//!   whole patience while fpmlb holds a worker it could have;
//! - fpmlb's own requests (health checks, status polls, session probes)
//!   never keep a worker: they borrow an idle connection without making it
//!   younger, or open one and close it after use.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::slots::{Permit, Slots};
use tokio::time::Instant;

use crate::fastcgi::conn::{Connection, Endpoint, Readiness};

/// How long a request on a new connection waits for its first response
/// byte, at least, before the pool suspects it waits for a php-fpm worker
/// (see the module comment). Far above an idle pool's accept (well under
/// 1 ms on a LAN) and below a page a user would call slow.
pub const WORKER_PATIENCE: Duration = Duration::from_millis(100);

/// The most a pool of slow pages waits before suspecting the same.
pub const WORKER_PATIENCE_MAX: Duration = Duration::from_secs(2);

/// The patience for a pool whose answers usually (90 in 100) come within
/// `typical`: four times that, within [`WORKER_PATIENCE`] and
/// [`WORKER_PATIENCE_MAX`]. A page that is merely slow then rarely passes
/// for one waiting for a worker, which would lower the cap of a pool that
/// has workers to spare.
pub fn worker_patience(typical: Option<Duration>) -> Duration {
    typical
        .map_or(WORKER_PATIENCE, |t| t.saturating_mul(4))
        .clamp(WORKER_PATIENCE, WORKER_PATIENCE_MAX)
}

/// How long a kept connection lives before it is closed after its exchange
/// (see the module comment): the longest a client queued behind fpmlb's
/// connections waits for a worker of a pool fpmlb keeps busy. A reconnect
/// costs a TCP handshake (tens of microseconds on a LAN), so recycling
/// every connection four times a second costs nothing measurable.
pub const RECYCLE_AFTER: Duration = Duration::from_millis(250);

/// Whether a connection opened at `born` is [`RECYCLE_AFTER`] old at `now`.
fn due_for_recycling(born: Instant, now: Instant) -> bool {
    now.duration_since(born) >= RECYCLE_AFTER
}

/// The least time between two kept connections of a pool recycled: at
/// most 50 a second, whatever the pool's size. Each connection fpmlb closes leaves
/// a TIME_WAIT socket on its side for 60 s, which holds a local port for
/// that backend's address (Linux reuses them only on loopback), and the
/// 28,000 ports of Linux's default range last 470 new connections a second
/// to one backend: a pool of 128 connections, each recycled four times a
/// second, would run out. Any one recycle gives a worker to whoever queued
/// for one, so for someone waiting this bounds the wait as well as
/// recycling every connection does. (A unix socket leaves no TIME_WAIT, but
/// the same bound keeps reconnects cheap there too.)
pub const RECYCLE_GAP: Duration = Duration::from_millis(20);

/// How long a new connection of a pool that holds a learnt cap (one that
/// shares its workers with others: an HA partner, nginx, HAProxy) waits
/// for its first answer before the pool closes one of its idle
/// connections for it. A kept connection recycled (see [`RECYCLE_AFTER`])
/// gives its worker to whoever queued first, often the other balancer;
/// its replacement then waits in php-fpm's queue while fpmlb may hold an
/// idle connection whose worker would serve it, until the patience
/// ([`WORKER_PATIENCE`]) closes it. Ten times an idle pool's answer to a
/// hello page on this side of the patience; at most one such close per
/// [`RECYCLE_GAP`], shared with recycling (each leaves a TIME_WAIT).
pub const SHARED_NUDGE: Duration = Duration::from_millis(10);

/// How long a cap learned from a connection that waited for a worker holds
/// before the pool tries its full cap again: a pool that grew (pm = dynamic
/// spawns workers under load) gets its connections back, and one that did
/// not costs one more wait of [`WORKER_PATIENCE`] per period.
pub const LEARNED_CAP_HOLD: Duration = Duration::from_secs(30);

/// How long a worker that sent its whole response (END_REQUEST) may still
/// be busy before its connection is closed, when the exchange named no
/// read timeout of its own (see [`PooledConn::check_ready`]).
const READY_WAIT: Duration = Duration::from_secs(60);

/// A worker busy this long past its response is counted
/// ([`PoolFigures::worked_on`]): a script that works on after
/// `fastcgi_finish_request()`, not the microseconds between php-fpm's
/// END_REQUEST and its answer to the readiness check.
const WORKED_ON: Duration = Duration::from_millis(50);

/// One request in this many carries a readiness check while the pool does
/// not hold connections back: each check is an extra small segment from
/// php-fpm, which its Nagle holds until fpmlb's ACK (a read, a wake-up and
/// a quick ACK more per request: a quarter of hello.php's rate when every
/// request carries one). A script that works on is seen within this many
/// of its requests.
pub const CHECK_EVERY: u64 = 16;

/// How long a pool holds each connection back until its script has ended
/// (see [`PooledConn::release`]) after a request was seen to wait for one
/// that worked on after its response.
pub const HOLD_BACK_FOR: Duration = Duration::from_secs(600);

/// Connections whose readiness check was answered and which were then found
/// closed, with none ever found open, before the pool stops checking: a
/// php-fpm that closes a connection after answering GET_VALUES (as older
/// versions' source reads) would otherwise never keep one.
const CHECKS_CLOSED_LIMIT: u64 = 8;

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

/// How many of the configured connection slots may be used now, and why.
#[derive(Debug)]
struct Cap {
    /// The cap php-fpm's status page gave (or the default), within the
    /// configured maximum.
    reported: usize,
    /// A lower cap learned from a connection that waited for a worker, and
    /// when.
    learned: Option<(usize, Instant)>,
    /// Permits taken out of `slots` to lower the cap below the configured one.
    withheld: usize,
    /// Permits still to take out as connections finish (they were in use
    /// when the cap was lowered).
    owed: usize,
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

    fn cap(&self) -> MutexGuard<'_, Cap> {
        match self.inner.cap.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Brings the free permits in line with the cap in force at `now`: the
    /// reported one, or a learned one still held. Permits in use cannot be
    /// taken back; they are owed and kept as their connections finish.
    fn apply_cap(&self, cap: &mut Cap, now: Instant) {
        let configured = self.inner.settings.max_conns;
        if cap
            .learned
            .is_some_and(|(_, at)| now.duration_since(at) >= LEARNED_CAP_HOLD)
        {
            cap.learned = None;
        }
        let want = configured - self.in_force(cap);
        if want > cap.withheld {
            let taken = self.inner.slots.forget_permits(want - cap.withheld);
            cap.withheld += taken;
        } else if want < cap.withheld {
            self.inner.slots.add_permits(cap.withheld - want);
            cap.withheld = want;
        }
        cap.owed = want - cap.withheld;
        self.inner
            .owes_permits
            .store(cap.owed > 0, Ordering::Relaxed);
    }

    /// The cap in force: the reported one, or a learned one below it, within
    /// the configured maximum.
    fn in_force(&self, cap: &Cap) -> usize {
        cap.learned
            .map_or(cap.reported, |(learned, _)| learned.min(cap.reported))
            .clamp(1, self.inner.settings.max_conns)
    }

    /// Whether the permit of a finishing connection is kept back (the cap
    /// was lowered while it was in use).
    fn keep_back_permit(&self) -> bool {
        if !self.inner.owes_permits.load(Ordering::Relaxed) {
            return false;
        }
        let mut cap = self.cap();
        if cap.owed == 0 {
            return false;
        }
        cap.owed -= 1;
        cap.withheld += 1;
        self.inner
            .owes_permits
            .store(cap.owed > 0, Ordering::Relaxed);
        true
    }

    /// Lowers the cap to `workers` for [`LEARNED_CAP_HOLD`]: that many
    /// connections were served while another waited for a worker (fewer
    /// than the cap in force, under which it waited). Below a
    /// cap learnt earlier and still held, only by one, and only when the
    /// waiting connection was opened at that cap (`at_cap`): a pool kept
    /// under its learnt cap shows nothing new of its workers, and a slow
    /// page taken for a wait must not lower it further each time. The cap
    /// in force afterwards.
    fn learn_cap(&self, workers: usize, at_cap: bool, now: Instant) -> Learnt {
        let mut cap = self.cap();
        self.apply_cap(&mut cap, now);
        // A connection waited under the cap in force: fewer workers than
        // that. (The count can come out higher: a finishing connection is
        // idle a moment before its permit is back, and other threads lend
        // and release meanwhile. Kept, such a cap would change nothing and
        // block learning for its hold, each new connection waiting.)
        let workers = workers.min(self.in_force(&cap).saturating_sub(1)).max(1);
        let before = cap.learned;
        let learned = match cap.learned {
            None => Some(workers),
            Some((held, _)) if at_cap => Some(workers.max(held.saturating_sub(1)).min(held)),
            Some(_) => None,
        };
        let set = learned.map(|learned| (learned, now));
        if set.is_some() {
            cap.learned = set;
            self.apply_cap(&mut cap, now);
        }
        Learnt {
            before,
            set,
            cap: self.inner.settings.max_conns - cap.withheld - cap.owed,
        }
    }

    /// Takes back what `learnt` set, if nothing was learnt since: the wait
    /// it was learnt from turned out to be a slow script's.
    fn unlearn(&self, learnt: Learnt) {
        let Some(set) = learnt.set else { return };
        let mut cap = self.cap();
        if cap.learned == Some(set) {
            cap.learned = learnt.before;
            self.apply_cap(&mut cap, Instant::now());
        }
    }

    /// Asks php-fpm, on a connection of fpmlb's own, whether a worker is
    /// free, right after a new connection was judged to wait for one and
    /// the cap was lowered to `learnt` ([`PooledConn::waiting_for_worker`]);
    /// `freed` is [`Pool::freed`] before the judgement gave any worker back.
    ///
    /// The timing alone cannot tell a connection queued in php-fpm's listen
    /// queue from a page slower than the patience: both are answered within
    /// the patience after the judgement if a worker was given back
    /// meanwhile, and under load one always is. The question queues behind
    /// the judged connection, and php-fpm's workers accept in order: if it
    /// is answered first while fpmlb gave back at most one worker (the one
    /// a queued judged connection would have taken first), a worker was free
    /// that the judged connection did not need. It had one: a slow page, and
    /// the cap is given back at once. (With others' connections in the
    /// queue, workers they free count too, unseen: in a pool that learnt a
    /// share before, only an answer with no worker given back by fpmlb
    /// counts; in one not known to be shared, a wait may be taken for a
    /// slow page at worst, and the next new connection that waits is judged
    /// again.) The question is dropped once the judged connection is
    /// answered, dropped, or has waited one more patience (when it stops
    /// counting as waiting); one is out at a time per pool (pages that are
    /// all slow make one judgement after another), and a judgement
    /// meanwhile is told by its timing alone.
    fn ask_for_free_worker(
        &self,
        learnt: Learnt,
        freed: u64,
        patience: Duration,
    ) -> Option<Arc<Race>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        if self.inner.asking.swap(true, Ordering::AcqRel) {
            return None;
        }
        let race = Arc::new(Race::default());
        let asking = Asking(self.clone());
        let asked = Arc::clone(&race);
        runtime.spawn(async move {
            let pool = &asking.0;
            let inner = &pool.inner;
            let question = crate::fastcgi::question::worker_answers(
                &inner.endpoint,
                inner.settings.connect_timeout.min(patience),
            );
            // Of use until the judged connection is answered, or for the
            // patience it is still counted as waiting.
            let answered = tokio::select! {
                answered = tokio::time::timeout(patience, question) => matches!(answered, Ok(true)),
                () = asked.settled.notified() => false,
            };
            // In a pool known to be shared (a cap learnt before), workers
            // others free reach php-fpm's queue too, unseen: only an answer
            // with none given back by fpmlb counts there.
            let given_back = pool.freed().saturating_sub(freed);
            let free_seen = given_back == 0 || (given_back == 1 && learnt.before.is_none());
            if answered && free_seen && asked.asked_answered() {
                pool.unlearn(learnt);
                tracing::debug!(
                    backend = %inner.endpoint,
                    "a new connection unanswered past the patience runs a slow page: \
                     a worker was free for fpmlb's question behind it"
                );
            }
        });
        Some(race)
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

    /// Whether a connection opened at `born` is recycled at `now`: it is
    /// [`RECYCLE_AFTER`] old, and the pool recycled none in the last
    /// [`RECYCLE_GAP`] (else it is kept, and recycled later). Counted.
    fn recycle(&self, born: Instant, now: Instant) -> bool {
        if !due_for_recycling(born, now) || !self.turn_to_close(now) {
            return false;
        }
        self.inner.recycled.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Whether a kept connection may be closed at `now` to free its worker
    /// (recycled, or given back by [`Pool::nudge`]): the pool closed none
    /// that way in the last [`RECYCLE_GAP`]. Taken if so.
    fn turn_to_close(&self, now: Instant) -> bool {
        let mut last = match self.inner.last_recycle.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if last.is_some_and(|at| now.saturating_duration_since(at) < RECYCLE_GAP) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Whether the pool holds a learnt cap: others use its workers.
    fn shared(&self) -> bool {
        self.cap().learned.is_some()
    }

    /// After [`SHARED_NUDGE`], if the new connection `waiting` stands for
    /// has had no answer yet, closes the pool's least recently used idle
    /// connection: its worker goes to the oldest connection in php-fpm's
    /// queue, most likely that one.
    fn nudge_later(&self, waiting: std::sync::Weak<Unheard>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep(SHARED_NUDGE).await;
            if waiting.strong_count() > 0 {
                pool.nudge(Instant::now());
            }
        });
    }

    /// Closes the least recently used idle connection, if the pool may
    /// close one now (see [`Pool::turn_to_close`]).
    fn nudge(&self, now: Instant) {
        let closed = {
            let mut idle = self.idle();
            if idle.is_empty() || !self.turn_to_close(now) {
                return;
            }
            idle.remove(0)
        };
        self.inner.given_back.fetch_add(1, Ordering::Relaxed);
        drop(closed);
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

    /// Whether an idle connection is still open and clean (see
    /// [`Connection::is_reusable`]). A connection whose readiness check was
    /// answered is counted either way: when none of them is ever found
    /// open, php-fpm closes connections after answering the check, and the
    /// pool stops sending it (see [`CHECKS_CLOSED_LIMIT`]).
    ///
    /// A connection whose check is not answered yet is lent again: its
    /// worker is most likely ending the script it ran (microseconds), and
    /// the answer, read by the next exchange, tells how long that request
    /// waited for it (see [`PooledConn::waited_for_script`]).
    fn reusable(&self, conn: &mut Connection) -> bool {
        let reusable = match conn.check_ready_now() {
            Readiness::Ready => conn.is_reusable(),
            Readiness::Busy => true,
            Readiness::Broken => false,
        };
        if conn.was_checked() {
            if reusable {
                // Stored once: every reuse would write the shared line.
                if !self.inner.checked_open.load(Ordering::Relaxed) {
                    self.inner.checked_open.store(true, Ordering::Relaxed);
                }
            } else {
                self.closed_after_check();
            }
        }
        reusable
    }

    /// A connection was found closed after php-fpm answered its readiness
    /// check: after [`CHECKS_CLOSED_LIMIT`] of them, with none ever found
    /// open, checks are off.
    fn closed_after_check(&self) {
        let inner = &self.inner;
        if inner.checks_off.load(Ordering::Relaxed) {
            return;
        }
        if inner.checked_closed.fetch_add(1, Ordering::Relaxed) + 1 >= CHECKS_CLOSED_LIMIT
            && !inner.checked_open.load(Ordering::Relaxed)
            && !inner.checks_off.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                backend = %inner.endpoint,
                "php-fpm closed {CHECKS_CLOSED_LIMIT} kept connections after answering \
                 their readiness check (FCGI_GET_VALUES) and kept none: checks are off for \
                 this pool, and a connection whose script works on after \
                 fastcgi_finish_request() may be lent again before it ends"
            );
        }
    }

    /// Whether connections are held back until their script has ended.
    /// Reads the clock only when it has held back once.
    fn holds_back(&self) -> bool {
        let until = self.inner.hold_back_until.load(Ordering::Relaxed);
        until != 0 && Instant::now() < self.inner.created + Duration::from_millis(until)
    }

    /// A request waited `waited` for a worker still running the script
    /// before it, which had sent its whole response and worked on
    /// (`fastcgi_finish_request()`): from now on, for [`HOLD_BACK_FOR`],
    /// each connection goes back to the pool only once its script has
    /// ended. Said once each time it starts.
    fn hold_back(&self, waited: Duration, now: Instant) {
        let inner = &self.inner;
        inner.worked_on.fetch_add(1, Ordering::Relaxed);
        let until = now.saturating_duration_since(inner.created) + HOLD_BACK_FOR;
        let until = u64::try_from(until.as_millis()).unwrap_or(u64::MAX).max(1);
        let was = inner.hold_back_until.swap(until, Ordering::Relaxed);
        if was == 0 || now >= inner.created + Duration::from_millis(was) {
            tracing::warn!(
                backend = %inner.endpoint,
                "a request waited {waited:?} for a php-fpm worker still running the script \
                 before it, which had sent its whole response and worked on \
                 (fastcgi_finish_request(): Symfony's kernel.terminate, Laravel's terminable \
                 middleware): for {HOLD_BACK_FOR:?}, this pool's connections go back to it \
                 only once their script has ended"
            );
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

    /// Lowers or raises the cap, within the configured maximum (used when the
    /// pool reports a smaller `max children` than configured).
    pub fn set_cap(&self, cap: usize) {
        let mut state = self.cap();
        state.reported = cap.clamp(1, self.inner.settings.max_conns);
        self.apply_cap(&mut state, Instant::now());
    }

    /// Kept-alive connections idle now (each holds a php-fpm worker).
    pub fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// Current figures for the status page and metrics.
    pub fn figures(&self) -> PoolFigures {
        let withheld = self.cap().withheld;
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
    /// [`WORKED_ON`] or more until one ended.
    pub worked_on: u64,
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
            .map_err(PoolError::Connect)?;
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

    /// Whether its exchange sends a readiness check behind the request (see
    /// [`Connection::check_ready_now`]): every exchange while the pool holds
    /// connections back, one in [`CHECK_EVERY`] otherwise, none when this
    /// pool's php-fpm was seen to close connections after one. The check's
    /// answer may take `read_timeout`.
    pub fn check_ready(&mut self, read_timeout: Duration) -> bool {
        self.ready_wait = read_timeout;
        let inner = &self.pool.inner;
        if inner.checks_off.load(Ordering::Relaxed) {
            return false;
        }
        self.pool.holds_back()
            || inner
                .check_turn
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(CHECK_EVERY)
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

    /// The request on this connection waited `waited` for the script run on
    /// it before (see [`LentConn::waited_for_script`]): past
    /// [`WORKER_PATIENCE`] (100 ms: a worker ends a script in microseconds,
    /// and one merely slow to be scheduled on a loaded machine is not taken
    /// for one that works on; the pool's usual latency is no measure, since
    /// these waits are part of it), the pool holds connections back from
    /// now on.
    ///
    /// [`LentConn::waited_for_script`]: crate::fastcgi::exchange::LentConn::waited_for_script
    pub fn waited_for_script(&self, waited: Duration) {
        if waited >= WORKER_PATIENCE {
            self.pool.hold_back(waited, Instant::now());
        }
    }

    /// php-fpm closed this connection right after answering its check.
    pub fn closed_after_check(&self) {
        self.pool.closed_after_check();
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

    /// Whether its first answer is watched ([`PooledConn::waiting_for_worker`]):
    /// only a new connection can wait for a worker (a kept one has its own).
    pub fn watch_for_worker(&self) -> bool {
        !self.reused
    }

    /// Its request got no answer within `patience` (see
    /// [`worker_patience`]): it may wait in php-fpm's listen queue while
    /// every worker holds a kept-alive connection, or run a slow script.
    /// The pool closes its idle connections and keeps none until this one
    /// is answered, which frees a worker if it waits for one, and lowers
    /// its cap meanwhile; whether it waited is told by when its answer
    /// comes ([`PooledConn::first_answer`], [`PooledConn::wait_over`]).
    pub fn waiting_for_worker(&mut self, patience: Duration) {
        if self.starving || self.reused {
            return;
        }
        self.starving = true;
        let inner = &self.pool.inner;
        inner.starving.fetch_add(1, Ordering::Relaxed);
        // None of this pool's other connections holds a worker (none in
        // use and answered, none idle): no evidence that the pool is full.
        // A script slower than the patience on a quiet pool looks exactly
        // like this, and so do slow first pages on connections all opened
        // at once (start-up: PHP connecting to the session store, opcache
        // compiling). The connection waits for its answer; nothing is
        // learnt. (This one is unheard too, as is any that starves.)
        let figures = self.pool.figures();
        let busy = figures
            .in_use
            .saturating_sub(inner.unheard.load(Ordering::Relaxed));
        // At the cap: the connections fpmlb holds (lent or idle; an idle
        // one holds no permit but does hold a worker) fill it.
        let at_cap = figures.in_use + figures.idle >= figures.cap;
        let freed = self.pool.freed();
        let now = Instant::now();
        let closed = {
            let mut idle = self.pool.idle();
            if busy + idle.len() == 0 {
                return;
            }
            // Their workers given back at once (not gated, as in put_back).
            let n = idle.len();
            idle.clear();
            n
        };
        inner.given_back.fetch_add(closed as u64, Ordering::Relaxed);
        // Lowered now, so that the next requests wait in fpmlb's queue while
        // this one waits; taken back if its answer shows a slow script.
        let learnt = self.pool.learn_cap(busy + closed, at_cap, now);
        let race = learnt
            .set
            .and_then(|_| self.pool.ask_for_free_worker(learnt, freed, patience));
        self.judged = Some(Judged {
            at: now,
            patience,
            learnt,
            freed,
            race,
        });
    }

    /// The first answer arrived. If it came within the patience after the
    /// judgement ([`PooledConn::waiting_for_worker`]), and the pool gave a
    /// worker back meanwhile, it had waited for one: the cap lowered at the
    /// judgement stays, for [`LEARNED_CAP_HOLD`], so that the next requests
    /// wait in fpmlb's queue rather than in php-fpm's listen queue. An
    /// answer with no worker given back, or later than that, is a slow
    /// script's, which had a worker all along: the lowering is taken back
    /// (kept, it would queue the site's other requests behind one slow
    /// page, and each further slow page would lower it again). The cap
    /// now, the first time a pool keeps one this way (for one warning).
    pub fn first_answer(&mut self) -> Option<usize> {
        self.answered();
        self.unheard = None;
        let judged = self.judged.take()?;
        let now = Instant::now();
        let asked_first = judged.race.as_ref().is_some_and(|r| !r.judged_answered());
        if asked_first
            || now.duration_since(judged.at) > judged.patience
            || self.pool.freed() == judged.freed
        {
            self.pool.unlearn(judged.learnt);
            return None;
        }
        (!self.pool.inner.oversubscribed.swap(true, Ordering::Relaxed)).then_some(judged.learnt.cap)
    }

    /// No answer by twice the patience: not waiting for a worker, most
    /// likely (one given back would have reached it, unless others queued
    /// before it). It stops counting as waiting, and the cap lowered at its
    /// judgement is taken back.
    pub fn wait_over(&mut self) {
        self.answered();
        if let Some(judged) = self.judged.take() {
            if let Some(race) = &judged.race {
                race.judged_answered();
            }
            self.pool.unlearn(judged.learnt);
        }
    }

    /// No longer counted as waiting for a worker: the first answer arrived,
    /// the exchange ended, or the wait outlasted the time a worker given
    /// back takes to reach a connection that waits for one (the pool then
    /// stops closing finished connections for it: each close leaves a
    /// TIME_WAIT socket on fpmlb's side, a local port for 60 s).
    pub fn answered(&mut self) {
        if std::mem::take(&mut self.starving) {
            self.pool.inner.starving.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What [`Pool::learn_cap`] did: the learnt cap before, the one it set (if
/// any), and the cap in force after.
#[derive(Debug, Clone, Copy)]
struct Learnt {
    before: Option<(usize, Instant)>,
    set: Option<(usize, Instant)>,
    cap: usize,
}

/// A new connection's request went unanswered past the patience, while
/// other connections of the pool held workers (see
/// [`PooledConn::waiting_for_worker`]).
#[derive(Debug)]
struct Judged {
    at: Instant,
    patience: Duration,
    /// The cap lowered at the judgement, to take back if it was wrong.
    learnt: Learnt,
    /// The pool's [`Pool::freed`] before its idle connections were closed.
    freed: u64,
    /// Whether it or a connection that asks for a free worker after it was
    /// answered first (see [`Pool::ask_for_free_worker`]).
    race: Option<Arc<Race>>,
}

/// The pool's one question for a free worker, out until dropped.
struct Asking(Pool);

impl Drop for Asking {
    fn drop(&mut self) {
        self.0.inner.asking.store(false, Ordering::Release);
    }
}

/// Who of a judged connection and the connection that asks php-fpm for a
/// free worker behind it was answered first.
#[derive(Debug, Default)]
struct Race {
    state: AtomicU8,
    /// Woken when the judged connection's side is settled (answered, its
    /// wait over, or dropped): the question is then of no use.
    settled: tokio::sync::Notify,
}

impl Race {
    const OPEN: u8 = 0;
    const JUDGED_FIRST: u8 = 1;
    const ASKED_FIRST: u8 = 2;

    /// The judged connection was answered, or its wait is over: whether
    /// before the question.
    fn judged_answered(&self) -> bool {
        self.settled.notify_one();
        self.state
            .compare_exchange(
                Self::OPEN,
                Self::JUDGED_FIRST,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map_or_else(|was| was == Self::JUDGED_FIRST, |_| true)
    }

    /// The question was answered, showing a worker free: whether before
    /// the judged connection.
    fn asked_answered(&self) -> bool {
        self.state
            .compare_exchange(
                Self::OPEN,
                Self::ASKED_FIRST,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
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
        self.answered();
        if let Some(race) = self.judged.take().and_then(|j| j.race) {
            race.judged_answered();
        }
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
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    fn settings(max_conns: usize, queue_size: usize) -> PoolSettings {
        PoolSettings {
            max_conns,
            queue_size,
            connect_timeout: Duration::from_secs(1),
            queue_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(5),
        }
    }

    /// An idle timeout shorter than [`RECYCLE_AFTER`], so that the tests of
    /// idle order are not overtaken by recycling.
    fn short_idle(max_conns: usize) -> PoolSettings {
        PoolSettings {
            idle_timeout: Duration::from_millis(100),
            ..settings(max_conns, 10)
        }
    }

    /// Accepts every connection and keeps it open (a php-fpm worker per
    /// connection), until the returned task is aborted.
    fn keep_accepting(l: TcpListener) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                kept.push(s);
            }
        })
    }

    /// A pool of `settings` over a listener that accepts every connection
    /// and keeps it open ([`keep_accepting`]), with the accepting task.
    async fn pool_accepting(settings: PoolSettings) -> (Pool, tokio::task::JoinHandle<()>) {
        let (l, ep) = listener().await;
        let accept = keep_accepting(l);
        (Pool::new(ep, settings), accept)
    }

    /// Whether the pool's question for a free worker is out.
    fn asking(pool: &Pool) -> bool {
        pool.inner.asking.load(Ordering::Acquire)
    }

    async fn listener() -> (TcpListener, Endpoint) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        (l, Endpoint::Tcp(addr))
    }

    #[tokio::test]
    async fn reuses_released_connections_and_caps_open_ones() {
        let (pool, accept) = pool_accepting(settings(2, 10)).await;
        let a = pool.acquire().await.unwrap();
        let b = pool.acquire().await.unwrap();
        assert!(!a.reused && !b.reused);
        // At the cap: the third waits and times out.
        assert!(matches!(
            pool.acquire().await,
            Err(PoolError::QueueTimeout(_))
        ));
        a.release();
        let c = pool.acquire().await.unwrap();
        assert!(c.reused);
        assert_eq!(pool.figures().opened, 2);
        drop(b); // closed, not kept
        drop(c);
        assert_eq!(pool.figures().idle, 0);
        accept.abort();
    }

    /// php-fpm's answer to the readiness check (GET_VALUES_RESULT).
    const CHECK_ANSWER: &[u8] =
        b"\x01\x0a\x00\x00\x00\x12\x06\x00\x0f\x01FCGI_MPXS_CONNS0\0\0\0\0\0\0";

    /// Once a request was seen to wait for a script working on after its
    /// response, a connection whose readiness check is not answered yet
    /// keeps its slot, on a task of its own, and is kept for reuse once the
    /// answer comes.
    #[tokio::test]
    async fn a_connection_is_held_back_until_its_worker_answers_the_check() {
        use tokio::io::AsyncWriteExt;
        let (l, ep) = listener().await;
        let pool = Pool::new(ep, settings(1, 10));
        assert!(!pool.holds_back());
        pool.hold_back(WORKED_ON, Instant::now());
        assert!(pool.holds_back());
        let mut conn = pool.acquire().await.unwrap();
        let (mut worker, _) = l.accept().await.unwrap();
        assert!(conn.check_ready(Duration::from_secs(5)));
        conn.conn().unwrap().ready_check_sent();
        conn.release();
        assert_eq!(pool.figures().idle, 0);
        assert!(
            pool.try_slot().is_none(),
            "the busy worker's slot was freed"
        );
        worker.write_all(CHECK_ANSWER).await.unwrap();
        let again = pool.acquire().await.unwrap();
        assert!(again.reused);
        assert_eq!(pool.figures().opened, 1);
    }

    /// Before any request waited for a script, a connection whose check is
    /// not answered goes back to the pool at once and is lent again: the
    /// next exchange reads the answer.
    #[tokio::test]
    async fn a_connection_is_lent_again_before_its_check_is_answered() {
        // One exchange in CHECK_EVERY is checked, the first among them.
        use tokio::io::AsyncWriteExt;
        let (l, ep) = listener().await;
        let pool = Pool::new(ep, settings(1, 10));
        let mut conn = pool.acquire().await.unwrap();
        let (mut worker, _) = l.accept().await.unwrap();
        assert!(conn.check_ready(Duration::from_secs(5)));
        conn.conn().unwrap().ready_check_sent();
        conn.release();
        let mut again = pool.acquire().await.unwrap();
        assert!(again.reused);
        assert_eq!(again.conn().unwrap().checks_pending(), 1);
        // Its answer now: a connection found with it is ready.
        worker.write_all(CHECK_ANSWER).await.unwrap();
        again.release();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut third = pool.acquire().await.unwrap();
        assert!(third.reused);
        assert_eq!(third.conn().unwrap().checks_pending(), 0);
    }

    /// A php-fpm that closes each connection after answering the check
    /// (as older versions' source reads) would never keep one: after
    /// [`CHECKS_CLOSED_LIMIT`] such closes, with none found open, the pool
    /// stops checking.
    #[tokio::test]
    async fn checks_stop_when_php_fpm_closes_after_answering_them() {
        use tokio::io::AsyncWriteExt;
        let (l, ep) = listener().await;
        let pool = Pool::new(ep, settings(1, 10));
        // Every request checked.
        pool.hold_back(WORKED_ON, Instant::now());
        for round in 0..=CHECKS_CLOSED_LIMIT {
            let mut conn = pool.acquire().await.unwrap();
            assert!(!conn.reused, "round {round}");
            let (mut worker, _) = l.accept().await.unwrap();
            assert_eq!(
                conn.check_ready(Duration::from_secs(5)),
                round < CHECKS_CLOSED_LIMIT,
                "round {round}"
            );
            conn.conn().unwrap().ready_check_sent();
            worker.write_all(CHECK_ANSWER).await.unwrap();
            drop(worker);
            tokio::time::sleep(Duration::from_millis(20)).await;
            conn.release();
        }
    }

    /// A connection opened on the asking thread is reused before one
    /// opened on another (whose readiness comes through that thread's I/O
    /// driver), even one used more recently.
    #[tokio::test]
    async fn an_idle_connection_of_the_asking_thread_comes_first() {
        let (pool, accept) = pool_accepting(settings(2, 10)).await;
        let mut here = pool.acquire().await.unwrap();
        let mut there = pool.acquire().await.unwrap();
        // Told apart by their request ids.
        let here_id = here.conn().unwrap().next_request_id();
        for _ in 0..5 {
            there.conn().unwrap().next_request_id();
        }
        assert_eq!(here.home, crate::runtime::current());
        there.home = Some(usize::MAX);
        here.release();
        there.release(); // on top
        let mut first = pool.acquire().await.unwrap();
        assert!(first.reused);
        assert_eq!(first.conn().unwrap().next_request_id(), here_id + 1);
        // With none of its own idle, a thread takes another's.
        let mut second = pool.acquire().await.unwrap();
        assert!(second.reused);
        assert_eq!(second.conn().unwrap().next_request_id(), here_id + 5);
        drop((first, second));
        accept.abort();
    }

    /// A connection opened on one serving thread and lent on another is
    /// moved to the second's I/O driver: it still works once the first
    /// thread's runtime is gone.
    #[test]
    fn a_connection_lent_on_another_thread_moves_to_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (l, ep) = rt.block_on(listener());
        let l = l.into_std().unwrap();
        l.set_nonblocking(false).unwrap();
        let echo = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 8];
            while s.read_exact(&mut b).is_ok() {
                s.write_all(&b).unwrap();
            }
        });
        let pool = Pool::new(ep, settings(1, 10));
        let first = crate::runtime::Workers::start(1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = pool.clone();
        first.spawn_connection(async move {
            let conn = p.acquire().await.unwrap();
            let home = conn.home;
            conn.release();
            tx.send(home).unwrap();
        });
        assert_eq!(rx.recv().unwrap(), Some(0));
        // The thread it was opened on is gone with its runtime.
        first.stop();
        drop(first);
        let second = crate::runtime::Workers::start(2).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let hold = std::sync::Arc::new(tokio::sync::Notify::new());
        // Thread 0 busy with a connection of its own: the next goes to 1.
        let held = std::sync::Arc::clone(&hold);
        second.spawn_connection(async move { held.notified().await });
        second.spawn_connection(async move {
            let mut conn = pool.acquire().await.unwrap();
            let reused = conn.reused;
            let home = conn.home;
            let c = conn.conn().unwrap();
            // An empty STDOUT record of request 1, echoed back.
            let echoed = async {
                c.write_all(&[1, 6, 0, 1, 0, 0, 0, 0])
                    .await
                    .map_err(|e| e.to_string())?;
                c.read_record().await.map_err(|e| e.to_string())
            };
            let echoed = tokio::time::timeout(Duration::from_secs(5), echoed).await;
            tx.send((
                reused,
                home,
                crate::runtime::current(),
                format!("{echoed:?}"),
            ))
            .unwrap();
        });
        let (reused, home, here, echoed) = rx.recv().unwrap();
        assert!(reused);
        assert_eq!(here, Some(1));
        assert_eq!(home, here);
        assert!(echoed.starts_with("Ok(Ok(Some((1, "), "{echoed}");
        hold.notify_one();
        second.stop();
        drop(rt);
        drop(echo);
    }

    #[tokio::test]
    async fn a_closed_idle_connection_is_not_reused() {
        let (l, ep) = listener().await;
        let pool = Pool::new(ep, settings(1, 10));
        let conn = pool.acquire().await.unwrap();
        let (server_side, _) = l.accept().await.unwrap();
        conn.release();
        drop(server_side); // php-fpm worker exited
        tokio::time::sleep(Duration::from_millis(50)).await;
        let accept = tokio::spawn(async move { l.accept().await.map(|_| ()) });
        let fresh = pool.acquire().await.unwrap();
        assert!(!fresh.reused);
        accept.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn queue_is_bounded() {
        let (pool, _keep) = pool_accepting(settings(1, 0)).await;
        let _held = pool.acquire().await.unwrap();
        assert!(matches!(
            pool.acquire().await,
            Err(PoolError::QueueFull { .. })
        ));
    }

    #[tokio::test]
    async fn cap_can_be_lowered_and_raised() {
        let (pool, _keep) = pool_accepting(settings(4, 10)).await;
        pool.set_cap(1);
        assert_eq!(pool.figures().cap, 1);
        let _one = pool.acquire().await.unwrap();
        assert!(pool.acquire().await.is_err());
        pool.set_cap(8); // clamped to the configured 4
        assert_eq!(pool.figures().cap, 4);
        let _two = pool.acquire().await.unwrap();
    }

    /// A slow script on a quiet pool: its new connection gets no answer
    /// within the patience, but nothing else of the pool holds a worker, so
    /// nothing says the pool is full. Its cap stays, and other requests get
    /// connections of their own (php-fpm's idle workers take them).
    #[tokio::test]
    async fn a_slow_script_on_a_quiet_pool_teaches_no_cap() {
        let (_l, ep) = listener().await;
        let pool = Pool::new(ep, settings(2, 10));
        let mut slow = pool.acquire().await.unwrap();
        slow.waiting_for_worker(WORKER_PATIENCE);
        assert_eq!(pool.figures().cap, 2);
        // Two such scripts at once: still nothing answered, nothing learnt.
        let mut slow_too = pool.acquire().await.unwrap();
        slow_too.waiting_for_worker(WORKER_PATIENCE);
        assert_eq!(slow.first_answer(), None, "no warning: nothing is known");
        assert_eq!(slow_too.first_answer(), None);
        assert_eq!(pool.figures().cap, 2);
    }

    /// Start-up: every connection new, each page slow (PHP connecting to
    /// its session store, opcache compiling). One goes past the patience
    /// while the others are in use but not answered either: they show no
    /// worker held, nothing is learnt, and the cap stays. Once one of them
    /// is answered, it counts.
    #[tokio::test]
    async fn slow_first_pages_on_new_connections_teach_no_cap() {
        let (pool, _keep) = pool_accepting(settings(4, 10)).await;
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(pool.acquire().await.unwrap());
        }
        let learned = |pool: &Pool| pool.cap().learned.map(|(cap, _)| cap);
        conns[0].waiting_for_worker(WORKER_PATIENCE);
        assert_eq!(learned(&pool), None, "no worker seen held");
        assert_eq!(conns[0].first_answer(), None);
        // Answered, it holds a worker: the next one that waits learns.
        conns[1].waiting_for_worker(WORKER_PATIENCE);
        assert_eq!(learned(&pool), Some(1), "conns[0] answered, conns[1] waits");
        drop(conns);
        assert_eq!(pool.figures().cap, 1, "owed permits kept back");
        // Dropped unanswered (a failed exchange): no longer counted.
        assert_eq!(pool.inner.unheard.load(Ordering::Relaxed), 0);
    }

    /// A page slower than the patience while another connection holds a
    /// worker and a worker is free: the judgement lowers the cap, then the
    /// pool's question (FCGI_GET_VALUES on a connection of its own, the
    /// third to reach php-fpm) is answered before the page, so the cap comes
    /// back before the page's answer, which teaches nothing even though a
    /// worker was given back meanwhile (within the patience, by the timing
    /// alone a wait). Answered, the pool's one question is over.
    #[tokio::test]
    async fn a_worker_free_for_the_question_shows_a_slow_page() {
        use tokio::io::AsyncWriteExt;
        let (l, ep) = listener().await;
        let pool = Pool::new(ep, settings(3, 10));
        let (asked_tx, asked_rx) = tokio::sync::oneshot::channel();
        let php_fpm = tokio::spawn(async move {
            let mut kept = Vec::new();
            for _ in 0..2 {
                kept.push(l.accept().await.unwrap().0);
            }
            let (mut question, _) = l.accept().await.unwrap();
            let mut got = [0u8; 4];
            question.read_exact(&mut got).await.unwrap();
            let _ = asked_tx.send(got);
            // GET_VALUES_RESULT, no pairs.
            question
                .write_all(&[1, 10, 0, 0, 0, 0, 0, 0])
                .await
                .unwrap();
            kept
        });
        let mut served = pool.acquire().await.unwrap();
        assert_eq!(served.first_answer(), None);
        let mut slow = pool.acquire().await.unwrap();
        let freed = pool.freed();
        slow.waiting_for_worker(WORKER_PATIENCE);
        let learned = |pool: &Pool| pool.cap().learned.map(|(cap, _)| cap);
        assert_eq!(learned(&pool), Some(1), "lowered at the judgement");
        let asked = tokio::time::timeout(Duration::from_secs(10), asked_rx).await;
        let asked = asked.expect("no question reached php-fpm").unwrap();
        assert_eq!(asked, [1, 9, 0, 0], "GET_VALUES, id 0");
        for _ in 0..100 {
            if learned(&pool).is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(learned(&pool), None, "given back on the question's answer");
        assert_eq!(pool.figures().cap, 3);
        // The served one ends while the page runs: given back (the pool
        // starves for the page), which alone would have kept the cap.
        served.release();
        assert_eq!(pool.freed(), freed + 1);
        assert_eq!(slow.first_answer(), None, "no warning: nothing learnt");
        assert_eq!(pool.figures().cap, 3);
        drop(slow);
        let _kept = php_fpm.await.unwrap();
        assert!(!asking(&pool), "the question is over");
    }

    /// A connection closed after a failed or abandoned exchange freed its
    /// worker too: counted, as given back and recycled ones are, so that a
    /// question answered after it is not taken for one that found a worker
    /// free. The question, never answered here, still ends.
    #[tokio::test]
    async fn every_close_counts_as_a_freed_worker() {
        let (pool, _keep) = pool_accepting(settings(3, 10)).await;
        let failed = pool.acquire().await.unwrap();
        drop(failed);
        assert_eq!(pool.freed(), 1);
        let mut served = pool.acquire().await.unwrap();
        assert_eq!(served.first_answer(), None);
        let mut slow = pool.acquire().await.unwrap();
        slow.waiting_for_worker(WORKER_PATIENCE);
        assert!(asking(&pool), "a question is out");
        assert_eq!(slow.first_answer(), None, "nothing given back");
        for _ in 0..100 {
            if !asking(&pool) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!asking(&pool), "the question ended");
        drop(served);
        assert_eq!(pool.freed(), 2);
    }

    #[test]
    fn the_first_answer_wins_the_race() {
        let race = Race::default();
        assert!(race.asked_answered());
        assert!(!race.judged_answered(), "the question came first");
        assert!(!race.asked_answered());
        let race = Race::default();
        assert!(race.judged_answered());
        assert!(race.judged_answered(), "asked again: still first");
        assert!(!race.asked_answered(), "too late");
    }

    /// A slow script on a new connection while a kept one is served: from
    /// the pool's side, a connection queued behind that worker, until its
    /// answer comes later than the patience after the idle worker was given
    /// back, or with no worker given back at all. Either way it had a worker
    /// of its own: nothing is learnt, the cap stays.
    #[tokio::test]
    async fn a_slow_script_beside_kept_connections_teaches_no_cap() {
        let (pool, _keep) = pool_accepting(settings(3, 10)).await;
        tokio::time::pause();
        let fast = pool.acquire().await.unwrap();
        fast.release();
        let mut fast = pool.acquire().await.unwrap();
        assert!(fast.reused, "a kept connection holds a worker");
        let mut slow = pool.acquire().await.unwrap();
        slow.waiting_for_worker(WORKER_PATIENCE);
        // No worker given back (nothing idle, the fast one still runs):
        // the answer was the script's own.
        assert_eq!(slow.first_answer(), None);
        assert_eq!(pool.figures().cap, 3);
        slow.release();
        fast.answered();
        fast.release();
        assert_eq!(pool.figures().idle, 2);

        // A worker given back (the idle ones closed), but the answer comes
        // long after: not the freed worker's.
        let mut fast = pool.acquire().await.unwrap();
        let mut slow = pool.acquire_fresh().await.unwrap();
        slow.waiting_for_worker(WORKER_PATIENCE);
        assert_eq!(pool.figures().given_back, 1, "the idle one was closed");
        assert_eq!(pool.figures().cap, 2, "lowered while it waits");
        tokio::time::advance(WORKER_PATIENCE * 3).await;
        assert_eq!(slow.first_answer(), None);
        assert_eq!(pool.figures().cap, 3, "taken back");
        slow.release();
        // Past twice the patience with no answer: taken back too.
        let mut slower = pool.acquire_fresh().await.unwrap();
        slower.waiting_for_worker(WORKER_PATIENCE);
        assert_eq!(pool.figures().cap, 2);
        slower.wait_over();
        assert_eq!(pool.figures().cap, 3);
        drop(slower);
        fast.answered();
        drop(fast);
    }

    /// php-fpm with one worker: each kept connection holds the worker until
    /// it closes, and the next waits in the listen queue meanwhile.
    #[tokio::test]
    async fn a_connection_waiting_for_a_worker_gets_one_given_back() {
        let (l, ep) = listener().await;
        let pool = Pool::new(ep, settings(2, 10));
        let mut a = pool.acquire().await.unwrap();
        let (mut worker, _) = l.accept().await.unwrap();
        let mut b = pool.acquire().await.unwrap();
        assert!(b.watch_for_worker());
        assert_eq!(a.first_answer(), None, "a is answered");
        assert!(a.watch_for_worker(), "a is new too");

        // b's request gets no answer: the pool hears of it, once. (A long
        // patience: what follows runs on the real clock.)
        let patience = Duration::from_secs(60);
        b.waiting_for_worker(patience);
        b.waiting_for_worker(patience);
        assert_eq!(pool.inner.starving.load(Ordering::Relaxed), 1);
        // a finishes: closed rather than kept, which frees the worker.
        a.release();
        assert_eq!(pool.figures().idle, 0);
        assert_eq!(pool.figures().given_back, 1);
        let mut eof = [0u8; 1];
        assert_eq!(worker.read(&mut eof).await.unwrap(), 0, "a was closed");
        let _worker_now_serves_b = l.accept().await.unwrap();
        // One connection was served while b waited: the cap is 1 from the
        // judgement on, so the next request waits in the pool's queue
        // rather than in php-fpm's listen queue.
        assert_eq!(pool.figures().cap, 1);

        // b is answered right after a worker was given back: it had waited
        // for one, and the cap stays.
        assert_eq!(b.first_answer(), Some(1), "first time: warn");
        assert_eq!(pool.figures().cap, 1);
        assert_eq!(b.first_answer(), None, "learnt once");
        b.release();
        assert_eq!(pool.figures().idle, 1);
        let c = pool.acquire().await.unwrap();
        assert!(c.reused);
        // A kept connection never waits for a worker: it has its own.
        assert!(!c.watch_for_worker());
        assert!(matches!(
            pool.acquire().await,
            Err(PoolError::QueueTimeout(_))
        ));
        drop(c);

        // The learned cap holds for a while, then the full cap is tried again.
        let now = Instant::now();
        pool.close_idle(now + LEARNED_CAP_HOLD / 2);
        assert_eq!(pool.figures().cap, 1);
        pool.close_idle(now + LEARNED_CAP_HOLD);
        assert_eq!(pool.figures().cap, 2);
    }

    /// A pool holding a learnt cap shares its workers: a new connection
    /// with no answer after SHARED_NUDGE has the pool close its least
    /// recently used idle connection, whose worker goes to php-fpm's queue.
    /// One answered by then, or in a pool that learnt nothing, does not.
    #[tokio::test]
    async fn a_shared_pool_gives_an_idle_worker_to_its_waiting_new_connection() {
        let (l, ep) = listener().await;
        let _keep = keep_accepting(l);
        let settle = || async {
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        };
        let pool = Pool::new(ep, settings(4, 10));
        let mut a = pool.acquire().await.unwrap();
        a.first_answer();
        a.release();
        // Not shared: the new connection waits; nothing is closed for it.
        let waiting = pool.acquire_fresh().await.unwrap();
        tokio::time::pause();
        settle().await;
        tokio::time::advance(SHARED_NUDGE * 2).await;
        settle().await;
        assert_eq!((pool.figures().idle, pool.figures().given_back), (1, 0));
        drop(waiting);

        pool.learn_cap(2, false, Instant::now());
        let mut waiting = pool.acquire_fresh().await.unwrap();
        settle().await; // the nudge's timer starts
        tokio::time::advance(SHARED_NUDGE + Duration::from_millis(1)).await;
        settle().await;
        assert_eq!((pool.figures().idle, pool.figures().given_back), (0, 1));
        waiting.first_answer();
        waiting.release();
        // Answered before the nudge: nothing more is closed.
        tokio::time::advance(RECYCLE_GAP).await;
        let mut answered = pool.acquire_fresh().await.unwrap();
        settle().await;
        answered.first_answer();
        tokio::time::advance(SHARED_NUDGE * 2).await;
        settle().await;
        assert_eq!((pool.figures().idle, pool.figures().given_back), (1, 1));
        drop(answered);
    }

    /// A pool that learnt a cap of two, then lost a worker more to another
    /// balancer: its new connection waits while its other one is idle. The
    /// pool is at its cap (the idle connection holds a worker, though not a
    /// permit), so the cap falls by one; without that, every replacement
    /// of a recycled connection would wait the patience for 30 s.
    #[tokio::test]
    async fn a_wait_beside_an_idle_connection_is_a_wait_at_the_cap() {
        let (pool, _keep) = pool_accepting(settings(4, 10)).await;
        let mut kept = pool.acquire().await.unwrap();
        kept.first_answer();
        pool.learn_cap(2, false, Instant::now());
        kept.release();
        let mut waiting = pool.acquire_fresh().await.unwrap();
        assert_eq!((pool.figures().in_use, pool.figures().idle), (1, 1));
        waiting.waiting_for_worker(WORKER_PATIENCE);
        assert_eq!(pool.cap().learned.map(|(cap, _)| cap), Some(1));
        drop(waiting);
    }

    /// A learnt cap is lowered further by one step at most, and only by a
    /// connection that waited with the pool at that cap: slow pages taken
    /// for waits cannot ratchet it down to one.
    #[tokio::test]
    async fn a_learnt_cap_falls_one_step_at_a_time_and_only_at_the_cap() {
        let (_l, ep) = listener().await;
        let pool = Pool::new(ep, settings(8, 10));
        let now = Instant::now();
        assert_eq!(
            pool.learn_cap(3, false, now).cap,
            3,
            "first: the workers seen"
        );
        assert_eq!(
            pool.learn_cap(1, false, now).cap,
            3,
            "under the cap: nothing"
        );
        assert_eq!(pool.learn_cap(1, true, now).cap, 2, "at the cap: one step");
        assert_eq!(pool.figures().cap, 2);
        pool.close_idle(now + LEARNED_CAP_HOLD);
        assert_eq!(pool.figures().cap, 8, "the hold ended");
        // More workers counted than the cap in force (connections counted
        // twice while other threads release them): one fewer than the cap,
        // since one connection waited under it.
        let now = now + LEARNED_CAP_HOLD;
        assert_eq!(pool.learn_cap(10, true, now).cap, 7);
        assert_eq!(pool.learn_cap(10, true, now).cap, 6, "at the cap: one step");
    }

    #[test]
    fn slow_pools_are_given_more_patience() {
        assert_eq!(worker_patience(None), WORKER_PATIENCE);
        assert_eq!(
            worker_patience(Some(Duration::from_millis(5))),
            WORKER_PATIENCE
        );
        assert_eq!(
            worker_patience(Some(Duration::from_millis(250))),
            Duration::from_secs(1)
        );
        assert_eq!(
            worker_patience(Some(Duration::from_secs(10))),
            WORKER_PATIENCE_MAX
        );
    }

    #[tokio::test]
    async fn a_waiting_connection_closes_the_idle_ones_and_its_drop_ends_the_wait() {
        let (pool, keep) = pool_accepting(settings(3, 10)).await;
        let a = pool.acquire().await.unwrap();
        let mut b = pool.acquire().await.unwrap();
        let mut c = pool.acquire().await.unwrap();
        b.answered();
        b.release();
        assert_eq!(pool.figures().idle, 1);
        // c waits: b's idle connection holds a worker, so it is closed now.
        c.waiting_for_worker(WORKER_PATIENCE);
        assert_eq!(pool.figures().idle, 0);
        // c fails and is dropped: the wait is over, connections are kept.
        drop(c);
        a.release();
        assert_eq!(pool.figures().idle, 1);
        keep.abort();
    }

    /// Reads from a worker's end until the pool closes its connection.
    async fn closed_by_pool(worker: &mut tokio::net::TcpStream) -> bool {
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), worker.read(&mut buf)).await,
            Ok(Ok(0))
        )
    }

    #[tokio::test]
    async fn a_probe_never_keeps_a_worker() {
        let (l, ep) = listener().await;
        let pool = Pool::new(ep, settings(2, 10));
        // No idle connection: the probe opens one and closes it after use.
        let probe = pool
            .acquire_for_probe(Duration::from_secs(1))
            .await
            .unwrap();
        let (mut worker, _) = l.accept().await.unwrap();
        probe.release();
        assert_eq!(pool.figures().idle, 0);
        assert!(
            closed_by_pool(&mut worker).await,
            "the probe's connection was closed"
        );

        // An idle connection is borrowed and goes back no younger: the
        // idle timeout closes it as if the probe had not used it.
        let pool = Pool::new(pool.endpoint().clone(), short_idle(2));
        let traffic = pool.acquire().await.unwrap();
        let (_worker, _) = l.accept().await.unwrap();
        traffic.release();
        tokio::time::pause();
        tokio::time::advance(Duration::from_millis(60)).await;
        let probe = pool
            .acquire_for_probe(Duration::from_secs(1))
            .await
            .unwrap();
        assert!(probe.reused, "borrowed the idle connection");
        probe.release();
        assert_eq!(pool.figures().idle, 1);
        // 110 ms idle since the traffic, 50 ms since the probe: closed.
        let later = Instant::now() + Duration::from_millis(50);
        assert_eq!(pool.close_idle(later), 1);
    }

    #[tokio::test]
    async fn a_connection_is_recycled_once_old() {
        let (l, ep) = listener().await;
        let pool = Pool::new(ep, settings(2, 10));
        let first = pool.acquire().await.unwrap();
        let (mut worker, _) = l.accept().await.unwrap();
        first.release();
        tokio::time::pause();
        let again = pool.acquire().await.unwrap();
        assert!(again.reused);
        tokio::time::advance(RECYCLE_AFTER).await;
        // Its exchange ends cleanly, but it is old: closed, its worker
        // goes to whoever queued for one.
        again.release();
        assert_eq!(pool.figures().idle, 0);
        assert_eq!(pool.figures().recycled, 1);
        assert!(closed_by_pool(&mut worker).await);
    }

    /// Connections that come of age together are recycled one per
    /// RECYCLE_GAP: the others are kept meanwhile, then recycled in turn.
    #[tokio::test]
    async fn a_pool_recycles_one_connection_per_gap() {
        let (l, ep) = listener().await;
        let pool = Pool::new(ep, settings(3, 10));
        let a = pool.acquire().await.unwrap();
        let (mut worker_a, _) = l.accept().await.unwrap();
        let b = pool.acquire().await.unwrap();
        let (mut worker_b, _) = l.accept().await.unwrap();
        tokio::time::pause();
        tokio::time::advance(RECYCLE_AFTER).await;
        a.release();
        b.release();
        assert_eq!(pool.figures().recycled, 1);
        assert_eq!(pool.figures().idle, 1, "the second is kept for now");
        assert!(closed_by_pool(&mut worker_a).await);
        // Within the gap, the sweep keeps it too; past it, recycles it.
        let now = Instant::now();
        pool.close_idle(now + RECYCLE_GAP / 2);
        assert_eq!(pool.figures().idle, 1);
        pool.close_idle(now + RECYCLE_GAP);
        assert_eq!(pool.figures().idle, 0);
        assert_eq!(pool.figures().recycled, 2);
        assert!(closed_by_pool(&mut worker_b).await);
    }

    /// While a connection waits for a worker, every finishing connection is
    /// closed (each freed worker may go to another balancer's connection
    /// queued first); once the wait is over (answered, or past twice the
    /// patience), finishing connections are kept again.
    #[tokio::test]
    async fn workers_are_given_back_while_one_waits_and_not_after() {
        let (pool, _keep) = pool_accepting(settings(4, 10)).await;
        let a = pool.acquire().await.unwrap();
        let b = pool.acquire().await.unwrap();
        let c = pool.acquire().await.unwrap();
        let mut waiting = pool.acquire().await.unwrap();
        waiting.waiting_for_worker(WORKER_PATIENCE);
        a.release();
        b.release();
        assert_eq!(pool.figures().given_back, 2);
        assert_eq!(pool.figures().idle, 0);
        // The wait is over (LentConn::worker_wait_over, or an answer).
        waiting.answered();
        c.release();
        assert_eq!(pool.figures().given_back, 2);
        assert_eq!(pool.figures().idle, 1, "kept again");
    }

    #[tokio::test]
    async fn idle_connections_are_reused_most_recent_first() {
        let (l, ep) = listener().await;
        let pool = Pool::new(ep, short_idle(2));
        let a = pool.acquire().await.unwrap();
        let (mut worker_a, _) = l.accept().await.unwrap();
        let b = pool.acquire().await.unwrap();
        let (_worker_b, _) = l.accept().await.unwrap();
        a.release();
        tokio::time::pause();
        tokio::time::advance(Duration::from_millis(20)).await;
        b.release();
        // b, the most recently used, serves the next requests; a is left
        // to age out.
        for _ in 0..3 {
            tokio::time::advance(Duration::from_millis(10)).await;
            let c = pool.acquire().await.unwrap();
            assert!(c.reused);
            c.release();
        }
        // a idle for 110 ms, b for 60 ms: only a reached the idle timeout
        // (neither is RECYCLE_AFTER old, so neither counts as recycled).
        tokio::time::advance(Duration::from_millis(60)).await;
        assert_eq!(pool.close_idle(Instant::now()), 1);
        assert!(closed_by_pool(&mut worker_a).await, "a aged out");
        assert_eq!(pool.figures().idle, 1);
        assert_eq!(pool.figures().recycled, 0);
        // b, once RECYCLE_AFTER old, is closed as recycled.
        tokio::time::advance(RECYCLE_AFTER).await;
        assert_eq!(pool.close_idle(Instant::now()), 1);
        assert_eq!(pool.figures().recycled, 1);
    }

    #[tokio::test]
    async fn connect_error_is_reported() {
        let (l, ep) = listener().await;
        drop(l);
        let pool = Pool::new(ep, settings(1, 1));
        assert!(matches!(pool.acquire().await, Err(PoolError::Connect(_))));
        // The permit came back.
        assert_eq!(pool.figures().in_use, 0);
    }
}
