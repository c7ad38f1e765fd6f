//! `fpmlb check`: one run of every check, without serving, for cron, CI and
//! monitoring, and a warning for each node php-fpm's PATH_INFO walk-back
//! could turn against (`session::node_safety`). Exit status: 0 consistent, 1 a problem found, 2 could not
//! check (a config error is caught before this runs).

use std::sync::Arc;

use futures_util::future::join_all;

use crate::config::Config;
use crate::daemon::{self, DaemonError};
use crate::health::liveness::Outcome;
use crate::session::node_safety;
use crate::session::round_trip::{NodeInput, SessionChecker};
use crate::session::verdict::{ClusterReport, Verdict};
use crate::upstream::discovery;

/// Runs liveness on every backend, then the session check; with `explain`, the
/// report carries every setting of every node and where it came from.
pub async fn run(config: &Config, explain: bool) -> Result<ClusterReport, DaemonError> {
    let (set, _) = discovery::build_set(config, None).await?;
    let backends = set.backends;
    let liveness = daemon::liveness_settings(config).probe;
    let checks = backends.iter().map(|b| {
        let liveness = liveness.clone();
        let b = Arc::clone(b);
        async move {
            let outcome = liveness.run(&b, false).await;
            NodeInput {
                backend: b,
                down: if let Outcome::Dead(why) | Outcome::Unknown(why) = outcome {
                    Some(why)
                } else {
                    None
                },
            }
        }
    });
    let nodes = join_all(checks).await;
    let Some(mut checker) = daemon::session_checker(config) else {
        // Liveness only: no probe script configured.
        let mut report = SessionChecker::liveness_only(&nodes);
        report
            .notes
            .push("health.probe_script is not set: only liveness was checked".to_string());
        return Ok(report);
    };
    checker.explain = explain;
    let mut report = checker.check(&nodes).await;
    // Which nodes php-fpm's PATH_INFO walk-back could turn against: a
    // warning each, the verdict otherwise unchanged.
    let exposures = nodes.iter().filter(|n| n.down.is_none()).map(|n| {
        let probe = &checker.probe;
        async move { (n, node_safety::inspect(probe, &n.backend).await) }
    });
    for (node, exposure) in join_all(exposures).await {
        let Ok(exposure) = exposure else { continue }; // the session check says why
        let warnings = node_safety::warnings(&exposure);
        if let Some(r) = report
            .nodes
            .iter_mut()
            .find(|r| r.name == node.backend.name)
            && !warnings.is_empty()
        {
            r.warnings.extend(warnings);
            r.worsen(Verdict::Warning);
        }
    }
    Ok(report)
}
