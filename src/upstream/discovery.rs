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
            let addrs = usable(&cfg.name, found.collect()).ok_or_else(|| ResolveError {
                name: cfg.name.clone(),
                address: cfg.address.to_string(),
                source: std::io::Error::other("no usable address in the DNS answer"),
            })?;
            Ok(addrs
                .into_iter()
                .map(|a| (format!("{}#{}", cfg.name, a.ip()), Endpoint::Tcp(a)))
                .collect())
        }
    }
}

/// The most addresses one hostname becomes: a DNS answer is outside
/// input, and each address is a pool, health-checked every interval.
pub const MAX_ADDRESSES: usize = 64;

/// The addresses of a DNS answer that can be backends, sorted, without
/// repeats, at most [`MAX_ADDRESSES`] (logged beyond): not `0.0.0.0`/`::`
/// (which connect to this host) nor multicast. `None` when none is left
/// (an error, as a failed lookup: the previous addresses are kept).
fn usable(name: &str, mut addrs: Vec<SocketAddr>) -> Option<Vec<SocketAddr>> {
    let before = addrs.len();
    addrs.retain(|a| !a.ip().is_unspecified() && !a.ip().is_multicast());
    if addrs.len() < before {
        tracing::warn!(backend = %name, "DNS answer: {} unspecified or multicast address(es) left out", before - addrs.len());
    }
    addrs.sort();
    addrs.dedup();
    if addrs.len() > MAX_ADDRESSES {
        tracing::warn!(backend = %name, "DNS answer of {} addresses: the first {MAX_ADDRESSES} are used", addrs.len());
        addrs.truncate(MAX_ADDRESSES);
    }
    (!addrs.is_empty()).then_some(addrs)
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
    /// New weights of kept backends, and the backends left out (their idle
    /// connections to close): applied by [`Changes::apply`] once the table
    /// is installed, so that a reload refused after `build_set` (a bad
    /// certificate, a port in use) changes nothing that runs.
    weights: Vec<(Arc<Backend>, u32)>,
    gone: Vec<Arc<Backend>>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// Applies to the running backends what the new table changes of them.
    pub fn apply(&self) {
        for (backend, weight) in &self.weights {
            backend.set_weight(*weight);
        }
        for backend in &self.gone {
            backend.pool.close_all_idle();
        }
    }
}

/// A backend built anew in place of `old` (same name; its address or its
/// pool's settings changed) keeps the operator's drain, and, at the same
/// address, what the checks found (down, drained by the session check):
/// a reload must not put back into rotation what was taken out of it.
fn inherit(new: &Backend, old: &Backend) {
    new.set_enabled(old.is_enabled());
    if new.endpoint == old.endpoint {
        new.set_alive(old.is_alive());
        new.set_session_ok(old.is_session_ok());
    }
}

/// Builds the table for `config`, keeping backends of `previous` that did
/// not change. A hostname that fails to resolve keeps its previous
/// backends (a DNS hiccup must not empty the cluster); with none (at
/// start, or a backend new in a reload) it is an error. Changes nothing of `previous`'s
/// backends: the caller applies [`Changes`] once it installs the table.
pub async fn build_set(
    config: &Config,
    previous: Option<&BackendSet>,
) -> Result<(BackendSet, Changes), ResolveError> {
    let mut backends: Vec<Arc<Backend>> = Vec::new();
    let mut changes = Changes::default();
    for cfg in &config.backends {
        let resolved = match resolve(cfg).await {
            Ok(r) => r,
            Err(e) => {
                let kept: Vec<&Arc<Backend>> = previous
                    .into_iter()
                    .flat_map(|prev| &prev.backends)
                    .filter(|b| b.name == cfg.name || b.name.starts_with(&format!("{}#", cfg.name)))
                    .collect();
                // At start, or a backend new in this config: nothing to
                // keep, so the table (the reload) is refused, as at start.
                if kept.is_empty() {
                    return Err(e);
                }
                tracing::warn!("{e}; keeping its previous addresses");
                for b in kept {
                    backends.push(Arc::clone(b));
                    changes.kept += 1;
                }
                continue;
            }
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
                    changes.weights.push((Arc::clone(b), cfg.weight));
                    backends.push(Arc::clone(b));
                    changes.kept += 1;
                }
                None => {
                    changes.added.push(name.clone());
                    let built = build_backend(config, cfg, name, endpoint);
                    if let Some(old) =
                        previous.and_then(|p| p.backends.iter().find(|b| b.name == built.name))
                    {
                        inherit(&built, old);
                    }
                    backends.push(built);
                }
            }
        }
    }
    if let Some(prev) = previous {
        for old in &prev.backends {
            if !backends.iter().any(|b| Arc::ptr_eq(b, old)) {
                changes.removed.push(old.name.clone());
                changes.gone.push(Arc::clone(old));
            }
        }
    }
    Ok((BackendSet::new(backends, config.balance), changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let yaml = format!(
            "listen: \":8080\"\ndocument_root: /srv\n{extra}backends:\n  - {{name: a, address: \"127.0.0.1:9000\", weight: 1}}\n  - {{name: b, address: \"127.0.0.1:9001\"}}\n"
        );
        Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    fn named<'a>(set: &'a BackendSet, name: &str) -> &'a Arc<Backend> {
        set.backends.iter().find(|b| b.name == name).unwrap()
    }

    /// Building the next table changes nothing of the running one: a
    /// reload refused after it (a bad certificate) leaves weights and
    /// idle connections as they were; `apply` does it once installed.
    #[tokio::test]
    async fn building_a_table_changes_nothing_until_applied() {
        let (first, _) = build_set(&config(""), None).await.unwrap();
        let yaml = config("").backends;
        assert_eq!(yaml.len(), 2);
        let mut next = config("");
        next.backends[0].weight = 5;
        next.backends.truncate(1);
        let (set, changes) = build_set(&next, Some(&first)).await.unwrap();
        assert!(
            Arc::ptr_eq(named(&set, "a"), named(&first, "a")),
            "a is kept"
        );
        assert_eq!(changes.removed, ["b"]);
        assert_eq!(named(&first, "a").weight(), 1, "not before it is applied");
        changes.apply();
        assert_eq!(named(&first, "a").weight(), 5);
    }

    /// A DNS answer is outside input: no address that connects back to
    /// this host unasked (`0.0.0.0`, `::`) or to a group, a bounded count,
    /// and none left is no answer.
    #[test]
    fn dns_answers_are_filtered_and_bounded() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let got = usable(
            "x",
            vec![
                a("10.0.0.2:9000"),
                a("0.0.0.0:9000"),
                a("[::]:9000"),
                a("224.0.0.1:9000"),
                a("10.0.0.1:9000"),
                a("10.0.0.2:9000"),
            ],
        );
        assert_eq!(got, Some(vec![a("10.0.0.1:9000"), a("10.0.0.2:9000")]));
        assert_eq!(usable("x", vec![a("0.0.0.0:9000")]), None);
        assert_eq!(usable("x", Vec::new()), None);
        let many: Vec<SocketAddr> = (0..300u16)
            .map(|i| SocketAddr::from(([10, 1, (i >> 8) as u8, (i & 0xff) as u8], 9000)))
            .collect();
        assert_eq!(usable("x", many).map(|v| v.len()), Some(MAX_ADDRESSES));
    }

    /// A hostname that does not resolve: its previous addresses are kept;
    /// a backend new in the config with no previous ones refuses the table
    /// (the reload), as at start, rather than being left out in silence.
    #[tokio::test]
    async fn a_new_hostname_that_does_not_resolve_refuses_the_table() {
        let (first, _) = build_set(&config(""), None).await.unwrap();
        let mut next = config("");
        let mut broken = next.backends[1].clone();
        broken.name = "c".into();
        broken.address = BackendAddress::Tcp {
            host: "nowhere.invalid".into(),
            port: 9000,
        };
        next.backends.push(broken);
        assert!(build_set(&next, Some(&first)).await.is_err());
        // Under a name the previous table had, the addresses it had stay.
        next.backends[2].name = "b".into();
        next.backends.remove(1);
        let (set, changes) = build_set(&next, Some(&first)).await.unwrap();
        assert!(Arc::ptr_eq(named(&set, "b"), named(&first, "b")));
        assert!(changes.is_empty(), "{changes:?}");
    }

    /// A backend rebuilt by a reload (its pool's settings changed) keeps
    /// the operator's drain and what the checks found.
    #[tokio::test]
    async fn a_rebuilt_backend_keeps_its_drain_and_its_checks() {
        let (first, _) = build_set(&config(""), None).await.unwrap();
        named(&first, "a").set_enabled(false);
        named(&first, "b").set_alive(false);
        named(&first, "b").set_session_ok(false);
        let (set, changes) = build_set(&config("queue_size: 7\n"), Some(&first))
            .await
            .unwrap();
        assert_eq!(changes.added, ["a", "b"], "both rebuilt");
        let (a, b) = (named(&set, "a"), named(&set, "b"));
        assert!(!Arc::ptr_eq(a, named(&first, "a")));
        assert!(!a.is_enabled(), "still drained by the operator");
        assert!(a.is_alive() && a.is_session_ok());
        assert!(b.is_enabled());
        assert!(!b.is_alive(), "still down");
        assert!(!b.is_session_ok(), "still drained by the session check");
    }
}
