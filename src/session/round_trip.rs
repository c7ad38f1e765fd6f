//! The cross-node round trip, and the whole session check of the cluster
//! built around it ([`SessionChecker`]): probe every node's effective
//! config, decide what is expected, compare and judge each difference, check
//! the store from fpmlb, then the manual test automated: write a session
//! through one node, read it through the next (round the ring, so every node
//! writes once and reads once), read the key straight from the store, destroy
//! it. Each leg also collects what proves or disproves the configuration's
//! judgement (see `session::evidence`): the Set-Cookie the writer sent, the
//! expiry the store gave its session, and whether a session lock outlived the
//! writer's requests (after a write, and after `read_and_close`).
//!
//! Used by `fpmlb check` (once) and by `serve` (every `session_interval`): one
//! check costs four probe requests and a handful of store commands per node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use crate::save_path::{self, Handler, StoreSpec};
use crate::session::compare::{self, Expected};
use crate::session::cookie::SiteOrigin;
use crate::session::evidence::{self, LegEvidence, LockSeen};
use crate::session::node::NodeConfig;
use crate::session::probe::{Probe, ProbeError, ReadAnswer};
use crate::session::rules;
use crate::session::store::{self, ServerCheck, StoreTarget};
use crate::session::verdict::{
    ClusterReport, ClusterWarning, ExpectedSummary, NodeReport, SessionResets, Verdict,
};
use crate::upstream::backend::Backend;

/// PHP's default session cookie name.
const DEFAULT_SESSION_NAME: &str = "PHPSESSID";

/// A backend's passive session-reset figures stand out when at least this
/// many resets were seen...
const RESETS_MIN: u64 = 5;
/// ... and its reset rate is at least this share of its session requests.
const RESETS_MIN_RATE: f64 = 0.2;

/// The call whose lock the round trip measures besides a plain write.
const READ_AND_CLOSE: &str = "session_start(['read_and_close' => true])";

/// What the checker needs from the config.
#[derive(Debug, Clone)]
pub struct SessionChecker {
    pub probe: Probe,
    /// `session:` from the config: (save_handler, save_path), with secrets.
    pub expected: Option<(String, String)>,
    pub store_timeout: Duration,
    /// How fpmlb serves the site: session cookies are judged against it.
    pub listener: SiteOrigin,
    /// Report every setting of every node and where it came from (`--explain`).
    pub explain: bool,
}

/// A node as the checker sees it at the start of a check.
pub struct NodeInput {
    pub backend: Arc<Backend>,
    /// Why it is down, if liveness says so.
    pub down: Option<String>,
}

impl SessionChecker {
    /// A report with liveness alone, when no probe script is configured.
    pub fn liveness_only(nodes: &[NodeInput]) -> ClusterReport {
        let reports: Vec<NodeReport> = nodes
            .iter()
            .map(|n| {
                let mut r = NodeReport::new(&n.backend.name, &n.backend.endpoint.to_string());
                if let Some(why) = &n.down {
                    r.worsen(Verdict::Down);
                    r.problems.push(format!("down: {why}"));
                }
                r
            })
            .collect();
        let ok = reports.iter().all(|r| !r.verdict.fails());
        ClusterReport {
            verdict: if ok { "ok" } else { "fail" },
            expected: None,
            listener: None,
            store: Vec::new(),
            nodes: reports,
            warnings: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Runs one check over `nodes`.
    pub async fn check(&self, nodes: &[NodeInput]) -> ClusterReport {
        let mut reports: Vec<NodeReport> = nodes
            .iter()
            .map(|n| NodeReport::new(&n.backend.name, &n.backend.endpoint.to_string()))
            .collect();
        let mut notes = Vec::new();

        // 1. Effective config, from inside each pool.
        let configs = self.probe_configs(nodes, &mut reports).await;

        // 2. What every node must use.
        let known: Vec<NodeConfig> = configs.iter().flatten().cloned().collect();
        let expected = match self.expected_config(&known) {
            Ok(e) => e,
            Err(why) => {
                notes.push(why);
                None
            }
        };
        let Some(expected) = expected else {
            if known.is_empty() {
                notes.push("no node could be probed: nothing to compare".to_string());
            }
            return self.finish(None, Vec::new(), reports, Vec::new(), notes);
        };
        notes.extend(save_path::warnings(&expected.spec));
        let mut warnings: Vec<ClusterWarning> =
            rules::store_weaknesses(&expected.spec, &expected.ini)
                .into_iter()
                .map(|(consequence, text)| ClusterWarning { consequence, text })
                .collect();

        // 3. Compare, and judge each difference.
        for (report, cfg) in reports.iter_mut().zip(&configs) {
            if let Some(cfg) = cfg {
                report.differences = compare::compare(&expected, cfg, &self.listener);
            }
        }

        // 4. The store, from fpmlb itself.
        let target = self.store_target(&expected.spec, &mut notes);
        let store_checks = match &target {
            Some(t) => store::check_servers(t, self.store_timeout).await,
            None => Vec::new(),
        };
        for check in store_checks.iter().filter(|c| !c.ok) {
            notes.push(format!(
                "store server {} does not answer fpmlb: {}",
                check.server, check.detail
            ));
        }

        // 5. The round trip.
        let ring: Vec<usize> = (0..nodes.len()).filter(|&i| configs[i].is_some()).collect();
        let session_name = expected
            .ini
            .get("session.name")
            .and_then(|v| v.clone())
            .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_string());
        let mut seen: Vec<LegEvidence> = (0..nodes.len()).map(|_| LegEvidence::default()).collect();
        for k in 0..ring.len() {
            let (w, r) = (ring[k], ring[(k + 1) % ring.len()]);
            let (leg, found) = self
                .round_trip(
                    &nodes[w].backend,
                    &nodes[r].backend,
                    &session_name,
                    &expected,
                    configs[w].as_ref(),
                    target.as_ref(),
                )
                .await;
            let passed = match &leg {
                Leg::Ok(_) => Some(true),
                Leg::Skipped(_) | Leg::ReadSkipped(_) => None,
                _ => Some(false),
            };
            if let Some(slot) = seen.get_mut(w) {
                let as_reader = slot.as_reader;
                *slot = found;
                slot.as_writer = passed;
                slot.as_reader = as_reader;
            }
            if let Some(slot) = seen.get_mut(r) {
                slot.as_reader = passed;
            }
            apply_leg(&mut reports, w, r, leg);
        }

        // 6. What the round trip showed, against what the configuration said.
        let reference = expected
            .reference
            .as_ref()
            .and_then(|name| reports.iter().position(|r| &r.name == name));
        evidence::apply(
            &mut reports,
            &configs,
            &seen,
            reference,
            &session_name,
            &self.listener,
        );
        if expected.spec.handler == Handler::Files
            && reports.iter().filter(|r| r.verdict == Verdict::Ok).count() > 1
        {
            warnings.push(ClusterWarning {
                consequence: crate::session::consequence::Consequence::Fragile,
                text: "sessions in files passed the round trip: the nodes share a mount, and lose each other's sessions when it fails".to_string(),
            });
        }
        if self.explain {
            for (report, cfg) in reports.iter_mut().zip(&configs) {
                if let Some(cfg) = cfg {
                    report.settings = crate::session::explain::settings(cfg, &report.differences);
                    report.ini_files = Some(crate::session::verdict::IniFiles {
                        php_ini: cfg.php_ini_loaded_file.clone(),
                        scanned: cfg.php_ini_scanned_files.clone(),
                        user_ini: cfg.user_ini.files.iter().map(|f| f.path.clone()).collect(),
                    });
                }
            }
        }
        let summary = ExpectedSummary {
            save_handler: expected.spec.handler.to_string(),
            save_path: self
                .expected
                .as_ref()
                .map(|(h, p)| save_path::redact_save_path(h, p))
                .unwrap_or_else(|| expected.spec.servers_text()),
            source: expected.reason.clone(),
            session_name: session_name.clone(),
        };
        self.finish(Some(summary), store_checks, reports, warnings, notes)
    }

    /// Step 1: each pool's effective config, with its application's `.user.ini` applied.
    async fn probe_configs(
        &self,
        nodes: &[NodeInput],
        reports: &mut [NodeReport],
    ) -> Vec<Option<NodeConfig>> {
        let probes = nodes.iter().map(|n| async move {
            match &n.down {
                Some(_) => None,
                None => Some(self.probe.config(&n.backend).await),
            }
        });
        let answers = join_all(probes).await;
        let mut configs: Vec<Option<NodeConfig>> = Vec::with_capacity(nodes.len());
        for ((node, report), answer) in nodes.iter().zip(reports.iter_mut()).zip(answers) {
            configs.push(None);
            if let Some(why) = &node.down {
                report.worsen(Verdict::Down);
                report.problems.push(format!("down: {why}"));
                continue;
            }
            match answer {
                None => {}
                Some(Ok(json)) => match serde_json::from_value::<NodeConfig>(json) {
                    Ok(mut cfg) => {
                        cfg.apply_user_ini();
                        report.php_version = Some(cfg.php_version.clone());
                        report.save_handler = Some(cfg.save_handler().to_string());
                        report.save_path = Some(cfg.effective_save_path().to_string());
                        if let Some(slot) = configs.last_mut() {
                            *slot = Some(cfg);
                        }
                    }
                    Err(e) => {
                        report.worsen(Verdict::ProbeMissing);
                        report
                            .problems
                            .push(format!("probe answer not understood: {e}"));
                    }
                },
                Some(Err(ProbeError::Missing(path))) => {
                    report.worsen(Verdict::ProbeMissing);
                    report.problems.push(format!(
                        "probe script {path} missing on this node (php-fpm: Primary script unknown): deploy conf/probe.php there"
                    ));
                }
                Some(Err(ProbeError::Busy(why))) => {
                    report.worsen(Verdict::Unknown);
                    report.problems.push(format!("not checked: {why}"));
                }
                Some(Err(ProbeError::Backend(e))) => {
                    report.worsen(Verdict::Down);
                    report.problems.push(format!("probe request failed: {e}"));
                }
                Some(Err(e @ ProbeError::BadAnswer { .. })) => {
                    report.worsen(Verdict::ProbeMissing);
                    report.problems.push(format!("probe: {e}"));
                }
            }
        }
        configs
    }

    /// The expected config: the config's `session:` section, or the
    /// majority of the nodes.
    fn expected_config(&self, known: &[NodeConfig]) -> Result<Option<Expected>, String> {
        let majority = compare::majority(known);
        match &self.expected {
            Some((handler, path)) => {
                let reference = majority
                    .as_ref()
                    .and_then(|m| m.reference.as_ref())
                    .and_then(|name| known.iter().find(|c| &c.node == name));
                compare::expected_from_config(handler, path, reference)
                    .map(Some)
                    .map_err(|e| format!("session: in the config: {e}"))
            }
            None => Ok(majority),
        }
    }

    /// The store to check from fpmlb, when the handler has one.
    fn store_target(&self, spec: &StoreSpec, notes: &mut Vec<String>) -> Option<StoreTarget> {
        let auth = self
            .expected
            .as_ref()
            .and_then(|(handler, path)| save_path::redis_auth(&Handler::from_name(handler), path));
        if auth.is_none() && spec.options.contains_key("auth") {
            notes.push(
                "the store needs a password fpmlb does not know: write session.save_path (with auth) in fpmlb's config to check it"
                    .to_string(),
            );
        }
        StoreTarget::from_spec(spec, auth)
    }

    /// One leg: write through `writer`, read through `reader`, look in the store, measure
    /// the writer's locks, destroy. Returns whom a failure blames and what was seen.
    async fn round_trip(
        &self,
        writer: &Arc<Backend>,
        reader: &Arc<Backend>,
        session_name: &str,
        expected: &Expected,
        writer_cfg: Option<&NodeConfig>,
        target: Option<&StoreTarget>,
    ) -> (Leg, LegEvidence) {
        let mut seen = LegEvidence::default();
        let token = format!("{:032x}", rand::random::<u128>());
        let wrote = match self.probe.write(writer, &token).await {
            Ok(a) if a.ok => a,
            Ok(a) => {
                seen.set_cookie = a.set_cookie;
                let why = a.error.unwrap_or_else(|| "no error given".into());
                let leg = Leg::WriteFailed(format!(
                    "session write through {} failed: {why}",
                    writer.name
                ));
                return (leg, seen);
            }
            Err(e) => {
                let leg = Leg::Skipped(format!("session write through {}: {e}", writer.name));
                return (leg, seen);
            }
        };
        seen.set_cookie = wrote.set_cookie.clone();
        let Some(id) = wrote.session_id.clone() else {
            let leg = Leg::WriteFailed(format!(
                "session write through {} gave no session id",
                writer.name
            ));
            return (leg, seen);
        };
        let name = wrote
            .session_name
            .clone()
            .unwrap_or_else(|| session_name.to_string());
        seen.session_name = Some(name.clone());
        let handler = &expected.spec.handler;
        let memcached_prefix = writer_cfg.and_then(|c| c.ini_value("memcached.sess_prefix"));
        let redis_prefix = expected.spec.options.get("prefix").map(String::as_str);
        let key_id = match (
            handler,
            writer_cfg.and_then(|c| c.ini_value("memcache.session_prefix_static_key")),
        ) {
            (Handler::Memcache, Some(prefix)) => format!("{prefix}{id}"),
            _ => id.clone(),
        };
        let key = store::session_key(handler, &key_id, memcached_prefix, redis_prefix);
        let lock_key = store::lock_key(handler, &key_id, memcached_prefix, redis_prefix);

        // The expiry the store gave the session, and any lock the write left.
        if let Some(t) = target {
            if let Ok(states) = store::inspect_key(t, &key, self.store_timeout).await {
                seen.ttl = states.first().and_then(|state| state.ttl);
            }
            if let Some(lock) = &lock_key {
                seen.locks.push(
                    self.lock_left(t, handler, lock, "session_write_close()")
                        .await,
                );
            }
        }

        let read = self.probe.read(reader, &name, &id).await;
        let in_store = match target {
            Some(t) => match store::read_key(t, &key, self.store_timeout).await {
                Ok(Some((server, value))) => Some(
                    contains(&value, token.as_bytes())
                        .then_some(server)
                        .ok_or("holds another value"),
                ),
                Ok(None) => Some(Err("not in the store")),
                Err(_) => None,
            },
            None => None,
        };

        seen.in_store = target.map(|_| matches!(in_store, Some(Ok(_))));

        // read_and_close through the writer, then whatever lock it left: measured,
        // then removed so that nothing waits for it.
        let mut lock_cleared = true;
        // Probes before version 2 have no `lock` action.
        let can_read_and_close = writer_cfg.and_then(|c| c.probe_version) >= Some(2);
        if let (Some(t), Some(lock), true) = (target, &lock_key, can_read_and_close) {
            let _ = self.probe.read_and_close(writer, &name, &id).await;
            let left = self.lock_left(t, handler, lock, READ_AND_CLOSE).await;
            if left.held {
                lock_cleared = store::delete_key(t, lock, self.store_timeout).await.is_ok();
            }
            seen.locks.push(left);
        }
        if lock_cleared {
            let _ = self.probe.destroy(writer, &name, &id).await;
        }

        let names = (writer.name.as_str(), reader.name.as_str());
        (judge_leg(names, &read, in_store, &token), seen)
    }

    /// Whether the lock key `lock` is held in the store right after `call` ended.
    async fn lock_left(
        &self,
        target: &StoreTarget,
        handler: &Handler,
        lock: &[u8],
        call: &'static str,
    ) -> LockSeen {
        match store::inspect_key(target, lock, self.store_timeout).await {
            Ok(states) => {
                // Held where any copy holds it (pecl-memcache keeps one per
                // session_redundancy server), for as long as the longest.
                let held: Vec<_> = states
                    .iter()
                    .filter(|s| crate::session::locking::held(handler, &s.value))
                    .collect();
                LockSeen {
                    call,
                    held: !held.is_empty(),
                    remaining: held.iter().filter_map(|s| s.ttl).max(),
                    error: None,
                }
            }
            Err(e) => LockSeen {
                call,
                held: false,
                remaining: None,
                error: Some(e.to_string()),
            },
        }
    }

    fn finish(
        &self,
        expected: Option<ExpectedSummary>,
        store: Vec<ServerCheck>,
        nodes: Vec<NodeReport>,
        warnings: Vec<ClusterWarning>,
        notes: Vec<String>,
    ) -> ClusterReport {
        let mut report = finish(expected, store, nodes, notes);
        report.listener = Some(self.listener.clone());
        report.warnings = warnings;
        report
    }
}

/// Whether the reader gave no answer at all, which load explains: its pool
/// busy, no connection, no response within the timeouts. An answer that
/// came (unusable, cut, a broken stream) is the node's.
fn not_answered(e: &ProbeError) -> bool {
    use crate::fastcgi::exchange::ExchangeError;
    use crate::upstream::exchange::BackendFailure;
    matches!(
        e,
        ProbeError::Busy(_)
            | ProbeError::Backend(
                BackendFailure::Pool(_)
                    | BackendFailure::Exchange(
                        ExchangeError::ReadTimeout(_)
                            | ExchangeError::SendTimeout(_)
                            | ExchangeError::Refused(_)
                    )
            )
    )
}

/// What one leg showed: the session written through `writer` (with
/// `token` as its value) read back through `reader` or not (`read`), and
/// whether fpmlb found it in the store (`in_store`: the server, or why
/// not; None when it could not look). A read the reader never answered
/// (its pool busy with traffic, a timeout under load, a connection
/// refused) is no verdict on sessions: skipped, so that load never drains
/// a node (liveness judges a node that does not answer).
fn judge_leg(
    (writer, reader): (&str, &str),
    read: &Result<ReadAnswer, ProbeError>,
    in_store: Option<Result<String, &str>>,
    token: &str,
) -> Leg {
    // Not answered: the pool busy, no connection, no answer in time. What
    // the store says of the writer still holds (the session is not there).
    if let Err(e) = read
        && not_answered(e)
        && !matches!(in_store, Some(Err(_)))
    {
        return Leg::ReadSkipped(format!("session read through {reader}: {e}"));
    }
    let read_ok = matches!(read, Ok(a) if a.found && a.value.as_deref() == Some(token));
    let detail = match read {
        Ok(a) if !a.found => match &a.error {
            Some(e) if e.contains("decode") => format!("found but not decoded: {e}"),
            _ => "not found".to_string(),
        },
        Ok(a) if a.value.as_deref() != Some(token) => "found with another value".to_string(),
        Ok(_) => "found".to_string(),
        Err(e) => e.to_string(),
    };
    match (read_ok, in_store) {
        (true, Some(Ok(server))) => Leg::Ok(format!(
            "{writer} → {reader}: read back; in the store on {server}"
        )),
        (true, _) => Leg::Ok(format!("{writer} → {reader}: read back")),
        (false, Some(Ok(server))) => Leg::ReaderFailed(format!(
            "{reader} did not read the session written through {writer} ({detail}), though it is in the store on {server}"
        )),
        (false, Some(Err(why))) => Leg::WriterFailed(format!(
            "the session written through {writer} is {why}; {reader} read: {detail}"
        )),
        (false, None) => Leg::BothFailed(format!(
            "session written through {writer} not read through {reader} ({detail})"
        )),
    }
}

/// One leg of the ring, and whom it blames.
#[derive(Debug)]
pub(crate) enum Leg {
    Ok(String),
    /// The write was not made: the writer's warning.
    Skipped(String),
    /// The read was not made (not answered): the reader's warning.
    ReadSkipped(String),
    WriteFailed(String),
    WriterFailed(String),
    ReaderFailed(String),
    BothFailed(String),
}

fn apply_leg(reports: &mut [NodeReport], w: usize, r: usize, leg: Leg) {
    // A failed leg between a node whose config differs and one whose does
    // not is the differing node's doing, wherever the store has the key (with
    // several servers, a node hashing differently writes to the wrong one).
    // Harmless differences count here: when one breaks sharing after all, the
    // round trip must blame it (and overrule the judgement).
    let differs = |i: usize| !reports[i].differences.is_empty();
    let leg = match leg {
        Leg::WriterFailed(t) | Leg::ReaderFailed(t) | Leg::BothFailed(t)
            if differs(w) != differs(r) =>
        {
            if differs(w) {
                Leg::WriterFailed(t)
            } else {
                Leg::ReaderFailed(t)
            }
        }
        other => other,
    };
    match leg {
        Leg::Ok(text) => {
            reports[w].round_trip.push(text.clone());
            if r != w {
                reports[r].round_trip.push(text);
            }
        }
        Leg::Skipped(text) => reports[w]
            .warnings
            .push(format!("round trip not run: {text}")),
        Leg::ReadSkipped(text) => reports[r]
            .warnings
            .push(format!("round trip not finished: {text}")),
        Leg::WriteFailed(text) => {
            reports[w].worsen(Verdict::StoreUnreachable);
            reports[w].problems.push(text);
        }
        Leg::WriterFailed(text) => {
            reports[w].worsen(Verdict::RoundTripFailed);
            reports[w].problems.push(text);
        }
        Leg::ReaderFailed(text) => {
            reports[r].worsen(Verdict::RoundTripFailed);
            reports[r].problems.push(text);
        }
        Leg::BothFailed(text) => {
            reports[w].worsen(Verdict::RoundTripFailed);
            reports[w].problems.push(text.clone());
            reports[r].worsen(Verdict::RoundTripFailed);
            reports[r].problems.push(text);
        }
    }
}

fn finish(
    expected: Option<ExpectedSummary>,
    store: Vec<ServerCheck>,
    nodes: Vec<NodeReport>,
    notes: Vec<String>,
) -> ClusterReport {
    let ok = expected.is_some()
        && store.iter().all(|s| s.ok)
        && nodes.iter().all(|n| !n.verdict.fails());
    ClusterReport {
        verdict: if ok { "ok" } else { "fail" },
        expected,
        listener: None,
        store,
        nodes,
        warnings: Vec::new(),
        notes,
    }
}

/// Adds the passive watch's figures and flags backends whose session reset
/// rate stands out from the others'.
pub fn annotate_resets(report: &mut ClusterReport, figures: &HashMap<String, SessionResets>) {
    let rates: Vec<f64> = figures
        .values()
        .filter(|f| f.with_cookie > 0)
        .map(|f| f.resets as f64 / f.with_cookie as f64)
        .collect();
    for node in report.nodes.iter_mut() {
        let Some(f) = figures.get(&node.name).copied() else {
            continue;
        };
        node.session_resets = Some(f);
        if f.with_cookie == 0 || f.resets < RESETS_MIN {
            continue;
        }
        let rate = f.resets as f64 / f.with_cookie as f64;
        let others: Vec<f64> = rates
            .iter()
            .copied()
            .filter(|r| (*r - rate).abs() > f64::EPSILON)
            .collect();
        let typical = median(&others).unwrap_or(0.0);
        if rate >= RESETS_MIN_RATE && rate > 3.0 * typical {
            node.warnings.push(format!(
                "{} of {} requests that brought a session cookie got a new session back ({:.0}%, others {:.0}%): the application may switch handlers at run time",
                f.resets,
                f.with_cookie,
                rate * 100.0,
                typical * 100.0
            ));
            if node.verdict == Verdict::Ok {
                node.verdict = Verdict::Warning;
            }
        }
    }
}

fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resets(with_cookie: u64, resets: u64) -> SessionResets {
        SessionResets {
            with_cookie,
            resets,
        }
    }

    #[test]
    fn a_backend_whose_resets_stand_out_is_flagged() {
        let mut report = finish(
            None,
            Vec::new(),
            ["a", "b", "c"]
                .iter()
                .map(|n| NodeReport::new(n, "x"))
                .collect(),
            vec![],
        );
        let figures: HashMap<String, SessionResets> = [
            ("a".to_string(), resets(100, 1)),
            ("b".to_string(), resets(100, 60)),
            ("c".to_string(), resets(100, 0)),
        ]
        .into_iter()
        .collect();
        annotate_resets(&mut report, &figures);
        assert_eq!(report.nodes[1].verdict, Verdict::Warning);
        assert!(report.nodes[1].warnings[0].contains("60 of 100"));
        assert_eq!(report.nodes[0].verdict, Verdict::Ok);
        assert_eq!(report.nodes[2].verdict, Verdict::Ok);
    }

    #[test]
    fn few_resets_are_not_flagged() {
        let mut report = finish(None, Vec::new(), vec![NodeReport::new("a", "x")], vec![]);
        let figures = [("a".to_string(), resets(4, 4))].into_iter().collect();
        annotate_resets(&mut report, &figures);
        assert_eq!(report.nodes[0].verdict, Verdict::Ok);
    }

    fn answer(found: bool, value: Option<&str>) -> Result<ReadAnswer, ProbeError> {
        Ok(ReadAnswer {
            ok: true,
            found,
            value: value.map(str::to_string),
            save_handler: None,
            error: None,
        })
    }

    /// A read the reader never answered is no verdict: neither node is
    /// blamed, whatever the store shows (client load must not drain a
    /// node). A read answered wrongly still blames as before.
    #[test]
    fn a_read_not_answered_skips_the_leg() {
        let names = ("web01", "web02");
        let in_store = || Some(Ok::<_, &str>("10.0.0.5:11211".to_string()));
        let busy = Err(ProbeError::Busy("every slot taken".into()));
        let timed_out = Err(ProbeError::Backend(
            crate::fastcgi::exchange::ExchangeError::ReadTimeout(std::time::Duration::from_secs(2))
                .into(),
        ));
        for read in [busy, timed_out] {
            for store in [in_store(), None] {
                let leg = judge_leg(names, &read, store, "t0k");
                assert!(matches!(leg, Leg::ReadSkipped(_)), "{read:?}: {leg:?}");
            }
            // The store's word on the writer still holds.
            let leg = judge_leg(names, &read, Some(Err("not in the store")), "t0k");
            assert!(matches!(leg, Leg::WriterFailed(_)), "{read:?}: {leg:?}");
        }
        // An answer that came, unusable, is the reader's.
        let unusable = Err(ProbeError::Backend(
            crate::fastcgi::exchange::ExchangeError::Unusable(
                crate::fastcgi::exchange::Unusable::TooLarge(4096),
            )
            .into(),
        ));
        assert!(matches!(
            judge_leg(names, &unusable, in_store(), "t0k"),
            Leg::ReaderFailed(_)
        ));
        let missing = Err(ProbeError::BadAnswer {
            status: 500,
            detail: "fatal error".into(),
        });
        assert!(matches!(
            judge_leg(names, &missing, in_store(), "t0k"),
            Leg::ReaderFailed(_)
        ));
        assert!(matches!(
            judge_leg(names, &answer(false, None), in_store(), "t0k"),
            Leg::ReaderFailed(_)
        ));
        assert!(matches!(
            judge_leg(names, &answer(true, Some("other")), None, "t0k"),
            Leg::BothFailed(_)
        ));
        assert!(matches!(
            judge_leg(names, &answer(true, Some("t0k")), in_store(), "t0k"),
            Leg::Ok(_)
        ));
    }

    #[test]
    fn a_cluster_without_expectation_fails() {
        let report = finish(None, Vec::new(), vec![NodeReport::new("a", "x")], vec![]);
        assert!(!report.is_ok());
    }
}
