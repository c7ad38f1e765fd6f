//! The periodic side of health: liveness every `interval`, applied through
//! rise/fall hysteresis to each backend's `alive` flag.
//!
//! Counters are kept by backend name, so a reload that keeps a backend keeps
//! its history and a new backend starts fresh (up, like at start).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::health::counter::Hysteresis;
use crate::health::liveness::{LivenessCheck, Outcome};
use crate::upstream::Upstream;

/// Liveness settings from the config.
#[derive(Debug, Clone)]
pub struct LivenessSettings {
    pub check: LivenessCheck,
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
                hysteresis: Hysteresis::new(settings.rise, settings.fall),
                requests_seen: b.stats.requests.load(Ordering::Relaxed),
                last_outcome: None,
            });
            let now_requests = b.stats.requests.load(Ordering::Relaxed);
            let completed = now_requests > track.requests_seen;
            track.requests_seen = now_requests;
            let check = settings.check.clone();
            let backend = Arc::clone(b);
            async move {
                let outcome = check.run(&backend, completed).await;
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
