//! Certificate files watched for changes: their metadata is compared every
//! few seconds, and a change reloads them as SIGHUP would.
//!
//! Polling, not inotify (the notify crate): two `stat`s per certificate every
//! [`WATCH_INTERVAL`] cost nothing, and a poll sees what inotify on the
//! file misses: certbot's `live/` symlinks and Kubernetes' secret volumes
//! replace files by swapping a symlink in a directory above them. `stat`
//! follows the links, so the device, inode, size and mtime of what the path
//! names now are compared.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::certs::load_configured;
use super::resolver::CertResolver;
use crate::config::TlsConfig;

/// How often the files are looked at: a renewed certificate is served
/// within 5 s, at the cost of two `stat` calls per certificate.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// What a file is now: device, inode, size, mtime; `None` when it cannot be read.
type Stamp = Option<(u64, u64, u64, SystemTime)>;

fn stamp(path: &PathBuf) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.modified().ok()?))
}

/// The stamps of every certificate and key file of `tls`.
fn stamps(tls: &TlsConfig) -> Vec<Stamp> {
    tls.certificates
        .iter()
        .flat_map(|c| [stamp(&c.cert), stamp(&c.key)])
        .collect()
}

/// Reloads `tls.certificates` into `resolver` whenever a file changes, until
/// `stop`. A set that does not load (a key written before its certificate,
/// say) is refused with a log line; the running certificates keep serving
/// and the next change is tried again.
pub async fn watch_files(
    tls: TlsConfig,
    resolver: Arc<CertResolver>,
    interval: Duration,
    stop: CancellationToken,
) {
    if tls.certificates.is_empty() {
        return;
    }
    let tls = Arc::new(tls);
    let current = {
        let tls = Arc::clone(&tls);
        tokio::task::spawn_blocking(move || stamps(&tls)).await
    };
    let mut last = current.unwrap_or_default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let job = {
            let tls = Arc::clone(&tls);
            let last = last.clone();
            // Stamps first, then the files: a write during the read changes
            // the stamp again, so the next tick reads once more.
            tokio::task::spawn_blocking(move || {
                let now = stamps(&tls);
                if now == last {
                    return (now, None);
                }
                let loaded = load_configured(&tls);
                (now, Some(loaded))
            })
        };
        let Ok((now, loaded)) = job.await else {
            continue;
        };
        last = now;
        match loaded {
            None => {}
            Some(Ok(files)) => {
                let names: Vec<&str> = files.certs.iter().map(|c| c.origin.as_str()).collect();
                resolver.set_files(files.clone());
                tracing::info!(certificates = ?names, "certificate files changed: reloaded");
            }
            Some(Err(errors)) => {
                for e in errors {
                    tracing::error!(
                        "certificate files changed but refused, the running certificates keep serving: {e}"
                    );
                }
            }
        }
    }
}
