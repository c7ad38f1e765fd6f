//! Is a pool alive? One active probe of one backend (`runner` repeats it
//! and applies rise/fall).
//!
//! With `ping_path` set, a FastCGI request for php-fpm's ping page over a
//! pooled connection, expecting `ping_response` ("pong"); without it, a
//! connect. A busy pool is not a dead pool: when every connection slot is
//! taken (all workers busy with our requests), a ping would wait behind them
//! and time out, which HAProxy takes for death. So a saturated pool is judged
//! by what it is doing instead: requests completing since the last check, or
//! else its listener accepting a connection at the kernel level.

use std::sync::Arc;
use std::time::Duration;

use crate::fastcgi::conn::Connection;
use crate::fastcgi::exchange::ExchangeTimeouts;
use crate::fastcgi::params::{self, ParamList};
use crate::health::fpm_status::FpmStatus;
use crate::upstream::backend::Backend;
use crate::upstream::exchange::{BackendFailure, small_request};
use crate::upstream::pool::{PoolError, is_local_shortage};

/// How a backend's liveness is probed (its ping page, else a connect) and
/// its status page polled, from the config.
#[derive(Debug, Clone)]
pub struct LivenessProbe {
    pub ping_path: Option<String>,
    /// php-fpm's pm.status_path, polled after each good check.
    pub status_path: Option<String>,
    pub ping_response: String,
    pub timeout: Duration,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Alive,
    /// Every slot busy, but requests complete or the listener accepts.
    Busy,
    Dead(String),
    /// fpmlb itself could not check (out of file descriptors, ...): no
    /// verdict on the backend, whose state stays as it was.
    Unknown(String),
}

impl Outcome {
    pub fn is_alive(&self) -> bool {
        !matches!(self, Outcome::Dead(_))
    }
}

/// The params of a request for a php-fpm status or ping page (matched by
/// php-fpm on SCRIPT_NAME, before any script is looked up).
pub fn fpm_page_params(path: &str, query: &str) -> ParamList {
    params::internal_get(path, path, query)
}

impl LivenessProbe {
    /// Checks `backend` once. `completed_since_last`: real requests finished
    /// on it since the previous check.
    pub async fn run(&self, backend: &Arc<Backend>, completed_since_last: bool) -> Outcome {
        let Some(path) = &self.ping_path else {
            return self.connect_check(backend).await;
        };
        let timeouts = ExchangeTimeouts {
            send: self.timeout,
            read: self.timeout,
        };
        let params = fpm_page_params(path, "");
        match small_request(backend, &params, b"", self.timeout, timeouts, 4096).await {
            Ok(resp)
                if resp.head.status == 200
                    && resp.body.trim_ascii() == self.ping_response.as_bytes() =>
            {
                Outcome::Alive
            }
            Ok(resp) => {
                let body = String::from_utf8_lossy(&resp.body[..resp.body.len().min(80)])
                    .trim()
                    .to_string();
                Outcome::Dead(format!(
                    "ping {path} answered {}: {body:?}",
                    resp.head.status
                ))
            }
            Err(BackendFailure::Pool(PoolError::QueueTimeout(_) | PoolError::QueueFull { .. })) => {
                if completed_since_last {
                    return Outcome::Busy;
                }
                match self.connect_check(backend).await {
                    Outcome::Alive => Outcome::Busy,
                    dead => dead,
                }
            }
            Err(e @ BackendFailure::Pool(PoolError::Local(_))) => {
                Outcome::Unknown(format!("ping {path}: {e}"))
            }
            Err(e) => Outcome::Dead(format!("ping {path}: {e}")),
        }
    }

    /// Reads the pool's status page (JSON) and records it on the backend;
    /// adjusts the connection cap to `pm.max_children` where php-fpm tells it.
    pub async fn poll_status(&self, backend: &Arc<Backend>) {
        let Some(path) = &self.status_path else {
            return;
        };
        let timeouts = ExchangeTimeouts {
            send: self.timeout,
            read: self.timeout,
        };
        let params = fpm_page_params(path, "json");
        let status =
            match small_request(backend, &params, b"", self.timeout, timeouts, 64 * 1024).await {
                Ok(resp) if resp.head.status == 200 => FpmStatus::parse(&resp.body),
                Ok(resp) => Err(format!("status page {path} answered {}", resp.head.status)),
                Err(e) => Err(format!("status page {path}: {e}")),
            };
        match status {
            Ok(status) => {
                if backend.auto_cap
                    && let Some(max) = status.known_max_children()
                {
                    let cap = usize::try_from(max).unwrap_or(usize::MAX);
                    if backend.pool.figures().cap != cap {
                        tracing::info!(backend = %backend.name, cap, "connection cap follows the pool's pm.max_children");
                    }
                    backend.pool.set_cap(cap);
                }
                backend.set_fpm_status(Some(status));
            }
            Err(why) => {
                tracing::debug!(backend = %backend.name, "{why}");
                backend.set_fpm_status(None);
            }
        }
    }

    async fn connect_check(&self, backend: &Backend) -> Outcome {
        match Connection::connect(backend.pool.endpoint(), self.timeout).await {
            Ok(_) => Outcome::Alive,
            Err(e) if is_local_shortage(&e) => Outcome::Unknown(format!(
                "connect: fpmlb cannot open a connection ({e}): its own limits"
            )),
            Err(e) => Outcome::Dead(format!("connect: {e}")),
        }
    }
}
