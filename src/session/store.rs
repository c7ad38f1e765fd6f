//! Session-store client: fpmlb's own view of the store that the php-fpm nodes
//! share their PHP sessions through (memcached, Redis or a Redis Cluster).
//!
//! This module owns three things:
//!
//! * [`check_servers`]: every server of the store on its own, concurrently:
//!   reachable, answering (`version` / `PING`), how fast, which version;
//! * [`read_key`]: reading a session straight from the store, to prove that a
//!   session written through one node is where the other nodes will look;
//! * [`session_key`]: the key each PHP session handler stores a session id
//!   under (prefixes checked against phpredis / php-memcached / pecl-memcache
//!   and against real servers written by real php-fpm).
//!
//! Memcached servers are always asked one by one, each through a client that
//! knows that one server only. The `memcache` crate spreads keys over several
//! servers with its own hash (Rust's `DefaultHasher` modulo the server count),
//! which is neither php-memcached's consistent (ketama) hashing nor
//! pecl-memcache's crc32 one (and pecl-memcache writes every session to two
//! servers by default), so fpmlb never lets the crate pick the server: it asks
//! every server and reports which one had the key. Redis servers listed
//! together are asked one by one for the same reason (phpredis spreads
//! sessions over them by weight); a Redis Cluster is read through the cluster
//! client, which follows the cluster's own slot map.
//!
//! The `memcache` crate is blocking: its calls run on tokio's blocking pool,
//! bounded by [`tokio::time::timeout`] and by socket timeouts, so a dead or
//! silent server can neither stall the caller nor hold a thread for long. A
//! plain tokio connect comes first, because the crate's connection pool
//! retries a refused connection until its timeout instead of failing fast.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use redis::{RedisConnectionInfo, RedisError, Value};

pub use crate::save_path::StoreKind;
use crate::save_path::{Handler, RedisAuth, StoreSpec};

/// Longest key memcached accepts.
const MEMCACHED_MAX_KEY: usize = 250;
/// Smallest timeout handed to the clients (some of them refuse zero).
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// One server of the store, as the session config names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum StoreAddr {
    /// A TCP server; `host` is a name or an IP (IPv6 without brackets).
    Tcp {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A unix-domain socket.
    Unix(PathBuf),
}

/// Display form: `host:port`, `[v6]:port` or `unix:/path`.
impl fmt::Display for StoreAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreAddr::Tcp { host, port } if host.contains(':') && !host.starts_with('[') => {
                write!(f, "[{host}]:{port}")
            }
            StoreAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
            StoreAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A session store: its kind, its servers and how to log in.
#[derive(Debug, Clone)]
pub struct StoreTarget {
    /// What the servers are.
    pub kind: StoreKind,
    /// The servers (seed nodes for a Redis Cluster).
    pub servers: Vec<StoreAddr>,
    /// Redis database (`SELECT`); ignored for memcached.
    pub database: Option<i64>,
    /// Redis `AUTH` password, or memcached SASL password (with `username`).
    pub password: Option<String>,
    /// Redis ACL user, or memcached SASL user (with `password`).
    pub username: Option<String>,
}

impl StoreTarget {
    /// The store of `spec`, as fpmlb reaches it, when the handler has one it can read
    /// (`None` for `files` and unknown handlers); `auth` logs in to Redis (see
    /// [`redis_auth`](crate::save_path::redis_auth)). Servers without a port are left out.
    pub fn from_spec(spec: &StoreSpec, auth: Option<RedisAuth>) -> Option<StoreTarget> {
        let kind = spec.handler.store_kind()?;
        let servers = spec
            .servers
            .iter()
            .filter_map(|s| match (s.scheme.as_str(), s.port) {
                ("unix", _) => Some(StoreAddr::Unix(s.host.clone().into())),
                (_, Some(port)) => Some(StoreAddr::Tcp {
                    host: s.host.clone(),
                    port,
                }),
                _ => None,
            })
            .collect();
        let database = spec.options.get("database").and_then(|d| d.parse().ok());
        let (username, password) = match auth {
            Some(a) => (a.username, Some(a.password)),
            None => (None, None),
        };
        Some(StoreTarget {
            kind,
            servers,
            database,
            password,
            username,
        })
    }
}

/// The answer of one server.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerCheck {
    /// The server in display form (`host:port` or `unix:path`).
    pub server: String,
    /// Reachable, answering, and fit to hold sessions for this store kind.
    pub ok: bool,
    /// Round trip of `version` (memcached) or `PING` (Redis) on the
    /// established connection, in ms with 3 decimals; `None` when the server
    /// did not answer it.
    pub latency_ms: Option<f64>,
    /// What answered (e.g. `memcached 1.6.18`, `redis 7.0.15`) or what went
    /// wrong.
    pub detail: String,
}

/// Why the store could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The target lists no server.
    #[error("the {kind} session store has no server configured")]
    NoServers {
        /// The store kind.
        kind: StoreKind,
    },
    /// The key cannot be sent to this kind of store.
    #[error("invalid {kind} key: {reason}")]
    InvalidKey {
        /// The store kind.
        kind: StoreKind,
        /// What is wrong with it.
        reason: String,
    },
    /// The address or settings cannot be used for this server.
    #[error("{server}: invalid configuration: {reason}")]
    Config {
        /// The server.
        server: String,
        /// What is wrong.
        reason: String,
    },
    /// No connection could be made.
    #[error("{server}: cannot connect: {reason}")]
    Connect {
        /// The server.
        server: String,
        /// The cause (e.g. connection refused).
        reason: String,
    },
    /// The server refused the credentials (or wants some).
    #[error("{server}: authentication failed: {reason}")]
    Auth {
        /// The server.
        server: String,
        /// The server's answer.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("{server}: no answer within {} ms {phase}", timeout.as_millis())]
    Timeout {
        /// The server.
        server: String,
        /// The time allowed.
        timeout: Duration,
        /// What was under way (e.g. `while connecting`).
        phase: &'static str,
    },
    /// The server answered with an error, or something unexpected.
    #[error("{server}: {reason}")]
    Server {
        /// The server.
        server: String,
        /// The error.
        reason: String,
    },
    /// No server that answered has the key, but some servers could not be asked.
    #[error("{}", incomplete_message(*answered, failed))]
    Incomplete {
        /// How many servers answered (without the key).
        answered: usize,
        /// Why the others could not be asked.
        failed: Vec<StoreError>,
    },
}

impl StoreError {
    /// The server the error is about, if it is about one.
    pub fn server(&self) -> Option<&str> {
        match self {
            StoreError::Config { server, .. }
            | StoreError::Connect { server, .. }
            | StoreError::Auth { server, .. }
            | StoreError::Timeout { server, .. }
            | StoreError::Server { server, .. } => Some(server),
            StoreError::NoServers { .. }
            | StoreError::InvalidKey { .. }
            | StoreError::Incomplete { .. } => None,
        }
    }

    /// The message without the leading `server: ` (for [`ServerCheck::detail`]).
    fn detail(&self) -> String {
        let text = self.to_string();
        match self.server() {
            Some(server) => text
                .strip_prefix(server)
                .and_then(|rest| rest.strip_prefix(": "))
                .map(str::to_string)
                .unwrap_or(text),
            None => text,
        }
    }
}

fn incomplete_message(answered: usize, failed: &[StoreError]) -> String {
    let errors = failed
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if answered == 0 {
        format!("no server could be asked: {errors}")
    } else {
        format!(
            "the key is on none of the {answered} server(s) that answered, \
             and {} could not be asked: {errors}",
            failed.len()
        )
    }
}

/// The key PHP stores session `id` under, per `session.save_handler`:
///
/// * `memcached` (php-memcached): `memcached.sess_prefix` + id; the prefix
///   defaults to the handler's ([`Handler::default_key_prefix`],
///   `memc.sess.key.`), and an empty prefix means the bare id.
/// * `memcache` (pecl-memcache): the bare id; `memcached_prefix` is not
///   applied (it is php-memcached's setting, and nodes often load both
///   extensions). With pecl-memcache's rarely used
///   `memcache.session_prefix_static_key` / `session_prefix_host_key`, pass
///   the prefixed id as `id`.
/// * `redis` (phpredis): the save_path `prefix` parameter + id, default
///   `PHPREDIS_SESSION:`.
/// * `rediscluster` (phpredis): the save_path `prefix` parameter + id,
///   default `PHPREDIS_CLUSTER_SESSION:`.
/// * any other handler: the bare id.
pub fn session_key(
    handler: &Handler,
    id: &str,
    memcached_prefix: Option<&str>,
    redis_prefix: Option<&str>,
) -> Vec<u8> {
    let prefix = match handler {
        Handler::Memcached => memcached_prefix.unwrap_or(handler.default_key_prefix()),
        Handler::Redis | Handler::RedisCluster => {
            redis_prefix.unwrap_or(handler.default_key_prefix())
        }
        Handler::Memcache | Handler::Files | Handler::Other(_) => handler.default_key_prefix(),
    };
    let mut key = Vec::with_capacity(prefix.len() + id.len());
    key.extend_from_slice(prefix.as_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// Checks every server on its own within `timeout` each (concurrently):
/// connect, `version` (memcached) or `PING` + `INFO server` (Redis; plus
/// `CLUSTER INFO` for a Redis Cluster), timing the round trip. One entry per
/// server, in the order of `target.servers` (none when the list is empty).
///
/// Besides answering, a Redis server must fit the store kind: a Cluster node
/// listed as a plain Redis server (phpredis' `redis` handler would get
/// `MOVED` for most keys), a stand-alone server listed as a Cluster node, a
/// Cluster node whose `cluster_state` is not `ok`, or a Sentinel, is not ok.
pub async fn check_servers(target: &StoreTarget, timeout: Duration) -> Vec<ServerCheck> {
    let target = Arc::new(target.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..target.servers.len() {
        let target = Arc::clone(&target);
        tasks.spawn(async move { (index, check_one(&target, index, timeout).await) });
    }
    let mut checks: Vec<Option<ServerCheck>> = vec![None; target.servers.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, check)) = joined
            && let Some(slot) = checks.get_mut(index)
        {
            *slot = Some(check);
        }
    }
    checks
        .into_iter()
        .zip(&target.servers)
        .map(|(check, addr)| {
            check.unwrap_or_else(|| ServerCheck {
                server: addr.to_string(),
                ok: false,
                latency_ms: None,
                detail: "internal error: the check task failed".to_string(),
            })
        })
        .collect()
}

/// Reads `key` straight from the store, asking every server: memcached and
/// Redis servers each on their own (concurrently, within `timeout` each), a
/// Redis Cluster through the cluster client (within `timeout` overall).
///
/// Returns the raw value and the server that had it (the first in
/// `target.servers` order when several have it; for a Redis Cluster, the
/// master owning the key's slot), or `Ok(None)` when every server answered
/// and none has it. When no server has it but some could not be asked, the
/// error says which and why ([`StoreError::Incomplete`]; the error itself
/// when the store has a single server).
pub async fn read_key(
    target: &StoreTarget,
    key: &[u8],
    timeout: Duration,
) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    if target.servers.is_empty() {
        return Err(StoreError::NoServers { kind: target.kind });
    }
    let invalid = |reason: &str| StoreError::InvalidKey {
        kind: target.kind,
        reason: reason.to_string(),
    };
    if key.is_empty() {
        return Err(invalid("the key is empty"));
    }
    let key = match target.kind {
        StoreKind::Memcached => ReadKey::Text(memcached_key(key).map_err(|r| invalid(&r))?),
        StoreKind::Redis => ReadKey::Bytes(key.to_vec()),
        StoreKind::RedisCluster => return read_cluster(target, key, timeout).await,
    };

    let target = Arc::new(target.clone());
    let key = Arc::new(key);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..target.servers.len() {
        let (target, key) = (Arc::clone(&target), Arc::clone(&key));
        tasks.spawn(async move { (index, read_one(&target, index, &key, timeout).await) });
    }
    let mut results: Vec<Option<Result<Option<Vec<u8>>, StoreError>>> =
        (0..target.servers.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, result)) = joined
            && let Some(slot) = results.get_mut(index)
        {
            *slot = Some(result);
        }
    }

    let mut answered = 0;
    let mut failed = Vec::new();
    for (result, addr) in results.into_iter().zip(&target.servers) {
        let server = addr.to_string();
        match result {
            Some(Ok(Some(value))) => return Ok(Some((server, value))),
            Some(Ok(None)) => answered += 1,
            Some(Err(err)) => failed.push(err),
            None => failed.push(StoreError::Server {
                server,
                reason: "internal error: the read task failed".to_string(),
            }),
        }
    }
    if failed.is_empty() {
        Ok(None)
    } else if failed.len() == 1 && answered == 0 {
        Err(failed.remove(0))
    } else {
        Err(StoreError::Incomplete { answered, failed })
    }
}

/// A validated key, in the form the store's client takes.
enum ReadKey {
    /// memcached (the `memcache` crate takes `&str`).
    Text(String),
    /// Redis.
    Bytes(Vec<u8>),
}

/// Checks a memcached key: what the text protocol accepts, as text.
fn memcached_key(key: &[u8]) -> Result<String, String> {
    if key.len() > MEMCACHED_MAX_KEY {
        return Err(format!(
            "{} bytes long, memcached keys are at most {MEMCACHED_MAX_KEY}",
            key.len()
        ));
    }
    if key.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err("contains a space or a control character".to_string());
    }
    std::str::from_utf8(key)
        .map(str::to_string)
        .map_err(|_| "not UTF-8 (the memcache client takes text keys)".to_string())
}

// ------------------------------------------------------------------ phases

/// What a server exchange is doing, to say where a timeout struck.
#[derive(Default)]
struct Phase(AtomicU8);

impl Phase {
    const CONNECT: u8 = 0;
    const COMMAND: u8 = 1;
    const INFO: u8 = 2;

    fn set(&self, phase: u8) {
        self.0.store(phase, Ordering::Relaxed);
    }

    fn describe(&self) -> &'static str {
        match self.0.load(Ordering::Relaxed) {
            Phase::CONNECT => "while connecting",
            Phase::COMMAND => "to the request (connected)",
            _ => "to a follow-up request (PING answered)",
        }
    }
}

/// Runs `fut` within `timeout`, turning the deadline into [`StoreError::Timeout`].
async fn within<T>(
    server: &str,
    timeout: Duration,
    phase: &Phase,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Timeout {
            server: server.to_string(),
            timeout,
            phase: phase.describe(),
        }),
    }
}

/// A duration in ms, rounded to 3 decimals.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

// ------------------------------------------------------------- per server

async fn check_one(target: &StoreTarget, index: usize, timeout: Duration) -> ServerCheck {
    let Some(addr) = target.servers.get(index) else {
        return ServerCheck {
            server: String::new(),
            ok: false,
            latency_ms: None,
            detail: "internal error: no such server".to_string(),
        };
    };
    let server = addr.to_string();
    let phase = Phase::default();
    let fut = async {
        match target.kind {
            StoreKind::Memcached => {
                let reply = memcached(target, addr, MemcachedOp::Version, timeout, &phase).await?;
                match reply {
                    (MemcachedReply::Version(version), rtt) => Ok(Checked {
                        ok: true,
                        rtt,
                        detail: format!("memcached {version}"),
                    }),
                    (MemcachedReply::Value(_), _) => Err(StoreError::Server {
                        server: server.clone(),
                        reason: "unexpected reply to version".to_string(),
                    }),
                }
            }
            StoreKind::Redis | StoreKind::RedisCluster => {
                check_redis(target, addr, timeout, &phase).await
            }
        }
    };
    match within(&server, timeout, &phase, fut).await {
        Ok(checked) => ServerCheck {
            server,
            ok: checked.ok,
            latency_ms: Some(millis(checked.rtt)),
            detail: checked.detail,
        },
        Err(err) => ServerCheck {
            server,
            ok: false,
            latency_ms: None,
            detail: err.detail(),
        },
    }
}

/// A server that answered.
struct Checked {
    ok: bool,
    rtt: Duration,
    detail: String,
}

async fn read_one(
    target: &StoreTarget,
    index: usize,
    key: &ReadKey,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(addr) = target.servers.get(index) else {
        return Ok(None);
    };
    let server = addr.to_string();
    let phase = Phase::default();
    let fut = async {
        match key {
            ReadKey::Text(key) => {
                let op = MemcachedOp::Get(key.clone());
                match memcached(target, addr, op, timeout, &phase).await? {
                    (MemcachedReply::Value(value), _) => Ok(value),
                    (MemcachedReply::Version(_), _) => Err(StoreError::Server {
                        server: server.clone(),
                        reason: "unexpected reply to get".to_string(),
                    }),
                }
            }
            ReadKey::Bytes(key) => {
                let mut con = redis_connect(target, addr, timeout).await?;
                phase.set(Phase::COMMAND);
                redis::cmd("GET")
                    .arg(key.as_slice())
                    .query_async::<Option<Vec<u8>>>(&mut con)
                    .await
                    .map_err(|e| redis_error(&server, e, timeout, "to GET"))
            }
        }
    };
    within(&server, timeout, &phase, fut).await
}

// ----------------------------------------------------------------- memcached

enum MemcachedOp {
    Version,
    Get(String),
}

enum MemcachedReply {
    Version(String),
    Value(Option<Vec<u8>>),
}

/// One exchange with one memcached server: a tokio connect (fails fast when
/// refused), then the `memcache` crate on the blocking pool. Returns the reply
/// and the round trip of the command itself.
async fn memcached(
    target: &StoreTarget,
    addr: &StoreAddr,
    op: MemcachedOp,
    timeout: Duration,
    phase: &Phase,
) -> Result<(MemcachedReply, Duration), StoreError> {
    let server = addr.to_string();
    let started = Instant::now();
    let url = memcache_url(addr, target, timeout).map_err(|reason| StoreError::Config {
        server: server.clone(),
        reason,
    })?;
    let connected = match addr {
        StoreAddr::Tcp { host, port } => tokio::net::TcpStream::connect((host.as_str(), *port))
            .await
            .map(drop),
        StoreAddr::Unix(path) => tokio::net::UnixStream::connect(path).await.map(drop),
    };
    connected.map_err(|e| StoreError::Connect {
        server: server.clone(),
        reason: e.to_string(),
    })?;

    let budget = timeout.saturating_sub(started.elapsed()).max(MIN_TIMEOUT);
    let blocking = tokio::task::spawn_blocking(move || {
        let client = memcache_client(url, budget).map_err(|e| (true, e))?;
        let sent = Instant::now();
        let reply = match op {
            MemcachedOp::Version => client
                .version()
                .map(|versions| {
                    MemcachedReply::Version(
                        versions
                            .into_iter()
                            .next()
                            .map(|(_, v)| v)
                            .unwrap_or_default(),
                    )
                })
                .map_err(|e| (false, e))?,
            MemcachedOp::Get(key) => client
                .get::<Vec<u8>>(&key)
                .map(MemcachedReply::Value)
                .map_err(|e| (false, e))?,
        };
        Ok::<_, (bool, memcache::MemcacheError)>((reply, sent.elapsed()))
    });
    // The connect probe succeeded: what is left is the crate's connect + command.
    phase.set(Phase::COMMAND);
    match blocking.await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err((connecting, err))) => Err(memcache_error(&server, connecting, err, budget)),
        Err(join) => Err(StoreError::Server {
            server,
            reason: format!("internal error: the memcached task failed: {join}"),
        }),
    }
}

/// The `memcache` crate URL for one server: text protocol, unless SASL
/// credentials are given (SASL needs the binary protocol).
fn memcache_url(
    addr: &StoreAddr,
    target: &StoreTarget,
    timeout: Duration,
) -> Result<memcache::Url, String> {
    let sasl = match (&target.username, &target.password) {
        (Some(user), Some(pass)) => Some((user.as_str(), pass.as_str())),
        (None, None) => None,
        _ => return Err("memcached SASL needs both a username and a password".to_string()),
    };
    let mut url = match addr {
        StoreAddr::Tcp { host, port } => {
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            memcache::Url::parse(&format!("memcache://{host}:{port}"))
                .map_err(|e| format!("bad address: {e}"))?
        }
        StoreAddr::Unix(path) => {
            let text = path.to_str().ok_or("the socket path is not UTF-8")?;
            if !path.is_absolute() {
                return Err("the socket path must be absolute".to_string());
            }
            let url = memcache::Url::parse(&format!("memcache://{text}"))
                .map_err(|e| format!("bad socket path: {e}"))?;
            if url.path() != text || url.host_str().is_some_and(|h| !h.is_empty()) {
                return Err(
                    "the socket path has characters the memcache client cannot take".to_string(),
                );
            }
            url
        }
    };
    if let Some((user, pass)) = sasl {
        if matches!(addr, StoreAddr::Unix(_)) {
            return Err("the memcache client cannot log in (SASL) over a unix socket".to_string());
        }
        // The crate sends the URL's (percent-encoded) user info as is.
        let set = url.set_username(user).is_ok() && url.set_password(Some(pass)).is_ok();
        if !set || url.username() != user || url.password() != Some(pass) {
            return Err(
                "the SASL username or password has characters the memcache client cannot send"
                    .to_string(),
            );
        }
    }
    let secs = format!("{:.3}", timeout.max(MIN_TIMEOUT).as_secs_f64());
    let mut query = url.query_pairs_mut();
    query
        .append_pair("timeout", &secs)
        .append_pair("tcp_nodelay", "true");
    if sasl.is_none() {
        query.append_pair("protocol", "ascii");
    }
    drop(query);
    Ok(url)
}

/// A client for exactly one memcached server: a pool of one connection, made
/// now (within `timeout`), not tested on checkout (one round trip per
/// command, so the timing is the command's), socket timeouts on both ways.
fn memcache_client(
    url: memcache::Url,
    timeout: Duration,
) -> Result<memcache::Client, memcache::MemcacheError> {
    let pool = memcache::Pool::builder()
        .max_size(1)
        .min_idle(Some(1))
        .test_on_check_out(false)
        .connection_timeout(timeout.max(MIN_TIMEOUT))
        .build(memcache::ConnectionManager::new(url))?;
    let client = memcache::Client::with_pool(pool)?;
    client.set_read_timeout(Some(timeout.max(MIN_TIMEOUT)))?;
    client.set_write_timeout(Some(timeout.max(MIN_TIMEOUT)))?;
    Ok(client)
}

fn memcache_error(
    server: &str,
    connecting: bool,
    err: memcache::MemcacheError,
    timeout: Duration,
) -> StoreError {
    use memcache::{CommandError, MemcacheError};
    let server = server.to_string();
    let reason = err.to_string();
    match &err {
        MemcacheError::IOError(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            StoreError::Timeout {
                server,
                timeout,
                phase: if connecting {
                    "while connecting"
                } else {
                    "to the request"
                },
            }
        }
        MemcacheError::CommandError(CommandError::AuthenticationRequired) => {
            StoreError::Auth { server, reason }
        }
        _ if reason.to_ascii_lowercase().contains("auth") => StoreError::Auth { server, reason },
        MemcacheError::BadURL(_) => StoreError::Config { server, reason },
        MemcacheError::PoolError(_) => StoreError::Connect { server, reason },
        MemcacheError::IOError(_) if connecting => StoreError::Connect { server, reason },
        _ => StoreError::Server { server, reason },
    }
}

// --------------------------------------------------------------------- redis

/// Connection settings for one Redis server of `target`.
fn redis_info(target: &StoreTarget, addr: &StoreAddr) -> Result<ConnectionInfo, RedisError> {
    let caddr = match addr {
        StoreAddr::Tcp { host, port } => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            ConnectionAddr::Tcp(host.to_string(), *port)
        }
        StoreAddr::Unix(path) => ConnectionAddr::Unix(path.clone()),
    };
    let mut settings =
        RedisConnectionInfo::default().set_lib_name("fpmlb", env!("CARGO_PKG_VERSION"));
    if let Some(db) = target.database {
        settings = settings.set_db(db);
    }
    if let Some(user) = &target.username {
        settings = settings.set_username(user);
    }
    if let Some(pass) = &target.password {
        settings = settings.set_password(pass);
    }
    Ok(caddr.into_connection_info()?.set_redis_settings(settings))
}

/// Connects to one Redis server (AUTH and SELECT included).
async fn redis_connect(
    target: &StoreTarget,
    addr: &StoreAddr,
    timeout: Duration,
) -> Result<MultiplexedConnection, StoreError> {
    let server = addr.to_string();
    let client = redis_info(target, addr)
        .and_then(redis::Client::open)
        .map_err(|e| StoreError::Config {
            server: server.clone(),
            reason: e.to_string(),
        })?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout.max(MIN_TIMEOUT)))
        .set_response_timeout(Some(timeout.max(MIN_TIMEOUT)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| redis_error(&server, e, timeout, "while connecting"))
}

/// Sorts a Redis error into a [`StoreError`] naming `server`.
fn redis_error(
    server: &str,
    err: RedisError,
    timeout: Duration,
    phase: &'static str,
) -> StoreError {
    let server = server.to_string();
    let reason = redis_reason(&err);
    let code = err.code().unwrap_or_default();
    if err.is_timeout() {
        StoreError::Timeout {
            server,
            timeout,
            phase,
        }
    } else if err.kind() == redis::ErrorKind::AuthenticationFailed || code == "WRONGPASS" {
        // redis-rs drops the server's text here: WRONGPASS, or AUTH sent to
        // a server without a password.
        let reason = "the server refused the username/password (wrong credentials, \
                      or the server has none set)"
            .to_string();
        StoreError::Auth { server, reason }
    } else if code == "NOAUTH" {
        let reason = "the server requires a password (NOAUTH) and none is configured".to_string();
        StoreError::Auth { server, reason }
    } else if reason.to_ascii_lowercase().contains("auth") {
        StoreError::Auth { server, reason }
    } else if err.is_connection_refusal() || (err.is_io_error() && phase == "while connecting") {
        StoreError::Connect { server, reason }
    } else if err.kind() == redis::ErrorKind::InvalidClientConfig {
        StoreError::Config { server, reason }
    } else {
        StoreError::Server { server, reason }
    }
}

async fn check_redis(
    target: &StoreTarget,
    addr: &StoreAddr,
    timeout: Duration,
    phase: &Phase,
) -> Result<Checked, StoreError> {
    let server = addr.to_string();
    let mut con = redis_connect(target, addr, timeout).await?;

    phase.set(Phase::COMMAND);
    let sent = Instant::now();
    let pong = redis::cmd("PING")
        .query_async::<String>(&mut con)
        .await
        .map_err(|e| redis_error(&server, e, timeout, "to PING"))?;
    let rtt = sent.elapsed();
    if pong != "PONG" {
        return Err(StoreError::Server {
            server,
            reason: format!("unexpected reply to PING: {pong}"),
        });
    }

    phase.set(Phase::INFO);
    let info = redis::cmd("INFO")
        .arg("server")
        .query_async::<String>(&mut con)
        .await
        .map_err(|e| redis_error(&server, e, timeout, "to INFO"))?;
    let info = parse_info(&info);
    let name = info.get("server_name").copied().unwrap_or("redis");
    let version = info
        .get(&*format!("{name}_version"))
        .or_else(|| info.get("redis_version"))
        .copied()
        .unwrap_or("(unknown version)");
    let what = format!("{name} {version}");
    let mode = info.get("redis_mode").copied().unwrap_or("standalone");

    let (ok, detail) = match (target.kind, mode) {
        (_, "sentinel") => (false, format!("{what} is a Sentinel, not a data server")),
        (StoreKind::RedisCluster, "cluster") => {
            let cluster = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async::<String>(&mut con)
                .await
                .map_err(|e| redis_error(&server, e, timeout, "to CLUSTER INFO"))?;
            let state = parse_info(&cluster)
                .get("cluster_state")
                .copied()
                .unwrap_or("unknown")
                .to_string();
            (state == "ok", format!("{what}, cluster_state:{state}"))
        }
        (StoreKind::RedisCluster, _) => (
            false,
            format!("{what} is not a cluster node (redis_mode:{mode})"),
        ),
        (_, "cluster") => (
            false,
            format!("{what} is a Redis Cluster node: sessions on it need the rediscluster handler"),
        ),
        _ => (true, what),
    };
    Ok(Checked { ok, rtt, detail })
}

/// A Redis error's text without redis-rs' error-kind tag: redis-rs renders
/// `description - Kind: detail` (or `description - Kind`).
fn redis_reason(err: &RedisError) -> String {
    let text = err.to_string();
    match text.split_once(" - ") {
        Some((description, rest)) => match rest.split_once(": ") {
            Some((_, detail)) => format!("{description}: {detail}"),
            None => description.to_string(),
        },
        None => text,
    }
}

/// `key:value` lines of an `INFO` / `CLUSTER INFO` reply.
fn parse_info(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// Reads `key` from a Redis Cluster through the cluster client, and names the
/// master that owns its slot.
async fn read_cluster(
    target: &StoreTarget,
    key: &[u8],
    timeout: Duration,
) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    let label = format!(
        "redis cluster via {}",
        target
            .servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let phase = Phase::default();
    let fut = async {
        let mut nodes = Vec::with_capacity(target.servers.len());
        for addr in &target.servers {
            if let StoreAddr::Unix(_) = addr {
                return Err(StoreError::Config {
                    server: addr.to_string(),
                    reason: "a Redis Cluster is reached over TCP only".to_string(),
                });
            }
            nodes.push(redis_info(target, addr).map_err(|e| StoreError::Config {
                server: addr.to_string(),
                reason: e.to_string(),
            })?);
        }
        let timeout = timeout.max(MIN_TIMEOUT);
        let client = redis::cluster::ClusterClient::builder(nodes)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(2)
            .build()
            .map_err(|e| StoreError::Config {
                server: label.clone(),
                reason: e.to_string(),
            })?;
        let mut con = client
            .get_async_connection()
            .await
            .map_err(|e| redis_error(&label, e, timeout, "while connecting"))?;
        phase.set(Phase::COMMAND);
        let value = redis::cmd("GET")
            .arg(key)
            .query_async::<Option<Vec<u8>>>(&mut con)
            .await
            .map_err(|e| redis_error(&label, e, timeout, "to GET"))?;
        let Some(value) = value else {
            return Ok(None);
        };
        phase.set(Phase::INFO);
        let slot = cluster_slot(key);
        let owner = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Value>(&mut con)
            .await
            .ok()
            .and_then(|slots| slot_owner(&slots, slot))
            .unwrap_or_else(|| format!("{label} (slot {slot})"));
        Ok(Some((owner, value)))
    };
    within(&label, timeout, &phase, fut).await
}

/// The Redis Cluster slot of `key` (CRC16/XMODEM of the key or of its
/// `{hash tag}`, modulo 16384).
fn cluster_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = key.get(open + 1..)?;
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| rest.get(..close)).flatten()
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for &byte in hashed {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// The master `host:port` serving `slot`, from a `CLUSTER SLOTS` reply.
fn slot_owner(slots: &Value, slot: u16) -> Option<String> {
    let Value::Array(ranges) = slots else {
        return None;
    };
    ranges.iter().find_map(|range| {
        let Value::Array(fields) = range else {
            return None;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return None;
        };
        if !(*start..=*end).contains(&i64::from(slot)) {
            return None;
        }
        let host = match master.first()? {
            Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Value::SimpleString(text) => text.clone(),
            _ => return None,
        };
        let Value::Int(port) = master.get(1)? else {
            return None;
        };
        let port = u16::try_from(*port).ok()?;
        Some(
            StoreAddr::Tcp {
                host: if host.is_empty() {
                    "?".to_string()
                } else {
                    host
                },
                port,
            }
            .to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_per_handler() {
        let id = "2staq50mi8it7f2bi436c08b46";
        assert_eq!(
            session_key(&Handler::from_name("memcached"), id, None, None),
            b"memc.sess.key.2staq50mi8it7f2bi436c08b46"
        );
        assert_eq!(
            session_key(&Handler::from_name("memcached"), id, Some("app."), None),
            b"app.2staq50mi8it7f2bi436c08b46"
        );
        assert_eq!(
            session_key(&Handler::from_name("memcached"), id, Some(""), None),
            id.as_bytes()
        );
        assert_eq!(
            session_key(&Handler::from_name("memcache"), id, None, Some("x")),
            id.as_bytes()
        );
        assert_eq!(
            session_key(
                &Handler::from_name("memcache"),
                id,
                Some("memc.sess.key."),
                None
            ),
            id.as_bytes()
        );
        assert_eq!(
            session_key(&Handler::from_name("redis"), id, Some("ignored"), None),
            b"PHPREDIS_SESSION:2staq50mi8it7f2bi436c08b46"
        );
        assert_eq!(
            session_key(&Handler::from_name("redis"), id, None, Some("s:")),
            b"s:2staq50mi8it7f2bi436c08b46"
        );
        assert_eq!(
            session_key(&Handler::from_name("rediscluster"), id, None, None),
            b"PHPREDIS_CLUSTER_SESSION:2staq50mi8it7f2bi436c08b46"
        );
        assert_eq!(
            session_key(&Handler::from_name(" Redis "), id, None, None),
            b"PHPREDIS_SESSION:2staq50mi8it7f2bi436c08b46"
        );
        assert_eq!(
            session_key(&Handler::from_name("files"), id, Some("a"), Some("b")),
            id.as_bytes()
        );
        assert_eq!(session_key(&Handler::from_name(""), "", None, None), b"");
    }

    #[test]
    fn address_display() {
        let tcp = |host: &str, port| StoreAddr::Tcp {
            host: host.to_string(),
            port,
        };
        assert_eq!(tcp("127.0.38.1", 11211).to_string(), "127.0.38.1:11211");
        assert_eq!(tcp("cache.example", 6379).to_string(), "cache.example:6379");
        assert_eq!(tcp("::1", 6379).to_string(), "[::1]:6379");
        assert_eq!(tcp("[::1]", 6379).to_string(), "[::1]:6379");
        assert_eq!(
            StoreAddr::Unix(PathBuf::from("/run/memcached/memcached.sock")).to_string(),
            "unix:/run/memcached/memcached.sock"
        );
    }

    #[test]
    fn targets_from_specs() {
        let spec = crate::save_path::parse_save_path(
            "redis",
            "tcp://R1:6380?database=2&auth=pw, unix:///run/redis.sock?database=2&auth=pw",
        )
        .unwrap();
        let auth = RedisAuth {
            username: Some("bob".to_string()),
            password: "pw".to_string(),
        };
        let t = StoreTarget::from_spec(&spec, Some(auth)).unwrap();
        assert_eq!(t.kind, StoreKind::Redis);
        assert_eq!(
            t.servers,
            [
                StoreAddr::Tcp {
                    host: "r1".to_string(),
                    port: 6380
                },
                StoreAddr::Unix(PathBuf::from("/run/redis.sock"))
            ]
        );
        assert_eq!(t.database, Some(2));
        assert_eq!(
            (t.username.as_deref(), t.password.as_deref()),
            (Some("bob"), Some("pw"))
        );
        let spec = crate::save_path::parse_save_path("memcache", "tcp://mc:11211").unwrap();
        let t = StoreTarget::from_spec(&spec, None).unwrap();
        assert_eq!(t.kind, StoreKind::Memcached);
        assert_eq!((t.database, t.password), (None, None));
        let files = crate::save_path::parse_save_path("files", "/var/lib/php/sessions").unwrap();
        assert!(StoreTarget::from_spec(&files, None).is_none());
    }

    #[test]
    fn memcached_keys() {
        assert_eq!(
            memcached_key(b"memc.sess.key.abc").as_deref(),
            Ok("memc.sess.key.abc")
        );
        assert!(memcached_key(b"a b").is_err());
        assert!(memcached_key(b"a\r\nflush_all").is_err());
        assert!(memcached_key(&[b'a'; 251]).is_err());
        assert!(memcached_key(&[b'a'; 250]).is_ok());
        assert!(memcached_key(&[0xff, 0xfe]).is_err());
    }

    fn target(kind: StoreKind) -> StoreTarget {
        StoreTarget {
            kind,
            servers: vec![],
            database: None,
            password: None,
            username: None,
        }
    }

    #[test]
    fn memcache_urls() {
        let addr = StoreAddr::Tcp {
            host: "127.0.38.1".to_string(),
            port: 11211,
        };
        let t = target(StoreKind::Memcached);
        let url = memcache_url(&addr, &t, Duration::from_millis(1500)).unwrap();
        assert_eq!(
            url.as_str(),
            "memcache://127.0.38.1:11211?timeout=1.500&tcp_nodelay=true&protocol=ascii"
        );
        let v6 = StoreAddr::Tcp {
            host: "::1".to_string(),
            port: 11211,
        };
        let url = memcache_url(&v6, &t, Duration::ZERO).unwrap();
        assert_eq!(url.host_str(), Some("[::1]"));
        assert!(url.as_str().contains("timeout=0.001"));
        let unix = StoreAddr::Unix(PathBuf::from("/run/mc.sock"));
        let url = memcache_url(&unix, &t, Duration::from_secs(1)).unwrap();
        assert_eq!(url.path(), "/run/mc.sock");
        assert!(url.host_str().unwrap_or("").is_empty());
        assert!(
            memcache_url(
                &StoreAddr::Unix(PathBuf::from("rel.sock")),
                &t,
                Duration::ZERO
            )
            .is_err()
        );

        let mut sasl = target(StoreKind::Memcached);
        sasl.username = Some("user".to_string());
        sasl.password = Some("secret".to_string());
        let url = memcache_url(&addr, &sasl, Duration::from_secs(1)).unwrap();
        assert_eq!(url.username(), "user");
        assert!(!url.as_str().contains("protocol=ascii"));
        sasl.password = Some("p@ss word".to_string());
        assert!(memcache_url(&addr, &sasl, Duration::from_secs(1)).is_err());
        sasl.password = None;
        assert!(memcache_url(&addr, &sasl, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn latency_rounding() {
        assert_eq!(millis(Duration::from_nanos(1_234_567)), 1.235);
        assert_eq!(millis(Duration::from_micros(250)), 0.25);
        assert_eq!(millis(Duration::ZERO), 0.0);
    }

    #[test]
    fn info_parsing() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nos:Linux\r\n";
        let parsed = parse_info(info);
        assert_eq!(parsed.get("redis_version"), Some(&"7.0.15"));
        assert_eq!(parsed.get("redis_mode"), Some(&"standalone"));
        assert_eq!(parsed.get("# Server"), None);
    }

    #[test]
    fn cluster_slots() {
        // Reference values from the Redis Cluster specification / CLUSTER KEYSLOT.
        assert_eq!(cluster_slot(b"123456789"), 0x31c3);
        assert_eq!(cluster_slot(b"foo"), 12182);
        assert_eq!(cluster_slot(b"bar"), 5061);
        assert_eq!(
            cluster_slot(b"{user1000}.following"),
            cluster_slot(b"user1000")
        );
        assert_eq!(cluster_slot(b"foo{}{bar}"), cluster_slot(b"foo{}{bar}"));
        assert_ne!(cluster_slot(b"foo{}{bar}"), cluster_slot(b"bar"));
        assert_eq!(cluster_slot(b"foo{{bar}}zap"), cluster_slot(b"{bar"));
        assert_eq!(cluster_slot(b""), 0);

        let node = |host: &[u8], port| {
            Value::Array(vec![
                Value::BulkString(host.to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let slots = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node(b"127.0.39.1", 7000),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                node(b"127.0.39.1", 7001),
                node(b"127.0.39.1", 7004),
            ]),
        ]);
        assert_eq!(slot_owner(&slots, 0).as_deref(), Some("127.0.39.1:7000"));
        assert_eq!(slot_owner(&slots, 5461).as_deref(), Some("127.0.39.1:7001"));
        assert_eq!(
            slot_owner(&slots, 16383).as_deref(),
            Some("127.0.39.1:7001")
        );
        assert_eq!(slot_owner(&Value::Nil, 1), None);
        assert_eq!(slot_owner(&Value::Array(vec![Value::Int(1)]), 1), None);
    }

    #[test]
    fn error_messages_name_the_server() {
        let err = StoreError::Connect {
            server: "127.0.38.1:11299".to_string(),
            reason: "Connection refused (os error 111)".to_string(),
        };
        assert_eq!(
            err.to_string(),
            "127.0.38.1:11299: cannot connect: Connection refused (os error 111)"
        );
        assert_eq!(
            err.detail(),
            "cannot connect: Connection refused (os error 111)"
        );
        let timeout = StoreError::Timeout {
            server: "127.0.38.1:6379".to_string(),
            timeout: Duration::from_millis(500),
            phase: "while connecting",
        };
        assert_eq!(
            timeout.to_string(),
            "127.0.38.1:6379: no answer within 500 ms while connecting"
        );
        let incomplete = StoreError::Incomplete {
            answered: 1,
            failed: vec![err],
        };
        assert!(
            incomplete
                .to_string()
                .contains("127.0.38.1:11299: cannot connect")
        );
        assert_eq!(incomplete.server(), None);
    }

    #[tokio::test]
    async fn empty_and_invalid_inputs() {
        let t = target(StoreKind::Memcached);
        assert!(
            check_servers(&t, Duration::from_millis(10))
                .await
                .is_empty()
        );
        assert!(matches!(
            read_key(&t, b"k", Duration::from_millis(10)).await,
            Err(StoreError::NoServers { .. })
        ));
        let mut t = target(StoreKind::Memcached);
        t.servers.push(StoreAddr::Tcp {
            host: "127.0.0.1".to_string(),
            port: 1,
        });
        assert!(matches!(
            read_key(&t, b"bad key", Duration::from_millis(10)).await,
            Err(StoreError::InvalidKey { .. })
        ));
        assert!(matches!(
            read_key(&t, b"", Duration::from_millis(10)).await,
            Err(StoreError::InvalidKey { .. })
        ));
    }
}
