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
//!   and against real servers written by real php-fpm), and [`lock_key`] the key
//!   of its session lock;
//! * [`inspect_key`] and [`delete_key`]: a key's value and remaining time to live
//!   (the expiry a node gave the session it wrote, a lock left behind by a request
//!   that ended), and removing the lock the round trip's own session left.
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
//! This file holds the shared part: what a store is ([`StoreTarget`], built
//! from a parsed save path by [`StoreTarget::from_spec`]), its errors, the
//! fan-out over servers and the timeouts; `memcached` and `redis` hold the
//! two clients.

use crate::fastcgi::exchange::escape_log_text;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

pub use crate::save_path::StoreKind;
use crate::save_path::{Handler, RedisAuth, StoreSpec};

mod memcached;
mod meta;
mod redis;
mod wire;

pub use self::redis::cluster_slot;

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

/// The key of the lock a handler takes on session key `key` (see [`session_key`]),
/// `None` for handlers that take none in the store (`files` locks the file itself,
/// `rediscluster` never locks):
///
/// * `memcached`: the key prefix, then `lock.` and the id (php_memcached_session.c
///   s_lock_session: `lock.<id>` under the MEMCACHED_CALLBACK_NAMESPACE prefix);
/// * `memcache`: the session key and `.lock` (memcache_session.c
///   php_mmc_session_read_request), a counter that a write resets to 0;
/// * `redis`: the session key and `_LOCK` (redis_session.c lock_acquire).
pub fn lock_key(
    handler: &Handler,
    id: &str,
    memcached_prefix: Option<&str>,
    redis_prefix: Option<&str>,
) -> Option<Vec<u8>> {
    let mut key = match handler {
        Handler::Memcached => {
            let prefix = memcached_prefix.unwrap_or(handler.default_key_prefix());
            format!("{prefix}lock.{id}").into_bytes()
        }
        Handler::Memcache | Handler::Redis => {
            session_key(handler, id, memcached_prefix, redis_prefix)
        }
        _ => return None,
    };
    key.extend_from_slice(match handler {
        Handler::Memcache => b".lock",
        Handler::Redis => b"_LOCK",
        _ => b"",
    });
    Some(key)
}

/// A key as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    /// The server that has it (for a Redis Cluster, the master owning its slot).
    pub server: String,
    pub value: Vec<u8>,
    /// Remaining time to live; `None` when it never expires or the server cannot tell.
    pub ttl: Option<Duration>,
}

/// Reads `key` and its remaining time to live from every server that has it, in
/// `target.servers` order (pecl-memcache keeps a session, and its lock, on
/// `session_redundancy` servers; for a Redis Cluster, the master owning its slot).
/// memcached answers through its meta commands (memcached 1.6+; not with SASL, which
/// the text protocol lacks). An error only when no server answered.
pub async fn inspect_key(
    target: &StoreTarget,
    key: &[u8],
    timeout: Duration,
) -> Result<Vec<KeyState>, StoreError> {
    let key = valid_key(target, key)?;
    if target.kind == StoreKind::RedisCluster {
        return Ok(redis::inspect_cluster(target, key.bytes(), timeout)
            .await?
            .map(|(server, value, ttl)| KeyState { server, value, ttl })
            .into_iter()
            .collect());
    }
    let key = Arc::new(key);
    let results = fan_out(target, move |target, index| {
        let key = Arc::clone(&key);
        async move {
            let Some(addr) = target.servers.get(index) else {
                return Ok(None);
            };
            let phase = Phase::default();
            let fut = async {
                match (&*key, target.kind) {
                    (ReadKey::Text(k), _) => {
                        sasl_free(&target, addr)?;
                        meta::meta_get(addr, k)
                            .await
                            .map(|item| item.map(|i| (i.value, i.ttl)))
                    }
                    (ReadKey::Bytes(k), _) => {
                        redis::inspect_redis(&target, addr, k, timeout, &phase).await
                    }
                }
            };
            within(&addr.to_string(), timeout, &phase, fut).await
        }
    })
    .await;
    let mut found = Vec::new();
    let mut failed = Vec::new();
    for (result, addr) in results.into_iter().zip(&target.servers) {
        match result {
            Ok(Some((value, ttl))) => found.push(KeyState {
                server: addr.to_string(),
                value,
                ttl,
            }),
            Ok(None) => {}
            Err(e) => failed.push(e),
        }
    }
    if failed.len() == target.servers.len()
        && let Some(first) = failed.into_iter().next()
    {
        return Err(first);
    }
    Ok(found)
}

/// Deletes `key` from every server that has it (for a Redis Cluster, from its
/// owner); whether any had it.
pub async fn delete_key(
    target: &StoreTarget,
    key: &[u8],
    timeout: Duration,
) -> Result<bool, StoreError> {
    let key = valid_key(target, key)?;
    if target.kind == StoreKind::RedisCluster {
        return redis::delete_cluster(target, key.bytes(), timeout).await;
    }
    let key = Arc::new(key);
    let results = fan_out(target, move |target, index| {
        let key = Arc::clone(&key);
        async move {
            let Some(addr) = target.servers.get(index) else {
                return Ok(false);
            };
            let phase = Phase::default();
            let fut = async {
                match &*key {
                    ReadKey::Text(k) => {
                        sasl_free(&target, addr)?;
                        meta::meta_delete(addr, k).await
                    }
                    ReadKey::Bytes(k) => {
                        redis::delete_redis(&target, addr, k, timeout, &phase).await
                    }
                }
            };
            within(&addr.to_string(), timeout, &phase, fut).await
        }
    })
    .await;
    let mut any = false;
    for result in results {
        any |= result?;
    }
    Ok(any)
}

/// memcached meta commands are text protocol, which has no SASL.
fn sasl_free(target: &StoreTarget, addr: &StoreAddr) -> Result<(), StoreError> {
    if target.username.is_some() || target.password.is_some() {
        return Err(StoreError::Config {
            server: addr.to_string(),
            reason: "memcached with SASL: its item expiry cannot be read".to_string(),
        });
    }
    Ok(())
}

/// Runs `op` for every server of `target` concurrently; results in server order.
async fn fan_out<T, F, Fut>(target: &StoreTarget, op: F) -> Vec<Result<T, StoreError>>
where
    T: Send + 'static,
    F: Fn(Arc<StoreTarget>, usize) -> Fut,
    Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let target = Arc::new(target.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..target.servers.len() {
        let fut = op(Arc::clone(&target), index);
        tasks.spawn(async move { (index, fut.await) });
    }
    let mut results: Vec<Option<Result<T, StoreError>>> =
        (0..target.servers.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, result)) = joined
            && let Some(slot) = results.get_mut(index)
        {
            *slot = Some(result);
        }
    }
    results
        .into_iter()
        .zip(&target.servers)
        .map(|(result, addr)| {
            result.unwrap_or_else(|| {
                Err(StoreError::Server {
                    server: addr.to_string(),
                    reason: "internal error: the task failed".to_string(),
                })
            })
        })
        .collect()
}

/// The first server (in `target.servers` order) whose answer is `Some`, `Ok(None)`
/// when every server answered without it, else why some could not be asked.
fn first_found<T>(
    target: &StoreTarget,
    results: Vec<Result<Option<T>, StoreError>>,
) -> Result<Option<(String, T)>, StoreError> {
    let mut answered = 0;
    let mut failed = Vec::new();
    for (result, addr) in results.into_iter().zip(&target.servers) {
        match result {
            Ok(Some(value)) => return Ok(Some((addr.to_string(), value))),
            Ok(None) => answered += 1,
            Err(err) => failed.push(err),
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

/// Checks `key` for `target` and puts it in the form the store's client takes.
fn valid_key(target: &StoreTarget, key: &[u8]) -> Result<ReadKey, StoreError> {
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
    Ok(match target.kind {
        StoreKind::Memcached => {
            ReadKey::Text(memcached::memcached_key(key).map_err(|r| invalid(&r))?)
        }
        StoreKind::Redis | StoreKind::RedisCluster => ReadKey::Bytes(key.to_vec()),
    })
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
    let results = fan_out(target, move |target, index| async move {
        Ok::<_, StoreError>(check_one(&target, index, timeout).await)
    })
    .await;
    results
        .into_iter()
        .zip(&target.servers)
        .map(|(check, addr)| {
            check.unwrap_or_else(|e| ServerCheck {
                server: addr.to_string(),
                ok: false,
                latency_ms: None,
                detail: e.detail(),
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
    let key = valid_key(target, key)?;
    if target.kind == StoreKind::RedisCluster {
        return redis::read_cluster(target, key.bytes(), timeout).await;
    }
    let key = Arc::new(key);
    let results = fan_out(target, move |target, index| {
        let key = Arc::clone(&key);
        async move { read_one(&target, index, &key, timeout).await }
    })
    .await;
    first_found(target, results)
}

/// A validated key, in the form the store's client takes.
enum ReadKey {
    /// memcached (the `memcache` crate takes `&str`).
    Text(String),
    /// Redis.
    Bytes(Vec<u8>),
}

impl ReadKey {
    fn bytes(&self) -> &[u8] {
        match self {
            ReadKey::Text(t) => t.as_bytes(),
            ReadKey::Bytes(b) => b,
        }
    }
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
            StoreKind::Memcached => memcached::check_memcached(target, addr, &phase).await,
            StoreKind::Redis | StoreKind::RedisCluster => {
                redis::check_redis(target, addr, timeout, &phase).await
            }
        }
    };
    match within(&server, timeout, &phase, fut).await {
        // What a server says reaches reports, the status page and logs.
        Ok(checked) => ServerCheck {
            server,
            ok: checked.ok,
            latency_ms: Some(millis(checked.rtt)),
            detail: escape_log_text(checked.detail.as_bytes()),
        },
        Err(err) => ServerCheck {
            server,
            ok: false,
            latency_ms: None,
            detail: escape_log_text(err.detail().as_bytes()),
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
            ReadKey::Text(key) => memcached::get_memcached(target, addr, key, &phase).await,
            ReadKey::Bytes(key) => redis::get_redis(target, addr, key, timeout, &phase).await,
        }
    };
    within(&server, timeout, &phase, fut).await
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

    pub(super) fn target(kind: StoreKind) -> StoreTarget {
        StoreTarget {
            kind,
            servers: vec![],
            database: None,
            password: None,
            username: None,
        }
    }

    #[test]
    fn latency_rounding() {
        assert_eq!(millis(Duration::from_nanos(1_234_567)), 1.235);
        assert_eq!(millis(Duration::from_micros(250)), 0.25);
        assert_eq!(millis(Duration::ZERO), 0.0);
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
