//! Fault injection: fpmlb in front of a fake FastCGI application that
//! misbehaves on demand (tests/support/fake_fcgi.rs).
//!
//! Each test checks what the client sees, that fpmlb is still alive and
//! serving afterwards, and where it matters that the log names the backend.
//! Each test has its own 127.0.N.x network (tests/support/nets.rs) so they
//! run in parallel.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use support::fake_fcgi::{Behavior, FakeFcgi};
use support::raw::{Ending, Raw, raw_exchange};
use support::{Fpmlb, Net, nets};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bound of every test.
const TEST_LIMIT: Duration = Duration::from_secs(30);

const GET_X: &[u8] = b"GET /x.php HTTP/1.1\r\nHost: a\r\n\r\n";

async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("test did not finish within 30 s");
}

/// A free port on `ip` (nothing listens on it once this returns).
fn free_addr(ip: &str) -> SocketAddr {
    let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
    listener.local_addr().unwrap()
}

/// Starts fpmlb on 127.0.N.1 with fast timeouts, `extra` top-level YAML and
/// these (name, address) backends.
fn start_lb(net: Net, extra: &str, backends: &[(&str, SocketAddr)]) -> Fpmlb {
    let addr = free_addr(&net.ip(1));
    let dir = support::state_dir(net);
    let mut yaml = support::base_yaml(addr, "/srv/app");
    yaml.push_str("timeouts:\n  read: 1s\n  send: 1s\n  connect: 1s\n");
    // No active health check gets in the way of what a test counts.
    yaml.push_str("health:\n  interval: 1h\n");
    yaml.push_str(extra);
    yaml.push_str("backends:\n");
    for (name, address) in backends {
        yaml.push_str(&format!(
            "  - name: {name}\n    address: \"{address}\"\n    max_conns: 4\n"
        ));
    }
    Fpmlb::start(&dir, addr, &yaml)
}

async fn get(lb: &Fpmlb, path: &str) -> support::Resp {
    support::get(&support::client(false), &lb.url(path))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", lb.log_text()))
}

async fn post(lb: &Fpmlb, path: &str, body: &'static [u8]) -> support::Resp {
    let req = http::Request::post(lb.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap();
    support::send(&support::client(false), req)
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", lb.log_text()))
}

/// fpmlb still answers, through `fake` (whose default answer is "alive").
async fn assert_serving(lb: &Fpmlb, fake: &FakeFcgi) {
    let before = fake.served();
    let resp = get(lb, "/alive.php").await;
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), lb.log_text());
    assert_eq!(resp.text(), "alive");
    // The fake counts an answer once its write returned, which may be
    // after fpmlb has read it and answered the client.
    for _ in 0..250 {
        if fake.served() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fake.served() > before);
    assert!(
        fake.protocol_errors().is_empty(),
        "fpmlb sent bad FastCGI: {:?}",
        fake.protocol_errors()
    );
}

/// A response fpmlb sent although the backend never finished it: it may be
/// a 502 or a cut 200, never a 200 that a client takes for whole.
fn assert_not_complete_200(raw: Option<&Raw>, what: &str) {
    let Some(raw) = raw else { return }; // closed before any head: fine
    if raw.status == 502 {
        return;
    }
    assert!(
        !raw.complete,
        "{what}: a cut response looks complete: status {} headers {:?} body {:?} ({:?})",
        raw.status,
        raw.headers,
        String::from_utf8_lossy(&raw.body),
        raw.ending
    );
    assert_ne!(raw.ending, Ending::Idle, "{what}: connection left open");
}

fn status_of(raw: Option<Raw>) -> u16 {
    raw.expect("a response head").status
}

// 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_backend_is_502() {
    let net = nets::FAULTS_GARBAGE;
    bounded(async {
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([
            Behavior::Garbage(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec()),
            // Version 1, but BEGIN_REQUEST: a type an application never sends.
            Behavior::Garbage(vec![1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
        ]);
        let lb = start_lb(net, "max_fails: 0\n", &[("garbage-be", fake.addr)]);
        for _ in 0..2 {
            let resp = get(&lb, "/x.php").await;
            assert_eq!(resp.status, 502, "{}", resp.text());
        }
        lb.wait_log_line(&["ERROR", "garbage-be", "protocol"]).await;
        assert_serving(&lb, &fake).await;
    })
    .await;
}

// 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_backend_is_504_after_read_timeout() {
    let net = nets::FAULTS_STALL;
    bounded(async {
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([Behavior::Stall]);
        let lb = start_lb(net, "max_fails: 0\n", &[("stall-be", fake.addr)]);
        let started = std::time::Instant::now();
        let resp = get(&lb, "/x.php").await;
        assert_eq!(resp.status, 504, "{}", resp.text());
        assert!(started.elapsed() < Duration::from_secs(10));
        lb.wait_log_line(&["ERROR", "stall-be"]).await;
        assert_serving(&lb, &fake).await;
    })
    .await;
}

// 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_mid_body_without_content_length_is_never_complete() {
    let net = nets::FAULTS_CUT_CHUNKED;
    bounded(async {
        let cut = b"Content-Type: text/plain\r\n\r\nthe first half of a body".to_vec();
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([Behavior::CloseAfter(cut.clone()), Behavior::CloseAfter(cut)]);
        let lb = start_lb(net, "max_fails: 0\n", &[("cut-be", fake.addr)]);

        // hyper may drop the buffered head when the body fails at once, so
        // the client may see the connection close with no response at all.
        if let Some(raw) = raw_exchange(lb.addr, GET_X).await {
            assert_eq!(raw.status, 200);
            assert_eq!(raw.header("transfer-encoding"), Some("chunked"));
            assert!(
                !raw.complete,
                "chunked body has its last chunk: {:?}",
                String::from_utf8_lossy(&raw.body)
            );
            assert_ne!(raw.ending, Ending::Idle, "connection left open");
        }

        let h2 = support::get(&support::client(true), &lb.url("/x.php")).await;
        assert!(h2.is_err(), "HTTP/2 client got a whole response: {h2:?}");

        lb.wait_log_line(&["cut-be", "cut short"]).await;
        assert_serving(&lb, &fake).await;
    })
    .await;
}

// 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_before_content_length_is_reached_is_never_complete() {
    let net = nets::FAULTS_CUT_LENGTH;
    bounded(async {
        let cut = b"Content-Type: text/plain\r\nContent-Length: 100\r\n\r\n0123456789".to_vec();
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([Behavior::CloseAfter(cut.clone()), Behavior::CloseAfter(cut)]);
        let lb = start_lb(net, "max_fails: 0\n", &[("short-be", fake.addr)]);

        // hyper may drop the buffered head when the body fails at once, so
        // the client may see the connection close with no response at all.
        if let Some(raw) = raw_exchange(lb.addr, GET_X).await {
            assert_eq!(raw.status, 200);
            assert_eq!(raw.header("content-length"), Some("100"));
            assert!(raw.body.len() < 100, "got {} bytes", raw.body.len());
            assert!(!raw.complete);
            assert_ne!(raw.ending, Ending::Idle, "connection left open");
        }

        let h2 = support::get(&support::client(true), &lb.url("/x.php")).await;
        assert!(h2.is_err(), "HTTP/2 client got a whole response: {h2:?}");

        lb.wait_log_line(&["short-be", "cut short"]).await;
        assert_serving(&lb, &fake).await;
    })
    .await;
}

// 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_right_after_the_head_is_502_or_cut() {
    let net = nets::FAULTS_HEAD_ONLY;
    bounded(async {
        let head = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([
            Behavior::CloseAfter(head.clone()),
            Behavior::CloseAfter(head),
        ]);
        let lb = start_lb(net, "max_fails: 0\n", &[("headonly-be", fake.addr)]);

        let raw = raw_exchange(lb.addr, GET_X).await;
        assert_not_complete_200(raw.as_ref(), "HTTP/1.1");

        match support::get(&support::client(true), &lb.url("/x.php")).await {
            Err(_) => {}
            Ok(resp) => assert_eq!(resp.status, 502, "HTTP/2 got {resp:?}"),
        }

        lb.wait_log_line(&["headonly-be", "ERROR"]).await;
        assert_serving(&lb, &fake).await;
    })
    .await;
}

// 5, with an empty body declared: "Content-Length: 0" and the close
// right after the head. The exchange never ended, so the client must not
// get a 200 that looks whole (HTTP/2 gets a reset; HTTP/1.1 must not get
// less).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_right_after_an_empty_content_length_head_is_never_a_complete_200() {
    let net = nets::FAULTS_HEAD_EMPTY_LENGTH;
    bounded(async {
        let head = b"Content-Type: text/plain\r\nContent-Length: 0\r\n\r\n".to_vec();
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([
            Behavior::CloseAfter(head.clone()),
            Behavior::CloseAfter(head),
        ]);
        let lb = start_lb(net, "max_fails: 0\n", &[("emptycl-be", fake.addr)]);

        match support::get(&support::client(true), &lb.url("/x.php")).await {
            Err(_) => {}
            Ok(resp) => assert_eq!(resp.status, 502, "HTTP/2 got {resp:?}"),
        }

        let raw = raw_exchange(lb.addr, GET_X).await;
        assert_not_complete_200(raw.as_ref(), "HTTP/1.1");
        assert_serving(&lb, &fake).await;
    })
    .await;
}

// 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_flood_is_logged_bounded_and_the_response_passes() {
    let net = nets::FAULTS_STDERR_FLOOD;
    bounded(async {
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([Behavior::StderrFlood {
            records: 2000,
            bytes_each: 8 * 1024,
            stdout: b"Content-Type: text/plain\r\n\r\nflood survived".to_vec(),
        }]);
        let lb = start_lb(net, "max_fails: 0\n", &[("flood-be", fake.addr)]);
        let resp = get(&lb, "/x.php").await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.text(), "flood survived");

        lb.wait_log_line(&["flood-be", "not logged"]).await;
        let log = lb.log_text();
        let stderr_lines: Vec<&str> = log.lines().filter(|l| l.contains("EEEE")).collect();
        assert!(
            (1..=20).contains(&stderr_lines.len()),
            "{} stderr lines",
            stderr_lines.len()
        );
        assert!(stderr_lines.iter().all(|l| l.contains("flood-be")));
        assert!(
            stderr_lines.iter().all(|l| l.len() < 4096),
            "a stderr line is not cut"
        );
        let about_stderr = log
            .lines()
            .filter(|l| l.contains("FastCGI") && l.contains("stderr"))
            .count();
        assert!(about_stderr <= 25, "{about_stderr} lines about stderr");
        assert!(log.len() < 256 * 1024, "log grew to {} bytes", log.len());
        assert_serving(&lb, &fake).await;
    })
    .await;
}

// 7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_end_request_is_502() {
    let net = nets::FAULTS_SHORT_END;
    bounded(async {
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([Behavior::ShortEndRequest {
            stdout: b"Content-Type: text/plain\r\n\r\nalmost".to_vec(),
        }]);
        let lb = start_lb(net, "max_fails: 0\n", &[("shortend-be", fake.addr)]);
        let resp = get(&lb, "/x.php").await;
        assert_eq!(resp.status, 502, "{}", resp.text());
        lb.wait_log_line(&["ERROR", "shortend-be", "END_REQUEST"])
            .await;
        assert!(!lb.log_text().contains("panicked"));
        assert_serving(&lb, &fake).await;
    })
    .await;
}

// 8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overloaded_is_503() {
    let net = nets::FAULTS_OVERLOADED;
    bounded(async {
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([Behavior::Overloaded]);
        let lb = start_lb(net, "max_fails: 0\n", &[("overload-be", fake.addr)]);
        let resp = get(&lb, "/x.php").await;
        assert_eq!(resp.status, 503, "{}", resp.text());
        assert!(resp.headers.contains_key("retry-after"));
        lb.wait_log_line(&["overload-be", "overloaded"]).await;
        assert_serving(&lb, &fake).await;
    })
    .await;
}

// 9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_before_response_retries_get_but_not_post() {
    let net = nets::FAULTS_RETRY_RESET;
    bounded(async {
        let bad = FakeFcgi::start(&net.ip(2), Behavior::CloseBeforeResponse).await;
        let good = FakeFcgi::start(&net.ip(3), Behavior::ok("alive")).await;
        let lb = start_lb(
            net,
            "max_fails: 0\n",
            &[("reset-be", bad.addr), ("good-be", good.addr)],
        );

        // Whichever backend the balancer starts with, send until the bad one
        // has had a GET: every GET still ends 200 from the good one.
        for _ in 0..6 {
            let resp = get(&lb, "/x.php").await;
            assert_eq!(resp.status, 200, "{}", resp.text());
            assert_eq!(resp.text(), "alive");
            if bad.request_count() > 0 {
                break;
            }
        }
        assert!(bad.request_count() > 0, "the bad backend never got a GET");
        lb.wait_log_line(&["reset-be", "trying another backend"])
            .await;

        // A POST that reached the bad backend is not sent again.
        let mut saw_502 = false;
        for _ in 0..6 {
            let (bad_before, good_before) = (bad.request_count(), good.request_count());
            let resp = post(&lb, "/x.php", b"a=1&b=2").await;
            if bad.request_count() > bad_before {
                assert_eq!(resp.status, 502, "{}", resp.text());
                assert_eq!(good.request_count(), good_before, "POST was retried");
                let reached = bad.requests().pop().unwrap();
                assert_eq!(reached.param("REQUEST_METHOD").as_deref(), Some("POST"));
                assert_eq!(reached.stdin, b"a=1&b=2");
                saw_502 = true;
                break;
            }
            assert_eq!(resp.status, 200, "{}", resp.text());
        }
        assert!(saw_502, "no POST reached the bad backend");
        assert_serving(&lb, &good).await;
    })
    .await;
}

// 9, second part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_retries_even_post() {
    let net = nets::FAULTS_RETRY_REFUSED;
    bounded(async {
        let dead = free_addr(&net.ip(2));
        let good = FakeFcgi::start(&net.ip(3), Behavior::ok("alive")).await;
        let lb = start_lb(
            net,
            "max_fails: 0\n",
            &[("dead-be", dead), ("live-be", good.addr)],
        );
        // Round robin: of two POSTs, at least one goes to dead-be first.
        for _ in 0..2 {
            let resp = post(&lb, "/x.php", b"x=1").await;
            assert_eq!(resp.status, 200, "{}\n{}", resp.text(), lb.log_text());
            assert_eq!(resp.text(), "alive");
        }
        assert_eq!(good.request_count(), 2);
        assert!(good.requests().iter().all(|r| r.stdin == b"x=1"));
        lb.wait_log_line(&["dead-be", "trying another backend"])
            .await;
        assert_serving(&lb, &good).await;
    })
    .await;
}

// 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_backends_down_is_503_with_retry_after() {
    let net = nets::FAULTS_ALL_DOWN;
    bounded(async {
        let (dead1, dead2) = (free_addr(&net.ip(2)), free_addr(&net.ip(3)));
        let lb = start_lb(
            net,
            "max_fails: 1\nfail_timeout: 1s\n",
            &[("down1-be", dead1), ("down2-be", dead2)],
        );
        // The first request finds both refusing (and takes them out): no
        // backend could be reached, so it is already a 503; from then on no
        // backend is up at all.
        let first = get(&lb, "/x.php").await;
        assert_eq!(first.status, 503, "first: {}", first.text());
        assert!(first.headers.contains_key("retry-after"));
        lb.wait_log_line(&["down1-be", "out of rotation"]).await;
        lb.wait_log_line(&["down2-be", "out of rotation"]).await;
        let resp = get(&lb, "/x.php").await;
        assert_eq!(resp.status, 503, "{}", resp.text());
        assert_eq!(
            resp.headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("5")
        );

        // A node comes back: after fail_timeout it takes traffic again.
        let back = FakeFcgi::start_at(dead1, Behavior::ok("alive")).await;
        let mut last = 0;
        for _ in 0..60 {
            last = get(&lb, "/x.php").await.status;
            if last == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(last, 200, "{}", lb.log_text());
        assert_serving(&lb, &back).await;
    })
    .await;
}

// 11.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_connection_is_reused_and_a_closed_one_is_noticed() {
    let net = nets::FAULTS_KEEPALIVE;
    bounded(async {
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        let lb = start_lb(net, "max_fails: 0\n", &[("keep-be", fake.addr)]);
        for _ in 0..20 {
            assert_serving(&lb, &fake).await;
        }
        assert_eq!(fake.served(), 20);
        assert_eq!(fake.request_connections(), 1, "kept connection not reused");
        // All on one connection (not necessarily the first: the liveness
        // check's connect may come first).
        let first = fake.requests()[0].conn;
        assert!(
            fake.requests()
                .iter()
                .all(|r| r.keep_conn && r.conn == first)
        );

        // The backend closes its idle connection (a php-fpm worker exiting).
        fake.close_idle_connections();
        for _ in 0..100 {
            if fake.idle_closed() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(fake.idle_closed(), 1);
        assert_serving(&lb, &fake).await;
        assert_eq!(fake.request_connections(), 2);
    })
    .await;
}

// 11, the race: the kept connection dies just as a request goes out on it
// (a php-fpm worker reaching pm.max_requests). The request never reached
// PHP, so a GET must be sent again on a fresh connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_connection_dying_under_a_get_is_retried_on_a_fresh_one() {
    let net = nets::FAULTS_STALE_CONN;
    bounded(async {
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([Behavior::ok("first"), Behavior::CloseBeforeResponse]);
        let lb = start_lb(net, "max_fails: 0\n", &[("stale-be", fake.addr)]);
        let first = get(&lb, "/x.php").await;
        assert_eq!(first.text(), "first");
        let resp = get(&lb, "/x.php").await;
        assert_eq!(
            resp.status,
            200,
            "GET on a stale kept connection: {}",
            resp.text()
        );
        assert_eq!(resp.text(), "alive");
        assert_eq!(fake.request_connections(), 2);
    })
    .await;
}

// 12.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_never_reach_a_backend() {
    let net = nets::FAULTS_BAD_PATHS;
    bounded(async {
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        let lb = start_lb(net, "max_fails: 0\n", &[("paths-be", fake.addr)]);
        let cases: [(&str, u16); 5] = [
            ("/../etc/passwd.php", 400),
            ("/a/../../etc/passwd.php", 400),
            ("/%2e%2e/etc/passwd.php", 400),
            ("/x%00.php", 400),
            ("/style.css", 404),
        ];
        for (path, want) in cases {
            let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
            let status = status_of(raw_exchange(lb.addr, req.as_bytes()).await);
            assert_eq!(status, want, "{path}");
        }
        assert_eq!(fake.request_count(), 0);
        assert_serving(&lb, &fake).await;
    })
    .await;
}

// 13.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_max_body_size_is_413_and_a_small_chunked_one_passes() {
    let net = nets::FAULTS_BODY_LIMIT;
    bounded(async {
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        let lb = start_lb(
            net,
            "max_fails: 0\nmax_body_size: 1k\n",
            &[("body-be", fake.addr)],
        );
        let big = vec![b'b'; 2000];

        let mut req = b"POST /x.php HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 2000\r\n\r\n".to_vec();
        req.extend_from_slice(&big);
        assert_eq!(status_of(raw_exchange(lb.addr, &req).await), 413);

        // Chunked, in one chunk and in two (the second crosses the limit).
        for chunks in [vec![2000], vec![1000, 1000]] {
            let mut req = b"POST /x.php HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for n in &chunks {
                req.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                req.extend_from_slice(&big[..*n]);
                req.extend_from_slice(b"\r\n");
            }
            req.extend_from_slice(b"0\r\n\r\n");
            assert_eq!(
                status_of(raw_exchange(lb.addr, &req).await),
                413,
                "{chunks:?}"
            );
        }
        assert_eq!(fake.request_count(), 0);

        let small: Vec<u8> = (0..500u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut req = b"POST /x.php HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for piece in small.chunks(200) {
            req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            req.extend_from_slice(piece);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        let raw = raw_exchange(lb.addr, &req).await.expect("a response");
        assert_eq!(raw.status, 200);
        assert_eq!(raw.body, b"alive");
        let reached = fake.requests().pop().expect("the small body reached PHP");
        assert_eq!(reached.param("CONTENT_LENGTH").as_deref(), Some("500"));
        assert_eq!(reached.stdin, small);
        assert_serving(&lb, &fake).await;
    })
    .await;
}

// 11, a kept connection whose END_REQUEST comes after a body that already
// filled its Content-Length (php-fpm's END_REQUEST held back by Nagle): the
// connection is still good and must go back to the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_connection_survives_an_end_request_after_a_full_content_length_body() {
    let net = nets::FAULTS_LATE_END;
    bounded(async {
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([Behavior::RespondLateEnd {
            stdout: b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            pause: Duration::from_millis(50),
        }]);
        let lb = start_lb(net, "max_fails: 0\n", &[("lateend-be", fake.addr)]);
        let resp = get(&lb, "/x.php").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "hello");
        for _ in 0..100 {
            if fake.served() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(fake.served(), 1);
        assert_serving(&lb, &fake).await;
        assert_eq!(
            fake.request_connections(),
            1,
            "the kept connection was dropped after a complete exchange"
        );
    })
    .await;
}

// Issue 10, 11: records after END_REQUEST, from the exchange before, reach
// the kept connection while the next request waits on it. They carry the
// old request id: never read as the next answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_after_end_request_are_never_the_next_answer() {
    let net = nets::FAULTS_STRAY_RECORDS;
    bounded(async {
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([Behavior::RespondThenStray {
            stdout: b"Content-Type: text/plain\r\n\r\nfirst".to_vec(),
            stray: b"Content-Type: text/plain\r\n\r\nSTRAY".to_vec(),
            pause: Duration::from_millis(300),
        }]);
        let lb = start_lb(net, "max_fails: 1\n", &[("stray-be", fake.addr)]);
        let first = get(&lb, "/x.php").await;
        assert_eq!(first.text(), "first");
        // At once, on the kept connection, before the stray records come.
        let second = get(&lb, "/x.php").await;
        assert_eq!((second.status, second.text().as_str()), (200, "alive"));
        lb.wait_log_line(&["stray-be", "request 1 while request 2"])
            .await;
        assert_serving(&lb, &fake).await;
    })
    .await;
}

// Issue 10, 11: an answer under another request id is the backend's
// protocol error: a GET goes to another backend, the answer never out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_for_another_request_id_is_not_passed_on() {
    let net = nets::FAULTS_FOREIGN_ID;
    bounded(async {
        let bad = FakeFcgi::start(
            &net.ip(2),
            Behavior::RespondAsRequest {
                id: 7,
                stdout: b"Content-Type: text/plain\r\n\r\nWRONG".to_vec(),
            },
        )
        .await;
        let good = FakeFcgi::start(&net.ip(3), Behavior::ok("alive")).await;
        let lb = start_lb(
            net,
            "max_fails: 0\n",
            &[("wrongid-be", bad.addr), ("good-be", good.addr)],
        );
        for _ in 0..4 {
            let r = get(&lb, "/x.php").await;
            assert_eq!((r.status, r.text().as_str()), (200, "alive"));
        }
        assert!(bad.request_count() > 0, "the bad backend never got a GET");
        lb.wait_log_line(&["wrongid-be", "request 7 while request 1"])
            .await;
        assert_serving(&lb, &good).await;
    })
    .await;
}

// Issue 10, 11: a body streamed from the client is still whole when the
// backend refused the connection: it goes to another backend, POST too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_refused_at_connect_goes_to_another_backend() {
    let net = nets::FAULTS_STREAMED_REFUSED;
    bounded(async {
        let dead = free_addr(&net.ip(2));
        let live = FakeFcgi::start(&net.ip(3), Behavior::ok("alive")).await;
        let lb = start_lb(
            net,
            "max_fails: 0\nbody_buffer_size: 1k\n",
            &[("refusing-be", dead), ("live-be", live.addr)],
        );
        let body: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
        // Round robin: of two POSTs, one goes to the refusing backend first.
        for _ in 0..2 {
            let mut req = b"POST /x.php HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 5000\r\n\r\n".to_vec();
            req.extend_from_slice(&body);
            let raw = raw_exchange(lb.addr, &req).await.expect("a response");
            assert_eq!((raw.status, raw.body.as_slice()), (200, &b"alive"[..]));
        }
        assert_eq!(live.request_count(), 2);
        assert!(live.requests().iter().all(|r| r.stdin == body));
        lb.wait_log_line(&["refusing-be", "trying another backend"])
            .await;
        assert_serving(&lb, &live).await;
    })
    .await;
}

// Issue 10, 3: a script answering 100 ran: its POST is not sent to another
// backend, and with max_fails 1 no backend leaves rotation over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1xx_answer_to_a_post_is_502_sent_once_and_counted_nowhere() {
    let net = nets::FAULTS_INFORMATIONAL_POST;
    bounded(async {
        let hundred = || Behavior::Respond {
            stdout: b"Status: 100 Continue\r\n\r\nbody".to_vec(),
            stderr: Vec::new(),
        };
        let a = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        let b = FakeFcgi::start(&net.ip(3), Behavior::ok("alive")).await;
        // Round robin starts at the first backend.
        a.script([hundred()]);
        let lb = start_lb(
            net,
            "max_fails: 1\nfail_timeout: 60s\n",
            &[("first-be", a.addr), ("second-be", b.addr)],
        );
        let resp = post(&lb, "/x.php", b"x=1").await;
        assert_eq!(resp.status, 502, "{}", resp.text());
        assert_eq!(
            (a.request_count(), b.request_count()),
            (1, 0),
            "the POST ran twice, or not where it was meant to"
        );
        lb.wait_log_line(&["unusable response", "1xx", "backend="])
            .await;
        // Both still in rotation: round robin reaches each.
        let (a_before, b_before) = (a.served(), b.served());
        for _ in 0..2 {
            let r = get(&lb, "/alive.php").await;
            assert_eq!((r.status, r.text().as_str()), (200, "alive"));
        }
        assert_eq!((a.served() - a_before, b.served() - b_before), (1, 1));
    })
    .await;
}

// Issue 10, 11: a HEAD answer is given the script's length or none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_answer_gets_no_made_up_length() {
    let net = nets::FAULTS_HEAD_NO_LENGTH;
    bounded(async {
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([
            Behavior::Respond {
                stdout: b"Content-Type: text/plain\r\n\r\n".to_vec(),
                stderr: Vec::new(),
            },
            Behavior::Respond {
                stdout: b"Content-Type: text/plain\r\nContent-Length: 42\r\n\r\n".to_vec(),
                stderr: Vec::new(),
            },
        ]);
        let lb = start_lb(net, "max_fails: 0\n", &[("head-be", fake.addr)]);
        let head = b"HEAD /x.php HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        let raw = raw_exchange(lb.addr, head).await.expect("a response");
        assert_eq!(raw.status, 200);
        assert_eq!(raw.header("content-length"), None, "{:?}", raw.headers);
        let raw = raw_exchange(lb.addr, head).await.expect("a response");
        assert_eq!(
            raw.header("content-length"),
            Some("42"),
            "{:?}",
            raw.headers
        );
        assert!(raw.body.is_empty());
        assert_serving(&lb, &fake).await;
    })
    .await;
}

/// A response cut by its backend while fpmlb reads it ahead of a client
/// that reads nothing: the backend's whole output is taken (fpmlb logs the
/// cut while the client still reads nothing), and the client, reading at
/// last, gets everything before the cut and then a cut response, never a
/// complete one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_cut_while_read_ahead_is_never_complete() {
    let net = nets::FAULTS_CUT_READ_AHEAD;
    bounded(async {
        // 8 MB of a declared 32: far more than the sockets between the fake
        // and the client hold, so the fake's write ends only if fpmlb reads.
        const SENT: usize = 8_000_000;
        let mut cut =
            b"Content-Type: application/octet-stream\r\nContent-Length: 32000000\r\n\r\n".to_vec();
        cut.extend(std::iter::repeat_n(b'x', SENT));
        let fake = FakeFcgi::start(&net.ip(2), Behavior::ok("alive")).await;
        fake.script([Behavior::CloseAfter(cut)]);
        let lb = start_lb(net, "max_fails: 0\n", &[("cut-be", fake.addr)]);

        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(64 * 1024).unwrap();
        let mut stream = socket.connect(lb.addr).await.unwrap();
        stream.write_all(GET_X).await.unwrap();
        // The client reads nothing until fpmlb has read to the cut: read at
        // the client's pace, the cut would come only as the client reads.
        lb.wait_log_line(&["cut-be", "cut short"]).await;
        let mut bytes = Vec::new();
        let ending = match stream.read_to_end(&mut bytes).await {
            Ok(_) => Ending::Eof,
            Err(_) => Ending::Reset,
        };
        let raw = support::raw::parse_raw(&bytes, ending).expect("a response head");
        assert_eq!(raw.status, 200);
        assert_eq!(raw.body.len(), SENT, "everything before the cut");
        assert!(!raw.complete);
        assert_serving(&lb, &fake).await;
    })
    .await;
}
