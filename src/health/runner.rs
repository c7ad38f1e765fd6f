//! The periodic side of health: liveness every `interval`, applied through
//! rise/fall hysteresis to each backend's `alive` flag; session checks every
//! `session_interval`, applied to `session_ok` (drain) unless every node
//! fails, in which case none is drained and the log says so every time.
//!
//! Counters are kept by backend name, so a reload that keeps a backend keeps
//! its history and a new backend starts fresh (up, like at start).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::config::MismatchAction;
use crate::session::check::{NodeInput, SessionChecker, annotate_resets};
use crate::session::verdict::{ClusterReport, NodeReport, SessionResets, Verdict};
use crate::upstream::backend::Backend;

use crate::health::counter::Hysteresis;
use crate::health::liveness::{LivenessProbe, Outcome};
use crate::upstream::Upstream;

/// Liveness settings from the config.
#[derive(Debug, Clone)]
pub struct LivenessSettings {
    pub probe: LivenessProbe,
    pub interval: Duration,
    pub rise: u32,
    pub fall: u32,
}

struct Track {
    hysteresis: Hysteresis,
    /// The backend's completed-request count at the previous check.
    requests_seen: u64,
    last_outcome: Option<Outcome>,
}

/// Runs liveness checks until `shutdown`.
pub async fn run_liveness(
    upstream: Arc<Upstream>,
    settings: LivenessSettings,
    shutdown: CancellationToken,
) {
    let mut tracks: HashMap<String, Track> = HashMap::new();
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let set = upstream.snapshot();
        let checks = set.backends.iter().map(|b| {
            let track = tracks.entry(b.name.clone()).or_insert_with(|| Track {
                hysteresis: Hysteresis::with_state(settings.rise, settings.fall, b.is_alive()),
                requests_seen: b.stats.requests.load(Ordering::Relaxed),
                last_outcome: None,
            });
            let now_requests = b.stats.requests.load(Ordering::Relaxed);
            let completed = now_requests > track.requests_seen;
            track.requests_seen = now_requests;
            let probe = settings.probe.clone();
            let backend = Arc::clone(b);
            async move {
                let outcome = probe.run(&backend, completed).await;
                if outcome == Outcome::Alive {
                    probe.poll_status(&backend).await;
                }
                (backend, outcome)
            }
        });
        let results = join_all(checks.collect::<Vec<_>>()).await;
        for (backend, outcome) in results {
            let Some(track) = tracks.get_mut(&backend.name) else {
                continue;
            };
            if let Some(up) = track.hysteresis.record(outcome.is_alive()) {
                backend.set_alive(up);
                match (&outcome, up) {
                    (Outcome::Dead(why), false) => {
                        tracing::warn!(backend = %backend.name, "backend DOWN after {} failed checks: {why}", settings.fall);
                    }
                    _ => {
                        tracing::info!(backend = %backend.name, "backend UP after {} good checks", settings.rise)
                    }
                }
            } else if let Outcome::Dead(why) = &outcome {
                tracing::debug!(backend = %backend.name, "liveness check failed: {why}");
            }
            if outcome == Outcome::Busy && track.last_outcome != Some(Outcome::Busy) {
                tracing::info!(backend = %backend.name, "pool saturated: every connection busy, judged alive by its traffic");
            }
            track.last_outcome = Some(outcome);
        }
        let names: Vec<&str> = set.backends.iter().map(|b| b.name.as_str()).collect();
        tracks.retain(|name, _| names.contains(&name.as_str()));
    }
}

/// Session checks every `interval`, applied to each backend's `session_ok`.
pub struct SessionLoop {
    pub upstream: Arc<Upstream>,
    pub checker: SessionChecker,
    pub interval: Duration,
    pub action: MismatchAction,
    /// The session cookie name the passive watch looks for.
    pub session_cookie: Arc<ArcSwap<String>>,
    /// The latest report, for the status page.
    pub latest: Arc<ArcSwap<Option<ClusterReport>>>,
}

impl SessionLoop {
    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round: u64 = 0;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            round += 1;
            let report = self.check_once().await;
            tracing::info!(round, verdict = report.verdict, "session check done");
            self.latest.store(Arc::new(Some(report)));
        }
    }

    /// One check, applied.
    pub async fn check_once(&self) -> ClusterReport {
        let set = self.upstream.snapshot();
        let nodes: Vec<NodeInput> = set
            .backends
            .iter()
            .map(|b| NodeInput {
                backend: Arc::clone(b),
                down: (!b.is_alive()).then(|| "liveness checks fail".to_string()),
            })
            .collect();
        let mut report = self.checker.check(&nodes).await;
        let figures: HashMap<String, SessionResets> = set
            .backends
            .iter()
            .map(|b| {
                let f = SessionResets {
                    with_cookie: b.stats.session_requests.load(Ordering::Relaxed),
                    resets: b.stats.session_resets.load(Ordering::Relaxed),
                };
                (b.name.clone(), f)
            })
            .collect();
        annotate_resets(&mut report, &figures);
        if let Some(expected) = &report.expected
            && **self.session_cookie.load() != expected.session_name
        {
            self.session_cookie
                .store(Arc::new(expected.session_name.clone()));
        }
        self.apply(&set.backends, &report);
        report
    }

    fn apply(&self, backends: &[Arc<Backend>], report: &ClusterReport) {
        let judged: Vec<(&Arc<Backend>, &NodeReport)> = backends
            .iter()
            .filter_map(|b| {
                report
                    .nodes
                    .iter()
                    .find(|n| n.name == b.name)
                    .map(|n| (b, n))
            })
            .collect();
        let failing = judged.iter().filter(|(_, n)| n.verdict.fails()).count();
        if failing > 0 && failing == judged.len() {
            tracing::error!(
                "EVERY node fails the session check: none is drained, users may be logged out at random. {}",
                summary(report)
            );
            for (b, _) in &judged {
                b.set_session_ok(true);
            }
            return;
        }
        for (b, n) in judged {
            if n.verdict == Verdict::Unknown || n.verdict == Verdict::Down {
                continue; // not a session verdict: keep what we had
            }
            let fails = n.verdict.fails();
            if fails {
                tracing::warn!(backend = %b.name, verdict = n.verdict.as_str(), "session check failed: {}", node_summary(n));
            }
            let ok = !fails || self.action == MismatchAction::Warn;
            if b.is_session_ok() != ok {
                if ok {
                    tracing::info!(backend = %b.name, "session check passes again: back in rotation");
                } else {
                    tracing::warn!(backend = %b.name, "DRAINED: its sessions are not shared with the other nodes");
                }
                b.set_session_ok(ok);
            }
        }
    }
}

fn node_summary(n: &NodeReport) -> String {
    let mut parts: Vec<String> = n.differences.iter().map(ToString::to_string).collect();
    parts.extend(n.problems.iter().cloned());
    parts.join("; ")
}

fn summary(report: &ClusterReport) -> String {
    report
        .nodes
        .iter()
        .map(|n| format!("{}: {} ({})", n.name, n.verdict.as_str(), node_summary(n)))
        .collect::<Vec<_>>()
        .join(" | ")
}
