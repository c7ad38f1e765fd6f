//! `fpmlb serve`: builds the running parts from a `Config` and runs them
//! until SIGTERM or SIGINT.
//!
//! Start-up order: resolve backends, build the proxy, bind every listener
//! (a port that cannot be bound fails start-up, before anything is served),
//! then start the accept loops and background tasks.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{BackendAddress, BackendConfig, Config, DEFAULT_MAX_CONNS};
use crate::fastcgi::exchange::ExchangeTimeouts;
use crate::health::liveness::LivenessCheck;
use crate::health::passive::FailureWindow;
use crate::health::runner::{LivenessSettings, SessionLoop, run_liveness};
use crate::http::body::BodyLimits;
use crate::http::handler::Proxy;
use crate::http::params::Site;
use crate::server::{self, ClientTimeouts, HttpServer};
use crate::session::check::SessionChecker;
use crate::session::probe::Probe;
use crate::upstream::backend::{Backend, Endpoint};
use crate::upstream::pool::{Pool, PoolSettings};
use crate::upstream::{BackendSet, Upstream};

/// Most connections a backend without `max_conns` may get when its status
/// page reports a larger `pm = static` pool.
const AUTO_CAP_CEILING: usize = 256;

/// PHP's default session.name, until the session checker learns the real one.
pub const DEFAULT_SESSION_NAME: &str = "PHPSESSID";

/// How often idle pooled connections are looked at for closing.
const IDLE_SWEEP: Duration = Duration::from_secs(1);

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("backend {name}: cannot resolve {address}: {source}")]
    Resolve {
        name: String,
        address: String,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// The endpoints of one configured backend, with their names: a hostname
/// that resolves to several addresses gives one backend each, `host#ip`.
pub async fn resolve(cfg: &BackendConfig) -> Result<Vec<(String, Endpoint)>, DaemonError> {
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
                .map_err(|source| DaemonError::Resolve {
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

/// Builds one backend from its config and resolved endpoint.
pub fn build_backend(
    config: &Config,
    cfg: &BackendConfig,
    name: String,
    endpoint: Endpoint,
) -> Arc<Backend> {
    // With max_conns set, that is the cap. Without it, the pool may grow to
    // AUTO_CAP_CEILING but starts at DEFAULT_MAX_CONNS, until php-fpm's
    // status page tells its pm.max_children.
    let ceiling = cfg.max_conns.map_or(AUTO_CAP_CEILING, |m| m as usize);
    let settings = PoolSettings {
        max_conns: ceiling,
        queue_size: config.queue_size,
        connect_timeout: config.timeouts.connect,
        queue_timeout: config.timeouts.queue,
        idle_timeout: config.timeouts.idle,
    };
    let pool = Pool::new(endpoint.clone(), settings);
    if cfg.max_conns.is_none() {
        pool.set_cap(DEFAULT_MAX_CONNS as usize);
    }
    let failures = FailureWindow::new(config.max_fails, config.fail_timeout);
    let mut backend = Backend::new(name, endpoint, cfg.weight, pool, failures);
    backend.auto_cap = cfg.max_conns.is_none();
    Arc::new(backend)
}

/// Resolves and builds every configured backend.
pub async fn build_backends(config: &Config) -> Result<Vec<Arc<Backend>>, DaemonError> {
    let mut out = Vec::new();
    for cfg in &config.backends {
        for (name, endpoint) in resolve(cfg).await? {
            out.push(build_backend(config, cfg, name, endpoint));
        }
    }
    Ok(out)
}

/// The request handler's settings from the config.
pub fn build_proxy(
    config: &Config,
    upstream: Arc<Upstream>,
    session_cookie: Arc<ArcSwap<String>>,
) -> Proxy {
    Proxy {
        site: Site {
            document_root: config.document_root.clone(),
            index: config.index.clone(),
            front_controller: config.front_controller.clone(),
            server_name: config.server_name.clone(),
            https: config.https,
            extra: config.params.clone(),
        },
        upstream,
        limits: BodyLimits {
            max_body_size: config.max_body_size,
            buffer_size: config.body_buffer_size,
        },
        timeouts: ExchangeTimeouts {
            send: config.timeouts.send,
            read: config.timeouts.read,
        },
        access_log: config.log.access_log,
        session_cookie,
    }
}

/// Runs the daemon until a shutdown signal, then drains within the grace period.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let backends = build_backends(&config).await?;
    for b in &backends {
        tracing::info!(backend = %b.name, address = %b.endpoint, weight = b.weight, "backend");
    }
    let upstream = Arc::new(Upstream::new(BackendSet::new(backends, config.balance)));
    let session_cookie = Arc::new(ArcSwap::from_pointee(DEFAULT_SESSION_NAME.to_string()));
    let proxy = build_proxy(&config, Arc::clone(&upstream), Arc::clone(&session_cookie));
    let proxy = Arc::new(ArcSwap::from_pointee(proxy));

    let mut listeners = Vec::new();
    for &addr in &config.listen {
        let listener = server::bind(addr).map_err(|source| DaemonError::Bind { addr, source })?;
        listeners.push((addr, listener));
    }

    let shutdown = CancellationToken::new();
    let timeouts = ClientTimeouts {
        header: config.timeouts.client_header,
        idle: config.timeouts.client_idle,
    };
    let http = Arc::new(HttpServer::new(
        Arc::clone(&proxy),
        timeouts,
        shutdown.clone(),
    ));
    for (addr, listener) in listeners {
        tracing::info!(%addr, "listening");
        tokio::spawn(Arc::clone(&http).accept_loop(listener, CancellationToken::new()));
    }
    tokio::spawn(sweep_idle(Arc::clone(&upstream), shutdown.clone()));
    tokio::spawn(run_liveness(
        Arc::clone(&upstream),
        liveness_settings(&config),
        shutdown.clone(),
    ));
    let latest_report = Arc::new(ArcSwap::from_pointee(None));
    if let Some(checker) = session_checker(&config) {
        let sessions = SessionLoop {
            upstream: Arc::clone(&upstream),
            checker,
            interval: config.health.session_interval,
            action: config.health.on_session_mismatch,
            session_cookie: Arc::clone(&session_cookie),
            latest: Arc::clone(&latest_report),
        };
        tokio::spawn(sessions.run(shutdown.clone()));
    }

    wait_for_shutdown_signal().await?;
    tracing::info!(grace = ?config.timeouts.shutdown_grace, "shutting down: no new connections, finishing requests in flight");
    shutdown.cancel();
    http.tracker.close();
    if tokio::time::timeout(config.timeouts.shutdown_grace, http.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("grace period over with connections still open; exiting");
    }
    for b in &upstream.snapshot().backends {
        b.pool.close_all_idle();
    }
    tracing::info!("stopped");
    Ok(())
}

/// The liveness checker's settings from the config.
pub fn liveness_settings(config: &Config) -> LivenessSettings {
    LivenessSettings {
        check: LivenessCheck {
            ping_path: config.health.ping_path.clone(),
            status_path: config.health.status_path.clone(),
            ping_response: config.health.ping_response.clone(),
            timeout: config.health.timeout,
        },
        interval: config.health.interval,
        rise: config.health.rise,
        fall: config.health.fall,
    }
}

/// The session checker, when `health.probe_script` is set.
pub fn session_checker(config: &Config) -> Option<SessionChecker> {
    let script = config.health.probe_script.clone()?;
    Some(SessionChecker {
        probe: Probe {
            script,
            timeout: config.health.timeout,
        },
        expected: config
            .session
            .as_ref()
            .map(|s| (s.save_handler.clone(), s.save_path.clone())),
        store_timeout: config.health.timeout,
    })
}

/// Closes pooled connections idle longer than the idle timeout.
async fn sweep_idle(upstream: Arc<Upstream>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(IDLE_SWEEP);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        for b in &upstream.snapshot().backends {
            b.pool.close_idle(now);
        }
    }
}

async fn wait_for_shutdown_signal() -> Result<(), DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
    Ok(())
}
