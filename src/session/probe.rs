//! Talking to `conf/probe.php` on a node, over FastCGI.
//!
//! Only a request into the pool tells the truth about PHP's session config
//! (pool `php_value` lines beat php.ini), so fpmlb runs its probe script
//! there. The script answers only when the FastCGI param `FPMLB_PROBE` is
//! present: a client cannot forge it (request headers only ever become
//! `HTTP_*` params), and the public front end never routes to the probe,
//! which lives outside every document root.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::fastcgi::exchange::ExchangeTimeouts;
use crate::fastcgi::params::{self, ParamList};
use crate::upstream::backend::Backend;
use crate::upstream::exchange::{BackendFailure, small_request};
use crate::upstream::pool::PoolError;

/// Largest probe answer read (the config report is a few KiB).
const MAX_ANSWER: usize = 256 * 1024;

/// Why the probe gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// php-fpm answered "Primary script unknown": not deployed on this node.
    #[error("probe script {0} is missing on this node (php-fpm: Primary script unknown)")]
    Missing(String),
    /// Every connection slot is busy with traffic: not a verdict on the node.
    #[error("pool busy, probe not run: {0}")]
    Busy(String),
    #[error("{0}")]
    Backend(BackendFailure),
    #[error("probe answered {status}: {detail}")]
    BadAnswer { status: u16, detail: String },
}

impl From<BackendFailure> for ProbeError {
    fn from(f: BackendFailure) -> Self {
        match f {
            BackendFailure::Pool(PoolError::QueueTimeout(_) | PoolError::QueueFull { .. }) => {
                ProbeError::Busy(f.to_string())
            }
            other => ProbeError::Backend(other),
        }
    }
}

/// The probe script's answer to `write`, and the `Set-Cookie` headers it sent.
#[derive(Debug, Clone, Deserialize)]
pub struct WriteAnswer {
    /// `Set-Cookie` headers of the response (what a browser would get).
    #[serde(skip)]
    pub set_cookie: Vec<String>,
    #[serde(default)]
    pub ok: bool,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub session_name: Option<String>,
    #[serde(default)]
    pub save_handler: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// The probe script's answer to `read`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadAnswer {
    #[serde(default)]
    pub ok: bool,
    #[serde(default)]
    pub found: bool,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub save_handler: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// The probe script's answer to `lock`.
#[derive(Debug, Clone, Deserialize)]
pub struct LockAnswer {
    #[serde(default)]
    pub ok: bool,
    #[serde(default)]
    pub found: bool,
    #[serde(default)]
    pub error: Option<String>,
}

/// Runs probe actions on nodes.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Path of probe.php on the nodes.
    pub script: String,
    pub timeout: Duration,
    /// The application's document root on the nodes: the probe reads the `.user.ini`
    /// files php-fpm gives the application's scripts there.
    pub document_root: Option<String>,
    /// The script the application's requests run (front controller or index), below
    /// the document root: its directory's `.user.ini` files apply too.
    pub app_script: Option<String>,
}

/// A probe answer: its JSON and the `Set-Cookie` headers of the response.
struct Reply {
    json: serde_json::Value,
    set_cookie: Vec<String>,
}

impl Probe {
    fn params(&self, action: &str) -> ParamList {
        let mut p = params::internal_get(&self.script, "/fpmlb-probe.php", "");
        p.push(b"FPMLB_PROBE", b"1");
        p.push(b"FPMLB_PROBE_ACTION", action.as_bytes());
        if let Some(root) = &self.document_root {
            p.push(b"FPMLB_DOCUMENT_ROOT", root.as_bytes());
        }
        if let Some(script) = &self.app_script {
            p.push(b"FPMLB_APP_SCRIPT", script.as_bytes());
        }
        p
    }

    async fn call(&self, backend: &Arc<Backend>, params: &ParamList) -> Result<Reply, ProbeError> {
        let timeouts = ExchangeTimeouts {
            send: self.timeout,
            read: self.timeout,
        };
        let resp = small_request(backend, params, b"", self.timeout, timeouts, MAX_ANSWER).await?;
        if resp.script_unknown {
            return Err(ProbeError::Missing(self.script.clone()));
        }
        let status = resp.head.status;
        let set_cookie: Vec<String> = resp
            .head
            .headers
            .iter()
            .filter(|(name, _)| *name == http::header::SET_COOKIE)
            .filter_map(|(_, value)| value.to_str().ok().map(str::to_string))
            .collect();
        match serde_json::from_slice::<serde_json::Value>(&resp.body) {
            Ok(json) if status == 200 => Ok(Reply { json, set_cookie }),
            Ok(v) => Err(ProbeError::BadAnswer {
                status,
                detail: v.to_string(),
            }),
            Err(e) => {
                let shown = String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)])
                    .trim()
                    .to_string();
                Err(ProbeError::BadAnswer {
                    status,
                    detail: format!("not JSON ({e}): {shown:?}"),
                })
            }
        }
    }

    fn decode<T: for<'de> Deserialize<'de>>(value: serde_json::Value) -> Result<T, ProbeError> {
        serde_json::from_value(value.clone()).map_err(|e| ProbeError::BadAnswer {
            status: 200,
            detail: format!("unexpected answer ({e}): {value}"),
        })
    }

    /// The node's effective session settings, as JSON (see session::node).
    pub async fn config(&self, backend: &Arc<Backend>) -> Result<serde_json::Value, ProbeError> {
        Ok(self.call(backend, &self.params("config")).await?.json)
    }

    /// Starts a session holding `token` on this node.
    pub async fn write(
        &self,
        backend: &Arc<Backend>,
        token: &str,
    ) -> Result<WriteAnswer, ProbeError> {
        let mut p = self.params("write");
        p.push(b"FPMLB_PROBE_TOKEN", token.as_bytes());
        let reply = self.call(backend, &p).await?;
        let mut answer: WriteAnswer = Self::decode(reply.json)?;
        answer.set_cookie = reply.set_cookie;
        Ok(answer)
    }

    /// Params of `action` on session `id`, sent in cookie `name` as a browser would.
    fn with_cookie(&self, action: &str, name: &str, id: &str) -> ParamList {
        let mut p = self.params(action);
        p.push(b"HTTP_COOKIE", format!("{name}={id}").as_bytes());
        p
    }

    /// Reads session `id` (cookie `name`) on this node.
    pub async fn read(
        &self,
        backend: &Arc<Backend>,
        name: &str,
        id: &str,
    ) -> Result<ReadAnswer, ProbeError> {
        let p = self.with_cookie("read", name, id);
        Self::decode(self.call(backend, &p).await?.json)
    }

    /// Opens session `id` (cookie `name`) on this node with
    /// `session_start(['read_and_close' => true])`, as applications do to read a session
    /// without holding it.
    pub async fn read_and_close(
        &self,
        backend: &Arc<Backend>,
        name: &str,
        id: &str,
    ) -> Result<LockAnswer, ProbeError> {
        let p = self.with_cookie("lock", name, id);
        Self::decode(self.call(backend, &p).await?.json)
    }

    /// Destroys session `id` on this node (best effort: the probe's own).
    pub async fn destroy(
        &self,
        backend: &Arc<Backend>,
        name: &str,
        id: &str,
    ) -> Result<(), ProbeError> {
        let p = self.with_cookie("destroy", name, id);
        self.call(backend, &p).await.map(|_| ())
    }
}
