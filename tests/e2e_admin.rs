//! The admin API against real clusters: status.json figures from php-fpm,
//! /metrics read by a real OpenMetrics parser, drain/enable through the API
//! with the bearer token, and the status page rendered by a real headless
//! browser (Debian's chromium).
//!
//! Each test has its own 127.0.N.x network (tests/support/nets.rs). Needs chromium and python3-prometheus-client
//! (integration/install.sh installs both).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use support::{Cluster, Fpmlb, Resp, chromium, client, get, nets, send};

const HEALTH: &str = "health:\n  interval: 1s\n  ping_path: /fpm-ping\n  status_path: /fpm-status\n  probe_script: /usr/share/fpmlb/probe.php\n  session_interval: 1s\n";

const TOKEN: &str = "t0p-s3cret";

/// fpmlb in front of `cluster`, its admin API on 127.0.N.1:9180.
fn start_lb(cluster: &Cluster, token: Option<&str>) -> (Fpmlb, String) {
    let addr = cluster.lb_addr();
    let admin = cluster.net.addr(1, 9180);
    let token = token.map_or(String::new(), |t| format!("  token: \"{t}\"\n"));
    let yaml = format!(
        "listen: \"{addr}\"\nworkers: 2\ndocument_root: {}\nadmin:\n  listen: \"{admin}\"\n{token}log:\n  level: info\n{HEALTH}{}",
        cluster.docroot(),
        cluster.backends_yaml()
    );
    let lb = Fpmlb::start_with_admin(&cluster.dir, addr, Some(admin), &yaml);
    (lb, format!("http://{admin}"))
}

async fn post(url: &str, auth: Option<&str>) -> Resp {
    let mut req = http::Request::post(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    send(&client(false), req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
}

async fn status_json(admin: &str) -> Value {
    let r = get(&client(false), &format!("{admin}/status.json"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn backend<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no backend {name} in {doc:#}"))
}

/// Polls status.json until `pred` holds (at most `secs`); returns the last document.
async fn poll_status(admin: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> (bool, Value) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let doc = status_json(admin).await;
        if pred(&doc) {
            return (true, doc);
        }
        if Instant::now() >= deadline {
            return (false, doc);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Which node answered each of `n` GETs to `/` (index.php says `hello from webNN`).
async fn who_answers(lb: &Fpmlb, n: usize) -> BTreeMap<String, usize> {
    let c = client(false);
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let r = get(&c, &lb.url("/")).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let node = r
            .text()
            .trim()
            .strip_prefix("hello from ")
            .unwrap_or_else(|| panic!("unexpected answer {:?}", r.text()))
            .to_string();
        *seen.entry(node).or_insert(0) += 1;
    }
    seen
}

/// Parses OpenMetrics text with the Python client's strict parser (a real
/// one, not ours); returns `{family: {"type": .., "samples": [[name, labels, value]]}}`.
fn parse_openmetrics(text: &str) -> Value {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))
"#;
    // Debian's interpreter: python3-prometheus-client lives in its dist-packages.
    let mut child = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 (integration/install.sh installs python3-prometheus-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The `<tr ...>...</tr>` of one backend in the dumped DOM.
fn row<'a>(dom: &'a str, name: &str) -> &'a str {
    tr_with(dom, &format!("data-backend=\"{name}\""))
}

/// The first `<tr ...>...</tr>` whose tag has `marker`.
fn tr_with<'a>(dom: &'a str, marker: &str) -> &'a str {
    let at = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no row with {marker} in:\n{dom}"));
    let start = dom[..at].rfind("<tr").unwrap();
    let end = at + dom[at..].find("</tr>").unwrap();
    &dom[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_and_metrics_show_every_backend() {
    let cluster = Cluster::start(nets::ADMIN_STATUS_AND_METRICS, &[]);
    let children: u64 = cluster.env["CHILDREN"].parse().unwrap();
    let (lb, admin) = start_lb(&cluster, Some(TOKEN));
    let nodes = cluster.nodes();

    // php-fpm's figures arrive with the first health rounds. (php-fpm
    // counts a worker twice now and then: wait for a round where every pool
    // reports its size.)
    let (ok, doc) = poll_status(&admin, 30, |doc| {
        doc["backends"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["pool"]["total_processes"].as_u64() == Some(children))
    })
    .await;
    assert!(
        ok,
        "pool figures never matched {children} children:\n{doc:#}"
    );
    let backends = doc["backends"].as_array().unwrap();
    assert_eq!(backends.len(), nodes.len());
    for (name, addr) in &nodes {
        let b = backend(&doc, name);
        assert_eq!(b["address"], addr.as_str());
        assert_eq!(b["state"], "up");
        assert!(b["drained_by"].is_null());
        assert_eq!(b["pool"]["pool"], name.as_str());
        assert_eq!(b["pool"]["process_manager"], "static");
        for key in [
            "active_processes",
            "idle_processes",
            "listen_queue",
            "max_children_reached",
            "slow_requests",
            "accepted_conn",
        ] {
            assert!(b["pool"][key].is_u64(), "{key} not an integer: {b:#}");
        }
        for key in ["requests", "errors", "weight"] {
            assert!(b[key].is_u64(), "{key} not an integer: {b:#}");
        }
        assert!(b["connections"]["cap"].is_u64());
        assert!(b["responses"]["2xx"].is_u64());
    }
    assert!(doc["uptime_seconds"].is_u64());

    // Traffic shows in every backend's count.
    let before: BTreeMap<String, u64> = nodes
        .iter()
        .map(|(n, _)| (n.clone(), backend(&doc, n)["requests"].as_u64().unwrap()))
        .collect();
    let seen = who_answers(&lb, 12).await;
    assert_eq!(seen.len(), nodes.len(), "{seen:?}");
    let (ok, doc) = poll_status(&admin, 10, |doc| {
        before
            .iter()
            .all(|(n, &was)| backend(doc, n)["requests"].as_u64().unwrap() >= was + seen[n] as u64)
    })
    .await;
    assert!(
        ok,
        "request counts did not rise by {seen:?} from {before:?}:\n{doc:#}"
    );
    // The session verdict is there too, by node.
    let (ok, doc) = poll_status(&admin, 20, |doc| !doc["session"].is_null()).await;
    assert!(ok, "no session report:\n{doc:#}");
    assert_eq!(doc["session"]["verdict"], "ok", "{doc:#}");
    assert_eq!(backend(&doc, "web01")["session"]["verdict"], "ok");
    assert_eq!(
        doc["read_ahead"]["memory_budget_bytes"].as_u64(),
        Some(64 << 20),
        "{doc:#}"
    );

    // /metrics, read without the token, through a real parser.
    let r = get(&client(false), &format!("{admin}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let ctype = r.headers["content-type"].to_str().unwrap();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let families = parse_openmetrics(&r.text());
    let expected = [
        ("fpmlb_requests", "counter"),
        ("fpmlb_backend_failures", "counter"),
        ("fpmlb_upstream_latency_seconds", "histogram"),
        ("fpmlb_backend_up", "gauge"),
        ("fpmlb_backend_alive", "gauge"),
        ("fpmlb_backend_session_ok", "gauge"),
        ("fpmlb_backend_enabled", "gauge"),
        ("fpmlb_pool_connections", "gauge"),
        ("fpmlb_pool_connection_cap", "gauge"),
        ("fpmlb_pool_connections_given_back", "counter"),
        ("fpmlb_pool_connections_recycled", "counter"),
        ("fpmlb_fpm_active_processes", "gauge"),
        ("fpmlb_fpm_idle_processes", "gauge"),
        ("fpmlb_fpm_total_processes", "gauge"),
        ("fpmlb_fpm_listen_queue", "gauge"),
        ("fpmlb_fpm_max_children_reached", "gauge"),
        ("fpmlb_fpm_slow_requests", "gauge"),
        ("fpmlb_session_resets", "counter"),
    ];
    let names: BTreeSet<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
    for (family, kind) in expected {
        let f = &families[family];
        assert_eq!(f["type"], kind, "{family}: {f:#}");
        let labelled: BTreeSet<String> = f["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s[1]["backend"].as_str().map(str::to_string))
            .collect();
        assert_eq!(labelled, names, "{family}: backend labels");
    }
    // Read-ahead: all backends together, no backend label.
    for (family, kind) in [
        ("fpmlb_read_ahead_streamed", "counter"),
        ("fpmlb_read_ahead_taken_over", "counter"),
        ("fpmlb_read_ahead_spilled", "counter"),
        ("fpmlb_read_ahead_waited", "counter"),
        ("fpmlb_read_ahead_temp_written_bytes", "counter"),
        ("fpmlb_read_ahead_temp_write_failures", "counter"),
        ("fpmlb_read_ahead_held_bytes", "gauge"),
        ("fpmlb_read_ahead_budget_bytes", "gauge"),
    ] {
        let f = &families[family];
        assert_eq!(f["type"], kind, "{family}: {f:#}");
    }
    let memory = &families["fpmlb_read_ahead_budget_bytes"]["samples"][0];
    assert_eq!(memory[1]["store"], "memory", "{memory}");
    assert_eq!(memory[2].as_f64(), Some(f64::from(64 << 20)), "{memory}");
    let samples = |family: &str| -> Vec<(String, Value, f64)> {
        families[family]["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s[0].as_str().unwrap().to_string(),
                    s[1].clone(),
                    s[2].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let ok_responses: f64 = samples("fpmlb_requests")
        .iter()
        .filter(|(n, l, _)| n == "fpmlb_requests_total" && l["class"] == "2xx")
        .map(|(_, _, v)| v)
        .sum();
    assert!(ok_responses >= 12.0, "{ok_responses}");
    // Every exchange is in the latency histogram (no traffic runs now).
    for node in &names {
        let responses: f64 = samples("fpmlb_requests")
            .iter()
            .filter(|(_, l, _)| l["backend"] == node.as_str())
            .map(|(_, _, v)| v)
            .sum();
        let observed = samples("fpmlb_upstream_latency_seconds")
            .into_iter()
            .find(|(n, l, _)| {
                n == "fpmlb_upstream_latency_seconds_count" && l["backend"] == node.as_str()
            })
            .map(|(_, _, v)| v);
        assert_eq!(
            observed,
            Some(responses),
            "{node}: histogram count vs responses"
        );
    }
    for (name, labels, v) in samples("fpmlb_backend_up") {
        assert_eq!(v, 1.0, "{name} {labels}");
    }
    for (_, labels, v) in samples("fpmlb_fpm_total_processes") {
        assert!(v >= 1.0, "{labels}: {v}");
    }
    let states: BTreeSet<String> = samples("fpmlb_pool_connections")
        .iter()
        .map(|(_, l, _)| l["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        states,
        BTreeSet::from(["idle", "in_use", "waiting"].map(String::from))
    );
    // Client connections open at once go to the serving thread with the
    // fewest (`workers: 2`): two kept-alive clients, one on each.
    let mut kept = Vec::new();
    for _ in 0..2 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(lb.addr).await.unwrap();
        s.write_all(b"GET /hello.php HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        kept.push(s);
    }
    let r = get(&client(false), &format!("{admin}/metrics"))
        .await
        .unwrap();
    let families = parse_openmetrics(&r.text());
    let threads = &families["fpmlb_thread_connections"];
    assert_eq!(threads["type"], "gauge", "{threads:#}");
    let open: BTreeMap<String, f64> = threads["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s[1]["thread"].as_str().unwrap().to_string(),
                s[2].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(open.len(), 2, "{open:?}");
    assert!(open.values().all(|&n| n >= 1.0), "{open:?}");
    drop(kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_and_enable_through_the_api() {
    let cluster = Cluster::start(nets::ADMIN_DRAIN_AND_ENABLE, &[]);
    let (lb, admin) = start_lb(&cluster, Some(TOKEN));
    let drain = format!("{admin}/backends/web02/drain");
    let enable = format!("{admin}/backends/web02/enable");

    // Without the token, or with a wrong one: 401, and nothing changes.
    let r = post(&drain, None).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.headers.contains_key("www-authenticate"));
    let r = post(&drain, Some("Bearer not-the-token")).await;
    assert_eq!(r.status, 401);
    let r = get(&client(false), &drain).await.unwrap();
    assert_eq!(r.status, 405);
    let r = post(
        &format!("{admin}/backends/web99/drain"),
        Some(&format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(r.status, 404);
    let seen = who_answers(&lb, 12).await;
    assert!(seen.contains_key("web02"), "{seen:?}");
    // Never on the public listener.
    for path in ["/status.json", "/backends/web02/drain"] {
        let r = post(&lb.url(path), Some(&format!("Bearer {TOKEN}"))).await;
        assert_eq!(r.status, 404, "{path} on the public listener: {}", r.text());
    }

    let r = post(&drain, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["backend"], "web02");
    assert_eq!(j["state"], "drained");
    assert_eq!(j["drained_by"], "operator");
    // The next requests already avoid it.
    let seen = who_answers(&lb, 12).await;
    assert!(
        !seen.contains_key("web02"),
        "a drained node got traffic: {seen:?}"
    );
    assert_eq!(seen.values().sum::<usize>(), 12);
    let doc = status_json(&admin).await;
    assert_eq!(backend(&doc, "web02")["state"], "drained");
    assert_eq!(backend(&doc, "web02")["drained_by"], "operator");
    assert_eq!(backend(&doc, "web01")["state"], "up");
    let log = lb.log_text();
    assert!(
        log.lines().any(|l| l.contains("DRAINED by operator")
            && l.contains("backend=web02")
            && l.contains("client=")),
        "no log line for the drain:\n{log}"
    );
    let r = post(&drain, Some("Bearer not-the-token")).await;
    assert_eq!(r.status, 401);

    let r = post(&enable, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"], "up");
    let seen = who_answers(&lb, 12).await;
    assert!(
        seen.contains_key("web02"),
        "web02 did not come back: {seen:?}"
    );
    assert!(
        lb.log_line_with(&["ENABLED by operator", "backend=web02"])
            .is_some(),
        "no log line for the enable:\n{}",
        lb.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_a_headless_browser() {
    // web02's pool file overrides the session handler: the session checker
    // drains it; web03 is drained by an operator (no token configured).
    let cluster = Cluster::start(
        nets::ADMIN_STATUS_PAGE,
        &["--php-value", "web02:session.save_handler=files"],
    );
    let (_lb, admin) = start_lb(&cluster, None);
    let (ok, doc) = poll_status(&admin, 30, |doc| {
        backend(doc, "web02")["session"]["verdict"] == "mismatch"
            && backend(doc, "web02")["drained_by"] == "health"
            && backend(doc, "web01")["pool"]["total_processes"].is_u64()
    })
    .await;
    assert!(ok, "web02 never drained for its session mismatch:\n{doc:#}");
    let differing: Vec<&str> = backend(&doc, "web02")["session"]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["setting"].as_str())
        .collect();
    assert!(differing.contains(&"session.save_handler"), "{differing:?}");
    let r = post(&format!("{admin}/backends/web03/drain"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let dom = chromium(&["--dump-dom"], &format!("{admin}/status"));
    assert_eq!(
        dom.matches("<tr class=\"backend ").count(),
        3,
        "one row per backend:\n{dom}"
    );
    let web01 = row(&dom, "web01");
    assert!(web01.contains("class=\"backend state-up\""), "{web01}");
    assert!(!web01.contains("badge drained"), "{web01}");
    let web02 = row(&dom, "web02");
    assert!(
        web02.contains("class=\"backend state-drained drained drained-health\""),
        "{web02}"
    );
    assert!(web02.contains("drained (session mismatch)"), "{web02}");
    assert!(web02.contains(">mismatch<"), "{web02}");
    // The differing settings, in the row under it.
    let details = tr_with(&dom, "data-details-for=\"web02\"");
    assert!(details.contains("drained-health"), "{details}");
    assert!(
        details.contains("<code class=\"setting\">session.save_handler</code>"),
        "{details}"
    );
    let web03 = row(&dom, "web03");
    assert!(
        web03.contains("class=\"backend state-drained drained drained-operator\""),
        "{web03}"
    );
    assert!(web03.contains("drained (operator)"), "{web03}");
    // The header: the cluster's verdict and the expected store.
    assert!(dom.contains("id=\"cluster-verdict\">fail<"), "{dom}");
    assert!(
        dom.contains("Expected store: <code>memcached</code>"),
        "{dom}"
    );
    // Nothing loaded from elsewhere.
    assert!(!dom.contains("src=\"http"), "{dom}");
}
