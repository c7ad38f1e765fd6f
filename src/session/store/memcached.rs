//! The memcached client: one server at a time (see the parent module for
//! why), `version` to check it and `get` to read a session.
//!
//! The `memcache` crate is blocking: its calls run on tokio's blocking pool,
//! bounded by [`tokio::time::timeout`] and by socket timeouts, so a dead or
//! silent server can neither stall the caller nor hold a thread for long. A
//! plain tokio connect comes first, because the crate's connection pool
//! retries a refused connection until its timeout instead of failing fast.

use std::time::{Duration, Instant};

use super::{Checked, MIN_TIMEOUT, Phase, StoreAddr, StoreError, StoreTarget};

/// Longest key memcached accepts.
const MEMCACHED_MAX_KEY: usize = 250;

/// Checks one memcached server: `version`, timed.
pub(super) async fn check_memcached(
    target: &StoreTarget,
    addr: &StoreAddr,
    timeout: Duration,
    phase: &Phase,
) -> Result<Checked, StoreError> {
    let reply = memcached(target, addr, MemcachedOp::Version, timeout, phase).await?;
    match reply {
        (MemcachedReply::Version(version), rtt) => Ok(Checked {
            ok: true,
            rtt,
            detail: format!("memcached {version}"),
        }),
        (MemcachedReply::Value(_), _) => Err(StoreError::Server {
            server: addr.to_string(),
            reason: "unexpected reply to version".to_string(),
        }),
    }
}

/// Reads `key` from one memcached server.
pub(super) async fn get_memcached(
    target: &StoreTarget,
    addr: &StoreAddr,
    key: &str,
    timeout: Duration,
    phase: &Phase,
) -> Result<Option<Vec<u8>>, StoreError> {
    let op = MemcachedOp::Get(key.to_string());
    match memcached(target, addr, op, timeout, phase).await? {
        (MemcachedReply::Value(value), _) => Ok(value),
        (MemcachedReply::Version(_), _) => Err(StoreError::Server {
            server: addr.to_string(),
            reason: "unexpected reply to get".to_string(),
        }),
    }
}

/// Checks a memcached key: what the text protocol accepts, as text.
pub(super) fn memcached_key(key: &[u8]) -> Result<String, String> {
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
        // The error names the timeout asked for, not what was left of it
        // for this step ("within 299 ms" for a 300 ms timeout).
        Ok(Err((connecting, err))) => Err(memcache_error(&server, connecting, err, timeout)),
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::session::store::StoreKind;
    use crate::session::store::tests::target;

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
}
