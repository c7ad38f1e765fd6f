//! [`StoreSpec`]: a save path normalised to compare across syntaxes, and the entry points
//! that parse one ([`parse_save_path`], [`parse_with`]) and warn about it ([`warnings`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::handler::Handler;
use super::php::{normalise_host, parse_bool, php_int, query_get};
use super::secret::{redact_entry, redact_save_path};
use super::{memcached, redis};

/// ini settings as the probe reports them: name → effective (local) value, `None` when unset.
pub type Ini = BTreeMap<String, Option<String>>;

/// One session server of a save path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Server {
    /// `tcp`, `tls` or `unix`.
    pub scheme: String,
    /// Host name or address, lowercased, without IPv6 brackets; the socket path for `unix`.
    pub host: String,
    /// TCP port; `None` for unix sockets.
    pub port: Option<u16>,
    /// Weight in the distribution; 1 when the handler's distribution ignores weights.
    pub weight: u32,
    /// Settings of this server that are not the same for all servers of the path (redis
    /// `database`, `prefix`, `auth`); uniform ones are in [`StoreSpec::options`].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

impl Server {
    pub(super) fn tcp(host: &str, port: u16, weight: u32) -> Server {
        Server {
            scheme: "tcp".to_string(),
            host: normalise_host(host),
            port: Some(port),
            weight,
            options: BTreeMap::new(),
        }
    }

    pub(super) fn unix(path: &str, weight: u32) -> Server {
        Server {
            scheme: "unix".to_string(),
            host: path.to_string(),
            port: None,
            weight,
            options: BTreeMap::new(),
        }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scheme == "unix" {
            write!(f, "unix:{}", self.host)?;
        } else {
            if self.scheme != "tcp" {
                write!(f, "{}://", self.scheme)?;
            }
            if self.host.contains(':') {
                write!(f, "[{}]", self.host)?;
            } else {
                f.write_str(&self.host)?;
            }
            if let Some(port) = self.port {
                write!(f, ":{port}")?;
            }
        }
        if self.weight != 1 {
            write!(f, " weight {}", self.weight)?;
        }
        if !self.options.is_empty() {
            f.write_str(" ")?;
            f.write_str(&join_options(&self.options))?;
        }
        Ok(())
    }
}

/// A save path normalised to compare across syntaxes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreSpec {
    /// The save handler.
    pub handler: Handler,
    /// The servers, in save path order (empty for `files` and unknown handlers).
    pub servers: Vec<Server>,
    /// Whether the order of [`servers`](Self::servers) changes where a session is stored.
    pub order_matters: bool,
    /// How sessions are spread over the servers, e.g. `ketama consistent hashing`.
    pub distribution: String,
    /// Settings of the path that must match: `database`, `prefix`, `auth` (a digest),
    /// `path` and `depth` for `files`, `save_path` (redacted) for unknown handlers.
    pub options: BTreeMap<String, String>,
    /// Transport tuning the extension reads from the path that changes how a node
    /// connects, not where sessions go (`timeout`, `read_timeout`, `persistent`,
    /// `persistent_id`, `retry_interval`, `udp_port`, rediscluster's `failover`): compared
    /// only to be noted. A value per server, `-` where a server has none, collapsed to one
    /// when all agree.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tuning: BTreeMap<String, String>,
    /// Facts about the path worth a warning but not compared (see [`warnings`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl StoreSpec {
    /// The servers, comma separated, in save path order.
    pub fn servers_text(&self) -> String {
        self.servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `order matters: modula hashing` or `any order: ketama consistent hashing`.
    pub(crate) fn order_text(&self) -> String {
        let order = if self.order_matters {
            "order matters"
        } else {
            "any order"
        };
        format!("{order}: {}", self.distribution)
    }

    /// Whether sessions stored through `self` and through `other` end up in the same place:
    /// same handler, same options and the same servers as the distribution sees them (in
    /// order when either side's order matters; for `rediscluster`, any seed in common).
    pub fn same_store(&self, other: &StoreSpec) -> bool {
        self.handler == other.handler && same_servers(self, other) && self.options == other.options
    }
}

/// Whether two server lists place sessions alike (see [`StoreSpec::same_store`]).
pub(crate) fn same_servers(a: &StoreSpec, b: &StoreSpec) -> bool {
    if a.handler == Handler::RedisCluster && b.handler == Handler::RedisCluster {
        // A Redis node belongs to one cluster: one seed in common means the same cluster.
        return a.servers.iter().any(|s| b.servers.contains(s));
    }
    if a.order_matters || b.order_matters {
        return a.servers == b.servers;
    }
    let (mut x, mut y) = (a.servers.clone(), b.servers.clone());
    x.sort();
    y.sort();
    x == y
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.handler.name())?;
        if !self.servers.is_empty() {
            write!(f, " {}", self.servers_text())?;
        }
        if !self.options.is_empty() {
            write!(f, " ({})", join_options(&self.options))?;
        }
        Ok(())
    }
}

/// How a handler spreads sessions over its servers, given the node's ini settings.
struct Rules {
    order_matters: bool,
    weights_matter: bool,
    label: &'static str,
}

fn rules(handler: &Handler, ini: &Ini) -> Rules {
    let get = |key: &str| ini.get(key).and_then(|v| v.as_deref());
    match handler {
        Handler::Memcached => {
            let consistent = get("memcached.sess_consistent_hash").is_none_or(parse_bool);
            let weighted = get("memcached.sess_consistent_hash_type")
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("ketama_weighted"));
            match (consistent, weighted) {
                (false, _) => Rules {
                    order_matters: true,
                    weights_matter: false,
                    label: "modula hashing",
                },
                (true, false) => Rules {
                    order_matters: false,
                    weights_matter: false,
                    label: "ketama consistent hashing",
                },
                (true, true) => Rules {
                    order_matters: false,
                    weights_matter: true,
                    label: "weighted ketama consistent hashing",
                },
            }
        }
        Handler::Memcache => {
            let standard = get("memcache.hash_strategy")
                .is_some_and(|s| s.trim().eq_ignore_ascii_case("standard"));
            if standard {
                Rules {
                    order_matters: true,
                    weights_matter: true,
                    label: "standard hashing",
                }
            } else {
                Rules {
                    order_matters: false,
                    weights_matter: true,
                    label: "consistent hashing",
                }
            }
        }
        Handler::Redis => Rules {
            order_matters: true,
            weights_matter: true,
            label: "phpredis weight ranges in list order",
        },
        Handler::RedisCluster => Rules {
            order_matters: false,
            weights_matter: false,
            label: "seeds of one Redis Cluster",
        },
        Handler::Files => Rules {
            order_matters: false,
            weights_matter: false,
            label: "one directory",
        },
        Handler::Other(_) => Rules {
            order_matters: false,
            weights_matter: false,
            label: "unknown",
        },
    }
}

/// Servers one save path may list.
pub const MAX_SERVERS: usize = 64;

/// Parses `save_path` of `handler` (a `session.save_handler` value) into a [`StoreSpec`],
/// assuming the extensions' default hashing settings (memcached ketama, memcache consistent);
/// [`parse_with`] applies a node's own settings. Clear credentials are digested.
/// Errors are what the extension would refuse (no server, bad port, ...), with the entry
/// redacted.
pub fn parse_save_path(handler: &str, save_path: &str) -> Result<StoreSpec, String> {
    parse_with(&Handler::from_name(handler), save_path, &Ini::new())
}

/// Parses `save_path` of `handler` like [`parse_save_path`], with the hashing settings of `ini`
/// (a node's `memcached.sess_consistent_hash`, `memcache.hash_strategy`, ...) deciding whether
/// the order and the weights of the servers matter.
pub fn parse_with(handler: &Handler, save_path: &str, ini: &Ini) -> Result<StoreSpec, String> {
    let rules = rules(handler, ini);
    let mut spec = StoreSpec {
        handler: handler.clone(),
        servers: Vec::new(),
        order_matters: rules.order_matters,
        distribution: rules.label.to_string(),
        options: BTreeMap::new(),
        tuning: BTreeMap::new(),
        notes: Vec::new(),
    };
    match handler {
        Handler::Files => parse_files(save_path, &mut spec),
        Handler::Memcached => memcached::parse_memcached(save_path, &mut spec)?,
        Handler::Memcache => memcached::parse_memcache(save_path, &mut spec)?,
        Handler::Redis => redis::parse_redis(save_path, &mut spec)?,
        Handler::RedisCluster => redis::parse_rediscluster(save_path, &mut spec)?,
        Handler::Other(name) => {
            spec.options
                .insert("save_path".to_string(), redact_save_path(name, save_path));
        }
    }
    if handler.extension().is_some() && spec.servers.is_empty() {
        return Err(format!("{handler}: no server in save_path"));
    }
    if spec.servers.len() > MAX_SERVERS {
        // A save path may come from a node: every server is a connection
        // (and a name to resolve) per check, and lists are compared pairwise.
        return Err(format!(
            "{handler}: {} servers in save_path, fpmlb checks at most {MAX_SERVERS}",
            spec.servers.len()
        ));
    }
    if !rules.weights_matter {
        for server in &mut spec.servers {
            server.weight = 1;
        }
    }
    Ok(spec)
}

/// `files`: `path`, `N;path` or `N;MODE;path` (ext/session's mod_files).
fn parse_files(save_path: &str, spec: &mut StoreSpec) {
    let parts: Vec<&str> = save_path.split(';').collect();
    let path = parts.last().copied().unwrap_or("").trim();
    let depth = if parts.len() > 1 {
        php_int(parts[0].as_bytes())
    } else {
        0
    };
    let path = match path.trim_end_matches('/') {
        "" if path.is_empty() => "(system temporary directory)".to_string(),
        "" => "/".to_string(),
        p => p.to_string(),
    };
    spec.options.insert("path".to_string(), path);
    spec.options.insert("depth".to_string(), depth.to_string());
}

/// The `weight` query parameter (default 1); the extensions refuse weights below 1.
pub(super) fn positive_weight(
    params: &[(String, Vec<u8>)],
    handler: &str,
    entry: &str,
) -> Result<u32, String> {
    match query_get(params, "weight").map(php_int) {
        None => Ok(1),
        Some(w) if w >= 1 => Ok(u32::try_from(w).unwrap_or(u32::MAX)),
        Some(_) => Err(format!(
            "{handler}: '{}': weight must be 1 or more",
            redact_entry(entry)
        )),
    }
}

/// Records the transport tuning parameters `keys` of each server (`per_server[i]` the
/// query of server i) in `spec.tuning`.
pub(super) fn record_tuning(
    spec: &mut StoreSpec,
    keys: &[&str],
    per_server: &[Vec<(String, Vec<u8>)>],
) {
    for key in keys {
        let values: Vec<String> = per_server
            .iter()
            .map(|params| {
                query_get(params, key).map_or("-".to_string(), |v| {
                    String::from_utf8_lossy(v).trim().to_string()
                })
            })
            .collect();
        if values.iter().all(|v| v == "-") {
            continue;
        }
        let value = if values.iter().all(|v| *v == values[0]) {
            values[0].clone()
        } else {
            values.join(", ")
        };
        spec.tuning.insert((*key).to_string(), value);
    }
}

fn join_options(options: &BTreeMap<String, String>) -> String {
    options
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Problems of a store that no comparison shows because every node has them: loopback
/// addresses and unix sockets (each node would reach its own server: call this for clusters
/// of more than one node), `files` (each node's own disk unless shared), and the parse notes
/// (syntax the installed extension refuses, ignored credentials, port 0, ...).
pub fn warnings(spec: &StoreSpec) -> Vec<String> {
    let mut out = Vec::new();
    if spec.handler == Handler::Files {
        let path = spec.options.get("path").map_or("", String::as_str);
        out.push(format!(
            "files: each node keeps sessions on its own disk in {path}, shared only if that is \
             a shared mount"
        ));
    }
    for server in &spec.servers {
        if server.scheme == "unix" {
            out.push(format!(
                "{server}: a unix socket is local to each node, so each node reaches its own \
                 server there"
            ));
        } else if is_loopback(&server.host) {
            out.push(format!(
                "{server}: {} is a loopback address, so each node reaches its own server there, \
                 not a shared one",
                server.host
            ));
        }
    }
    out.extend(spec.notes.iter().cloned());
    out
}

fn is_loopback(host: &str) -> bool {
    if matches!(host, "localhost" | "ip6-localhost" | "ip6-loopback")
        || host.ends_with(".localhost")
    {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_unspecified())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::save_path::testing::{opts, spec};

    #[test]
    fn errors_never_show_clear_credentials() {
        for (handler, p) in [
            ("redis", "tcp://h:6379?auth=hunter2&weight=0"),
            ("redis", "tcp://user:hunter2@h:99999"),
            ("memcache", "tcp://user:hunter2@?x=1"),
        ] {
            let err = parse_save_path(handler, p).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    /// A save path from a node lists at most MAX_SERVERS servers, and a
    /// query at most PHP's max_input_vars parameters (a 20 000-entry path
    /// cost seconds of pairwise work and a connection per entry per check).
    #[test]
    fn a_save_path_is_bounded() {
        let list = |n: usize| {
            (0..n)
                .map(|i| format!("10.0.{}.{}:11211", i / 250, i % 250 + 1))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            spec("memcached", &list(MAX_SERVERS)).servers.len(),
            MAX_SERVERS
        );
        let err = parse_save_path("memcached", &list(MAX_SERVERS + 1)).unwrap_err();
        assert!(err.contains("at most 64"), "{err}");
        let seeds = (0..100)
            .map(|i| format!("seed[]=10.0.0.{}:7000", i + 1))
            .collect::<Vec<_>>()
            .join("&");
        assert!(parse_save_path("rediscluster", &seeds).is_err());
        let many = (0..20_000)
            .map(|i| format!("auth[{i}]=x"))
            .collect::<Vec<_>>()
            .join("&");
        // Parsed (the first 1000 parameters), not refused.
        assert!(parse_save_path("redis", &format!("tcp://h:6379?{many}")).is_ok());
    }

    #[test]
    fn files_paths() {
        let s = spec("files", "2;0600;/var/lib/php/sessions/");
        assert_eq!(
            s.options,
            opts(&[("depth", "2"), ("path", "/var/lib/php/sessions")])
        );
        assert_eq!(spec("files", "/var/lib/php/sessions").options["depth"], "0");
        assert_eq!(
            spec("files", "1;/tmp").options,
            opts(&[("depth", "1"), ("path", "/tmp")])
        );
        assert_eq!(
            spec("files", "").options["path"],
            "(system temporary directory)"
        );
        assert!(warnings(&spec("files", "/srv/sess"))[0].contains("shared mount"));
        assert!(spec("files", "/x").servers.is_empty());
    }

    #[test]
    fn loopback_and_local_servers_are_warned_about() {
        let s = spec(
            "memcached",
            "127.0.0.1:11211, localhost:11212, [::1]:11213, 10.0.0.1:11211, /run/mc.sock",
        );
        let w = warnings(&s);
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w[0].starts_with("127.0.0.1:11211: 127.0.0.1 is a loopback address"));
        assert!(w[3].contains("unix socket is local to each node"));
        assert_eq!(
            warnings(&spec("redis", "tcp://[::ffff:127.0.0.1]:6379")).len(),
            1
        );
        assert_eq!(
            warnings(&spec("redis", "tcp://10.1.2.3:6379")),
            Vec::<String>::new()
        );
        // localhost and 127.0.0.1 are different servers for the comparison.
        assert_ne!(
            spec("memcached", "localhost:11211"),
            spec("memcached", "127.0.0.1:11211")
        );
    }

    #[test]
    fn odd_input_never_panics() {
        let pieces = [
            "",
            " ",
            ",",
            ";",
            ":",
            "::",
            "@",
            "?",
            "&",
            "=",
            "[",
            "]",
            "/",
            "#",
            "%",
            "%zz",
            "+",
            "ü",
            "日本",
            "file:",
            "unix:",
            "tcp://",
            "fiü:",
            "PERSISTENT=",
            "seed[]=",
            "auth[]=",
            "auth=",
            "h",
            "1",
            "99999",
            "[::1]",
            "sha256:",
            "\u{b}",
            "--SERVER",
        ];
        let handlers = [
            "files",
            "memcached",
            "memcache",
            "redis",
            "rediscluster",
            "user",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let p = format!("{a}{b}{c}");
                    for h in handlers {
                        let _ = parse_save_path(h, &p).map(|s| warnings(&s));
                        let _ = redact_save_path(h, &p);
                    }
                }
            }
        }
    }
}
