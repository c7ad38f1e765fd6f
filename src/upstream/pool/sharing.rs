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
//!   it waits, makes this pool learn its share as in `cap.rs`); and in a pool
//!   that learnt a share, a new connection with no answer after
//!   [`SHARED_NUDGE`] has the least recently used idle connection closed
//!   for it (within the same [`RECYCLE_GAP`]), rather than waiting the
//!   whole patience while fpmlb holds a worker it could have;
//! - fpmlb's own requests (health checks, status polls, session probes)
//!   never keep a worker: they borrow an idle connection without making it
//!   younger, or open one and close it after use.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Pool, Unheard};

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
///
/// [`WORKER_PATIENCE`]: super::WORKER_PATIENCE
pub const SHARED_NUDGE: Duration = Duration::from_millis(10);

impl Pool {
    /// Whether a connection opened at `born` is recycled at `now`: it is
    /// [`RECYCLE_AFTER`] old, and the pool recycled none in the last
    /// [`RECYCLE_GAP`] (else it is kept, and recycled later). Counted.
    pub(super) fn recycle(&self, born: Instant, now: Instant) -> bool {
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

    /// After [`SHARED_NUDGE`], if the new connection `waiting` stands for
    /// has had no answer yet, closes the pool's least recently used idle
    /// connection: its worker goes to the oldest connection in php-fpm's
    /// queue, most likely that one.
    pub(super) fn nudge_later(&self, waiting: std::sync::Weak<Unheard>) {
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
}
