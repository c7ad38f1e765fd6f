//! Configuration of fpmlb: the YAML file format, its defaults and its validation.
//!
//! This module owns everything between the operator's YAML text and the typed [`Config`] the
//! rest of fpmlb runs on. It reads the file, then validates it, as pingora's server
//! configuration does (`ServerConf::from_yaml` then `validate`), but keeps the two apart
//! in two layers of types:
//!
//! 1. `raw`: serde structs mirroring the file, all keys optional, unknown keys rejected
//!    (`#[serde(deny_unknown_fields)]`), deserialized by `serde-saphyr`;
//! 2. `validate`: turns the raw structs into [`Config`], applying the defaults of
//!    [`defaults`] and collecting *every* problem it finds, not just the first.
//!
//! Every error names the dotted key path (`backends[1].address`) and the line of that key.
//! Lines come from `serde-saphyr`'s [`Spanned`](serde_saphyr::Spanned) locations: the text
//! is read once more into a tree of spanned keys and values (`locate`), which maps key paths
//! to lines for validation errors and error locations back to key paths for YAML and type
//! errors.

mod compression;
pub mod defaults;
mod edge;
mod locate;
mod parse;
pub mod paths;
mod raw;
mod site;
mod validate;

#[cfg(test)]
mod site_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use compression::{CompressionConfig, Encoding, Levels};
pub use defaults::{DEFAULT_CONFIG, DEFAULT_MAX_CONNS};
pub use edge::{
    AcmeChallenge, AcmeConfig, CertificateFiles, DefaultCertificate, Listener, RealIpConfig,
    RealIpHeader, TlsConfig, canonical_ip, parse_cidr,
};
pub use parse::{parse_duration, parse_listen, parse_size};
pub use site::{
    BACKTRACK_LIMIT, ErrorPage, Location, LocationMatch, LocationRegex, MAIN_GROUP,
    OpenFileCacheConfig, RETURN_VARIABLES, RegexGaveUp, Return, StaticConfig, return_variables,
};

/// The validated configuration of fpmlb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where to serve HTTP (never empty, addresses unique), with each listener's options.
    pub listen: Vec<Listener>,
    /// Document root on the php-fpm nodes: absolute, without trailing `/` (except `/` itself).
    pub document_root: String,
    /// Script appended to request paths ending in `/` (nginx `fastcgi_index`).
    pub index: String,
    /// Script that serves every request (e.g. `/index.php`): starts with `/`, ends in `.php`.
    pub front_controller: Option<String>,
    /// Largest accepted request body in bytes; `0` means unlimited, as in nginx.
    pub max_body_size: u64,
    /// Request bodies above this many bytes spill to a temporary file (always > 0).
    pub body_buffer_size: usize,
    /// Read the whole request body before a backend is picked (nginx
    /// `fastcgi_request_buffering`); `false` streams bodies with a Content-Length.
    pub request_buffering: bool,
    /// Read PHP's response ahead of the client (nginx `fastcgi_buffering`).
    pub response_buffering: bool,
    /// Bytes of one response in memory ahead of the client (`1..=64m`).
    pub response_buffer_size: usize,
    /// Bytes of one response in a temp file ahead of the client; `0`: none.
    pub response_max_temp_file: u64,
    /// Bytes of all responses together in temp files.
    pub response_temp_total: u64,
    /// Bytes of all request bodies together in temp files.
    pub request_temp_total: u64,
    /// Longest request line in bytes (414 beyond); `1..=60k`.
    pub max_request_line: usize,
    /// Longest header line in bytes, name and value (431 beyond); `1..=60k`.
    pub max_header_line: usize,
    /// Largest request head in bytes (431 beyond); at least either line limit, at most 1m.
    pub max_header_size: usize,
    /// Client connections open at once (`1..=2^20`).
    pub max_connections: usize,
    /// Connections one client address (IPv6: one /64) may hold; `0` is no cap.
    pub max_connections_per_client: usize,
    /// Runtime threads; `None`: one per core (`workers: auto`).
    pub workers: Option<usize>,
    /// `SERVER_NAME` sent to PHP; `None` uses the host of the request.
    pub server_name: Option<String>,
    /// Sets `HTTPS=on` and `REQUEST_SCHEME=https` (fpmlb behind a TLS terminator).
    pub https: bool,
    /// Extra `FastCGI` params, in file order; names are non-empty without `=` or NUL.
    pub params: Vec<(String, String)>,
    /// Load balancing algorithm.
    pub balance: Balance,
    /// Timeouts of the client and backend sides.
    pub timeouts: Timeouts,
    /// Failed attempts within `fail_timeout` that mark a backend down; `0` disables.
    pub max_fails: u32,
    /// Window for `max_fails`, and how long a failed backend stays down.
    pub fail_timeout: Duration,
    /// Requests that may wait for a connection slot, per backend.
    pub queue_size: usize,
    /// Logging.
    pub log: LogConfig,
    /// The php-fpm pools (never empty, names unique).
    pub backends: Vec<BackendConfig>,
    /// How often hostnames in backend addresses are resolved again.
    pub resolve_interval: Duration,
    /// Expected PHP session storage of the nodes; `None` expects what most nodes use.
    pub session: Option<SessionConfig>,
    /// Health checks of the backends.
    pub health: HealthConfig,
    /// The admin API.
    pub admin: AdminConfig,
    /// TLS certificates, HSTS and ACME; `None` when no listener has TLS.
    pub tls: Option<TlsConfig>,
    /// Which peers may name the client (PROXY protocol, forwarding headers).
    pub real_ip: RealIpConfig,
    /// Compression of responses.
    pub compression: CompressionConfig,
    /// Files served from a local copy of the code; `None`: no files.
    pub static_files: Option<StaticConfig>,
    /// Lookups of static paths trusted for a while (`static.open_file_cache`).
    pub open_file_cache: OpenFileCacheConfig,
    /// fpmlb's own error responses replaced by these files, by status.
    pub error_pages: Vec<ErrorPage>,
    /// Per-path rules, in file order (matched in nginx's precedence).
    pub locations: Vec<Location>,
    /// What loads but deserves a look: rules that can never match.
    pub warnings: Vec<ConfigError>,
}

/// Load balancing algorithm, `balance:` in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Weighted smooth round robin, as nginx does it (`round_robin`).
    RoundRobin,
    /// Fewest open connections relative to weight (`least_conn`).
    LeastConn,
    /// Fewest busy php-fpm workers, as reported by the pool's status page (`least_busy`).
    LeastBusy,
}

/// Timeouts, the `timeouts:` section. All are greater than zero except `shutdown_grace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting to a php-fpm node.
    pub connect: Duration,
    /// Between two writes to php-fpm (nginx `fastcgi_send_timeout`).
    pub send: Duration,
    /// Between two reads from php-fpm (nginx `fastcgi_read_timeout`).
    pub read: Duration,
    /// Longest wait for a connection slot when a backend is at `max_conns`.
    pub queue: Duration,
    /// Pooled keep-alive `FastCGI` connections idle longer than this are closed.
    pub idle: Duration,
    /// From the first byte of a request head (or the connection's start) to its end
    /// (HAProxy `timeout http-request`).
    pub client_header: Duration,
    /// Between two reads of a request body (nginx `client_body_timeout`).
    pub client_body: Duration,
    /// Longest a client may take none of its response (nginx `send_timeout`).
    pub client_send: Duration,
    /// Idle client keep-alive connections are closed after this (nginx `keepalive_timeout`).
    pub client_idle: Duration,
    /// Time in-flight requests get to finish on shutdown; may be zero.
    pub shutdown_grace: Duration,
}

/// Logging, the `log:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Level or `tracing` filter directive, e.g. `info` or `info,fpmlb=debug` (non-empty).
    pub level: String,
    /// Output format.
    pub format: LogFormat,
    /// Whether to log one line per request.
    pub access_log: bool,
}

/// Log output format, `log.format:` in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human readable lines (`text`).
    Text,
    /// One JSON object per line (`json`).
    Json,
}

/// One php-fpm pool, an entry of `backends:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Unique name made of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// Where the pool listens.
    pub address: BackendAddress,
    /// Relative share of requests, `1..=1000`.
    pub weight: u32,
    /// Concurrent connections; `None` uses the pool's `pm.max_children` once known, else
    /// [`DEFAULT_MAX_CONNS`]. Never `Some(0)`.
    pub max_conns: Option<u32>,
    /// The backend group locations pick ([`MAIN_GROUP`] by default).
    pub group: String,
    /// Only used when no other backend of its group is eligible (nginx `backup`).
    pub backup: bool,
    /// Line of this backend in the file, for later error messages (0 when unknown).
    pub line: usize,
}

/// Address of a php-fpm pool. [`Display`](fmt::Display) gives back the config form, and
/// [`FromStr`](std::str::FromStr) parses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackendAddress {
    /// `10.0.0.7:9000`, `[::1]:9000` (host without brackets) or `php.internal:9000`.
    Tcp {
        /// IPv4 or IPv6 address (without brackets) or hostname.
        host: String,
        /// TCP port, never 0.
        port: u16,
    },
    /// `unix:/run/php/php8.2-fpm.sock`: an absolute socket path.
    Unix(PathBuf),
}

/// Expected PHP session storage, the `session:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Expected `session.save_handler`, e.g. `memcached` (non-empty).
    pub save_handler: String,
    /// Expected `session.save_path`, e.g. `10.0.0.51:11211`: one the handler's extension would
    /// accept, parsed by [`crate::save_path`] as the session checker parses it (may be empty
    /// for `files` and unknown handlers).
    pub save_path: String,
}

/// Health checks, the `health:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Time between two probes of a backend.
    pub interval: Duration,
    /// A probe not answered within this time fails.
    pub timeout: Duration,
    /// Consecutive good probes before a down backend takes traffic again (>= 1).
    pub rise: u32,
    /// Consecutive failed probes before a backend is taken out (>= 1).
    pub fall: u32,
    /// php-fpm `ping.path` (starts with `/`); `None` checks that a connection opens.
    pub ping_path: Option<String>,
    /// Expected answer to the ping (non-empty).
    pub ping_response: String,
    /// php-fpm `pm.status_path` (starts with `/`); `None` disables status polling.
    pub status_path: Option<String>,
    /// Absolute path on the nodes of the probe script; `None` disables session checks.
    pub probe_script: Option<String>,
    /// Time between two session configuration checks.
    pub session_interval: Duration,
    /// What to do with a node whose session configuration differs.
    pub on_session_mismatch: MismatchAction,
}

/// What to do with a node whose session configuration differs from the expected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchAction {
    /// Take the node out of rotation until it matches again (`drain`).
    Drain,
    /// Only log a warning (`warn`).
    Warn,
}

/// The admin API, the `admin:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Address of the admin API; `None` (`listen: off` or `~`) disables it.
    pub listen: Option<SocketAddr>,
    /// Bearer token the admin API requires; `None` requires none. Never empty, and always
    /// set when `listen` is not a loopback address.
    pub token: Option<String>,
    /// Host names (lower case, no port) the admin API answers to besides IP literals and
    /// `localhost`: any other Host is refused (DNS rebinding).
    pub hosts: Vec<String>,
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `backends[1].address` or `timeouts.read`; empty when the problem
    /// is not tied to a key (unreadable file, YAML syntax error outside any key).
    pub key: String,
    /// 1-based line of the key in the file, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// All problems found in a configuration, in file order (problems without a line first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A list holding one error.
    fn one(key: impl Into<String>, line: Option<usize>, message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigError {
            key: key.into(),
            line,
            message: message.into(),
        }])
    }
}

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Balance {
    /// The name used in the file, e.g. `round_robin`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::LeastConn => "least_conn",
            Balance::LeastBusy => "least_busy",
        }
    }
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LogFormat {
    /// The name used in the file, e.g. `json`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MismatchAction {
    /// The name used in the file, e.g. `drain`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            MismatchAction::Drain => "drain",
            MismatchAction::Warn => "warn",
        }
    }
}

impl fmt::Display for MismatchAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest config file read (a large site's is a few KiB).
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

impl Config {
    /// Every listening address, in file order.
    #[must_use]
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listen.iter().map(|l| l.addr).collect()
    }

    /// Parses and validates a configuration from YAML text.
    ///
    /// # Errors
    ///
    /// Every problem found: YAML syntax, unknown keys and wrong types (the first one only,
    /// parsing stops there), then all validation problems at once.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigErrors> {
        let index = locate::KeyIndex::build(text).map_err(|e| ConfigErrors(vec![e]))?;
        let raw: raw::RawConfig = serde_saphyr::from_str(text)
            .map_err(|e| ConfigErrors(vec![locate::de_error(&e, text, Some(&index))]))?;
        validate::validate(raw, &index)
    }

    /// Reads, parses and validates the configuration file at `path`.
    ///
    /// # Errors
    ///
    /// The file cannot be read (the message names the path), or see [`Config::from_yaml`].
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        use std::io::Read as _;
        let cannot = |why: String| {
            ConfigErrors::one(
                "",
                None,
                format!("cannot read config file {}: {why}", path.display()),
            )
        };
        let file = std::fs::File::open(path).map_err(|e| cannot(e.to_string()))?;
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| cannot(e.to_string()))?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(cannot(format!("larger than {MAX_CONFIG_BYTES} bytes")));
        }
        Config::from_yaml(&text)
    }
}
