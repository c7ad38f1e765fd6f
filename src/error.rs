//! What went wrong with a backend, in one exchange: used by the proxy, the
//! liveness check and the session probe alike. Whether it reached the
//! backend and whether it counts against it are facts of the failure, here;
//! the HTTP status it becomes and when a retry is safe are the front end's
//! policy, in `http::error`.

use std::time::Duration;

use crate::fastcgi::cgi::CgiError;
use crate::fastcgi::conn::ConnError;
use crate::upstream::pool::PoolError;

/// What went wrong with a backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendFailure {
    #[error("{0}")]
    Pool(#[from] PoolError),
    #[error("sending the request: {0}")]
    Send(std::io::Error),
    #[error("no progress sending the request for {0:?}")]
    SendTimeout(Duration),
    #[error("reading the response: {0}")]
    Read(#[from] ConnError),
    #[error("no response for {0:?}")]
    ReadTimeout(Duration),
    #[error("connection closed before the response was complete")]
    Closed,
    #[error("bad response head: {0}")]
    BadHead(#[from] CgiError),
    #[error("backend refused the request: {0}")]
    Refused(&'static str),
}

impl BackendFailure {
    /// True when the request certainly did not reach php-fpm.
    pub fn never_reached_backend(&self) -> bool {
        matches!(self, BackendFailure::Pool(_) | BackendFailure::Refused(_))
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
