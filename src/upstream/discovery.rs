//! Backend tables from the config: resolving addresses, and building a new
//! table that keeps what it can of the old one (on reload, or when DNS
//! answers change).
//!
//! A hostname (`php.internal:9000`) is resolved at start and every
//! `resolve_interval`; each address it resolves to is a backend named
//! `name#ip`, so the DNS name of an autoscaling group or a Kubernetes
//! headless service works. A backend whose name, address and pool settings
//! did not change is kept as it is, with its connections, counters and
//! health; only its weight is updated.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{BackendAddress, BackendConfig, Config, DEFAULT_MAX_CONNS};
use crate::fastcgi::conn::Endpoint;
use crate::health::passive::FailureWindow;
use crate::upstream::BackendSet;
use crate::upstream::backend::Backend;
use crate::upstream::pool::{Pool, PoolSettings};

/// Most connections a backend without `max_conns` may get when its status
/// page reports a larger `pm = static` pool.
pub const AUTO_CAP_CEILING: usize = 256;

/// A backend's address could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("backend {name}: cannot resolve {address}: {source}")]
pub struct ResolveError {
    pub name: String,
    pub address: String,
    pub source: std::io::Error,
}

/// What a backend is built from, beyond its address: a change needs a new
/// backend (new pool), anything else (weight) is updated in place.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendShape {
    pub pool: PoolSettings,
    pub group: String,
    pub backup: bool,
    pub max_fails: u32,
    pub fail_timeout: Duration,
}

/// The endpoints of one configured backend, with their names.
pub async fn resolve(cfg: &BackendConfig) -> Result<Vec<(String, Endpoint)>, ResolveError> {
    match &cfg.address {
        BackendAddress::Unix(path) => Ok(vec![(cfg.name.clone(), Endpoint::Unix(path.clone()))]),
        BackendAddress::Tcp { host, port } => {
            let literal = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = literal.parse::<IpAddr>() {
                return Ok(vec![(
                    cfg.name.clone(),
                    Endpoint::Tcp(SocketAddr::new(ip, *port)),
                )]);
            }
            let found = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|source| ResolveError {
                    name: cfg.name.clone(),
                    address: cfg.address.to_string(),
                    source,
                })?;
            let mut addrs: Vec<SocketAddr> = found.collect();
            addrs.sort();
            addrs.dedup();
            Ok(addrs
                .into_iter()
                .map(|a| (format!("{}#{}", cfg.name, a.ip()), Endpoint::Tcp(a)))
                .collect())
        }
    }
}

/// Whether any backend is named by a hostname (worth resolving again).
pub fn has_hostnames(config: &Config) -> bool {
    config.backends.iter().any(|b| match &b.address {
        BackendAddress::Tcp { host, .. } => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_err(),
        BackendAddress::Unix(_) => false,
    })
}

fn shape(config: &Config, cfg: &BackendConfig) -> BackendShape {
    // With max_conns set, that is the cap. Without it, the pool may grow to
    // AUTO_CAP_CEILING but starts at DEFAULT_MAX_CONNS, until php-fpm's
    // status page tells its pm.max_children.
    let ceiling = cfg.max_conns.map_or(AUTO_CAP_CEILING, |m| m as usize);
    BackendShape {
        pool: PoolSettings {
            max_conns: ceiling,
            queue_size: config.queue_size,
            connect_timeout: config.timeouts.connect,
            queue_timeout: config.timeouts.queue,
            idle_timeout: config.timeouts.idle,
        },
        group: cfg.group.clone(),
        backup: cfg.backup,
        max_fails: config.max_fails,
        fail_timeout: config.fail_timeout,
    }
}

/// Builds one backend from its config and resolved endpoint.
pub fn build_backend(
    config: &Config,
    cfg: &BackendConfig,
    name: String,
    endpoint: Endpoint,
) -> Arc<Backend> {
    let shape = shape(config, cfg);
    let pool = Pool::new(endpoint.clone(), shape.pool.clone());
    if cfg.max_conns.is_none() {
        pool.set_cap(DEFAULT_MAX_CONNS as usize);
    }
    let failures = FailureWindow::new(shape.max_fails, shape.fail_timeout);
    let mut backend = Backend::new(name, endpoint, cfg.weight, pool, failures);
    backend.auto_cap = cfg.max_conns.is_none();
    backend.group.clone_from(&cfg.group);
    backend.backup = cfg.backup;
    backend.shape = Some(shape);
    Arc::new(backend)
}

/// What a new table changed.
#[derive(Debug, Default)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub kept: usize,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Builds the table for `config`, keeping backends of `previous` that did
/// not change. A hostname that fails to resolve while there is a previous
/// table keeps its previous backends (a DNS hiccup must not empty the
/// cluster); at start it is an error.
pub async fn build_set(
    config: &Config,
    previous: Option<&BackendSet>,
) -> Result<(BackendSet, Changes), ResolveError> {
    let mut backends: Vec<Arc<Backend>> = Vec::new();
    let mut changes = Changes::default();
    for cfg in &config.backends {
        let resolved = match resolve(cfg).await {
            Ok(r) => r,
            Err(e) => match previous {
                Some(prev) => {
                    tracing::warn!("{e}; keeping its previous addresses");
                    let kept = prev.backends.iter().filter(|b| {
                        b.name == cfg.name || b.name.starts_with(&format!("{}#", cfg.name))
                    });
                    for b in kept {
                        backends.push(Arc::clone(b));
                        changes.kept += 1;
                    }
                    continue;
                }
                None => return Err(e),
            },
        };
        let wanted = shape(config, cfg);
        for (name, endpoint) in resolved {
            let reusable = previous.and_then(|p| {
                p.backends.iter().find(|b| {
                    b.name == name && b.endpoint == endpoint && b.shape.as_ref() == Some(&wanted)
                })
            });
            match reusable {
                Some(b) => {
                    b.set_weight(cfg.weight);
                    backends.push(Arc::clone(b));
                    changes.kept += 1;
                }
                None => {
                    changes.added.push(name.clone());
                    backends.push(build_backend(config, cfg, name, endpoint));
                }
            }
        }
    }
    if let Some(prev) = previous {
        for old in &prev.backends {
            if !backends.iter().any(|b| Arc::ptr_eq(b, old)) {
                changes.removed.push(old.name.clone());
                old.pool.close_all_idle();
            }
        }
    }
    Ok((BackendSet::new(backends, config.balance), changes))
}
