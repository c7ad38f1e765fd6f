//! Verdicts: what fpmlb concludes about each node and the cluster, in a form
//! both `fpmlb check` (text, JSON) and the status page show.

use serde::Serialize;

use crate::session::compare::Difference;
use crate::session::consequence::Consequence;
use crate::session::cookie::{SetCookie, SiteOrigin};
use crate::session::store::ServerCheck;

/// One node's verdict, worst first when several apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Liveness failed: no answer from the pool.
    Down,
    /// The probe script is not deployed (php-fpm: Primary script unknown).
    ProbeMissing,
    /// Its session config differs from the expected one.
    Mismatch,
    /// PHP on the node cannot reach the store.
    StoreUnreachable,
    /// The write-here, read-there round trip failed.
    RoundTripFailed,
    /// Could not be checked this time (pool busy with traffic): no change.
    Unknown,
    /// Consistent, with something worth a look.
    Warning,
    Ok,
}

impl Verdict {
    /// Whether this verdict fails the node (drains it in `serve`).
    pub fn fails(self) -> bool {
        !matches!(self, Verdict::Ok | Verdict::Warning | Verdict::Unknown)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Down => "down",
            Verdict::ProbeMissing => "probe_missing",
            Verdict::Mismatch => "mismatch",
            Verdict::StoreUnreachable => "store_unreachable",
            Verdict::RoundTripFailed => "round_trip_failed",
            Verdict::Unknown => "unknown",
            Verdict::Warning => "warning",
            Verdict::Ok => "ok",
        }
    }
}

/// What was found about one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub address: String,
    pub verdict: Verdict,
    /// Effective settings reported by the probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub php_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_handler: Option<String>,
    /// As PHP has it, credentials replaced by digests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_path: Option<String>,
    /// Each differing setting, expected vs found, with its consequence; also what the
    /// Set-Cookie and the lock measurement showed. `harmless` ones are notes.
    pub differences: Vec<Difference>,
    /// Failures in words (a round trip that failed, the store unreachable...).
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// The round trip this node took part in, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub round_trip: Vec<String>,
    /// Requests that carried a session cookie and got a new session back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_resets: Option<SessionResets>,
    /// The session cookie this node sent when it started the round trip's session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_cookie: Option<SetCookie>,
    /// How this node locks sessions, and what the round trip measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locking: Option<Locking>,
    /// Every session-relevant setting, where it came from (`fpmlb check --explain`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<SettingReport>,
    /// The ini files PHP read for this pool (`fpmlb check --explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ini_files: Option<IniFiles>,
}

/// The ini files behind a node's settings.
#[derive(Debug, Clone, Serialize)]
pub struct IniFiles {
    /// `php_ini_loaded_file()`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub php_ini: Option<String>,
    /// `php_ini_scanned_files()`.
    pub scanned: Vec<String>,
    /// The application's `.user.ini` files that were found.
    pub user_ini: Vec<String>,
}

/// A node's session locking.
#[derive(Debug, Clone, Serialize)]
pub struct Locking {
    /// The settings, in words (`memcached.sess_locking on, waits 150..150 ms × 5 retries,
    /// expires after max_execution_time 30 s`).
    pub settings: String,
    /// What the round trip found in the store right after its requests ended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub measured: Vec<String>,
}

/// One setting of one node, for `--explain`.
#[derive(Debug, Clone, Serialize)]
pub struct SettingReport {
    pub setting: String,
    /// The value the application's scripts get.
    pub value: String,
    /// Where it comes from, as far as PHP tells.
    pub source: String,
    /// The reference value when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consequence: Option<Consequence>,
}

impl NodeReport {
    pub fn new(name: &str, address: &str) -> NodeReport {
        NodeReport {
            name: name.to_string(),
            address: address.to_string(),
            verdict: Verdict::Ok,
            php_version: None,
            save_handler: None,
            save_path: None,
            differences: Vec::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
            round_trip: Vec::new(),
            session_resets: None,
            set_cookie: None,
            locking: None,
            settings: Vec::new(),
            ini_files: None,
        }
    }

    /// The worst consequence among the differences that count.
    pub fn worst(&self) -> Option<Consequence> {
        self.differences
            .iter()
            .filter(|d| d.counts())
            .map(|d| d.consequence)
            .min()
    }

    /// Lowers the verdict to `v` if `v` is worse.
    pub fn worsen(&mut self, v: Verdict) {
        if v < self.verdict {
            self.verdict = v;
        }
    }
}

/// The passive watch's figures for a node.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SessionResets {
    pub with_cookie: u64,
    pub resets: u64,
}

/// Where the expected session config came from.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectedSummary {
    pub save_handler: String,
    pub save_path: String,
    /// Why this is expected: the config, or which nodes make the majority.
    pub source: String,
    /// The session cookie's name (session.name) every node should use.
    pub session_name: String,
}

/// Something about the whole cluster, said once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterWarning {
    pub consequence: Consequence,
    pub text: String,
}

/// The whole cluster's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// "ok" when every node is consistent and the store answers, else "fail".
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<ExpectedSummary>,
    /// How fpmlb serves the site, which cookies are judged against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<SiteOrigin>,
    /// The store's servers as fpmlb itself sees them.
    pub store: Vec<ServerCheck>,
    pub nodes: Vec<NodeReport>,
    /// Weaknesses of the whole cluster (a single store server, no locking...), said once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<ClusterWarning>,
    /// Cluster-wide remarks.
    pub notes: Vec<String>,
}

impl ClusterReport {
    pub fn is_ok(&self) -> bool {
        self.verdict == "ok"
    }
}
