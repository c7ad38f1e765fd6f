//! The real client address (`real_ip`), end to end against real php-fpm:
//! X-Forwarded-For / X-Forwarded-Proto and RFC 7239 Forwarded from trusted
//! and untrusted peers (curl binding its own source address), behind a
//! PROXY header, behind real HAProxy (`option forwardfor`, TLS), and
//! `max_connections_per_client` counting the PROXY source and not the
//! trusted proxies.
//!
//! Each test has its own 127.0.N.x network (tests/support/nets.rs); peers
//! differ by the source address they bind: .5 and .6 are trusted proxies,
//! .9 a client that is not.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::tls::TestCa;
use support::{Cluster, Fpmlb, nets};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// PHP's view of `url` fetched with curl from `from`, with `headers`.
fn env_from(from: &str, url: &str, http2: bool, headers: &[&str]) -> Value {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "--interface", from]);
    cmd.arg(if http2 {
        "--http2-prior-knowledge"
    } else {
        "--http1.1"
    });
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A TCP connection to `to` from `from` (port chosen by the system).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), socket.connect(to))
        .await
        .expect("connect timed out")
        .unwrap()
}

/// One request on a kept-alive connection: the status, and the body when
/// it has a Content-Length; `None` when the server closed the connection.
async fn request(s: &mut TcpStream, path: &str, headers: &str) -> Option<(u16, String)> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n{headers}\r\n");
    if s.write_all(head.as_bytes()).await.is_err() {
        return None;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .expect("a Content-Length");
            if body.len() >= length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return Some((status, body[..length].to_owned()));
            }
        }
        let read = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .expect("no answer within 20 s");
        match read {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A PROXY v1 header for a client at `source` talking to `to`.
fn proxy_v1(source: &str, to: SocketAddr) -> String {
    format!("PROXY TCP4 {source} {} 40000 {}\r\n", to.ip(), to.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_count_from_trusted_proxies_only() {
    let cluster = Cluster::start(nets::REAL_IP_HEADERS, &["--nodes", "1"]);
    let net = cluster.net;
    let (proxy, cdn, client) = (net.ip(5), net.ip(6), net.ip(9));
    let http = net.addr(1, 8080);
    let proxied = net.addr(1, 8081);
    let backends = cluster.backends_yaml();
    let docroot = cluster.docroot();
    let yaml = format!(
        "listen:\n  - \"{http}\"\n  - {{address: \"{proxied}\", proxy_protocol: true}}\n\
         document_root: {docroot}\nadmin:\n  listen: off\n\
         real_ip:\n  trusted_proxies: [\"{proxy}/32\", \"{cdn}\"]\n{backends}"
    );
    let lb = Fpmlb::start(&cluster.dir, http, &yaml);
    let url = |tag: &str| format!("http://{http}/env.php?tag={tag}");
    let spoof = [
        "X-Forwarded-For: 6.6.6.6, 203.0.113.7",
        "X-Forwarded-Proto: https",
    ];
    for http2 in [false, true] {
        // From the trusted proxy: the client it names, and its scheme.
        let env = env_from(&proxy, &url("trusted"), http2, &spoof);
        assert_eq!(env["REMOTE_ADDR"], "203.0.113.7", "{env}");
        assert_eq!(env["REMOTE_PORT"], "", "{env}");
        assert_eq!(env["HTTPS"], "on", "{env}");
        assert_eq!(env["REQUEST_SCHEME"], "https", "{env}");
        assert_eq!(
            env["HTTP_X_FORWARDED_FOR"],
            format!("6.6.6.6, 203.0.113.7, {proxy}"),
            "the whole chain, the peer appended"
        );
        // The same headers from anyone else change nothing.
        let env = env_from(&client, &url("spoofed"), http2, &spoof);
        assert_eq!(env["REMOTE_ADDR"], client, "{env}");
        assert!(env["REMOTE_PORT"].as_str().unwrap().parse::<u16>().is_ok());
        assert!(env.get("HTTPS").is_none(), "{env}");
        assert_eq!(env["REQUEST_SCHEME"], "http");
        assert_eq!(
            env["HTTP_X_FORWARDED_FOR"],
            format!("6.6.6.6, 203.0.113.7, {client}")
        );
        // No header: the peer is the client, and X-Forwarded-For names it
        // alone (nginx's $proxy_add_x_forwarded_for is then $remote_addr).
        let env = env_from(&proxy, &url("plain"), http2, &[]);
        assert_eq!(env["REMOTE_ADDR"], proxy, "{env}");
        assert_eq!(env["HTTP_X_FORWARDED_FOR"], proxy, "{env}");
    }
    // The access log names the real client (its port unknown: 0).
    lb.wait_log_line(&["client=203.0.113.7:0", "uri=/env.php?tag=trusted"])
        .await;
    lb.wait_log_line(&[&format!("client={client}:"), "uri=/env.php?tag=spoofed"])
        .await;

    // Behind a PROXY header: the PROXY source decides whether the headers
    // count (a trusted CDN behind a TCP balancer), not the balancer.
    let mut s = connect_from(&proxy, proxied).await;
    s.write_all(proxy_v1(&cdn, proxied).as_bytes())
        .await
        .unwrap();
    let (status, body) = request(
        &mut s,
        "/env.php",
        "X-Forwarded-For: 203.0.113.8\r\nX-Forwarded-Proto: https\r\n",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let env: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(env["REMOTE_ADDR"], "203.0.113.8", "{env}");
    assert_eq!(env["HTTPS"], "on", "{env}");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], format!("203.0.113.8, {cdn}"));
    let mut s = connect_from(&proxy, proxied).await;
    s.write_all(proxy_v1("198.51.100.4", proxied).as_bytes())
        .await
        .unwrap();
    let (_, body) = request(
        &mut s,
        "/env.php",
        "X-Forwarded-For: 203.0.113.8\r\nX-Forwarded-Proto: https\r\n",
    )
    .await
    .unwrap();
    let env: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(env["REMOTE_ADDR"], "198.51.100.4", "{env}");
    assert_eq!(env["REMOTE_PORT"], "40000", "{env}");
    assert!(env.get("HTTPS").is_none(), "{env}");

    // RFC 7239 Forwarded, on a second fpmlb configured for it.
    let dir = cluster.dir.join("forwarded");
    std::fs::create_dir_all(&dir).unwrap();
    let fwd_addr = net.addr(1, 9080);
    let yaml = format!(
        "listen: \"{fwd_addr}\"\ndocument_root: {docroot}\nadmin:\n  listen: off\n\
         real_ip:\n  trusted_proxies: [\"{proxy}\"]\n  header: forwarded\n{backends}"
    );
    let _fwd = Fpmlb::start(&dir, fwd_addr, &yaml);
    let url = format!("http://{fwd_addr}/env.php");
    let header = "Forwarded: for=198.51.100.1, for=\"[2001:db8::7]:4711\";proto=https;by=_lb";
    let env = env_from(&proxy, &url, false, &[header]);
    assert_eq!(env["REMOTE_ADDR"], "2001:db8::7", "{env}");
    assert_eq!(env["REMOTE_PORT"], "4711", "{env}");
    assert_eq!(env["HTTPS"], "on", "{env}");
    let env = env_from(&client, &url, true, &[header]);
    assert_eq!(env["REMOTE_ADDR"], client, "{env}");
    assert!(env.get("HTTPS").is_none(), "{env}");
    // This one reads Forwarded only; unknown stops at the proxy that wrote it.
    let env = env_from(&proxy, &url, false, &["X-Forwarded-For: 203.0.113.7"]);
    assert_eq!(env["REMOTE_ADDR"], proxy, "{env}");
    let env = env_from(&proxy, &url, false, &["Forwarded: for=unknown;proto=https"]);
    assert_eq!(env["REMOTE_ADDR"], proxy, "{env}");
    assert_eq!(env["HTTPS"], "on", "{env}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_option_forwardfor_in_front_names_the_client() {
    let cluster = Cluster::start(nets::REAL_IP_HAPROXY, &["--nodes", "1"]);
    let net = cluster.net;
    let (haproxy_ip, client) = (net.ip(5), net.ip(9));
    let lb_addr = net.addr(1, 8080);
    let yaml = format!(
        "listen: \"{lb_addr}\"\ndocument_root: {}\nadmin:\n  listen: off\n\
         real_ip:\n  trusted_proxies: [\"{haproxy_ip}\"]\n{}",
        cluster.docroot(),
        cluster.backends_yaml()
    );
    let _lb = Fpmlb::start(&cluster.dir, lb_addr, &yaml);
    let ca = TestCa::new("fpmlb test CA");
    let leaf = ca.issue(&["a.test"]);
    let pem = cluster.dir.join("haproxy.pem");
    std::fs::write(&pem, format!("{}{}", leaf.cert_pem, leaf.key_pem)).unwrap();
    let ca_file = ca.write(&cluster.dir, "ca.pem");
    let dir = cluster.dir.join("haproxy");
    std::fs::create_dir_all(&dir).unwrap();
    let _guard = support::HaproxyGuard(&dir);
    support::haproxy(&[
        "proxy",
        "--dir",
        dir.to_str().unwrap(),
        "--http",
        "--source",
        &haproxy_ip,
        "--cert",
        pem.to_str().unwrap(),
        "--forward",
        &format!("{}={lb_addr}", net.addr(5, 8080)),
        "--forward-tls",
        &format!("{}={lb_addr}", net.addr(5, 8443)),
    ]);
    for (url, https) in [
        ("http://a.test:8080/env.php", false),
        ("https://a.test:8443/env.php", true),
    ] {
        for spoofed in [false, true] {
            let mut cmd = Command::new("curl");
            cmd.args(["-sS", "--max-time", "20", "--interface", &client])
                .args(["--cacert", ca_file.to_str().unwrap()])
                .args(["--resolve", &format!("a.test:8080:{haproxy_ip}")])
                .args(["--resolve", &format!("a.test:8443:{haproxy_ip}")]);
            if spoofed {
                cmd.args(["-H", "X-Forwarded-For: 10.1.1.1"]);
                cmd.args(["-H", "X-Forwarded-Proto: https"]);
            }
            let out = cmd.arg(url).output().unwrap();
            assert!(
                out.status.success(),
                "{url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let env: Value = serde_json::from_slice(&out.stdout).unwrap();
            // The client behind HAProxy, whatever it claimed.
            assert_eq!(env["REMOTE_ADDR"], client, "{url} spoofed={spoofed}: {env}");
            // HAProxy sets X-Forwarded-Proto from its own TLS, over the client's.
            assert_eq!(env["HTTPS"] == "on", https, "{url}: {env}");
            let chain = if spoofed {
                format!("10.1.1.1, {client}, {haproxy_ip}")
            } else {
                format!("{client}, {haproxy_ip}")
            };
            assert_eq!(env["HTTP_X_FORWARDED_FOR"], chain, "{url}: {env}");
        }
    }
}

/// Whether fpmlb closed `s` (an end of file or a reset within 10 s).
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_client_cap_counts_the_proxy_source_and_spares_trusted_proxies() {
    let net = nets::REAL_IP_PER_CLIENT;
    let (plain, proxied) = (net.addr(1, 8080), net.addr(1, 8081));
    let (proxy, client) = (net.ip(5), net.ip(9));
    // No backend listens: fpmlb answers 404 itself for a path with no script.
    let yaml = format!(
        "listen:\n  - \"{plain}\"\n  - {{address: \"{proxied}\", proxy_protocol: true}}\n\
         document_root: /var/www\nadmin:\n  listen: off\nmax_connections_per_client: 2\n\
         real_ip:\n  trusted_proxies: [\"{proxy}\"]\n\
         backends:\n  - {{name: nowhere, address: \"{}\"}}\n",
        net.addr(2, 9)
    );
    let lb = Fpmlb::start(&support::state_dir(net), proxied, &yaml);
    // A client that is no proxy: two connections, not a third.
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from(&client, plain).await;
        assert_eq!(request(&mut s, "/x", "").await.map(|r| r.0), Some(404));
        kept.push(s);
    }
    let mut third = connect_from(&client, plain).await;
    assert!(closed(&mut third).await, "a third connection from {client}");
    // A trusted proxy carries many clients: not counted.
    for _ in 0..4 {
        let mut s = connect_from(&proxy, plain).await;
        assert_eq!(request(&mut s, "/x", "").await.map(|r| r.0), Some(404));
        kept.push(s);
    }
    // Behind PROXY headers from the balancer: each source is counted.
    for _ in 0..2 {
        let mut s = connect_from(&proxy, proxied).await;
        s.write_all(proxy_v1("198.51.100.1", proxied).as_bytes())
            .await
            .unwrap();
        assert_eq!(request(&mut s, "/x", "").await.map(|r| r.0), Some(404));
        kept.push(s);
    }
    let mut s = connect_from(&proxy, proxied).await;
    s.write_all(proxy_v1("198.51.100.1", proxied).as_bytes())
        .await
        .unwrap();
    assert!(closed(&mut s).await, "a third connection for 198.51.100.1");
    lb.wait_log_line(&["client=198.51.100.1:40000", "max_connections_per_client"])
        .await;
    let mut s = connect_from(&proxy, proxied).await;
    s.write_all(proxy_v1("198.51.100.2", proxied).as_bytes())
        .await
        .unwrap();
    assert_eq!(request(&mut s, "/x", "").await.map(|r| r.0), Some(404));
    // The ones kept are still served.
    for s in &mut kept {
        assert_eq!(request(s, "/x", "").await.map(|r| r.0), Some(404));
    }
}
