//! The validation layer: raw structs to [`Config`], defaults applied, all errors collected.
//!
//! Each check records its error and goes on with the default value, so one run reports every
//! problem of the file. Errors carry the line of their key, looked up in the [`KeyIndex`].

use std::collections::HashMap;
use std::time::Duration;

use super::defaults as d;
use super::edge::{Listener, RawListenEntry};
use super::locate::{KeyIndex, join};
use super::parse::{parse_duration, parse_listen, parse_size};
use super::raw::{
    OneOrMany, Present, RawAdmin, RawBackend, RawConfig, RawHealth, RawLog, RawSession, RawTimeouts,
};
use super::{
    AdminConfig, BackendAddress, BackendConfig, Config, ConfigError, ConfigErrors, HealthConfig,
    LogConfig, SessionConfig, Timeouts,
};
use crate::save_path::parse_save_path;

/// Validates `raw`, whose keys are located by `index`.
pub(super) fn validate(raw: RawConfig, index: &KeyIndex) -> Result<Config, ConfigErrors> {
    let mut v = Validator {
        index,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let keyed_listen = v.listen(raw.listen);
    let acme_given = raw.tls.as_ref().is_some_and(|t| t.acme.is_some());
    let tls = raw.tls.map(|t| v.tls(t));
    v.edge_consistency(&keyed_listen, tls.as_ref(), acme_given);
    let real_ip = v.real_ip(raw.real_ip.unwrap_or_default());
    v.proxy_protocol_trust(&keyed_listen, &real_ip);
    let listen: Vec<Listener> = keyed_listen.into_iter().map(|(_, l)| l).collect();
    let compression = v.compression(raw.compression.unwrap_or_default());
    let document_root = v.document_root(raw.document_root);
    let backends = v.backends(raw.backends);
    let mut raw_static = raw.static_files;
    let open_file_cache =
        v.open_file_cache(raw_static.as_mut().and_then(|s| s.open_file_cache.take()));
    let static_files = v.static_files(raw_static);
    let locations = v.locations(raw.locations, &backends);
    v.groups(&backends, &locations);
    let error_pages = v.error_pages(raw.error_pages, static_files.is_some(), &locations);
    let config = Config {
        document_root,
        index: v.index(raw.index),
        front_controller: v.checked(
            "front_controller",
            raw.front_controller,
            check_front_controller,
        ),
        max_body_size: v.size("max_body_size", raw.max_body_size, d::MAX_BODY_SIZE),
        body_buffer_size: v.body_buffer_size(raw.body_buffer_size),
        request_buffering: raw.request_buffering.unwrap_or(d::REQUEST_BUFFERING),
        response_buffering: raw.response_buffering.unwrap_or(d::RESPONSE_BUFFERING),
        response_buffer_size: v.bounded_size(
            "response_buffer_size",
            raw.response_buffer_size,
            d::RESPONSE_BUFFER_SIZE,
            d::RESPONSE_MEMORY,
        ),
        response_max_temp_file: v.size(
            "response_max_temp_file",
            raw.response_max_temp_file,
            d::RESPONSE_MAX_TEMP_FILE,
        ),
        request_temp_total: v.size(
            "request_temp_total",
            raw.request_temp_total,
            d::REQUEST_TEMP_TOTAL,
        ),
        response_temp_total: v.size(
            "response_temp_total",
            raw.response_temp_total,
            d::RESPONSE_TEMP_TOTAL,
        ),
        max_request_line: v.bounded_size(
            "max_request_line",
            raw.max_request_line,
            d::MAX_REQUEST_LINE,
            d::MAX_LINE_LIMIT,
        ),
        max_header_line: v.bounded_size(
            "max_header_line",
            raw.max_header_line,
            d::MAX_HEADER_LINE,
            d::MAX_LINE_LIMIT,
        ),
        max_header_size: v.bounded_size(
            "max_header_size",
            raw.max_header_size,
            d::MAX_HEADER_SIZE,
            d::MAX_HEADER_SIZE_LIMIT,
        ),
        max_connections: match raw.max_connections {
            Some(n) if !(1..=d::MAX_CONNECTIONS_LIMIT).contains(&n) => {
                v.error(
                    "max_connections",
                    format!("must be 1 to {}, got {n}", d::MAX_CONNECTIONS_LIMIT),
                );
                d::MAX_CONNECTIONS
            }
            n => n.unwrap_or(d::MAX_CONNECTIONS),
        },
        max_connections_per_client: raw
            .max_connections_per_client
            .unwrap_or(d::MAX_CONNECTIONS_PER_CLIENT),
        workers: v.workers(raw.workers),
        server_name: v.checked("server_name", raw.server_name, check_non_empty),
        https: raw.https.unwrap_or(d::HTTPS),
        params: v.params(raw.params.map(|p| p.0).unwrap_or_default()),
        balance: raw.balance.unwrap_or(d::BALANCE),
        timeouts: v.timeouts(raw.timeouts.unwrap_or_default()),
        max_fails: raw.max_fails.unwrap_or(d::MAX_FAILS),
        fail_timeout: v.duration(
            "fail_timeout",
            raw.fail_timeout,
            d::FAIL_TIMEOUT,
            Zero::Invalid,
        ),
        queue_size: raw.queue_size.unwrap_or(d::QUEUE_SIZE),
        log: v.log(raw.log.unwrap_or_default()),
        backends,
        resolve_interval: v.duration(
            "resolve_interval",
            raw.resolve_interval,
            d::RESOLVE_INTERVAL,
            Zero::Invalid,
        ),
        session: raw.session.and_then(|s| v.session(s)),
        health: v.health(raw.health.unwrap_or_default()),
        admin: v.admin(raw.admin.unwrap_or_default(), &listen),
        listen,
        tls,
        real_ip,
        compression,
        static_files,
        open_file_cache,
        error_pages,
        locations,
        warnings: Vec::new(),
    };
    v.head_limits(&config);
    if v.errors.is_empty() {
        v.warnings.sort_by_key(|e| e.line);
        Ok(Config {
            warnings: v.warnings,
            ..config
        })
    } else {
        // Stable: errors on one line keep the order of the checks.
        v.errors.sort_by_key(|e| e.line);
        Err(ConfigErrors(v.errors))
    }
}

/// Whether a zero duration is acceptable for a key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Zero {
    Valid,
    Invalid,
}

/// Collects errors while building the typed values.
pub(super) struct Validator<'a> {
    index: &'a KeyIndex,
    errors: Vec<ConfigError>,
    /// What loads but deserves a look (`config test` prints them).
    pub(super) warnings: Vec<ConfigError>,
}

impl Validator<'_> {
    /// Records a problem with the key at `key`.
    pub(super) fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            key: key.to_owned(),
            line: self.index.line_of(key),
            message: message.into(),
        });
    }

    /// Records that `parent` lacks the required key `field` (at the line of `parent`), or
    /// that the key is there without a value (`field: ~`, at its own line).
    pub(super) fn missing(&mut self, parent: &str, field: &str) {
        let key = join(parent, field);
        let (line, message) = match self.index.line_of(&key) {
            Some(line) => (Some(line), "needs a value"),
            None => (self.index.line_of(parent), "missing required key"),
        };
        self.errors.push(ConfigError {
            key,
            line,
            message: message.to_owned(),
        });
    }

    /// Line of the key at `key`.
    pub(super) fn line(&self, key: &str) -> Option<usize> {
        self.index.line_of(key)
    }

    /// Line where the value at `path` starts (0 when unknown).
    pub(super) fn value_line(&self, path: &str) -> usize {
        self.index.value_line_of(path).unwrap_or(0)
    }

    /// How many problems were recorded so far.
    pub(super) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Runs `check` on an optional string; `None` if absent or invalid.
    fn checked(
        &mut self,
        key: &str,
        value: Option<String>,
        check: fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        let value = value?;
        match check(&value) {
            Ok(()) => Some(value),
            Err(message) => {
                self.error(key, message);
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        key: &str,
        value: Option<String>,
        default: Duration,
        zero: Zero,
    ) -> Duration {
        let Some(text) = value else {
            return default;
        };
        match parse_duration(&text) {
            Ok(duration) if duration.is_zero() && zero == Zero::Invalid => {
                self.error(key, format!("must be greater than 0, got {text:?}"));
                default
            }
            Ok(duration) => duration,
            Err(message) => {
                self.error(key, message);
                default
            }
        }
    }

    pub(super) fn size(&mut self, key: &str, value: Option<String>, default: u64) -> u64 {
        let Some(text) = value else {
            return default;
        };
        parse_size(&text).unwrap_or_else(|message| {
            self.error(key, message);
            default
        })
    }

    /// A size of `1..=limit` bytes.
    fn bounded_size(
        &mut self,
        key: &str,
        value: Option<String>,
        default: usize,
        limit: usize,
    ) -> usize {
        let Some(text) = value else {
            return default;
        };
        match parse_size(&text).map(usize::try_from) {
            Ok(Ok(size)) if (1..=limit).contains(&size) => size,
            Ok(_) => {
                self.error(
                    key,
                    format!(
                        "must be 1 to {} bytes ({}k), got {text:?}",
                        limit,
                        limit / 1024
                    ),
                );
                default
            }
            Err(message) => {
                self.error(key, message);
                default
            }
        }
    }

    /// A line longer than the whole head could never be seen.
    fn head_limits(&mut self, c: &Config) {
        let line = c.max_request_line.max(c.max_header_line);
        if line > c.max_header_size {
            self.error(
                "max_header_size",
                format!(
                    "must be at least max_request_line and max_header_line ({line} bytes), got {}",
                    c.max_header_size
                ),
            );
        }
    }

    fn listen(&mut self, value: Option<OneOrMany>) -> Vec<(String, Listener)> {
        let items: Vec<(String, RawListenEntry)> = match value {
            None => {
                self.missing("", "listen");
                return Vec::new();
            }
            Some(OneOrMany::One(entry)) => vec![("listen".to_owned(), entry)],
            Some(OneOrMany::Many(list)) => list
                .into_iter()
                .enumerate()
                .map(|(i, entry)| (format!("listen[{i}]"), entry))
                .collect(),
        };
        self.listeners(items)
    }

    fn document_root(&mut self, value: Option<String>) -> String {
        let Some(root) = value else {
            self.missing("", "document_root");
            return String::new();
        };
        if !root.starts_with('/') {
            self.error(
                "document_root",
                format!("must be an absolute path on the php-fpm nodes, got {root:?}"),
            );
        } else if root.contains('\0') {
            self.error("document_root", "must not contain a NUL byte");
        } else if root.len() > d::MAX_DOCUMENT_ROOT {
            self.error(
                "document_root",
                format!("must be at most {} bytes long", d::MAX_DOCUMENT_ROOT),
            );
        }
        match root.trim_end_matches('/') {
            "" => "/".to_owned(),
            trimmed => trimmed.to_owned(),
        }
    }

    fn index(&mut self, value: Option<String>) -> String {
        let Some(index) = value else {
            return d::INDEX.to_owned();
        };
        // The script a directory runs: fpmlb runs `.php` scripts only, and
        // never a dotfile.
        if index.contains(['/', '\0']) || index.starts_with('.') || !index.ends_with(".php") {
            self.error(
                "index",
                format!("must be a PHP script's file name such as index.php, got {index:?}"),
            );
        }
        index
    }

    fn body_buffer_size(&mut self, value: Option<String>) -> usize {
        let Some(text) = value else {
            return d::BODY_BUFFER_SIZE;
        };
        match parse_size(&text).map(usize::try_from) {
            Ok(Ok(0)) => {
                self.error("body_buffer_size", "must be greater than 0");
                d::BODY_BUFFER_SIZE
            }
            Ok(Ok(size)) => size,
            Ok(Err(_)) => {
                self.error(
                    "body_buffer_size",
                    format!("{text:?} is too large for this machine"),
                );
                d::BODY_BUFFER_SIZE
            }
            Err(message) => {
                self.error("body_buffer_size", message);
                d::BODY_BUFFER_SIZE
            }
        }
    }

    fn params(&mut self, params: Vec<(String, String)>) -> Vec<(String, String)> {
        self.params_at("params", params)
    }

    /// `params:` at `at` (the top level's or a location's).
    pub(super) fn params_at(
        &mut self,
        at: &str,
        params: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        for (name, value) in &params {
            let key = join(at, name);
            if name.is_empty() || name.contains(['=', '\0']) {
                self.error(
                    &key,
                    format!(
                        "invalid parameter name {name:?}: must be non-empty, without '=' or NUL"
                    ),
                );
            }
            if value.contains('\0') {
                self.error(&key, "value must not contain a NUL byte");
            }
            if name.len() + value.len() > d::MAX_PARAM_LEN {
                self.error(
                    &key,
                    format!(
                        "name and value must fit one FastCGI record: {} bytes at most",
                        d::MAX_PARAM_LEN
                    ),
                );
            }
        }
        params
    }

    /// `workers`: `auto` (one thread per core) or 1 to `WORKERS_LIMIT`.
    fn workers(&mut self, value: Option<String>) -> Option<usize> {
        let text = value?;
        if text.trim().eq_ignore_ascii_case("auto") {
            return None;
        }
        match text.trim().parse::<usize>() {
            Ok(n) if (1..=d::WORKERS_LIMIT).contains(&n) => Some(n),
            _ => {
                self.error(
                    "workers",
                    format!("must be auto or 1 to {}, got {text:?}", d::WORKERS_LIMIT),
                );
                None
            }
        }
    }

    fn timeouts(&mut self, raw: RawTimeouts) -> Timeouts {
        let mut t = |name: &str, value, default, zero| {
            self.duration(&join("timeouts", name), value, default, zero)
        };
        Timeouts {
            connect: t("connect", raw.connect, d::CONNECT_TIMEOUT, Zero::Invalid),
            send: t("send", raw.send, d::SEND_TIMEOUT, Zero::Invalid),
            read: t("read", raw.read, d::READ_TIMEOUT, Zero::Invalid),
            queue: t("queue", raw.queue, d::QUEUE_TIMEOUT, Zero::Invalid),
            idle: t("idle", raw.idle, d::IDLE_TIMEOUT, Zero::Invalid),
            client_header: t(
                "client_header",
                raw.client_header,
                d::CLIENT_HEADER_TIMEOUT,
                Zero::Invalid,
            ),
            client_body: t(
                "client_body",
                raw.client_body,
                d::CLIENT_BODY_TIMEOUT,
                Zero::Invalid,
            ),
            client_send: t(
                "client_send",
                raw.client_send,
                d::CLIENT_SEND_TIMEOUT,
                Zero::Invalid,
            ),
            client_idle: t(
                "client_idle",
                raw.client_idle,
                d::CLIENT_IDLE_TIMEOUT,
                Zero::Invalid,
            ),
            shutdown_grace: t(
                "shutdown_grace",
                raw.shutdown_grace,
                d::SHUTDOWN_GRACE,
                Zero::Valid,
            ),
        }
    }

    fn log(&mut self, raw: RawLog) -> LogConfig {
        let level = match raw.level {
            Some(level) if level.trim().is_empty() => {
                self.error("log.level", "must not be empty (e.g. info)");
                d::LOG_LEVEL.to_owned()
            }
            Some(level) => level,
            None => d::LOG_LEVEL.to_owned(),
        };
        LogConfig {
            level,
            format: raw.format.unwrap_or(d::LOG_FORMAT),
            access_log: raw.access_log.unwrap_or(d::ACCESS_LOG),
        }
    }

    fn backends(&mut self, value: Option<Vec<RawBackend>>) -> Vec<BackendConfig> {
        let Some(raw) = value else {
            self.missing("", "backends");
            return Vec::new();
        };
        if raw.is_empty() {
            self.error("backends", "at least one backend is required");
        }
        // Name -> line of its first use, for duplicate errors.
        let mut seen: HashMap<String, Option<usize>> = HashMap::new();
        let mut backends = Vec::with_capacity(raw.len());
        for (i, backend) in raw.into_iter().enumerate() {
            if let Some(backend) = self.backend(&format!("backends[{i}]"), backend, &mut seen) {
                backends.push(backend);
            }
        }
        backends
    }

    fn backend(
        &mut self,
        path: &str,
        raw: RawBackend,
        seen: &mut HashMap<String, Option<usize>>,
    ) -> Option<BackendConfig> {
        let errors_before = self.errors.len();
        let name_key = join(path, "name");
        let name = match raw.name {
            None => {
                self.missing(path, "name");
                String::new()
            }
            Some(name) if !valid_backend_name(&name) => {
                self.error(
                    &name_key,
                    format!("invalid name {name:?}: use letters, digits, '_', '.' and '-'"),
                );
                name
            }
            Some(name) => {
                if let Some(first) = seen.get(&name) {
                    let at = first
                        .map(|l| format!(" (first on line {l})"))
                        .unwrap_or_default();
                    self.error(&name_key, format!("duplicate backend name {name:?}{at}"));
                } else {
                    seen.insert(name.clone(), self.index.line_of(&name_key));
                }
                name
            }
        };
        let address = match raw.address {
            None => {
                self.missing(path, "address");
                None
            }
            Some(text) => text
                .parse::<BackendAddress>()
                .map_err(|message| self.error(&join(path, "address"), message))
                .ok(),
        };
        let weight = raw.weight.unwrap_or(d::WEIGHT);
        if !(1..=d::MAX_WEIGHT).contains(&weight) {
            self.error(
                &join(path, "weight"),
                format!("must be 1 to {}, got {weight}", d::MAX_WEIGHT),
            );
        }
        if raw.max_conns == Some(0) {
            self.error(
                &join(path, "max_conns"),
                "must be at least 1; leave it out to use the pool's pm.max_children",
            );
        }
        let group = match raw.group {
            Some(group) if !valid_backend_name(&group) => {
                self.error(
                    &join(path, "group"),
                    format!("invalid group {group:?}: use letters, digits, '_', '.' and '-'"),
                );
                group
            }
            Some(group) => group,
            None => super::MAIN_GROUP.to_owned(),
        };
        let address = address.filter(|_| self.errors.len() == errors_before)?;
        Some(BackendConfig {
            name,
            address,
            weight,
            max_conns: raw.max_conns,
            group,
            backup: raw.backup.unwrap_or(false),
            line: self.index.value_line_of(path).unwrap_or(0),
        })
    }

    fn session(&mut self, raw: RawSession) -> Option<SessionConfig> {
        let save_handler = match raw.save_handler {
            None => {
                self.missing("session", "save_handler");
                None
            }
            Some(handler) if handler.trim().is_empty() => {
                self.error(
                    "session.save_handler",
                    "must not be empty (e.g. files, redis, memcached)",
                );
                None
            }
            Some(handler) => Some(handler),
        };
        let save_path = raw.save_path;
        if save_path.is_none() {
            self.missing("session", "save_path");
        }
        let (save_handler, save_path) = (save_handler?, save_path?);
        // The session checker's own parser: a path it could not use is refused here.
        if let Err(e) = parse_save_path(&save_handler, &save_path) {
            self.error("session.save_path", e);
            return None;
        }
        Some(SessionConfig {
            save_handler,
            save_path,
        })
    }

    fn health(&mut self, raw: RawHealth) -> HealthConfig {
        let mut count = |name: &str, value: Option<u32>, default: u32| match value {
            Some(0) => {
                self.error(&join("health", name), "must be at least 1");
                default
            }
            Some(n) => n,
            None => default,
        };
        let rise = count("rise", raw.rise, d::HEALTH_RISE);
        let fall = count("fall", raw.fall, d::HEALTH_FALL);
        let ping_response = match raw.ping_response {
            Some(response) if response.is_empty() => {
                self.error("health.ping_response", "must not be empty");
                d::PING_RESPONSE.to_owned()
            }
            Some(response) => response,
            None => d::PING_RESPONSE.to_owned(),
        };
        HealthConfig {
            interval: self.duration(
                "health.interval",
                raw.interval,
                d::HEALTH_INTERVAL,
                Zero::Invalid,
            ),
            timeout: self.duration(
                "health.timeout",
                raw.timeout,
                d::HEALTH_TIMEOUT,
                Zero::Invalid,
            ),
            rise,
            fall,
            ping_path: self.checked("health.ping_path", raw.ping_path, check_url_path),
            ping_response,
            status_path: self.checked("health.status_path", raw.status_path, check_url_path),
            probe_script: self.checked("health.probe_script", raw.probe_script, check_absolute),
            session_interval: self.duration(
                "health.session_interval",
                raw.session_interval,
                d::SESSION_INTERVAL,
                Zero::Invalid,
            ),
            on_session_mismatch: raw.on_session_mismatch.unwrap_or(d::ON_SESSION_MISMATCH),
        }
    }

    fn admin(&mut self, raw: RawAdmin, listen: &[Listener]) -> AdminConfig {
        let addr = match raw.listen {
            Present::Absent => Some(d::ADMIN_LISTEN),
            Present::Null => None,
            Present::Value(text) if ["off", "false"].contains(&text.trim()) => None,
            Present::Value(text) => match parse_listen(&text) {
                Ok(addr) => Some(addr),
                Err(message) => {
                    self.error("admin.listen", format!("{message}, or off"));
                    None
                }
            },
        };
        if let Some(addr) = addr.filter(|a| listen.iter().any(|l| l.addr == *a)) {
            self.error("admin.listen", format!("{addr} is also in listen"));
        }
        let token = match raw.token {
            Some(token) if token.trim().is_empty() => {
                self.error(
                    "admin.token",
                    "must not be empty; leave it out to require no token",
                );
                None
            }
            token => token,
        };
        // Without a token, anyone who reaches the listener may drain the
        // cluster: only loopback keeps that to this machine.
        if let Some(addr) = addr
            && !addr.ip().is_loopback()
            && token.is_none()
        {
            let line = self
                .index
                .line_of("admin.token")
                .or_else(|| self.index.line_of("admin.listen"));
            self.errors.push(ConfigError {
                key: "admin.token".to_owned(),
                line,
                message: format!("required when admin.listen ({addr}) is not a loopback address"),
            });
        }
        let mut hosts = Vec::new();
        for (i, host) in raw.hosts.unwrap_or_default().into_iter().enumerate() {
            let host = host.trim().to_ascii_lowercase();
            if host.is_empty()
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            {
                self.error(
                    &format!("admin.hosts[{i}]"),
                    format!(
                        "must be a host name without port, such as fpmlb.internal, got {host:?}"
                    ),
                );
            } else {
                hosts.push(host);
            }
        }
        AdminConfig {
            listen: addr,
            token,
            hosts,
        }
    }
}

impl Validator<'_> {
    /// Every group requests can reach has a backend that is not a backup:
    /// the groups locations name, and `main` unless every path has a
    /// location with its own group (a `/` prefix and every other location
    /// naming one).
    fn groups(&mut self, backends: &[BackendConfig], locations: &[super::Location]) {
        if backends.is_empty() {
            return;
        }
        let mut groups: Vec<&str> = Vec::new();
        for b in backends {
            if !groups.contains(&b.group.as_str()) {
                groups.push(&b.group);
            }
        }
        let catch_all = locations.iter().any(|l| {
            l.group.is_some()
                && matches!(&l.matcher, super::LocationMatch::Prefix(p) | super::LocationMatch::PrefixNoRegex(p) if p == "/")
        });
        let main_used = !catch_all || locations.iter().any(|l| l.group.is_none());
        for group in groups {
            if !backends.iter().any(|b| b.group == group && !b.backup) {
                let at = backends.iter().position(|b| b.group == group).map_or_else(
                    || "backends".to_owned(),
                    |i| format!("backends[{i}].backup"),
                );
                self.error(
                    &at,
                    format!("group {group:?} needs a backend that is not a backup"),
                );
            }
        }
        if main_used && !backends.iter().any(|b| b.group == super::MAIN_GROUP) {
            self.error(
                "backends",
                format!(
                    "no backend is in group {:?}, which serves every path without a location naming another group",
                    super::MAIN_GROUP
                ),
            );
        }
    }
}

/// `[A-Za-z0-9_.-]+`.
fn valid_backend_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn check_non_empty(value: &str) -> Result<(), String> {
    if value.trim().is_empty() || value.contains(char::is_control) {
        return Err(format!(
            "must be a non-empty name without control characters, got {value:?}"
        ));
    }
    Ok(())
}

/// `/index.php`: a script path starting with `/`, ending in `.php`, without `..`.
fn check_front_controller(value: &str) -> Result<(), String> {
    let ok = value.starts_with('/')
        && value.ends_with(".php")
        && value.len() > "/.php".len()
        && !value.contains('\0')
        && !value.split('/').any(|segment| segment == "..");
    if !ok {
        return Err(format!(
            "must be a script path starting with '/' and ending in \".php\", such as /index.php, got {value:?}"
        ));
    }
    Ok(())
}

/// A request path such as `/fpm-ping`.
fn check_url_path(value: &str) -> Result<(), String> {
    if !value.starts_with('/') || value.contains(char::is_whitespace) || value.contains('\0') {
        return Err(format!(
            "must be a path starting with '/', such as /fpm-ping, got {value:?}"
        ));
    }
    Ok(())
}

/// An absolute file path on the php-fpm nodes.
fn check_absolute(value: &str) -> Result<(), String> {
    if !value.starts_with('/') || value.contains('\0') {
        return Err(format!(
            "must be an absolute path on the php-fpm nodes, got {value:?}"
        ));
    }
    Ok(())
}
