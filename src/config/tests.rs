//! Tests of the configuration module: defaults, every validation rule with its key and
//! line, YAML and type errors, the value parsers, and the shipped example and default files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::locate::path_at_line;
use super::*;

/// The example configuration shipped for operators.
const EXAMPLE: &str = include_str!("../../conf/fpmlb.yaml");

/// The required keys only; extra keys appended with [`with`] start on line 6.
pub(super) const MINIMAL: &str = "\
listen: \":8080\"
document_root: /var/www/html
backends:
  - name: local
    address: 127.0.0.1:9000
";

/// [`MINIMAL`] followed by `lines`, the first of which is line 6.
pub(super) fn with(lines: &[&str]) -> String {
    let mut text = MINIMAL.to_owned();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// `lines` joined; the first is line 1.
fn text(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn ok(yaml: &str) -> Config {
    match Config::from_yaml(yaml) {
        Ok(config) => config,
        Err(errors) => panic!("unexpected errors:\n{errors}\nin:\n{yaml}"),
    }
}

fn errors(yaml: &str) -> Vec<ConfigError> {
    match Config::from_yaml(yaml) {
        Ok(config) => panic!("expected errors, got {config:?}\nin:\n{yaml}"),
        Err(errors) => errors.0,
    }
}

/// The only error of `yaml`, checked to be at `key` on `line` with `fragment` in its message.
fn single_error(yaml: &str, key: &str, line: Option<usize>, fragment: &str) -> ConfigError {
    let errors = errors(yaml);
    assert_eq!(
        errors.len(),
        1,
        "expected one error, got {errors:#?}\nin:\n{yaml}"
    );
    let error = errors.into_iter().next().unwrap();
    assert_eq!(
        (error.key.as_str(), error.line),
        (key, line),
        "wrong key or line: {error}\nin:\n{yaml}"
    );
    assert!(
        error.message.contains(fragment),
        "message {:?} lacks {fragment:?}",
        error.message
    );
    error
}

fn keys_and_lines(errors: &[ConfigError]) -> Vec<(&str, Option<usize>)> {
    errors.iter().map(|e| (e.key.as_str(), e.line)).collect()
}

fn tcp(host: &str, port: u16) -> BackendAddress {
    BackendAddress::Tcp {
        host: host.to_owned(),
        port,
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---- the shipped files ----

#[test]
fn example_config_parses() {
    let config = ok(EXAMPLE);
    assert_eq!(
        config.listen_addrs(),
        vec![addr("0.0.0.0:8080"), addr("[::]:8080")]
    );
    assert_eq!(config.document_root, "/var/www/app/public");
    assert_eq!(config.front_controller.as_deref(), Some("/index.php"));
    assert_eq!(config.max_body_size, 20 * 1024 * 1024);
    assert!(config.https);
    assert_eq!(
        config.params,
        vec![
            ("APP_ENV".to_owned(), "prod".to_owned()),
            ("APP_DEBUG".to_owned(), "0".to_owned())
        ]
    );
    let backends: Vec<(&str, String, u32, Option<u32>)> = config
        .backends
        .iter()
        .map(|b| {
            (
                b.name.as_str(),
                b.address.to_string(),
                b.weight,
                b.max_conns,
            )
        })
        .collect();
    assert_eq!(
        backends,
        vec![
            ("web01", "10.0.0.7:9000".to_owned(), 1, None),
            ("web02", "10.0.0.8:9000".to_owned(), 1, None),
            ("web03", "10.0.0.9:9000".to_owned(), 2, Some(32)),
        ]
    );
    assert_eq!(
        config.session,
        Some(SessionConfig {
            save_handler: "memcached".to_owned(),
            save_path: "10.0.0.51:11211".to_owned(),
        })
    );
    assert_eq!(config.health.ping_path.as_deref(), Some("/fpm-ping"));
    assert_eq!(config.health.status_path.as_deref(), Some("/fpm-status"));
    assert_eq!(
        config.health.probe_script.as_deref(),
        Some("/usr/share/fpmlb/probe.php")
    );
    assert_eq!(config.admin.listen, Some(addr("127.0.0.1:9180")));
    assert_eq!(config.timeouts.read, Duration::from_secs(120));
    assert_eq!(config.log.format, LogFormat::Json);
    // Each backend knows its line in the file.
    for backend in &config.backends {
        let line = EXAMPLE.lines().nth(backend.line - 1).unwrap();
        assert!(
            line.contains(&backend.name),
            "line {}: {line}",
            backend.line
        );
    }
}

#[test]
fn example_config_loads_from_disk() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/fpmlb.yaml");
    assert_eq!(Config::load(&path).unwrap(), ok(EXAMPLE));
}

/// A config file is read up to 4 MiB: a larger one is refused unread.
#[test]
fn a_huge_config_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let mut text = String::from("listen: \":80\"\n");
    while text.len() <= 4 * 1024 * 1024 {
        text.push_str("# padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&path, &text).unwrap();
    let errors = Config::load(&path).unwrap_err();
    assert!(
        errors.to_string().contains("larger than 4194304 bytes"),
        "{errors}"
    );
}

#[test]
fn load_error_names_the_path() {
    let path = PathBuf::from("/nonexistent/fpmlb-test.yaml");
    let errors = Config::load(&path).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].line, None);
    assert!(
        errors.to_string().contains("/nonexistent/fpmlb-test.yaml"),
        "{errors}"
    );
}

#[test]
fn default_config_parses_to_the_defaults() {
    let mut documented = ok(DEFAULT_CONFIG);
    let mut minimal = ok(MINIMAL);
    // Same backend, written on different lines.
    documented.backends[0].line = 0;
    minimal.backends[0].line = 0;
    assert_eq!(documented, minimal);
}

#[test]
fn default_config_has_one_comment_line_per_key() {
    let lines: Vec<&str> = DEFAULT_CONFIG.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let previous = lines[..i].last().map_or("", |l| l.trim_start());
        assert!(
            previous.starts_with('#'),
            "line {} has no comment above: {line}",
            i + 1
        );
    }
}

#[test]
fn default_config_lists_every_key() {
    let index = locate::KeyIndex::build(DEFAULT_CONFIG).unwrap();
    let keys = [
        "listen",
        "document_root",
        "index",
        "front_controller",
        "max_body_size",
        "body_buffer_size",
        "request_buffering",
        "request_temp_total",
        "response_buffering",
        "response_buffer_size",
        "response_max_temp_file",
        "response_temp_total",
        "max_request_line",
        "max_header_line",
        "max_header_size",
        "max_connections",
        "max_connections_per_client",
        "workers",
        "server_name",
        "https",
        "params",
        "balance",
        "max_fails",
        "fail_timeout",
        "queue_size",
        "resolve_interval",
        "timeouts.connect",
        "timeouts.send",
        "timeouts.read",
        "timeouts.queue",
        "timeouts.idle",
        "timeouts.client_header",
        "timeouts.client_body",
        "timeouts.client_send",
        "timeouts.client_idle",
        "timeouts.shutdown_grace",
        "log.level",
        "log.format",
        "log.access_log",
        "backends[0].name",
        "backends[0].address",
        "backends[0].weight",
        "backends[0].max_conns",
        "backends[0].group",
        "backends[0].backup",
        "static.root",
        "static.index",
        "static.allow_dotfiles",
        "static.precompressed",
        "static.cache_control",
        "error_pages",
        "locations",
        "session",
        "health.interval",
        "health.timeout",
        "health.rise",
        "health.fall",
        "health.ping_path",
        "health.ping_response",
        "health.status_path",
        "health.probe_script",
        "health.session_interval",
        "health.on_session_mismatch",
        "admin.listen",
        "admin.token",
        "tls",
        "real_ip.trusted_proxies",
        "real_ip.header",
        "compression.encodings",
        "compression.types",
        "compression.min_size",
        "compression.levels",
        "compression.max_memory",
        "admin.hosts",
    ];
    for key in keys {
        assert!(
            index.line_of(key).is_some(),
            "{key} missing in DEFAULT_CONFIG"
        );
    }
    // An unknown key in the raw structs would be rejected, so every documented key is real.
    ok(DEFAULT_CONFIG);
}

// ---- defaults ----

#[test]
fn every_default() {
    let c = ok(MINIMAL);
    assert_eq!(c.listen_addrs(), vec![addr("0.0.0.0:8080")]);
    assert_eq!(c.document_root, "/var/www/html");
    assert_eq!(c.index, "index.php");
    assert_eq!(c.front_controller, None);
    assert_eq!(c.max_body_size, 1024 * 1024);
    assert_eq!(c.body_buffer_size, 64 * 1024);
    assert!(c.request_buffering);
    assert!(c.response_buffering);
    assert_eq!(c.response_buffer_size, 1024 * 1024);
    assert_eq!(c.response_max_temp_file, 1024 * 1024 * 1024);
    assert_eq!(c.response_temp_total, 4 * 1024 * 1024 * 1024);
    assert_eq!(c.request_temp_total, 4 * 1024 * 1024 * 1024);
    assert_eq!(
        (c.max_request_line, c.max_header_line, c.max_header_size),
        (8 * 1024, 8 * 1024, 32 * 1024)
    );
    assert_eq!(
        (c.max_connections, c.max_connections_per_client),
        (16384, 256)
    );
    assert_eq!(c.workers, None, "one thread per core");
    assert_eq!(c.server_name, None);
    assert!(!c.https);
    assert!(c.params.is_empty());
    assert_eq!(c.balance, Balance::RoundRobin);
    assert_eq!(
        c.timeouts,
        Timeouts {
            connect: Duration::from_secs(5),
            send: Duration::from_secs(60),
            read: Duration::from_secs(60),
            queue: Duration::from_secs(10),
            idle: Duration::from_secs(5),
            client_header: Duration::from_secs(10),
            client_body: Duration::from_secs(60),
            client_send: Duration::from_secs(60),
            client_idle: Duration::from_secs(75),
            shutdown_grace: Duration::from_secs(30),
        }
    );
    assert_eq!(c.max_fails, 1);
    assert_eq!(c.fail_timeout, Duration::from_secs(10));
    assert_eq!(c.queue_size, 1024);
    assert_eq!(
        c.log,
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
            access_log: true,
        }
    );
    assert_eq!(
        c.backends,
        vec![BackendConfig {
            name: "local".to_owned(),
            address: tcp("127.0.0.1", 9000),
            weight: 1,
            max_conns: None,
            group: "main".to_owned(),
            backup: false,
            line: 4,
        }]
    );
    assert_eq!(c.resolve_interval, Duration::from_secs(30));
    assert_eq!(c.session, None);
    assert_eq!(
        c.health,
        HealthConfig {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 3,
            ping_path: None,
            ping_response: "pong".to_owned(),
            status_path: None,
            probe_script: None,
            session_interval: Duration::from_secs(30),
            on_session_mismatch: MismatchAction::Drain,
        }
    );
    assert_eq!(
        c.admin,
        AdminConfig {
            listen: Some(addr("127.0.0.1:9180")),
            token: None,
            hosts: Vec::new(),
        }
    );
    assert_eq!(c.tls, None);
    assert_eq!(c.real_ip, RealIpConfig::default());
    assert_eq!(c.compression, crate::config::CompressionConfig::default());
    assert_eq!(c.static_files, None);
    assert!(c.error_pages.is_empty() && c.locations.is_empty() && c.warnings.is_empty());
    assert!(
        c.listen
            .iter()
            .all(|l| !l.tls && !l.proxy_protocol && !l.redirect_https)
    );
    assert_eq!(DEFAULT_MAX_CONNS, 8);
    // The Default impls agree with the parsed defaults.
    assert_eq!(c.timeouts, Timeouts::default());
    assert_eq!(c.log, LogConfig::default());
    assert_eq!(c.health, HealthConfig::default());
    assert_eq!(c.admin, AdminConfig::default());
}

#[test]
fn empty_sections_and_nulls_give_defaults() {
    let c = ok(&with(&[
        "timeouts:",
        "health: ~",
        "log: {}",
        "params: ~",
        "front_controller: ~",
        "admin:",
        "  token: ~",
    ]));
    assert_eq!(c, ok(MINIMAL));
}

#[test]
fn all_keys_set() {
    let c = ok(&text(&[
        "listen: [\"127.0.0.1:8080\", \"[::1]:8081\"]",
        "document_root: /srv/app/",
        "index: app.php",
        "front_controller: /app.php",
        "max_body_size: 0",
        "body_buffer_size: 1M",
        "server_name: shop.example.com",
        "https: yes",
        "params: {B: 2, A: one, C: true}",
        "balance: least_busy",
        "max_fails: 0",
        "fail_timeout: 1m",
        "queue_size: 0",
        "resolve_interval: 5m",
        "timeouts: {connect: 250ms, send: 1, read: 2m30s, queue: 3s, idle: 4s,",
        "  client_header: 5s, client_body: 7s, client_send: 8s, client_idle: 6s, shutdown_grace: 0}",
        "log: {level: \"info,fpmlb=debug\", format: json, access_log: off}",
        "backends:",
        "- name: a",
        "  address: unix:/run/php/php8.2-fpm.sock",
        "  weight: 1000",
        "  max_conns: 16",
        "session: {save_handler: files, save_path: \"\"}",
        "health:",
        "  interval: 1s",
        "  timeout: 500ms",
        "  rise: 1",
        "  fall: 1",
        "  ping_path: /ping",
        "  ping_response: ok",
        "  status_path: /status",
        "  probe_script: /opt/probe.php",
        "  session_interval: 1h",
        "  on_session_mismatch: warn",
        "admin:",
        "  listen: off",
        "  token: s3cret",
        "  hosts: [Fpmlb.Internal, lb-1]",
        "request_buffering: off",
        "request_temp_total: 2g",
        "response_buffering: off",
        "response_buffer_size: 64k",
        "response_max_temp_file: 0",
        "response_temp_total: 10g",
        "max_request_line: 4k",
        "max_header_line: 16k",
        "max_header_size: 64k",
        "max_connections: 100",
        "max_connections_per_client: 0",
        "workers: 1",
    ]));
    assert_eq!(
        c.listen_addrs(),
        vec![addr("127.0.0.1:8080"), addr("[::1]:8081")]
    );
    assert_eq!(c.document_root, "/srv/app");
    assert_eq!(c.index, "app.php");
    assert_eq!(c.front_controller.as_deref(), Some("/app.php"));
    assert_eq!(c.max_body_size, 0);
    assert_eq!(c.body_buffer_size, 1 << 20);
    assert_eq!(c.server_name.as_deref(), Some("shop.example.com"));
    assert!(c.https);
    let params: Vec<(&str, &str)> = c
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(params, vec![("B", "2"), ("A", "one"), ("C", "true")]);
    assert_eq!(c.balance, Balance::LeastBusy);
    assert_eq!(c.max_fails, 0);
    assert_eq!(c.fail_timeout, Duration::from_secs(60));
    assert_eq!(c.queue_size, 0);
    assert_eq!(c.resolve_interval, Duration::from_secs(300));
    assert_eq!(
        c.timeouts,
        Timeouts {
            connect: Duration::from_millis(250),
            send: Duration::from_secs(1),
            read: Duration::from_secs(150),
            queue: Duration::from_secs(3),
            idle: Duration::from_secs(4),
            client_header: Duration::from_secs(5),
            client_body: Duration::from_secs(7),
            client_send: Duration::from_secs(8),
            client_idle: Duration::from_secs(6),
            shutdown_grace: Duration::ZERO,
        }
    );
    assert_eq!(c.log.level, "info,fpmlb=debug");
    assert_eq!(c.log.format, LogFormat::Json);
    assert!(!c.log.access_log);
    assert_eq!(
        c.backends,
        vec![BackendConfig {
            name: "a".to_owned(),
            address: BackendAddress::Unix(PathBuf::from("/run/php/php8.2-fpm.sock")),
            weight: 1000,
            max_conns: Some(16),
            group: "main".to_owned(),
            backup: false,
            line: 19,
        }]
    );
    assert_eq!(
        c.session,
        Some(SessionConfig {
            save_handler: "files".to_owned(),
            save_path: String::new(),
        })
    );
    assert_eq!(
        c.health,
        HealthConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            rise: 1,
            fall: 1,
            ping_path: Some("/ping".to_owned()),
            ping_response: "ok".to_owned(),
            status_path: Some("/status".to_owned()),
            probe_script: Some("/opt/probe.php".to_owned()),
            session_interval: Duration::from_secs(3600),
            on_session_mismatch: MismatchAction::Warn,
        }
    );
    assert_eq!(
        c.admin,
        AdminConfig {
            listen: None,
            token: Some("s3cret".to_owned()),
            hosts: vec!["fpmlb.internal".to_owned(), "lb-1".to_owned()],
        }
    );
    assert!(!c.request_buffering);
    assert!(!c.response_buffering);
    assert_eq!(c.response_buffer_size, 64 * 1024);
    assert_eq!(c.response_max_temp_file, 0);
    assert_eq!(c.response_temp_total, 10 << 30);
    assert_eq!(c.request_temp_total, 2 << 30);
    assert_eq!(
        (c.max_request_line, c.max_header_line, c.max_header_size),
        (4096, 16 * 1024, 64 * 1024)
    );
    assert_eq!((c.max_connections, c.max_connections_per_client), (100, 0));
    assert_eq!(c.workers, Some(1));
}

// ---- listen ----

#[test]
fn listen_as_string_or_list() {
    let one = ok(MINIMAL);
    let list = ok(&MINIMAL.replace("listen: \":8080\"", "listen:\n  - \":8080\""));
    assert_eq!(one.listen, list.listen);
    let port = ok(&MINIMAL.replace("listen: \":8080\"", "listen: 8080"));
    assert_eq!(port.listen_addrs(), vec![addr("0.0.0.0:8080")]);
    let many = ok(&MINIMAL.replace(
        "listen: \":8080\"",
        "listen: [\"10.0.0.1:80\", \"[::]:80\", \"*:81\"]",
    ));
    assert_eq!(
        many.listen_addrs(),
        vec![addr("10.0.0.1:80"), addr("[::]:80"), addr("0.0.0.0:81")]
    );
}

#[test]
fn listen_errors() {
    single_error(
        &MINIMAL.replace("listen: \":8080\"", "listen: []"),
        "listen",
        Some(1),
        "at least one address",
    );
    single_error(
        &MINIMAL.replace("listen: \":8080\"", "listen: localhost:80"),
        "listen",
        Some(1),
        "invalid listen address \"localhost:80\"",
    );
    let yaml = MINIMAL.replace(
        "listen: \":8080\"",
        "listen:\n  - \":80\"\n  - \"1.2.3.4\"\n  - \"0.0.0.0:80\"",
    );
    let errors = errors(&yaml);
    assert_eq!(
        keys_and_lines(&errors),
        vec![("listen[1]", Some(3)), ("listen[2]", Some(4))]
    );
    assert!(errors[1].message.contains("listed twice"), "{}", errors[1]);
}

#[test]
fn missing_required_keys_are_all_reported() {
    let errors = errors("");
    assert_eq!(
        keys_and_lines(&errors),
        vec![
            ("listen", None),
            ("document_root", None),
            ("backends", None)
        ]
    );
    assert!(errors.iter().all(|e| e.message == "missing required key"));
    let errors = self::errors("# nothing but a comment\n");
    assert_eq!(errors.len(), 3);
    let errors = self::errors(
        "listen: \":80\"\ndocument_root: ~\nbackends:\n  - name:\n    address: 1.2.3.4:9000\n",
    );
    assert_eq!(
        keys_and_lines(&errors),
        vec![("document_root", Some(2)), ("backends[0].name", Some(4))]
    );
    assert!(errors.iter().all(|e| e.message == "needs a value"));
}

// ---- document root, scripts, params ----

#[test]
fn document_root_rules() {
    single_error(
        &MINIMAL.replace("/var/www/html", "var/www"),
        "document_root",
        Some(2),
        "absolute",
    );
    assert_eq!(
        ok(&MINIMAL.replace("/var/www/html", "/var/www//")).document_root,
        "/var/www"
    );
    assert_eq!(
        ok(&MINIMAL.replace("/var/www/html", "/")).document_root,
        "/"
    );
}

#[test]
fn front_controller_rules() {
    for bad in ["index.php", "/index.html", "/.php", "/../index.php"] {
        single_error(
            &with(&[&format!("front_controller: \"{bad}\"")]),
            "front_controller",
            Some(6),
            "starting with '/' and ending in \".php\"",
        );
    }
    assert_eq!(
        ok(&with(&["front_controller: /public/index.php"]))
            .front_controller
            .as_deref(),
        Some("/public/index.php")
    );
}

#[test]
fn index_server_name_rules() {
    single_error(
        &with(&["index: a/index.php"]),
        "index",
        Some(6),
        "file name",
    );
    single_error(&with(&["index: \"\""]), "index", Some(6), "file name");
    for not_a_script in ["..", "index.txt", ".php", "index.phtml"] {
        single_error(
            &with(&[&format!("index: \"{not_a_script}\"")]),
            "index",
            Some(6),
            "PHP script",
        );
    }
    single_error(
        &with(&["server_name: \" \""]),
        "server_name",
        Some(6),
        "non-empty",
    );
}

#[test]
fn params_rules() {
    let errors = errors(&with(&[
        "params:",
        "  GOOD: 1",
        "  \"A=B\": x",
        "  \"\": y",
        "  \"C\": \"a\\0b\"",
    ]));
    assert_eq!(
        keys_and_lines(&errors),
        vec![
            ("params.A=B", Some(8)),
            ("params.", Some(9)),
            ("params.C", Some(10))
        ]
    );
    assert!(errors[0].message.contains("invalid parameter name \"A=B\""));
    assert!(errors[2].message.contains("NUL"));
}

// ---- sizes and durations in context ----

#[test]
fn size_and_duration_keys() {
    single_error(
        &with(&["max_body_size: 1x"]),
        "max_body_size",
        Some(6),
        "invalid size \"1x\"",
    );
    single_error(
        &with(&["body_buffer_size: 0"]),
        "body_buffer_size",
        Some(6),
        "greater than 0",
    );
    single_error(
        &with(&["response_buffer_size: 65m"]),
        "response_buffer_size",
        Some(6),
        "must be 1 to 67108864 bytes",
    );
    single_error(
        &with(&["fail_timeout: 10 seconds"]),
        "fail_timeout",
        Some(6),
        "invalid duration",
    );
    single_error(
        &with(&["resolve_interval: 0s"]),
        "resolve_interval",
        Some(6),
        "greater than 0",
    );
    let c = ok(&with(&[
        "max_body_size: 100",
        "timeouts:",
        "  read: 90",
        "  shutdown_grace: 0s",
    ]));
    assert_eq!(c.max_body_size, 100);
    assert_eq!(c.timeouts.read, Duration::from_secs(90));
    assert_eq!(c.timeouts.shutdown_grace, Duration::ZERO);
}

#[test]
fn zero_durations_are_rejected_where_meaningless() {
    let errors = errors(&with(&[
        "timeouts:",
        "  connect: 0",
        "  send: 0s",
        "  read: 0ms",
        "  queue: 0",
        "  idle: 0",
        "  client_header: 0",
        "  client_idle: 0",
        "  shutdown_grace: 0",
        "  client_body: 0",
        "  client_send: 0",
        "health:",
        "  interval: 0",
        "  timeout: 0",
        "  session_interval: 0",
    ]));
    assert_eq!(
        keys_and_lines(&errors),
        vec![
            ("timeouts.connect", Some(7)),
            ("timeouts.send", Some(8)),
            ("timeouts.read", Some(9)),
            ("timeouts.queue", Some(10)),
            ("timeouts.idle", Some(11)),
            ("timeouts.client_header", Some(12)),
            ("timeouts.client_idle", Some(13)),
            ("timeouts.client_body", Some(15)),
            ("timeouts.client_send", Some(16)),
            ("health.interval", Some(18)),
            ("health.timeout", Some(19)),
            ("health.session_interval", Some(20)),
        ]
    );
}

// ---- backends ----

#[test]
fn backend_addresses() {
    let c = ok(&text(&[
        "listen: \":80\"",
        "document_root: /app",
        "backends:",
        "  - name: v4",
        "    address: 10.0.0.7:9000",
        "  - name: v6",
        "    address: \"[::1]:9000\"",
        "  - name: host",
        "    address: php.internal:9000",
        "  - name: sock",
        "    address: unix:/run/php/php8.2-fpm.sock",
    ]));
    let addresses: Vec<&BackendAddress> = c.backends.iter().map(|b| &b.address).collect();
    assert_eq!(
        addresses,
        vec![
            &tcp("10.0.0.7", 9000),
            &tcp("::1", 9000),
            &tcp("php.internal", 9000),
            &BackendAddress::Unix(PathBuf::from("/run/php/php8.2-fpm.sock")),
        ]
    );
    let lines: Vec<usize> = c.backends.iter().map(|b| b.line).collect();
    assert_eq!(lines, vec![4, 6, 8, 10]);
}

#[test]
fn backend_address_parse_and_display() {
    for good in [
        "10.0.0.7:9000",
        "[::1]:9000",
        "[fe80::1]:1",
        "php.internal:9000",
        "php-1_a.example.com.:65535",
        "unix:/run/php/php8.2-fpm.sock",
    ] {
        let parsed: BackendAddress = good.parse().unwrap();
        assert_eq!(parsed.to_string(), good);
    }
    for (bad, why) in [
        ("10.0.0.7", "expected host:port or unix:/path"),
        ("", "expected host:port or unix:/path"),
        ("10.0.0.7:0", "port must be 1 to 65535"),
        ("10.0.0.7:65536", "port must be 1 to 65535"),
        ("10.0.0.7:+80", "port must be 1 to 65535"),
        ("10.0.0.7:", "port must be 1 to 65535"),
        (":9000", "missing host"),
        ("::1:9000", "IPv6 addresses need brackets"),
        ("[::1]9000", "expected [ipv6]:port"),
        ("[10.0.0.1]:9000", "is not an IPv6 address"),
        ("10.0.0.700:9000", "not a valid IPv4 address"),
        ("bad host:9000", "not a valid hostname"),
        ("a..b:9000", "not a valid hostname"),
        ("unix:run/php.sock", "must be absolute"),
        ("unix:", "must be absolute"),
    ] {
        let err = bad.parse::<BackendAddress>().unwrap_err();
        assert!(
            err.starts_with(&format!("invalid address {bad:?}: ")) && err.contains(why),
            "{bad}: {err}"
        );
    }
}

#[test]
fn backend_rules_each_with_key_and_line() {
    let yaml = text(&[
        "listen: \":80\"",             // 1
        "document_root: /app",         // 2
        "backends:",                   // 3
        "  - name: web01",             // 4
        "    address: 10.0.0.7:9000",  // 5
        "  - name: web01",             // 6
        "    address: 10.0.0.7",       // 7
        "    weight: 0",               // 8
        "  - name: \"web 3\"",         // 9
        "    address: 10.0.0.9:9000",  // 10
        "    weight: 1001",            // 11
        "    max_conns: 0",            // 12
        "  - address: 10.0.0.10:9000", // 13
        "  - name: web05",             // 14
    ]);
    let errors = errors(&yaml);
    assert_eq!(
        keys_and_lines(&errors),
        vec![
            ("backends[1].name", Some(6)),
            ("backends[1].address", Some(7)),
            ("backends[1].weight", Some(8)),
            ("backends[2].name", Some(9)),
            ("backends[2].weight", Some(11)),
            ("backends[2].max_conns", Some(12)),
            ("backends[3].name", Some(13)),
            ("backends[4].address", Some(14)),
        ]
    );
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages[0],
        "line 6: backends[1].name: duplicate backend name \"web01\" (first on line 4)"
    );
    assert_eq!(
        messages[1],
        "line 7: backends[1].address: invalid address \"10.0.0.7\": expected host:port or unix:/path"
    );
    assert_eq!(
        messages[2],
        "line 8: backends[1].weight: must be 1 to 1000, got 0"
    );
    assert!(messages[3].contains("invalid name \"web 3\""));
    assert!(messages[4].contains("got 1001"));
    assert!(messages[5].contains("at least 1"));
    assert_eq!(
        messages[6],
        "line 13: backends[3].name: missing required key"
    );
    assert_eq!(
        messages[7],
        "line 14: backends[4].address: missing required key"
    );
}

#[test]
fn two_bad_backends_give_two_errors() {
    let yaml = text(&[
        "listen: \":80\"",
        "document_root: /app",
        "backends:",
        "  - name: a",
        "    address: nowhere",
        "  - name: b",
        "    address: unix:relative.sock",
    ]);
    let errors = errors(&yaml);
    assert_eq!(
        keys_and_lines(&errors),
        vec![
            ("backends[0].address", Some(5)),
            ("backends[1].address", Some(7))
        ]
    );
}

#[test]
fn empty_backends() {
    single_error(
        &MINIMAL.replace(
            "backends:\n  - name: local\n    address: 127.0.0.1:9000\n",
            "backends: []\n",
        ),
        "backends",
        Some(3),
        "at least one backend",
    );
}

// ---- session, health, admin ----

#[test]
fn session_rules() {
    let errors = errors(&with(&["session:", "  save_path: 10.0.0.51:11211"]));
    assert_eq!(
        keys_and_lines(&errors),
        vec![("session.save_handler", Some(6))]
    );
    single_error(
        &with(&["session:", "  save_handler: \"\"", "  save_path: x"]),
        "session.save_handler",
        Some(7),
        "must not be empty",
    );
    single_error(
        &with(&["session:", "  save_handler: files"]),
        "session.save_path",
        Some(6),
        "missing required key",
    );
}

#[test]
fn session_save_path_is_parsed_like_the_checker() {
    // The example: a URL where php-memcached wants host:port.
    let error = single_error(
        &with(&["session: {save_handler: memcached, save_path: \"tcp://\"}"]),
        "session.save_path",
        Some(6),
        "not a URL",
    );
    assert_eq!(
        error.to_string(),
        "line 6: session.save_path: memcached: 'tcp://': php-memcached takes host:port or \
         /path/to.sock, not a URL (it would look for a host named 'tcp')"
    );
    single_error(
        &with(&["session:", "  save_handler: redis", "  save_path: \"\""]),
        "session.save_path",
        Some(8),
        "no server in save_path",
    );
    // Credentials stay out of the message.
    let error = single_error(
        &with(&[
            "session:",
            "  save_handler: Redis",
            "  save_path: \"tcp://10.0.0.5:99999?auth=hunter2\"",
        ]),
        "session.save_path",
        Some(8),
        "out of range",
    );
    assert!(!error.message.contains("hunter2"), "{error}");
    for (handler, path) in [
        ("memcached", "10.0.0.51:11211, 10.0.0.52:11211"),
        ("memcache", "tcp://10.0.0.51:11211?weight=2"),
        ("redis", "tcp://10.0.0.5:6379?auth=s3cret&database=2"),
        ("rediscluster", "seed[]=10.0.0.5:7000&seed[]=10.0.0.6:7000"),
        ("files", "/var/lib/php/sessions"),
        ("user", ""),
    ] {
        let yaml = with(&[&format!(
            "session: {{save_handler: {handler}, save_path: \"{path}\"}}"
        )]);
        let c = Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        assert_eq!(c.session.map(|s| s.save_path).as_deref(), Some(path));
    }
}

#[test]
fn health_rules() {
    let errors = errors(&with(&[
        "health:",                       // 6
        "  rise: 0",                     // 7
        "  fall: 0",                     // 8
        "  ping_path: fpm-ping",         // 9
        "  ping_response: \"\"",         // 10
        "  status_path: \"fpm status\"", // 11
        "  probe_script: probe.php",     // 12
    ]));
    assert_eq!(
        keys_and_lines(&errors),
        vec![
            ("health.rise", Some(7)),
            ("health.fall", Some(8)),
            ("health.ping_path", Some(9)),
            ("health.ping_response", Some(10)),
            ("health.status_path", Some(11)),
            ("health.probe_script", Some(12)),
        ]
    );
    assert!(errors[2].message.contains("starting with '/'"));
    assert!(errors[5].message.contains("absolute path"));
}

#[test]
fn admin_rules() {
    assert_eq!(ok(&with(&["admin:", "  listen: off"])).admin.listen, None);
    assert_eq!(ok(&with(&["admin:", "  listen: ~"])).admin.listen, None);
    assert_eq!(ok(&with(&["admin:", "  listen:"])).admin.listen, None);
    assert_eq!(
        ok(&with(&["admin:", "  listen: \"[::1]:9999\""]))
            .admin
            .listen,
        Some(addr("[::1]:9999"))
    );
    single_error(
        &with(&["admin:", "  token: \"\""]),
        "admin.token",
        Some(7),
        "must not be empty",
    );
    single_error(
        &with(&["admin:", "  listen: nowhere"]),
        "admin.listen",
        Some(7),
        "invalid listen address \"nowhere\"",
    );
    single_error(
        &with(&["admin:", "  listen: 0.0.0.0:8080", "  token: t"]),
        "admin.listen",
        Some(7),
        "also in listen",
    );
}

#[test]
fn admin_off_loopback_needs_a_token() {
    single_error(
        &with(&["admin:", "  listen: 0.0.0.0:9180"]),
        "admin.token",
        Some(7),
        "required when admin.listen (0.0.0.0:9180) is not a loopback address",
    );
    single_error(
        &with(&["admin:", "  listen: \"10.0.0.5:9180\"", "  token: ~"]),
        "admin.token",
        Some(8),
        "required when admin.listen",
    );
    let c = ok(&with(&[
        "admin:",
        "  listen: 10.0.0.5:9180",
        "  token: s3cret",
    ]));
    assert_eq!(c.admin.token.as_deref(), Some("s3cret"));
    // Loopback, IPv4 or IPv6: no token needed.
    ok(&with(&["admin:", "  listen: 127.0.0.2:9180"]));
    ok(&with(&["admin:", "  listen: \"[::1]:9180\""]));
    single_error(
        &with(&["admin:", "  hosts: [ok.example, \"bad host:80\"]"]),
        "admin.hosts[1]",
        Some(7),
        "must be a host name without port",
    );
}

#[test]
fn head_limits_keep_every_param_in_one_record() {
    single_error(
        &with(&["max_header_line: 64k"]),
        "max_header_line",
        Some(6),
        "must be 1 to 61440 bytes (60k)",
    );
    single_error(
        &with(&["max_request_line: 0"]),
        "max_request_line",
        Some(6),
        "must be 1 to 61440 bytes",
    );
    single_error(
        &with(&["max_header_size: 2m"]),
        "max_header_size",
        Some(6),
        "must be 1 to 1048576 bytes",
    );
    single_error(
        &with(&["max_header_size: 4k"]),
        "max_header_size",
        Some(6),
        "must be at least max_request_line and max_header_line (8192 bytes)",
    );
    single_error(
        &with(&["workers: 0"]),
        "workers",
        Some(6),
        "must be auto or 1 to 1024, got \"0\"",
    );
    single_error(
        &with(&["max_connections: 0"]),
        "max_connections",
        Some(6),
        "must be 1 to 1048576",
    );
    single_error(
        &with(&[&format!("params: {{BIG: {}}}", "x".repeat(65_530))]),
        "params.BIG",
        Some(6),
        "must fit one FastCGI record",
    );
    single_error(
        &text(&[
            "listen: \":80\"",
            &format!("document_root: /{}", "d".repeat(4096)),
            "backends: [{name: a, address: \"127.0.0.1:9000\"}]",
        ]),
        "document_root",
        Some(2),
        "at most 4096 bytes",
    );
    let c = ok(&with(&[
        "max_request_line: 60k",
        "max_header_line: 2k",
        "max_header_size: 60k",
    ]));
    assert_eq!(c.max_request_line, 60 * 1024);
}

// ---- YAML-level errors: unknown keys, types, syntax ----

#[test]
fn unknown_top_level_key() {
    let e = single_error(
        &with(&["", "listne: \":80\""]),
        "listne",
        Some(7),
        "unknown key \"listne\"",
    );
    assert!(e.message.contains("did you mean \"listen\"?"), "{e}");
}

#[test]
fn unknown_nested_key() {
    let e = single_error(
        &with(&["health:", "  interval: 5s", "  intervall: 3s"]),
        "health.intervall",
        Some(8),
        "unknown key \"intervall\", did you mean \"interval\"?",
    );
    assert_eq!(
        e.message,
        "unknown key \"intervall\", did you mean \"interval\"?"
    );
    let e = single_error(
        &with(&["health:", "  pause: 5s"]),
        "health.pause",
        Some(7),
        "unknown key \"pause\"",
    );
    assert!(
        e.message.ends_with("(known keys: interval, timeout, rise, fall, ping_path, ping_response, status_path, probe_script, session_interval, on_session_mismatch)"),
        "{e}"
    );
    single_error(
        &MINIMAL.replace(
            "    address: 127.0.0.1:9000",
            "    address: 127.0.0.1:9000\n    wieght: 2",
        ),
        "backends[0].wieght",
        Some(6),
        "unknown key \"wieght\"",
    );
    single_error(
        &with(&["timeouts: {read: 5s, writ: 5s}"]),
        "timeouts.writ",
        Some(6),
        "unknown key",
    );
}

#[test]
fn wrong_types_name_key_and_line() {
    single_error(
        &MINIMAL.replace(
            "    address: 127.0.0.1:9000",
            "    address: 127.0.0.1:9000\n    weight: heavy",
        ),
        "backends[0].weight",
        Some(6),
        "invalid value \"heavy\"",
    );
    single_error(&with(&["https: maybe"]), "https", Some(6), "true or false");
    single_error(
        &with(&["max_fails: -1"]),
        "max_fails",
        Some(6),
        "invalid value \"-1\"",
    );
    single_error(
        &with(&["balance: random"]),
        "balance",
        Some(6),
        "round_robin, least_conn, least_busy",
    );
    single_error(
        &with(&["log:", "  format: xml"]),
        "log.format",
        Some(7),
        "text, json",
    );
    single_error(&with(&["health: 5"]), "health", Some(6), "mapping");
    single_error(&with(&["params: [a, b]"]), "params", Some(6), "mapping");
    single_error(
        &with(&["server_name: [a]"]),
        "server_name",
        Some(6),
        "single value",
    );
    single_error(&with(&["params:", "  X: ~"]), "params.X", Some(7), "null");
    single_error("- a\n", "", Some(1), "mapping");
}

#[test]
fn duplicate_key() {
    single_error(
        &with(&["index: a.php", "index: b.php"]),
        "index",
        Some(7),
        "duplicate key",
    );
}

#[test]
fn yaml_syntax_errors_give_line() {
    single_error(&with(&["params: {a: 1"]), "params", Some(6), "YAML error");
    let yaml = text(&[
        "listen: \":80\"",
        "document_root: /app",
        "backends:",
        "  - name: a",
        "    address: 10.0.0.7:9000",
        "  name: b",
    ]);
    let errors = errors(&yaml);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, Some(6));
    assert!(
        errors[0].message.starts_with("YAML error: "),
        "{}",
        errors[0]
    );
    assert!(errors[0].message.contains("column"), "{}", errors[0]);
}

#[test]
fn multiple_documents_rejected() {
    single_error(
        &format!("{MINIMAL}---\n{MINIMAL}"),
        "",
        Some(7),
        "only one YAML document",
    );
}

#[test]
fn errors_display_one_per_line() {
    let errors =
        Config::from_yaml(&with(&["index: \"\"", "https: true", "server_name: \"\""])).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "line 6: index: must be a PHP script's file name such as index.php, got \"\"\n\
         line 8: server_name: must be a non-empty name without control characters, got \"\""
    );
    let bare = ConfigError {
        key: String::new(),
        line: None,
        message: "boom".to_owned(),
    };
    assert_eq!(bare.to_string(), "boom");
}

#[test]
fn path_at_line_follows_indentation() {
    let yaml = text(&[
        "listen: \":80\"",    // 1
        "backends:",          // 2
        "  # comment",        // 3
        "  - name: a",        // 4
        "    address: x",     // 5
        "",                   // 6
        "  - name: b",        // 7
        "    address: y",     // 8
        "health:",            // 9
        "  \"interval\": 5s", // 10
        "list:",              // 11
        "- - deep: 1",        // 12
        "  - deeper: 2",      // 13
    ]);
    let expected = [
        (1, "listen"),
        (2, "backends"),
        (3, "backends"),
        (4, "backends[0].name"),
        (5, "backends[0].address"),
        (6, "backends[0].address"),
        (7, "backends[1].name"),
        (8, "backends[1].address"),
        (9, "health"),
        (10, "health.interval"),
        (12, "list[0][0].deep"),
        (13, "list[0][1].deeper"),
    ];
    for (line, path) in expected {
        assert_eq!(path_at_line(&yaml, line), path, "line {line}");
    }
    assert_eq!(path_at_line("a:\n\t- b: 1\n", 2), "a");
    assert_eq!(path_at_line("a: 1\n---\nb: 2\n", 2), "");
    assert_eq!(path_at_line("a: 1\n", 99), "a");
    assert_eq!(path_at_line("", 1), "");
}

// ---- value parsers ----

#[test]
fn parse_duration_table() {
    let ms = Duration::from_millis;
    let s = Duration::from_secs;
    for (input, expected) in [
        ("5s", s(5)),
        ("250ms", ms(250)),
        ("1m", s(60)),
        ("1h", s(3600)),
        ("2m30s", s(150)),
        ("1h 30m", s(5400)),
        ("1d", s(86_400)),
        ("1w", s(604_800)),
        ("1M", s(30 * 86_400)),
        ("1y", s(365 * 86_400)),
        ("1m500ms", ms(60_500)),
        ("0", Duration::ZERO),
        ("0s", Duration::ZERO),
        ("30", s(30)),
        (" 5s ", s(5)),
        // The longest a config may give.
        ("3153600000", s(3_153_600_000)),
        ("100y", s(3_153_600_000)),
    ] {
        assert_eq!(parse_duration(input), Ok(expected), "{input:?}");
    }
    for (input, why) in [
        ("", "empty"),
        ("   ", "empty"),
        ("s", "expected a number"),
        ("-5s", "expected a number"),
        ("1.5s", "missing unit after 1"),
        ("5x", "unknown unit \"x\""),
        ("5S", "unknown unit \"S\""),
        ("5sec", "unknown unit \"sec\""),
        ("30s2m", "largest first"),
        ("1s1s", "largest first"),
        ("1m 30", "missing unit after 30"),
        ("18446744073709551616", "too large"),
        ("18446744073709551615s", "too large"),
        ("99999999999999999999ms", "too large"),
        ("584942418y", "too large"),
        // Past the clock's range as a deadline (`Instant` + it panics).
        ("10000000000000000000", "too large"),
        ("101y", "too large"),
        ("3153600001", "too large"),
        ("5 s", "missing unit"),
    ] {
        let err = parse_duration(input).unwrap_err();
        assert!(
            err.starts_with(&format!("invalid duration {input:?}: ")) && err.contains(why),
            "{input:?}: {err}"
        );
    }
}

#[test]
fn parse_size_table() {
    for (input, expected) in [
        ("100", 100),
        ("0", 0),
        ("512k", 512 * 1024),
        ("512K", 512 * 1024),
        ("1m", 1 << 20),
        ("1M", 1 << 20),
        ("1g", 1 << 30),
        ("1G", 1 << 30),
        (" 2m ", 2 << 20),
        ("16777215g", 16_777_215 << 30),
        ("18446744073709551615", u64::MAX),
    ] {
        assert_eq!(parse_size(input), Ok(expected), "{input:?}");
    }
    for (input, why) in [
        ("", "expected a number"),
        ("k", "expected a number"),
        ("1.5m", "expected a number"),
        ("-1", "expected a number"),
        ("+1", "expected a number"),
        ("1mb", "expected a number"),
        ("1t", "expected a number"),
        ("1 k", "expected a number"),
        ("17179869184g", "too large"),
        ("18446744073709551616", "too large"),
    ] {
        let err = parse_size(input).unwrap_err();
        assert!(
            err.starts_with(&format!("invalid size {input:?}: ")) && err.contains(why),
            "{input:?}: {err}"
        );
    }
}

#[test]
fn parse_listen_table() {
    for (input, expected) in [
        (":8080", "0.0.0.0:8080"),
        ("*:8080", "0.0.0.0:8080"),
        ("8080", "0.0.0.0:8080"),
        ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("[::1]:8080", "[::1]:8080"),
        ("[::]:0", "[::]:0"),
    ] {
        assert_eq!(parse_listen(input), Ok(addr(expected)), "{input:?}");
    }
    for input in [
        "",
        ":",
        ":65536",
        "localhost:80",
        "::1:80",
        "1.2.3.4",
        "1.2.3.4:x",
    ] {
        assert!(parse_listen(input).is_err(), "{input:?}");
    }
}

#[test]
fn enum_names() {
    assert_eq!(Balance::LeastConn.to_string(), "least_conn");
    assert_eq!(LogFormat::Json.to_string(), "json");
    assert_eq!(MismatchAction::Warn.to_string(), "warn");
}
