//! The session-store client against real servers: memcached and Redis started
//! by integration/cluster.sh with sessions written by real php-fpm, a Redis
//! that wants a password, absent and silent servers, and a Redis Cluster of
//! three redis-server processes.
//!
//! Needs php, php-fpm, memcached, redis-server and redis-cli
//! (integration/install.sh); a missing one fails the test.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Net, nets};

use fpmlb::save_path::Handler;
use fpmlb::session::store::{
    StoreAddr, StoreError, StoreKind, StoreTarget, check_servers, cluster_slot, read_key,
    session_key,
};

const TIMEOUT: Duration = Duration::from_secs(2);

fn tcp(host: &str, port: u16) -> StoreAddr {
    StoreAddr::Tcp {
        host: host.to_string(),
        port,
    }
}

fn target(kind: StoreKind, servers: Vec<StoreAddr>) -> StoreTarget {
    StoreTarget {
        kind,
        servers,
        database: None,
        password: None,
        username: None,
    }
}

/// A session as session.php reports it.
#[derive(Debug)]
struct Session {
    node: String,
    id: String,
    test: i64,
    handler: String,
}

impl Session {
    /// What PHP's default serializer stores for `$_SESSION['TEST']`.
    fn stored(&self) -> String {
        format!("TEST|i:{};", self.test)
    }
}

/// Starts a new session on the php-fpm node at `addr` (integration/fcgi.php
/// running www/session.php).
fn php_session(cluster: &support::Cluster, addr: &str) -> Session {
    let script = format!("{}/session.php", cluster.docroot());
    let out = Command::new("php")
        .arg(support::repo().join("integration/fcgi.php"))
        .arg(addr)
        .arg(&script)
        .output()
        .expect("run php integration/fcgi.php");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fcgi.php {addr} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    Session {
        node: json["node"].as_str().unwrap().to_string(),
        id: json["id"].as_str().unwrap().to_string(),
        test: json["TEST"].as_i64().unwrap(),
        handler: json["handler"].as_str().unwrap().to_string(),
    }
}

/// redis-server processes started by a test, killed (by pid) on drop and
/// with the test (`support::child_command`).
struct RedisServers {
    children: Vec<Child>,
    dir: PathBuf,
}

impl RedisServers {
    /// Starts one redis-server per port on 127.0.N.1 and waits until each
    /// child is alive and its own log says it accepts connections (not
    /// that something answers on the port: a leftover could).
    fn start(net: Net, ports: &[u16], extra: &[&str]) -> RedisServers {
        let dir = support::state_dir(net);
        let ip = net.ip(1);
        let mut servers = RedisServers {
            children: Vec::new(),
            dir: dir.clone(),
        };
        for port in ports {
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let child = support::child_command("redis-server")
                .args(["--bind", &ip, "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .args(["--protected-mode", "no", "--logfile", "redis.log"])
                .args(extra)
                .current_dir(&node_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server");
            servers.children.push(child);
        }
        for (child, port) in servers.children.iter_mut().zip(ports) {
            wait_ready(child, &dir.join(port.to_string()).join("redis.log"));
        }
        servers
    }
}

impl Drop for RedisServers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_ready(child: &mut Child, log: &Path) {
    let deadline = Instant::now() + support::READY_LIMIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("Ready to accept connections") {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("redis-server exited with {status}:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "redis-server not ready ({}):\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_written_by_php_fpm_are_read_from_the_store() {
    // web01 keeps the redis handler; web02 uses php-memcached over both
    // memcached servers, web03 pecl-memcache over both.
    let net = nets::STORE_PHP_SESSIONS;
    let ip = net.ip(1);
    let cluster = support::Cluster::start(
        net,
        &[
            "--session",
            "redis",
            "--memcached-count",
            "2",
            "--php-value",
            "web02:session.save_handler=memcached",
            "--php-value",
            &format!("web02:session.save_path={ip}:11211,{ip}:11212"),
            "--php-value",
            "web03:session.save_handler=memcache",
            "--php-value",
            &format!("web03:session.save_path=tcp://{ip}:11211, tcp://{ip}:11212"),
        ],
    );
    let nodes = cluster.nodes();
    let node = |name: &str| {
        nodes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.clone())
            .unwrap()
    };
    let mc_servers = vec![tcp(&ip, 11211), tcp(&ip, 11212)];
    let mc = target(StoreKind::Memcached, mc_servers.clone());
    let rd = target(StoreKind::Redis, vec![tcp(&ip, 6379)]);

    // Every server answers, with its version and a latency.
    let checks = check_servers(&mc, TIMEOUT).await;
    assert_eq!(checks.len(), 2, "{checks:?}");
    for (check, server) in checks
        .iter()
        .zip([format!("{ip}:11211"), format!("{ip}:11212")])
    {
        assert_eq!(check.server, server);
        assert!(check.ok, "{check:?}");
        assert!(check.detail.starts_with("memcached 1."), "{check:?}");
        assert!(check.latency_ms.is_some_and(|ms| ms > 0.0), "{check:?}");
    }
    let checks = check_servers(&rd, TIMEOUT).await;
    assert_eq!(checks.len(), 1);
    assert!(checks[0].ok, "{checks:?}");
    assert_eq!(checks[0].server, format!("{ip}:6379"));
    assert!(checks[0].detail.starts_with("redis "), "{checks:?}");
    assert!(checks[0].latency_ms.is_some_and(|ms| ms > 0.0));

    // php-memcached: the session is on exactly one of the two servers, and
    // read_key names that one.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let s = php_session(&cluster, &node("web02"));
        assert_eq!(
            (s.node.as_str(), s.handler.as_str()),
            ("web02", "memcached")
        );
        let key = session_key(&Handler::Memcached, &s.id, None, None);
        assert!(key.starts_with(b"memc.sess.key."));
        let (server, value) = read_key(&mc, &key, TIMEOUT)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("session {s:?} not found in memcached"));
        assert_eq!(String::from_utf8_lossy(&value), s.stored(), "{s:?}");
        let mut holders = Vec::new();
        for addr in &mc_servers {
            let one = target(StoreKind::Memcached, vec![addr.clone()]);
            if read_key(&one, &key, TIMEOUT).await.unwrap().is_some() {
                holders.push(addr.to_string());
            }
        }
        assert_eq!(holders, vec![server.clone()], "{s:?}");
        seen.push(server);
    }
    eprintln!("php-memcached sessions landed on {seen:?}");

    // pecl-memcache: the bare id, on one or both servers (session_redundancy).
    let s = php_session(&cluster, &node("web03"));
    assert_eq!(s.handler, "memcache");
    let key = session_key(&Handler::Memcache, &s.id, None, None);
    assert_eq!(key, s.id.as_bytes());
    let (server, value) = read_key(&mc, &key, TIMEOUT).await.unwrap().unwrap();
    assert!(
        mc_servers.iter().any(|a| a.to_string() == server),
        "{server}"
    );
    assert_eq!(String::from_utf8_lossy(&value), s.stored());

    // phpredis: PHPREDIS_SESSION: + id.
    let s = php_session(&cluster, &node("web01"));
    assert_eq!(s.handler, "redis");
    let key = session_key(&Handler::Redis, &s.id, None, None);
    assert!(key.starts_with(b"PHPREDIS_SESSION:"));
    let (server, value) = read_key(&rd, &key, TIMEOUT).await.unwrap().unwrap();
    assert_eq!(server, format!("{ip}:6379"));
    assert_eq!(String::from_utf8_lossy(&value), s.stored());
    // Not under the other handlers' keys.
    let other = session_key(&Handler::Memcached, &s.id, None, None);
    assert!(read_key(&rd, &other, TIMEOUT).await.unwrap().is_none());

    // A key nobody has.
    let missing = session_key(
        &Handler::Memcached,
        "nosuchsession0123456789abc",
        None,
        None,
    );
    assert!(read_key(&mc, &missing, TIMEOUT).await.unwrap().is_none());
    let missing = session_key(&Handler::Redis, "nosuchsession0123456789abc", None, None);
    assert!(read_key(&rd, &missing, TIMEOUT).await.unwrap().is_none());

    // A password the server does not expect: a clear error, naming the server.
    let mut with_password = rd.clone();
    with_password.password = Some("not-the-password".to_string());
    let err = read_key(&with_password, &key, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, StoreError::Auth { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{ip}:6379: authentication failed")),
        "{err}"
    );
    let checks = check_servers(&with_password, TIMEOUT).await;
    assert!(
        !checks[0].ok && checks[0].detail.contains("authentication failed"),
        "{checks:?}"
    );

    // A stand-alone server is not a cluster node.
    let as_cluster = target(StoreKind::RedisCluster, vec![tcp(&ip, 6379)]);
    let checks = check_servers(&as_cluster, TIMEOUT).await;
    assert!(
        !checks[0].ok && checks[0].detail.contains("not a cluster node"),
        "{checks:?}"
    );

    // One server down: the others still answer, and read_key says it could
    // not ask every server instead of "not found".
    let mut with_absent = mc.clone();
    with_absent.servers.push(tcp(&ip, 11299));
    let checks = check_servers(&with_absent, TIMEOUT).await;
    assert_eq!(
        checks.iter().map(|c| c.ok).collect::<Vec<_>>(),
        [true, true, false]
    );
    let missing = session_key(
        &Handler::Memcached,
        "nosuchsession0123456789abc",
        None,
        None,
    );
    let err = read_key(&with_absent, &missing, TIMEOUT).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Incomplete { answered: 2, failed } if failed.len() == 1),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("{ip}:11299: cannot connect")),
        "{err}"
    );
    // ... but a key found on a server that answered is found.
    let s = php_session(&cluster, &node("web03"));
    let key = session_key(&Handler::Memcache, &s.id, None, None);
    assert!(
        read_key(&with_absent, &key, TIMEOUT)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn absent_servers_fail_fast_with_a_clear_detail() {
    // Nothing listens on this network.
    let ip = nets::STORE_ABSENT_SERVERS.ip(1);
    let started = Instant::now();
    let mc = target(StoreKind::Memcached, vec![tcp(&ip, 11299)]);
    let rd = target(StoreKind::Redis, vec![tcp(&ip, 6399)]);
    for store in [&mc, &rd] {
        let checks = check_servers(store, TIMEOUT).await;
        assert_eq!(checks.len(), 1);
        assert!(!checks[0].ok, "{checks:?}");
        assert_eq!(checks[0].latency_ms, None);
        assert!(
            checks[0].detail.starts_with("cannot connect: "),
            "{checks:?}"
        );
        assert!(checks[0].detail.contains("refused"), "{checks:?}");
        let err = read_key(store, b"somekey", TIMEOUT).await.unwrap_err();
        assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&checks[0].server), "{err}");
    }
    assert!(started.elapsed() < TIMEOUT, "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_servers_time_out() {
    // Accepts connections (the kernel does) and never answers.
    let ip = nets::STORE_SILENT_SERVERS.ip(1);
    let listener = TcpListener::bind((ip.as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let timeout = Duration::from_millis(300);
    for kind in [StoreKind::Memcached, StoreKind::Redis] {
        let store = target(kind, vec![tcp(&ip, port)]);
        let started = Instant::now();
        let checks = check_servers(&store, timeout).await;
        let elapsed = started.elapsed();
        assert!(!checks[0].ok, "{checks:?}");
        assert!(
            checks[0].detail.starts_with("no answer within 300 ms"),
            "{checks:?}"
        );
        // It waited for the timeout; the upper bound only catches a hang
        // (a loaded CI machine may take far longer than the timeout).
        assert!(
            elapsed >= timeout && elapsed < timeout * 30,
            "{kind}: took {elapsed:?}"
        );

        let started = Instant::now();
        let err = read_key(&store, b"somekey", timeout).await.unwrap_err();
        assert!(matches!(err, StoreError::Timeout { .. }), "{err:?}");
        assert!(
            started.elapsed() < timeout * 30,
            "{kind}: took {:?}",
            started.elapsed()
        );
    }
    drop(listener);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_with_a_password() {
    let net = nets::STORE_REDIS_PASSWORD;
    let ip = net.ip(1);
    let _redis = RedisServers::start(net, &[6390], &["--requirepass", "s3cret"]);
    let mut store = target(StoreKind::Redis, vec![tcp(&ip, 6390)]);

    let checks = check_servers(&store, TIMEOUT).await;
    assert!(!checks[0].ok, "{checks:?}");
    assert!(
        checks[0].detail.contains("requires a password"),
        "{checks:?}"
    );

    store.password = Some("wrong".to_string());
    let err = read_key(&store, b"PHPREDIS_SESSION:x", TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Auth { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{ip}:6390: authentication failed")),
        "{err}"
    );

    store.password = Some("s3cret".to_string());
    let checks = check_servers(&store, TIMEOUT).await;
    assert!(checks[0].ok, "{checks:?}");
    assert!(
        read_key(&store, b"PHPREDIS_SESSION:x", TIMEOUT)
            .await
            .unwrap()
            .is_none()
    );

    store.database = Some(1);
    let set = Command::new("redis-cli")
        .args(["-h", &ip, "-p", "6390", "-a", "s3cret", "--no-auth-warning"])
        .args(["-n", "1", "SET", "PHPREDIS_SESSION:x", "in-db-1"])
        .output()
        .expect("run redis-cli");
    assert!(set.status.success());
    let (server, value) = read_key(&store, b"PHPREDIS_SESSION:x", TIMEOUT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (server, value.as_slice()),
        (format!("{ip}:6390"), &b"in-db-1"[..])
    );
}

/// memcached with SASL (`memcached -S`: the binary protocol only, a login
/// first), a session written by PHP's memcached extension with
/// `setSaslAuthData`: read back with the right credentials; the wrong
/// password is an authentication error; without credentials the server is
/// not counted as answering.
#[tokio::test(flavor = "multi_thread")]
async fn memcached_with_sasl() {
    let net = nets::STORE_MEMCACHED_SASL;
    let ip = net.ip(1);
    let dir = support::state_dir(net);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("sasldb2");
    std::fs::write(
        dir.join("memcached.conf"),
        format!("mech_list: plain\nsasldb_path: {}\n", db.display()),
    )
    .unwrap();
    let mut passwd = Command::new("saslpasswd2")
        .args(["-p", "-a", "memcached", "-c", "-f"])
        .arg(&db)
        .arg("fpmuser")
        .stdin(Stdio::piped())
        .spawn()
        .expect("saslpasswd2 (package sasl2-bin)");
    {
        use std::io::Write;
        passwd.stdin.take().unwrap().write_all(b"s3cret").unwrap();
    }
    assert!(passwd.wait().unwrap().success());
    let mut memcached = support::child_command("memcached")
        .args(["-S", "-U", "0", "-u", "root", "-l", &ip, "-p", "11299"])
        .env("SASL_CONF_PATH", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start memcached");
    let deadline = Instant::now() + support::READY_LIMIT;
    while std::net::TcpStream::connect((ip.as_str(), 11299)).is_err() {
        assert!(Instant::now() < deadline, "memcached -S not listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    let key = "memc.sess.key.sasl0123456789";
    let php = format!(
        "$m = new Memcached(); $m->setOption(Memcached::OPT_BINARY_PROTOCOL, true); \
         $m->addServer('{ip}', 11299); $m->setSaslAuthData('fpmuser', 's3cret'); \
         echo $m->set('{key}', 'TEST|i:7;') ? 'stored' : $m->getResultMessage();"
    );
    let out = Command::new("php")
        .args(["-d", "memcached.use_sasl=1", "-r", &php])
        .output()
        .expect("run php");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "stored");

    let mut store = target(StoreKind::Memcached, vec![tcp(&ip, 11299)]);
    let checks = check_servers(&store, TIMEOUT).await;
    assert!(!checks[0].ok, "no login, no answer: {checks:?}");
    store.username = Some("fpmuser".to_string());
    store.password = Some("wrong".to_string());
    let err = read_key(&store, key.as_bytes(), TIMEOUT).await.unwrap_err();
    assert!(matches!(err, StoreError::Auth { .. }), "{err:?}");
    store.password = Some("s3cret".to_string());
    let checks = check_servers(&store, TIMEOUT).await;
    assert!(checks[0].ok, "{checks:?}");
    assert!(checks[0].detail.starts_with("memcached 1."), "{checks:?}");
    let (server, value) = read_key(&store, key.as_bytes(), TIMEOUT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (server, value.as_slice()),
        (format!("{ip}:11299"), &b"TEST|i:7;"[..])
    );
    assert!(
        read_key(&store, b"memc.sess.key.absent", TIMEOUT)
            .await
            .unwrap()
            .is_none()
    );
    let _ = memcached.kill();
    let _ = memcached.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_cluster_sessions_written_by_phpredis() {
    let ports = [7000, 7001, 7002];
    let net = nets::STORE_REDIS_CLUSTER;
    let ip = net.ip(1);
    let redis = RedisServers::start(
        net,
        &ports,
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            // Without it, nodes meet from 127.0.0.1 and never join.
            "--cluster-announce-ip",
            &ip,
        ],
    );
    let create = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(ports.iter().map(|p| format!("{ip}:{p}")))
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli --cluster create");
    assert!(
        create.status.success(),
        "cluster create failed:\n{}\n(logs in {})",
        String::from_utf8_lossy(&create.stdout),
        redis.dir.display()
    );
    let seeds: Vec<StoreAddr> = ports.iter().map(|p| tcp(&ip, *p)).collect();
    let store = target(StoreKind::RedisCluster, seeds.clone());

    // Every node answers, and (once the nodes agree) the cluster is ok.
    let deadline = Instant::now() + Duration::from_secs(15);
    let checks = loop {
        let checks = check_servers(&store, TIMEOUT).await;
        if checks.iter().all(|c| c.ok) || Instant::now() > deadline {
            break checks;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for check in &checks {
        assert!(check.ok, "{checks:?}");
        assert!(check.detail.contains("cluster_state:ok"), "{checks:?}");
    }
    // A cluster node is not fit for the plain redis handler.
    let plain = target(StoreKind::Redis, vec![seeds[0].clone()]);
    let checks = check_servers(&plain, TIMEOUT).await;
    assert!(
        !checks[0].ok && checks[0].detail.contains("Redis Cluster node"),
        "{checks:?}"
    );

    // fpmlb names the owner of a key by its slot: the one the cluster itself gives
    // (CLUSTER KEYSLOT), hash tags included.
    let mut keys: Vec<String> = [
        "",
        "123456789",
        "{user1000}.following",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "{",
        "}{",
        "{}",
        "a{b",
        "x{a}y",
        "PHPREDIS_CLUSTER_SESSION:clustersessaaaaaaaaaaaaaaaa",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    keys.extend((0..40u32).map(|i| format!("PHPREDIS_CLUSTER_SESSION:{:026x}", i * 7919)));
    for key in &keys {
        let out = Command::new("redis-cli")
            .args(["-h", ip.as_str(), "-p", "7000", "CLUSTER", "KEYSLOT"])
            .arg(key)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli CLUSTER KEYSLOT");
        let answer = String::from_utf8_lossy(&out.stdout);
        let slot: u16 = answer
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT {key:?} answered {answer:?}"));
        assert_eq!(cluster_slot(key.as_bytes()), slot, "{key:?}");
    }

    // phpredis' rediscluster handler writes PHPREDIS_CLUSTER_SESSION: + id.
    for id in [
        "clustersessaaaaaaaaaaaaaaaa",
        "clustersessbbbbbbbbbbbbbbbb",
        "clustersesscccc",
    ] {
        let code = format!(
            "ini_set('session.save_handler', 'rediscluster');
            ini_set('session.save_path', 'seed[]={ip}:7000&seed[]={ip}:7001');
            ini_set('session.use_cookies', '0');
            ini_set('session.use_strict_mode', '0');
            session_id($argv[1]);
            if (!session_start()) {{ exit(1); }}
            $_SESSION['TEST'] = 42;
            session_write_close();"
        );
        let php = Command::new("php")
            .args(["-r", &code, "--", id])
            .output()
            .expect("run php");
        assert!(
            php.status.success(),
            "{}",
            String::from_utf8_lossy(&php.stderr)
        );

        let key = session_key(&Handler::RedisCluster, id, None, None);
        assert_eq!(key, format!("PHPREDIS_CLUSTER_SESSION:{id}").into_bytes());
        let (owner, value) = read_key(&store, &key, TIMEOUT)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} not found in the cluster"));
        assert_eq!(value, b"TEST|i:42;");
        // The named owner holds it.
        let owner_addr = seeds
            .iter()
            .find(|a| a.to_string() == owner)
            .unwrap_or_else(|| panic!("owner {owner} is not a seed"));
        let one = target(StoreKind::Redis, vec![owner_addr.clone()]);
        let direct = read_key(&one, &key, TIMEOUT).await.unwrap();
        assert_eq!(
            direct.map(|(_, v)| v),
            Some(b"TEST|i:42;".to_vec()),
            "{owner}"
        );
    }
    let missing = session_key(
        &Handler::RedisCluster,
        "nosuchsession0123456789abc",
        None,
        None,
    );
    assert!(read_key(&store, &missing, TIMEOUT).await.unwrap().is_none());
}
