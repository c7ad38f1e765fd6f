//! `fpmlb serve`: builds the running parts from a `Config` and runs them
//! until SIGTERM or SIGINT.
//!
//! Start-up order: resolve backends, build the proxy, bind every listener
//! (a port that cannot be bound fails start-up, before anything is served),
//! then start the accept loops and background tasks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::fastcgi::exchange::ExchangeTimeouts;
use crate::health::liveness::LivenessProbe;
use crate::health::runner::{LivenessSettings, SessionLoop, run_liveness};
use crate::http::body::BodyLimits;
use crate::http::handler::Proxy;
use crate::http::params::Site;
use crate::http::walk_back::WalkBackGuard;
use crate::server::{self, ClientTimeouts, HttpServer};
use crate::session::probe::Probe;
use crate::session::round_trip::SessionChecker;
use crate::session::verdict::ClusterReport;
use crate::upstream::Upstream;
use crate::upstream::discovery::{self, ResolveError};

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
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
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
        queue_timeout: config.timeouts.queue,
        session_cookie,
        walk_back: WalkBackGuard::new(
            [&config.health.ping_path, &config.health.status_path]
                .into_iter()
                .flatten()
                .map(String::as_str),
        ),
    }
}

/// The running parts that a reload replaces.
struct Daemon {
    config_path: PathBuf,
    config: Config,
    upstream: Arc<Upstream>,
    proxy: Arc<ArcSwap<Proxy>>,
    http: Arc<HttpServer>,
    session_cookie: Arc<ArcSwap<String>>,
    latest_report: Arc<ArcSwap<Option<ClusterReport>>>,
    /// One token per listening address: cancelled when a reload drops it.
    listeners: HashMap<SocketAddr, CancellationToken>,
    /// Cancels the health, session and discovery loops (restarted on reload).
    loops: CancellationToken,
    shutdown: CancellationToken,
}

/// Runs the daemon until a shutdown signal, then drains within the grace
/// period. SIGHUP reloads `config_path`.
pub async fn run(config: Config, config_path: PathBuf) -> Result<(), DaemonError> {
    let started = Instant::now();
    let (set, _) = discovery::build_set(&config, None).await?;
    for b in &set.backends {
        tracing::info!(backend = %b.name, address = %b.endpoint, weight = b.weight(), "backend");
    }
    let upstream = Arc::new(Upstream::new(set));
    let session_cookie = Arc::new(ArcSwap::from_pointee(DEFAULT_SESSION_NAME.to_string()));
    let proxy = build_proxy(&config, Arc::clone(&upstream), Arc::clone(&session_cookie));
    let proxy = Arc::new(ArcSwap::from_pointee(proxy));

    let mut bound = Vec::new();
    for &addr in &config.listen {
        let listener = server::bind(addr).map_err(|source| DaemonError::Bind { addr, source })?;
        bound.push((addr, listener));
    }
    let admin_listener = match config.admin.listen {
        Some(addr) => {
            let listener =
                server::bind(addr).map_err(|source| DaemonError::Bind { addr, source })?;
            Some((addr, listener))
        }
        None => None,
    };
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
    let mut daemon = Daemon {
        config_path,
        config,
        upstream,
        proxy,
        http,
        session_cookie,
        latest_report: Arc::new(ArcSwap::from_pointee(None)),
        listeners: HashMap::new(),
        loops: shutdown.child_token(),
        shutdown,
    };
    for (addr, listener) in bound {
        daemon.serve_listener(addr, listener);
    }
    tokio::spawn(sweep_idle(
        Arc::clone(&daemon.upstream),
        daemon.shutdown.clone(),
    ));
    daemon.start_loops();
    if let Some((addr, listener)) = admin_listener {
        tracing::info!(%addr, "admin API listening");
        let state = Arc::new(AdminState {
            upstream: Arc::clone(&daemon.upstream),
            latest_report: Arc::clone(&daemon.latest_report),
            token: daemon.config.admin.token.clone(),
            started,
        });
        tokio::spawn(admin::serve(listener, state, daemon.shutdown.clone()));
    }

    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM"); break; }
            _ = int.recv() => { tracing::info!("SIGINT"); break; }
            _ = hup.recv() => daemon.reload().await,
        }
    }
    daemon.stop().await;
    Ok(())
}

impl Daemon {
    fn serve_listener(&mut self, addr: SocketAddr, listener: tokio::net::TcpListener) {
        tracing::info!(%addr, "listening");
        let token = self.shutdown.child_token();
        self.listeners.insert(addr, token.clone());
        tokio::spawn(Arc::clone(&self.http).accept_loop(listener, token));
    }

    /// (Re)starts the loops that depend on the config.
    fn start_loops(&mut self) {
        self.loops.cancel();
        self.loops = self.shutdown.child_token();
        let config = &self.config;
        tokio::spawn(run_liveness(
            Arc::clone(&self.upstream),
            liveness_settings(config),
            self.loops.clone(),
        ));
        if let Some(checker) = session_checker(config) {
            let sessions = SessionLoop {
                upstream: Arc::clone(&self.upstream),
                checker,
                interval: config.health.session_interval,
                action: config.health.on_session_mismatch,
                session_cookie: Arc::clone(&self.session_cookie),
                latest: Arc::clone(&self.latest_report),
            };
            tokio::spawn(sessions.run(self.loops.clone()));
        } else {
            // No session checks: nothing may stay drained by an old verdict.
            for b in &self.upstream.snapshot().backends {
                b.set_session_ok(true);
            }
            self.latest_report.store(Arc::new(None));
        }
        if discovery::has_hostnames(config) {
            tokio::spawn(rediscover(
                Arc::clone(&self.upstream),
                config.clone(),
                self.loops.clone(),
            ));
        }
    }

    /// SIGHUP: read and validate the config again; apply it if valid, else
    /// keep running as before and say why, with key and line.
    async fn reload(&mut self) {
        tracing::info!(path = %self.config_path.display(), "SIGHUP: reloading the config");
        let config = match Config::load(&self.config_path) {
            Ok(c) => c,
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!("reload refused, running config kept: {e}");
                }
                return;
            }
        };
        let current = self.upstream.snapshot();
        let (set, changes) = match discovery::build_set(&config, Some(&current)).await {
            Ok(built) => built,
            Err(e) => {
                tracing::error!("reload refused, running config kept: {e}");
                return;
            }
        };
        // Bind new listeners before changing anything, so a port in use
        // refuses the whole reload.
        let mut bound = Vec::new();
        for &addr in config
            .listen
            .iter()
            .filter(|a| !self.listeners.contains_key(a))
        {
            match server::bind(addr) {
                Ok(l) => bound.push((addr, l)),
                Err(e) => {
                    tracing::error!(
                        "reload refused, running config kept: cannot listen on {addr}: {e}"
                    );
                    return;
                }
            }
        }
        self.upstream.replace(set);
        let proxy = build_proxy(
            &config,
            Arc::clone(&self.upstream),
            Arc::clone(&self.session_cookie),
        );
        self.proxy.store(Arc::new(proxy));
        for (addr, listener) in bound {
            self.serve_listener(addr, listener);
        }
        let dropped: Vec<SocketAddr> = self
            .listeners
            .keys()
            .filter(|a| !config.listen.contains(a))
            .copied()
            .collect();
        for addr in dropped {
            if let Some(token) = self.listeners.remove(&addr) {
                token.cancel();
                tracing::info!(%addr, "listener removed; its open connections finish");
            }
        }
        if config.timeouts.client_header != self.config.timeouts.client_header
            || config.timeouts.client_idle != self.config.timeouts.client_idle
        {
            tracing::warn!(
                "timeouts.client_header and timeouts.client_idle take effect at restart only"
            );
        }
        if config.admin != self.config.admin {
            tracing::warn!("admin.listen and admin.token take effect at restart only");
        }
        self.config = config;
        self.start_loops();
        tracing::info!(
            added = ?changes.added,
            removed = ?changes.removed,
            kept = changes.kept,
            "config reloaded"
        );
    }

    async fn stop(self) {
        let grace = self.config.timeouts.shutdown_grace;
        tracing::info!(
            ?grace,
            "shutting down: no new connections, finishing requests in flight"
        );
        self.shutdown.cancel();
        self.http.tracker.close();
        if tokio::time::timeout(grace, self.http.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("grace period over with connections still open; exiting");
        }
        for b in &self.upstream.snapshot().backends {
            b.pool.close_all_idle();
        }
        tracing::info!("stopped");
    }
}

/// Resolves backend hostnames every `resolve_interval`; installs a new
/// table when the answers change.
async fn rediscover(upstream: Arc<Upstream>, config: Config, stop: CancellationToken) {
    let mut tick = tokio::time::interval(config.resolve_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is now: the table was just built
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let current = upstream.snapshot();
        match discovery::build_set(&config, Some(&current)).await {
            Ok((set, changes)) if !changes.is_empty() => {
                tracing::info!(added = ?changes.added, removed = ?changes.removed, "DNS answers changed: backends updated");
                upstream.replace(set);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }
}

/// The liveness checker's settings from the config.
pub fn liveness_settings(config: &Config) -> LivenessSettings {
    LivenessSettings {
        probe: LivenessProbe {
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
