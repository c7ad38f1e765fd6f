//! The periodic side of health: liveness every `interval`, applied through
//! rise/fall hysteresis to each backend's `alive` flag; session checks every
//! `session_interval`, applied to `session_ok` (drain) unless every node
//! fails, in which case none is drained and the log says so every time.
//!
//! Counters are kept by backend name, so a reload that keeps a backend keeps
//! its history and a new backend starts fresh (up, like at start).
//!
//! Each loop asks one narrow trait for its results (`ProbeBackend`,
//! `CheckCluster`), so the loops are tested with scripted outcomes and
//! paused time, without sockets.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::config::MismatchAction;
use crate::session::round_trip::{NodeInput, SessionChecker, annotate_resets};
use crate::session::verdict::{ClusterReport, NodeReport, SessionResets, Verdict};
use crate::upstream::backend::Backend;

use crate::health::counter::Hysteresis;
use crate::health::liveness::{LivenessProbe, Outcome};
use crate::upstream::Upstream;

/// One liveness probe of one backend, as the liveness loop asks for it.
pub trait ProbeBackend: Clone + Send + Sync + 'static {
    /// Probes `backend`; `completed_since_last`: real requests finished on
    /// it since the previous probe.
    fn probe(
        &self,
        backend: &Arc<Backend>,
        completed_since_last: bool,
    ) -> impl Future<Output = Outcome> + Send;
    /// Reads the pool's status page, after a probe found it alive.
    fn poll_status(&self, backend: &Arc<Backend>) -> impl Future<Output = ()> + Send;
}

impl ProbeBackend for LivenessProbe {
    fn probe(
        &self,
        backend: &Arc<Backend>,
        completed_since_last: bool,
    ) -> impl Future<Output = Outcome> + Send {
        self.run(backend, completed_since_last)
    }

    fn poll_status(&self, backend: &Arc<Backend>) -> impl Future<Output = ()> + Send {
        LivenessProbe::poll_status(self, backend)
    }
}

/// One session check of the whole cluster, as the session loop asks for it.
pub trait CheckCluster: Send + Sync + 'static {
    fn check(&self, nodes: &[NodeInput]) -> impl Future<Output = ClusterReport> + Send;
}

impl CheckCluster for SessionChecker {
    fn check(&self, nodes: &[NodeInput]) -> impl Future<Output = ClusterReport> + Send {
        SessionChecker::check(self, nodes)
    }
}

/// Liveness settings from the config.
#[derive(Debug, Clone)]
pub struct LivenessSettings<P = LivenessProbe> {
    pub probe: P,
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
pub async fn run_liveness<P: ProbeBackend>(
    upstream: Arc<Upstream>,
    settings: LivenessSettings<P>,
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
                let outcome = probe.probe(&backend, completed).await;
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
            if let Outcome::Unknown(why) = &outcome {
                // fpmlb's own shortage says nothing of the backend.
                tracing::warn!(backend = %backend.name, "liveness check not made, state kept: {why}");
                continue;
            }
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
pub struct SessionLoop<C = SessionChecker> {
    pub upstream: Arc<Upstream>,
    pub checker: C,
    pub interval: Duration,
    pub action: MismatchAction,
    /// The session cookie name the passive watch looks for.
    pub session_cookie: Arc<ArcSwap<String>>,
    /// The latest report, for the status page.
    pub latest: Arc<ArcSwap<Option<ClusterReport>>>,
}

impl<C: CheckCluster> SessionLoop<C> {
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

/// What failed on a node, for a log line: its differences and problems
/// quote what the node and the store said, escaped here.
fn node_summary(n: &NodeReport) -> String {
    let mut parts: Vec<String> = n.differences.iter().map(ToString::to_string).collect();
    parts.extend(n.problems.iter().cloned());
    crate::fastcgi::exchange::escape_log_text(parts.join("; ").as_bytes())
}

fn summary(report: &ClusterReport) -> String {
    report
        .nodes
        .iter()
        .map(|n| format!("{}: {} ({})", n.name, n.verdict.as_str(), node_summary(n)))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    //! The loops with scripted results and paused time: checks run at 0 s,
    //! 1 s, 2 s... (session checks every 10 s), and the tests look half-way
    //! between two, when the runtime has nothing left to do.

    use std::sync::Mutex;
    use std::sync::atomic::AtomicU64;

    use tokio::time::sleep;

    use super::*;
    use crate::config::Balance;
    use crate::fastcgi::conn::Endpoint;
    use crate::upstream::BackendSet;
    use crate::upstream::backend::State;

    const INTERVAL: Duration = Duration::from_secs(1);
    const SESSION_INTERVAL: Duration = Duration::from_secs(10);

    fn backend(name: &str, port: u16) -> Arc<Backend> {
        crate::upstream::backend::for_tests(name, Endpoint::Tcp(([127, 0, 0, 1], port).into()))
    }

    fn upstream(backends: &[&Arc<Backend>]) -> Arc<Upstream> {
        let table = backends.iter().map(|b| Arc::clone(b)).collect();
        Arc::new(Upstream::new(BackendSet::new(table, Balance::RoundRobin)))
    }

    /// Liveness outcomes set by the test (Alive unless set), and what the
    /// loop asked.
    #[derive(Clone, Default)]
    struct ScriptedProbe {
        outcomes: Arc<Mutex<HashMap<String, Outcome>>>,
        /// Per backend: the `completed_since_last` of every probe.
        probes: Arc<Mutex<HashMap<String, Vec<bool>>>>,
        polls: Arc<Mutex<HashMap<String, u32>>>,
    }

    impl ScriptedProbe {
        fn set(&self, name: &str, outcome: Outcome) {
            self.outcomes.lock().unwrap().insert(name.into(), outcome);
        }
        fn probes(&self, name: &str) -> Vec<bool> {
            self.probes
                .lock()
                .unwrap()
                .get(name)
                .cloned()
                .unwrap_or_default()
        }
        fn polls(&self, name: &str) -> u32 {
            self.polls.lock().unwrap().get(name).copied().unwrap_or(0)
        }
    }

    impl ProbeBackend for ScriptedProbe {
        async fn probe(&self, backend: &Arc<Backend>, completed_since_last: bool) -> Outcome {
            let name = &backend.name;
            let mut probes = self.probes.lock().unwrap();
            probes
                .entry(name.clone())
                .or_default()
                .push(completed_since_last);
            let outcomes = self.outcomes.lock().unwrap();
            outcomes.get(name).cloned().unwrap_or(Outcome::Alive)
        }
        async fn poll_status(&self, backend: &Arc<Backend>) {
            *self
                .polls
                .lock()
                .unwrap()
                .entry(backend.name.clone())
                .or_default() += 1;
        }
    }

    /// Starts the liveness loop with rise 2, fall 3.
    fn start_liveness(
        upstream: Arc<Upstream>,
        probe: &ScriptedProbe,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let settings = LivenessSettings {
            probe: probe.clone(),
            interval: INTERVAL,
            rise: 2,
            fall: 3,
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_liveness(upstream, settings, shutdown.clone()));
        (shutdown, task)
    }

    #[tokio::test(start_paused = true)]
    async fn fall_failures_take_a_backend_down_and_rise_successes_bring_it_back() {
        let (a, b) = (backend("a", 1), backend("b", 2));
        let probe = ScriptedProbe::default();
        probe.set("a", Outcome::Dead("connect: refused".into()));
        let (shutdown, task) = start_liveness(upstream(&[&a, &b]), &probe);

        sleep(INTERVAL / 2).await;
        assert_eq!(probe.probes("a").len(), 1);
        assert!(a.is_alive(), "1 failure of 3");
        sleep(INTERVAL).await;
        assert!(a.is_alive(), "2 failures of 3");
        sleep(INTERVAL).await;
        assert_eq!(probe.probes("a").len(), 3);
        assert!(!a.is_alive(), "3rd failure in a row");
        assert_eq!(a.state(tokio::time::Instant::now()), State::Down);
        assert!(b.is_alive());

        probe.set("a", Outcome::Alive);
        sleep(INTERVAL).await;
        assert!(!a.is_alive(), "1 success of 2");
        sleep(INTERVAL).await;
        assert!(a.is_alive(), "2nd success in a row");
        assert_eq!(
            probe.polls("a"),
            2,
            "the status page is polled after good probes only"
        );
        assert_eq!(probe.polls("b"), 5);

        shutdown.cancel();
        task.await.unwrap();
    }

    /// Checks fpmlb could not make (its own descriptors ran out) leave a
    /// backend as it was, up or down, and break no run of failures.
    #[tokio::test(start_paused = true)]
    async fn checks_fpmlb_could_not_make_change_nothing() {
        let a = backend("a", 1);
        let probe = ScriptedProbe::default();
        probe.set("a", Outcome::Unknown("connect: Too many open files".into()));
        let (shutdown, task) = start_liveness(upstream(&[&a]), &probe);
        sleep(INTERVAL / 2).await;
        for _ in 0..5 {
            sleep(INTERVAL).await;
        }
        assert!(probe.probes("a").len() >= 5);
        assert!(a.is_alive(), "no verdict: still up");
        // Down, it stays down: an unknown check is no success either.
        probe.set("a", Outcome::Dead("connect: refused".into()));
        for _ in 0..3 {
            sleep(INTERVAL).await;
        }
        assert!(!a.is_alive());
        probe.set("a", Outcome::Unknown("connect: Too many open files".into()));
        for _ in 0..5 {
            sleep(INTERVAL).await;
        }
        assert!(!a.is_alive(), "no verdict: still down");
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_pool_stays_up_and_the_probe_hears_of_completed_requests() {
        let a = backend("a", 1);
        let probe = ScriptedProbe::default();
        probe.set("a", Outcome::Busy);
        let (shutdown, task) = start_liveness(upstream(&[&a]), &probe);

        sleep(INTERVAL / 2).await;
        a.record_exchange(200, Duration::from_millis(5));
        sleep(INTERVAL).await;
        sleep(INTERVAL).await;
        sleep(INTERVAL).await;
        assert!(a.is_alive(), "busy is not dead");
        assert_eq!(probe.probes("a"), [false, true, false, false]);
        assert_eq!(probe.polls("a"), 0, "no status poll of a busy pool");

        shutdown.cancel();
        task.await.unwrap();
    }

    /// Session verdicts set by the test (Ok unless set); `down` nodes get
    /// Down, as the real checker gives them.
    #[derive(Clone, Default)]
    struct ScriptedCheck {
        verdicts: Arc<Mutex<HashMap<String, Verdict>>>,
        runs: Arc<AtomicU64>,
    }

    impl ScriptedCheck {
        fn set(&self, name: &str, verdict: Verdict) {
            self.verdicts.lock().unwrap().insert(name.into(), verdict);
        }
    }

    impl CheckCluster for ScriptedCheck {
        async fn check(&self, nodes: &[NodeInput]) -> ClusterReport {
            self.runs.fetch_add(1, Ordering::Relaxed);
            let verdicts = self.verdicts.lock().unwrap();
            let nodes: Vec<NodeReport> = nodes
                .iter()
                .map(|n| {
                    let mut r = NodeReport::new(&n.backend.name, &n.backend.endpoint.to_string());
                    if n.down.is_some() {
                        r.worsen(Verdict::Down);
                    }
                    if let Some(v) = verdicts.get(&n.backend.name) {
                        r.worsen(*v);
                    }
                    r
                })
                .collect();
            let ok = nodes.iter().all(|n| !n.verdict.fails());
            ClusterReport {
                verdict: if ok { "ok" } else { "fail" },
                expected: None,
                listener: None,
                store: Vec::new(),
                nodes,
                warnings: Vec::new(),
                notes: Vec::new(),
            }
        }
    }

    /// Starts the session loop over `backends`.
    fn start_sessions(
        backends: &[&Arc<Backend>],
        check: &ScriptedCheck,
        action: MismatchAction,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let sessions = SessionLoop {
            upstream: upstream(backends),
            checker: check.clone(),
            interval: SESSION_INTERVAL,
            action,
            session_cookie: Arc::new(ArcSwap::from_pointee("PHPSESSID".to_string())),
            latest: Arc::new(ArcSwap::from_pointee(None)),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(sessions.run(shutdown.clone()));
        (shutdown, task)
    }

    fn states(backends: &[&Arc<Backend>]) -> Vec<State> {
        let now = tokio::time::Instant::now();
        backends.iter().map(|b| b.state(now)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_node_is_drained_and_comes_back_when_it_passes() {
        let (a, b, c) = (backend("a", 1), backend("b", 2), backend("c", 3));
        let check = ScriptedCheck::default();
        check.set("b", Verdict::Mismatch);
        let (shutdown, task) = start_sessions(&[&a, &b, &c], &check, MismatchAction::Drain);

        sleep(SESSION_INTERVAL / 2).await;
        assert_eq!(check.runs.load(Ordering::Relaxed), 1);
        use State::{DrainedBySession, Up};
        assert_eq!(states(&[&a, &b, &c]), [Up, DrainedBySession, Up]);

        check.set("b", Verdict::Ok);
        sleep(SESSION_INTERVAL).await;
        assert_eq!(check.runs.load(Ordering::Relaxed), 2);
        assert_eq!(states(&[&a, &b, &c]), [Up, Up, Up]);

        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_node_fails_none_is_drained() {
        let (a, b) = (backend("a", 1), backend("b", 2));
        let check = ScriptedCheck::default();
        check.set("b", Verdict::RoundTripFailed);
        let (shutdown, task) = start_sessions(&[&a, &b], &check, MismatchAction::Drain);

        sleep(SESSION_INTERVAL / 2).await;
        assert!(a.is_session_ok());
        assert!(!b.is_session_ok(), "one node of two fails: drained");

        check.set("a", Verdict::StoreUnreachable);
        sleep(SESSION_INTERVAL).await;
        assert_eq!(check.runs.load(Ordering::Relaxed), 2);
        assert!(a.is_session_ok(), "every node fails: none drained");
        assert!(
            b.is_session_ok(),
            "every node fails: the drained one is back"
        );

        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_and_down_keep_the_last_session_verdict() {
        let (a, b) = (backend("a", 1), backend("b", 2));
        let check = ScriptedCheck::default();
        check.set("b", Verdict::Mismatch);
        let (shutdown, task) = start_sessions(&[&a, &b], &check, MismatchAction::Drain);

        sleep(SESSION_INTERVAL / 2).await;
        assert!(!b.is_session_ok());
        // Its pool was busy: not checked, still drained.
        check.set("b", Verdict::Unknown);
        sleep(SESSION_INTERVAL).await;
        assert!(!b.is_session_ok());
        // Liveness says down: not a session verdict, still drained.
        check.set("b", Verdict::Ok);
        b.set_alive(false);
        sleep(SESSION_INTERVAL).await;
        assert_eq!(check.runs.load(Ordering::Relaxed), 3);
        assert!(!b.is_session_ok());
        b.set_alive(true);
        sleep(SESSION_INTERVAL).await;
        assert!(b.is_session_ok(), "checked and consistent again");

        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn warn_only_never_drains() {
        let (a, b) = (backend("a", 1), backend("b", 2));
        let check = ScriptedCheck::default();
        check.set("b", Verdict::Mismatch);
        let (shutdown, task) = start_sessions(&[&a, &b], &check, MismatchAction::Warn);

        sleep(SESSION_INTERVAL / 2).await;
        assert_eq!(check.runs.load(Ordering::Relaxed), 1);
        assert!(b.is_session_ok());

        shutdown.cancel();
        task.await.unwrap();
    }

    /// A node's own words (an error its probe reported, an ini value) reach
    /// the log escaped: a node cannot forge log lines by failing its check.
    #[test]
    fn a_node_summary_is_one_escaped_line() {
        let mut n = crate::session::verdict::NodeReport::new("web01", "x");
        n.problems
            .push("probe: bad\n2026-12-05T00:00:00Z  WARN forged\u{1b}[31m".to_string());
        let line = node_summary(&n);
        assert!(!line.contains(['\n', '\u{1b}']), "{line}");
        assert!(line.contains("bad\\n2026"), "{line}");
    }
}
