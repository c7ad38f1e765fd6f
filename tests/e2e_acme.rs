//! ACME for real against Debian's pebble (a test ACME CA) on loopback:
//! a certificate issued through TLS-ALPN-01 and served, renewed when
//! pebble's short validity says so, and the service unaffected while
//! pebble is down; HTTP-01 answered on a cleartext listener that redirects
//! everything else to HTTPS.
//!
//! pebble gets its own HTTPS certificate from a CA the test makes (fpmlb's
//! `tls.acme.ca_root`), resolves every name through pebble-challtestsrv's
//! DNS to fpmlb's address, and validates on fpmlb's ports (its httpPort and
//! tlsPort). Each test has its own 127.0.N.x network (tests/support/nets.rs):
//! fpmlb on .1, pebble on .3, its DNS on .4.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use support::tls::{TestCa, handshake};
use support::{Cluster, Fpmlb, Net, READY_LIMIT, child_command, nets};

const HTTP: u16 = 8080;
const HTTPS: u16 = 8443;
/// How long the ACME steps of a test may take (pebble validates at once
/// with PEBBLE_VA_NOSLEEP; fpmlb's first try is at start-up).
const ACME_LIMIT: Duration = Duration::from_secs(90);

/// pebble and its DNS server, killed on drop.
struct Pebble {
    pebble: Option<Child>,
    dns: Child,
    /// The CA that signed pebble's HTTPS certificate (fpmlb's ca_root).
    tls_ca: PathBuf,
    net: Net,
}

impl Pebble {
    /// Starts pebble-challtestsrv (DNS: every name is 127.0.N.1) and pebble
    /// (directory on .3:14000, validating on fpmlb's ports); `validity` in
    /// seconds, pebble's default (5 years) when `None`.
    fn start(net: Net, dir: &Path, validity: Option<u64>) -> Pebble {
        let ca = TestCa::new("pebble HTTPS test CA");
        let tls_ca = ca.write(dir, "pebble-https-ca.pem");
        let (cert, key) = ca.issue(&[&net.ip(3)]).write(dir, "pebble-https");
        let validity = validity.map_or(String::new(), |v| {
            format!(",\n    \"certificateValidityPeriod\": {v}")
        });
        let config = format!(
            r#"{{
  "pebble": {{
    "listenAddress": "{}",
    "managementListenAddress": "{}",
    "certificate": "{}",
    "privateKey": "{}",
    "httpPort": {HTTP},
    "tlsPort": {HTTPS},
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false{validity}
  }}
}}"#,
            net.addr(3, 14000),
            net.addr(3, 15000),
            cert.display(),
            key.display()
        );
        let config_path = dir.join("pebble.json");
        std::fs::write(&config_path, config).unwrap();
        let dns_log = std::fs::File::create(dir.join("challtestsrv.log")).unwrap();
        let dns = child_command("pebble-challtestsrv")
            .args(["-dns01", &format!("{}:8053", net.ip(4))])
            .args(["-management", &format!("{}:8055", net.ip(4))])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", &net.ip(1), "-defaultIPv6", ""])
            .stdout(dns_log.try_clone().unwrap())
            .stderr(dns_log)
            .spawn()
            .expect("run pebble-challtestsrv (integration/install.sh installs pebble)");
        let log = std::fs::File::create(dir.join("pebble.log")).unwrap();
        let pebble = child_command("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("{}:8053", net.ip(4))])
            // No artificial waits before validating; no nonces refused at
            // random and no authorizations reused, so a renewal validates
            // again.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run pebble (integration/install.sh installs it)");
        let p = Pebble {
            pebble: Some(pebble),
            dns,
            tls_ca,
            net,
        };
        wait_listening(net.addr(4, 8055));
        wait_listening(net.addr(3, 14000));
        wait_listening(net.addr(3, 15000));
        p
    }

    fn directory(&self) -> String {
        format!("https://{}/dir", self.net.addr(3, 14000))
    }

    /// pebble's issuing root, from its management API; also written to
    /// `file` (PEM) for curl.
    fn root(&self, file: &Path) -> CertificateDer<'static> {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&self.tls_ca)
            .arg(format!("https://{}/roots/0", self.net.addr(3, 15000)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(file, &out.stdout).unwrap();
        CertificateDer::from_pem_slice(&out.stdout).unwrap()
    }

    /// Stops pebble (its DNS stays).
    fn stop(&mut self) {
        if let Some(mut p) = self.pebble.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
    }
}

fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + READY_LIMIT;
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// fpmlb over `cluster` with ACME for a.test and www.a.test from `pebble`.
fn start_lb(cluster: &Cluster, pebble: &Pebble, challenge: &str, redirect: bool) -> Fpmlb {
    let net = cluster.net;
    let yaml = format!(
        "listen:\n  - {{address: \"{}\", redirect_https: {redirect}}}\n  - {{address: \"{}\", tls: true}}\ndocument_root: {}\nadmin:\n  listen: off\ntls:\n  acme:\n    domains: [a.test, www.a.test]\n    email: ops@a.test\n    directory: \"{}\"\n    ca_root: \"{}\"\n    state_dir: \"{}\"\n    challenge: {challenge}\n{}",
        net.addr(1, HTTP),
        net.addr(1, HTTPS),
        cluster.docroot(),
        pebble.directory(),
        pebble.tls_ca.display(),
        cluster.dir.join("acme").display(),
        cluster.backends_yaml()
    );
    Fpmlb::start(&cluster.dir, net.addr(1, HTTPS), &yaml)
}

/// Waits for the `n`-th log line with every one of `needles`.
async fn wait_nth_line(lb: &Fpmlb, n: usize, needles: &[&str], limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = lb.log_text();
        let mut found = text
            .lines()
            .filter(|l| needles.iter().all(|x| l.contains(x)));
        if let Some(line) = found.nth(n - 1) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no line #{n} with {needles:?} within {limit:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// curl to `https://NAME:8443/env.php` trusting only `root`.
fn curl_env(net: Net, name: &str, root: &Path) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(root)
        .args(["--resolve", &format!("{name}:{HTTPS}:{}", net.ip(1))])
        .arg(format!("https://{name}:{HTTPS}/env.php"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_issues_renews_and_keeps_serving_while_pebble_is_down() {
    let cluster = Cluster::start(nets::ACME_TLS_ALPN, &[]);
    let net = cluster.net;
    // 30 s certificates: renewed with a third left, 20 s after issue.
    let mut pebble = Pebble::start(net, &cluster.dir, Some(30));
    let lb = start_lb(&cluster, &pebble, "tls-alpn-01", false);
    let addr = net.addr(1, HTTPS);
    let root_file = cluster.dir.join("pebble-root.pem");
    let root = pebble.root(&root_file);

    // Start-up did not wait for pebble: the temporary certificate first.
    lb.wait_log_line(&["ACME: no certificate yet: serving a temporary self-signed one"])
        .await;
    let issued = wait_nth_line(
        &lb,
        1,
        &["ACME: certificate issued", "domains=a.test,www.a.test"],
        ACME_LIMIT,
    )
    .await;
    assert!(issued.contains("valid_until="), "{issued}");
    lb.wait_log_line(&["ACME: answered a TLS-ALPN-01 challenge"])
        .await;
    let first = handshake(addr, "a.test", std::slice::from_ref(&root), &[b"h2"])
        .await
        .unwrap();
    let www = handshake(addr, "www.a.test", std::slice::from_ref(&root), &[])
        .await
        .unwrap();
    assert_eq!(first.leaf, www.leaf, "one certificate for both names");
    let env = curl_env(net, "www.a.test", &root_file);
    assert_eq!(env["HTTPS"], "on");
    // Kept with safe permissions.
    let state = cluster.dir.join("acme");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("certs/a.test/key.pem")), 0o600);

    // Renewed before it expires, and served.
    wait_nth_line(&lb, 1, &["ACME: certificate renewed"], ACME_LIMIT).await;
    let second = handshake(addr, "a.test", std::slice::from_ref(&root), &[])
        .await
        .unwrap();
    assert_ne!(second.leaf, first.leaf, "the renewed certificate is served");

    // pebble goes away: the next renewal fails, says so and backs off;
    // the renewed certificate keeps serving.
    pebble.stop();
    let failed = wait_nth_line(
        &lb,
        1,
        &["ACME: could not renew the certificate"],
        ACME_LIMIT,
    )
    .await;
    assert!(
        failed.contains("still serving the certificate valid until"),
        "{failed}"
    );
    assert!(failed.contains("next try in"), "{failed}");
    let during = handshake(addr, "a.test", std::slice::from_ref(&root), &[])
        .await
        .unwrap();
    assert_eq!(during.leaf, second.leaf);
    let env = curl_env(net, "a.test", &root_file);
    assert_eq!(env["SERVER_NAME"], "a.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_01_is_answered_before_the_redirect_to_https() {
    let cluster = Cluster::start(nets::ACME_HTTP01, &[]);
    let net = cluster.net;
    let pebble = Pebble::start(net, &cluster.dir, None);
    let lb = start_lb(&cluster, &pebble, "http-01", true);
    wait_nth_line(&lb, 1, &["ACME: certificate issued"], ACME_LIMIT).await;
    lb.wait_log_line(&["ACME: answered an HTTP-01 challenge"])
        .await;
    let root = pebble.root(&cluster.dir.join("pebble-root.pem"));
    let h = handshake(net.addr(1, HTTPS), "www.a.test", &[root], &[])
        .await
        .unwrap();
    assert!(!h.leaf.is_empty());
    // Everything else on the cleartext listener still redirects.
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "http://{}/.well-known/acme-challenge/unknown",
            net.addr(1, HTTP)
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "308");
    drop(lb);
    drop(pebble);
}
