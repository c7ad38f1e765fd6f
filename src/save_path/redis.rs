//! The save path syntaxes of phpredis: `redis` (a list of URLs) and `rediscluster` (one query
//! string of seeds).

use super::handler::Handler;
use super::php::{
    lossy, parse_query, parse_url, php_float, php_int, query_get, split_entries, split_host_port,
    translate_unix,
};
use super::secret::{redact_entry, secret_digest};
use super::spec::{Server, StoreSpec, positive_weight, record_tuning};

/// What phpredis reads from a save path that only shapes the connection
/// (redis_session.c PS_OPEN_FUNC(redis) and PS_OPEN_FUNC(rediscluster)).
const REDIS_TUNING: &[&str] = &[
    "timeout",
    "read_timeout",
    "persistent",
    "persistent_id",
    "retry_interval",
];
const CLUSTER_TUNING: &[&str] = &["timeout", "read_timeout", "persistent", "failover"];

/// `redis`: phpredis' PS_OPEN_FUNC(redis), URLs separated by commas or whitespace.
pub(super) fn parse_redis(save_path: &str, spec: &mut StoreSpec) -> Result<(), String> {
    let mut queries = Vec::new();
    for entry in split_entries(save_path) {
        let shown = redact_entry(entry);
        let url =
            parse_url(&translate_unix(entry)).map_err(|e| format!("redis: '{shown}': {e}"))?;
        if url.userinfo.is_some() {
            spec.notes.push(format!(
                "{shown}: phpredis ignores credentials before '@'; it authenticates with ?auth="
            ));
        }
        let params = parse_query(url.query.as_deref().unwrap_or(""));
        queries.push(params.clone());
        let weight = positive_weight(&params, "redis", entry)?;
        if let Some(timeout) = query_get(&params, "timeout")
            && php_float(timeout) <= 0.0
        {
            return Err(format!("redis: '{shown}': timeout must be positive"));
        }
        let mut server = match (url.host.as_deref(), url.path.as_deref()) {
            (Some(host), _) if !host.is_empty() => {
                let scheme = match url.scheme.as_deref().unwrap_or("tcp") {
                    "tls" | "ssl" => "tls".to_string(),
                    other => other.to_string(),
                };
                let port = url
                    .port
                    .filter(|p| *p != 0)
                    .unwrap_or(Handler::Redis.default_port());
                let mut server = Server::tcp(host, port, weight);
                server.scheme = scheme;
                server
            }
            (_, Some(path)) if !path.is_empty() => {
                if url.scheme.is_none() && !path.starts_with('/') {
                    spec.notes.push(format!(
                        "{shown}: without scheme and port, phpredis takes '{path}' for a unix \
                         socket path (write tcp://{path}:6379)"
                    ));
                }
                Server::unix(path, weight)
            }
            _ => return Err(format!("redis: '{shown}': no host or socket path")),
        };
        let database = query_get(&params, "database").map_or(0, php_int).max(0);
        server
            .options
            .insert("database".to_string(), database.to_string());
        let prefix =
            query_get(&params, "prefix").map_or(Handler::Redis.default_key_prefix().into(), lossy);
        server.options.insert("prefix".to_string(), prefix);
        if let Some(auth) = auth_option(&params, &shown, &mut spec.notes) {
            server.options.insert("auth".to_string(), auth);
        }
        spec.servers.push(server);
    }
    hoist_uniform_options(spec);
    record_tuning(spec, REDIS_TUNING, &queries);
    Ok(())
}

/// `rediscluster`: phpredis' PS_OPEN_FUNC(rediscluster), one query string.
pub(super) fn parse_rediscluster(save_path: &str, spec: &mut StoreSpec) -> Result<(), String> {
    let params = parse_query(save_path.trim());
    for (key, value) in &params {
        if !(key.starts_with("seed[") && key.ends_with(']')) {
            continue;
        }
        let seed = lossy(value);
        let (scheme, hostport) = match seed.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest.to_string()),
            None => ("tcp".to_string(), seed.clone()),
        };
        let (host, port) =
            split_host_port(&hostport).map_err(|e| format!("rediscluster: seed '{seed}': {e}"))?;
        let Some(port) = port.filter(|p| *p != 0) else {
            return Err(format!("rediscluster: seed '{seed}' needs host:port"));
        };
        let mut server = Server::tcp(&host, port, 1);
        server.scheme = if scheme == "ssl" {
            "tls".to_string()
        } else {
            scheme
        };
        spec.servers.push(server);
    }
    if spec.servers.is_empty() {
        return Err("rediscluster: no seed[]=host:port in save_path".to_string());
    }
    spec.servers.sort();
    spec.servers.dedup();
    let prefix = query_get(&params, "prefix")
        .map_or(Handler::RedisCluster.default_key_prefix().into(), lossy);
    spec.options.insert("prefix".to_string(), prefix);
    if let Some(auth) = auth_option(&params, "rediscluster save_path", &mut spec.notes) {
        spec.options.insert("auth".to_string(), auth);
    }
    record_tuning(spec, CLUSTER_TUNING, std::slice::from_ref(&params));
    Ok(())
}

/// Moves per-server options that every server has with the same value to the spec.
fn hoist_uniform_options(spec: &mut StoreSpec) {
    let Some(first) = spec.servers.first() else {
        return;
    };
    let uniform: Vec<(String, String)> = first
        .options
        .iter()
        .filter(|(k, v)| spec.servers.iter().all(|s| s.options.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, value) in uniform {
        for server in &mut spec.servers {
            server.options.remove(&key);
        }
        spec.options.insert(key, value);
    }
}

/// phpredis' `auth`: a string (the password) or an array of one (password) or two (user,
/// password) elements, `auth[]=..` or `auth[user]=..&auth[pass]=..`. Values are digested.
fn auth_option(
    params: &[(String, Vec<u8>)],
    context: &str,
    notes: &mut Vec<String>,
) -> Option<String> {
    match auth_values(params) {
        Auth::None => None,
        Auth::Password(pass) => Some(secret_digest(pass)),
        Auth::UserPassword(user, pass) => Some(format!(
            "user {} password {}",
            secret_digest(user),
            secret_digest(pass)
        )),
        Auth::Ignored => {
            notes.push(format!(
                "{context}: phpredis ignores an auth array that is not [password] or [user, password]"
            ));
            None
        }
    }
}

/// The `auth` of a phpredis query string, in clear.
enum Auth<'a> {
    /// No `auth`.
    None,
    /// `auth=pass`, `auth[]=pass`.
    Password(&'a [u8]),
    /// `auth[]=user&auth[]=pass`, `auth[user]=..&auth[pass]=..`.
    UserPassword(&'a [u8], &'a [u8]),
    /// An array phpredis does not log in with.
    Ignored,
}

/// phpredis' reading of `auth` among `params` (see [`auth_option`]).
fn auth_values(params: &[(String, Vec<u8>)]) -> Auth<'_> {
    // As with PHP's query parsing, the last scalar `auth` or a later array wins.
    let last_scalar = params.iter().rposition(|(k, _)| k == "auth");
    let start = last_scalar.map_or(0, |i| i + 1);
    let mut array: Vec<(String, &[u8])> = Vec::new();
    let mut next_index = 0usize;
    for (key, value) in &params[start..] {
        let Some(sub) = key.strip_prefix("auth[").and_then(|k| k.strip_suffix(']')) else {
            continue;
        };
        let sub = if sub.is_empty() {
            next_index += 1;
            (next_index - 1).to_string()
        } else {
            // PHP makes a key an integer only in its canonical decimal form
            // within the range of a PHP int ("7", not "07" nor
            // "18446744073709551615"), and only those move the next index.
            if let Ok(n) = sub.parse::<i64>()
                && n >= 0
                && n.to_string() == sub
                && let Some(next) = usize::try_from(n).ok().and_then(|n| n.checked_add(1))
            {
                next_index = next_index.max(next);
            }
            sub.to_string()
        };
        match array.iter_mut().find(|(k, _)| *k == sub) {
            Some(slot) => slot.1 = value,
            None => array.push((sub, value)),
        }
    }
    if array.is_empty() {
        return match last_scalar {
            Some(i) => Auth::Password(&params[i].1),
            None => Auth::None,
        };
    }
    let find = |name: &str| array.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    let n = array.len();
    let user = if n == 2 {
        find("user").or_else(|| find("0"))
    } else {
        None
    };
    let pass = find("pass").or_else(|| find(&(n - 1).to_string()));
    match (n, user, pass) {
        (1, _, Some(pass)) => Auth::Password(pass),
        (2, Some(user), Some(pass)) => Auth::UserPassword(user, pass),
        _ => Auth::Ignored,
    }
}

/// Credentials phpredis logs in with, in clear: for fpmlb's own connection to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisAuth {
    /// The ACL user, when `auth` names one.
    pub username: Option<String>,
    /// The password.
    pub password: String,
}

/// The credentials phpredis logs in with for `save_path` of `handler`, read with the same
/// query parser as [`parse_save_path`](super::parse_save_path): the first server entry with
/// an `auth` for `redis`, the path's for `rediscluster`. `None` for other handlers, without
/// `auth`, or with an `auth` array phpredis ignores. Meant for fpmlb's own configuration,
/// where credentials are written in clear.
pub fn redis_auth(handler: &Handler, save_path: &str) -> Option<RedisAuth> {
    let clear = |auth: Auth<'_>| match auth {
        Auth::Password(pass) => Some(RedisAuth {
            username: None,
            password: lossy(pass),
        }),
        Auth::UserPassword(user, pass) => Some(RedisAuth {
            username: Some(lossy(user)),
            password: lossy(pass),
        }),
        Auth::None | Auth::Ignored => None,
    };
    match handler {
        Handler::RedisCluster => clear(auth_values(&parse_query(save_path.trim()))),
        Handler::Redis => split_entries(save_path).find_map(|entry| {
            let url = parse_url(&translate_unix(entry)).ok()?;
            clear(auth_values(&parse_query(
                url.query.as_deref().unwrap_or(""),
            )))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{RedisAuth, redis_auth};
    use crate::save_path::testing::{opts, servers, spec};
    use crate::save_path::{Handler, parse_save_path};

    #[test]
    fn clear_and_digested_credentials_compare_equal() {
        let clear = spec("redis", "tcp://h:6379?auth=secret");
        let digested = spec("redis", "tcp://h:6379?auth=sha256:2bb80d537b1da3e3");
        assert_eq!(clear, digested);
        assert_eq!(clear.options["auth"], "sha256:2bb80d537b1da3e3");
        assert!(!format!("{clear:?}{}", serde_json::to_string(&clear).unwrap()).contains("secret"));
    }

    #[test]
    fn redis_syntaxes() {
        let s = spec(
            "redis",
            "tcp://R1:6379?weight=2&timeout=2.5&persistent=1&database=3&prefix=app_&auth=secret, \
             tls://r2?database=3&prefix=app_&auth=secret&read_timeout=1 \
             unix:///run/redis.sock?persistent_id=x&database=3&prefix=app_&auth=secret",
        );
        assert_eq!(
            servers(&s),
            ["r1:6379 weight 2", "tls://r2:6379", "unix:/run/redis.sock"]
        );
        assert_eq!(
            s.options,
            opts(&[
                ("auth", "sha256:2bb80d537b1da3e3"),
                ("database", "3"),
                ("prefix", "app_")
            ])
        );
        assert!(s.order_matters);
        assert!(s.notes.is_empty());
    }

    #[test]
    fn redis_defaults_compare_equal_to_explicit_values() {
        let plain = spec("redis", "tcp://10.0.0.1");
        assert_eq!(servers(&plain), ["10.0.0.1:6379"]);
        assert_eq!(
            plain.options,
            opts(&[("database", "0"), ("prefix", "PHPREDIS_SESSION:")])
        );
        for p in [
            "10.0.0.1:6379",
            "tcp://10.0.0.1:6379?database=0&prefix=PHPREDIS_SESSION:&timeout=3",
            "tcp://10.0.0.1:6379?database=-1&weight=1&persistent=1",
        ] {
            assert!(spec("redis", p).same_store(&plain), "{p}");
        }
        assert_eq!(
            servers(&spec("redis", "/run/redis.sock")),
            ["unix:/run/redis.sock"]
        );
        assert_eq!(servers(&spec("redis", "tcp://[::1]:6380")), ["[::1]:6380"]);
    }

    #[test]
    fn redis_per_server_options_stay_on_the_servers() {
        let s = spec("redis", "tcp://a?database=1, tcp://b?database=2");
        assert_eq!(servers(&s), ["a:6379 database=1", "b:6379 database=2"]);
        assert_eq!(s.options, opts(&[("prefix", "PHPREDIS_SESSION:")]));
    }

    #[test]
    fn redis_auth_forms() {
        let auth = |p: &str| spec("redis", p).options.get("auth").cloned();
        assert_eq!(auth("tcp://h?auth=pw"), auth("tcp://h?auth[]=pw"));
        assert_eq!(
            auth("tcp://h?auth[]=bob&auth[]=pw"),
            auth("tcp://h?auth[user]=bob&auth[pass]=pw")
        );
        assert_eq!(
            auth("tcp://h?auth%5B%5D=bob&auth%5B%5D=pw").as_deref(),
            Some("user sha256:81b637d8fcd2c6da password sha256:30c952fab122c3f9")
        );
        assert_ne!(auth("tcp://h?auth=pw"), auth("tcp://h?auth=pw2"));
        assert_eq!(auth("tcp://h?auth[]=a&auth=pw"), auth("tcp://h?auth=pw"));
        let s = spec("redis", "tcp://h?auth[]=a&auth[]=b&auth[]=c");
        assert_eq!(s.options.get("auth"), None);
        assert!(s.notes.iter().any(|n| n.contains("auth array")));
    }

    #[test]
    fn redis_odd_entries() {
        let s = spec("redis", "localhost");
        assert_eq!(servers(&s), ["unix:localhost"]);
        assert!(s.notes.iter().any(|n| n.contains("unix socket path")));
        let s = spec("redis", "tcp://user:pw@h:6379");
        assert!(s.notes.iter().any(|n| n.contains("ignores credentials")));
        for p in [
            "tcp://h?weight=0",
            "tcp://h?timeout=0",
            "tcp://h:70000",
            "tcp://",
            ",",
            "tcp://h:x",
        ] {
            assert!(parse_save_path("redis", p).is_err(), "{p}");
        }
    }

    #[test]
    fn auth_is_found_in_a_save_path() {
        let password = |h: &str, p: &str| redis_auth(&Handler::from_name(h), p).map(|a| a.password);
        assert_eq!(
            password("redis", "tcp://10.0.0.5:6379?auth=s%40cret&database=2").as_deref(),
            Some("s@cret")
        );
        assert_eq!(password("redis", "10.0.0.5:11211"), None);
        assert_eq!(password("memcached", "10.0.0.5:11211"), None);
    }

    #[test]
    fn auth_is_read_like_phpredis() {
        let auth = |h: &str, p: &str| redis_auth(&Handler::from_name(h), p);
        let pass = |p: &str| {
            Some(RedisAuth {
                username: None,
                password: p.to_string(),
            })
        };
        // The same PHP query parsing as the comparison: `+` is a space, the last `auth` wins.
        assert_eq!(auth("redis", "tcp://h?auth=a+b%2B"), pass("a b+"));
        assert_eq!(auth("redis", "tcp://h?auth[]=x&auth=pw"), pass("pw"));
        assert_eq!(auth("redis", "tcp://a, tcp://b?auth=pw"), pass("pw"));
        assert_eq!(
            auth("redis", "tcp://h?auth[user]=bob&auth[pass]=pw"),
            Some(RedisAuth {
                username: Some("bob".to_string()),
                password: "pw".to_string(),
            })
        );
        assert_eq!(auth("redis", "tcp://h?auth[]=a&auth[]=b&auth[]=c"), None);
        assert_eq!(
            auth("rediscluster", "seed[]=h:7000&auth=s%40cret"),
            pass("s@cret")
        );
        assert_eq!(auth("memcache", "tcp://h:11211?auth=pw"), None);
    }

    /// Found by the save_path fuzz target: an index past the integers
    /// overflowed the next index (a panic in a debug build, a wrap in a
    /// release one). PHP keeps such a key as a string.
    #[test]
    fn auth_indexes_beyond_php_integers_are_string_keys() {
        let auth = |p: &str| redis_auth(&Handler::Redis, p);
        for big in [
            "18446744073709551615",
            "9223372036854775807",
            "99999999999999999999",
        ] {
            assert_eq!(
                auth(&format!("tcp://h?auth[{big}]=pw&auth[]=x")),
                None,
                "{big}"
            );
            assert!(parse_save_path("redis", &format!("tcp://h?auth[{big}]=pw")).is_ok());
        }
    }
}
