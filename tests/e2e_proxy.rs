//! End to end against real php-fpm nodes started by integration/cluster.sh:
//! balancing, request mapping compared with nginx + Debian's fastcgi-php.conf,
//! bodies, large responses, HTTP/2, unix sockets, and a node going away.
//!
//! Each test has its own 127.0.N.x network (tests/support/nets.rs).

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use support::{Cluster, client, get, nets, send, start_lb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn node_of(body: &str) -> String {
    body.trim().trim_start_matches("hello from ").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_thirty_requests_ten_each() {
    let cluster = Cluster::start(nets::PROXY_ROUND_ROBIN, &[]);
    let lb = start_lb(&cluster, "");
    let c = client(false);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let r = get(&c, &lb.url("/")).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        *counts.entry(node_of(&r.text())).or_default() += 1;
    }
    let expected: HashMap<String, usize> = ["web01", "web02", "web03"]
        .iter()
        .map(|n| (n.to_string(), 10))
        .collect();
    assert_eq!(counts, expected);
    // The access log has a line per request naming the backend.
    let log = lb.log_text();
    assert!(
        log.lines()
            .filter(|l| l.contains("fpmlb::access") && l.contains("backend="))
            .count()
            >= 30,
        "{log}"
    );
}

/// PHP's "answer early" idiom (integration/www/early.php): the whole
/// response with its Content-Length, flushed, then the script works on
/// past `timeouts.read`. The client gets the whole response, small (read
/// with the head) or large (streamed), and a HEAD its head; the script's long tail is not its
/// backend's failure (with `max_fails: 1`, one would take the node out of
/// rotation: the index page would then come from the other node only); the
/// connection is closed when the read timeout ends the wait for the
/// END_REQUEST behind it, and said so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_early_then_working_on_is_a_whole_response() {
    let cluster = Cluster::start(nets::PROXY_ANSWER_EARLY, &["--nodes", "2"]);
    let lb = start_lb(&cluster, "timeouts:\n  read: 1s\nmax_fails: 1\n");
    let c = client(false);
    for (query, len) in [("", 5), ("?bytes=300000", 300_000)] {
        let r = get(&c, &lb.url(&format!("/early.php{query}")))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        assert_eq!(r.body.len(), len, "{query}");
        assert!(r.body.iter().all(|&b| b == b'e'), "{query}");
    }
    // HEAD: whole with its head, as the GET.
    let head = http::Request::head(lb.url("/early.php"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = send(&c, head).await.unwrap();
    assert_eq!(r.status, 200, "HEAD: {}", r.text());
    let mut nodes = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let r = get(&c, &lb.url("/")).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        nodes.insert(node_of(&r.text()));
    }
    assert_eq!(
        nodes.len(),
        2,
        "a node was taken out of rotation: {nodes:?}"
    );
    lb.wait_log_line(&[
        "after a response's whole Content-Length",
        "connection closed",
    ])
    .await;
    let log = lb.log_text();
    assert!(!log.contains("response cut short"), "{log}");
}

/// A script past `timeouts.read` (504), and one whose worker dies under it
/// (502: a crash, or php-fpm's `request_terminate_timeout`), on nodes that
/// answer other requests meanwhile: the scripts' failures, not their
/// nodes'. With `max_fails: 1`, counting them would take a node out of
/// rotation for each such request, and a client who found one slow or
/// crashing page could take the whole cluster out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_crashing_script_takes_no_node_out_of_rotation() {
    let cluster = Cluster::start(
        nets::PROXY_SCRIPTS_FAULT,
        &["--nodes", "2", "--children", "6"],
    );
    let lb = start_lb(&cluster, "timeouts:\n  read: 1s\nmax_fails: 1\n");
    for path in ["/slow.php?ms=1500", "/crash.php?ms=700"] {
        // Two at once (a crash is retried, on another node for a GET),
        // while both nodes answer other requests.
        let mut failing = Vec::new();
        for _ in 0..2 {
            let url = lb.url(path);
            failing.push(tokio::spawn(async move {
                get(&client(false), &url).await.map(|r| r.status)
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let c = client(false);
        while !failing.iter().all(|f| f.is_finished()) {
            let r = get(&c, &lb.url("/hello.php")).await.unwrap();
            assert_eq!(r.status, 200, "{path}: {}\n{}", r.text(), lb.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for f in failing {
            let status = f.await.unwrap().unwrap();
            assert_eq!(
                status,
                if path.starts_with("/slow") { 504 } else { 502 },
                "{path}"
            );
        }
        let mut nodes = std::collections::BTreeSet::new();
        for _ in 0..6 {
            let r = get(&c, &lb.url("/")).await.unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            nodes.insert(node_of(&r.text()));
        }
        let log = lb.log_text();
        assert_eq!(
            nodes.len(),
            2,
            "{path}: a node was taken out: {nodes:?}\n{log}"
        );
        assert!(!log.contains("out of rotation"), "{path}: {log}");
        // The slow scripts run on past the read timeout: done before the
        // next round.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

/// The URL table compared with what nginx sends through Debian's snippet,
/// with the status both must give (pinned: two servers failing alike would
/// otherwise compare nothing).
const URLS: &[(&str, u16)] = &[
    ("/env.php", 200),
    ("/env.php?x=1&y=%20z", 200),
    ("/env.php/a/b", 200),
    ("/env.php/a%20b/c?x=1", 200),
    ("/env.php/caf%C3%A9/%7Euser", 200),
    ("/sub/", 200),
    ("/sub/?q=1", 200),
    ("/sub/page.php", 200),
    ("/sub/page.php/x/y.php/z?k=v&k2", 200),
    ("/a%20b.php", 200),
    ("/a%20b.php/p%2Fq", 200),
    ("//env.php//x", 200),
    ("/sub/./page.php", 200),
    ("/sub/../env.php/p", 200),
    ("/env.php?", 200),
];

const COMPARED: &[&str] = &[
    "SCRIPT_NAME",
    "SCRIPT_FILENAME",
    "PATH_INFO",
    "PHP_SELF",
    "REQUEST_URI",
    "DOCUMENT_URI",
    "DOCUMENT_ROOT",
    "QUERY_STRING",
    "REQUEST_METHOD",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_PROTOCOL",
    "REQUEST_SCHEME",
    "GATEWAY_INTERFACE",
    "REDIRECT_STATUS",
    "SERVER_PORT",
    "HTTP_HOST",
    "HTTP_COOKIE",
    "HTTPS",
    "PATH_TRANSLATED",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_match_nginx_with_debian_fastcgi_php_conf() {
    let cluster = Cluster::start(nets::PROXY_PARAMS_VS_NGINX, &[]);
    let lb = start_lb(&cluster, "");
    // nginx on the same port number of another address, so SERVER_PORT matches.
    let nginx_dir = cluster.dir.join("nginx");
    let nginx_addr = cluster.net.addr(5, 8080).to_string();
    let out = Command::new(support::repo().join("integration/nginx.sh"))
        .args(["start", "--dir"])
        .arg(&nginx_dir)
        .args(["--listen", &nginx_addr, "--cluster"])
        .arg(&cluster.dir)
        .output()
        .unwrap();
    struct StopNginx(std::path::PathBuf);
    impl Drop for StopNginx {
        fn drop(&mut self) {
            let _ = Command::new(support::repo().join("integration/nginx.sh"))
                .arg("stop")
                .arg("--dir")
                .arg(&self.0)
                .output();
        }
    }
    let _stop = StopNginx(nginx_dir.clone());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let c = client(false);
    for &(url, status) in URLS {
        for method in ["GET", "POST"] {
            let body = if method == "POST" { "a=1&b=2" } else { "" };
            let req = |base: &str| {
                let mut b = http::Request::builder()
                    .method(method)
                    .uri(format!("http://{base}{url}"))
                    .header("host", "shop.example:8080")
                    .header("cookie", "PHPSESSID=abc");
                if method == "POST" {
                    b = b.header("content-type", "application/x-www-form-urlencoded");
                }
                b.body(Full::new(Bytes::from(body))).unwrap()
            };
            let ours = send(&c, req(&lb.addr.to_string())).await.unwrap();
            let theirs = send(&c, req(&nginx_addr)).await.unwrap();
            assert_eq!(
                (ours.status, theirs.status),
                (status, status),
                "{method} {url}: status of fpmlb and nginx, expected {status}:\n{}\n{}",
                ours.text(),
                theirs.text()
            );
            if status != 200 {
                continue;
            }
            let (a, b) = (ours.json(), theirs.json());
            for key in COMPARED {
                assert_eq!(
                    a.get(key),
                    b.get(key),
                    "{method} {url}: {key} differs (fpmlb vs nginx)"
                );
            }
            assert_eq!(a["body_sha256"], b["body_sha256"], "{method} {url}: body");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_reach_php_intact_and_oversized_ones_get_413() {
    let cluster = Cluster::start(nets::PROXY_BODIES, &[]);
    let lb = start_lb(&cluster, "max_body_size: 1m\nbody_buffer_size: 16k\n");
    let c = client(false);
    let post = |body: Vec<u8>| {
        http::Request::post(lb.url("/upload.php"))
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    for size in [0usize, 1024, 16 * 1024 + 1, 1024 * 1024] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let r = send(&c, post(body.clone())).await.unwrap();
        assert_eq!(r.status, 200, "size {size}: {}", r.text());
        let j = r.json();
        assert_eq!(j["len"], size, "size {size}");
        assert_eq!(
            j["sha256"].as_str().unwrap(),
            sha256_hex(&body),
            "size {size}"
        );
    }
    let r = send(&c, post(vec![b'x'; 1024 * 1024 + 1])).await.unwrap();
    assert_eq!(r.status, 413);

    // Chunked bodies (no Content-Length): small, spilled to a temp file, over the limit.
    for (size, expect) in [
        (1000usize, 200u16),
        (300 * 1024, 200),
        (1024 * 1024 + 10, 413),
    ] {
        let body: Vec<u8> = (0..size).map(|i| (i % 241) as u8).collect();
        let (status, text) = raw_chunked_post(&lb.addr.to_string(), "/upload.php", &body).await;
        assert_eq!(status, expect, "chunked {size}: {text}");
        if expect == 200 {
            assert!(text.contains(&sha256_hex(&body)), "chunked {size}: {text}");
        }
    }
}

async fn raw_chunked_post(addr: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(7000) {
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        if s.write_all(chunk).await.is_err() {
            break; // a 413 may close the connection before we finish
        }
        let _ = s.write_all(b"\r\n").await;
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_responses_arrive_whole_over_http1_and_http2() {
    let cluster = Cluster::start(nets::PROXY_LARGE_RESPONSES, &[]);
    let lb = start_lb(&cluster, "");
    let pattern = b"0123456789abcdef";
    for http2 in [false, true] {
        let c = client(http2);
        for size in [65536usize, 1024 * 1024] {
            for _ in 0..3 {
                let r = get(&c, &lb.url(&format!("/big.php?bytes={size}")))
                    .await
                    .unwrap();
                assert_eq!(r.status, 200);
                assert_eq!(
                    r.version,
                    if http2 {
                        http::Version::HTTP_2
                    } else {
                        http::Version::HTTP_11
                    }
                );
                assert_eq!(r.body.len(), size, "http2={http2}");
                assert!(
                    r.body.chunks(16).all(|c| c == &pattern[..c.len()]),
                    "corrupt body, http2={http2}"
                );
            }
        }
    }
    // HEAD gets the head only, and the pooled connection stays usable.
    let c = client(false);
    let r = send(
        &c,
        http::Request::head(lb.url("/big.php?bytes=1000&cl=1"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = get(&c, &lb.url("/")).await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_get_fails_when_a_node_stops_mid_run() {
    let cluster = Cluster::start(nets::PROXY_NODE_STOPS, &[]);
    let lb = start_lb(&cluster, "");
    let c = client(false);
    let mut served: HashMap<String, usize> = HashMap::new();
    for i in 0..60 {
        if i == 20 {
            cluster.kill_node("web02", "TERM");
            // Gone before the next request: one sent at once may still be
            // served while php-fpm winds down.
            cluster.wait_node_gone("web02");
        }
        let r = get(&c, &lb.url("/")).await.unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        *served.entry(node_of(&r.text())).or_default() += 1;
    }
    assert!(served.get("web02").copied().unwrap_or(0) <= 7, "{served:?}");
    assert!(served["web01"] >= 20 && served["web03"] >= 20, "{served:?}");
    // The failure is logged against web02 itself (every backend is named
    // in the start-up lines, so the line must say both).
    lb.wait_log_line(&["trying another backend", "backend=web02"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_headers_status_and_cookies_pass_through() {
    let cluster = Cluster::start(nets::PROXY_HEADERS, &["--unix-node", "web03"]);
    let lb = start_lb(&cluster, "front_controller: /index.php\n");
    let c = client(false);
    // Several Set-Cookie headers survive.
    let r = get(&c, &lb.url("/cookies.php")).await.unwrap();
    assert_eq!(r.headers.get_all("set-cookie").iter().count(), 3);
    // Location without Status gives 302, as nginx does.
    let r = get(&c, &lb.url("/status.php?location=/elsewhere"))
        .await
        .unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(r.headers["location"], "/elsewhere");
    let r = get(&c, &lb.url("/status.php?code=418")).await.unwrap();
    assert_eq!(r.status, 418);
    // A script that does not exist: php-fpm's 404.
    let r = get(&c, &lb.url("/missing.php")).await.unwrap();
    assert_eq!(r.status, 404);
    // The front controller takes a pretty URL, keeping REQUEST_URI; the unix node serves too.
    let mut nodes = std::collections::HashSet::new();
    for _ in 0..3 {
        let r = get(&c, &lb.url("/users/42?tab=1")).await.unwrap();
        assert_eq!(r.status, 200);
        nodes.insert(node_of(&r.text()));
    }
    assert!(
        nodes.contains("web03"),
        "unix socket node served: {nodes:?}"
    );
    // Over HTTP/2 too.
    let r = get(&client(true), &lb.url("/env.php/x")).await.unwrap();
    assert_eq!(r.json()["SERVER_PROTOCOL"], "HTTP/2.0");
    assert_eq!(r.json()["HTTP_HOST"], lb.addr.to_string());
}

/// Runs `fpmlb config test` on `yaml`; the exit code and stderr.
fn config_test(dir: &std::path::Path, name: &str, yaml: &str) -> (Option<i32>, String) {
    let path = support::write_file(dir, name, yaml);
    let out = Command::new(env!("CARGO_BIN_EXE_fpmlb"))
        .args(["config", "test", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_test_names_the_key_and_line() {
    // Nothing listens: a temporary folder, not a network's state folder.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (code, err) = config_test(
        dir,
        "bad.yaml",
        "listen: \"127.0.0.1:8080\"\ndocument_root: /var/www\nbackends:\n  - name: web01\n    address: \"10.0.0.7\"\n  - name: web02\n    address: \"10.0.0.8:9000\"\n    wieght: 2\n",
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("line 8") && err.contains("wieght"), "{err}");

    let (code, err) = config_test(
        dir,
        "bad2.yaml",
        "listen: \"127.0.0.1:8080\"\ndocument_root: /var/www\nbackends:\n  - name: web01\n    address: \"10.0.0.7\"\n",
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("line 5") && err.contains("backends[0].address"),
        "{err}"
    );

    // A save path the session checker could not use is refused too, at its key and line.
    let (code, err) = config_test(
        dir,
        "bad3.yaml",
        "listen: \"127.0.0.1:8080\"\ndocument_root: /var/www\nbackends:\n  - name: web01\n    address: \"10.0.0.7:9000\"\nsession: {save_handler: memcached, save_path: \"tcp://\"}\n",
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("line 6: session.save_path: memcached: 'tcp://'") && err.contains("not a URL"),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_fpmlb"))
        .args(["config", "print-default"])
        .output()
        .unwrap();
    let (code, err) = config_test(dir, "default.yaml", &String::from_utf8_lossy(&out.stdout));
    assert_eq!(code, Some(0), "{err}");
}

/// fpmlb short of file descriptors (here a limit of [`NOFILE`], filled by
/// idle client connections; in the field, many uploads in temp files):
/// the requests it cannot open a FastCGI connection for get 503, and no
/// node is taken out of rotation for it, by requests (`max_fails: 1`) or
/// health checks (`fall: 1`): once files are free again, every node
/// serves. Before, each such connect counted against its backend and was
/// retried on the next, which failed alike, and a health check that met
/// it took the node down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_files_takes_no_node_out_of_rotation() {
    const NOFILE: u32 = 64;
    let cluster = Cluster::start(nets::PROXY_OUT_OF_FILES, &["--nodes", "2"]);
    let addr = cluster.lb_addr();
    let yaml = format!(
        "{}max_fails: 1\nfail_timeout: 60s\nhealth:\n  interval: 200ms\n  timeout: 300ms\n  rise: 1\n  fall: 1\n  ping_path: /fpm-ping\nworkers: 1\n{}",
        support::base_yaml(addr, &cluster.docroot()),
        cluster.backends_yaml()
    );
    let lb = support::Fpmlb::start_with_nofile(&cluster.dir, addr, &yaml, NOFILE);
    // Idle clients until fpmlb can accept no more (the rest wait in the
    // kernel's backlog): every descriptor it may open is taken.
    let mut idle = Vec::new();
    for _ in 0..NOFILE + 16 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Until fpmlb has run out and a health check (every 200 ms, `fall: 1`)
    // met the shortage: no verdict on the node.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(lb.log_text().contains("accept failed")
        && lb.log_text().contains("liveness check not made"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "fpmlb never ran out of files:\n{}",
            lb.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Requests on connections it accepted (the first ones), at once: they
    // need new FastCGI connections, which it cannot open.
    let mut statuses = Vec::new();
    let asks: Vec<_> = idle
        .drain(..8)
        .map(|mut s| {
            tokio::spawn(async move {
                s.write_all(
                    b"GET /slow.php?ms=300 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                )
                .await
                .unwrap();
                let mut answer = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut answer)).await;
                String::from_utf8_lossy(&answer).into_owned()
            })
        })
        .collect();
    for ask in asks {
        let answer = ask.await.unwrap();
        statuses.push(answer.split(' ').nth(1).unwrap_or("none").to_owned());
    }
    assert!(
        statuses.iter().any(|s| s == "503"),
        "{statuses:?}\n{}",
        lb.log_text()
    );
    assert!(
        statuses.iter().all(|s| s == "503" || s == "200"),
        "{statuses:?}\n{}",
        lb.log_text()
    );
    let log = lb.log_text();
    assert!(!log.contains("out of rotation"), "{log}");
    assert!(log.contains("fpmlb cannot open a connection"), "{log}");
    // Files free again: both nodes serve (round robin), none was counted.
    drop(idle);
    let c = client(false);
    let mut nodes = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while nodes.len() < 2 || nodes.values().sum::<usize>() < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "{nodes:?}\n{}",
            lb.log_text()
        );
        match get(&c, &lb.url("/")).await {
            Ok(r) if r.status == 200 => *nodes.entry(node_of(&r.text())).or_insert(0) += 1,
            // The backlog's connections are still being accepted and closed.
            Ok(r) => assert_eq!(r.status, 503, "{}", r.text()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(
        !lb.log_text().contains("out of rotation"),
        "{}",
        lb.log_text()
    );
    assert!(!lb.log_text().contains("backend DOWN"), "{}", lb.log_text());
}

/// A script that answers before it reads its request body (PHP reads a
/// PUT body only when the script asks for `php://input`, and the rest of
/// any body once the script has ended): php-fpm writes its response while
/// fpmlb still writes the body. With the body sent first and the response
/// read after it, each side waits for the other to read once the sockets'
/// buffers are full (a few hundred KiB on a unix socket, a few MiB over
/// TCP on loopback) until `timeouts.send`: a 504, for a request that works
/// through nginx, on a node that is fine. fpmlb takes up to 1 MiB of the
/// response in while it sends the body. A POST goes the same way (PHP
/// reads a POST body before the script only when it has a Content-Type).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_answers_before_reading_its_body_is_served() {
    let cluster = Cluster::start(
        nets::PROXY_ANSWER_BEFORE_BODY,
        &["--nodes", "1", "--unix-node", "web01"],
    );
    let lb = start_lb(
        &cluster,
        "max_body_size: 64m\ntimeouts:\n  send: 3s\nmax_fails: 1\n",
    );
    let c = client(false);
    let body = vec![b'u'; 16 * 1024 * 1024];
    let out = 900 * 1024;
    for method in ["POST", "PUT"] {
        let req = http::Request::builder()
            .method(method)
            .uri(lb.url(&format!("/big.php?bytes={out}")))
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let r = send(&c, req).await.unwrap();
        assert_eq!(r.status, 200, "{method}: {}", lb.log_text());
        assert_eq!(r.body.len(), out, "{method}");
    }
    // Past that, the script's wait ends at `timeouts.send`, said so; the
    // node stays in rotation (with `max_fails: 1`, one failure counted
    // would take it out: the worker answered, the script is at fault).
    let req = http::Request::put(lb.url("/big.php?bytes=8000000"))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let r = send(&c, req).await.unwrap();
    assert_eq!(r.status, 504, "{}", r.text());
    let log = lb.log_text();
    assert!(log.contains("took no more of the request body"), "{log}");
    let r = get(&c, &lb.url("/")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}
