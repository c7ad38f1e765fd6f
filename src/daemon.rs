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
use crate::config::defaults::RESPONSE_MEMORY;
use crate::config::{Config, Listener, TlsConfig};
use crate::fastcgi::exchange::ExchangeTimeouts;
use crate::health::liveness::LivenessProbe;
use crate::health::runner::{LivenessSettings, SessionLoop, run_liveness};
use crate::http::body::{BODY_MEMORY, BodyBudgets, BodyLimits};
use crate::http::budget::ByteBudget;
use crate::http::edge::Edge;
use crate::http::handler::Proxy;
use crate::http::limits::HeadLimits;
use crate::http::params::Site;
use crate::http::read_ahead::ReadAhead;
use crate::http::router::Router;
use crate::http::walk_back::WalkBackGuard;
use crate::runtime::Workers;
use crate::server::{self, ClientLimits, HttpServer};
use crate::session::cookie::SiteOrigin;
use crate::session::probe::Probe;
use crate::session::round_trip::SessionChecker;
use crate::session::verdict::ClusterReport;
use crate::tls::acme::{AcmeTask, Http01Tokens};
use crate::tls::watch::{WATCH_INTERVAL, watch_files};
use crate::tls::{self, CertResolver, FileCerts};
use crate::upstream::Upstream;
use crate::upstream::discovery::{self, ResolveError};

/// PHP's default session.name, until the session checker learns the real one.
pub const DEFAULT_SESSION_NAME: &str = "PHPSESSID";

/// How often idle pooled connections are looked at for closing: as often
/// as they are recycled (`pool::RECYCLE_AFTER`), so an idle connection holds
/// a php-fpm worker another client waits for at most twice that. A sweep is
/// a lock and a scan of a few connections per backend.
const IDLE_SWEEP: Duration = crate::upstream::pool::RECYCLE_AFTER;

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
    #[error("TLS: {}", .0.join("; "))]
    Tls(Vec<String>),
    #[error("cannot start the serving threads: {0}")]
    Workers(std::io::Error),
}

/// The request handler's settings from the config.
pub fn build_proxy(
    config: &Config,
    upstream: Arc<Upstream>,
    session_cookie: Arc<ArcSwap<String>>,
    http01: Arc<Http01Tokens>,
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
            buffering: config.request_buffering,
            timeout: config.timeouts.client_body,
        },
        body_budgets: BodyBudgets {
            memory: ByteBudget::new(BODY_MEMORY),
            temp: ByteBudget::of_size(config.request_temp_total),
        },
        response_buffering: config.response_buffering,
        read_ahead: ReadAhead {
            memory: config.response_buffer_size,
            max_temp_file: config.response_max_temp_file,
            memory_budget: ByteBudget::new(RESPONSE_MEMORY),
            temp_budget: ByteBudget::of_size(config.response_temp_total),
            stats: Arc::default(),
        },
        head: head_limits(config),
        timeouts: ExchangeTimeouts {
            send: config.timeouts.send,
            read: config.timeouts.read,
        },
        access_log: config.log.access_log,
        queue_timeout: config.timeouts.queue,
        session_cookie,
        edge: Edge {
            hsts: config
                .tls
                .as_ref()
                .and_then(|t| t.hsts.as_deref())
                .and_then(|h| http::HeaderValue::from_str(h).ok()),
            https_port: config.listen.iter().find(|l| l.tls).map(|l| l.addr.port()),
            http01,
        },
        compression: config.compression.clone(),
        compression_memory: ByteBudget::of_size(config.compression.max_memory),
        router: Arc::new(Router::new(config)),
        walk_back: WalkBackGuard::new(
            [&config.health.ping_path, &config.health.status_path]
                .into_iter()
                .flatten()
                .map(String::as_str),
        ),
    }
}

/// The request head limits of the config.
pub fn head_limits(config: &Config) -> HeadLimits {
    HeadLimits {
        request_line: config.max_request_line,
        header_line: config.max_header_line,
        total: config.max_header_size,
    }
}

/// What the accept loops and connections enforce, from the config.
pub fn client_limits(config: &Config) -> ClientLimits {
    ClientLimits {
        header_timeout: config.timeouts.client_header,
        idle_timeout: config.timeouts.client_idle,
        send_timeout: config.timeouts.client_send,
        max_connections: config.max_connections,
        per_client: config.max_connections_per_client,
        head: head_limits(config),
    }
}

/// The running parts that a reload replaces.
struct Daemon {
    config_path: PathBuf,
    config: Config,
    upstream: Arc<Upstream>,
    proxy: Arc<ArcSwap<Proxy>>,
    /// The proxy's read-ahead budgets and counters, for the admin API.
    read_ahead: Arc<ArcSwap<ReadAhead>>,
    /// The proxy's compression budget, for the admin API (swapped on reload).
    compression_memory: Arc<ArcSwap<ByteBudget>>,
    http: Arc<HttpServer>,
    session_cookie: Arc<ArcSwap<String>>,
    latest_report: Arc<ArcSwap<Option<ClusterReport>>>,
    /// Per listening address: the token a reload that drops it cancels, and
    /// its options (a reload may change them in place).
    listeners: HashMap<SocketAddr, (CancellationToken, Arc<ArcSwap<Listener>>)>,
    /// The certificates TLS listeners serve.
    resolver: Arc<CertResolver>,
    /// The answers to ACME HTTP-01 challenges.
    http01: Arc<Http01Tokens>,
    /// Cancels the certificate file watcher (restarted on reload).
    watcher: CancellationToken,
    /// Cancels the ACME task (restarted when `tls.acme` changes).
    acme: CancellationToken,
    /// Cancels the health, session and discovery loops (restarted on reload).
    loops: CancellationToken,
    shutdown: CancellationToken,
}

/// Runs the daemon until a shutdown signal, then drains within the grace
/// period. SIGHUP reloads `config_path`.
pub async fn run(config: Config, config_path: PathBuf) -> Result<(), DaemonError> {
    let started = Instant::now();
    raise_open_files(config.max_connections);
    let (set, _) = discovery::build_set(&config, None).await?;
    for b in &set.backends {
        tracing::info!(backend = %b.name, address = %b.endpoint, weight = b.weight(), "backend");
    }
    let upstream = Arc::new(Upstream::new(set));
    let session_cookie = Arc::new(ArcSwap::from_pointee(DEFAULT_SESSION_NAME.to_string()));
    let http01 = Arc::new(Http01Tokens::default());
    let proxy = build_proxy(
        &config,
        Arc::clone(&upstream),
        Arc::clone(&session_cookie),
        Arc::clone(&http01),
    );
    let read_ahead = Arc::new(ArcSwap::from_pointee(proxy.read_ahead.clone()));
    let compression_memory = Arc::new(ArcSwap::from_pointee(proxy.compression_memory.clone()));
    let proxy = Arc::new(ArcSwap::from_pointee(proxy));
    let resolver = Arc::new(CertResolver::default());
    let tls_config = match &config.tls {
        Some(tls) => {
            resolver.set_files(tls::load_configured(tls).map_err(DaemonError::Tls)?);
            Some(server_config(&resolver, tls).map_err(|e| DaemonError::Tls(vec![e]))?)
        }
        None => None,
    };

    let mut bound = Vec::new();
    for listener in &config.listen {
        let addr = listener.addr;
        let socket = server::bind(addr).map_err(|source| DaemonError::Bind { addr, source })?;
        bound.push((listener.clone(), socket));
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
    let threads = config.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let workers = Arc::new(Workers::start(threads).map_err(DaemonError::Workers)?);
    let http = Arc::new(
        HttpServer::new(Arc::clone(&proxy), client_limits(&config), shutdown.clone())
            .with_workers(workers),
    );
    http.tls.store(tls_config);
    http.real_ip.store(Arc::new(config.real_ip.clone()));
    let acme_task = match config.tls.as_ref().and_then(|t| t.acme.clone()) {
        Some(acme) => Some(
            AcmeTask::start(acme, Arc::clone(&resolver), Arc::clone(&http01))
                .map_err(|e| DaemonError::Tls(vec![format!("tls.acme.state_dir: {e}")]))?,
        ),
        None => None,
    };
    let mut daemon = Daemon {
        config_path,
        config,
        upstream,
        proxy,
        read_ahead,
        compression_memory,
        http,
        session_cookie,
        latest_report: Arc::new(ArcSwap::from_pointee(None)),
        listeners: HashMap::new(),
        resolver,
        http01,
        watcher: shutdown.child_token(),
        acme: shutdown.child_token(),
        loops: shutdown.child_token(),
        shutdown,
    };
    for (listener, socket) in bound {
        daemon.serve_listener(listener, socket);
    }
    daemon.start_watcher();
    if let Some(task) = acme_task {
        tokio::spawn(task.run(daemon.acme.clone()));
    }
    tokio::spawn(sweep_idle(
        Arc::clone(&daemon.upstream),
        Arc::clone(&daemon.proxy),
        daemon.shutdown.clone(),
    ));
    daemon.start_loops();
    if let Some((addr, listener)) = admin_listener {
        tracing::info!(%addr, "admin API listening");
        let state = Arc::new(AdminState {
            upstream: Arc::clone(&daemon.upstream),
            latest_report: Arc::clone(&daemon.latest_report),
            read_ahead: Arc::clone(&daemon.read_ahead),
            compression_memory: Arc::clone(&daemon.compression_memory),
            token: daemon.config.admin.token.clone(),
            hosts: daemon.config.admin.hosts.clone(),
            started,
            workers: daemon.http.workers().cloned(),
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
    fn serve_listener(&mut self, listener: Listener, socket: tokio::net::TcpListener) {
        let addr = listener.addr;
        tracing::info!(
            %addr,
            tls = listener.tls,
            proxy_protocol = listener.proxy_protocol,
            redirect_https = listener.redirect_https,
            "listening"
        );
        let token = self.shutdown.child_token();
        let options = Arc::new(ArcSwap::from_pointee(listener));
        self.listeners
            .insert(addr, (token.clone(), Arc::clone(&options)));
        tokio::spawn(Arc::clone(&self.http).accept_loop(socket, options, token));
    }

    /// (Re)starts the watcher of the certificate files.
    fn start_watcher(&mut self) {
        self.watcher.cancel();
        self.watcher = self.shutdown.child_token();
        if let Some(tls) = &self.config.tls {
            tokio::spawn(watch_files(
                tls.clone(),
                Arc::clone(&self.resolver),
                WATCH_INTERVAL,
                self.watcher.clone(),
            ));
        }
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
        for warning in &config.warnings {
            tracing::warn!("{}: {warning}", self.config_path.display());
        }
        let current = self.upstream.snapshot();
        let (set, changes) = match discovery::build_set(&config, Some(&current)).await {
            Ok(built) => built,
            Err(e) => {
                tracing::error!("reload refused, running config kept: {e}");
                return;
            }
        };
        // Certificates next: a bad file refuses the whole reload, and the
        // running certificates keep serving.
        let tls = match config.tls.as_ref().map(|t| load_tls(&self.resolver, t)) {
            None => None,
            Some(Ok(loaded)) => Some(loaded),
            Some(Err(errors)) => {
                for e in errors {
                    tracing::error!("reload refused, running config kept: {e}");
                }
                return;
            }
        };
        // Bind new listeners before changing anything, so a port in use
        // refuses the whole reload.
        let mut bound = Vec::new();
        for listener in config
            .listen
            .iter()
            .filter(|l| !self.listeners.contains_key(&l.addr))
        {
            let addr = listener.addr;
            match server::bind(addr) {
                Ok(l) => bound.push((listener.clone(), l)),
                Err(e) => {
                    tracing::error!(
                        "reload refused, running config kept: cannot listen on {addr}: {e}"
                    );
                    return;
                }
            }
        }
        let old_acme = self.config.tls.as_ref().and_then(|t| t.acme.clone());
        let new_acme = config.tls.as_ref().and_then(|t| t.acme.clone());
        let acme_task = match &new_acme {
            Some(acme) if new_acme != old_acme => {
                match AcmeTask::start(
                    acme.clone(),
                    Arc::clone(&self.resolver),
                    Arc::clone(&self.http01),
                ) {
                    Ok(task) => Some(task),
                    Err(e) => {
                        tracing::error!(
                            "reload refused, running config kept: tls.acme.state_dir: {e}"
                        );
                        return;
                    }
                }
            }
            _ => None,
        };
        self.upstream.replace(set);
        changes.apply();
        let mut proxy = build_proxy(
            &config,
            Arc::clone(&self.upstream),
            Arc::clone(&self.session_cookie),
            Arc::clone(&self.http01),
        );
        // One budget across reloads: bodies read under the old settings
        // still hold their share of it.
        let old = self.proxy.load();
        proxy.body_budgets.memory = old.body_budgets.memory.clone();
        proxy.read_ahead.memory_budget = old.read_ahead.memory_budget.clone();
        proxy.read_ahead.stats = Arc::clone(&old.read_ahead.stats);
        // The same for temp files and the compressors, resized to a
        // changed setting: what responses hold now still counts, so the
        // old and the new responses together stay within the new size.
        for (new, old) in [
            (
                &mut proxy.read_ahead.temp_budget,
                &old.read_ahead.temp_budget,
            ),
            (&mut proxy.body_budgets.temp, &old.body_budgets.temp),
            (&mut proxy.compression_memory, &old.compression_memory),
        ] {
            old.resize(new.total());
            *new = old.clone();
        }
        self.read_ahead.store(Arc::new(proxy.read_ahead.clone()));
        self.compression_memory
            .store(Arc::new(proxy.compression_memory.clone()));
        self.proxy.store(Arc::new(proxy));
        match tls {
            Some((files, server_config)) => {
                self.resolver.set_files(files);
                self.http.tls.store(Some(server_config));
            }
            None => {
                self.resolver.set_files(FileCerts::default());
                self.http.tls.store(None);
            }
        }
        self.http.real_ip.store(Arc::new(config.real_ip.clone()));
        if new_acme != old_acme {
            self.acme.cancel();
            self.acme = self.shutdown.child_token();
            match acme_task {
                Some(task) => {
                    tokio::spawn(task.run(self.acme.clone()));
                }
                None => self.resolver.set_acme(None),
            }
        }
        for listener in &config.listen {
            if let Some((_, options)) = self.listeners.get(&listener.addr) {
                options.store(Arc::new(listener.clone()));
            }
        }
        for (listener, socket) in bound {
            self.serve_listener(listener, socket);
        }
        let dropped: Vec<SocketAddr> = self
            .listeners
            .keys()
            .filter(|a| !config.listen.iter().any(|l| l.addr == **a))
            .copied()
            .collect();
        for addr in dropped {
            if let Some((token, _)) = self.listeners.remove(&addr) {
                token.cancel();
                tracing::info!(%addr, "listener removed; its open connections finish");
            }
        }
        if client_limits(&config) != client_limits(&self.config) {
            tracing::warn!(
                "timeouts.client_header, timeouts.client_idle, timeouts.client_send, max_connections, \
                 max_connections_per_client and hyper's head buffers take effect at restart only"
            );
        }
        if config.admin != self.config.admin {
            tracing::warn!("admin.listen, admin.token and admin.hosts take effect at restart only");
        }
        self.config = config;
        self.start_watcher();
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
        if let Some(workers) = self.http.workers() {
            // What is still open past the grace period is dropped with
            // the threads.
            let workers = Arc::clone(workers);
            let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
        }
        for b in &self.upstream.snapshot().backends {
            b.pool.close_all_idle();
        }
        tracing::info!("stopped");
    }
}

/// The rustls config of the TLS listeners, as a daemon error.
fn server_config(
    resolver: &Arc<CertResolver>,
    tls: &TlsConfig,
) -> Result<Arc<rustls::ServerConfig>, String> {
    tls::server_config(Arc::clone(resolver), tls).map_err(|e| format!("TLS config: {e}"))
}

/// The certificate files and rustls config of `tls`, or every problem.
fn load_tls(
    resolver: &Arc<CertResolver>,
    tls: &TlsConfig,
) -> Result<(FileCerts, Arc<rustls::ServerConfig>), Vec<String>> {
    let files = tls::load_configured(tls)?;
    let config = server_config(resolver, tls).map_err(|e| vec![e])?;
    Ok((files, config))
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
        let built = discovery::build_set(&config, Some(&current)).await;
        if stop.is_cancelled() {
            // A reload stopped this loop while it resolved: its table,
            // built from the old config, must not replace the new one.
            return;
        }
        match built {
            Ok((set, changes)) if !changes.is_empty() => {
                tracing::info!(added = ?changes.added, removed = ?changes.removed, "DNS answers changed: backends updated");
                upstream.replace(set);
                changes.apply();
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
            document_root: Some(config.document_root.clone()),
            app_script: Some(
                config
                    .front_controller
                    .clone()
                    .unwrap_or_else(|| format!("/{}", config.index)),
            ),
        },
        expected: config
            .session
            .as_ref()
            .map(|s| (s.save_handler.clone(), s.save_path.clone())),
        store_timeout: config.health.timeout,
        listener: site_origin(config),
        explain: false,
    })
}

/// How browsers reach the site, for judging the session cookie: over https
/// when fpmlb sits behind a TLS terminator (`https: true`), or when it has a
/// TLS listener and every cleartext one redirects to it (a page also served
/// over http would lose a `Secure` cookie there).
fn site_origin(config: &Config) -> SiteOrigin {
    let tls = config.listen.iter().any(|l| l.tls);
    let all_secure = config.listen.iter().all(|l| l.tls || l.redirect_https);
    SiteOrigin {
        https: config.https || (tls && all_secure),
        host: config.server_name.clone(),
    }
}

/// Closes pooled connections idle longer than the idle timeout, and the
/// static files the open file caches held past their `valid`.
async fn sweep_idle(
    upstream: Arc<Upstream>,
    proxy: Arc<ArcSwap<Proxy>>,
    shutdown: CancellationToken,
) {
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
        proxy.load().router.sweep_files(now.into_std());
    }
}

/// Raises the soft limit of open files to the hard one, as Go's runtime
/// and nginx's `worker_rlimit_nofile` do: 1024, the usual soft limit
/// outside systemd, is below `max_connections` alone, and each client
/// connection may hold a FastCGI connection and a temp file besides.
/// Warns when even the hard limit is short of twice `max_connections`.
fn raise_open_files(max_connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let mut soft = limit.current;
    if let (Some(current), Some(hard)) = (limit.current, limit.maximum)
        && current < hard
    {
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            },
        ) {
            Ok(()) => {
                tracing::info!("open files: soft limit raised from {current} to {hard}");
                soft = Some(hard);
            }
            Err(e) => tracing::warn!(
                "open files: cannot raise the soft limit from {current} to {hard}: {e}"
            ),
        }
    }
    let wanted = u64::try_from(max_connections.saturating_mul(2)).unwrap_or(u64::MAX);
    if let Some(soft) = soft
        && soft < wanted
    {
        tracing::warn!(
            "open files: the limit ({soft}) is below twice max_connections ({max_connections}): under load fpmlb may run out and answer 503 (raise LimitNOFILE or ulimit -n)"
        );
    }
}
