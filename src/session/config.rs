//! PHP session configuration of the php-fpm nodes: normalising and comparing it (no I/O).
//!
//! This module owns the pure part of fpmlb's session check. It deserialises what
//! `conf/probe.php` reports for `FPMLB_PROBE_ACTION=config` ([`NodeConfig`]), turns a
//! `session.save_path` of any handler into a [`StoreSpec`] that compares across syntaxes
//! ([`parse_save_path`], [`NodeConfig::store_spec`]), decides what every node is expected to
//! use ([`expected_from_config`] from fpmlb's `session:` section, or [`majority`] of the
//! nodes), and lists what differs on one node in words an operator can act on ([`compare`],
//! [`warnings`]). Whether sessions really are shared is proven elsewhere, by a write on one
//! node and a read on another; this module explains *why* a node would not see them.
//!
//! Save path syntaxes, as the extensions themselves parse them:
//! - `memcached` (php-memcached 3, libmemcached's `memcached_servers_parse`): comma separated
//!   `host[:port[:weight]]`, `host:port weight` or `/path/to.sock`; default port 11211.
//!   Spaces do not separate servers. `PERSISTENT=id ` (php-memcached 2) is accepted here but
//!   php-memcached 3 refuses it (a note, see [`warnings`]). Servers are placed by ketama
//!   consistent hashing when `memcached.sess_consistent_hash` is on (the default): the set
//!   matters, not the order, and weights only with `sess_consistent_hash_type =
//!   ketama_weighted`; with it off (modula hashing) the order matters.
//! - `memcache` (pecl-memcache): URLs separated by commas or spaces, `tcp://host:port?weight=2`,
//!   `host:port`, `unix:///path`; `memcache.session_save_path`, when set, replaces
//!   `session.save_path`. The scheme is ignored (`udp://` is TCP too) and a missing port means
//!   port 0. `memcache.hash_strategy = standard` makes the order matter; weights always do.
//! - `redis` (phpredis): URLs separated by commas or spaces, `tcp://host:6379?weight=..&
//!   database=..&prefix=..&auth=..`, `tls://`, `unix:///path?..`, `/path`; a key goes to a
//!   server chosen by weight ranges in list order, so order and weights matter. `database`
//!   (default 0), `prefix` (default `PHPREDIS_SESSION:`) and `auth` (as a digest) must match;
//!   `timeout`, `read_timeout`, `persistent`, `persistent_id`, `retry_interval` do not count.
//! - `rediscluster` (phpredis): one query string `seed[]=host:port&seed[]=..&prefix=..&auth=..`;
//!   the seeds are a set, and two sets with a seed in common reach the same cluster (seen on a
//!   real cluster: nodes with different seeds shared sessions), so only disjoint sets differ.
//! - `files`: `[N;[MODE;]]/path`; each node's own disk unless shared, which only a round trip
//!   can tell.
//!
//! Credentials never travel in clear: the probe replaces them by `sha256:` and the first 16
//! hex digits of their SHA-256 ([`digest_secret`], [`redact_save_path`]), and this module
//! digests the clear values of fpmlb's own configuration the same way, so they compare.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use percent_encoding::percent_decode;
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// ini settings as the probe reports them: name → effective (local) value, `None` when unset.
pub type Ini = BTreeMap<String, Option<String>>;

/// Default memcached port of libmemcached (pecl-memcache sessions have none: port 0).
const MEMCACHED_PORT: u16 = 11211;
/// Default Redis port of phpredis.
const REDIS_PORT: u16 = 6379;
/// Key prefix of phpredis' `redis` session handler when the path has no `prefix`.
const REDIS_PREFIX: &str = "PHPREDIS_SESSION:";
/// Key prefix of phpredis' `rediscluster` session handler when the path has no `prefix`.
const REDIS_CLUSTER_PREFIX: &str = "PHPREDIS_CLUSTER_SESSION:";

/// `session.*` settings that must be the same on every node.
const SESSION_SETTINGS: &[&str] = &[
    "session.name",
    "session.serialize_handler",
    "session.gc_maxlifetime",
    "session.use_strict_mode",
    "session.cookie_domain",
    "session.cookie_path",
    "session.sid_length",
    "session.sid_bits_per_character",
];
/// php-memcached settings that must match when the handler is `memcached`.
const MEMCACHED_SETTINGS: &[&str] = &[
    "memcached.sess_prefix",
    "memcached.sess_locking",
    "memcached.sess_consistent_hash",
    "memcached.sess_consistent_hash_type",
    "memcached.sess_binary_protocol",
    "memcached.sess_number_of_replicas",
    "memcached.sess_sasl_username",
    "memcached.sess_sasl_password",
];
/// pecl-memcache settings that must match when the handler is `memcache`.
const MEMCACHE_SETTINGS: &[&str] = &[
    "memcache.hash_strategy",
    "memcache.hash_function",
    "memcache.session_redundancy",
    "memcache.session_prefix_static_key",
    "memcache.session_prefix_host_key",
    "memcache.session_prefix_host_key_remove_www",
    "memcache.session_prefix_host_key_remove_subdomain",
];
/// phpredis settings that must match when the handler is `redis` or `rediscluster`.
const REDIS_SETTINGS: &[&str] = &["redis.session.locking_enabled", "redis.session.lock_expire"];
/// Boolean settings: `On`, `yes`, `true`, `1` are the same value.
const BOOL_SETTINGS: &[&str] = &[
    "session.use_strict_mode",
    "memcached.sess_locking",
    "memcached.sess_consistent_hash",
    "memcached.sess_binary_protocol",
    "memcache.session_prefix_host_key",
    "memcache.session_prefix_host_key_remove_www",
    "memcache.session_prefix_host_key_remove_subdomain",
    "redis.session.locking_enabled",
];
/// Settings whose values the extension reads case-insensitively.
const CASELESS_SETTINGS: &[&str] = &["memcache.hash_strategy", "memcache.hash_function"];

// ------------------------------------------------------------------------ node reports

/// Session extensions loaded on a node (`extension_loaded()` in the probe).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Extensions {
    /// php-memcached: the `memcached` save handler.
    #[serde(default)]
    pub memcached: bool,
    /// pecl-memcache: the `memcache` save handler.
    #[serde(default)]
    pub memcache: bool,
    /// phpredis: the `redis` and `rediscluster` save handlers.
    #[serde(default)]
    pub redis: bool,
}

impl Extensions {
    /// Whether the extension `name` (`memcached`, `memcache` or `redis`) is loaded.
    pub fn is_loaded(&self, name: &str) -> bool {
        match name {
            "memcached" => self.memcached,
            "memcache" => self.memcache,
            "redis" => self.redis,
            _ => false,
        }
    }
}

/// What a node reported (the probe's `config` JSON), deserialised.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct NodeConfig {
    /// Name the node gives itself (`NODE_NAME` of the pool, else its host name).
    pub node: String,
    /// `PHP_VERSION`.
    pub php_version: String,
    /// `PHP_SAPI`, `fpm-fcgi` on php-fpm.
    #[serde(default)]
    pub sapi: String,
    /// Session extensions loaded.
    pub extensions: Extensions,
    /// Effective `session.*`, `memcached.sess_*`, `memcache.*` and `redis.session.*` values,
    /// credentials digested.
    pub ini: Ini,
    /// Registered session save handlers (`files user memcached ...`), when the probe could
    /// tell.
    #[serde(default)]
    pub save_handler_registered: Vec<String>,
    /// How the probe found the registered handlers (`phpinfo`, `session_module_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_handler_registered_source: Option<String>,
    /// Version of the probe's answer format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_version: Option<u32>,
    /// PHP warnings the probe collected while answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl NodeConfig {
    /// The reported value of ini setting `key`, `None` when unset or not reported.
    pub fn ini_value(&self, key: &str) -> Option<&str> {
        self.ini.get(key).and_then(|v| v.as_deref())
    }

    /// The effective `session.save_handler` (PHP's default `files` when not reported).
    pub fn save_handler(&self) -> Handler {
        Handler::from_name(self.ini_value("session.save_handler").unwrap_or("files"))
    }

    /// The save path the handler really uses: `memcache.session_save_path` replaces
    /// `session.save_path` for pecl-memcache whenever it is set.
    pub fn effective_save_path(&self) -> &str {
        if self.save_handler() == Handler::Memcache
            && let Some(path) = self.ini_value("memcache.session_save_path")
        {
            return path;
        }
        self.ini_value("session.save_path").unwrap_or("")
    }

    /// The node's session store, normalised with the node's own hashing settings.
    pub fn store_spec(&self) -> Result<StoreSpec, String> {
        parse_with(&self.save_handler(), self.effective_save_path(), &self.ini)
    }
}

// ------------------------------------------------------------------------ store specs

/// A session save handler (`session.save_handler`, matched case-insensitively like PHP).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Handler {
    /// `files`: one directory on each node's disk.
    Files,
    /// `memcached` (php-memcached).
    Memcached,
    /// `memcache` (pecl-memcache).
    Memcache,
    /// `redis` (phpredis).
    Redis,
    /// `rediscluster` (phpredis).
    RedisCluster,
    /// Any other handler (`user`, `sqlite`, ...), lowercased.
    Other(String),
}

impl Handler {
    /// The handler named `name` (trimmed, case-insensitive).
    pub fn from_name(name: &str) -> Handler {
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "files" => Handler::Files,
            "memcached" => Handler::Memcached,
            "memcache" => Handler::Memcache,
            "redis" => Handler::Redis,
            "rediscluster" => Handler::RedisCluster,
            _ => Handler::Other(name),
        }
    }

    /// The name PHP knows the handler by.
    pub fn name(&self) -> &str {
        match self {
            Handler::Files => "files",
            Handler::Memcached => "memcached",
            Handler::Memcache => "memcache",
            Handler::Redis => "redis",
            Handler::RedisCluster => "rediscluster",
            Handler::Other(name) => name,
        }
    }

    /// The PHP extension providing the handler, `None` for built-in or unknown ones.
    pub fn extension(&self) -> Option<&'static str> {
        match self {
            Handler::Memcached => Some("memcached"),
            Handler::Memcache => Some("memcache"),
            Handler::Redis | Handler::RedisCluster => Some("redis"),
            Handler::Files | Handler::Other(_) => None,
        }
    }
}

impl fmt::Display for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Handler {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

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
    fn tcp(host: &str, port: u16, weight: u32) -> Server {
        Server {
            scheme: "tcp".to_string(),
            host: normalise_host(host),
            port: Some(port),
            weight,
            options: BTreeMap::new(),
        }
    }

    fn unix(path: &str, weight: u32) -> Server {
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
    fn order_text(&self) -> String {
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
fn same_servers(a: &StoreSpec, b: &StoreSpec) -> bool {
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

/// Parses `save_path` of `handler` (a `session.save_handler` value) into a [`StoreSpec`],
/// assuming the extensions' default hashing settings (memcached ketama, memcache consistent);
/// [`NodeConfig::store_spec`] applies a node's own settings. Clear credentials are digested.
/// Errors are what the extension would refuse (no server, bad port, ...), with the entry
/// redacted.
pub fn parse_save_path(handler: &str, save_path: &str) -> Result<StoreSpec, String> {
    parse_with(&Handler::from_name(handler), save_path, &Ini::new())
}

fn parse_with(handler: &Handler, save_path: &str, ini: &Ini) -> Result<StoreSpec, String> {
    let rules = rules(handler, ini);
    let mut spec = StoreSpec {
        handler: handler.clone(),
        servers: Vec::new(),
        order_matters: rules.order_matters,
        distribution: rules.label.to_string(),
        options: BTreeMap::new(),
        notes: Vec::new(),
    };
    match handler {
        Handler::Files => parse_files(save_path, &mut spec),
        Handler::Memcached => parse_memcached(save_path, &mut spec)?,
        Handler::Memcache => parse_memcache(save_path, &mut spec)?,
        Handler::Redis => parse_redis(save_path, &mut spec)?,
        Handler::RedisCluster => parse_rediscluster(save_path, &mut spec)?,
        Handler::Other(name) => {
            spec.options
                .insert("save_path".to_string(), redact_save_path(name, save_path));
        }
    }
    if handler.extension().is_some() && spec.servers.is_empty() {
        return Err(format!("{handler}: no server in save_path"));
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

/// `memcached`: libmemcached's `memcached_servers_parse`, as php-memcached 3 calls it.
fn parse_memcached(save_path: &str, spec: &mut StoreSpec) -> Result<(), String> {
    let mut rest = save_path.trim();
    if let Some(after) = rest.strip_prefix("PERSISTENT=") {
        let Some((id, servers)) = after.split_once(' ') else {
            return Err(
                "memcached: PERSISTENT=<id> must be followed by a space and the servers"
                    .to_string(),
            );
        };
        spec.notes.push(format!(
            "PERSISTENT={id} is php-memcached 2 syntax: php-memcached 3 refuses this save_path \
             (use memcached.sess_persistent = 1)"
        ));
        rest = servers.trim();
    } else if rest.contains("PERSISTENT=") {
        spec.notes
            .push("PERSISTENT= in the save_path: php-memcached 3 refuses it".to_string());
    }
    if rest.contains("--SERVER") {
        return Err(
            "memcached: libmemcached configuration strings (--SERVER=...) are not \
                    accepted by php-memcached 3 sessions"
                .to_string(),
        );
    }
    for raw in rest.split(',') {
        let mut entry = raw.trim();
        if entry.is_empty() {
            continue;
        }
        if let Some((_, host)) = entry.rsplit_once('@') {
            spec.notes.push(format!(
                "{}: php-memcached does not take credentials from the save_path (use \
                 memcached.sess_sasl_username/password)",
                redact_entry(entry)
            ));
            entry = host;
        }
        spec.servers.push(memcached_server(entry)?);
    }
    Ok(())
}

/// One `memcached_servers_parse` entry: host up to the first `:`, the port's digits, then a
/// weight after a space or a second `:`.
fn memcached_server(entry: &str) -> Result<Server, String> {
    let (host, after) = if let Some(v6) = entry.strip_prefix('[') {
        let Some((host, rest)) = v6.split_once(']') else {
            return Err(format!("memcached: '{entry}': missing ']'"));
        };
        (host, rest.strip_prefix(':'))
    } else {
        match entry.split_once(':') {
            Some((host, rest)) => (host, Some(rest)),
            None => (entry, None),
        }
    };
    let host = host.trim();
    let (port, weight) = match after {
        None => (0, 0),
        Some(rest) => {
            let weight = rest
                .find(' ')
                .or_else(|| rest.find(':'))
                .map_or(0, |i| leading_number(&rest[i + 1..]));
            (leading_number(rest), weight)
        }
    };
    let weight = u32::try_from(weight).unwrap_or(u32::MAX).max(1);
    if host.starts_with('/') {
        return Ok(Server::unix(host, weight));
    }
    if host.is_empty() {
        return Err(format!("memcached: '{entry}': no host"));
    }
    let port = match port {
        0 => MEMCACHED_PORT,
        p => u16::try_from(p).map_err(|_| format!("memcached: '{entry}': port out of range"))?,
    };
    Ok(Server::tcp(host, port, weight))
}

/// `memcache`: pecl-memcache's PS_OPEN_FUNC, URLs separated by commas or whitespace.
fn parse_memcache(save_path: &str, spec: &mut StoreSpec) -> Result<(), String> {
    for entry in split_entries(save_path) {
        let url = parse_url(&translate_unix(entry))
            .map_err(|e| format!("memcache: '{}': {e}", redact_entry(entry)))?;
        if url.userinfo.is_some() {
            spec.notes.push(format!(
                "{}: pecl-memcache ignores credentials in the save_path",
                redact_entry(entry)
            ));
        }
        let params = parse_query(url.query.as_deref().unwrap_or(""));
        let weight = positive_weight(&params, "memcache", entry)?;
        let server = if url.scheme.as_deref() == Some("file") {
            let Some(path) = url.path.as_deref().filter(|p| !p.is_empty()) else {
                return Err(format!(
                    "memcache: '{}': no socket path",
                    redact_entry(entry)
                ));
            };
            Server::unix(path, weight)
        } else {
            let Some(host) = url.host.as_deref().filter(|h| !h.is_empty()) else {
                return Err(format!(
                    "memcache: '{}': no host (pecl-memcache wants tcp://host:port)",
                    redact_entry(entry)
                ));
            };
            let port = url.port.unwrap_or(0);
            if port == 0 {
                spec.notes.push(format!(
                    "{}: no port: pecl-memcache connects to port 0 and fails (write :11211)",
                    redact_entry(entry)
                ));
            }
            // pecl-memcache ignores the scheme: tcp://, udp:// and none all mean TCP.
            Server::tcp(host, port, weight)
        };
        spec.servers.push(server);
    }
    Ok(())
}

/// `redis`: phpredis' PS_OPEN_FUNC(redis), URLs separated by commas or whitespace.
fn parse_redis(save_path: &str, spec: &mut StoreSpec) -> Result<(), String> {
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
                let port = url.port.filter(|p| *p != 0).unwrap_or(REDIS_PORT);
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
        let prefix = query_get(&params, "prefix").map_or(REDIS_PREFIX.into(), lossy);
        server.options.insert("prefix".to_string(), prefix);
        if let Some(auth) = auth_option(&params, &shown, &mut spec.notes) {
            server.options.insert("auth".to_string(), auth);
        }
        spec.servers.push(server);
    }
    hoist_uniform_options(spec);
    Ok(())
}

/// `rediscluster`: phpredis' PS_OPEN_FUNC(rediscluster), one query string.
fn parse_rediscluster(save_path: &str, spec: &mut StoreSpec) -> Result<(), String> {
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
    let prefix = query_get(&params, "prefix").map_or(REDIS_CLUSTER_PREFIX.into(), lossy);
    spec.options.insert("prefix".to_string(), prefix);
    if let Some(auth) = auth_option(&params, "rediscluster save_path", &mut spec.notes) {
        spec.options.insert("auth".to_string(), auth);
    }
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

/// The `weight` query parameter (default 1); the extensions refuse weights below 1.
fn positive_weight(
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

/// phpredis' `auth`: a string (the password) or an array of one (password) or two (user,
/// password) elements, `auth[]=..` or `auth[user]=..&auth[pass]=..`. Values are digested.
fn auth_option(
    params: &[(String, Vec<u8>)],
    context: &str,
    notes: &mut Vec<String>,
) -> Option<String> {
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
            if let Ok(n) = sub.parse::<usize>() {
                next_index = next_index.max(n + 1);
            }
            sub.to_string()
        };
        match array.iter_mut().find(|(k, _)| *k == sub) {
            Some(slot) => slot.1 = value,
            None => array.push((sub, value)),
        }
    }
    if array.is_empty() {
        let i = last_scalar?;
        return Some(secret_digest(&params[i].1));
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
        (1, _, Some(pass)) => Some(secret_digest(pass)),
        (2, Some(user), Some(pass)) => Some(format!(
            "user {} password {}",
            secret_digest(user),
            secret_digest(pass)
        )),
        _ => {
            notes.push(format!(
                "{context}: phpredis ignores an auth array that is not [password] or [user, password]"
            ));
            None
        }
    }
}

// ------------------------------------------------------------------------ URL and query parsing

/// The parts of a URL as PHP's `php_url_parse_ex` splits them (enough of it for save paths).
#[derive(Debug, Default, PartialEq, Eq)]
struct Url {
    scheme: Option<String>,
    userinfo: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    path: Option<String>,
    query: Option<String>,
}

/// The extensions read `unix:...` as `file:...`.
fn translate_unix(entry: &str) -> String {
    match entry.strip_prefix("unix:") {
        Some(rest) => format!("file:{rest}"),
        None => entry.to_string(),
    }
}

fn parse_url(entry: &str) -> Result<Url, String> {
    // phpredis puts a #fragment back onto the query; keep it there.
    let (main, query) = match entry.split_once('?') {
        Some((main, query)) => (main, Some(query.to_string())),
        None => (entry.split('#').next().unwrap_or(entry), None),
    };
    let mut url = Url {
        query,
        ..Url::default()
    };
    if let Some((scheme, rest)) = main.split_once("://")
        && is_scheme(scheme)
    {
        url.scheme = Some(scheme.to_ascii_lowercase());
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        url.path = path.map(str::to_string);
        parse_authority(authority, &mut url)?;
        return Ok(url);
    }
    if let Some(rest) = main
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("file:"))
        .and_then(|_| main.get(5..))
    {
        url.scheme = Some("file".to_string());
        url.path = Some(rest.to_string());
        return Ok(url);
    }
    if !main.starts_with('/')
        && let Some((_, port)) = main.rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        // PHP reads "host:6379" as host and port, not as a scheme.
        parse_authority(main, &mut url)?;
        return Ok(url);
    }
    // PHP reads "localhost" and "/run/redis.sock" as a path.
    url.path = Some(main.to_string());
    Ok(url)
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-'))
}

fn parse_authority(authority: &str, url: &mut Url) -> Result<(), String> {
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            url.userinfo = Some(userinfo.to_string());
            hostport
        }
        None => authority,
    };
    let (host, port) = split_host_port(hostport)?;
    url.host = Some(host).filter(|h| !h.is_empty());
    url.port = port;
    Ok(())
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; host lowercased without brackets.
fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let Some((host, rest)) = v6.split_once(']') else {
            return Err("missing ']' after an IPv6 address".to_string());
        };
        if !rest.is_empty() && !rest.starts_with(':') {
            return Err("unexpected text after ']'".to_string());
        }
        (host, rest.strip_prefix(':'))
    } else {
        match s.split_once(':') {
            Some((host, port)) if port.contains(':') => {
                return Err(format!("'{host}:{port}': put IPv6 addresses in brackets"));
            }
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => {
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("invalid port '{p}'"));
            }
            Some(
                p.parse::<u16>()
                    .map_err(|_| format!("port '{p}' out of range"))?,
            )
        }
    };
    Ok((normalise_host(host), port))
}

fn normalise_host(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// Entries of a server list: separated by commas or C `isspace` characters.
fn split_entries(path: &str) -> impl Iterator<Item = &str> {
    path.split(|c: char| c == ',' || is_c_space(c))
        .filter(|e| !e.is_empty())
}

fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// `a=1&b[]=2` as PHP's `treat_data(PARSE_STRING)` sees it: decoded keys and values, in order.
fn parse_query(query: &str) -> Vec<(String, Vec<u8>)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            (lossy(&urldecode(key)), urldecode(value))
        })
        .collect()
}

/// The last value of the scalar parameter `name`.
fn query_get<'a>(params: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

/// PHP's `urldecode`: `+` is a space, `%XX` a byte, anything else kept.
fn urldecode(s: &str) -> Vec<u8> {
    let plus: Vec<u8> = s
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&plus).collect()
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// PHP's string to integer conversion: leading blanks, a sign, digits; anything else is 0.
fn php_int(bytes: &[u8]) -> i64 {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim_start();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if negative { -n } else { n }
}

fn php_float(bytes: &[u8]) -> f64 {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    s.parse::<f64>()
        .unwrap_or_else(|_| php_int(s.as_bytes()) as f64)
}

/// Leading decimal digits of `s` (after blanks), as C's `strtoul` reads a port or weight.
fn leading_number(s: &str) -> u64 {
    let s = s.trim_start();
    s.bytes().take_while(u8::is_ascii_digit).fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    })
}

// ------------------------------------------------------------------------ credentials

/// `sha256:` and the first 16 hex digits of SHA-256 of `secret`: how credentials are shown
/// and compared, by the probe as by fpmlb.
pub fn digest_secret(secret: &[u8]) -> String {
    let hash = Sha256::digest(secret);
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Whether `s` already is a [`digest_secret`] value (as the probe sends them).
fn is_digest(s: &[u8]) -> bool {
    s.len() == 23
        && s.starts_with(b"sha256:")
        && s[7..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The digest of a secret, or the secret itself when it already is a digest.
fn secret_digest(secret: &[u8]) -> String {
    if is_digest(secret) {
        lossy(secret)
    } else {
        digest_secret(secret)
    }
}

/// Whether a query parameter name carries a credential: `auth`, `auth[]`, `auth[user]`,
/// `user`, `pass`, `password`, `stream[passphrase]`, ... (after URL decoding).
fn is_credential_key(raw_key: &str) -> bool {
    const WORDS: &[&str] = &[
        "auth",
        "user",
        "username",
        "pass",
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "sasl_username",
        "sasl_password",
    ];
    let key = lossy(&urldecode(raw_key)).to_ascii_lowercase();
    key.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| WORDS.contains(&word))
}

/// A save path with every credential replaced by its digest, exactly as `conf/probe.php`
/// redacts it before it leaves the node: credential query values (`auth=`, `auth[]=`,
/// `password=`, `stream[passphrase]=`, ...) by the digest of their URL-decoded value, URL
/// userinfo (`user:pass@`) by the digest of the userinfo as written. For `rediscluster` the
/// whole path is one query string. Digests already present are kept, so it is idempotent.
pub fn redact_save_path(handler: &str, save_path: &str) -> String {
    if Handler::from_name(handler) == Handler::RedisCluster {
        return redact_query(save_path);
    }
    let mut out = String::with_capacity(save_path.len());
    let mut entry = String::new();
    for c in save_path.chars() {
        if c == ',' || is_c_space(c) {
            if !entry.is_empty() {
                out.push_str(&redact_entry(&entry));
                entry.clear();
            }
            out.push(c);
        } else {
            entry.push(c);
        }
    }
    if !entry.is_empty() {
        out.push_str(&redact_entry(&entry));
    }
    out
}

/// One server entry of [`redact_save_path`].
fn redact_entry(entry: &str) -> String {
    let scheme_len = entry
        .find("://")
        .filter(|&i| is_scheme(&entry[..i]))
        .map_or(0, |i| i + 3);
    let (scheme, rest) = entry.split_at(scheme_len);
    let rest = match rest.find(['/', '?', '@']) {
        Some(at) if rest.as_bytes()[at] == b'@' => {
            format!("{}{}", secret_digest(&rest.as_bytes()[..at]), &rest[at..])
        }
        _ => rest.to_string(),
    };
    let entry = format!("{scheme}{rest}");
    match entry.split_once('?') {
        Some((main, query)) => format!("{main}?{}", redact_query(query)),
        None => entry,
    }
}

/// Credential values of an `a=1&b=2` string replaced by digests.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|part| match part.split_once('=') {
            Some((key, value)) if is_credential_key(key) => {
                let decoded = urldecode(value);
                format!("{key}={}", secret_digest(&decoded))
            }
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

// ------------------------------------------------------------------------ comparison

/// One differing setting, expected vs found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The ini name (`session.save_handler`, `memcached.sess_prefix`, ...) or a pseudo-name:
    /// `session.save_path servers`, `session.save_path <option>`, `extension <name>`.
    pub setting: String,
    /// What the node should have.
    pub expected: String,
    /// What the node has.
    pub found: String,
}

impl Difference {
    fn new(
        setting: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Difference {
            setting: setting.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, found {}",
            self.setting, self.expected, self.found
        )
    }
}

/// What every node is expected to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expected {
    /// The session store.
    pub spec: StoreSpec,
    /// The settings that must match (see [`compared_settings`]), with the reference node's
    /// values; empty when there is no reference node.
    pub ini: Ini,
    /// The node the settings were taken from.
    pub reference: Option<String>,
    /// Why this is expected, for the log and the admin API.
    pub reason: String,
}

/// The ini settings compared for a store of `handler`: the `session.*` ones that change
/// behaviour across nodes, plus the handler's extension settings.
pub fn compared_settings(handler: &Handler) -> Vec<&'static str> {
    let extra: &[&str] = match handler {
        Handler::Memcached => MEMCACHED_SETTINGS,
        Handler::Memcache => MEMCACHE_SETTINGS,
        Handler::Redis | Handler::RedisCluster => REDIS_SETTINGS,
        Handler::Files | Handler::Other(_) => &[],
    };
    SESSION_SETTINGS.iter().chain(extra).copied().collect()
}

/// The extension an ini setting belongs to, when it is not `session.*`.
fn setting_extension(key: &str) -> Option<&'static str> {
    if key.starts_with("memcached.") {
        Some("memcached")
    } else if key.starts_with("memcache.") {
        Some("memcache")
    } else if key.starts_with("redis.") {
        Some("redis")
    } else {
        None
    }
}

/// PHP's `zend_ini_parse_bool`.
fn parse_bool(value: &str) -> bool {
    let v = value.trim();
    ["true", "yes", "on"]
        .iter()
        .any(|t| v.eq_ignore_ascii_case(t))
        || php_int(v.as_bytes()) != 0
}

/// The value of `key` as the extension understands it, for comparison (unset = empty).
fn normalise_value(key: &str, value: Option<&str>) -> String {
    let v = value.unwrap_or("").trim();
    if BOOL_SETTINGS.contains(&key) {
        if parse_bool(v) { "1" } else { "0" }.to_string()
    } else if CASELESS_SETTINGS.contains(&key) {
        v.to_ascii_lowercase()
    } else {
        v.to_string()
    }
}

/// The value of `key` for an operator.
fn display_value(key: &str, value: Option<&str>) -> String {
    match value {
        None => "(unset)".to_string(),
        Some(v) if BOOL_SETTINGS.contains(&key) => {
            if parse_bool(v) { "on" } else { "off" }.to_string()
        }
        Some("") => "(empty)".to_string(),
        Some(v) => v.to_string(),
    }
}

fn join_options(options: &BTreeMap<String, String>) -> String {
    options
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Compares a node to the expected config (from fpmlb's `session:` section, or the majority
/// of nodes). Empty when the node stores sessions like expected.
pub fn compare(expected: &Expected, node: &NodeConfig) -> Vec<Difference> {
    let mut out = Vec::new();
    let want = &expected.spec.handler;
    if let Some(ext) = want.extension()
        && !node.extensions.is_loaded(ext)
    {
        out.push(Difference::new(
            format!("extension {ext}"),
            "loaded",
            "missing",
        ));
    }
    let have = node.save_handler();
    if have != *want {
        out.push(Difference::new(
            "session.save_handler",
            want.name(),
            have.name(),
        ));
    }
    match node.store_spec() {
        Err(e) => out.push(Difference::new(
            "session.save_path",
            expected.spec.to_string(),
            format!(
                "unusable ({e}): '{}'",
                redact_save_path(have.name(), node.effective_save_path())
            ),
        )),
        Ok(spec) if have == *want => compare_specs(&expected.spec, &spec, &mut out),
        Ok(spec) => {
            let (e, f) = (expected.spec.to_string(), spec.to_string());
            if e != f {
                out.push(Difference::new("session.save_path", e, f));
            }
        }
    }
    for (key, want_value) in &expected.ini {
        if let Some(ext) = setting_extension(key)
            && !node.extensions.is_loaded(ext)
        {
            continue; // reported once as "extension <name>"
        }
        let want_norm = normalise_value(key, want_value.as_deref());
        match node.ini.get(key) {
            None if want_norm == normalise_value(key, None) => {}
            None => out.push(Difference::new(
                key.clone(),
                display_value(key, want_value.as_deref()),
                "(not reported)",
            )),
            Some(found) => {
                if want_norm != normalise_value(key, found.as_deref()) {
                    out.push(Difference::new(
                        key.clone(),
                        display_value(key, want_value.as_deref()),
                        display_value(key, found.as_deref()),
                    ));
                }
            }
        }
    }
    out
}

/// Store differences between two specs of the same handler.
fn compare_specs(want: &StoreSpec, have: &StoreSpec, out: &mut Vec<Difference>) {
    let same = same_servers(want, have);
    if !same {
        let mut expected = want.servers_text();
        if want.servers.len() > 1 || have.servers.len() > 1 {
            expected = format!("{expected} ({})", want.order_text());
        }
        let mut found = have.servers_text();
        if want.handler == Handler::RedisCluster {
            found = format!("{found} (no seed in common)");
        } else if have.distribution != want.distribution && have.servers.len() > 1 {
            found = format!("{found} ({})", have.order_text());
        }
        out.push(Difference::new(
            "session.save_path servers",
            expected,
            found,
        ));
    }
    let keys: std::collections::BTreeSet<&String> =
        want.options.keys().chain(have.options.keys()).collect();
    for key in keys {
        let (w, h) = (want.options.get(key), have.options.get(key));
        if w != h {
            out.push(Difference::new(
                format!("session.save_path {key}"),
                w.map_or("(none)", String::as_str),
                h.map_or("(none)", String::as_str),
            ));
        }
    }
}

/// Groups of indexes into `items`: an item joins the first group with a member `same` as it,
/// so groups are ordered by their first member.
fn group<T>(items: &[T], same: impl Fn(&T, &T) -> bool) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|g| g.iter().any(|&m| same(&items[m], item)))
        {
            Some(members) => members.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
}

/// The largest group (the earliest one on a tie) and whether there was a tie.
fn pick(groups: &[Vec<usize>]) -> Option<(&Vec<usize>, bool)> {
    let best = groups
        .iter()
        .fold(None::<&Vec<usize>>, |best, g| match best {
            Some(b) if b.len() >= g.len() => Some(b),
            _ => Some(g),
        })?;
    let tie = groups.iter().filter(|g| g.len() == best.len()).count() > 1;
    Some((best, tie))
}

/// The expected config when fpmlb's config has no `session:` section: the store most nodes
/// use, then among those nodes the most common values of the [`compared_settings`]; ties are
/// broken by the first node in config order (the order of `nodes`). Nodes whose save path is
/// unusable cannot be the reference. `None` when no node has a usable one.
pub fn majority(nodes: &[NodeConfig]) -> Option<Expected> {
    let usable: Vec<(&NodeConfig, StoreSpec)> = nodes
        .iter()
        .filter_map(|n| n.store_spec().ok().map(|s| (n, s)))
        .collect();
    let store_groups = group(&usable, |(_, a), (_, b)| a.same_store(b));
    let (store_group, store_tie) = pick(&store_groups)?;
    let spec = &usable[store_group[0]].1;
    let keys = compared_settings(&spec.handler);
    let members: Vec<&NodeConfig> = store_group.iter().map(|&i| usable[i].0).collect();
    let values: Vec<Vec<String>> = members
        .iter()
        .map(|n| {
            keys.iter()
                .map(|k| normalise_value(k, n.ini_value(k)))
                .collect()
        })
        .collect();
    let settings_groups = group(&values, |a, b| a == b);
    let (settings_group, settings_tie) = pick(&settings_groups)?;
    let reference = members[settings_group[0]];
    let (reference, spec) = usable
        .iter()
        .find(|(n, _)| std::ptr::eq(*n, reference))
        .map(|(n, s)| (*n, s.clone()))?;

    let names = |group: &[&NodeConfig]| {
        group
            .iter()
            .map(|n| n.node.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut reason = if store_groups.len() == 1 {
        format!("all {} nodes store sessions in {spec}", usable.len())
    } else {
        format!(
            "{} of {} nodes store sessions in {spec} ({})",
            members.len(),
            usable.len(),
            names(&members)
        )
    };
    if store_tie {
        reason.push_str(&format!(
            "; a tie with another store, broken by config order ({} comes first)",
            members[0].node
        ));
    }
    if usable.len() < nodes.len() {
        let unusable: Vec<&NodeConfig> = nodes.iter().filter(|n| n.store_spec().is_err()).collect();
        reason.push_str(&format!(
            "; ignored, save_path unusable: {}",
            names(&unusable)
        ));
    }
    if settings_groups.len() > 1 {
        reason.push_str(&format!(
            "; other session settings as on {} ({} of {} of those nodes agree{})",
            reference.node,
            settings_group.len(),
            members.len(),
            if settings_tie {
                ", tie broken by config order"
            } else {
                ""
            }
        ));
    } else {
        reason.push_str(&format!("; reference node {}", reference.node));
    }
    Some(Expected {
        spec,
        ini: reference_settings(reference, &keys),
        reference: Some(reference.node.clone()),
        reason,
    })
}

fn reference_settings(reference: &NodeConfig, keys: &[&str]) -> Ini {
    keys.iter()
        .filter_map(|k| reference.ini.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect()
}

/// The expected config from fpmlb's `session:` section (`save_handler`, `save_path`, clear
/// credentials allowed: they are digested). The other [`compared_settings`] and the hashing
/// settings that decide server order come from `reference` (typically the node [`majority`]
/// picked); without one only the store is compared.
pub fn expected_from_config(
    save_handler: &str,
    save_path: &str,
    reference: Option<&NodeConfig>,
) -> Result<Expected, String> {
    if save_handler.trim().is_empty() {
        return Err("session.save_handler is empty".to_string());
    }
    let handler = Handler::from_name(save_handler);
    let empty = Ini::new();
    let spec = parse_with(&handler, save_path, reference.map_or(&empty, |r| &r.ini))?;
    let keys = compared_settings(&handler);
    let mut reason = format!("fpmlb configuration (session: {spec})");
    if let Some(r) = reference {
        reason.push_str(&format!("; other session settings as on {}", r.node));
    }
    Ok(Expected {
        ini: reference
            .map(|r| reference_settings(r, &keys))
            .unwrap_or_default(),
        reference: reference.map(|r| r.node.clone()),
        spec,
        reason,
    })
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

    // Real answers of conf/probe.php, captured from integration/cluster.sh clusters.
    const MEMCACHED_WEB01: &str = include_str!("../../tests/fixtures/probe-memcached-web01.json");
    const FILES_WEB02: &str = include_str!("../../tests/fixtures/probe-files-override-web02.json");
    const REDIS_WEB01: &str = include_str!("../../tests/fixtures/probe-redis-auth-web01.json");
    const MEMCACHE_WEB01: &str = include_str!("../../tests/fixtures/probe-memcache-web01.json");
    // A real Redis Cluster: web02 lists other seeds of the same cluster (and read web01's
    // session), web03 one common seed but another prefix (and did not).
    const CLUSTER: [&str; 3] = [
        include_str!("../../tests/fixtures/probe-rediscluster-web01.json"),
        include_str!("../../tests/fixtures/probe-rediscluster-web02.json"),
        include_str!("../../tests/fixtures/probe-rediscluster-web03.json"),
    ];

    fn fixture(json: &str) -> NodeConfig {
        serde_json::from_str(json).unwrap()
    }

    /// A node like the memcached fixture, renamed, with some ini values replaced.
    fn node(name: &str, overrides: &[(&str, Option<&str>)]) -> NodeConfig {
        let mut n = fixture(MEMCACHED_WEB01);
        n.node = name.to_string();
        for (k, v) in overrides {
            n.ini.insert((*k).to_string(), v.map(str::to_string));
        }
        n
    }

    fn path(p: &str) -> (&'static str, Option<&str>) {
        ("session.save_path", Some(p))
    }

    fn spec(handler: &str, p: &str) -> StoreSpec {
        parse_save_path(handler, p).unwrap()
    }

    fn ini(pairs: &[(&str, &str)]) -> Ini {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), Some((*v).to_string())))
            .collect()
    }

    fn servers(spec: &StoreSpec) -> Vec<String> {
        spec.servers.iter().map(ToString::to_string).collect()
    }

    fn settings(diffs: &[Difference]) -> Vec<&str> {
        diffs.iter().map(|d| d.setting.as_str()).collect()
    }

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    // ---- credentials

    #[test]
    fn digests_match_the_probe() {
        // Values printed by PHP: 'sha256:' . substr(hash('sha256', $s), 0, 16).
        assert_eq!(digest_secret(b"secret"), "sha256:2bb80d537b1da3e3");
        assert_eq!(digest_secret(b"bob"), "sha256:81b637d8fcd2c6da");
        assert_eq!(digest_secret(b"p@ss"), "sha256:a4048cba70dad0be");
        assert_eq!(digest_secret(b"x y"), "sha256:887fcea6a80333c6");
        assert_eq!(digest_secret(b"alice:pw"), "sha256:ba87b66806fd2d0b");
        assert_eq!(digest_secret(b"hunter2"), "sha256:f52fbd32b2b3b86f");
    }

    #[test]
    fn redaction_matches_the_probe() {
        // (handler, clear path, what conf/probe.php reported for it)
        let cases = [
            (
                "redis",
                "tcp://h:6379?auth=secret&database=2&prefix=app_",
                "tcp://h:6379?auth=sha256:2bb80d537b1da3e3&database=2&prefix=app_",
            ),
            (
                "redis",
                "tcp://h1:6379?auth[]=bob&auth[]=p%40ss&weight=2, \
                 tcp://h2?auth%5Buser%5D=bob&auth%5Bpass%5D=x+y",
                "tcp://h1:6379?auth[]=sha256:81b637d8fcd2c6da&auth[]=sha256:a4048cba70dad0be\
                 &weight=2, tcp://h2?auth%5Buser%5D=sha256:81b637d8fcd2c6da\
                 &auth%5Bpass%5D=sha256:887fcea6a80333c6",
            ),
            (
                "redis",
                "tls://alice:pw@h:6380?stream[passphrase]=abc&stream[verify_peer]=0",
                "tls://sha256:ba87b66806fd2d0b@h:6380?stream[passphrase]=sha256:ba7816bf8f01cfea\
                 &stream[verify_peer]=0",
            ),
            (
                "rediscluster",
                "seed[]=h1:7000&seed[]=h2:7001&timeout=2&auth=s3cr,et&prefix=x",
                "seed[]=h1:7000&seed[]=h2:7001&timeout=2&auth=sha256:1c1bc3b28cbc4a65&prefix=x",
            ),
            (
                "memcached",
                "bob:pw@10.0.0.1:11211, 10.0.0.2:11211:2",
                "sha256:9577648086bd3b50@10.0.0.1:11211, 10.0.0.2:11211:2",
            ),
            (
                "memcache",
                "tcp://u:p@h2:1?x=1",
                "tcp://sha256:fd8f314419e0a57e@h2:1?x=1",
            ),
            (
                "files",
                "2;0600;/var/lib/php/sessions",
                "2;0600;/var/lib/php/sessions",
            ),
            (
                "memcached",
                "PERSISTENT=pool 10.0.0.1:11211",
                "PERSISTENT=pool 10.0.0.1:11211",
            ),
        ];
        for (handler, clear, redacted) in cases {
            assert_eq!(redact_save_path(handler, clear), redacted, "{clear}");
            // Idempotent: the probe's output is left as it is.
            assert_eq!(redact_save_path(handler, redacted), redacted, "{redacted}");
        }
    }

    #[test]
    fn clear_and_digested_credentials_compare_equal() {
        let clear = spec("redis", "tcp://h:6379?auth=secret");
        let digested = spec("redis", "tcp://h:6379?auth=sha256:2bb80d537b1da3e3");
        assert_eq!(clear, digested);
        assert_eq!(clear.options["auth"], "sha256:2bb80d537b1da3e3");
        assert!(!format!("{clear:?}{}", serde_json::to_string(&clear).unwrap()).contains("secret"));
    }

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

    // ---- memcached

    #[test]
    fn memcached_syntaxes() {
        let s = spec(
            "memcached",
            "10.0.0.1:11211, 10.0.0.2,/var/run/mc.sock, Cache.Example:11212:3, 10.0.0.4:11213 2",
        );
        assert_eq!(
            servers(&s),
            [
                "10.0.0.1:11211",
                "10.0.0.2:11211",
                "unix:/var/run/mc.sock",
                "cache.example:11212",
                "10.0.0.4:11213"
            ]
        );
        assert!(!s.order_matters);
        assert_eq!(s.distribution, "ketama consistent hashing");
        assert!(s.options.is_empty());
        assert!(s.notes.is_empty());
        // Spaces do not separate servers: libmemcached reads the second as a weight.
        assert_eq!(
            servers(&spec("memcached", "10.0.0.1:11211 10.0.0.2:11211")),
            ["10.0.0.1:11211"]
        );
        assert_eq!(servers(&spec("memcached", "[::1]:11211")), ["[::1]:11211"]);
    }

    #[test]
    fn memcached_weights_count_only_with_ketama_weighted() {
        let p = "10.0.0.1:11211:3, 10.0.0.2:11211 2, 10.0.0.3:11211:0";
        assert_eq!(
            servers(&spec("memcached", p)),
            ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"]
        );
        let weighted = ini(&[("memcached.sess_consistent_hash_type", "ketama_weighted")]);
        let s = parse_with(&Handler::Memcached, p, &weighted).unwrap();
        assert_eq!(
            servers(&s),
            [
                "10.0.0.1:11211 weight 3",
                "10.0.0.2:11211 weight 2",
                "10.0.0.3:11211"
            ]
        );
        assert_eq!(s.distribution, "weighted ketama consistent hashing");
        let modula = ini(&[("memcached.sess_consistent_hash", "0")]);
        let s = parse_with(&Handler::Memcached, p, &modula).unwrap();
        assert!(s.order_matters);
        assert!(s.servers.iter().all(|s| s.weight == 1));
    }

    #[test]
    fn memcached_persistent_prefix_and_credentials_are_noted() {
        let s = spec("memcached", "PERSISTENT=pool 10.0.0.1:11211,10.0.0.2:11211");
        assert_eq!(servers(&s), ["10.0.0.1:11211", "10.0.0.2:11211"]);
        assert!(
            warnings(&s)
                .iter()
                .any(|w| w.contains("php-memcached 3 refuses"))
        );

        let s = spec("memcached", "bob:hunter2@10.0.0.1:11211");
        assert_eq!(servers(&s), ["10.0.0.1:11211"]);
        let w = warnings(&s).join("\n");
        assert!(
            w.contains("memcached.sess_sasl_username") && !w.contains("hunter2"),
            "{w}"
        );
    }

    #[test]
    fn memcached_rejects_what_php_memcached_cannot_use() {
        for p in [
            "--SERVER=10.0.0.1:11211",
            "10.0.0.1:99999",
            "",
            " , ",
            "PERSISTENT=pool",
            "[::1:11211",
        ] {
            assert!(parse_save_path("memcached", p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn memcached_order_depends_on_consistent_hashing() {
        let a = node("web01", &[path("127.0.0.1:11211, 127.0.0.1:11212")]);
        let b = node("web02", &[path("127.0.0.1:11212,127.0.0.1:11211")]);
        let expected = majority(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(compare(&expected, &b), []);

        let modula = ("memcached.sess_consistent_hash", Some("0"));
        let a = node("web01", &[path("127.0.0.1:11211, 127.0.0.1:11212"), modula]);
        let b = node("web02", &[path("127.0.0.1:11212,127.0.0.1:11211"), modula]);
        let expected = majority(&[a, b.clone()]).unwrap();
        assert_eq!(
            compare(&expected, &b),
            [Difference::new(
                "session.save_path servers",
                "127.0.0.1:11211, 127.0.0.1:11212 (order matters: modula hashing)",
                "127.0.0.1:11212, 127.0.0.1:11211",
            )]
        );
    }

    #[test]
    fn memcached_set_still_matters_with_consistent_hashing() {
        let a = node("web01", &[path("10.0.0.1:11211,10.0.0.2:11211")]);
        let b = node("web02", &[path("10.0.0.1:11211")]);
        let expected = majority(&[a, b.clone()]).unwrap();
        assert_eq!(
            compare(&expected, &b),
            [Difference::new(
                "session.save_path servers",
                "10.0.0.1:11211, 10.0.0.2:11211 (any order: ketama consistent hashing)",
                "10.0.0.1:11211",
            )]
        );
    }

    // ---- memcache

    #[test]
    fn memcache_syntaxes() {
        let s = spec(
            "memcache",
            "tcp://Mc1:11211?persistent=1&weight=2&timeout=1&retry_interval=15, udp://mc2:11211 \
             10.0.0.3:11212,unix:///var/run/memcached.sock",
        );
        assert_eq!(
            servers(&s),
            [
                "mc1:11211 weight 2",
                "mc2:11211",
                "10.0.0.3:11212",
                "unix:/var/run/memcached.sock"
            ]
        );
        assert!(!s.order_matters);
        assert_eq!(s.distribution, "consistent hashing");
        assert!(s.notes.is_empty());
        assert_eq!(
            spec("memcache", "tcp://mc2:11211"),
            spec("memcache", "udp://mc2:11211")
        );
    }

    #[test]
    fn memcache_without_port_is_port_zero() {
        // Seen on a real node: pecl-memcache then fails to write the session.
        let s = spec("memcache", "tcp://10.0.0.1");
        assert_eq!(servers(&s), ["10.0.0.1:0"]);
        assert!(warnings(&s).iter().any(|w| w.contains("port 0")));
        assert!(parse_save_path("memcache", "localhost").is_err());
        assert!(parse_save_path("memcache", "tcp://h:11211?weight=0").is_err());
    }

    #[test]
    fn memcache_standard_hashing_makes_order_matter() {
        let base = fixture(MEMCACHE_WEB01);
        let mut a = base.clone();
        let mut b = base.clone();
        b.node = "web02".to_string();
        b.ini.insert(
            "session.save_path".into(),
            Some("tcp://127.0.32.1:11212, tcp://127.0.32.1:11211".into()),
        );
        assert_eq!(compare(&majority(&[a.clone(), b.clone()]).unwrap(), &b), []);
        for n in [&mut a, &mut b] {
            n.ini
                .insert("memcache.hash_strategy".into(), Some("Standard".into()));
        }
        let diffs = compare(&majority(&[a, b.clone()]).unwrap(), &b);
        assert_eq!(settings(&diffs), ["session.save_path servers"]);
        assert!(
            diffs[0]
                .expected
                .contains("order matters: standard hashing")
        );
    }

    #[test]
    fn memcache_session_save_path_replaces_session_save_path() {
        let mut n = fixture(MEMCACHE_WEB01);
        assert_eq!(
            servers(&n.store_spec().unwrap()),
            ["127.0.32.1:11211", "127.0.32.1:11212"]
        );
        n.ini.insert(
            "memcache.session_save_path".into(),
            Some("tcp://10.9.9.9:11211".into()),
        );
        assert_eq!(n.effective_save_path(), "tcp://10.9.9.9:11211");
        assert_eq!(servers(&n.store_spec().unwrap()), ["10.9.9.9:11211"]);
        // Only for the memcache handler.
        let mut m = fixture(MEMCACHED_WEB01);
        m.ini.insert(
            "memcache.session_save_path".into(),
            Some("tcp://10.9.9.9:11211".into()),
        );
        assert_eq!(m.effective_save_path(), "127.0.30.1:11211,127.0.30.1:11212");
    }

    // ---- redis

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
    fn redis_order_matters() {
        let a = spec("redis", "tcp://a:6379, tcp://b:6379");
        let b = spec("redis", "tcp://b:6379, tcp://a:6379");
        let mut diffs = Vec::new();
        compare_specs(&a, &b, &mut diffs);
        assert_eq!(settings(&diffs), ["session.save_path servers"]);
        assert_eq!(
            diffs[0].expected,
            "a:6379, b:6379 (order matters: phpredis weight ranges in list order)"
        );
    }

    #[test]
    fn rediscluster_seeds_are_a_set() {
        let s = spec(
            "rediscluster",
            "seed[]=b:7001&seed[]=A:7000&seed[]=b:7001&timeout=2&read_timeout=2&failover=error\
             &persistent=1&auth=pw&stream[verify_peer]=0",
        );
        assert_eq!(servers(&s), ["a:7000", "b:7001"]);
        assert_eq!(
            s.options,
            opts(&[
                ("auth", "sha256:30c952fab122c3f9"),
                ("prefix", "PHPREDIS_CLUSTER_SESSION:")
            ])
        );
        // Seeds are a set, and any seed in common means the same cluster.
        for p in [
            "seed%5B%5D=a:7000&seed%5B%5D=b:7001&auth=pw",
            "seed[]=b:7001&auth=pw",
            "seed[]=c:7002&seed[]=a:7000&auth=pw",
        ] {
            let other = spec("RedisCluster", p);
            assert!(s.same_store(&other), "{p}");
            let mut diffs = Vec::new();
            compare_specs(&s, &other, &mut diffs);
            assert_eq!(diffs, [], "{p}");
        }
        let mut diffs = Vec::new();
        compare_specs(
            &s,
            &spec("rediscluster", "seed[]=c:7002&auth=pw"),
            &mut diffs,
        );
        assert_eq!(
            diffs,
            [Difference::new(
                "session.save_path servers",
                "a:7000, b:7001 (any order: seeds of one Redis Cluster)",
                "c:7002 (no seed in common)",
            )]
        );
        for p in ["timeout=2", "seed[]=a", "seed=a:7000", "seed[]=a:0"] {
            assert!(parse_save_path("rediscluster", p).is_err(), "{p}");
        }
    }

    // ---- files and others

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
    fn handler_names() {
        assert_eq!(Handler::from_name(" MemCached "), Handler::Memcached);
        assert_eq!(Handler::from_name("rediscluster"), Handler::RedisCluster);
        assert_eq!(Handler::from_name("User"), Handler::Other("user".into()));
        assert_eq!(Handler::Redis.extension(), Some("redis"));
        assert_eq!(
            serde_json::to_string(&Handler::Memcache).unwrap(),
            "\"memcache\""
        );
        let s = spec("user", "db://u:pw@h/x");
        assert_eq!(
            s.options["save_path"],
            format!("db://{}@h/x", digest_secret(b"u:pw"))
        );
    }

    // ---- comparing nodes

    #[test]
    fn real_probe_answers_deserialise() {
        let m = fixture(MEMCACHED_WEB01);
        assert_eq!(
            (m.node.as_str(), m.sapi.as_str(), m.probe_version),
            ("web01", "fpm-fcgi", Some(1))
        );
        assert!(m.extensions.memcached && m.extensions.memcache && m.extensions.redis);
        assert!(m.save_handler_registered.iter().any(|h| h == "memcached"));
        assert_eq!(m.save_handler(), Handler::Memcached);
        assert_eq!(
            servers(&m.store_spec().unwrap()),
            ["127.0.30.1:11211", "127.0.30.1:11212"]
        );
        assert_eq!(m.ini_value("memcache.session_save_path"), None);

        let f = fixture(FILES_WEB02);
        assert_eq!(f.node, "web02");
        assert_eq!(f.save_handler(), Handler::Files);
        assert_eq!(
            f.store_spec().unwrap().options["path"],
            "/var/lib/php/sessions"
        );

        let r = fixture(REDIS_WEB01);
        let s = r.store_spec().unwrap();
        assert_eq!(servers(&s), ["127.0.31.1:6379"]);
        assert_eq!(
            s.options,
            opts(&[
                ("auth", "sha256:2bb80d537b1da3e3"),
                ("database", "2"),
                ("prefix", "app_")
            ])
        );
        assert!(!REDIS_WEB01.contains("secret"));

        let mc = fixture(MEMCACHE_WEB01);
        assert_eq!(mc.save_handler(), Handler::Memcache);
        assert!(mc.store_spec().is_ok());
        // Round trip through serde keeps everything.
        assert_eq!(fixture(&serde_json::to_string(&m).unwrap()), m);
    }

    #[test]
    fn identical_configs_have_no_differences() {
        let nodes = [node("web01", &[]), node("web02", &[]), node("web03", &[])];
        let expected = majority(&nodes).unwrap();
        assert_eq!(expected.reference.as_deref(), Some("web01"));
        assert!(
            expected
                .reason
                .starts_with("all 3 nodes store sessions in memcached"),
            "{}",
            expected.reason
        );
        for n in &nodes {
            assert_eq!(compare(&expected, n), []);
        }
        // The expected settings are exactly the compared ones of the handler.
        let keys: Vec<&str> = expected.ini.keys().map(String::as_str).collect();
        let mut want = compared_settings(&Handler::Memcached);
        want.sort_unstable();
        assert_eq!(keys, want);
    }

    #[test]
    fn pool_file_overriding_the_handler_is_reported() {
        // web02 of a real cluster: php_value[session.save_handler] = files in its pool.
        let web01 = fixture(MEMCACHED_WEB01);
        let web02 = fixture(FILES_WEB02);
        let web03 = node("web03", &[]);
        let expected = majority(&[web01.clone(), web02.clone(), web03.clone()]).unwrap();
        assert_eq!(expected.spec.handler, Handler::Memcached);
        assert!(
            expected.reason.contains("2 of 3 nodes"),
            "{}",
            expected.reason
        );
        assert_eq!(
            compare(&expected, &web02),
            [
                Difference::new("session.save_handler", "memcached", "files"),
                Difference::new(
                    "session.save_path",
                    "memcached 127.0.30.1:11211, 127.0.30.1:11212",
                    "files (depth=0 path=/var/lib/php/sessions)",
                ),
            ]
        );
        assert_eq!(compare(&expected, &web01), []);
        // Same with the store from fpmlb's configuration.
        let expected = expected_from_config(
            "memcached",
            "127.0.30.1:11212, 127.0.30.1:11211",
            Some(&web01),
        )
        .unwrap();
        assert_eq!(compare(&expected, &web01), []);
        assert_eq!(
            settings(&compare(&expected, &web02)),
            ["session.save_handler", "session.save_path"]
        );
    }

    #[test]
    fn missing_extension_is_reported_once() {
        let good = node("web01", &[]);
        let mut bad = node("web02", &[("memcached.sess_prefix", None)]);
        bad.extensions.memcached = false;
        bad.ini.retain(|k, _| !k.starts_with("memcached."));
        let expected = expected_from_config(
            "memcached",
            "127.0.30.1:11211,127.0.30.1:11212",
            Some(&good),
        )
        .unwrap();
        assert_eq!(
            compare(&expected, &bad),
            [Difference::new("extension memcached", "loaded", "missing")]
        );
    }

    #[test]
    fn ini_values_are_compared_as_php_reads_them() {
        let a = node(
            "web01",
            &[
                ("session.use_strict_mode", Some("On")),
                ("session.cookie_domain", None),
            ],
        );
        let b = node(
            "web02",
            &[
                ("session.use_strict_mode", Some("1")),
                ("session.cookie_domain", Some("")),
            ],
        );
        let expected =
            expected_from_config("memcached", "127.0.30.1:11211,127.0.30.1:11212", Some(&a))
                .unwrap();
        assert_eq!(compare(&expected, &b), []);
        let c = node(
            "web03",
            &[
                ("session.use_strict_mode", Some("0")),
                ("session.gc_maxlifetime", Some("3600")),
                ("memcached.sess_prefix", Some("other.")),
                ("session.name", None),
            ],
        );
        assert_eq!(
            compare(&expected, &c),
            [
                Difference::new("memcached.sess_prefix", "memc.sess.key.", "other."),
                Difference::new("session.gc_maxlifetime", "1440", "3600"),
                Difference::new("session.name", "PHPSESSID", "(unset)"),
                Difference::new("session.use_strict_mode", "on", "off"),
            ]
        );
        let mut d = node("web04", &[("session.use_strict_mode", Some("yes"))]);
        d.ini.remove("session.sid_length");
        assert_eq!(
            compare(&expected, &d),
            [Difference::new(
                "session.sid_length",
                "26",
                "(not reported)"
            )]
        );
    }

    #[test]
    fn redis_config_with_clear_password_matches_the_node() {
        let web01 = fixture(REDIS_WEB01);
        let ok = expected_from_config(
            "redis",
            "tcp://127.0.31.1:6379?auth=secret&database=2&prefix=app_&timeout=5",
            Some(&web01),
        )
        .unwrap();
        assert_eq!(compare(&ok, &web01), []);
        assert!(!serde_json::to_string(&ok).unwrap().contains("secret"));

        let wrong = expected_from_config(
            "redis",
            "tcp://127.0.31.1:6379?auth=other&database=3&prefix=app_",
            Some(&web01),
        )
        .unwrap();
        assert_eq!(
            compare(&wrong, &web01),
            [
                Difference::new(
                    "session.save_path auth",
                    digest_secret(b"other"),
                    "sha256:2bb80d537b1da3e3"
                ),
                Difference::new("session.save_path database", "3", "2"),
            ]
        );
        let none = expected_from_config("redis", "tcp://127.0.31.1:6379", None).unwrap();
        assert!(none.ini.is_empty());
        assert_eq!(
            compare(&none, &web01),
            [
                Difference::new(
                    "session.save_path auth",
                    "(none)",
                    "sha256:2bb80d537b1da3e3"
                ),
                Difference::new("session.save_path database", "0", "2"),
                Difference::new("session.save_path prefix", "PHPREDIS_SESSION:", "app_"),
            ]
        );
        assert!(expected_from_config(" ", "x", None).is_err());
        assert!(expected_from_config("redis", "tcp://h?weight=0", None).is_err());
    }

    #[test]
    fn expected_from_config_takes_hashing_from_the_reference() {
        let modula = node("web01", &[("memcached.sess_consistent_hash", Some("0"))]);
        let e = expected_from_config("memcached", "a:1,b:2", Some(&modula)).unwrap();
        assert!(e.spec.order_matters);
        let e = expected_from_config("memcached", "a:1,b:2", None).unwrap();
        assert!(!e.spec.order_matters);
        assert_eq!(
            e.reason,
            "fpmlb configuration (session: memcached a:1, b:2)"
        );
    }

    #[test]
    fn majority_tie_goes_to_the_first_node() {
        let x = path("10.0.0.1:11211");
        let y = path("10.0.0.2:11211");
        let nodes = [
            node("a", &[x]),
            node("b", &[y]),
            node("c", &[x]),
            node("d", &[y]),
        ];
        let e = majority(&nodes).unwrap();
        assert_eq!(servers(&e.spec), ["10.0.0.1:11211"]);
        assert_eq!(e.reference.as_deref(), Some("a"));
        assert!(
            e.reason.contains("tie") && e.reason.contains("(a comes first)"),
            "{}",
            e.reason
        );
        assert_eq!(
            settings(&compare(&e, &nodes[1])),
            ["session.save_path servers"]
        );

        let nodes = [
            node("b", &[y]),
            node("a", &[x]),
            node("c", &[x]),
            node("d", &[y]),
        ];
        assert_eq!(majority(&nodes).unwrap().reference.as_deref(), Some("b"));
        let nodes = [node("b", &[y]), node("a", &[x]), node("c", &[x])];
        let e = majority(&nodes).unwrap();
        assert_eq!(e.reference.as_deref(), Some("a"));
        assert!(
            e.reason
                .starts_with("2 of 3 nodes store sessions in memcached 10.0.0.1:11211 (a, c)")
        );
        assert!(!e.reason.contains("tie"));
    }

    #[test]
    fn majority_settings_come_from_the_most_common_values() {
        let odd = ("session.gc_maxlifetime", Some("60"));
        let nodes = [
            node("web01", &[odd]),
            node("web02", &[]),
            node("web03", &[]),
        ];
        let e = majority(&nodes).unwrap();
        assert_eq!(e.reference.as_deref(), Some("web02"));
        assert!(e.reason.contains("as on web02 (2 of 3"), "{}", e.reason);
        assert_eq!(
            compare(&e, &nodes[0]),
            [Difference::new("session.gc_maxlifetime", "1440", "60")]
        );
    }

    #[test]
    fn majority_skips_unusable_paths() {
        let broken = node("web01", &[path("--SERVER=10.0.0.1")]);
        let nodes = [broken.clone(), node("web02", &[]), node("web03", &[])];
        let e = majority(&nodes).unwrap();
        assert_eq!(e.reference.as_deref(), Some("web02"));
        assert!(
            e.reason.contains("ignored, save_path unusable: web01"),
            "{}",
            e.reason
        );
        let diffs = compare(&e, &broken);
        assert_eq!(settings(&diffs), ["session.save_path"]);
        assert!(
            diffs[0]
                .found
                .starts_with("unusable (memcached: libmemcached configuration strings")
        );
        assert_eq!(majority(&[broken]), None);
        assert_eq!(majority(&[]), None);
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
    fn rediscluster_nodes_of_one_cluster_agree() {
        let nodes: Vec<NodeConfig> = CLUSTER.iter().map(|j| fixture(j)).collect();
        let e = majority(&nodes).unwrap();
        assert_eq!(e.spec.handler, Handler::RedisCluster);
        assert!(e.reason.starts_with("2 of 3 nodes"), "{}", e.reason);
        assert_eq!(compare(&e, &nodes[1]), []);
        assert_eq!(
            compare(&e, &nodes[2]),
            [Difference::new("session.save_path prefix", "rc_", "other_")]
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

    #[test]
    fn difference_and_spec_display() {
        let d = Difference::new("session.save_handler", "memcached", "files");
        assert_eq!(
            d.to_string(),
            "session.save_handler: expected memcached, found files"
        );
        assert_eq!(
            spec("redis", "tcp://h:6379?auth=secret&database=2").to_string(),
            "redis h:6379 (auth=sha256:2bb80d537b1da3e3 database=2 prefix=PHPREDIS_SESSION:)"
        );
        let json = serde_json::to_value(spec("memcached", "10.0.0.1:11211")).unwrap();
        assert_eq!(json["handler"], "memcached");
        assert_eq!(json["servers"][0]["port"], 11211);
    }
}
