//! Hostile requests against fpmlb in front of real php-fpm nodes
//! (integration/cluster.sh): oversized heads, forged header names, Host
//! games, framing tricks, slow uploads over HTTP/1.1 and HTTP/2, half-sent
//! heads, one address hogging connections, a browser turned against the
//! admin API. Raw bytes over TCP where a client library would refuse to send
//! them.
//!
//! Each case asserts the status, that nothing ran that should not (the
//! docroot's ran.php writes a line per run in the node's /tmp/ran.log), and
//! that the cluster still serves afterwards with every backend in rotation:
//! fpmlb runs with `max_fails: 1` and a long `fail_timeout`, so one failure
//! counted against a backend would take it out for the rest of the test.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::{Cluster, Fpmlb, client, get, nets, start_alone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for anything a test expects to happen.
const BOUND: Duration = Duration::from_secs(30);

/// fpmlb's config head for these tests: one counted failure takes a
/// backend out for longer than any test runs.
const STRICT: &str = "max_fails: 1\nfail_timeout: 10m\n";

/// `backends:` for the cluster's nodes, each capped at `max_conns`.
fn backends(cluster: &Cluster, max_conns: u32) -> String {
    let mut s = String::from("backends:\n");
    for (name, addr) in cluster.nodes() {
        s.push_str(&format!(
            "  - name: {name}\n    address: \"{addr}\"\n    max_conns: {max_conns}\n"
        ));
    }
    s
}

/// fpmlb over all of `cluster`'s nodes with `extra` config.
fn start(cluster: &Cluster, extra: &str, max_conns: u32) -> Fpmlb {
    let addr = cluster.lb_addr();
    let yaml = format!(
        "{}{STRICT}{extra}{}",
        support::base_yaml(addr, &cluster.docroot()),
        backends(cluster, max_conns)
    );
    Fpmlb::start(&cluster.dir, addr, &yaml)
}

/// A TCP connection to `to`, from `from` when given (127.0.N.x source
/// addresses stand for distinct clients).
async fn connect(to: SocketAddr, from: Option<IpAddr>) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    tokio::time::timeout(BOUND, socket.connect(to))
        .await
        .expect("connect timed out")
        .unwrap()
}

/// What came back on a raw connection, read until the server closed it.
#[derive(Debug)]
struct Raw {
    /// The status of the first response, if one came.
    status: Option<u16>,
    text: String,
}

impl Raw {
    /// How many responses came (a status line at the start or after a line end).
    fn responses(&self) -> usize {
        let starts = |t: &str| t.starts_with("HTTP/1.1 ") || t.starts_with("HTTP/1.0 ");
        usize::from(starts(&self.text))
            + self
                .text
                .match_indices('\n')
                .filter(|(i, _)| starts(&self.text[i + 1..]))
                .count()
    }
}

/// The status of an HTTP/1.x status line at the start of `text`.
fn status_of(text: &str) -> Option<u16> {
    let rest = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?;
    rest.get(..3)?.parse().ok()
}

/// Reads what is left on `s` until the server closes it (a reset counts as
/// closed), bounded.
async fn read_until_closed(s: &mut TcpStream) -> Raw {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut chunk = [0u8; 65536];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    assert!(
        read.is_ok(),
        "connection still open after {BOUND:?}: {text}"
    );
    Raw {
        status: status_of(&text),
        text,
    }
}

/// Sends `bytes` on a new connection and reads until the server closes it.
/// Requests that the server keeps alive say `Connection: close`.
async fn raw(to: SocketAddr, bytes: &[u8]) -> Raw {
    let mut s = connect(to, None).await;
    // The server may refuse a head before reading it all: a failed write is
    // not the test's concern, the answer is.
    let _ = s.write_all(bytes).await;
    read_until_closed(&mut s).await
}

/// Every node answers GET /index.php through fpmlb, and no backend was
/// taken out of rotation.
async fn assert_every_backend_serves(cluster: &Cluster, lb: &Fpmlb) {
    let c = client(false);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..cluster.nodes().len() * 3 {
        let r = get(&c, &lb.url("/index.php")).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        seen.insert(
            r.text()
                .trim()
                .trim_start_matches("hello from ")
                .to_string(),
        );
    }
    let all: std::collections::BTreeSet<String> =
        cluster.nodes().into_iter().map(|(n, _)| n).collect();
    assert_eq!(seen, all, "every backend in rotation");
    let log = lb.log_text();
    assert!(
        !log.contains("out of rotation"),
        "a refused request counted against a backend:\n{log}"
    );
}

fn get_request(target: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra_headers}Connection: close\r\n\r\n")
        .into_bytes()
}

// ---------------------------------------------------------------- item 2

/// The issue's item 2 with the default limits: a 70,000-byte header and a
/// 65,534-byte query took every backend out; now fpmlb refuses them itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_are_refused_by_fpmlb_with_the_default_limits() {
    let cluster = Cluster::start(nets::HOSTILE_HEAD_DEFAULTS, &["--nodes", "2"]);
    let lb = start(&cluster, "", 4);
    let pad = |n: usize| format!("X-Pad: {}\r\n", "a".repeat(n));
    let cookies = |n: usize| format!("Cookie: c={}\r\n", "v".repeat(7000)).repeat(n);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        // Over hyper's buffer (max_header_size): hyper's 431.
        (
            "pad70k",
            get_request("/ran.php?tag=pad70k", &pad(70_000)),
            431,
        ),
        (
            "query64k",
            get_request(
                &format!("/ran.php?tag=query64k&q={}", "q".repeat(65_500)),
                "",
            ),
            431,
        ),
        (
            "cookies35k",
            get_request("/ran.php?tag=cookies35k", &cookies(5)),
            431,
        ),
        // Within the buffer, over a line limit: fpmlb's own 431 and 414.
        ("pad9k", get_request("/ran.php?tag=pad9k", &pad(9000)), 431),
        (
            "query10k",
            get_request(
                &format!("/ran.php?tag=query10k&q={}", "q".repeat(10_000)),
                "",
            ),
            414,
        ),
        // Within every limit: PHP runs, with 28 KB of joined cookies.
        ("pad8k", get_request("/ran.php?tag=pad8k", &pad(8000)), 200),
        (
            "cookies28k",
            get_request("/ran.php?tag=cookies28k", &cookies(4)),
            200,
        ),
    ];
    for (tag, request, expected) in &cases {
        let r = raw(lb.addr, request).await;
        assert_eq!(r.status, Some(*expected), "{tag}: {}", r.text);
        let runs = usize::from(*expected == 200);
        assert_eq!(cluster.ran(tag), runs, "{tag} ran {runs} times");
    }
    // fpmlb says why, at info, naming the limit.
    lb.wait_log_line(&["max_header_line"]).await;
    lb.wait_log_line(&["max_request_line"]).await;
    lb.wait_log_line(&["max_header_size"]).await;

    // The same limits over HTTP/2.
    let h2 = client(true);
    let r = support::send(
        &h2,
        http::Request::get(lb.url("/ran.php?tag=h2pad"))
            .header("x-pad", "a".repeat(9000))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!((r.status, r.version), (431, http::Version::HTTP_2));
    let r = get(
        &h2,
        &lb.url(&format!("/ran.php?tag=h2query&q={}", "q".repeat(10_000))),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 414);
    assert_eq!(cluster.ran("h2pad") + cluster.ran("h2query"), 0);
    assert_every_backend_serves(&cluster, &lb).await;
}

/// With lines allowed up to the 60k maximum, a param still never spans two
/// FastCGI records: a 60 KB header reaches PHP whole, cookies joined past
/// one record are 431, a 65,534-byte query is 414.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_widest_limits_every_param_still_fits_one_record() {
    let cluster = Cluster::start(nets::HOSTILE_HEAD_WIDE, &["--nodes", "2"]);
    let lb = start(
        &cluster,
        "max_request_line: 60k\nmax_header_line: 60k\nmax_header_size: 256k\n",
        4,
    );
    let value = "a".repeat(61_000);
    let r = raw(
        lb.addr,
        // HTTP/1.0: the body is not chunked, the connection's end ends it.
        format!("GET /env.php HTTP/1.0\r\nHost: x\r\nX-Pad: {value}\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(r.status, Some(200), "{}", &r.text[..r.text.len().min(500)]);
    let body = &r.text[r.text.find("\r\n\r\n").unwrap() + 4..];
    let env: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(env["HTTP_X_PAD"].as_str().map(str::len), Some(value.len()));

    let query = format!("/ran.php?tag=query60k&q={}", "q".repeat(60_000));
    assert_eq!(
        raw(lb.addr, &get_request(&query, "")).await.status,
        Some(200)
    );
    assert_eq!(cluster.ran("query60k"), 1);
    let query = format!("/ran.php?tag=query64k&q={}", "q".repeat(65_500));
    assert_eq!(
        raw(lb.addr, &get_request(&query, "")).await.status,
        Some(414)
    );
    assert_eq!(cluster.ran("query64k"), 0);

    // Two 40 KB Cookie lines: each fits, joined they would not.
    let cookies = format!("Cookie: a={}\r\n", "v".repeat(40_000)).repeat(2);
    let r = raw(lb.addr, &get_request("/ran.php?tag=cookies80k", &cookies)).await;
    assert_eq!(r.status, Some(431), "{}", r.text);
    assert_eq!(cluster.ran("cookies80k"), 0);
    lb.wait_log_line(&["HTTP_COOKIE does not fit one FastCGI record"])
        .await;
    assert_every_backend_serves(&cluster, &lb).await;
}

// ------------------------------------------------------------ items 5, 6

/// Header names that would forge an HTTP_* param, Host games, and the
/// framing tricks of request smuggling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_names_host_games_and_smuggling_shapes() {
    let cluster = Cluster::start(nets::HOSTILE_HEADERS, &["--nodes", "2"]);
    let lb = start(&cluster, "server_name: shop.example\n", 4);

    // Names PHP would turn into HTTP_X_FORWARDED_FOR, next to a real one.
    let r = raw(
        lb.addr,
        // HTTP/1.0: the body is not chunked, the connection's end ends it.
        b"GET /env.php HTTP/1.0\r\nHost: evil.example\r\nX.Forwarded-For: 6.6.6.6\r\n\
          X_Forwarded-For: 7.7.7.7\r\nX-Forwarded.For: 8.8.8.8\r\nX-Real: ok\r\n\
          Connection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, Some(200), "{}", r.text);
    let body = &r.text[r.text.find("\r\n\r\n").unwrap() + 4..];
    let env: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    // Only the peer fpmlb appends, none of the forged values.
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], env["REMOTE_ADDR"], "{env}");
    assert_eq!(env["HTTP_X_REAL"], "ok");
    // server_name wins over whatever Host the client sends.
    assert_eq!(env["SERVER_NAME"], "shop.example");
    assert_eq!(env["HTTP_HOST"], "evil.example");

    let head = |tag: &str, lines: &str| {
        format!("GET /ran.php?tag={tag} HTTP/1.1\r\n{lines}Connection: close\r\n\r\n").into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("dup-host", head("dup-host", "Host: a\r\nHost: evil\r\n"), 400),
        ("joined-host", head("joined-host", "Host: a, evil\r\n"), 400),
        ("path-host", head("path-host", "Host: evil/../x\r\n"), 400),
        ("no-host", head("no-host", ""), 400),
        (
            "abs-mismatch",
            b"GET http://a.example/ran.php?tag=abs-mismatch HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n".to_vec(),
            400,
        ),
        (
            "abs-match",
            b"GET http://a.example/ran.php?tag=abs-match HTTP/1.1\r\nHost: A.example:80\r\nConnection: close\r\n\r\n".to_vec(),
            200,
        ),
        (
            "http10-no-host",
            b"GET /ran.php?tag=http10-no-host HTTP/1.0\r\n\r\n".to_vec(),
            200,
        ),
        // Control bytes, obs-fold, a space before the colon: hyper's 400.
        ("nul", head("nul", "Host: x\r\nX-A: a\0b\r\n"), 400),
        ("bare-cr", head("bare-cr", "Host: x\r\nX-A: a\rb\r\n"), 400),
        ("obs-fold", head("obs-fold", "Host: x\r\nX-A: a\r\n b\r\n"), 400),
        ("space-colon", head("space-colon", "Host: x\r\nX-A : b\r\n"), 400),
        // Differing Content-Lengths: hyper's 400.
        (
            "cl-differ",
            b"POST /ran.php?tag=cl-differ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello!".to_vec(),
            400,
        ),
        // Codings other than chunked: 501 (nginx's), or 400 when chunked
        // is not the last one, or on HTTP/1.0 (hyper's).
        (
            "te-gzip",
            b"POST /ran.php?tag=te-gzip HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".to_vec(),
            501,
        ),
        (
            "te-last",
            b"POST /ran.php?tag=te-last HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\nConnection: close\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        (
            "te-twice",
            b"POST /ran.php?tag=te-twice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        (
            "te-http10",
            b"POST /ran.php?tag=te-http10 HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
    ];
    for (tag, request, expected) in &cases {
        let r = raw(lb.addr, request).await;
        assert_eq!(r.status, Some(*expected), "{tag}: {}", r.text);
        assert_eq!(r.responses(), 1, "{tag}: one answer: {}", r.text);
        let runs = usize::from(*expected == 200);
        assert_eq!(cluster.ran(tag), runs, "{tag} ran {runs} times");
    }
    lb.wait_log_line(&["duplicate host header"]).await;

    // Two equal Content-Lengths are one (RFC 9110 §8.6, hyper): five bytes
    // of body, and the sixth byte is not a request.
    let r = raw(
        lb.addr,
        b"POST /ran.php?tag=cl-same HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!((r.status, r.responses()), (Some(200), 1), "{}", r.text);
    assert_eq!(cluster.ran("cl-same"), 1);

    // Transfer-Encoding with Content-Length: read as chunked, and the
    // connection closed after the answer, so the request hidden in what
    // Content-Length would have called the body never runs.
    let r = raw(
        lb.addr,
        b"POST /ran.php?tag=te-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
          GET /ran.php?tag=smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!((r.status, r.responses()), (Some(200), 1), "{}", r.text);
    assert_eq!(cluster.ran("te-cl"), 1);
    assert_eq!(cluster.ran("smuggled"), 0);

    // HTTP/2: a Host that contradicts :authority.
    let h2 = client(true);
    let r = support::send(
        &h2,
        http::Request::get(lb.url("/ran.php?tag=h2-host"))
            .header("host", "evil.example")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!((r.status, r.version), (400, http::Version::HTTP_2));
    assert_eq!(cluster.ran("h2-host"), 0);
    assert_every_backend_serves(&cluster, &lb).await;
}

// ---------------------------------------------------------------- item 1

/// Reads the interim `100 Continue` that hyper sends when fpmlb starts
/// reading a body: proof that the request is in fpmlb's hands.
async fn expect_continue(s: &mut TcpStream) {
    let mut got = Vec::new();
    tokio::time::timeout(BOUND, async {
        let mut b = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut b).await.unwrap(), 1, "closed before 100");
            got.push(b[0]);
        }
    })
    .await
    .expect("no 100 Continue");
    assert!(
        got.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

/// A slow upload: the head with `Expect: 100-continue`, one byte of body
/// after the 100, then nothing. Chunked or with a Content-Length.
async fn slow_upload(lb: SocketAddr, from: IpAddr, tag: &str, chunked: bool) -> TcpStream {
    let mut s = connect(lb, Some(from)).await;
    let framing = if chunked {
        "Transfer-Encoding: chunked"
    } else {
        "Content-Length: 100000"
    };
    let head = format!(
        "POST /ran.php?tag={tag} HTTP/1.1\r\nHost: x\r\n{framing}\r\nExpect: 100-continue\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    expect_continue(&mut s).await;
    let first: &[u8] = if chunked { b"1\r\nA\r\n" } else { b"A" };
    s.write_all(first).await.unwrap();
    s
}

/// The issue's item 1: slow uploads held every php-fpm worker. With two
/// workers per pool, sixteen slow clients (eight chunked) hold none: every
/// node still answers, then each slow client gets 408 from fpmlb, and no
/// upload ever reached PHP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_hold_no_php_worker() {
    let net = nets::HOSTILE_SLOW_UPLOADS;
    let cluster = Cluster::start(net, &["--nodes", "2", "--children", "2"]);
    let lb = start(&cluster, "timeouts:\n  client_body: 4s\n  queue: 2s\n", 2);
    let from: IpAddr = net.ip(10).parse().unwrap();
    let mut slow = Vec::new();
    for i in 0..16 {
        slow.push(slow_upload(lb.addr, from, "upload", i % 2 == 0).await);
    }
    // Sixteen bodies in fpmlb's hands, four php-fpm workers: all free.
    assert_every_backend_serves(&cluster, &lb).await;
    for mut s in slow {
        let r = read_until_closed(&mut s).await;
        assert_eq!(r.status, Some(408), "{}", r.text);
    }
    assert_eq!(cluster.ran("upload"), 0);
    let log = lb.log_text();
    let timeouts = log
        .lines()
        .filter(|l| l.contains("timeouts.client_body"))
        .count();
    assert!(timeouts >= 16, "a log line per slow client:\n{log}");
    assert_every_backend_serves(&cluster, &lb).await;
}

/// The same over HTTP/2: 127 slow streams (HTTP/2's cap per connection,
/// 128, less one) on one connection, then GETs on that same connection:
/// the server has taken every slow stream's HEADERS and DATA before the
/// GET's, so the GET's answer shows none of them holds a worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http2_streams_hold_no_php_worker() {
    type Chunk = Result<http_body::Frame<Bytes>, std::convert::Infallible>;
    type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;
    let net = nets::HOSTILE_SLOW_H2_STREAMS;
    let cluster = Cluster::start(net, &["--nodes", "2", "--children", "2"]);
    let lb = start(&cluster, "timeouts:\n  client_body: 8s\n  queue: 2s\n", 2);
    let stream = connect(lb.addr, None).await;
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Body>(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut feeds = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..127 {
        let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(1);
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"A"))))
            .await
            .unwrap();
        let body = http_body_util::StreamBody::new(tokio_stream_from(rx)).boxed();
        let req = http::Request::post(lb.url("/ran.php?tag=h2upload"))
            .header("content-length", "100000")
            .body(body)
            .unwrap();
        sender.ready().await.unwrap();
        answers.push(tokio::spawn(sender.send_request(req)));
        feeds.push(tx);
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        sender.ready().await.unwrap();
        let req = http::Request::get(lb.url("/index.php"))
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
        let resp = tokio::time::timeout(BOUND, sender.send_request(req))
            .await
            .expect("GET timed out")
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.into_body().collect().await.unwrap().to_bytes();
        seen.insert(String::from_utf8_lossy(&text).trim().to_string());
    }
    assert_eq!(seen.len(), 2, "both nodes answered: {seen:?}");
    assert!(
        answers.iter().all(|a| !a.is_finished()),
        "the slow streams are still being read"
    );
    for answer in answers {
        let resp = tokio::time::timeout(BOUND, answer)
            .await
            .expect("slow stream never answered")
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 408);
    }
    drop(feeds);
    assert_eq!(cluster.ran("h2upload"), 0);
    assert_every_backend_serves(&cluster, &lb).await;
}

/// An mpsc receiver as a stream (tokio-stream is not a dependency).
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
}

/// `request_buffering: off` is the risk the README names: streamed
/// uploads hold workers, and other requests wait for them (503 after
/// `timeouts.queue`). The body timeout ends it: 408, the workers are free
/// again, and the client's timeout never counts against a backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_request_buffering_off_the_body_timeout_frees_the_workers() {
    let net = nets::HOSTILE_STREAMING;
    let cluster = Cluster::start(net, &["--nodes", "2", "--children", "2"]);
    let lb = start(
        &cluster,
        "request_buffering: off\nbody_buffer_size: 1k\ntimeouts:\n  client_body: 6s\n  queue: 2s\n",
        2,
    );
    let from: IpAddr = net.ip(10).parse().unwrap();
    let mut slow = Vec::new();
    // Streamed: the 100 comes once a worker took the request.
    for _ in 0..4 {
        slow.push(slow_upload(lb.addr, from, "streamed", false).await);
    }
    let c = client(false);
    let r = get(&c, &lb.url("/index.php")).await.unwrap();
    assert_eq!(r.status, 503, "every worker is held: {}", r.text());
    for mut s in slow {
        let r = read_until_closed(&mut s).await;
        assert_eq!(r.status, Some(408), "{}", r.text);
    }
    assert_every_backend_serves(&cluster, &lb).await;
}

// --------------------------------------------------------------- item 10

/// 300 connections that never finish their head, and 20 that send
/// nothing, are closed by `timeouts.client_header`; a kept-alive
/// connection idle for longer than that is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_heads_are_closed_and_idle_keep_alive_is_not() {
    let net = nets::HOSTILE_HALF_HEADS;
    let lb = start_alone(net, "timeouts:\n  client_header: 2s\n");
    // A kept-alive connection: one request answered (404: no script).
    let mut kept = connect(lb.addr, None).await;
    let ask = b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n";
    kept.write_all(ask).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&buf[..n])), Some(404));

    let mut half = Vec::new();
    for i in 0..320u16 {
        let from: IpAddr = net.ip(10 + (i % 3) as u8).parse().unwrap();
        let mut s = connect(lb.addr, Some(from)).await;
        if i < 300 {
            s.write_all(b"GET /index.php HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        half.push(s);
    }
    // Every one is closed, none answered, within the bound.
    let closed = futures_util::future::join_all(half.iter_mut().map(read_until_closed)).await;
    for r in &closed {
        assert!(r.text.is_empty() || r.status == Some(408), "{}", r.text);
    }
    let log = lb.log_text();
    let lines = log
        .lines()
        .filter(|l| l.contains("timeouts.client_header"))
        .count();
    assert!(lines >= 320, "{lines} log lines:\n{log}");
    // All that took longer than client_header: the idle connection lives on.
    kept.write_all(ask).await.unwrap();
    let n = kept.read(&mut buf).await.unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&buf[..n])), Some(404));
}

/// A client that asks for a large response and reads none of it holds the
/// php-fpm worker that writes it until `timeouts.client_send`; then fpmlb
/// closes the connection, the worker is free, and nothing counts against
/// the backend. With one worker per pool and two such clients, a GET
/// waits for a worker and gets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_nothing_is_cut_off_and_frees_the_worker() {
    let net = nets::HOSTILE_SLOW_READER;
    let cluster = Cluster::start(net, &["--nodes", "2", "--children", "1"]);
    let lb = start(&cluster, "timeouts:\n  client_send: 2s\n  queue: 25s\n", 1);
    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut s = connect(lb.addr, None).await;
        s.write_all(b"GET /big.php?bytes=67108864 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        readers.push(s);
    }
    // Both workers are writing to clients that do not read: this waits
    // for one of them to be cut off.
    let r = get(&client(false), &lb.url("/index.php")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = std::time::Instant::now() + BOUND;
    let cut = || {
        lb.log_text()
            .lines()
            .filter(|l| l.contains("(timeouts.client_send): connection closed"))
            .count()
    };
    while cut() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", lb.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_every_backend_serves(&cluster, &lb).await;
    drop(readers);
}

/// One address cannot take the global cap: with `max_connections: 20`
/// and `max_connections_per_client: 5`, 30 connections from one address
/// leave 25 closed at once, and another address is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_fill_the_connection_cap() {
    let net = nets::HOSTILE_PER_CLIENT;
    let lb = start_alone(
        net,
        "max_connections: 20\nmax_connections_per_client: 5\ntimeouts:\n  client_header: 60s\n",
    );
    let hog: IpAddr = net.ip(10).parse().unwrap();
    let mut conns = Vec::new();
    for _ in 0..30 {
        conns.push(connect(lb.addr, Some(hog)).await);
    }
    // fpmlb closes the ones over the cap without reading them.
    let deadline = tokio::time::Instant::now() + BOUND;
    let mut open = Vec::new();
    let mut closed = 0;
    for mut s in conns {
        let mut b = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await {
            Ok(Ok(0) | Err(_)) => closed += 1,
            Ok(Ok(_)) => panic!("unexpected bytes"),
            Err(_) => open.push(s),
        }
    }
    // A refused connection may take a moment to be seen closed: poll.
    while open.len() > 5 && tokio::time::Instant::now() < deadline {
        let mut still = Vec::new();
        for mut s in open {
            let mut b = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await {
                Ok(Ok(0) | Err(_)) => closed += 1,
                Ok(Ok(_)) => panic!("unexpected bytes"),
                Err(_) => still.push(s),
            }
        }
        open = still;
    }
    assert_eq!((open.len(), closed), (5, 25));
    lb.wait_log_line(&["max_connections_per_client", "refusing more"])
        .await;
    // Another client is served; so are the hog's five.
    let other: IpAddr = net.ip(11).parse().unwrap();
    let mut s = connect(lb.addr, Some(other)).await;
    s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_until_closed(&mut s).await.status, Some(404));
    for mut s in open {
        s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_until_closed(&mut s).await.status, Some(404));
    }
}

/// HTTP/2 carries up to 128 requests per connection: one address cannot
/// have more requests at the backends than it may have connections. With
/// `max_connections_per_client: 3`, eight slow PHP requests on one HTTP/2
/// connection: three run, five get 429 with Retry-After at once (they
/// would have filled the pools' queues); a request fpmlb answers itself
/// is not counted; another address is served; the backends stay in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_fill_the_backends_over_http2() {
    let net = nets::HOSTILE_H2_PER_CLIENT;
    let cluster = Cluster::start(net, &["--nodes", "2", "--children", "4"]);
    let lb = start(&cluster, "max_connections_per_client: 3\n", 4);
    let h2_from = |ip: IpAddr| {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_local_address(Some(ip));
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build::<_, Full<Bytes>>(connector)
    };
    let hog = h2_from(net.ip(10).parse().unwrap());
    let get_on = |c: &hyper_util::client::legacy::Client<_, Full<Bytes>>, path: &str| {
        let req = http::Request::get(lb.url(path))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let fut = c.request(req);
        async move {
            let r = tokio::time::timeout(BOUND, fut).await.unwrap().unwrap();
            let status = r.status().as_u16();
            let retry = r.headers().contains_key("retry-after");
            let version = r.version();
            let _ = r.into_body().collect().await;
            (status, retry, version)
        }
    };
    // One connection first, so that all eight share it.
    assert_eq!(get_on(&hog, "/index.php").await.0, 200);
    let slow: Vec<_> = (0..8)
        .map(|_| tokio::spawn(get_on(&hog, "/slow.php?ms=3000")))
        .collect();
    // While the three run: a path fpmlb answers itself, and another address.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _, version) = get_on(&hog, "/no-such-file.txt").await;
    assert_eq!((status, version), (404, http::Version::HTTP_2));
    let other = h2_from(net.ip(11).parse().unwrap());
    assert_eq!(get_on(&other, "/index.php").await.0, 200);
    let mut statuses = Vec::new();
    for t in slow {
        let (status, retry, _) = t.await.unwrap();
        assert_eq!(retry, status == 429, "Retry-After on 429 only");
        statuses.push(status);
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 200, 200, 429, 429, 429, 429, 429],
        "{}",
        lb.log_text()
    );
    lb.wait_log_line(&["HTTP/2 requests of this address", "429"])
        .await;
    // Done: the address has its three places back; both nodes still serve.
    let again: Vec<_> = (0..3)
        .map(|_| tokio::spawn(get_on(&hog, "/index.php")))
        .collect();
    for t in again {
        assert_eq!(t.await.unwrap().0, 200);
    }
    assert_every_backend_serves(&cluster, &lb).await;
}

// ---------------------------------------------------------------- item 7

/// A browser turned against the admin API: a cross-site form POST, a
/// fetch from another origin, DNS rebinding. Each refused, the backend
/// never drained; curl's plain POST still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_what_a_browser_can_be_made_to_send() {
    let net = nets::HOSTILE_ADMIN;
    let admin = net.addr(1, 9180);
    let dir = support::state_dir(net);
    let addr = net.addr(1, 8080);
    let yaml = format!(
        "listen: \"{addr}\"\ndocument_root: /var/www\nadmin:\n  listen: \"{admin}\"\n\
         backends:\n  - name: web01\n    address: \"{}\"\n",
        net.addr(2, 9)
    );
    let _lb = Fpmlb::start_with_admin(&dir, addr, Some(admin), &yaml);
    // The only backend, up: drained only with ?force=1.
    let drain = "/backends/web01/drain?force=1";
    let post = |headers: &str| {
        format!(
            "POST {drain} HTTP/1.1\r\nHost: {admin}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
    };
    let enabled = || async {
        let r = raw(
            admin,
            format!("GET /status.json HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert_eq!(r.status, Some(200), "{}", r.text);
        let body = &r.text[r.text.find("\r\n\r\n").unwrap() + 4..];
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        doc["backends"][0]["enabled"].as_bool().unwrap()
    };
    let cases = [
        ("Content-Type: application/x-www-form-urlencoded\r\n", 403),
        ("Content-Type: text/plain\r\n", 403),
        ("Origin: http://evil.example\r\n", 403),
        ("Origin: null\r\n", 403),
        ("Sec-Fetch-Site: cross-site\r\n", 403),
    ];
    for (headers, expected) in cases {
        let r = raw(admin, &post(headers)).await;
        assert_eq!(r.status, Some(expected), "{headers}: {}", r.text);
        assert!(enabled().await, "{headers} drained the backend");
    }
    // DNS rebinding: evil.example resolving to the admin address.
    let r = raw(
        admin,
        b"GET /status.json HTTP/1.1\r\nHost: evil.example:9180\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, Some(421), "{}", r.text);
    let r = raw(
        admin,
        b"POST /backends/web01/drain HTTP/1.1\r\nHost: evil.example:9180\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, Some(421), "{}", r.text);
    assert!(enabled().await);
    // What curl sends, and a same-origin fetch from the status page.
    let r = raw(admin, &post("")).await;
    assert_eq!(r.status, Some(200), "{}", r.text);
    assert!(!enabled().await);
    let same = format!(
        "Origin: http://{admin}\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/json\r\n"
    );
    let enable = String::from_utf8(post(&same))
        .unwrap()
        .replace("drain", "enable");
    let r = raw(admin, enable.as_bytes()).await;
    assert_eq!(r.status, Some(200), "{}", r.text);
    assert!(enabled().await);

    // A non-loopback admin listener without a token is a config error.
    let bad = support::write_file(
        &dir,
        "open-admin.yaml",
        "listen: \":8080\"\ndocument_root: /var/www\nadmin:\n  listen: 0.0.0.0:9180\n\
         backends:\n  - name: a\n    address: 127.0.0.1:9000\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fpmlb"))
        .args(["config", "test", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("line 4: admin.token: required when admin.listen (0.0.0.0:9180) is not a loopback address"),
        "{text}"
    );
}
