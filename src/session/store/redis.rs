//! The Redis client (redis-rs): stand-alone servers one at a time (`PING`,
//! `INFO server`, `GET`), a Redis Cluster through the cluster client, which
//! follows the cluster's slot map; [`cluster_slot`] names the master that
//! owns a key.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use redis::{RedisConnectionInfo, RedisError, Value};

use super::{Checked, MIN_TIMEOUT, Phase, StoreAddr, StoreError, StoreKind, StoreTarget, within};

/// Reads `key` from one Redis server.
pub(super) async fn get_redis(
    target: &StoreTarget,
    addr: &StoreAddr,
    key: &[u8],
    timeout: Duration,
    phase: &Phase,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut con = redis_connect(target, addr, timeout).await?;
    phase.set(Phase::COMMAND);
    redis::cmd("GET")
        .arg(key)
        .query_async::<Option<Vec<u8>>>(&mut con)
        .await
        .map_err(|e| redis_error(&addr.to_string(), e, timeout, "to GET"))
}

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

pub(super) async fn check_redis(
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

/// A connection to a Redis Cluster through the cluster client, and the label
/// errors name it by.
async fn cluster_connection(
    target: &StoreTarget,
    timeout: Duration,
) -> Result<(redis::cluster_async::ClusterConnection, String), StoreError> {
    let label = cluster_label(target);
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
    let con = client
        .get_async_connection()
        .await
        .map_err(|e| redis_error(&label, e, timeout, "while connecting"))?;
    Ok((con, label))
}

fn cluster_label(target: &StoreTarget) -> String {
    format!(
        "redis cluster via {}",
        target
            .servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// Reads `key` from a Redis Cluster through the cluster client, and names the
/// master that owns its slot.
pub(super) async fn read_cluster(
    target: &StoreTarget,
    key: &[u8],
    timeout: Duration,
) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    Ok(inspect_cluster(target, key, timeout)
        .await?
        .map(|(owner, value, _)| (owner, value)))
}

/// Reads `key` and its remaining time to live from a Redis Cluster, naming the
/// master that owns its slot.
pub(super) async fn inspect_cluster(
    target: &StoreTarget,
    key: &[u8],
    timeout: Duration,
) -> Result<Option<(String, Vec<u8>, Option<Duration>)>, StoreError> {
    let label = cluster_label(target);
    let phase = Phase::default();
    let fut = async {
        let (mut con, label) = cluster_connection(target, timeout).await?;
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
        let ttl = redis::cmd("PTTL")
            .arg(key)
            .query_async::<i64>(&mut con)
            .await
            .ok()
            .and_then(pttl);
        let slot = cluster_slot(key);
        let owner = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Value>(&mut con)
            .await
            .ok()
            .and_then(|slots| slot_owner(&slots, slot))
            .unwrap_or_else(|| format!("{label} (slot {slot})"));
        Ok(Some((owner, value, ttl)))
    };
    within(&label, timeout, &phase, fut).await
}

/// Deletes `key` from a Redis Cluster; whether it was there.
pub(super) async fn delete_cluster(
    target: &StoreTarget,
    key: &[u8],
    timeout: Duration,
) -> Result<bool, StoreError> {
    let label = cluster_label(target);
    let phase = Phase::default();
    let fut = async {
        let (mut con, label) = cluster_connection(target, timeout).await?;
        phase.set(Phase::COMMAND);
        del(&mut con, key, &label, timeout).await
    };
    within(&label, timeout, &phase, fut).await
}

/// Reads `key` and its remaining time to live from one Redis server.
pub(super) async fn inspect_redis(
    target: &StoreTarget,
    addr: &StoreAddr,
    key: &[u8],
    timeout: Duration,
    phase: &Phase,
) -> Result<Option<(Vec<u8>, Option<Duration>)>, StoreError> {
    let mut con = redis_connect(target, addr, timeout).await?;
    phase.set(Phase::COMMAND);
    let (value, ttl): (Option<Vec<u8>>, i64) = redis::pipe()
        .cmd("GET")
        .arg(key)
        .cmd("PTTL")
        .arg(key)
        .query_async(&mut con)
        .await
        .map_err(|e| redis_error(&addr.to_string(), e, timeout, "to GET"))?;
    Ok(value.map(|v| (v, pttl(ttl))))
}

/// Deletes `key` from one Redis server; whether it was there.
pub(super) async fn delete_redis(
    target: &StoreTarget,
    addr: &StoreAddr,
    key: &[u8],
    timeout: Duration,
    phase: &Phase,
) -> Result<bool, StoreError> {
    let mut con = redis_connect(target, addr, timeout).await?;
    phase.set(Phase::COMMAND);
    del(&mut con, key, &addr.to_string(), timeout).await
}

/// `DEL key` on a server or a cluster connection: whether it was there.
async fn del(
    con: &mut impl redis::aio::ConnectionLike,
    key: &[u8],
    server: &str,
    timeout: Duration,
) -> Result<bool, StoreError> {
    redis::cmd("DEL")
        .arg(key)
        .query_async::<i64>(con)
        .await
        .map(|n| n > 0)
        .map_err(|e| redis_error(server, e, timeout, "to DEL"))
}

/// `PTTL`'s answer as a duration: `None` for no expiry (-1) or no key (-2).
fn pttl(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// The Redis Cluster slot of `key` (CRC16/XMODEM of the key or of its
/// `{hash tag}`, modulo 16384), as `CLUSTER KEYSLOT` gives it.
pub fn cluster_slot(key: &[u8]) -> u16 {
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
    fn info_parsing() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nos:Linux\r\n";
        let parsed = parse_info(info);
        assert_eq!(parsed.get("redis_version"), Some(&"7.0.15"));
        assert_eq!(parsed.get("redis_mode"), Some(&"standalone"));
        assert_eq!(parsed.get("# Server"), None);
    }

    #[test]
    fn cluster_slots() {
        // 0x31c3 is CRC16/XMODEM's published check value for "123456789" (the Redis
        // Cluster specification's reference); the others are what `CLUSTER KEYSLOT` of
        // redis-server 7 answers for the hash tag examples of that specification.
        // tests/store.rs compares with a live cluster too.
        assert_eq!(cluster_slot(b"123456789"), 0x31c3);
        assert_eq!(cluster_slot(b"foo"), 12182);
        assert_eq!(cluster_slot(b"bar"), 5061);
        assert_eq!(cluster_slot(b"user1000"), 3443);
        assert_eq!(
            cluster_slot(b"{user1000}.following"),
            cluster_slot(b"user1000")
        );
        // An empty tag hashes the whole key; only the first tag counts.
        assert_eq!(cluster_slot(b"foo{}{bar}"), 8363);
        assert_ne!(cluster_slot(b"foo{}{bar}"), cluster_slot(b"bar"));
        assert_eq!(cluster_slot(b"foo{bar}{zap}"), 5061);
        assert_eq!(cluster_slot(b"foo{{bar}}zap"), 4015);
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
}
