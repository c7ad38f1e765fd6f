//! Test support: real clusters started by `integration/cluster.sh`, fpmlb
//! started as a child process, and a small HTTP client.
//!
//! Each test has its own network 127.0.N.x from the table in [`nets`], so
//! tests run in parallel without sharing an address, and its own state
//! folder named after that network ([`state_dir`]), where the next run finds
//! and stops whatever a killed run left. What a test starts stops on drop;
//! the processes it spawns itself also die with it ([`child_command`]).

#![allow(dead_code)]

pub mod fake_fcgi;
pub mod nets;
pub mod nginx;
pub mod raw;
pub mod tls;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
pub use nets::Net;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How long a test waits for a log line or a process to be ready.
pub const READY_LIMIT: Duration = Duration::from_secs(20);

/// A command for a process that must not outlive the test: run through
/// util-linux's `setpriv --pdeathsig KILL`, the kernel kills it when the
/// thread that spawned it ends, even when the test is killed and no `Drop`
/// runs. Spawn from the test's own thread (the body of a `#[test]` or of a
/// `#[tokio::test]`, which runs on that thread), never from `spawn_blocking`
/// or a helper thread that ends first.
pub fn child_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
    cmd
}

/// The state folder of the test on `net`: `$TMPDIR/fpmlb-test/netN`. A
/// folder left by an earlier run is cleaned first by
/// `integration/test-clean.sh`, which stops the clusters, nginx and HAProxy
/// recorded in it through their pid files (`make test-clean` does the same
/// for every network).
pub fn state_dir(net: Net) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("fpmlb-test")
        .join(format!("net{}", net.n()));
    if dir.exists() {
        let out = Command::new(repo().join("integration/test-clean.sh"))
            .arg(&dir)
            .output()
            .expect("run integration/test-clean.sh");
        assert!(
            out.status.success(),
            "cleaning the stale {} failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A cluster of php-fpm nodes and session stores started by the project's script.
pub struct Cluster {
    pub dir: PathBuf,
    pub net: Net,
    pub env: HashMap<String, String>,
}

impl Cluster {
    pub fn start(net: Net, extra: &[&str]) -> Cluster {
        let dir = state_dir(net);
        let out = Command::new(repo().join("integration/cluster.sh"))
            .arg("start")
            .arg("--dir")
            .arg(&dir)
            .arg("--net")
            .arg(net.n().to_string())
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

    /// What the docroot's ran.php wrote on every node (its tags, one line
    /// per run, in the node's /tmp/ran.log).
    pub fn ran_log(&self) -> String {
        self.nodes()
            .iter()
            .map(|(name, _)| {
                std::fs::read_to_string(self.dir.join(name).join("root/tmp/ran.log"))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// How many times ran.php ran with `tag`, on all nodes together.
    pub fn ran(&self, tag: &str) -> usize {
        self.ran_log().lines().filter(|l| *l == tag).count()
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

    /// Waits (up to 10 s) until one node's php-fpm master has exited, as
    /// after [`Cluster::kill_node`] with TERM: `kill` returns before the
    /// node is gone, and a request sent at once may still be served. Gone:
    /// its pid file removed (php-fpm does at exit) or its process ended.
    pub fn wait_node_gone(&self, name: &str) {
        let pid_file = self.dir.join(format!("{name}.pid"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while let Ok(pid) = std::fs::read_to_string(&pid_file) {
            if !Path::new(&format!("/proc/{}", pid.trim())).exists() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} (pid {}) still runs 10 s after its signal",
                pid.trim()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Restarts `nodes` (`web03`, `web01,web02` or `all`) with their start settings
    /// plus `settings` (`--php-value key=value`, `--php-admin-value ...`, `--php-ini ...`,
    /// `--user-ini ...` pairs as cluster.sh reconfigure takes them); none gives them
    /// their start settings back.
    pub fn reconfigure(&self, nodes: &str, settings: &[(&str, String)]) {
        let mut cmd = Command::new(repo().join("integration/cluster.sh"));
        cmd.arg("reconfigure")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--node")
            .arg(nodes);
        for (option, kv) in settings {
            cmd.arg(option).arg(kv);
        }
        let out = cmd.output().expect("run cluster.sh reconfigure");
        assert!(
            out.status.success(),
            "cluster.sh reconfigure {nodes} {settings:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// SIGKILLs one node's php-fpm master and every worker at once: a node
    /// dying with no chance to close anything cleanly. The workers are the
    /// master's children (this cluster's own processes).
    pub fn kill_node_hard(&self, name: &str) {
        let pid = std::fs::read_to_string(self.dir.join(format!("{name}.pid"))).unwrap();
        let pid = pid.trim();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let status = Command::new("kill")
            .arg("-KILL")
            .arg(pid)
            .args(children.split_whitespace())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn lb_ip(&self) -> String {
        self.net.ip(1)
    }

    /// Where a test's fpmlb listens: 127.0.N.1:8080.
    pub fn lb_addr(&self) -> SocketAddr {
        self.net.addr(1, 8080)
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
        // Keep the logs of a failed test for a look (the next run on this
        // network or `make test-clean` removes them); tidy up after a pass.
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

/// A running `fpmlb serve`, killed on drop (and with the test, see
/// [`child_command`]).
pub struct Fpmlb {
    pub child: Child,
    pub addr: SocketAddr,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Fpmlb {
    /// Starts fpmlb with `yaml` (which must listen on `addr`) and waits
    /// until its own log says it listens there.
    pub fn start(dir: &Path, addr: SocketAddr, yaml: &str) -> Fpmlb {
        Self::start_with_admin(dir, addr, None, yaml)
    }

    /// Like [`Fpmlb::start`], and when `admin` is given also waits for its
    /// admin API to listen there.
    ///
    /// Ready means this child is alive and has logged that it listens, not
    /// that something accepts on the address: a process left over from an
    /// earlier run could accept there for an fpmlb that failed to bind.
    pub fn start_with_admin(
        dir: &Path,
        addr: SocketAddr,
        admin: Option<SocketAddr>,
        yaml: &str,
    ) -> Fpmlb {
        Self::start_with_env(dir, addr, admin, yaml, &[])
    }

    /// Like [`Fpmlb::start_with_admin`], with `env` added to the
    /// process's environment (`TMPDIR`, say).
    pub fn start_with_env(
        dir: &Path,
        addr: SocketAddr,
        admin: Option<SocketAddr>,
        yaml: &str,
        env: &[(&str, &str)],
    ) -> Fpmlb {
        Self::start_wrapped(dir, addr, admin, yaml, env, &[])
    }

    /// Like [`Fpmlb::start`], with at most `nofile` open files (soft and
    /// hard limit, through util-linux's `prlimit`).
    pub fn start_with_nofile(dir: &Path, addr: SocketAddr, yaml: &str, nofile: u32) -> Fpmlb {
        let limit = format!("--nofile={nofile}:{nofile}");
        Self::start_wrapped(dir, addr, None, yaml, &[], &["prlimit", &limit, "--"])
    }

    /// fpmlb started through `wrapper` (a command and its arguments before
    /// fpmlb's path), if any.
    fn start_wrapped(
        dir: &Path,
        addr: SocketAddr,
        admin: Option<SocketAddr>,
        yaml: &str,
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Fpmlb {
        let config = dir.join("fpmlb.yaml");
        std::fs::write(&config, yaml).unwrap();
        let log = dir.join("fpmlb.log");
        let logfile = std::fs::File::create(&log).unwrap();
        let exe = env!("CARGO_BIN_EXE_fpmlb");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = child_command(program);
                cmd.args(args).arg(exe);
                cmd
            }
            None => child_command(exe),
        };
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .envs(env.iter().copied())
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
        // The messages of src/daemon.rs, after the log target's ": ".
        let mut ready = vec![format!(": listening addr={addr}")];
        ready.extend(admin.map(|a| format!(": admin API listening addr={a}")));
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            let text = fpmlb.log_text();
            if ready
                .iter()
                .all(|line| text.lines().any(|l| l.contains(line.as_str())))
            {
                break;
            }
            if let Ok(Some(status)) = fpmlb.child.try_wait() {
                panic!("fpmlb exited with {status}:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "fpmlb did not log {ready:?} within {READY_LIMIT:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        fpmlb
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first log line that contains every one of `needles`. An event
    /// about a backend is matched with the backend on the same line (e.g.
    /// `&["backend DOWN", "backend=web02"]`): the start-up lines name every
    /// backend, so a search of the whole log for a name proves nothing.
    pub fn log_line_with(&self, needles: &[&str]) -> Option<String> {
        self.log_text()
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
    }

    /// Waits (at most [`READY_LIMIT`]) for a log line with every one of
    /// `needles`; panics with the whole log when none comes.
    pub async fn wait_log_line(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            if let Some(line) = self.log_line_with(needles) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?} within {READY_LIMIT:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most [`READY_LIMIT`]) until the log says "config reloaded"
    /// `n` times in all; panics with the whole log when it does not.
    pub async fn wait_reloads(&self, n: usize) {
        let deadline = Instant::now() + READY_LIMIT;
        while self.log_text().matches("config reloaded").count() < n {
            assert!(
                Instant::now() < deadline,
                "not {n} reloads within {READY_LIMIT:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
    let addr = cluster.lb_addr();
    let yaml = format!(
        "{}{}{}",
        base_yaml(addr, &cluster.docroot()),
        extra_yaml,
        cluster.backends_yaml()
    );
    Fpmlb::start(&cluster.dir, addr, &yaml)
}

/// fpmlb alone on `net`'s 127.0.N.1:8080, with `extra` config, in front of
/// a backend address where nothing listens: for what fpmlb must refuse or
/// answer itself (a path with no script is its own 404).
pub fn start_alone(net: Net, extra: &str) -> Fpmlb {
    let dir = state_dir(net);
    let addr = net.addr(1, 8080);
    let yaml = format!(
        "{}{extra}backends:\n  - name: nowhere\n    address: \"{}\"\n",
        base_yaml(addr, "/var/www"),
        net.addr(2, 9)
    );
    Fpmlb::start(&dir, addr, &yaml)
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

/// Runs headless chromium on `url`: `--dump-dom` gives the DOM after load.
pub fn chromium(args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = child_command("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run chromium (integration/install.sh installs it)");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium failed: {status}");
    reader.join().unwrap().unwrap()
}

/// Runs `integration/haproxy.sh ARGS`; panics with its output when it fails.
pub fn haproxy(args: &[&str]) {
    let out = Command::new(repo().join("integration/haproxy.sh"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "haproxy.sh {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stops the HAProxy of a test on drop.
pub struct HaproxyGuard<'a>(pub &'a Path);

impl Drop for HaproxyGuard<'_> {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("integration/haproxy.sh"))
            .args(["stop", "--dir"])
            .arg(self.0)
            .output();
    }
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}
