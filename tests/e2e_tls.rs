//! TLS termination against real clients and real php-fpm: curl over TLS 1.2
//! and 1.3 with HTTP/1.1 and HTTP/2 and SNI for two names, a session
//! resumed by openssl across a reload, openssl
//! s_client refused on TLS 1.0/1.1, the HTTPS redirect and HSTS, a
//! certificate swapped on disk under load (SIGHUP, then the file watcher,
//! then a bad key refused), headless chromium over HTTPS with HTTP/2, a
//! handshake that never comes, and `fpmlb config test` on bad files.
//!
//! The certificates come from a CA each test makes (tests/support/tls.rs).
//! Each test has its own 127.0.N.x network (tests/support/nets.rs).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::tls::{Leaf, TestCa, handshake};
use support::{Cluster, Fpmlb, chromium, nets};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HTTP: u16 = 8080;
const HTTPS: u16 = 8443;

/// fpmlb over `cluster` with a cleartext listener that redirects and a TLS
/// listener serving `certs` (cert, key paths); `tls_extra` goes under `tls:`.
fn start_tls_lb(
    cluster: &Cluster,
    certs: &[(PathBuf, PathBuf)],
    tls_extra: &str,
    extra: &str,
) -> Fpmlb {
    let net = cluster.net;
    let mut yaml = format!(
        "listen:\n  - {{address: \"{}\", redirect_https: true}}\n  - {{address: \"{}\", tls: true}}\ndocument_root: {}\nadmin:\n  listen: off\n{extra}tls:\n  certificates:\n",
        net.addr(1, HTTP),
        net.addr(1, HTTPS),
        cluster.docroot()
    );
    for (cert, key) in certs {
        yaml.push_str(&format!(
            "    - {{cert: \"{}\", key: \"{}\"}}\n",
            cert.display(),
            key.display()
        ));
    }
    yaml.push_str(tls_extra);
    yaml.push_str(&cluster.backends_yaml());
    Fpmlb::start(&cluster.dir, net.addr(1, HTTPS), &yaml)
}

/// Runs curl; returns (exit success, stdout, stderr).
fn curl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// openssl s_client to `addr` with `args`; stdout and stderr together.
fn s_client(addr: &str, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The subject line s_client printed.
fn subject(out: &str) -> String {
    out.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no subject in:\n{out}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_tls12_and_tls13_with_h1_h2_and_sni_for_two_names() {
    let cluster = Cluster::start(nets::TLS_CLIENTS, &[]);
    let ca = TestCa::new("fpmlb test CA");
    let ca_file = ca.write(&cluster.dir, "ca.pem");
    let a = ca.issue(&["a.test"]).write(&cluster.dir, "a");
    let b = ca.issue(&["b.test", "*.b.test"]).write(&cluster.dir, "b");
    let lb = start_tls_lb(
        &cluster,
        &[a, b],
        "  default_certificate: 1\n  hsts: \"max-age=600; includeSubDomains\"\n",
        "",
    );
    let ip = cluster.net.ip(1);
    let ca_arg = ca_file.to_str().unwrap();

    for name in ["a.test", "www.b.test"] {
        let resolve = format!("{name}:{HTTPS}:{ip}");
        for (tls, max) in [("--tlsv1.2", "1.2"), ("--tlsv1.3", "1.3")] {
            for (http, protocol, curl_version) in [
                ("--http1.1", "HTTP/1.1", "1.1"),
                ("--http2", "HTTP/2.0", "2"),
            ] {
                let url = format!("https://{name}:{HTTPS}/env.php?q=1");
                let (ok, out, err) = curl(&[
                    "--cacert",
                    ca_arg,
                    "--resolve",
                    &resolve,
                    tls,
                    "--tls-max",
                    max,
                    http,
                    "-w",
                    "\n%{http_version} %{ssl_verify_result} %header{strict-transport-security}",
                    &url,
                ]);
                assert!(ok, "curl {name} {tls} {http}: {err}");
                let (body, meta) = out.rsplit_once('\n').unwrap();
                assert_eq!(
                    meta,
                    format!("{curl_version} 0 max-age=600; includeSubDomains"),
                    "{name} {tls} {http}"
                );
                let env: Value = serde_json::from_str(body).unwrap();
                assert_eq!(env["HTTPS"], "on", "{env}");
                assert_eq!(env["REQUEST_SCHEME"], "https");
                assert_eq!(env["SERVER_PORT"], HTTPS.to_string());
                assert_eq!(env["SERVER_PROTOCOL"], protocol);
                assert_eq!(env["SERVER_NAME"], name);
                assert_eq!(env["QUERY_STRING"], "q=1");
            }
        }
    }

    // The names pick their certificates; an unknown name and no SNI at all
    // get the default (b).
    let addr = format!("{ip}:{HTTPS}");
    assert!(subject(&s_client(&addr, &["-servername", "a.test"])).contains("a.test"));
    assert!(subject(&s_client(&addr, &["-servername", "x.b.test"])).contains("b.test"));
    assert!(subject(&s_client(&addr, &["-servername", "c.test"])).contains("b.test"));
    assert!(subject(&s_client(&addr, &["-noservername"])).contains("b.test"));

    // Only TLS 1.2 and 1.3: the client offers 1.0/1.1 (its own floor
    // lowered with SECLEVEL=0) and fpmlb answers with an alert.
    for old in ["-tls1", "-tls1_1"] {
        let out = s_client(
            &addr,
            &[
                "-servername",
                "a.test",
                old,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
            ],
        );
        assert!(out.contains("Cipher is (NONE)"), "{old}:\n{out}");
        assert!(out.contains("alert"), "{old}: no alert from fpmlb:\n{out}");
    }
    for (new, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let out = s_client(&addr, &["-servername", "a.test", new]);
        assert!(
            out.contains(&format!("New, {version}, Cipher is")),
            "{new}:\n{out}"
        );
    }

    // The cleartext listener redirects with 308 to the TLS port, query kept.
    let (ok, out, err) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        &format!("http://{ip}:{HTTP}/env.php/x?y=1"),
        "-H",
        "Host: a.test",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("308 https://a.test:{HTTPS}/env.php/x?y=1"));
    // ...and follows to a page served over TLS.
    let (ok, out, err) = curl(&[
        "-L",
        "--cacert",
        ca_arg,
        "--resolve",
        &format!("a.test:{HTTP}:{ip}"),
        "--resolve",
        &format!("a.test:{HTTPS}:{ip}"),
        &format!("http://a.test:{HTTP}/"),
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("hello from web"), "{out}");

    // Session tickets survive a reload: a TLS 1.3 session openssl saved
    // before a SIGHUP resumes after it (each reload made new ticket keys).
    let addr = cluster.net.addr(1, HTTPS);
    let session = cluster.dir.join("tls-session.pem");
    let session = session.to_str().unwrap();
    // s_client stays a second, long enough for the tickets that follow
    // the handshake.
    let connect = |how: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "(sleep 1; echo) | openssl s_client -connect {addr} -servername a.test -tls1_3 -ign_eof {how}"
            ))
            .output()
            .expect("run openssl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = connect(&format!("-sess_out {session}"));
    assert!(first.contains("New, TLSv1.3"), "{first}");
    lb.signal("HUP");
    lb.wait_log_line(&["config reloaded"]).await;
    let again = connect(&format!("-sess_in {session}"));
    assert!(again.contains("Reused, TLSv1.3"), "{again}");
    drop(lb);
}

/// One GET of / for a.test on a new TLS connection (so a new
/// handshake); returns the leaf certificate the server presented.
async fn one_request(
    addr: std::net::SocketAddr,
    roots: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<Vec<u8>, String> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("a.test".try_into().unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    if !text.starts_with("HTTP/1.1 200") || !text.contains("hello from web") {
        return Err(format!("bad response: {text}"));
    }
    Ok(leaf)
}

/// Waits until a handshake with `a.test` shows `leaf` (at most 20 s).
async fn wait_for_leaf(addr: std::net::SocketAddr, ca: &TestCa, leaf: &Leaf) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = handshake(addr, "a.test", &[ca.der()], &[]).await.unwrap();
        if h.leaf == leaf.der() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_swapped_on_disk_is_served_without_a_dropped_request() {
    let cluster = Cluster::start(nets::TLS_RELOAD, &[]);
    let ca = TestCa::new("fpmlb test CA");
    let v1 = ca.issue(&["a.test"]);
    let files = v1.write(&cluster.dir, "a");
    let lb = start_tls_lb(&cluster, std::slice::from_ref(&files), "", "");
    let addr = cluster.net.addr(1, HTTPS);
    let roots = vec![ca.der()];

    // Bounded load: 2 clients, each a new connection per request, until
    // told to stop (at most 3000 requests each).
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (stop, done, roots) = (Arc::clone(&stop), Arc::clone(&done), roots.clone());
        workers.push(tokio::spawn(async move {
            let mut leaves = Vec::new();
            let mut failures = Vec::new();
            for _ in 0..3000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match one_request(addr, &roots).await {
                    Ok(leaf) => {
                        if leaves.last() != Some(&leaf) {
                            leaves.push(leaf);
                        }
                    }
                    Err(e) => failures.push(e),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (leaves, failures)
        }));
    }
    while done.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A new key and certificate over the old files (key first, as certbot
    // does not promise either), then SIGHUP.
    let v2 = ca.issue(&["a.test"]);
    std::fs::write(&files.1, &v2.key_pem).unwrap();
    std::fs::write(&files.0, &v2.cert_pem).unwrap();
    lb.signal("HUP");
    lb.wait_log_line(&["config reloaded"]).await;
    wait_for_leaf(addr, &ca, &v2).await;
    let after = done.load(Ordering::Relaxed);
    while done.load(Ordering::Relaxed) < after + 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total_failures = Vec::new();
    for w in workers {
        let (leaves, failures) = w.await.unwrap();
        assert!(failures.is_empty(), "dropped requests: {failures:?}");
        // Each client saw the old certificate, then the new one, never back.
        assert_eq!(leaves, vec![v1.der().to_vec(), v2.der().to_vec()]);
        total_failures.extend(failures);
    }
    assert!(
        total_failures.is_empty(),
        "dropped requests: {total_failures:?}"
    );
    assert!(done.load(Ordering::Relaxed) >= 40);

    // Without a SIGHUP: the watcher sees the files change.
    let v3 = ca.issue(&["a.test"]);
    std::fs::write(&files.1, &v3.key_pem).unwrap();
    std::fs::write(&files.0, &v3.cert_pem).unwrap();
    wait_for_leaf(addr, &ca, &v3).await;
    lb.wait_log_line(&["certificate files changed: reloaded"])
        .await;

    // A key that is not the certificate's: refused on SIGHUP with a line
    // saying why, and v3 keeps serving.
    let before = lb.log_text().len();
    let other = ca.issue(&["a.test"]);
    std::fs::write(&files.1, &other.key_pem).unwrap();
    lb.signal("HUP");
    let line = lb
        .wait_log_line(&["reload refused, running config kept", "tls.certificates[0]"])
        .await;
    assert!(
        line.contains("does not belong to the certificate"),
        "{line}"
    );
    // The watcher saw the change too, and refused it too.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lb.log_text()[before..].contains("certificate files changed but refused") {
        assert!(Instant::now() < deadline, "{}", lb.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let h = handshake(addr, "a.test", &roots, &[]).await.unwrap();
    assert_eq!(h.leaf, v3.der());
    assert!(one_request(addr, &roots).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_a_page_over_https_with_http2() {
    let cluster = Cluster::start(nets::TLS_CHROMIUM, &[]);
    let ca = TestCa::new("fpmlb test CA");
    let leaf = ca.issue(&["a.test"]);
    let files = leaf.write(&cluster.dir, "a");
    let _lb = start_tls_lb(&cluster, std::slice::from_ref(&files), "", "");
    // Chromium trusts the leaf by the SHA-256 of its public key (not
    // --ignore-certificate-errors, which would trust anything).
    let spki = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
            files.0.display()
        ))
        .output()
        .unwrap();
    let spki = String::from_utf8(spki.stdout).unwrap().trim().to_string();
    assert_eq!(spki.len(), 44, "{spki}");
    let dom = chromium(
        &[
            "--dump-dom",
            &format!("--ignore-certificate-errors-spki-list={spki}"),
            &format!("--host-resolver-rules=MAP a.test {}", cluster.net.ip(1)),
        ],
        &format!("https://a.test:{HTTPS}/env.php"),
    );
    assert!(dom.contains("\"SERVER_PROTOCOL\":\"HTTP/2.0\""), "{dom}");
    assert!(dom.contains("\"HTTPS\":\"on\""), "{dom}");
    assert!(
        dom.contains(&format!("\"SERVER_PORT\":\"{HTTPS}\"")),
        "{dom}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_comes_is_closed_after_client_header() {
    let cluster = Cluster::start(nets::TLS_HANDSHAKE_TIMEOUT, &[]);
    let ca = TestCa::new("fpmlb test CA");
    let files = ca.issue(&["a.test"]).write(&cluster.dir, "a");
    let _lb = start_tls_lb(&cluster, &[files], "", "timeouts:\n  client_header: 1s\n");
    let addr = cluster.net.addr(1, HTTPS);
    // Silent, and a ClientHello cut after its first bytes.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut partial = tokio::net::TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    for (name, s) in [("silent", &mut silent), ("partial", &mut partial)] {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{name}: still open after 15 s"));
        assert!(matches!(read, Ok(0) | Err(_)), "{name}: {read:?}");
    }
    // A real client is served meanwhile.
    let h = handshake(addr, "a.test", &[ca.der()], &[b"h2"])
        .await
        .unwrap();
    assert_eq!(h.alpn.as_deref(), Some(&b"h2"[..]));
}

/// `fpmlb config test` on a config whose certificate files are `cert`, `key`.
fn config_test(dir: &Path, cert: &Path, key: &Path) -> (bool, String) {
    let yaml = format!(
        "listen:\n  - {{address: \":8443\", tls: true}}\ndocument_root: /srv\ntls:\n  certificates:\n    - {{cert: \"{}\", key: \"{}\"}}\nbackends:\n  - {{name: a, address: \"127.0.0.1:9000\"}}\n",
        cert.display(),
        key.display()
    );
    let config = dir.join("fpmlb.yaml");
    std::fs::write(&config, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fpmlb"))
        .args(["config", "test", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn config_test_checks_that_files_exist_parse_and_match() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("fpmlb test CA");
    let (cert, key) = ca.issue(&["a.test"]).write(dir.path(), "a");
    let (_, other_key) = ca.issue(&["a.test"]).write(dir.path(), "b");
    let (ok, out) = config_test(dir.path(), &cert, &key);
    assert!(ok, "{out}");
    assert!(out.contains("test is successful"), "{out}");

    let (ok, out) = config_test(dir.path(), &cert, &other_key);
    assert!(!ok);
    assert!(
        out.contains("tls.certificates[0]: the key does not belong to the certificate"),
        "{out}"
    );

    let (ok, out) = config_test(dir.path(), &dir.path().join("missing.pem"), &key);
    assert!(!ok);
    assert!(
        out.contains("tls.certificates[0]: certificate file"),
        "{out}"
    );
    assert!(out.contains("missing.pem: No such file"), "{out}");

    let (ok, out) = config_test(dir.path(), &key, &key);
    assert!(!ok);
    assert!(out.contains("no CERTIFICATE block"), "{out}");
}
