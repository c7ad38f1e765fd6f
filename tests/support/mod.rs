//! Test support: real clusters started by `integration/cluster.sh`, fpmlb
//! started as a child process, and a small HTTP client.
//!
//! Each test uses its own `net` (third octet of 127.0.N.x), so tests run in
//! parallel without sharing a port, and stops what it started on drop.

#![allow(dead_code)]

pub mod fake_fcgi;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh state folder under /tmp for one test.
pub fn state_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fpmlb-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A cluster of php-fpm nodes and session stores started by the project's script.
pub struct Cluster {
    pub dir: PathBuf,
    pub net: u8,
    pub env: HashMap<String, String>,
}

impl Cluster {
    pub fn start(net: u8, extra: &[&str]) -> Cluster {
        let dir = state_dir(&format!("cluster{net}"));
        let out = Command::new(repo().join("integration/cluster.sh"))
            .arg("start")
            .arg("--dir")
            .arg(&dir)
            .arg("--net")
            .arg(net.to_string())
            .args(extra)
            .output()
            .expect("run cluster.sh");
        // Stop whatever started even when start failed half way.
        let mut cluster = Cluster {
            dir: dir.clone(),
            net,
            env: HashMap::new(),
        };
        assert!(
            out.status.success(),
            "cluster.sh start failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.env = parse_env(&std::fs::read_to_string(dir.join("cluster.env")).unwrap());
        cluster
    }

    /// (name, address) of each node, as in cluster.env's NODES.
    pub fn nodes(&self) -> Vec<(String, String)> {
        self.env["NODES"]
            .split_whitespace()
            .filter_map(|n| {
                n.split_once('=')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
            .collect()
    }

    pub fn docroot(&self) -> String {
        self.env["DOCROOT"].clone()
    }

    /// The YAML `backends:` list for these nodes.
    pub fn backends_yaml(&self) -> String {
        let mut s = String::from("backends:\n");
        for (name, addr) in self.nodes() {
            s.push_str(&format!(
                "  - name: {name}\n    address: \"{addr}\"\n    max_conns: 4\n"
            ));
        }
        s
    }

    /// Signals one node's php-fpm master: TERM stops it and its workers at
    /// once (a node going away). Not KILL: the workers would outlive the
    /// master and keep serving on the inherited socket.
    pub fn kill_node(&self, name: &str, signal: &str) {
        let pid = std::fs::read_to_string(self.dir.join(format!("{name}.pid"))).unwrap();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.trim())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn lb_ip(&self) -> String {
        format!("127.0.{}.1", self.net)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("integration/cluster.sh"))
            .arg("stop")
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Keep the logs of a failed test for a look; tidy up after a pass.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// A running `fpmlb serve`.
pub struct Fpmlb {
    pub child: Child,
    pub addr: SocketAddr,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Fpmlb {
    /// Starts fpmlb with `yaml` (which must listen on `addr`) and waits until it accepts.
    pub fn start(dir: &Path, addr: SocketAddr, yaml: &str) -> Fpmlb {
        let config = dir.join("fpmlb.yaml");
        std::fs::write(&config, yaml).unwrap();
        let log = dir.join("fpmlb.log");
        let logfile = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_fpmlb"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdout(logfile.try_clone().unwrap())
            .stderr(logfile)
            .spawn()
            .unwrap();
        let mut fpmlb = Fpmlb {
            child,
            addr,
            config,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = fpmlb.child.try_wait() {
                panic!("fpmlb exited with {status}:\n{}", fpmlb.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "fpmlb did not listen on {addr}:\n{}",
                fpmlb.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        fpmlb
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Fpmlb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The common head of a test config: listen, document root, fast timeouts.
pub fn base_yaml(addr: SocketAddr, docroot: &str) -> String {
    format!(
        "listen: \"{addr}\"\ndocument_root: {docroot}\nadmin:\n  listen: off\nlog:\n  level: info\n"
    )
}

/// Starts fpmlb on the cluster's 127.0.N.1:8080 over all its nodes, with
/// `extra_yaml` between the common head and the backends.
pub fn start_lb(cluster: &Cluster, extra_yaml: &str) -> Fpmlb {
    let addr = format!("{}:8080", cluster.lb_ip()).parse().unwrap();
    let yaml = format!(
        "{}{}{}",
        base_yaml(addr, &cluster.docroot()),
        extra_yaml,
        cluster.backends_yaml()
    );
    Fpmlb::start(&cluster.dir, addr, &yaml)
}

/// A response read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

pub fn client(http2: bool) -> Client {
    let mut b = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
    b.http2_only(http2);
    b.build_http()
}

/// Sends a request and reads the whole response (bounded by 60 s).
pub async fn send(client: &Client, req: http::Request<Full<Bytes>>) -> Result<Resp, String> {
    let fut = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("request: {e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body: {e:?}"))?
            .to_bytes();
        Ok(Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            version: parts.version,
        })
    };
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

pub async fn get(client: &Client, url: &str) -> Result<Resp, String> {
    send(
        client,
        http::Request::get(url)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
}

/// Writes a small text file and returns its path (for configs).
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    p
}
