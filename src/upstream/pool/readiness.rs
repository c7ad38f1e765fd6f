//! A script that sends its whole response with `fastcgi_finish_request()`
//! and works on (php-src#10335) keeps its worker after END_REQUEST. One
//! exchange in [`CHECK_EVERY`] sends a readiness check behind its request,
//! which php-fpm answers once the script has ended; the next exchange on
//! the connection reads the answer, and when its request waited
//! [`WORKER_PATIENCE`] or more for it, the pool holds back for
//! [`HOLD_BACK_FOR`]: every exchange is checked, and `release` keeps a
//! connection whose answer has not come, with its permit, on a task of its
//! own until it comes (see `fastcgi::conn::Readiness`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Pool, PooledConn, WORKER_PATIENCE};

use crate::fastcgi::conn::{Connection, Readiness};

/// How long a worker that sent its whole response (END_REQUEST) may still
/// be busy before its connection is closed, when the exchange named no
/// read timeout of its own (see [`PooledConn::check_ready`]).
pub(super) const READY_WAIT: Duration = Duration::from_secs(60);

/// A worker busy this long past its response is counted
/// ([`PoolFigures::worked_on`]): a script that works on after
/// `fastcgi_finish_request()`, not the microseconds between php-fpm's
/// END_REQUEST and its answer to the readiness check.
///
/// [`PoolFigures::worked_on`]: super::PoolFigures::worked_on
pub(super) const WORKED_ON: Duration = Duration::from_millis(50);

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
pub(super) const CHECKS_CLOSED_LIMIT: u64 = 8;

impl Pool {
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
    pub(super) fn reusable(&self, conn: &mut Connection) -> bool {
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
    pub(super) fn holds_back(&self) -> bool {
        let until = self.inner.hold_back_until.load(Ordering::Relaxed);
        until != 0 && Instant::now() < self.inner.created + Duration::from_millis(until)
    }

    /// A request waited `waited` for a worker still running the script
    /// before it, which had sent its whole response and worked on
    /// (`fastcgi_finish_request()`): from now on, for [`HOLD_BACK_FOR`],
    /// each connection goes back to the pool only once its script has
    /// ended. Said once each time it starts.
    pub(super) fn hold_back(&self, waited: Duration, now: Instant) {
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
}

impl PooledConn {
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
}
