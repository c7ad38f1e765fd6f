//! The one table of test networks. Every 127.0.N.x address a test uses is
//! built from a [`Net`] of this table, one per test, so tests run in
//! parallel without sharing an address, and a test's state folder (named
//! after its network, see `super::state_dir`) is where a killed run of the
//! same test left its processes.
//!
//! Linux routes all of 127.0.0.0/8 to the loopback interface, so any
//! 127.0.N.x can be bound without setting anything up. The scripts in
//! `integration/` use the same plan: with `cluster.sh --net N`, the load
//! balancer (or nginx, Redis, memcached) is on 127.0.N.1 and the php-fpm
//! nodes web01, web02, ... on 127.0.N.2, 127.0.N.3, ... port 9000.
//!
//! Two tests on one network is a compile error (the check under the table).

use std::net::SocketAddr;

/// One test's loopback network, 127.0.N.0/24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net(pub u8);

impl Net {
    /// The third octet.
    pub fn n(self) -> u8 {
        self.0
    }

    /// 127.0.N.`host`.
    pub fn ip(self, host: u8) -> String {
        format!("127.0.{}.{host}", self.0)
    }

    /// 127.0.N.`host`:`port`.
    pub fn addr(self, host: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, self.0, host], port))
    }
}

macro_rules! nets {
    ($($(#[$doc:meta])* $name:ident = $n:literal;)*) => {
        $($(#[$doc])* pub const $name: Net = Net($n);)*
        /// Every network of the table with its name.
        pub const ALL: &[(&str, Net)] = &[$((stringify!($name), $name)),*];
    };
}

nets! {
    /// integration/demo.sh (`make demo`): 127.0.0.1:8080 and nodes on 127.0.0.2..4.
    DEMO = 0;

    // tests/e2e_proxy.rs
    PROXY_ROUND_ROBIN = 10;
    /// fpmlb on .1:8080, nginx on .5:8080 (same port, so SERVER_PORT matches).
    PROXY_PARAMS_VS_NGINX = 11;
    PROXY_BODIES = 12;
    PROXY_LARGE_RESPONSES = 13;
    PROXY_NODE_STOPS = 14;
    PROXY_HEADERS = 15;
    PROXY_ANSWER_EARLY = 16;
    PROXY_SCRIPTS_FAULT = 17;
    /// fpmlb with few open files: its own shortage is not the backends'.
    PROXY_OUT_OF_FILES = 18;
    /// A script that answers before it reads its request body.
    PROXY_ANSWER_BEFORE_BODY = 19;

    /// integration/bench.sh (`make bench`; its cluster, nginx and HAProxy).
    BENCH = 20;

    // tests/e2e_health.rs
    HEALTH_FROZEN_NODE = 21;
    HEALTH_SATURATED_POOL = 22;

    // tests/e2e_session.rs
    SESSION_FILES_OVERRIDE = 30;
    SESSION_SERVER_ORDER = 31;
    SESSION_REDIS = 32;
    SESSION_MEMCACHE_EXTENSION = 33;
    SESSION_MEMCACHED_STOPPED = 34;
    SESSION_MISSING_PROBE = 35;
    SESSION_SERVE_DRAINS = 36;
    SESSION_CONFIG_EXPECTED = 37;

    // tests/store.rs
    STORE_PHP_SESSIONS = 38;
    /// Three redis-server processes on .1:7000..7002.
    STORE_REDIS_CLUSTER = 39;
    STORE_ABSENT_SERVERS = 40;
    STORE_SILENT_SERVERS = 41;
    STORE_REDIS_PASSWORD = 42;
    /// memcached with SASL (binary protocol) on .1:11299.
    STORE_MEMCACHED_SASL = 43;

    // tests/e2e_admin.rs (admin API on .1:9180)
    ADMIN_STATUS_AND_METRICS = 50;
    ADMIN_DRAIN_AND_ENABLE = 51;
    ADMIN_STATUS_PAGE = 52;

    // tests/e2e_ops.rs
    OPS_RELOAD_UNDER_LOAD = 61;
    OPS_RELOAD_BROKEN = 62;
    OPS_LEAST_BUSY = 63;
    OPS_HOSTNAME_BACKEND = 64;
    OPS_SIGTERM = 65;

    // tests/crosscheck.rs
    CROSSCHECK = 66;

    // tests/client_limits.rs
    LIMITS_HEADER_TIMEOUT = 70;
    LIMITS_PIPELINING = 71;
    /// A whole request and half of the next in one write, then silence.
    LIMITS_PIPELINED_HALF_HEAD = 72;

    // tests/session_catalogue.rs: one cluster per store, web03 the deviating node
    // (memcached on .1:11211 and .1:11212).
    CATALOGUE_MEMCACHED = 130;
    CATALOGUE_MEMCACHE = 131;
    CATALOGUE_REDIS = 132;
    /// Redis Cluster on .1:7000..7002.
    CATALOGUE_REDIS_CLUSTER = 133;
    /// files on a mount shared by the nodes.
    CATALOGUE_FILES = 134;
    /// `fpmlb check --explain`: php.ini, php_admin_value, php_value, .user.ini.
    CATALOGUE_EXPLAIN = 135;

    // tests/static_files.rs: fpmlb on .1:8080, its static.root in the test's folder.
    STATIC_FILES = 220;
    /// A 1 GiB sparse file streamed while fpmlb's RSS is sampled.
    STATIC_BIG_FILE = 221;
    /// Files past the first chunk, whose windows go out with sendfile on
    /// cleartext HTTP/1.1: their bytes, whole and by range, over HTTP/1.1
    /// and h2c.
    STATIC_ZERO_COPY = 252;
    /// `static.open_file_cache`: what is held and for how long, a reload
    /// and the sweep closing files deleted meanwhile.
    STATIC_OPEN_FILE_CACHE = 254;

    // tests/locations.rs
    /// nginx on .5:8080 with the same locations as fpmlb on .1:8080.
    LOCATIONS_VS_NGINX = 222;
    /// Four php-fpm nodes: web01, web02 (main), web03 (main's backup), web04 (group admin).
    LOCATIONS_ON_A_CLUSTER = 223;

    // tests/e2e_phpmyadmin.rs: three nodes, fpmlb on .1:8080, nginx on .5:8080.
    PHPMYADMIN = 224;

    // tests/import_nginx.rs: nginx on .5:8080, fpmlb on .1:8080.
    IMPORT_SEEDS = 230;
    IMPORT_DEBIAN_DEFAULT = 231;
    IMPORT_WORDPRESS = 232;
    IMPORT_LARAVEL = 233;
    IMPORT_SYMFONY = 234;
    IMPORT_PHPMYADMIN = 235;
    /// The full-config comparison of every fixture, one after the other.
    IMPORT_FULL = 236;
    // tests/e2e_tls.rs: fpmlb cleartext on .1:8080, TLS on .1:8443.
    TLS_CLIENTS = 200;
    TLS_RELOAD = 201;
    TLS_CHROMIUM = 202;
    TLS_HANDSHAKE_TIMEOUT = 207;

    // tests/e2e_proxy_protocol.rs
    PROXY_PROTOCOL_CLIENT = 203;
    /// HAProxy (send-proxy-v2) on .5:8080 and .5:8443 in front of fpmlb.
    PROXY_PROTOCOL_HAPROXY = 204;

    // tests/e2e_acme.rs: pebble on .3:14000 (management .3:15000), its DNS
    // (pebble-challtestsrv) on .4:8053 answering .1 for every name.
    ACME_TLS_ALPN = 205;
    ACME_HTTP01 = 206;

    // tests/e2e_real_ip.rs (210..212): fpmlb on .1, trusted proxies .5 and
    // .6, a client that is not one on .9.
    REAL_IP_HEADERS = 210;
    /// HAProxy (HTTP mode, option forwardfor) on .5:8080 and .5:8443.
    REAL_IP_HAPROXY = 211;
    REAL_IP_PER_CLIENT = 212;

    // tests/e2e_compression.rs (213..214, 253).
    COMPRESSION_CLIENTS = 213;
    COMPRESSION_STREAMING = 214;
    /// compression.max_memory: room for one gzip compressor.
    COMPRESSION_MEMORY = 253;

    // tests/e2e_h2.rs (215..216): HTTP/2 at the edge.
    H2_RAPID_RESET = 215;
    H2_MANY_STREAMS = 216;
    /// A client that grants its streams no flow-control window.
    H2_ZERO_WINDOW = 217;

    // tests/faults.rs: fpmlb on .1, fake FastCGI backends on .2 and .3.
    FAULTS_GARBAGE = 100;
    FAULTS_STALL = 101;
    FAULTS_CUT_CHUNKED = 102;
    FAULTS_CUT_LENGTH = 103;
    FAULTS_HEAD_ONLY = 104;
    FAULTS_HEAD_EMPTY_LENGTH = 105;
    FAULTS_STDERR_FLOOD = 106;
    FAULTS_SHORT_END = 107;
    FAULTS_OVERLOADED = 108;
    FAULTS_RETRY_RESET = 109;
    FAULTS_RETRY_REFUSED = 110;
    FAULTS_ALL_DOWN = 111;
    FAULTS_KEEPALIVE = 112;
    FAULTS_STALE_CONN = 113;
    FAULTS_BAD_PATHS = 114;
    FAULTS_BODY_LIMIT = 115;
    FAULTS_LATE_END = 116;

    // tests/hostile_request.rs (170..179): fpmlb on .1:8080, clients from .10..
    HOSTILE_HEAD_DEFAULTS = 170;
    HOSTILE_HEAD_WIDE = 171;
    HOSTILE_HEADERS = 172;
    HOSTILE_SLOW_UPLOADS = 173;
    HOSTILE_SLOW_H2_STREAMS = 174;
    HOSTILE_HALF_HEADS = 175;
    HOSTILE_PER_CLIENT = 176;
    HOSTILE_H2_PER_CLIENT = 193;
    /// Admin API on .1:9180.
    HOSTILE_ADMIN = 177;
    HOSTILE_STREAMING = 178;
    HOSTILE_SLOW_READER = 179;
    // tests/hostile_backend.rs: real php-fpm, scripts from tests/hostile-www.
    HOSTILE_SCRIPT_ANSWERS = 180;
    HOSTILE_STDERR_AND_HEAD = 181;
    HOSTILE_WALK_BACK = 182;
    HOSTILE_NODE_SIGKILL = 183;
    HOSTILE_LYING_LENGTH = 188;
    FAULTS_FOREIGN_ID = 189;

    // tests/faults.rs, issue 10's backend side.
    FAULTS_STRAY_RECORDS = 184;
    FAULTS_STREAMED_REFUSED = 185;
    FAULTS_INFORMATIONAL_POST = 186;
    FAULTS_HEAD_NO_LENGTH = 187;
    FAULTS_CUT_READ_AHEAD = 192;

    // tests/soak.rs: integration/soak.sh, fpmlb on .1:8080, nodes on .2 and .3.
    SOAK = 190;
    /// integration/soak.sh run by hand or by `make soak` (its default SOAK_NET).
    SOAK_SCRIPT = 191;

    /// fuzz/capture.sh: one php-fpm node on .2 whose answers become seeds.
    FUZZ_CAPTURE = 199;

    // Issue 11: sharing pools, parked client connections.
    /// tests/client_limits.rs: parked keep-alive connections.
    LIMITS_PARKED = 240;
    LIMITS_PARKED_HTTP10 = 244;
    /// tests/e2e_sharing.rs: a worker held by an outside FastCGI client.
    SHARING_HELD_WORKER = 241;
    /// tests/e2e_sharing.rs: health checks of an idle pool.
    SHARING_IDLE_CHECKS = 242;
    /// tests/e2e_sharing.rs: two fpmlb (.1:8080, .1:8081) over the same pools.
    SHARING_TWO_INSTANCES = 243;
    /// tests/e2e_sharing.rs: a slow script on a quiet pool.
    SHARING_SLOW_SCRIPT = 23;
    /// tests/e2e_sharing.rs: a slow script beside fast ones; fpmlb on
    /// .1:8080, its admin API on .1:9180.
    SHARING_SLOW_BESIDE_FAST = 24;
    /// tests/e2e_sharing.rs: a script working on after
    /// fastcgi_finish_request(); fpmlb on .1:8080, its admin API on .1:9180.
    SHARING_FINISH_REQUEST = 25;
    /// tests/e2e_sharing.rs: a page between one and two patiences while
    /// another finishes; fpmlb on .1:8080, its admin API on .1:9180.
    SHARING_SLOW_PAGE_WHILE_OTHERS_END = 26;
    /// tests/e2e_sharing.rs: a page its client cancels between one and two
    /// patiences; fpmlb on .1:8080, its admin API on .1:9180.
    SHARING_CANCELLED_PAGE = 27;
    /// tests/e2e_idle.rs: idle keep-alive clients and fpmlb's memory.
    IDLE_CLIENTS_MEMORY = 245;

    // Responses read ahead of slow clients (tests/e2e_read_ahead.rs).
    READ_AHEAD_ON = 246;
    READ_AHEAD_OFF_HERE = 247;
    READ_AHEAD_SCRIPT_SAYS_NO = 248;
    READ_AHEAD_HTTP2 = 249;
    /// fpmlb on .1:8080, its admin API on .1:9180.
    READ_AHEAD_LENGTH_KEEPS_CONN = 250;
    /// fpmlb on .1:8080, its admin API on .1:9180, temp files impossible.
    READ_AHEAD_NO_TEMP_FILE = 251;
}

/// Two entries of the table on one network do not compile.
const _: () = {
    let mut i = 0;
    while i < ALL.len() {
        let mut j = i + 1;
        while j < ALL.len() {
            assert!(
                ALL[i].1.0 != ALL[j].1.0,
                "two entries of tests/support/nets.rs share a network"
            );
            j += 1;
        }
        i += 1;
    }
};
