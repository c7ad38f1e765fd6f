//! One FastCGI exchange with a backend: a connection from its pool, lent to
//! `fastcgi::exchange`, and given back when the response ended cleanly.
//!
//! `BackendFailure` is what can go wrong: no connection from the pool, or
//! the exchange itself failed. It is used by the proxy, the liveness check
//! and the session probe alike; the HTTP status it becomes and when a retry
//! is safe are the front end's policy, in `http::error`.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::fastcgi::cgi::CgiHead;
use crate::fastcgi::conn::Connection;
use crate::fastcgi::exchange::{self, ExchangeError, ExchangeTimeouts, LentConn};
use crate::fastcgi::params::ParamList;
use crate::upstream::backend::Backend;
use crate::upstream::pool::{PoolError, PooledConn};

/// What went wrong with a backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendFailure {
    #[error("{0}")]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl BackendFailure {
    /// True when the request certainly did not reach php-fpm.
    pub fn never_reached_backend(&self) -> bool {
        matches!(
            self,
            BackendFailure::Pool(_) | BackendFailure::Exchange(ExchangeError::Refused(_))
        )
    }

    /// True when the backend, not its load, is at fault: counts toward
    /// max_fails. A full queue is a busy pool, not a broken one.
    pub fn counts_as_failure(&self) -> bool {
        !matches!(
            self,
            BackendFailure::Pool(PoolError::QueueFull { .. } | PoolError::QueueTimeout(_))
        )
    }
}

/// A pooled connection of a backend, lent to one exchange.
#[derive(Debug)]
pub struct BackendConn {
    conn: PooledConn,
    backend: Arc<Backend>,
}

impl LentConn for BackendConn {
    fn conn(&mut self) -> Option<&mut Connection> {
        self.conn.conn()
    }

    fn release(self) {
        self.conn.release();
    }

    fn name(&self) -> &str {
        &self.backend.name
    }
}

/// An exchange on a backend's pooled connection.
pub type Exchange = exchange::Exchange<BackendConn>;

/// Starts an exchange on `conn`, a connection of `backend`'s pool.
pub fn begin(conn: PooledConn, backend: Arc<Backend>, timeouts: ExchangeTimeouts) -> Exchange {
    Exchange::new(BackendConn { conn, backend }, timeouts)
}

/// A whole, small response to one of fpmlb's own requests.
#[derive(Debug)]
pub struct SmallResponse {
    pub head: CgiHead,
    pub body: Bytes,
    /// php-fpm said "Primary script unknown": SCRIPT_FILENAME names no file.
    pub script_unknown: bool,
}

/// Runs one request of fpmlb's own (ping, status page, session probe) on a
/// pooled connection of `backend`, waiting at most `acquire` for a slot, and
/// reads the whole response, refusing one over `max_body` bytes.
pub async fn small_request(
    backend: &Arc<Backend>,
    params: &ParamList,
    body: &[u8],
    acquire: Duration,
    timeouts: ExchangeTimeouts,
    max_body: usize,
) -> Result<SmallResponse, BackendFailure> {
    let conn = backend.pool.acquire_within(acquire).await?;
    let mut ex = begin(conn, Arc::clone(backend), timeouts);
    ex.send(&exchange::encode_request_head(params, Some(body)))
        .await?;
    let start = ex.read_head().await?;
    let mut out = BytesMut::from(&start.body[..]);
    if !start.complete {
        while let Some(chunk) = ex.next_chunk().await? {
            if out.len() + chunk.len() > max_body {
                return Err(ExchangeError::Refused("response larger than expected").into());
            }
            out.extend_from_slice(&chunk);
        }
    }
    Ok(SmallResponse {
        head: start.head,
        body: out.freeze(),
        script_unknown: ex.script_unknown,
    })
}
