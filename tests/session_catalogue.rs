//! The catalogue: real clusters of three php-fpm nodes (integration/cluster.sh),
//! web01 and web02 the reference, web03 restarted with one deviation per case.
//! For each case:
//!
//! * the ground truth, found by the test itself as a person would, without
//!   fpmlb: write a session through one node (php-fpm over FastCGI, through
//!   integration/fcgi.php), send its cookie to the other node, read the key
//!   in the store (raw memcached commands, redis-cli, the session file); for
//!   cookie cases, a browser-grade cookie jar (the `cookie_store` crate,
//!   RFC 6265) given the Set-Cookie each node sends;
//! * the consequence and verdict `fpmlb check` gives (JSON), against a
//!   cleartext listener and, for cookie cases, an `https: true` one;
//! * for `lost` and `harmless` cases, what a running `fpmlb serve` does:
//!   drains web03 within two session checks of its restart (counted from
//!   serve's log, the check in flight when web03 restarted not counted), or
//!   never drains it.
//!
//! One cluster and one `serve` per store, reused across its cases; only web03
//! restarts between cases. Each test tells the cases it ran and their
//! evidence on stdout.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Cluster, Fpmlb, Net, nets};

/// The site's host name (fpmlb's `server_name`): cookie domains are judged by it.
const SITE: &str = "shop.example.com";
/// Sessions written each way for a difference that depends on where an id hashes:
/// with two servers, the chance that all 16 land alike by luck is 2^-16.
const PER_ID_SESSIONS: usize = 8;
/// Session checks of `serve` counted after web03 restarted: the one in flight (it may
/// have probed the old web03), then two whole ones.
const CHECKS_AFTER_RESTART: usize = 3;

// ------------------------------------------------------------------ cases

/// What the test itself must find, without fpmlb.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Truth {
    /// Sessions written through web01 are read through web03 and the reverse, and the
    /// key is in the store.
    Shared,
    /// A session written through one node is not read through the other.
    NotShared,
    /// As `NotShared`, for one of [`PER_ID_SESSIONS`] sessions at least.
    NotSharedForSome,
    /// web03 finds web01's session in the store but cannot decode it.
    Undecodable,
    /// The store gives a session written through web03 less time to live.
    ShorterInStore,
    /// files: web03's garbage collection deletes the session web01 wrote.
    GcDeletesOthers,
    /// files: web03's garbage collection leaves it (PHP cannot list the directory).
    GcDeletesNothing,
    /// The browser keeps web03's cookie but does not send it back to the site over http.
    CookieNotSentBack,
    /// The browser keeps web03's cookie but does not send it to the application's script.
    CookieOtherPath,
    /// The browser refuses web03's cookie (its Domain does not match the site).
    CookieRefused,
    /// web03's cookie says SameSite=None without Secure (RFC 6265bis: ignored).
    SameSiteNoneWithoutSecure,
    /// web03's cookie is SameSite=Strict where web01's is not (not sent on cross-site
    /// navigations).
    SameSiteStricter,
    /// web03's cookie is gone from the browser after a second, web01's is not.
    CookieExpires,
    /// pecl-memcache: after read_and_close the lock key is still set.
    LockKeptAfterReadAndClose,
}

/// What `serve` must do with web03.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Serve {
    Drains,
    Keeps,
    NotWatched,
}

/// One catalogue case.
struct Case {
    name: &'static str,
    /// Nodes restarted with `settings` (`web03`, or `all` for a cluster-wide case).
    nodes: &'static str,
    settings: &'static [(&'static str, &'static str)],
    /// Where fpmlb reports it: a difference of web03, or `cluster` (said once).
    setting: &'static str,
    consequence: &'static str,
    /// web03's verdict (cleartext listener), and (verdict, consequence) behind https.
    verdict: &'static str,
    https: Option<(&'static str, &'static str)>,
    /// A difference the round trip overrules (the report says so).
    overruled: bool,
    truth: Truth,
    serve: Serve,
    /// Why, in short: the source or measurement that decided it.
    evidence: &'static str,
    /// files: the shared directory's mode for this case (cluster.sh makes it 1733, as
    /// Debian's /var/lib/php/sessions).
    shared_dir_mode: Option<u32>,
    /// What fpmlb must show as proof (its difference's `found` or `evidence`).
    shown_by: Option<&'static str>,
}

/// A case as one line of the catalogue's tables: its columns in order.
#[allow(clippy::too_many_arguments)]
const fn case(
    name: &'static str,
    settings: &'static [(&'static str, &'static str)],
    setting: &'static str,
    consequence: &'static str,
    verdict: &'static str,
    truth: Truth,
    serve: Serve,
    evidence: &'static str,
) -> Case {
    Case {
        name,
        nodes: "web03",
        settings,
        setting,
        consequence,
        verdict,
        https: None,
        overruled: false,
        truth,
        serve,
        evidence,
        shared_dir_mode: None,
        shown_by: None,
    }
}

use Serve::{Drains, Keeps, NotWatched};
use Truth::*;

// --------------------------------------------------------------- the store

/// Where the sessions of a catalogue cluster are, as the test reads them itself.
#[derive(Debug, Clone)]
enum Store {
    /// php-memcached (`memc.sess.key.` + id) or pecl-memcache (the bare id) servers.
    Memcached {
        servers: Vec<String>,
        prefix: &'static str,
    },
    Redis {
        server: String,
    },
    RedisCluster {
        seed: String,
    },
    Files {
        dir: PathBuf,
    },
}

impl Store {
    fn key(&self, id: &str) -> String {
        match self {
            Store::Memcached { prefix, .. } => format!("{prefix}{id}"),
            Store::Redis { .. } => format!("PHPREDIS_SESSION:{id}"),
            Store::RedisCluster { .. } => format!("PHPREDIS_CLUSTER_SESSION:{id}"),
            Store::Files { .. } => format!("sess_{id}"),
        }
    }

    /// The stored value of session `id` and its remaining life in seconds.
    fn get(&self, id: &str) -> Option<(Vec<u8>, Option<i64>)> {
        let key = self.key(id);
        match self {
            Store::Memcached { servers, .. } => servers.iter().find_map(|s| memcached_mg(s, &key)),
            Store::Redis { server } => redis_get(server, &key, false),
            Store::RedisCluster { seed } => redis_get(seed, &key, true),
            Store::Files { dir } => std::fs::read(dir.join(&key)).ok().map(|v| (v, None)),
        }
    }
}

fn chmod(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `mg <key> t v` on one memcached server, by hand: `VA <size> t<ttl>`, the value.
fn memcached_mg(server: &str, key: &str) -> Option<(Vec<u8>, Option<i64>)> {
    use std::io::{BufRead, BufReader, Read, Write};
    let stream = std::net::TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    (&stream)
        .write_all(format!("mg {key} t v\r\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.first() == Some(&"EN") {
        return None;
    }
    assert_eq!(words.first(), Some(&"VA"), "mg answered {line:?}");
    let size: usize = words[1].parse().unwrap();
    let ttl = words
        .iter()
        .find_map(|w| w.strip_prefix('t'))
        .and_then(|t| t.parse().ok());
    let mut value = vec![0; size + 2];
    reader.read_exact(&mut value).unwrap();
    value.truncate(size);
    Some((value, ttl))
}

fn redis_cli(server: &str, cluster: bool, args: &[&str]) -> String {
    let (host, port) = server.rsplit_once(':').unwrap();
    let mut cmd = Command::new("redis-cli");
    if cluster {
        cmd.arg("-c");
    }
    let out = cmd
        .args(["-h", host, "-p", port, "--raw"])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim_end_matches('\n')
        .to_string()
}

fn redis_get(server: &str, key: &str, cluster: bool) -> Option<(Vec<u8>, Option<i64>)> {
    let value = redis_cli(server, cluster, &["GET", key]);
    if value.is_empty() {
        return None;
    }
    let ttl = redis_cli(server, cluster, &["TTL", key]).parse().ok();
    Some((value.into_bytes(), ttl))
}

// ------------------------------------------------------ the manual test

/// A php-fpm response: its headers and JSON body.
struct PhpResponse {
    headers: Vec<(String, String)>,
    json: Value,
}

impl PhpResponse {
    fn set_cookie(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `script` of the document root on node `addr`, with a `Cookie` header.
fn php(addr: &str, docroot: &str, script: &str, cookie: Option<&str>) -> PhpResponse {
    let mut cmd = Command::new("php");
    cmd.arg(support::repo().join("integration/fcgi.php"))
        .arg(addr)
        .arg(format!("{docroot}/{script}"))
        .args(["--docroot", docroot, "--timeout", "10"]);
    if let Some(c) = cookie {
        cmd.args(["--param", &format!("HTTP_COOKIE={c}")]);
    }
    let out = cmd.output().expect("run php integration/fcgi.php");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "fcgi.php {addr} {script}: {text}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or(("", &text));
    let headers = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    // A script that died (e.g. "Failed to create session ID", a 500) answers no JSON.
    let json = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    PhpResponse { headers, json }
}

/// A session started through one node: its cookie as the browser sends it back.
struct Seed {
    cookie: String,
    id: String,
    test: i64,
    set_cookie: String,
}

/// `None` when the node starts no session, or sends no cookie for it
/// (session.use_cookies off).
fn try_start_session(addr: &str, docroot: &str) -> Option<Seed> {
    let r = php(addr, docroot, "session.php", None);
    if r.json.is_null() {
        return None;
    }
    let set_cookie = r.set_cookie()?.to_string();
    Some(Seed {
        cookie: set_cookie.split(';').next().unwrap().trim().to_string(),
        id: r.json["id"].as_str().unwrap_or("").to_string(),
        test: r.json["TEST"].as_i64().unwrap_or(0),
        set_cookie,
    })
}

fn start_session(addr: &str, docroot: &str) -> Seed {
    try_start_session(addr, docroot).unwrap_or_else(|| panic!("{addr}: no session cookie"))
}

/// Whether `reader` sees the session of `seed`, and PHP's warning if any.
fn reads(reader: &str, docroot: &str, seed: &Seed) -> (bool, Option<String>) {
    let r = php(reader, docroot, "session.php", Some(&seed.cookie));
    let same = r.json["id"] == seed.id.as_str()
        && r.json["TEST"].as_i64() == Some(seed.test)
        && r.json["new"] == false;
    (same, r.json["warning"].as_str().map(str::to_string))
}

// ------------------------------------------------------- a catalogue run

/// One store's cluster, its `serve`, and the `fpmlb check` configs.
struct Catalogue {
    cluster: Cluster,
    serve: Fpmlb,
    store: Store,
    cleartext: PathBuf,
    https: PathBuf,
    log: Vec<String>,
}

fn addr(cluster: &Cluster, name: &str) -> String {
    cluster
        .nodes()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| a)
        .unwrap()
}

impl Catalogue {
    fn start(net: Net, args: &[&str], store: impl FnOnce(&Cluster) -> Store) -> Catalogue {
        let cluster = Cluster::start(net, args);
        let store = store(&cluster);
        let health = "health:\n  interval: 1s\n  timeout: 2s\n  ping_path: /fpm-ping\n  probe_script: /usr/share/fpmlb/probe.php\n  session_interval: 500ms\n";
        let head = |https: bool| {
            format!(
                "{}server_name: {SITE}\nhttps: {https}\n{health}{}",
                support::base_yaml(cluster.lb_addr(), &cluster.docroot()),
                cluster.backends_yaml()
            )
        };
        let cleartext = support::write_file(&cluster.dir, "check-http.yaml", &head(false));
        let https = support::write_file(&cluster.dir, "check-https.yaml", &head(true));
        let serve = Fpmlb::start(&cluster.dir, cluster.lb_addr(), &head(false));
        Catalogue {
            cluster,
            serve,
            store,
            cleartext,
            https,
            log: Vec::new(),
        }
    }

    fn node(&self, name: &str) -> String {
        addr(&self.cluster, name)
    }

    fn docroot(&self) -> String {
        self.cluster.docroot()
    }

    /// Runs every case, web03 (or every node) restarted for each; prints what it found.
    fn run(&mut self, cases: &[Case]) {
        for case in cases {
            self.run_case(case);
        }
        println!("{}", self.log.join("\n"));
    }

    fn run_case(&mut self, case: &Case) {
        let started = Instant::now();
        let settings: Vec<(&str, String)> = case
            .settings
            .iter()
            .map(|(k, v)| {
                let (option, key) = match k.split_once(' ') {
                    Some((option, key)) => (option, key),
                    None => ("--php-value", *k),
                };
                let n = u32::from(self.cluster.net.n());
                // 127.0.N.1 as one 32-bit number: what inet_aton also reads.
                let decimal = (127u32 << 24) | (n << 8) | 1;
                let value = v
                    .replace("{NET}", &n.to_string())
                    .replace("{DECIMAL}", &decimal.to_string());
                (option, format!("{key}={value}"))
            })
            .collect();
        if let (Some(mode), Store::Files { dir }) = (case.shared_dir_mode, &self.store) {
            chmod(dir, mode);
        }
        if case.nodes == "all" && settings.is_empty() {
            // A cluster-wide case as started: only the deviating node needs its start
            // settings back.
            self.cluster.reconfigure("web03", &[]);
        } else {
            self.cluster.reconfigure(case.nodes, &settings);
        }
        let checks_before = self.checks_done();
        let log_before = self.serve.log_text().len();
        let found = self.ground_truth(case);
        let report = self.check(&self.cleartext.clone());
        self.assert_report(case, &report, case.verdict, case.consequence, false);
        if let Some((verdict, consequence)) = case.https {
            let report = self.check(&self.https.clone());
            self.assert_report(case, &report, verdict, consequence, true);
        }
        let served = self.watch_serve(case, checks_before, log_before);
        self.log.push(format!(
            "{:<44} {:<14} web03 {:<9} truth: {found}; serve: {served}; {} ({:.1} s)",
            case.name,
            case.consequence,
            case.verdict,
            case.evidence,
            started.elapsed().as_secs_f64()
        ));
        // The next case starts from the start settings everywhere.
        if case.nodes != "web03" {
            self.cluster.reconfigure(case.nodes, &[]);
        }
        if let (Some(_), Store::Files { dir }) = (case.shared_dir_mode, &self.store) {
            chmod(dir, 0o1733);
        }
    }

    /// `fpmlb check --format json` with `config`.
    fn check(&self, config: &Path) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_fpmlb"))
            .args(["check", "--format", "json", "--config"])
            .arg(config)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "fpmlb check: not JSON ({e}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    fn assert_report(
        &self,
        case: &Case,
        report: &Value,
        verdict: &str,
        consequence: &str,
        https: bool,
    ) {
        let listener = if https { "https" } else { "cleartext" };
        let node = |name: &str| {
            report["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["name"] == name)
                .unwrap_or_else(|| panic!("{name} not in {report:#}"))
                .clone()
        };
        let web03 = node("web03");
        assert_eq!(
            web03["verdict"], verdict,
            "{} ({listener}): {report:#}",
            case.name
        );
        for reference in ["web01", "web02"] {
            let v = node(reference)["verdict"].as_str().unwrap().to_string();
            assert!(
                v == "ok" || v == "warning",
                "{} ({listener}): {reference} is {v}: {report:#}",
                case.name
            );
        }
        if case.setting == "cluster" {
            let warnings: Vec<&Value> = report["warnings"]
                .as_array()
                .map(|w| {
                    w.iter()
                        .filter(|w| w["consequence"] == consequence)
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(warnings.len(), 1, "{}: said once: {report:#}", case.name);
            return;
        }
        let differences = web03["differences"].as_array().unwrap();
        let d = differences
            .iter()
            .find(|d| d["setting"] == case.setting)
            .unwrap_or_else(|| {
                panic!(
                    "{} ({listener}): no {} in {report:#}",
                    case.name, case.setting
                )
            });
        assert_eq!(
            d["consequence"], consequence,
            "{} ({listener}): {d:#}",
            case.name
        );
        assert!(!d["effect"].as_str().unwrap_or("").is_empty());
        assert_eq!(
            d["overruled"].as_bool().unwrap_or(false),
            case.overruled,
            "{} ({listener}): {d:#}",
            case.name
        );
        if let Some(proof) = case.shown_by {
            let shown = format!(
                "{} {}",
                d["found"].as_str().unwrap_or(""),
                d["evidence"].as_str().unwrap_or("")
            );
            assert!(
                shown.contains(proof),
                "{} ({listener}): {proof:?} not in {d:#}",
                case.name
            );
        }
        if case.overruled {
            assert!(
                d["evidence"]
                    .as_str()
                    .unwrap_or("")
                    .contains("the round trip wins"),
                "{}: {d:#}",
                case.name
            );
        }
    }

    /// Does what a person checking by hand would, and asserts `case.truth`.
    fn ground_truth(&self, case: &Case) -> String {
        let (web01, web03, root) = (self.node("web01"), self.node("web03"), self.docroot());
        match case.truth {
            Shared => {
                for (writer, reader) in [(&web01, &web03), (&web03, &web01)] {
                    let seed = start_session(writer, &root);
                    assert!(
                        reads(reader, &root, &seed).0,
                        "{}: {writer} → {reader} not read",
                        case.name
                    );
                    assert!(
                        self.store.get(&seed.id).is_some(),
                        "{}: {} not in the store",
                        case.name,
                        seed.id
                    );
                }
                "read both ways, in the store".to_string()
            }
            NotShared | NotSharedForSome => {
                let n = if case.truth == NotShared {
                    1
                } else {
                    PER_ID_SESSIONS
                };
                let mut missed = 0;
                for _ in 0..n {
                    for (writer, reader) in [(&web01, &web03), (&web03, &web01)] {
                        match try_start_session(writer, &root) {
                            Some(seed) if reads(reader, &root, &seed).0 => {}
                            _ => missed += 1,
                        }
                    }
                }
                assert!(
                    missed > 0,
                    "{}: every session was read through the other node",
                    case.name
                );
                format!(
                    "{missed} of {} sessions not read through the other node",
                    2 * n
                )
            }
            Undecodable => {
                let seed = start_session(&web01, &root);
                assert!(
                    self.store.get(&seed.id).is_some(),
                    "{}: not in the store",
                    case.name
                );
                let (read, warning) = reads(&web03, &root, &seed);
                let warning = warning.unwrap_or_default();
                assert!(
                    !read && warning.contains("decode"),
                    "{}: read {read}, warning {warning:?}",
                    case.name
                );
                format!("in the store, web03: {warning}")
            }
            ShorterInStore => {
                let ttl = |node: &str| {
                    let seed = start_session(node, &root);
                    self.store.get(&seed.id).and_then(|(_, t)| t).unwrap()
                };
                let (reference, deviating) = (ttl(&web01), ttl(&web03));
                assert!(
                    deviating < reference,
                    "{}: {deviating} vs {reference}",
                    case.name
                );
                format!("store TTL {deviating} s through web03, {reference} s through web01")
            }
            GcDeletesOthers | GcDeletesNothing => {
                let seed = start_session(&web01, &root);
                assert!(self.store.get(&seed.id).is_some());
                // Older than web03's gc_maxlifetime (1 s, mtime granularity 1 s), then any
                // request through web03 collects.
                std::thread::sleep(Duration::from_millis(2500));
                let _ = start_session(&web03, &root);
                let gone = self.store.get(&seed.id).is_none();
                assert_eq!(
                    gone,
                    case.truth == GcDeletesOthers,
                    "{}: deleted: {gone}",
                    case.name
                );
                if gone {
                    "web01's session file deleted by web03's garbage collection".to_string()
                } else {
                    "web01's session file kept: web03's garbage collection cannot list the directory".to_string()
                }
            }
            CookieNotSentBack
            | CookieOtherPath
            | CookieRefused
            | CookieExpires
            | SameSiteNoneWithoutSecure
            | SameSiteStricter => self.cookie_truth(case),
            LockKeptAfterReadAndClose => {
                let seed = start_session(&web01, &root);
                let _ = php(&web01, &root, "session_peek.php", Some(&seed.cookie));
                let Store::Memcached { servers, .. } = &self.store else {
                    unreachable!()
                };
                let lock = format!("{}.lock", seed.id);
                // A copy per session_redundancy server; the one read_and_close took
                // is still 1, a write would have set it to 0.
                let copies: Vec<(Vec<u8>, Option<i64>)> = servers
                    .iter()
                    .filter_map(|s| memcached_mg(s, &lock))
                    .collect();
                let (_, ttl) = copies
                    .iter()
                    .find(|(value, _)| value == b"1")
                    .cloned()
                    .unwrap_or_else(|| panic!("{}: {lock} not held: {copies:?}", case.name));
                format!(
                    "{lock} = 1, {} s to live, after read_and_close",
                    ttl.unwrap_or(-1)
                )
            }
        }
    }

    /// The browser side: web01's and web03's Set-Cookie in a cookie jar.
    fn cookie_truth(&self, case: &Case) -> String {
        use cookie_store::CookieStore;
        let root = self.docroot();
        let reference = start_session(&self.node("web01"), &root).set_cookie;
        let deviating = start_session(&self.node("web03"), &root).set_cookie;
        let lower = deviating.to_ascii_lowercase();
        let jar_for = |scheme: &str| -> (CookieStore, url::Url, Result<(), String>) {
            let url = url::Url::parse(&format!("{scheme}://{SITE}/index.php")).unwrap();
            let mut jar = CookieStore::default();
            let stored = jar
                .parse(&deviating, &url)
                .map(|_| ())
                .map_err(|e| e.to_string());
            (jar, url, stored)
        };
        let sent = |jar: &CookieStore, url: &url::Url| jar.get_request_values(url).count();
        match case.truth {
            CookieNotSentBack => {
                let (jar, url, stored) = jar_for("http");
                assert!(stored.is_ok(), "{}: {stored:?}", case.name);
                assert_eq!(sent(&jar, &url), 0, "{}: {deviating}", case.name);
                let (jar, url, _) = jar_for("https");
                let https = sent(&jar, &url);
                format!(
                    "jar: kept, not sent to http://{SITE}/index.php (sent to https: {https}) — {deviating}"
                )
            }
            CookieRefused => {
                let (_, _, stored) = jar_for("https");
                assert!(stored.is_err(), "{}: {deviating}", case.name);
                format!("jar refuses it ({}) — {deviating}", stored.unwrap_err())
            }
            CookieExpires => {
                let (jar, url, _) = jar_for("https");
                let mut reference_jar = CookieStore::default();
                reference_jar.parse(&reference, &url).unwrap();
                assert_eq!(sent(&jar, &url), 1);
                std::thread::sleep(Duration::from_millis(1500));
                assert_eq!(sent(&jar, &url), 0, "{}: {deviating}", case.name);
                assert_eq!(sent(&reference_jar, &url), 1, "{}: {reference}", case.name);
                format!("jar: web03's cookie gone after 1.5 s, web01's kept — {deviating}")
            }
            SameSiteNoneWithoutSecure => {
                assert!(
                    lower.contains("samesite=none") && !lower.contains("secure"),
                    "{deviating}"
                );
                format!(
                    "{deviating}: SameSite=None without Secure, which RFC 6265bis 5.7 has browsers ignore"
                )
            }
            SameSiteStricter => {
                assert!(lower.contains("samesite=strict"), "{deviating}");
                assert!(
                    !reference.to_ascii_lowercase().contains("samesite"),
                    "{reference}"
                );
                format!(
                    "{deviating} vs {reference}: not sent on navigations from other sites (RFC 6265bis 5.6.7)"
                )
            }
            CookieOtherPath => {
                let (jar, url, stored) = jar_for("https");
                assert!(stored.is_ok(), "{}: {stored:?}", case.name);
                assert_eq!(sent(&jar, &url), 0, "{}: {deviating}", case.name);
                format!("jar: not sent to https://{SITE}/index.php — {deviating}")
            }
            _ => unreachable!("not a cookie case"),
        }
    }

    /// "session check done" lines in serve's log so far.
    fn checks_done(&self) -> usize {
        self.serve.log_text().matches("session check done").count()
    }

    /// Waits for the checks after web03's restart and says what serve did with it.
    fn watch_serve(&self, case: &Case, checks_before: usize, log_before: usize) -> String {
        if case.serve == NotWatched {
            return "not watched".to_string();
        }
        let target = checks_before + CHECKS_AFTER_RESTART;
        let deadline = Instant::now() + support::READY_LIMIT;
        while self.checks_done() < target {
            assert!(
                Instant::now() < deadline,
                "{}: serve's session checks stalled:\n{}",
                case.name,
                self.serve.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // web03's state after each check, replaying the whole log.
        let text = self.serve.log_text();
        let mut drained = false;
        let mut states = Vec::new();
        for line in text.lines() {
            if line.contains("backend=web03") && line.contains("DRAINED") {
                drained = true;
            } else if line.contains("backend=web03") && line.contains("passes again") {
                drained = false;
            } else if line.contains("session check done") {
                states.push(drained);
            }
        }
        let after: Vec<bool> = states[checks_before..target].to_vec();
        let tail = &text[log_before.min(text.len())..];
        match case.serve {
            Drains => {
                assert!(
                    after[after.len() - 1],
                    "{}: web03 not drained after {after:?}:\n{tail}",
                    case.name
                );
                let at = after.iter().position(|d| *d).unwrap_or(0);
                format!("drained by check {at} after the restart (0: the one in flight)")
            }
            Keeps => {
                // The check in flight at the restart may still judge the old web03.
                assert!(
                    after[1..].iter().all(|d| !d),
                    "{}: web03 drained {after:?}:\n{tail}",
                    case.name
                );
                "kept in rotation".to_string()
            }
            NotWatched => unreachable!(),
        }
    }
}

// ------------------------------------------------------------- the tests

#[test]
fn php_memcached() {
    let mut cat = Catalogue::start(
        nets::CATALOGUE_MEMCACHED,
        &["--memcached-count", "2"],
        |c| Store::Memcached {
            servers: c.env["MEMCACHED"]
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            prefix: "memc.sess.key.",
        },
    );
    cat.run(&php_memcached_cases());
}

#[rustfmt::skip]
fn php_memcached_cases() -> Vec<Case> {
    vec![
        case("files instead of memcached", &[("session.save_handler", "files")], "session.save_handler", "lost", "mismatch", NotShared, Drains, "round trip; session.c OnUpdateSaveHandler"),
        case("another key prefix", &[("memcached.sess_prefix", "other.")], "memcached.sess_prefix", "lost", "mismatch", NotShared, Drains, "round trip; php_memcached_session.c MEMCACHED_CALLBACK_NAMESPACE"),
        case("modula hashing on one node", &[("memcached.sess_consistent_hash", "0")], "memcached.sess_consistent_hash", "lost", "mismatch", NotSharedForSome, Drains, "8 sessions each way; libmemcached ketama vs modula"),
        case("ids too long for memcached keys", &[("session.sid_length", "240")], "session.sid_length", "lost", "mismatch", NotShared, Drains, "memcached's 250-byte keys: PS_CREATE_SID_FUNC fails; round trip"),
        case("another serializer", &[("session.serialize_handler", "php_serialize")], "session.serialize_handler", "corrupt", "mismatch", Undecodable, NotWatched, "session.c php_session_decode"),
        Case { shown_by: Some("s to live, the one written through web01 14"), ..case("shorter gc_maxlifetime", &[("session.gc_maxlifetime", "600")], "session.gc_maxlifetime", "expires_early", "mismatch", ShorterInStore, NotWatched, "store TTL; php_memcached_session.c PS_WRITE_FUNC") },
        case("no session lock", &[("memcached.sess_locking", "0")], "memcached.sess_locking", "race", "warning", Shared, NotWatched, "php_memcached_session.c PS_READ_FUNC"),
        case("replicas without the binary protocol", &[("memcached.sess_number_of_replicas", "1"), ("memcached.sess_binary_protocol", "0")], "memcached.sess_number_of_replicas", "fragile", "warning", Shared, NotWatched, "libmemcached storage.cc memcached_send_binary"),
        case("longer session ids", &[("session.sid_length", "48")], "session.sid_length", "harmless", "ok", Shared, Keeps, "session.c php_session_valid_key"),
        case("6 bits per id character", &[("session.sid_bits_per_character", "6")], "session.sid_bits_per_character", "harmless", "ok", Shared, Keeps, "session.c php_session_valid_key"),
        case("garbage collection probability", &[("session.gc_probability", "1"), ("session.gc_divisor", "100")], "session.gc_probability", "harmless", "ok", Shared, Keeps, "PS_GC_FUNC(memcached) does nothing"),
        case("lock retry timings", &[("memcached.sess_lock_wait_min", "50"), ("memcached.sess_lock_retries", "20")], "memcached.sess_lock_retries", "harmless", "ok", Shared, Keeps, "php_memcached_session.c s_lock_session"),
        case("text protocol", &[("memcached.sess_binary_protocol", "0")], "memcached.sess_binary_protocol", "harmless", "ok", Shared, Keeps, "round trip"),
        case("persistent connections, connect timeout", &[("memcached.sess_persistent", "1"), ("memcached.sess_connect_timeout", "500")], "memcached.sess_persistent", "harmless", "ok", Shared, Keeps, "round trip"),
        Case { nodes: "all", ..case("every node on modula hashing", &[("memcached.sess_consistent_hash", "0")], "cluster", "fragile", "ok", Shared, NotWatched, "libmemcached modula: a server change moves most keys; said once") },
    ]
}

#[test]
fn pecl_memcache() {
    let mut cat = Catalogue::start(
        nets::CATALOGUE_MEMCACHE,
        &["--session", "memcache", "--memcached-count", "2"],
        |c| Store::Memcached {
            servers: c.env["MEMCACHED"]
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            prefix: "",
        },
    );
    cat.run(&pecl_memcache_cases());
}

#[rustfmt::skip]
fn pecl_memcache_cases() -> Vec<Case> {
    vec![
        Case { shown_by: Some("after session_start(['read_and_close' => true]) ended (memcache.lock_timeout = 15)"), ..case("the lock read_and_close keeps", &[], "session lock", "race", "warning", LockKeptAfterReadAndClose, NotWatched, "measured in the store; memcache_session.c: only PS_WRITE_FUNC resets <id>.lock") },
        case("a static key prefix", &[("memcache.session_prefix_static_key", "app")], "memcache.session_prefix_static_key", "lost", "mismatch", NotShared, Drains, "round trip; memcache_session.c mmc_prepare_key_ex"),
        case("standard hashing, a copy on every server", &[("memcache.hash_strategy", "standard")], "memcache.hash_strategy", "race", "warning", Shared, NotWatched, "memcache_session.c PS_READ_FUNC tries session_redundancy servers"),
        case("fewer copies of each session", &[("memcache.session_redundancy", "1")], "memcache.session_redundancy", "fragile", "warning", Shared, NotWatched, "memcache_session.c PS_WRITE_FUNC"),
        case("shorter lock timeout", &[("memcache.lock_timeout", "5")], "memcache.lock_timeout", "harmless", "warning", Shared, Keeps, "round trip (the read_and_close lock is its own finding)"),
    ]
}

#[test]
fn phpredis() {
    let mut cat = Catalogue::start(nets::CATALOGUE_REDIS, &["--session", "redis"], |c| {
        Store::Redis {
            server: c.env["REDIS"].clone(),
        }
    });
    cat.run(&phpredis_cases());
}

#[rustfmt::skip]
fn phpredis_cases() -> Vec<Case> {
    vec![
        case("another key prefix", &[("session.save_path", "tcp://127.0.{NET}.1:6379?prefix=OTHER:")], "session.save_path prefix", "lost", "mismatch", NotShared, Drains, "round trip; redis_session.c redis_session_key"),
        case("another database", &[("session.save_path", "tcp://127.0.{NET}.1:6379?database=1")], "session.save_path database", "lost", "mismatch", NotShared, Drains, "round trip; redis_session.c redis_pool_member_select"),
        case("another cookie name", &[("session.name", "OTHERSESSID")], "session.name", "lost", "mismatch", NotShared, Drains, "round trip; session.c php_session_start"),
        Case { shown_by: Some("it sent no session cookie"), ..case("no session cookies", &[("session.use_cookies", "0")], "session.use_cookies", "lost", "mismatch", NotShared, Drains, "no Set-Cookie; session.c php_session_start") },
        case("igbinary serializer", &[("session.serialize_handler", "igbinary")], "session.serialize_handler", "corrupt", "mismatch", Undecodable, NotWatched, "session.c php_session_decode"),
        case("session locks on one node", &[("redis.session.locking_enabled", "1")], "redis.session.locking_enabled", "race", "warning", Shared, NotWatched, "redis_session.c lock_acquire"),
        case("timeout and persistent connections", &[("session.save_path", "tcp://127.0.{NET}.1:6379?timeout=5&persistent=1")], "session.save_path timeout", "harmless", "ok", Shared, Keeps, "round trip; transport only"),
        case("a weight with one server", &[("session.save_path", "tcp://127.0.{NET}.1:6379?weight=5")], "session.save_path weight", "harmless", "ok", Shared, Keeps, "redis_session.c redis_pool_get_sock: one server"),
        case("lock retry timings", &[("redis.session.lock_wait_time", "500"), ("redis.session.lock_retries", "3")], "redis.session.lock_retries", "harmless", "ok", Shared, Keeps, "redis_session.c lock_acquire"),
        case("strict mode", &[("session.use_strict_mode", "1")], "session.use_strict_mode", "harmless", "ok", Shared, Keeps, "redis_session.c PS_VALIDATE_SID_FUNC: EXISTS in the shared store"),
        case("no lazy write", &[("session.lazy_write", "0")], "session.lazy_write", "harmless", "ok", Shared, Keeps, "round trip"),
        case("HttpOnly cookie", &[("session.cookie_httponly", "1")], "session.cookie_httponly", "harmless", "ok", Shared, Keeps, "round trip; the cookie jar sends it"),
        // 127.0.N.1 written as one 32-bit number: another string, the same server.
        Case { overruled: true, ..case("the same server written another way", &[("session.save_path", "tcp://{DECIMAL}:6379")], "session.save_path servers", "lost", "ok", Shared, Keeps, "configuration says lost; round trip both ways, key in the store: overruled") },
        Case { https: Some(("ok", "harmless")), shown_by: Some("Set-Cookie"), ..case("Secure cookie", &[("session.cookie_secure", "1")], "session.cookie_secure", "cookie_dropped", "mismatch", CookieNotSentBack, NotWatched, "cookie jar; RFC 6265bis 5.7") },
        Case { https: Some(("mismatch", "cookie_dropped")), ..case("SameSite=None without Secure", &[("session.cookie_samesite", "None")], "session.cookie_samesite", "cookie_dropped", "mismatch", SameSiteNoneWithoutSecure, NotWatched, "RFC 6265bis 5.7") },
        Case { https: Some(("mismatch", "cookie_dropped")), ..case("SameSite=Strict", &[("session.cookie_samesite", "Strict")], "session.cookie_samesite", "cookie_dropped", "mismatch", SameSiteStricter, NotWatched, "RFC 6265bis 5.6.7") },
        Case { https: Some(("mismatch", "expires_early")), ..case("cookie lifetime of a second", &[("session.cookie_lifetime", "1")], "session.cookie_lifetime", "expires_early", "mismatch", CookieExpires, NotWatched, "cookie jar; session.c php_session_send_cookie") },
        Case { https: Some(("mismatch", "cookie_dropped")), shown_by: Some("Set-Cookie Path: /app here, / on web01"), ..case("cookie path /app", &[("session.cookie_path", "/app")], "session.cookie_path", "cookie_dropped", "mismatch", CookieOtherPath, NotWatched, "cookie jar; RFC 6265 5.4") },
        Case { https: Some(("mismatch", "cookie_dropped")), ..case("cookie domain of another site", &[("session.cookie_domain", "other.example")], "session.cookie_domain", "cookie_dropped", "mismatch", CookieRefused, NotWatched, "cookie jar; RFC 6265 5.3") },
        Case { nodes: "all", ..case("one Redis server for the cluster", &[], "cluster", "fragile", "ok", Shared, NotWatched, "said once") },
    ]
}

#[test]
fn phpredis_cluster() {
    let mut cat = Catalogue::start(
        nets::CATALOGUE_REDIS_CLUSTER,
        &["--session", "rediscluster"],
        |c| Store::RedisCluster {
            seed: c.env["REDIS_CLUSTER"]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string(),
        },
    );
    cat.run(&phpredis_cluster_cases());
}

#[rustfmt::skip]
fn phpredis_cluster_cases() -> Vec<Case> {
    vec![
        case("another key prefix", &[("session.save_path", "seed[]=127.0.{NET}.1:7000&seed[]=127.0.{NET}.1:7001&seed[]=127.0.{NET}.1:7002&prefix=OTHER:")], "session.save_path prefix", "lost", "mismatch", NotShared, Drains, "round trip; redis_session.c cluster_session_key"),
        case("one seed of the cluster", &[("session.save_path", "seed[]=127.0.{NET}.1:7001")], "session.save_path seeds", "harmless", "ok", Shared, Keeps, "cluster_library.c cluster_map_keyspace from any seed"),
        case("timeouts", &[("session.save_path", "seed[]=127.0.{NET}.1:7000&seed[]=127.0.{NET}.1:7001&seed[]=127.0.{NET}.1:7002&timeout=2&read_timeout=2")], "session.save_path timeout", "harmless", "ok", Shared, Keeps, "round trip; transport only"),
        case("locking asked of a handler that never locks", &[("redis.session.locking_enabled", "1")], "redis.session.locking_enabled", "harmless", "ok", Shared, Keeps, "redis_session.c PS_READ_FUNC(rediscluster)"),
        Case { nodes: "all", ..case("no session lock in Redis Cluster", &[], "cluster", "race", "ok", Shared, NotWatched, "redis_session.c PS_READ_FUNC(rediscluster); said once") },
    ]
}

#[test]
fn files_on_a_shared_mount() {
    let mut cat = Catalogue::start(
        nets::CATALOGUE_FILES,
        &["--session", "files", "--shared-files"],
        |c| Store::Files {
            dir: PathBuf::from(&c.env["SHARED_SESSIONS"]),
        },
    );
    cat.run(&files_cases());
}

#[rustfmt::skip]
fn files_cases() -> Vec<Case> {
    vec![
        case("another directory", &[("session.save_path", "/tmp")], "session.save_path path", "lost", "mismatch", NotShared, Drains, "round trip; mod_files.c"),
        case("subdirectories by id", &[("session.save_path", "1;/var/lib/php/sessions")], "session.save_path depth", "lost", "mismatch", NotShared, Drains, "round trip; mod_files.c ps_files_path_create"),
        case("1 s lifetime, a directory PHP cannot list", &[("session.gc_maxlifetime", "1"), ("session.gc_probability", "1"), ("session.gc_divisor", "1")], "session.gc_maxlifetime", "harmless", "ok", GcDeletesNothing, Keeps, "mod_files.c ps_files_cleanup_dir opendir fails on mode 1733"),
        Case { shared_dir_mode: Some(0o1777), ..case("1 s lifetime, a directory PHP can list", &[("session.gc_maxlifetime", "1"), ("session.gc_probability", "1"), ("session.gc_divisor", "1")], "session.gc_maxlifetime", "expires_early", "mismatch", GcDeletesOthers, NotWatched, "mod_files.c ps_files_cleanup_dir, watched deleting") },
        case("garbage collection runs here only", &[("session.gc_probability", "1")], "session.gc_probability", "harmless", "ok", Shared, Keeps, "the same files, collected more often"),
        Case { nodes: "all", ..case("sessions on a shared mount", &[], "cluster", "fragile", "ok", Shared, NotWatched, "said once") },
    ]
}

/// `fpmlb check --explain` on a cluster whose settings come from every layer PHP
/// has: php.ini (php-fpm's `-d`, the layer get_cfg_var() sees), the pool's
/// php_value and php_admin_value, and a .user.ini in the application's document
/// root, which the probe (outside it) would not get but the application does.
#[test]
fn explain_says_where_each_value_comes_from() {
    let cluster = Cluster::start(
        nets::CATALOGUE_EXPLAIN,
        &[
            "--php-ini",
            "web02:session.gc_maxlifetime=1440",
            "--php-admin-value",
            "web03:session.cookie_path=/",
            "--php-value",
            "web03:session.gc_probability=1",
        ],
    );
    // The application's .user.ini: another cookie name (its scripts use it), and a
    // cookie path the php_admin_value keeps it from changing.
    cluster.reconfigure(
        "web03",
        &[
            ("--user-ini", "session.name=APPSESSID".to_string()),
            ("--user-ini", "session.cookie_path=/elsewhere".to_string()),
        ],
    );
    let root = cluster.docroot();
    let (web01, web03) = (addr(&cluster, "web01"), addr(&cluster, "web03"));
    // By hand: the application on web03 does not see web01's sessions.
    let seed = start_session(&web01, &root);
    assert!(!reads(&web03, &root, &seed).0);
    let web03_cookie = start_session(&web03, &root).set_cookie;
    assert!(web03_cookie.starts_with("APPSESSID="), "{web03_cookie}");

    let yaml = format!(
        "{}health:\n  ping_path: /fpm-ping\n  probe_script: /usr/share/fpmlb/probe.php\n  timeout: 2s\n{}",
        support::base_yaml(cluster.lb_addr(), &root),
        cluster.backends_yaml()
    );
    let config = support::write_file(&cluster.dir, "check.yaml", &yaml);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_fpmlb"))
            .arg("check")
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let json: Value = serde_json::from_str(&run(&["--explain", "--format", "json"])).unwrap();
    let node = |name: &str| {
        json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap()
            .clone()
    };
    let setting = |name: &str, key: &str| {
        node(name)["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["setting"] == key)
            .unwrap_or_else(|| panic!("{name} {key}: {json:#}"))
            .clone()
    };
    let php_ini = |name: &str| {
        node(name)["ini_files"]["php_ini"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let from = |name: &str, key: &str| setting(name, key)["source"].as_str().unwrap().to_string();
    assert!(
        from("web02", "session.gc_maxlifetime").starts_with(&php_ini("web02")),
        "{json:#}"
    );
    assert_eq!(from("web03", "session.cookie_path"), "pool php_admin_value");
    assert!(
        from("web03", "session.gc_probability").starts_with("pool php_value ("),
        "{json:#}"
    );
    assert_eq!(
        from("web01", "session.cookie_httponly"),
        format!("{} or its conf.d", php_ini("web01"))
    );
    assert_eq!(from("web01", "memcached.sess_prefix"), "built-in default");
    let name = setting("web03", "session.name");
    assert_eq!(name["value"], "APPSESSID");
    assert!(
        from("web03", "session.name").starts_with(".user.ini ("),
        "{json:#}"
    );
    assert_eq!(name["expected"], "PHPSESSID");
    assert_eq!(name["consequence"], "lost");
    // The php_admin_value wins over the .user.ini.
    assert_eq!(setting("web03", "session.cookie_path")["value"], "/");
    assert_eq!(node("web03")["verdict"], "mismatch");

    // The text says it at a glance.
    let text = run(&["--explain"]);
    assert!(
        text.starts_with(
            "fpmlb check: FAIL: 1 of 3 nodes would lose sessions: web03 (sessions lost)"
        ),
        "{text}"
    );
    assert!(text.contains("    differs: session.name: expected PHPSESSID, found APPSESSID\n      → sessions lost: "), "{text}");
    assert!(
        text.contains("settings, node by node (--explain):"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("session.name ") && l.contains("APPSESSID"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(".user.ini (") && line.contains("[expected PHPSESSID: sessions lost]"),
        "{line}"
    );
    println!("{text}");
}
