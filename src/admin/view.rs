//! One snapshot of everything the status page and `/status.json` show, read
//! from the live backends and the latest session report. The page and the
//! JSON are two renderings of this one struct, so they cannot disagree.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use tokio::time::Instant;

use crate::health::fpm_status::FpmStatus;
use crate::http::budget::ByteBudget;
use crate::http::read_ahead::ReadAhead;
use crate::session::compare::Difference;
use crate::session::cookie::SetCookie;
use crate::session::verdict::{ClusterReport, Locking, NodeReport, Verdict};
use crate::upstream::backend::{Backend, State};
use crate::upstream::pool::PoolFigures;

/// The whole status document (`/status.json`).
#[derive(Debug, Serialize)]
pub struct StatusDoc<'a> {
    pub version: &'static str,
    pub uptime_seconds: u64,
    pub backends: Vec<BackendView<'a>>,
    /// Responses read ahead of their clients, all backends together.
    pub read_ahead: ReadAheadView,
    /// What the compressors of the responses being compressed hold.
    pub compression: CompressionView,
    /// The latest session check of the cluster; null before the first one
    /// or when session checks are off (no `health.probe_script`).
    pub session: Option<&'a ClusterReport>,
}

/// What read-ahead did since fpmlb started, and what it holds now.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReadAheadView {
    /// Responses streamed with read-ahead allowed.
    pub streamed: u64,
    /// ... read ahead of a lagging client.
    pub read_ahead: u64,
    /// ... that went on to a temp file.
    pub spilled: u64,
    /// ... that hit a limit and went at the client's pace for a while.
    pub waited: u64,
    pub temp_file_bytes_written: u64,
    pub temp_file_failures: u64,
    /// Bytes held now, and the budget they share.
    pub memory_bytes: u64,
    pub memory_budget_bytes: u64,
    pub temp_file_bytes: u64,
    pub temp_file_budget_bytes: u64,
}

impl ReadAheadView {
    pub fn of(r: &ReadAhead) -> Self {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let bytes = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let s = &r.stats;
        ReadAheadView {
            streamed: load(&s.streamed),
            read_ahead: load(&s.taken_over),
            spilled: load(&s.spilled),
            waited: load(&s.waited),
            temp_file_bytes_written: load(&s.temp_bytes),
            temp_file_failures: load(&s.temp_failures),
            memory_bytes: bytes(r.memory_budget.held()),
            memory_budget_bytes: bytes(r.memory_budget.total()),
            temp_file_bytes: bytes(r.temp_budget.held()),
            temp_file_budget_bytes: bytes(r.temp_budget.total()),
        }
    }
}

/// The compressors' memory (`compression.max_memory`): held now, and the
/// budget; a response that does not fit takes a cheaper coding, or none.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CompressionView {
    pub memory_bytes: u64,
    pub memory_budget_bytes: u64,
    /// Responses that took a cheaper coding for want of memory, since start.
    pub cheaper_coding_for_memory: u64,
    /// Responses that went uncompressed for want of memory, since start.
    pub uncompressed_for_memory: u64,
}

impl CompressionView {
    pub fn of(budget: &ByteBudget) -> Self {
        let bytes = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let shortfalls = crate::http::compress::memory_shortfalls();
        CompressionView {
            memory_bytes: bytes(budget.held()),
            memory_budget_bytes: bytes(budget.total()),
            cheaper_coding_for_memory: shortfalls.cheaper_coding,
            uncompressed_for_memory: shortfalls.uncompressed,
        }
    }
}

/// One backend as shown.
#[derive(Debug, Serialize)]
pub struct BackendView<'a> {
    pub name: String,
    pub address: String,
    /// `up`, `down` or `drained`.
    pub state: &'static str,
    /// Who drained it: `operator` (admin API) or `health` (session check).
    pub drained_by: Option<&'static str>,
    /// The four facts behind `state`.
    pub enabled: bool,
    pub alive: bool,
    pub session_ok: bool,
    pub weight: u32,
    /// Exchanges that got a response from php-fpm.
    pub requests: u64,
    /// 5xx responses plus failures of the backend itself.
    pub errors: u64,
    /// Connect errors, resets, timeouts, protocol errors.
    pub failures: u64,
    pub responses: Responses,
    /// Mean upstream time (to the response head); null before any request.
    pub latency_mean_ms: Option<f64>,
    /// Our FastCGI connections to the pool.
    pub connections: PoolFigures,
    /// This node's part of the latest session check.
    pub session: Option<NodeSession<'a>>,
    /// The pool's own figures from php-fpm's status page, when polled.
    pub pool: Option<FpmStatus>,
    pub session_resets: SessionFigures,
}

/// Responses by status class.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Responses {
    #[serde(rename = "2xx")]
    pub s2xx: u64,
    #[serde(rename = "3xx")]
    pub s3xx: u64,
    #[serde(rename = "4xx")]
    pub s4xx: u64,
    #[serde(rename = "5xx")]
    pub s5xx: u64,
}

/// The passive session watch's counters.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SessionFigures {
    /// Requests that carried the session cookie.
    pub with_cookie: u64,
    /// ... and got a new session id back.
    pub resets: u64,
}

/// A node's session verdict, from the latest cluster report.
#[derive(Debug, Serialize)]
pub struct NodeSession<'a> {
    pub verdict: Verdict,
    /// Each with its consequence and why (`harmless` ones are notes).
    pub differences: &'a [Difference],
    pub problems: &'a [String],
    pub warnings: &'a [String],
    /// The session cookie the node sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_cookie: Option<&'a SetCookie>,
    /// Its locking, and what the round trip measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locking: Option<&'a Locking>,
}

impl<'a> NodeSession<'a> {
    fn of(node: &'a NodeReport) -> Self {
        NodeSession {
            verdict: node.verdict,
            differences: &node.differences,
            problems: &node.problems,
            warnings: &node.warnings,
            set_cookie: node.set_cookie.as_ref(),
            locking: node.locking.as_ref(),
        }
    }
}

/// `state` and `drained_by` as named in the JSON.
pub fn state_names(state: State) -> (&'static str, Option<&'static str>) {
    match state {
        State::Up => ("up", None),
        State::Down => ("down", None),
        // "health" is the API's name for the session checker, which is one
        // of the health checks; kept so status.json readers need no change.
        State::DrainedBySession => ("drained", Some("health")),
        State::DrainedByOperator => ("drained", Some("operator")),
    }
}

impl<'a> BackendView<'a> {
    pub fn of(b: &Backend, report: Option<&'a ClusterReport>, now: Instant) -> Self {
        let (state, drained_by) = state_names(b.state(now));
        let s = &b.stats;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let requests = load(&s.requests);
        let responses = Responses {
            s2xx: load(&s.responses_2xx),
            s3xx: load(&s.responses_3xx),
            s4xx: load(&s.responses_4xx),
            s5xx: load(&s.responses_5xx),
        };
        let failures = load(&s.failures);
        let (_, observed, latency_sum) = s.latency.snapshot();
        let latency_mean_ms = (observed > 0).then(|| {
            let ms = latency_sum * 1000.0 / observed as f64;
            (ms * 1000.0).round() / 1000.0
        });
        let session = report
            .and_then(|r| r.nodes.iter().find(|n| n.name == b.name))
            .map(NodeSession::of);
        BackendView {
            name: b.name.clone(),
            address: b.endpoint.to_string(),
            state,
            drained_by,
            enabled: b.is_enabled(),
            alive: b.is_alive(),
            session_ok: b.is_session_ok(),
            weight: b.weight(),
            requests,
            errors: responses.s5xx + failures,
            failures,
            responses,
            latency_mean_ms,
            connections: b.pool.figures(),
            session,
            pool: b.fpm_status().map(|p| FpmStatus::clone(&p)),
            session_resets: SessionFigures {
                with_cookie: load(&s.session_requests),
                resets: load(&s.session_resets),
            },
        }
    }
}

impl<'a> StatusDoc<'a> {
    pub fn build(
        backends: &[Arc<Backend>],
        report: Option<&'a ClusterReport>,
        read_ahead: &ReadAhead,
        compression: &ByteBudget,
        uptime_seconds: u64,
        now: Instant,
    ) -> Self {
        StatusDoc {
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds,
            backends: backends
                .iter()
                .map(|b| BackendView::of(b, report, now))
                .collect(),
            read_ahead: ReadAheadView::of(read_ahead),
            compression: CompressionView::of(compression),
            session: report,
        }
    }
}
