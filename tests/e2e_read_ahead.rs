//! Responses read ahead of slow clients (`response_buffering`, nginx's
//! `fastcgi_buffering`), against real php-fpm: clients that ask for a
//! large page and read nothing hold no php-fpm worker, get their whole
//! page when they read at last, and cost fpmlb bounded memory; where the
//! response is not read ahead (a location's `response_buffering: false`,
//! a script's `X-Accel-Buffering: no`), the same clients do hold the
//! workers, which shows the tests can fail. No timing is asserted: a
//! request behind a held worker waits out `timeouts.queue` and is a 503.
//! The admin API's read-ahead metrics count what happened. Temp files that
//! cannot be made degrade to streaming at the client's pace, whole pages.
//!
//! Each test has its own 127.0.N.x network (tests/support/nets.rs).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::nets::{self, Net};
use support::{Cluster, Fpmlb, base_yaml, client, get, rss_kib};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Bytes of each slow client's page: far more than the socket buffers
/// between php-fpm and the client hold, so unbuffered, the worker is still
/// writing it when the client stops reading.
const PAGE: usize = 40_000_000;

/// The pool's workers, and slow clients: one per worker.
const WORKERS: usize = 2;

/// A client that asked for a large page, read its head, and then reads
/// nothing until told to.
struct SlowClient {
    stream: TcpStream,
    /// Body bytes that came with the head.
    body: Vec<u8>,
    head: String,
}

impl SlowClient {
    /// Sends the request and reads up to the end of the response head: by
    /// then php-fpm has started the page, so its worker is engaged.
    async fn ask(lb: &Fpmlb, path: &str) -> SlowClient {
        // A small receive buffer, so that the client's kernel takes little
        // of the page for it.
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(64 * 1024).unwrap();
        let mut stream = socket.connect(lb.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
                .await
                .expect("no response head within 30 s")
                .unwrap();
            assert!(n > 0, "closed before the head: {got:?}");
            got.extend_from_slice(&buf[..n]);
            if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8_lossy(&got[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        SlowClient {
            stream,
            body: got[end..].to_vec(),
            head,
        }
    }

    /// Reads the rest of the page (to EOF) and checks it is big.php's,
    /// whole.
    async fn read_rest(mut self) {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(30), self.stream.read(&mut buf))
                .await
                .expect("the page stalled for 30 s")
                .unwrap();
            if n == 0 {
                break;
            }
            self.body.extend_from_slice(&buf[..n]);
        }
        assert_eq!(self.body.len(), PAGE, "the page is cut or too long");
        let pattern = b"0123456789abcdef";
        let bad = self
            .body
            .chunks(pattern.len())
            .position(|c| c != &pattern[..c.len()]);
        assert_eq!(bad, None, "the page's bytes are not big.php's");
    }
}

fn yaml(cluster: &Cluster, extra: &str) -> String {
    let (name, node) = cluster.nodes().remove(0);
    format!(
        "{}timeouts:\n  queue: 3s\n{extra}backends:\n  - name: {name}\n    address: \"{node}\"\n    max_conns: {WORKERS}\n",
        base_yaml(cluster.lb_addr(), &cluster.docroot())
    )
}

/// `yaml` with its admin API on `admin` instead of off.
fn with_admin(yaml: &str, admin: SocketAddr) -> String {
    let off = "admin:\n  listen: off\n";
    assert!(yaml.contains(off), "{yaml}");
    yaml.replacen(off, &format!("admin:\n  listen: \"{admin}\"\n"), 1)
}

/// The value of one unlabelled sample (or one with `labels`) in the
/// admin API's /metrics.
fn metric(text: &str, sample: &str) -> f64 {
    let prefix = format!("{sample} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in /metrics:\n{text}"))
}

/// /metrics, read until `done` holds for it, at most 10 s.
async fn metrics_until(admin: SocketAddr, done: impl Fn(&str) -> bool) -> String {
    let c = client(false);
    let url = format!("http://{admin}/metrics");
    let mut text = String::new();
    for _ in 0..100 {
        let r = get(&c, &url).await.unwrap();
        assert_eq!(r.status, 200);
        text = r.text();
        if done(&text) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    text
}

/// Starts a one-node cluster of [`WORKERS`] workers and fpmlb over it,
/// has one slow client per worker ask for `path`, then asks for hello.php
/// a few times: every status.
async fn slow_clients_then_hello(
    net: Net,
    extra: &str,
    path: &str,
) -> (Cluster, Fpmlb, Vec<SlowClient>, Vec<u16>) {
    let children = WORKERS.to_string();
    let cluster = Cluster::start(net, &["--nodes", "1", "--children", &children]);
    let lb = Fpmlb::start(&cluster.dir, cluster.lb_addr(), &yaml(&cluster, extra));
    let mut slow = Vec::new();
    for _ in 0..WORKERS {
        slow.push(SlowClient::ask(&lb, path).await);
    }
    let c = client(false);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(get(&c, &lb.url("/hello.php")).await.map_or(0, |r| r.status));
    }
    (cluster, lb, slow, statuses)
}

/// Read ahead (the default): the slow clients' pages are read into memory
/// and temp files, their workers serve hello.php, fpmlb's memory holds a
/// small part of the pages, and each page arrives whole when read. The
/// admin API counts both pages read ahead and spilled to temp files, and
/// shows nothing held once they are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_hold_no_php_fpm_worker() {
    let path = format!("/big.php?bytes={PAGE}&cl=1");
    let children = WORKERS.to_string();
    let cluster = Cluster::start(
        nets::READ_AHEAD_ON,
        &["--nodes", "1", "--children", &children],
    );
    let admin = nets::READ_AHEAD_ON.addr(1, 9180);
    let yaml = with_admin(&yaml(&cluster, ""), admin);
    let lb = Fpmlb::start_with_admin(&cluster.dir, cluster.lb_addr(), Some(admin), &yaml);
    // Warm up, so the baseline includes the runtime's threads and buffers.
    let c = client(false);
    assert_eq!(get(&c, &lb.url("/hello.php")).await.unwrap().status, 200);
    let before = rss_kib(lb.child.id());
    let mut slow = Vec::new();
    for _ in 0..WORKERS {
        slow.push(SlowClient::ask(&lb, &path).await);
    }
    for _ in 0..3 {
        let r = get(&c, &lb.url("/hello.php")).await.unwrap();
        assert_eq!(r.status, 200, "a slow client holds a worker: {}", r.text());
    }
    // Both workers answered: the pages were read to their end. What fpmlb
    // holds of them in memory is response_buffer_size (1 MiB) each, the
    // rest is in temp files; all in memory would be 80 MB.
    let grown = rss_kib(lb.child.id()).saturating_sub(before);
    eprintln!("fpmlb grew by {grown} KiB holding two pages of {PAGE} bytes");
    assert!(
        grown < 40 * 1024,
        "fpmlb grew by {grown} KiB holding two pages of {PAGE} bytes"
    );
    for s in slow {
        assert!(s.head.contains("content-length: 40000000"), "{}", s.head);
        s.read_rest().await;
    }
    let log = lb.log_text();
    assert!(!log.contains("cannot write a response"), "{log}");
    // The pages are read: what they held goes back as their tasks end.
    let held = |t: &str| {
        metric(t, "fpmlb_read_ahead_held_bytes{store=\"memory\"}")
            + metric(t, "fpmlb_read_ahead_held_bytes{store=\"temp_file\"}")
    };
    let text = metrics_until(admin, |t| held(t) == 0.0).await;
    assert_eq!(held(&text), 0.0, "still held:\n{text}");
    // hello.php came whole with its head: only the two pages streamed.
    let pages = WORKERS as f64;
    for (sample, want) in [
        ("fpmlb_read_ahead_streamed_total", pages),
        ("fpmlb_read_ahead_taken_over_total", pages),
        ("fpmlb_read_ahead_spilled_total", pages),
        ("fpmlb_read_ahead_waited_total", 0.0),
        ("fpmlb_read_ahead_temp_write_failures_total", 0.0),
    ] {
        assert_eq!(metric(&text, sample), want, "{sample} in:\n{text}");
    }
    // Of each page, all but what memory and the sockets held went to its
    // file.
    let written = metric(&text, "fpmlb_read_ahead_temp_written_bytes_total");
    assert!(
        written > PAGE as f64,
        "{written} bytes written to temp files"
    );
    assert!(written < (WORKERS * PAGE) as f64, "{written}");
}

/// A location with `response_buffering: false` streams at the client's
/// pace: the slow clients hold both workers, hello.php waits out the
/// queue timeout (503); the pages still arrive whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_read_ahead_slow_clients_hold_the_workers() {
    let extra = "locations:\n  - match: = /big.php\n    response_buffering: false\n";
    let path = format!("/big.php?bytes={PAGE}&cl=1");
    let (_cluster, _lb, slow, statuses) =
        slow_clients_then_hello(nets::READ_AHEAD_OFF_HERE, extra, &path).await;
    assert!(statuses.iter().all(|&s| s == 503), "{statuses:?}");
    for s in slow {
        s.read_rest().await;
    }
}

/// A script's `X-Accel-Buffering: no` streams its response at the
/// client's pace, as nginx does, and the header goes no further.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_says_x_accel_buffering_no_is_streamed() {
    let path = format!("/big.php?bytes={PAGE}&cl=1&xab=no");
    let (_cluster, _lb, slow, statuses) =
        slow_clients_then_hello(nets::READ_AHEAD_SCRIPT_SAYS_NO, "", &path).await;
    assert!(statuses.iter().all(|&s| s == 503), "{statuses:?}");
    for s in slow {
        assert!(
            !s.head.to_ascii_lowercase().contains("x-accel-buffering"),
            "{}",
            s.head
        );
        s.read_rest().await;
    }
}

/// Temp files that cannot be made (`TMPDIR` names no directory): each
/// page is read ahead into memory as far as `response_buffer_size`, then
/// goes at its client's pace, as unbuffered. The failure is logged and
/// counted once per page, the slow clients hold the workers again
/// (hello.php waits out the queue: 503), and each page still arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temp_file_that_cannot_be_made_leaves_pages_whole() {
    let net = nets::READ_AHEAD_NO_TEMP_FILE;
    let children = WORKERS.to_string();
    let cluster = Cluster::start(net, &["--nodes", "1", "--children", &children]);
    let admin = net.addr(1, 9180);
    let yaml = with_admin(&yaml(&cluster, ""), admin);
    let missing = cluster.dir.join("no-such-dir");
    let missing = missing.to_str().unwrap();
    let lb = Fpmlb::start_with_env(
        &cluster.dir,
        cluster.lb_addr(),
        Some(admin),
        &yaml,
        &[("TMPDIR", missing)],
    );
    let path = format!("/big.php?bytes={PAGE}&cl=1");
    let mut slow = Vec::new();
    for _ in 0..WORKERS {
        slow.push(SlowClient::ask(&lb, &path).await);
    }
    let failures = |t: &str| metric(t, "fpmlb_read_ahead_temp_write_failures_total");
    let text = metrics_until(admin, |t| failures(t) == WORKERS as f64).await;
    assert_eq!(failures(&text), WORKERS as f64, "{text}");
    assert_eq!(
        metric(&text, "fpmlb_read_ahead_temp_written_bytes_total"),
        0.0,
        "{text}"
    );
    // What was taken of the temp budget for the failed writes is back.
    assert_eq!(
        metric(&text, "fpmlb_read_ahead_held_bytes{store=\"temp_file\"}"),
        0.0,
        "{text}"
    );
    let c = client(false);
    let status = get(&c, &lb.url("/hello.php")).await.map_or(0, |r| r.status);
    assert_eq!(status, 503, "the pages went on being read ahead");
    for s in slow {
        s.read_rest().await;
    }
    let line = lb
        .wait_log_line(&["cannot write a response to its temp file"])
        .await;
    assert!(line.contains("No such file or directory"), "{line}");
}

/// The same over HTTP/2 (h2c): streams whose client reads nothing stop at
/// HTTP/2's flow control, not at a socket; their pages are read ahead all
/// the same, hello.php is answered, and each page arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http2_streams_hold_no_php_fpm_worker() {
    use http_body_util::BodyExt;

    let children = WORKERS.to_string();
    let cluster = Cluster::start(
        nets::READ_AHEAD_HTTP2,
        &["--nodes", "1", "--children", &children],
    );
    let lb = Fpmlb::start(&cluster.dir, cluster.lb_addr(), &yaml(&cluster, ""));
    let h2 = client(true);
    let url = lb.url(&format!("/big.php?bytes={PAGE}&cl=1"));
    // Each response's head is in: its worker is engaged; no body is read.
    let mut held = Vec::new();
    for _ in 0..WORKERS {
        let req = http::Request::get(&url)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(30), h2.request(req))
            .await
            .expect("no response head within 30 s")
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        held.push(resp);
    }
    let c = client(false);
    for _ in 0..3 {
        let r = get(&c, &lb.url("/hello.php")).await.unwrap();
        assert_eq!(r.status, 200, "a slow stream holds a worker: {}", r.text());
    }
    for resp in held {
        let body = tokio::time::timeout(Duration::from_secs(60), resp.into_body().collect())
            .await
            .expect("the page stalled")
            .unwrap()
            .to_bytes();
        assert_eq!(body.len(), PAGE, "the page is cut or too long");
        assert!(body.starts_with(b"0123456789abcdef"));
    }
}

/// A streamed response with a Content-Length, to a client that keeps up:
/// hyper stops asking for its body once the length is sent, so fpmlb reads
/// php-fpm's END_REQUEST with the last piece. The connection goes back to
/// its pool (later requests reuse it) and the access log calls each
/// response complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_response_with_a_length_gives_its_connection_back() {
    let net = nets::READ_AHEAD_LENGTH_KEEPS_CONN;
    let cluster = Cluster::start(net, &["--nodes", "1", "--children", "2"]);
    let admin = net.addr(1, 9180);
    let yaml = yaml(&cluster, "health:\n  interval: 1h\n").replacen(
        "admin:\n  listen: off\n",
        &format!("admin:\n  listen: \"{admin}\"\n"),
        1,
    );
    let lb = Fpmlb::start_with_admin(&cluster.dir, cluster.lb_addr(), Some(admin), &yaml);
    let c = client(false);
    for _ in 0..6 {
        let r = get(&c, &lb.url("/big.php?bytes=1000000&cl=1"))
            .await
            .unwrap();
        assert_eq!((r.status, r.body.len()), (200, 1_000_000));
    }
    let status = get(&c, &format!("http://{admin}/status.json"))
        .await
        .unwrap();
    let figures = &status.json()["backends"][0]["connections"];
    let reused = figures["reused"].as_u64().unwrap_or(0);
    assert!(reused >= 1, "no connection was given back: {figures}");
    let log = lb.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("uri=/big.php")).collect();
    assert_eq!(lines.len(), 6, "{log}");
    assert!(
        lines.iter().all(|l| l.contains("complete=true")),
        "{lines:#?}"
    );
}
