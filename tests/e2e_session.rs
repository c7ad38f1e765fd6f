//! The session checker against real clusters: each misconfiguration gives
//! the right verdict and exit code from `fpmlb check`, and `serve` drains a
//! misconfigured node while one session survives round robin.
//!
//! Each test has its own 127.0.N.x network (tests/support/nets.rs).

mod support;

use std::process::Command;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use support::{Cluster, Fpmlb, base_yaml, client, nets, send};

const HEALTH: &str =
    "health:\n  ping_path: /fpm-ping\n  probe_script: /usr/share/fpmlb/probe.php\n  timeout: 2s\n";

fn config(cluster: &Cluster, extra: &str) -> std::path::PathBuf {
    let addr = cluster.lb_addr();
    let yaml = format!(
        "{}{HEALTH}{extra}{}",
        base_yaml(addr, &cluster.docroot()),
        cluster.backends_yaml()
    );
    support::write_file(&cluster.dir, "check.yaml", &yaml)
}

/// Runs `fpmlb check --format json`; returns the exit code and the report.
fn check(path: &std::path::Path) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fpmlb"))
        .args(["check", "--format", "json", "--config"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    let all = format!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), json, all)
}

fn verdicts(report: &Value) -> Vec<(String, String)> {
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn node<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn a_pool_file_override_to_files_is_a_mismatch() {
    let cluster = Cluster::start(
        nets::SESSION_FILES_OVERRIDE,
        &["--php-value", "web02:session.save_handler=files"],
    );
    let (code, report, all) = check(&config(&cluster, ""));
    assert_eq!(code, 1, "{all}");
    assert_eq!(report["verdict"], "fail");
    assert_eq!(
        verdicts(&report),
        pairs(&[("web01", "ok"), ("web02", "mismatch"), ("web03", "ok")]),
        "{all}"
    );
    let diffs = node(&report, "web02")["differences"].as_array().unwrap();
    assert!(
        diffs.iter().any(|d| d["setting"] == "session.save_handler"
            && d["expected"] == "memcached"
            && d["found"] == "files"),
        "{all}"
    );
    // The round trip confirms it: web02 does not see the others' session.
    let problems = node(&report, "web02")["problems"].to_string();
    assert!(problems.contains("did not read the session"), "{all}");

    // The text form says it at a glance.
    let out = Command::new(env!("CARGO_BIN_EXE_fpmlb"))
        .args(["check", "--config"])
        .arg(cluster.dir.join("check.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("fpmlb check: FAIL: 1 of 3 nodes would lose sessions: web02"),
        "{text}"
    );
}

#[test]
fn servers_in_another_order_matter_only_without_consistent_hashing() {
    let net = nets::SESSION_SERVER_ORDER;
    let reordered = format!("web03:session.save_path={0}:11212,{0}:11211", net.ip(1));
    let cluster = Cluster::start(
        net,
        &[
            "--memcached-count",
            "2",
            "--php-value",
            "all:memcached.sess_consistent_hash=0",
            "--php-value",
            &reordered,
        ],
    );
    let (code, report, all) = check(&config(&cluster, ""));
    assert_eq!(code, 1, "{all}");
    assert_eq!(node(&report, "web03")["verdict"], "mismatch", "{all}");
    assert!(
        node(&report, "web03")["differences"]
            .to_string()
            .contains("order matters"),
        "{all}"
    );
    assert_eq!(node(&report, "web01")["verdict"], "ok", "{all}");
    drop(cluster);

    // With php-memcached's default ketama hashing, the order does not count.
    let cluster = Cluster::start(net, &["--memcached-count", "2", "--php-value", &reordered]);
    let (code, report, all) = check(&config(&cluster, ""));
    assert_eq!(code, 0, "{all}");
    assert_eq!(report["verdict"], "ok");
}

#[test]
fn a_redis_backed_cluster_is_consistent() {
    let cluster = Cluster::start(nets::SESSION_REDIS, &["--session", "redis"]);
    let extra = format!(
        "session:\n  save_handler: redis\n  save_path: \"tcp://{}:6379\"\n",
        cluster.lb_ip()
    );
    let (code, report, all) = check(&config(&cluster, &extra));
    assert_eq!(code, 0, "{all}");
    assert_eq!(
        verdicts(&report),
        pairs(&[("web01", "ok"), ("web02", "ok"), ("web03", "ok")]),
        "{all}"
    );
    assert_eq!(report["store"][0]["ok"], true);
    assert!(
        report["store"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("redis"),
        "{all}"
    );
    assert!(
        node(&report, "web02")["round_trip"]
            .to_string()
            .contains("in the store"),
        "{all}"
    );
}

#[test]
fn a_cluster_on_the_memcache_extension_with_tcp_paths_is_consistent() {
    let cluster = Cluster::start(
        nets::SESSION_MEMCACHE_EXTENSION,
        &["--session", "memcache", "--memcached-count", "2"],
    );
    let (code, report, all) = check(&config(&cluster, ""));
    assert_eq!(code, 0, "{all}");
    assert_eq!(report["expected"]["save_handler"], "memcache", "{all}");
    assert_eq!(report["store"].as_array().unwrap().len(), 2, "{all}");
}

#[test]
fn memcached_stopped_is_store_unreachable() {
    let cluster = Cluster::start(nets::SESSION_MEMCACHED_STOPPED, &[]);
    let pid = std::fs::read_to_string(cluster.dir.join("memcached-11211.pid")).unwrap();
    assert!(
        Command::new("kill")
            .arg(pid.trim())
            .status()
            .unwrap()
            .success()
    );
    // SIGTERM is asked, not done: wait until the process is gone (a
    // memcached still answering made the check pass, once).
    let gone = std::path::Path::new("/proc").join(pid.trim());
    let deadline = std::time::Instant::now() + support::READY_LIMIT;
    while gone.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "memcached did not exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (code, report, all) = check(&config(&cluster, ""));
    assert_eq!(code, 1, "{all}");
    assert_eq!(report["store"][0]["ok"], false, "{all}");
    for (_, verdict) in verdicts(&report) {
        assert_eq!(verdict, "store_unreachable", "{all}");
    }
}

#[test]
fn a_missing_probe_is_reported_and_a_bad_config_exits_2() {
    let cluster = Cluster::start(nets::SESSION_MISSING_PROBE, &["--no-probe", "web03"]);
    let (code, report, all) = check(&config(&cluster, ""));
    assert_eq!(code, 1, "{all}");
    assert_eq!(
        verdicts(&report),
        pairs(&[("web01", "ok"), ("web02", "ok"), ("web03", "probe_missing")]),
        "{all}"
    );
    assert!(
        node(&report, "web03")["problems"]
            .to_string()
            .contains("Primary script unknown"),
        "{all}"
    );

    let bad = support::write_file(&cluster.dir, "bad.yaml", "listen: 1\nbackends: 3\n");
    let (code, _, _) = check(&bad);
    assert_eq!(code, 2);
}

#[test]
fn the_config_session_section_decides_what_is_expected() {
    // Every node agrees, but not with what the operator expects.
    let cluster = Cluster::start(nets::SESSION_CONFIG_EXPECTED, &[]);
    let extra = format!(
        "session:\n  save_handler: redis\n  save_path: \"tcp://{}:6379\"\n",
        cluster.lb_ip()
    );
    let (code, report, all) = check(&config(&cluster, &extra));
    assert_eq!(code, 1, "{all}");
    assert_eq!(
        report["expected"]["source"]
            .as_str()
            .map(|s| s.contains("config")),
        Some(true),
        "{all}"
    );
    for (_, verdict) in verdicts(&report) {
        assert_eq!(verdict, "mismatch", "{all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_drains_the_misconfigured_node_and_a_session_survives_round_robin() {
    let cluster = Cluster::start(
        nets::SESSION_SERVE_DRAINS,
        &["--php-value", "web02:session.save_handler=files"],
    );
    let addr = cluster.lb_addr();
    let health = "health:\n  interval: 1s\n  ping_path: /fpm-ping\n  probe_script: /usr/share/fpmlb/probe.php\n  session_interval: 1s\n";
    let yaml = format!(
        "{}{health}{}",
        base_yaml(addr, &cluster.docroot()),
        cluster.backends_yaml()
    );
    let lb = Fpmlb::start(&cluster.dir, addr, &yaml);

    // Drained within two session checks, counted by the checker's own log.
    // The first drain is web02's: the DRAINED line itself names it (the
    // start-up lines name every backend, so "web02 somewhere before" would
    // hold whichever node was drained).
    let mut drained_in_round = None;
    for _ in 0..300 {
        let log = lb.log_text();
        let lines: Vec<&str> = log.lines().collect();
        if let Some(at) = lines.iter().position(|l| l.contains("DRAINED")) {
            assert!(
                lines[at].contains("backend=web02"),
                "the first drain is not web02's:\n{log}"
            );
            let done = lines[..at]
                .iter()
                .filter(|l| l.contains("session check done"))
                .count();
            drained_in_round = Some(done + 1);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let round =
        drained_in_round.unwrap_or_else(|| panic!("web02 never drained:\n{}", lb.log_text()));
    assert!(round <= 2, "drained in session check {round}");

    // One session, 30 round-robin requests: its TEST value never changes.
    let c = client(false);
    let req = |cookie: Option<&str>| {
        let mut b = http::Request::get(lb.url("/session.php"));
        if let Some(c) = cookie {
            b = b.header("cookie", c);
        }
        b.body(Full::new(Bytes::new())).unwrap()
    };
    let first = send(&c, req(None)).await.unwrap();
    let set_cookie = first
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let test = first.json()["TEST"].clone();
    let mut nodes = std::collections::HashSet::new();
    for i in 0..30 {
        let r = send(&c, req(Some(&cookie))).await.unwrap();
        assert_eq!(r.status, 200);
        let j = r.json();
        assert_eq!(
            j["TEST"], test,
            "request {i} on {} saw another session",
            j["node"]
        );
        nodes.insert(j["node"].as_str().unwrap().to_string());
    }
    assert!(!nodes.contains("web02"), "{nodes:?}");
    assert_eq!(nodes.len(), 2, "{nodes:?}");
}
