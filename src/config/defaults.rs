//! Every default value of the configuration, in one place, each with the reason for its value.
//!
//! The validation layer (`validate.rs`) falls back to these constants for keys the operator
//! left out, and [`DEFAULT_CONFIG`] documents the same values for `fpmlb config print-default`.
//! A test checks that [`DEFAULT_CONFIG`] parses to exactly these values, so the two cannot drift.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use super::{AcmeChallenge, Balance, Encoding, Levels, LogFormat, MismatchAction, RealIpHeader};

/// `index`: the script appended to a request path ending in `/`, like nginx's `fastcgi_index`.
pub const INDEX: &str = "index.php";

/// How long a static path's lookup is trusted (`static.open_file_cache.valid`):
/// a switched root link is followed within this (a held file is `fstat`ed on
/// each request: changed, replaced or deleted, it is looked up at once).
pub const OPEN_FILE_CACHE_VALID: Duration = Duration::from_secs(1);

/// The most `static.open_file_cache.valid` may be: nginx's default (60 s).
pub const OPEN_FILE_CACHE_VALID_LIMIT: Duration = Duration::from_secs(60);

/// Paths a root's open file cache holds (`static.open_file_cache.max`);
/// also at most a quarter of the open file limit.
pub const OPEN_FILE_CACHE_MAX: usize = 1000;

/// The most `static.open_file_cache.max` may be.
pub const OPEN_FILE_CACHE_MAX_LIMIT: usize = 100_000;

/// `max_body_size`: 1 MiB, nginx's `client_max_body_size` default; `0` means unlimited.
pub const MAX_BODY_SIZE: u64 = 1024 * 1024;

/// `body_buffer_size`: 64 KiB keeps typical form posts in memory while large or chunked
/// uploads spill to a temporary file (nginx uses 8k/16k; memory is cheaper today).
pub const BODY_BUFFER_SIZE: usize = 64 * 1024;

/// `request_buffering`: on, as nginx's `fastcgi_request_buffering`: the whole body is read
/// (memory, then a temp file) before a php-fpm worker is taken, so a slow upload holds a
/// connection of fpmlb's, never a worker.
pub const REQUEST_BUFFERING: bool = true;

/// `response_buffering`: on, as nginx's `fastcgi_buffering`: PHP's response is read ahead
/// of a slow client (memory, then a temp file), so the php-fpm worker is free when the
/// script ends, not when the client has read it all.
pub const RESPONSE_BUFFERING: bool = true;

/// `response_buffer_size`: 1 MiB of one response in memory ahead of its client: a whole
/// PHP page, nearly always, with no temp file. nginx holds 32-64 KiB before its temp
/// file; with all responses sharing [`RESPONSE_MEMORY`], memory stays bounded whatever
/// this is.
pub const RESPONSE_BUFFER_SIZE: usize = 1024 * 1024;

/// All responses together hold at most this much in memory ahead of their clients
/// (beyond it, their temp files); and the most `response_buffer_size` may be.
pub const RESPONSE_MEMORY: usize = 64 * 1024 * 1024;

/// `response_max_temp_file`: 1 GiB of one response in its temp file, nginx's
/// `fastcgi_max_temp_file_size` default; beyond it PHP waits for the client.
pub const RESPONSE_MAX_TEMP_FILE: u64 = 1024 * 1024 * 1024;

/// `response_temp_total`: 4 GiB in the temp files of all responses together: /tmp may be
/// a tmpfs (Debian 13's default), so this is memory too; past it, PHP waits for clients.
pub const RESPONSE_TEMP_TOTAL: u64 = 4 * 1024 * 1024 * 1024;

/// `request_temp_total`: 4 GiB in the temp files of all request bodies together (a tmpfs
/// is memory); past it, a body that needs a temp file gets 503. nginx has no such bound.
pub const REQUEST_TEMP_TOTAL: u64 = 4 * 1024 * 1024 * 1024;

/// `max_request_line`: nginx's `large_client_header_buffers 4 8k`: a request line must fit
/// one 8 KiB buffer (414 beyond).
pub const MAX_REQUEST_LINE: usize = 8 * 1024;

/// `max_header_line`: one header line (name, `: `, value), nginx's 8 KiB buffer (431 beyond).
pub const MAX_HEADER_LINE: usize = 8 * 1024;

/// `max_header_size`: the whole head, request line included: nginx's four 8 KiB buffers.
pub const MAX_HEADER_SIZE: usize = 32 * 1024;

/// Largest `max_request_line` and `max_header_line` accepted: a FastCGI name-value pair must
/// fit one PARAMS record (65,535 bytes with its length prefix). 60 KiB leaves room for
/// `HTTP_`, the prefix and a `document_root` in front of the path in SCRIPT_FILENAME.
pub const MAX_LINE_LIMIT: usize = 60 * 1024;

/// Longest `document_root`: PATH_MAX on Linux. With a path of at most `MAX_LINE_LIMIT`,
/// SCRIPT_FILENAME then fits one PARAMS record.
pub const MAX_DOCUMENT_ROOT: usize = 4096;

/// Longest name + value of one entry of `params`: what one PARAMS record holds (65,535
/// bytes) less its 8-byte length prefix. `fastcgi::params::MAX_PAIR_LEN` is the same number;
/// config cannot use fastcgi (they sit on one level), so it is repeated here.
pub const MAX_PARAM_LEN: usize = 65_535 - 8;

/// Largest `max_connections` accepted: far above what file descriptors allow, and below
/// what a semaphore can count.
pub const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;

/// Largest `max_header_size` accepted: hyper buffers a head whole before parsing it.
pub const MAX_HEADER_SIZE_LIMIT: usize = 1024 * 1024;

/// `max_connections`: client connections open at once; beyond it, accepting waits (the
/// kernel's backlog holds the rest). Far above what php-fpm pools behind one balancer serve,
/// low enough to keep file descriptors in check.
pub const MAX_CONNECTIONS: usize = 16 * 1024;

/// `max_connections_per_client`: connections one client address (an IPv6 /64) may hold open;
/// browsers open 6 per host, a NAT of a few dozen users stays well below. `0` is no cap.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 256;

/// Most `workers` (runtime threads) accepted: far above any core count fpmlb
/// has a use for, low enough that a typo does not spawn thousands of threads.
pub const WORKERS_LIMIT: usize = 1024;

/// `https`: off, since fpmlb itself speaks plain HTTP; turn it on behind a TLS terminator.
pub const HTTPS: bool = false;

/// `balance`: weighted smooth round robin, nginx's default upstream algorithm.
pub const BALANCE: Balance = Balance::RoundRobin;

/// `max_fails`: nginx's default; one failed attempt marks the node down for `fail_timeout`.
pub const MAX_FAILS: u32 = 1;

/// `fail_timeout`: nginx's default of 10 seconds.
pub const FAIL_TIMEOUT: Duration = Duration::from_secs(10);

/// `queue_size`: requests that may wait for a connection slot per backend; large enough to
/// absorb bursts, small enough to bound memory and fail fast when a pool is saturated.
pub const QUEUE_SIZE: usize = 1024;

/// `resolve_interval`: re-resolve backend hostnames every 30 seconds, so DNS changes are
/// picked up quickly without hammering the resolver.
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

/// `backends[].weight`: every node gets an equal share unless told otherwise.
pub const WEIGHT: u32 = 1;

/// Largest accepted `backends[].weight`; keeps the smooth round robin arithmetic small and
/// catches typos such as an extra zero.
pub const MAX_WEIGHT: u32 = 1000;

/// Connection limit for a backend without `max_conns` whose `pm.max_children` is not known
/// (yet): php-fpm's own default for `pm.max_children` is 5, typical tuned pools run 8 or more.
pub const DEFAULT_MAX_CONNS: u32 = 8;

/// `timeouts.connect`: 5 seconds, not nginx's 60s, so a dead node is noticed quickly.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `timeouts.send`: nginx's `fastcgi_send_timeout` default.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// `timeouts.read`: nginx's `fastcgi_read_timeout` default.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// `timeouts.queue`: longest wait for a connection slot when a backend is at `max_conns`;
/// beyond 10 seconds a client is better served by an error it can retry.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
/// `timeouts.idle`: pooled keep-alive `FastCGI` connections idle longer than 5 seconds are
/// closed, well below php-fpm's and firewalls' own idle limits.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// `timeouts.client_header`: HAProxy's recommended `timeout http-request`: a request head
/// not complete 10 s after its first byte (or after the connection opened) is cut off, so
/// half-sent heads cannot pile up (nginx's `client_header_timeout` is 60s).
pub const CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `timeouts.client_body`: nginx's `client_body_timeout` default, between two reads of a
/// request body (408 beyond).
pub const CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// `timeouts.client_send`: nginx's `send_timeout` default: a client that takes none of its
/// response for this long is disconnected.
pub const CLIENT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// `timeouts.client_idle`: nginx's `keepalive_timeout` default.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// `timeouts.shutdown_grace`: 30 seconds for in-flight requests on shutdown, the common
/// container stop grace period.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// `log.level`: `info` reports state changes of backends without per-request noise.
pub const LOG_LEVEL: &str = "info";
/// `log.format`: human readable text; use `json` for log shippers.
pub const LOG_FORMAT: LogFormat = LogFormat::Text;
/// `log.access_log`: on, as in nginx.
pub const ACCESS_LOG: bool = true;

/// `health.interval`: probe every 5 seconds: a dead node is out within `fall` x 5s.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// `health.timeout`: a healthy php-fpm answers a ping in milliseconds; 2 seconds is slow.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// `health.rise`: two good probes in a row before a node takes traffic again (as `HAProxy`).
pub const HEALTH_RISE: u32 = 2;
/// `health.fall`: three failed probes in a row before a node is taken out (as `HAProxy`).
pub const HEALTH_FALL: u32 = 3;
/// `health.ping_response`: php-fpm's default `ping.response`.
pub const PING_RESPONSE: &str = "pong";
/// `health.session_interval`: session settings change rarely; every 30 seconds is plenty.
pub const SESSION_INTERVAL: Duration = Duration::from_secs(30);
/// `health.on_session_mismatch`: a node that cannot see the shared sessions logs users out,
/// so it is drained rather than merely reported.
pub const ON_SESSION_MISMATCH: MismatchAction = MismatchAction::Drain;

/// `admin.listen`: loopback only, so the admin API is not exposed by accident; port 9180 is
/// unassigned and next to common admin ports.
pub const ADMIN_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9180));

/// `tls.acme.directory`: Let's Encrypt's production directory, what Caddy and certbot use.
pub const ACME_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// `tls.acme.state_dir`: where Debian keeps a daemon's state.
pub const ACME_STATE_DIR: &str = "/var/lib/fpmlb/acme";
/// `tls.acme.challenge`: tls-alpn-01 needs only the TLS listener (port 443), no port 80.
pub const ACME_CHALLENGE: AcmeChallenge = AcmeChallenge::TlsAlpn01;
/// `tls.acme.renew_before`: 30 days, Let's Encrypt's advice for its 90-day certificates
/// (and certbot's default); shorter lifetimes renew with a third left.
pub const ACME_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// `real_ip.header`: `X-Forwarded-For`, what nearly every proxy and CDN sends.
pub const REAL_IP_HEADER: RealIpHeader = RealIpHeader::XForwardedFor;

/// `compression.encodings`: on, as Debian's nginx.conf has `gzip on`; zstd
/// first (the fastest for its ratio, measured in README's Compression),
/// then brotli, then gzip, for clients that accept several with the same q.
pub const COMPRESSION_ENCODINGS: &[Encoding] = &[Encoding::Zstd, Encoding::Br, Encoding::Gzip];
/// `compression.types`: the text types of a PHP site (nginx compresses only
/// text/html unless `gzip_types` says more).
pub const COMPRESSION_TYPES: &[&str] = &[
    "text/html",
    "text/css",
    "text/plain",
    "text/xml",
    "text/javascript",
    "application/javascript",
    "application/json",
    "application/xml",
    "image/svg+xml",
];
/// `compression.min_size`: below 1 KiB the coding's header and a lost
/// packet's worth of saving are not worth a compressor's setup.
pub const COMPRESSION_MIN_SIZE: u64 = 1024;
/// `compression.max_memory`: the compressors' states of all responses
/// compressed at once (about 6 MiB each for brotli at level 4, 1.7 MiB for
/// zstd at 3, 400 KiB for gzip): some 40 brotli responses, 150 zstd or
/// 650 gzip ones at a time; past it a response takes a cheaper coding the
/// client accepts, or goes uncompressed.
pub const COMPRESSION_MAX_MEMORY: u64 = 256 * 1024 * 1024;
/// `compression.levels`: see README's Compression for the measurement.
pub const COMPRESSION_LEVELS: Levels = Levels {
    gzip: 5,
    br: 4,
    zstd: 3,
};

/// The documented default configuration, printed by `fpmlb config print-default`.
///
/// Every key is present with its default value and one comment line. The keys marked
/// "required" have no default; they hold an example value so the text parses as is.
/// `session` defaults to `~`; its keys are `save_handler` and `save_path` (both required
/// when the section is given).
pub const DEFAULT_CONFIG: &str = r#"# fpmlb configuration: every key with its default value.
# Durations: 250ms, 5s, 1m, 1h, 2m30s (nginx style; a bare number means seconds).
# Sizes: 100 (bytes), 512k, 1m, 1g (nginx style, case-insensitive).

# Required. Address(es) to serve HTTP on: one string or a list; ":8080" means 0.0.0.0:8080.
# An entry may be a map: {address: ":443", tls: true, proxy_protocol: false, redirect_https: false}.
listen: ":8080"
# Required. Document root ON THE PHP-FPM NODES (absolute path); used for SCRIPT_FILENAME.
document_root: /var/www/html
# Script appended to request paths ending in "/" (nginx fastcgi_index).
index: index.php
# Script that serves every request, e.g. /index.php for frameworks; ~ maps URLs to scripts.
front_controller: ~
# Largest accepted request body (nginx client_max_body_size); 0 means unlimited.
max_body_size: 1m
# Request bodies larger than this are buffered in a temporary file instead of memory.
body_buffer_size: 64k
# Read the whole body before taking a php-fpm worker (nginx fastcgi_request_buffering); off streams it.
request_buffering: true
# Of all request bodies together, held in temporary files; past it, such a body gets 503.
request_temp_total: 4g
# Read PHP's response ahead of a slow client, so its php-fpm worker is free when the script
# ends (nginx fastcgi_buffering); a script's "X-Accel-Buffering: no" streams it instead.
response_buffering: true
# Of one response, held in memory ahead of the client (all responses together: 64 MiB at most).
response_buffer_size: 1m
# Of one response, held in a temporary file past that (nginx fastcgi_max_temp_file_size); 0: none.
response_max_temp_file: 1g
# Of all responses together, held in temporary files; past it, PHP waits for the client.
response_temp_total: 4g
# Longest request line, method and target included (414 beyond; at most 60k).
max_request_line: 8k
# Longest header line, name and value included (431 beyond; at most 60k).
max_header_line: 8k
# Largest request head, request line and every header line (431 beyond).
max_header_size: 32k
# Client connections open at once; more wait in the kernel's backlog.
max_connections: 16384
# Connections one client address (IPv6: one /64) may hold open; 0 means no cap.
max_connections_per_client: 256
# Threads serving connections (nginx worker_processes, HAProxy nbthread); auto: one per core.
workers: auto
# SERVER_NAME sent to PHP; ~ uses the host of the request.
server_name: ~
# Set HTTPS=on and REQUEST_SCHEME=https (when fpmlb sits behind a TLS terminator).
https: false
# Extra FastCGI params sent with every request, in this order, e.g. {APP_ENV: prod}.
params: {}
# Load balancing: round_robin (weighted, smooth), least_conn or least_busy.
balance: round_robin
# Failed attempts within fail_timeout that mark a backend down (nginx max_fails); 0 disables.
max_fails: 1
# Window for max_fails and how long a failed backend stays down (nginx fail_timeout).
fail_timeout: 10s
# Requests that may wait for a connection slot, per backend.
queue_size: 1024
# How often hostnames in backend addresses are resolved again.
resolve_interval: 30s

# Timeouts of the client side and the php-fpm side.
timeouts:
  # Connecting to a php-fpm node.
  connect: 5s
  # Between two writes of the request to php-fpm (nginx fastcgi_send_timeout).
  send: 60s
  # Between two reads of the response from php-fpm (nginx fastcgi_read_timeout).
  read: 60s
  # Longest wait for a connection slot when a backend is at max_conns.
  queue: 10s
  # Pooled keep-alive FastCGI connections idle longer than this are closed.
  idle: 5s
  # A request head not complete this long after it started is cut off (HAProxy timeout http-request).
  client_header: 10s
  # Between two reads of a request body (nginx client_body_timeout); 408 beyond.
  client_body: 60s
  # A client that takes none of its response for this long is disconnected (nginx send_timeout).
  client_send: 60s
  # Idle client keep-alive connections are closed after this (nginx keepalive_timeout).
  client_idle: 75s
  # Time in-flight requests get to finish on shutdown.
  shutdown_grace: 30s

# Logging.
log:
  # Log level or filter: trace, debug, info, warn, error (e.g. "info,fpmlb=debug").
  level: info
  # Log format: text or json.
  format: text
  # Log one line per request.
  access_log: true

# Required, at least one. The php-fpm pools to balance over.
backends:
  # Unique name of the backend: letters, digits, '_', '.', '-'.
  - name: local
    # host:port, [ipv6]:port, hostname:port or unix:/path/to/php-fpm.sock.
    address: 127.0.0.1:9000
    # Relative share of requests, 1 to 1000.
    weight: 1
    # Concurrent connections; ~ uses the pool's pm.max_children once known, else 8.
    max_conns: ~
    # Backend group; locations pick one with `backends: GROUP`.
    group: main
    # Used only when no other backend of its group can take the request (nginx backup).
    backup: false

# Files served by fpmlb itself (nginx root + try_files $uri $uri/ ...).
static:
  # A copy of the code on this machine (nginx root); ~ serves no files. With a root, a .php that
  # is not there is 404 without asking php-fpm, and PHP source, dotfiles and listings are never sent.
  root: ~
  # Directory indexes served as files, tried after `index` (nginx index).
  index: [index.html]
  # Path prefixes served although they hold a dot segment (.env, .git/ are 404 elsewhere).
  allow_dotfiles: [/.well-known/]
  # Serve x.br / x.gz in place of x when the client accepts them (nginx gzip_static; brotli too).
  precompressed: true
  # Cache-Control of static files, e.g. "public, max-age=3600"; locations override it; ~ sends none.
  cache_control: ~
  # What a lookup found (a file's descriptor and metadata, a directory, a missing .br/.gz sibling),
  # held for `valid` (nginx open_file_cache + open_file_cache_valid); a held file is fstat'ed per
  # request (changed, replaced, deleted: looked up at once), a switched root link is followed within
  # `valid`. Also for aliases. valid: 0s looks every request up; max is per root.
  open_file_cache: {valid: 1s, max: 1000}

# fpmlb's own error answers replaced by files under static.root, e.g. {404: /404.html, 502: /50x.html}.
error_pages: {}

# Per-path rules in nginx's precedence: "= /x" exact, then the longest prefix ("^~ /x" stops
# regexes), then regexes "~ re", "~* re" in order, else the longest prefix. Keys of an entry:
# match, deny (403|404), return ({status, url}), internal, alias, scripts ([/index.php]),
# front_controller, backends (a group), timeouts ({read, send}), max_body_size, response_buffering,
# params, cache_control.
locations: []

# PHP session storage the nodes must use, e.g. {save_handler: memcached, save_path: "10.0.0.51:11211"}; ~ expects what most nodes use.
session: ~

# Health checks of the backends.
health:
  # Time between two health probes of a backend.
  interval: 5s
  # A probe not answered within this time fails.
  timeout: 2s
  # Consecutive good probes before a down backend takes traffic again.
  rise: 2
  # Consecutive failed probes before a backend is taken out.
  fall: 3
  # php-fpm ping.path to request, e.g. /fpm-ping; ~ only checks that a connection opens.
  ping_path: ~
  # Expected ping answer (php-fpm ping.response).
  ping_response: pong
  # php-fpm pm.status_path to read pool metrics from, e.g. /fpm-status; ~ disables.
  status_path: ~
  # Absolute path ON THE NODES of fpmlb's probe.php for session checks; ~ disables them.
  probe_script: ~
  # Time between two session configuration checks.
  session_interval: 30s
  # What to do with a node whose sessions differ: drain or warn.
  on_session_mismatch: drain

# TLS for listeners with tls: true, e.g. {certificates: [{cert: /etc/fpmlb/site.pem, key: /etc/fpmlb/site.key}],
#   default_certificate: ~, hsts: "max-age=63072000", acme: {domains: [example.com], email: ops@example.com,
#   directory: "https://acme-v02.api.letsencrypt.org/directory", ca_root: ~, state_dir: /var/lib/fpmlb/acme,
#   challenge: tls-alpn-01, renew_before: 30d}}; ~ = no TLS.
tls: ~

# Which peers may name the client (PROXY protocol headers; X-Forwarded-For or Forwarded).
real_ip:
  # CIDRs of trusted proxies (nginx set_real_ip_from); [] = PROXY headers from anyone, forwarding headers from no one.
  trusted_proxies: []
  # The header that names the client: x-forwarded-for or forwarded (RFC 7239).
  header: x-forwarded-for

# Compression of responses (nginx gzip, gzip_types, gzip_min_length, gzip_comp_level; brotli).
compression:
  # Codings offered, preferred first among equal q-values: zstd, br, gzip; [] = off.
  encodings: [zstd, br, gzip]
  # Media types compressed (nginx gzip_types); "*" = any.
  types: [text/html, text/css, text/plain, text/xml, text/javascript, application/javascript, application/json, application/xml, image/svg+xml]
  # Responses with a known length below this go uncompressed (nginx gzip_min_length).
  min_size: 1k
  # Levels: gzip 1-9, br 0-11, zstd 1-19.
  levels: {gzip: 5, br: 4, zstd: 3}
  # Memory the compressors may hold, all responses together; past it a
  # response takes a cheaper coding the client accepts, or none.
  max_memory: 256m

# The admin API of fpmlb.
admin:
  # Address of the admin API; off disables it.
  listen: 127.0.0.1:9180
  # Bearer token required by the admin API; ~ requires none (only on a loopback listen).
  token: ~
  # Host names the admin API answers to, besides IP addresses and localhost (e.g. [fpmlb.internal]).
  hosts: []
"#;

impl Default for super::Timeouts {
    fn default() -> Self {
        super::Timeouts {
            connect: CONNECT_TIMEOUT,
            send: SEND_TIMEOUT,
            read: READ_TIMEOUT,
            queue: QUEUE_TIMEOUT,
            idle: IDLE_TIMEOUT,
            client_header: CLIENT_HEADER_TIMEOUT,
            client_body: CLIENT_BODY_TIMEOUT,
            client_send: CLIENT_SEND_TIMEOUT,
            client_idle: CLIENT_IDLE_TIMEOUT,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

impl Default for super::LogConfig {
    fn default() -> Self {
        super::LogConfig {
            level: LOG_LEVEL.to_owned(),
            format: LOG_FORMAT,
            access_log: ACCESS_LOG,
        }
    }
}

impl Default for super::HealthConfig {
    fn default() -> Self {
        super::HealthConfig {
            interval: HEALTH_INTERVAL,
            timeout: HEALTH_TIMEOUT,
            rise: HEALTH_RISE,
            fall: HEALTH_FALL,
            ping_path: None,
            ping_response: PING_RESPONSE.to_owned(),
            status_path: None,
            probe_script: None,
            session_interval: SESSION_INTERVAL,
            on_session_mismatch: ON_SESSION_MISMATCH,
        }
    }
}

impl Default for super::AdminConfig {
    fn default() -> Self {
        super::AdminConfig {
            listen: Some(ADMIN_LISTEN),
            token: None,
            hosts: Vec::new(),
        }
    }
}
