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
//! fall by one with each, and queue the site behind them); so it is when
//! the connection is dropped unanswered (its client gone, its exchange
//! failed), which showed no wait either. Under load some
//! worker is given back within any patience, so the timing alone would
//! take every page between one and two patiences for a wait: at the
//! judgement fpmlb also asks php-fpm on a connection of its own whether a
//! worker is free (see [`Pool::ask_for_free_worker`]); answered before the
//! judged connection, with at most one worker given back, it shows one was,
//! and the cap is given back at once.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::{Pool, PooledConn};

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

/// How long a cap learned from a connection that waited for a worker holds
/// before the pool tries its full cap again: a pool that grew (pm = dynamic
/// spawns workers under load) gets its connections back, and one that did
/// not costs one more wait of [`WORKER_PATIENCE`] per period.
pub const LEARNED_CAP_HOLD: Duration = Duration::from_secs(30);

/// How many of the configured connection slots may be used now, and why.
#[derive(Debug)]
pub(super) struct Cap {
    /// The cap php-fpm's status page gave (or the default), within the
    /// configured maximum.
    pub(super) reported: usize,
    /// A lower cap learned from a connection that waited for a worker, and
    /// when.
    pub(super) learned: Option<(usize, Instant)>,
    /// Permits taken out of `slots` to lower the cap below the configured one.
    pub(super) withheld: usize,
    /// Permits still to take out as connections finish (they were in use
    /// when the cap was lowered).
    pub(super) owed: usize,
    /// Lowerings taken back while a later one was in force (the cap each
    /// set, and the one before it), so that taking back the later one
    /// does not bring them back (see [`Pool::unlearn`]). At most
    /// [`WITHDRAWN_MAX`], none older than [`LEARNED_CAP_HOLD`].
    pub(super) withdrawn: Vec<(Learned, Option<Learned>)>,
}

/// A learnt cap and when it was learnt.
pub(super) type Learned = (usize, Instant);

/// Whether a cap learnt `at` is past its [`LEARNED_CAP_HOLD`] at `now`.
fn expired(at: Instant, now: Instant) -> bool {
    now.saturating_duration_since(at) >= LEARNED_CAP_HOLD
}

impl Cap {
    /// The learnt cap, if it still holds at `now`.
    pub(super) fn held(&self, now: Instant) -> Option<Learned> {
        self.learned.filter(|&(_, at)| !expired(at, now))
    }
}

/// The most lowerings [`Cap::withdrawn`] remembers: judgements overlap
/// rarely (each needs a new connection unanswered past the patience while
/// the one before is), and one forgotten costs what it did before, its
/// cap held to its end.
const WITHDRAWN_MAX: usize = 8;

impl Pool {
    pub(super) fn cap(&self) -> MutexGuard<'_, Cap> {
        match self.inner.cap.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Brings the free permits in line with the cap in force at `now`: the
    /// reported one, or a learned one still held. Permits in use cannot be
    /// taken back; they are owed and kept as their connections finish.
    pub(super) fn apply_cap(&self, cap: &mut Cap, now: Instant) {
        let configured = self.inner.settings.max_conns;
        cap.learned = cap.held(now);
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
    pub(super) fn keep_back_permit(&self) -> bool {
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
    pub(super) fn learn_cap(&self, workers: usize, at_cap: bool, now: Instant) -> Learnt {
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

    /// Takes back what `learnt` set: the wait it was learnt from turned
    /// out to be a slow script's, or showed nothing. If a later judgement
    /// lowered the cap further meanwhile, this one is remembered as
    /// withdrawn, and goes when that one is taken back: two judgements
    /// that overlap and both show nothing (two pages their clients left)
    /// leave the cap as it was before the first, not at the first's.
    fn unlearn(&self, learnt: Learnt) {
        let Some(set) = learnt.set else { return };
        let now = Instant::now();
        let mut cap = self.cap();
        cap.withdrawn.retain(|&((_, at), _)| !expired(at, now));
        if cap.learned == Some(set) {
            let mut back = learnt.before;
            while let Some(at) =
                back.and_then(|b| cap.withdrawn.iter().position(|(gone, _)| *gone == b))
            {
                back = cap.withdrawn.swap_remove(at).1;
            }
            cap.learned = back;
            self.apply_cap(&mut cap, now);
        } else if cap.withdrawn.len() < WITHDRAWN_MAX {
            cap.withdrawn.push((set, learnt.before));
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

    /// Whether the pool holds a learnt cap: others use its workers.
    pub(super) fn shared(&self) -> bool {
        self.cap().learned.is_some()
    }

    /// Lowers or raises the cap, within the configured maximum (used when the
    /// pool reports a smaller `max children` than configured).
    pub fn set_cap(&self, cap: usize) {
        let mut state = self.cap();
        state.reported = cap.clamp(1, self.inner.settings.max_conns);
        self.apply_cap(&mut state, Instant::now());
    }
}

impl PooledConn {
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
    /// judgement is taken back. So too when it is dropped unanswered.
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
pub(super) struct Learnt {
    before: Option<(usize, Instant)>,
    set: Option<(usize, Instant)>,
    pub(super) cap: usize,
}

/// A new connection's request went unanswered past the patience, while
/// other connections of the pool held workers (see
/// [`PooledConn::waiting_for_worker`]).
#[derive(Debug)]
pub(super) struct Judged {
    at: Instant,
    patience: Duration,
    /// The cap lowered at the judgement, to take back if it was wrong.
    learnt: Learnt,
    /// The pool's [`Pool::freed`] before its idle connections were closed.
    freed: u64,
    /// Whether it or a connection that asks for a free worker after it was
    /// answered first (see [`Pool::ask_for_free_worker`]).
    pub(super) race: Option<Arc<Race>>,
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
pub(super) struct Race {
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
    pub(super) fn judged_answered(&self) -> bool {
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
    pub(super) fn asked_answered(&self) -> bool {
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
