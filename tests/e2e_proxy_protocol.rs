//! The PROXY protocol on `proxy_protocol: true` listeners, before TLS:
//! v1 and v2 headers from a test client (REMOTE_ADDR as PHP sees it),
//! connections without a valid header or from a peer outside
//! `real_ip.trusted_proxies` closed, and real HAProxy (`send-proxy-v2`, TCP
//! mode) in front of fpmlb's cleartext and TLS listeners.
//!
//! Each test has its own 127.0.N.x network (tests/support/nets.rs); the
//! clients bind their own source address on it so that trusted and
//! untrusted peers differ.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::tls::TestCa;
use support::{Cluster, Fpmlb, nets};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HTTP: u16 = 8080;
const HTTPS: u16 = 8443;

/// fpmlb whose cleartext and TLS listeners both require a PROXY header,
/// trusting only `trusted`.
fn start_lb(cluster: &Cluster, trusted: &str) -> (Fpmlb, TestCa) {
    let net = cluster.net;
    let ca = TestCa::new("fpmlb test CA");
    let (cert, key) = ca.issue(&["a.test"]).write(&cluster.dir, "a");
    let yaml = format!(
        "listen:\n  - {{address: \"{}\", proxy_protocol: true}}\n  - {{address: \"{}\", tls: true, proxy_protocol: true}}\ndocument_root: {}\nadmin:\n  listen: off\ntimeouts:\n  client_header: 2s\nreal_ip:\n  trusted_proxies: [{trusted}]\ntls:\n  certificates:\n    - {{cert: \"{}\", key: \"{}\"}}\n{}",
        net.addr(1, HTTP),
        net.addr(1, HTTPS),
        cluster.docroot(),
        cert.display(),
        key.display(),
        cluster.backends_yaml()
    );
    (Fpmlb::start(&cluster.dir, net.addr(1, HTTPS), &yaml), ca)
}

/// A TCP connection to `to` from `from` (port chosen by the system).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// GET /env.php over `io`; PHP's view of the request, or why it failed.
async fn env_over<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> Result<Value, String> {
    io.write_all(b"GET /env.php HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    match tokio::time::timeout(Duration::from_secs(20), io.read_to_end(&mut out)).await {
        Err(_) => return Err("no answer within 20 s".into()),
        Ok(Err(e)) if out.is_empty() => return Err(format!("read: {e}")),
        Ok(_) => {}
    }
    let text = String::from_utf8_lossy(&out);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(format!("no response: {text:?}"));
    };
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("status: {head}"));
    }
    serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))
}

/// Whether fpmlb closes `io` without answering a request.
async fn closed_without_answer(mut io: TcpStream) -> bool {
    let _ = io
        .write_all(b"GET /env.php HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), io.read_to_end(&mut buf)).await;
    // Closed (an end of file or a reset) before the 15 s, with no answer.
    read.is_ok() && buf.is_empty()
}

/// A v2 header for a TCP connection from `src` to `dst` (built with the
/// proxy-header crate's encoder, which fpmlb does not use).
fn v2_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let header =
        proxy_header::ProxyHeader::with_address(proxy_header::ProxiedAddress::stream(src, dst));
    let mut buf = Vec::new();
    header.encode_v2(&mut buf).unwrap();
    buf
}

fn tls_client(ca: &TestCa) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_v2_headers_name_the_client_and_anything_else_is_closed() {
    let cluster = Cluster::start(nets::PROXY_PROTOCOL_CLIENT, &[]);
    let net = cluster.net;
    let proxy_ip = net.ip(5);
    let (lb, ca) = start_lb(&cluster, &format!("\"{proxy_ip}/32\""));
    let http = net.addr(1, HTTP);
    let https = net.addr(1, HTTPS);

    // v1, IPv4.
    let mut s = connect_from(&proxy_ip, http).await;
    s.write_all(format!("PROXY TCP4 192.0.2.7 {} 54321 {HTTP}\r\n", net.ip(1)).as_bytes())
        .await
        .unwrap();
    let env = env_over(s).await.unwrap();
    assert_eq!(env["REMOTE_ADDR"], "192.0.2.7", "{env}");
    assert_eq!(env["REMOTE_PORT"], "54321");
    assert_eq!(env["SERVER_PORT"], HTTP.to_string());
    assert!(env.get("HTTPS").is_none(), "{env}");

    // v2, IPv6, header and request in one write (the bytes after the
    // header are the request's).
    let mut s = connect_from(&proxy_ip, http).await;
    let mut bytes = v2_header(
        "[2001:db8::7]:40000".parse().unwrap(),
        "[2001:db8::1]:80".parse().unwrap(),
    );
    bytes.extend_from_slice(b"GET /env.php HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    s.write_all(&bytes).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let env: Value = serde_json::from_str(body).unwrap();
    assert_eq!(env["REMOTE_ADDR"], "2001:db8::7", "{env}");
    assert_eq!(env["REMOTE_PORT"], "40000");

    // v2 before TLS: the client's address and HTTPS together.
    let mut s = connect_from(&proxy_ip, https).await;
    s.write_all(&v2_header("198.51.100.4:1234".parse().unwrap(), https))
        .await
        .unwrap();
    let tls = tls_client(&ca)
        .connect("a.test".try_into().unwrap(), s)
        .await
        .unwrap();
    let env = env_over(tls).await.unwrap();
    assert_eq!(env["REMOTE_ADDR"], "198.51.100.4", "{env}");
    assert_eq!(env["HTTPS"], "on");
    assert_eq!(env["SERVER_PORT"], HTTPS.to_string());

    // No header: closed, nothing answered; the log says why.
    let s = connect_from(&proxy_ip, http).await;
    assert!(
        closed_without_answer(s).await,
        "answered without a PROXY header"
    );
    lb.wait_log_line(&[
        "PROXY protocol listener: no valid PROXY protocol header",
        "closed",
    ])
    .await;
    // A header, but from a peer that is not a trusted proxy.
    let mut s = connect_from(&net.ip(9), http).await;
    s.write_all(format!("PROXY TCP4 192.0.2.7 {} 54321 {HTTP}\r\n", net.ip(1)).as_bytes())
        .await
        .unwrap();
    assert!(closed_without_answer(s).await, "answered an untrusted peer");
    lb.wait_log_line(&[
        "peer not in real_ip.trusted_proxies",
        &format!("client={}:", net.ip(9)),
    ])
    .await;
    // A half header, then silence: closed after timeouts.client_header.
    let mut s = connect_from(&proxy_ip, http).await;
    s.write_all(b"PROXY TCP4 192.0.").await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf))
        .await
        .expect("still open 15 s after a half header");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_send_proxy_v2_in_front_gives_php_the_client_address() {
    let cluster = Cluster::start(nets::PROXY_PROTOCOL_HAPROXY, &[]);
    let net = cluster.net;
    let haproxy_ip = net.ip(5);
    let (_lb, ca) = start_lb(&cluster, &format!("\"{haproxy_ip}\""));
    let dir = cluster.dir.join("haproxy");
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.to_str().unwrap();
    let _guard = support::HaproxyGuard(&dir);
    support::haproxy(&[
        "proxy",
        "--dir",
        dir_arg,
        "--source",
        &haproxy_ip,
        "--forward",
        &format!("{}={}", net.addr(5, HTTP), net.addr(1, HTTP)),
        "--forward",
        &format!("{}={}", net.addr(5, HTTPS), net.addr(1, HTTPS)),
    ]);
    let client_ip = net.ip(9);
    let ca_file = ca.write(&cluster.dir, "ca.pem");
    for url in [
        format!("http://a.test:{HTTP}/env.php"),
        format!("https://a.test:{HTTPS}/env.php"),
    ] {
        for http in ["--http1.1", "--http2"] {
            let out = Command::new("curl")
                .args(["-sS", "--max-time", "20", http, "--interface", &client_ip])
                .args(["--cacert", ca_file.to_str().unwrap()])
                .args(["--resolve", &format!("a.test:{HTTP}:{haproxy_ip}")])
                .args(["--resolve", &format!("a.test:{HTTPS}:{haproxy_ip}")])
                .args(if url.starts_with("http:") && http == "--http2" {
                    vec!["--http2-prior-knowledge"]
                } else {
                    vec![]
                })
                .arg(&url)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{url} {http}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let env: Value = serde_json::from_slice(&out.stdout).unwrap();
            // PHP sees the client behind HAProxy, not HAProxy.
            assert_eq!(env["REMOTE_ADDR"], client_ip, "{url} {http}: {env}");
            assert_eq!(env["HTTPS"] == "on", url.starts_with("https:"), "{env}");
        }
    }
}
