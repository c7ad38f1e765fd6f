use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, StatusCode};
use http_body_util::BodyExt;

use super::*;
use crate::config::Balance;
use crate::fastcgi::conn::Endpoint;
use crate::health::fpm_status::FpmStatus;
use crate::health::passive::FailureWindow;
use crate::http::budget::ByteBudget;
use crate::http::read_ahead::ReadAhead;
use crate::runtime::Workers;
use crate::session::compare::Difference;
use crate::session::consequence::Consequence;
use crate::session::rules::{Judgement, Proof};
use crate::session::verdict::{
    ClusterReport, ClusterWarning, ExpectedSummary, NodeReport, Verdict,
};
use crate::upstream::pool::{Pool, PoolSettings};
use crate::upstream::{BackendSet, Upstream};

fn backend(name: &str, port: u16) -> Arc<Backend> {
    let endpoint = Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    let pool = Pool::new(
        endpoint.clone(),
        PoolSettings {
            max_conns: 4,
            queue_size: 8,
            connect_timeout: Duration::from_secs(1),
            queue_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
        },
    );
    let failures = FailureWindow::new(1, Duration::from_secs(10));
    Arc::new(Backend::new(name.to_string(), endpoint, 1, pool, failures))
}

fn status(total: u64) -> FpmStatus {
    FpmStatus::parse(
        format!(
            r#"{{"pool":"www","process manager":"static","start since":42,"accepted conn":17,"listen queue":0,"max listen queue":1,"listen queue len":511,"idle processes":3,"active processes":1,"total processes":{total},"max active processes":2,"max children reached":0,"slow requests":0}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

fn mismatch_report() -> ClusterReport {
    let mut bad = NodeReport::new("web02", "127.0.0.3:9000");
    bad.verdict = Verdict::Mismatch;
    bad.differences.push(Difference::judged(
        "session.save_handler",
        "memcached",
        "files",
        Judgement {
            consequence: Consequence::Lost,
            effect: "this node keeps sessions in files, the others in memcached".into(),
            proof: Proof::RoundTrip,
        },
    ));
    bad.differences.push(Difference::judged(
        "session.sid_length",
        "26",
        "48",
        Judgement {
            consequence: Consequence::Harmless,
            effect: "only shapes the ids this node creates".into(),
            proof: Proof::RoundTrip,
        },
    ));
    ClusterReport {
        verdict: "fail",
        expected: Some(ExpectedSummary {
            save_handler: "memcached".into(),
            save_path: "127.0.0.1:11211".into(),
            source: "majority (web01, <web03>)".into(),
            session_name: "PHPSESSID".into(),
        }),
        listener: None,
        store: Vec::new(),
        nodes: vec![NodeReport::new("web01", "127.0.0.2:9000"), bad],
        warnings: vec![ClusterWarning {
            consequence: Consequence::Fragile,
            text: "one memcached server holds every session".into(),
        }],
        notes: Vec::new(),
    }
}

struct Fixture {
    admin: Admin,
    backends: Vec<Arc<Backend>>,
    /// The proxy's read-ahead (shares its budgets and counters).
    read_ahead: ReadAhead,
    /// The proxy's compression budget: 2000 bytes.
    compression: ByteBudget,
}

/// 1500 bytes of the compression budget held, as by responses being
/// compressed.
fn busy_compression(f: &Fixture) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let mut held = None;
    assert!(f.compression.take(1500, &mut held));
    held
}

/// Read-ahead within 1000 bytes of memory and 5000 of temp files.
fn read_ahead() -> ReadAhead {
    ReadAhead {
        memory: 100,
        max_temp_file: 1000,
        memory_budget: ByteBudget::new(1000),
        temp_budget: ByteBudget::new(5000),
        stats: Arc::default(),
    }
}

/// Read-ahead as if three responses were streamed, two read ahead, one of
/// them spilled 700 bytes to its file and waited; 300 bytes held in memory
/// and 700 in temp files (the held shares are returned).
fn busy_read_ahead(r: &ReadAhead) -> [Option<tokio::sync::OwnedSemaphorePermit>; 2] {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &r.stats;
    s.streamed.store(3, Relaxed);
    s.taken_over.store(2, Relaxed);
    s.spilled.store(1, Relaxed);
    s.waited.store(1, Relaxed);
    s.temp_bytes.store(700, Relaxed);
    s.temp_failures.store(4, Relaxed);
    let (mut memory, mut file) = (None, None);
    assert!(r.memory_budget.take(300, &mut memory));
    assert!(r.temp_budget.take(700, &mut file));
    [memory, file]
}

fn fixture(token: Option<&str>) -> Fixture {
    let backends = vec![
        backend("web01", 1),
        backend("web02", 2),
        backend("<b>x#1", 3),
    ];
    let upstream = Arc::new(Upstream::new(BackendSet::new(
        backends.clone(),
        Balance::RoundRobin,
    )));
    let read_ahead = read_ahead();
    let compression = ByteBudget::new(2000);
    let state = Arc::new(AdminState {
        upstream,
        latest_report: Arc::new(ArcSwap::from_pointee(None)),
        read_ahead: Arc::new(ArcSwap::from_pointee(read_ahead.clone())),
        compression_memory: Arc::new(ArcSwap::from_pointee(compression.clone())),
        token: token.map(str::to_string),
        hosts: Vec::new(),
        started: Instant::now(),
        workers: Some(Arc::new(Workers::start(2).unwrap())),
    });
    Fixture {
        admin: Admin::new(state),
        backends,
        read_ahead,
        compression,
    }
}

const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4321);

fn call(f: &Fixture, method: &str, path: &str, auth: Option<&str>) -> Response<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    f.admin.handle(&req.body(()).unwrap(), CLIENT)
}

async fn body_text(resp: Response<Body>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn status_json_has_every_backend_with_integers() {
    let f = fixture(None);
    f.backends[0].record_exchange(200, Duration::from_millis(4));
    f.backends[0].record_exchange(503, Duration::from_millis(8));
    f.backends[0].record_failure(tokio::time::Instant::now());
    f.backends[1].set_fpm_status(Some(status(4)));
    let _held = busy_read_ahead(&f.read_ahead);
    let _compressing = busy_compression(&f);
    let resp = call(&f, "GET", "/status.json", None);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
    let j: serde_json::Value = serde_json::from_str(&body_text(resp).await).unwrap();
    let bs = j["backends"].as_array().unwrap();
    assert_eq!(bs.len(), 3);
    assert_eq!(bs[0]["name"], "web01");
    assert_eq!(bs[0]["address"], "127.0.0.1:1");
    assert_eq!(bs[0]["requests"].as_u64(), Some(2));
    assert_eq!(bs[0]["responses"]["5xx"].as_u64(), Some(1));
    assert_eq!(bs[0]["errors"].as_u64(), Some(2), "one 5xx + one failure");
    assert_eq!(bs[0]["latency_mean_ms"].as_f64(), Some(6.0));
    assert_eq!(bs[0]["connections"]["cap"].as_u64(), Some(4));
    assert!(bs[0]["pool"].is_null());
    assert!(bs[0]["session"].is_null());
    assert_eq!(bs[1]["pool"]["total_processes"].as_u64(), Some(4));
    assert_eq!(bs[1]["pool"]["process_manager"], "static");
    assert_eq!(bs[1]["state"], "up");
    assert!(bs[1]["drained_by"].is_null());
    assert!(bs[1]["latency_mean_ms"].is_null());
    assert!(j["session"].is_null());
    assert!(j["uptime_seconds"].is_u64());
    let r = &j["read_ahead"];
    for (key, want) in [
        ("streamed", 3),
        ("read_ahead", 2),
        ("spilled", 1),
        ("waited", 1),
        ("temp_file_bytes_written", 700),
        ("temp_file_failures", 4),
        ("memory_bytes", 300),
        ("memory_budget_bytes", 1000),
        ("temp_file_bytes", 700),
        ("temp_file_budget_bytes", 5000),
    ] {
        assert_eq!(r[key].as_u64(), Some(want), "{key} in {r:#}");
    }
    assert_eq!(j["compression"]["memory_bytes"].as_u64(), Some(1500));
    assert_eq!(j["compression"]["memory_budget_bytes"].as_u64(), Some(2000));
    for key in ["cheaper_coding_for_memory", "uncompressed_for_memory"] {
        assert_eq!(j["compression"][key].as_u64(), Some(0), "{key}");
    }
}

#[tokio::test]
async fn drain_and_enable_need_the_token() {
    let f = fixture(Some("s3cret"));
    let resp = call(&f, "POST", "/backends/web02/drain", None);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key(WWW_AUTHENTICATE));
    let resp = call(&f, "POST", "/backends/web02/drain", Some("Bearer nope"));
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(f.backends[1].is_enabled());
    // Unknown backends are not revealed without the token either.
    let resp = call(&f, "POST", "/backends/nosuch/drain", None);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let resp = call(&f, "POST", "/backends/web02/drain", Some("Bearer s3cret"));
    assert_eq!(resp.status(), StatusCode::OK);
    let j: serde_json::Value = serde_json::from_str(&body_text(resp).await).unwrap();
    assert_eq!(j["backend"], "web02");
    assert_eq!(j["state"], "drained");
    assert_eq!(j["drained_by"], "operator");
    assert!(!f.backends[1].is_enabled());

    let resp = call(&f, "POST", "/backends/web02/enable", Some("Bearer s3cret"));
    assert_eq!(resp.status(), StatusCode::OK);
    let j: serde_json::Value = serde_json::from_str(&body_text(resp).await).unwrap();
    assert_eq!(j["state"], "up");
    assert!(f.backends[1].is_enabled());

    let resp = call(&f, "POST", "/backends/nosuch/drain", Some("Bearer s3cret"));
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// The last backend up in its group is drained only with `?force=1`: a
/// script on the same host reaching a loopback admin API without a token
/// cannot take the site down one backend after the other.
#[tokio::test]
async fn the_last_backend_up_is_drained_only_by_force() {
    let f = fixture(None);
    for name in ["web01", "web02"] {
        let resp = call(&f, "POST", &format!("/backends/{name}/drain"), None);
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
    }
    let resp = call(&f, "POST", "/backends/%3Cb%3Ex%231/drain", None);
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(body_text(resp).await.contains("force=1"));
    assert!(f.backends[2].is_enabled());
    let resp = call(&f, "POST", "/backends/%3Cb%3Ex%231/drain?force=1", None);
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!f.backends[2].is_enabled());
    // Draining one already out of rotation needs no force.
    let resp = call(&f, "POST", "/backends/web01/drain", None);
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn methods_and_paths() {
    let f = fixture(None);
    let resp = call(&f, "GET", "/backends/web01/drain", None);
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()[ALLOW], "POST");
    assert!(f.backends[0].is_enabled());
    let resp = call(&f, "POST", "/status", None);
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        call(&f, "GET", "/nope", None).status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&f, "POST", "/backends/web01/reboot", None).status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(call(&f, "GET", "/", None).status(), StatusCode::FOUND);
    // No token configured: the write endpoints are open. Names are
    // percent-decoded (`#` from a hostname's addresses must be %23).
    let resp = call(&f, "POST", "/backends/%3Cb%3Ex%231/drain", None);
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!f.backends[2].is_enabled());
}

#[tokio::test]
async fn status_json_gives_each_difference_its_consequence() {
    let f = fixture(None);
    f.admin
        .state
        .latest_report
        .store(Arc::new(Some(mismatch_report())));
    let resp = call(&f, "GET", "/status.json", None);
    let j: serde_json::Value = serde_json::from_str(&body_text(resp).await).unwrap();
    let web02 = &j["backends"][1]["session"];
    assert_eq!(web02["verdict"], "mismatch", "{j:#}");
    let d = &web02["differences"];
    assert_eq!(
        (&d[0]["consequence"], &d[1]["consequence"]),
        (&"lost".into(), &"harmless".into()),
        "{j:#}"
    );
    assert_eq!(
        d[0]["effect"],
        "this node keeps sessions in files, the others in memcached"
    );
    assert_eq!(
        j["session"]["warnings"][0]["consequence"], "fragile",
        "{j:#}"
    );
}

#[tokio::test]
async fn page_marks_drained_rows_and_escapes() {
    let f = fixture(None);
    f.backends[0].set_enabled(false);
    f.backends[1].set_session_ok(false);
    let _held = busy_read_ahead(&f.read_ahead);
    let _compressing = busy_compression(&f);
    f.admin
        .state
        .latest_report
        .store(Arc::new(Some(mismatch_report())));
    let resp = call(&f, "GET", "/status", None);
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = body_text(resp).await;
    assert_eq!(html.matches("<tr class=\"backend ").count(), 3);
    assert!(html.contains(
        "<tr class=\"backend state-drained drained drained-operator\" data-backend=\"web01\""
    ));
    assert!(html.contains("drained (operator)"));
    assert!(
        html.contains("data-backend=\"web02\" data-state=\"drained\" data-drained-by=\"health\"")
    );
    assert!(html.contains("drained (session mismatch)"));
    assert!(html.contains("<code class=\"setting\">session.save_handler</code>"));
    // Each difference says what it does to sessions, in words; harmless ones are notes.
    assert!(html.contains(
        "<li class=\"difference fails\" data-consequence=\"lost\"><span class=\"consequence\">sessions lost</span>"
    ));
    assert!(html.contains("this node keeps sessions in files, the others in memcached"));
    assert!(html.contains(
        "<li class=\"difference harmless\" data-consequence=\"harmless\"><span class=\"consequence\">harmless</span>"
    ));
    assert!(html.contains(
        "<span class=\"consequence\">shared now, lost when a store server fails</span>: one memcached server holds every session"
    ));
    assert!(html.contains("&lt;b&gt;x#1"));
    assert!(!html.contains("<b>x#1"));
    assert!(html.contains("majority (web01, &lt;web03&gt;)"));
    assert!(html.contains("id=\"cluster-verdict\">fail<"));
    assert!(html.contains("<div class=\"summary none\" id=\"read-ahead\">"));
    assert!(html.contains(">read ahead: 2</div>"), "{html}");
    assert!(html.contains("<div>spilled to a temp file: 1</div>"));
    assert!(html.contains("<div>in memory: 300 B of 1000 B</div>"));
    assert!(html.contains("<div>in temp files: 700 B of 4.9 KiB</div>"));
    assert!(html.contains("temp file failures: 4"));
    assert!(
        html.contains(
            ">compressors: 1.5 KiB of 2.0 KiB; for want of it, 0 responses took a cheaper coding, 0 none</div>"
        ),
        "{html}"
    );
    assert!(!html.contains("src="), "no external assets");
}

#[tokio::test]
async fn metrics_are_openmetrics_with_backend_labels() {
    let f = fixture(None);
    // (Not record_exchange: whether it feeds the histogram is not ours.)
    f.backends[0].stats.record_status(200);
    f.backends[0]
        .stats
        .latency
        .observe(Duration::from_millis(3));
    f.backends[0].stats.latency.observe(Duration::from_secs(20));
    f.backends[1].set_fpm_status(Some(status(5)));
    f.backends[1].set_enabled(false);
    let _held = busy_read_ahead(&f.read_ahead);
    let _compressing = busy_compression(&f);
    let (_hold, held) = tokio::sync::oneshot::channel::<()>();
    f.admin
        .state
        .workers
        .as_ref()
        .unwrap()
        .spawn_connection(async move {
            let _ = held.await;
        });
    let resp = call(&f, "GET", "/metrics", None);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], metrics::CONTENT_TYPE);
    let text = body_text(resp).await;
    assert!(text.ends_with("# EOF\n"), "{text}");
    for line in [
        "# TYPE fpmlb_requests counter",
        "fpmlb_requests_total{backend=\"web01\",class=\"2xx\"} 1",
        "fpmlb_requests_total{backend=\"web02\",class=\"5xx\"} 0",
        "fpmlb_backend_failures_total{backend=\"web01\"} 0",
        "# TYPE fpmlb_upstream_latency_seconds histogram",
        "fpmlb_upstream_latency_seconds_bucket{le=\"0.005\",backend=\"web01\"} 1",
        "fpmlb_upstream_latency_seconds_bucket{le=\"10.0\",backend=\"web01\"} 1",
        "fpmlb_upstream_latency_seconds_bucket{le=\"+Inf\",backend=\"web01\"} 2",
        "fpmlb_upstream_latency_seconds_count{backend=\"web01\"} 2",
        "fpmlb_backend_up{backend=\"web02\"} 0",
        "fpmlb_backend_enabled{backend=\"web02\"} 0",
        "fpmlb_backend_alive{backend=\"web02\"} 1",
        "fpmlb_backend_session_ok{backend=\"web01\"} 1",
        "fpmlb_pool_connections{backend=\"web01\",state=\"in_use\"} 0",
        "fpmlb_pool_connection_cap{backend=\"web01\"} 4",
        "fpmlb_fpm_total_processes{backend=\"web02\"} 5",
        "fpmlb_fpm_max_children_reached{backend=\"web02\"} 0",
        "fpmlb_session_resets_total{backend=\"web01\"} 0",
        "fpmlb_requests_total{backend=\"<b>x#1\",class=\"2xx\"} 0",
        "# TYPE fpmlb_read_ahead_streamed counter",
        "fpmlb_read_ahead_streamed_total 3",
        "# TYPE fpmlb_thread_connections gauge",
        "fpmlb_thread_connections{thread=\"0\"} 1",
        "fpmlb_thread_connections{thread=\"1\"} 0",
        "fpmlb_read_ahead_taken_over_total 2",
        "fpmlb_read_ahead_spilled_total 1",
        "fpmlb_read_ahead_waited_total 1",
        "# UNIT fpmlb_read_ahead_temp_written_bytes bytes",
        "fpmlb_read_ahead_temp_written_bytes_total 700",
        "fpmlb_read_ahead_temp_write_failures_total 4",
        "# TYPE fpmlb_read_ahead_held_bytes gauge",
        "fpmlb_read_ahead_held_bytes{store=\"memory\"} 300",
        "fpmlb_read_ahead_held_bytes{store=\"temp_file\"} 700",
        "fpmlb_read_ahead_budget_bytes{store=\"memory\"} 1000",
        "fpmlb_read_ahead_budget_bytes{store=\"temp_file\"} 5000",
        "# TYPE fpmlb_compression_memory_held_bytes gauge",
        "fpmlb_compression_memory_held_bytes 1500",
        "fpmlb_compression_memory_budget_bytes 2000",
        "# TYPE fpmlb_compression_cheaper_coding_for_memory counter",
        "fpmlb_compression_cheaper_coding_for_memory_total 0",
        "# TYPE fpmlb_compression_uncompressed_for_memory counter",
        "fpmlb_compression_uncompressed_for_memory_total 0",
    ] {
        assert!(text.contains(line), "{line} missing in:\n{text}");
    }
    // php-fpm figures only for backends whose status page was read.
    assert!(!text.contains("fpmlb_fpm_total_processes{backend=\"web01\"}"));
}

#[test]
fn backend_paths() {
    assert_eq!(
        backend_action("/backends/web01/drain"),
        Some(("web01".to_string(), Action::Drain))
    );
    assert_eq!(
        backend_action("/backends/a%2Fb/enable"),
        Some(("a/b".to_string(), Action::Enable))
    );
    assert_eq!(backend_action("/backends//drain"), None);
    assert_eq!(backend_action("/backends/web01/drain/x"), None);
    assert_eq!(backend_action("/backends/web01"), None);
}
