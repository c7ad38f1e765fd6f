//! Operating fpmlb against real php-fpm: SIGHUP reload under load, a
//! broken reload that changes nothing, least_busy, DNS discovery.
//!
//! Each test has its own 127.0.N.x network (tests/support/nets.rs).

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::{Cluster, Fpmlb, base_yaml, child_command, client, get, nets};

fn backends_yaml(nodes: &[(String, String)]) -> String {
    let mut s = String::from("backends:\n");
    for (name, addr) in nodes {
        s.push_str(&format!(
            "  - name: {name}\n    address: \"{addr}\"\n    max_conns: 4\n"
        ));
    }
    s
}

async fn wait_log(lb: &Fpmlb, needle: &str) -> bool {
    for _ in 0..200 {
        if lb.log_text().contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn node_of(body: &str) -> String {
    body.trim()
        .trim_start_matches("hello from ")
        .trim_start_matches("slow ")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_removes_a_backend_under_load_without_a_failed_request() {
    let cluster = Cluster::start(nets::OPS_RELOAD_UNDER_LOAD, &[]);
    let addr = cluster.lb_addr();
    let head = base_yaml(addr, &cluster.docroot());
    let nodes = cluster.nodes();
    let lb = Fpmlb::start(
        &cluster.dir,
        addr,
        &format!("{head}{}", backends_yaml(&nodes)),
    );
    let c = client(false);

    // A slow request in flight across the reload, on whichever node.
    let slow = {
        let c = c.clone();
        let url = lb.url("/slow.php?ms=1500");
        tokio::spawn(async move { get(&c, &url).await })
    };
    // A bounded load: two clients, until told to stop or 2000 requests.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (c, url, stop, sent) = (c.clone(), lb.url("/"), Arc::clone(&stop), Arc::clone(&sent));
        load.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) && sent.fetch_add(1, Ordering::Relaxed) < 2000 {
                match get(&c, &url).await {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failures.push(format!("{} {}", r.status, r.text())),
                    Err(e) => failures.push(e),
                }
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Reload without web03.
    std::fs::write(&lb.config, format!("{head}{}", backends_yaml(&nodes[..2]))).unwrap();
    lb.signal("HUP");
    assert!(wait_log(&lb, "config reloaded").await, "{}", lb.log_text());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        let failures = l.await.unwrap();
        assert!(
            failures.is_empty(),
            "failed requests during reload: {failures:?}"
        );
    }
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status, 200, "the slow request in flight completes");
    assert!(slow.text().starts_with("slow web"), "{}", slow.text());
    // After the reload, web03 gets nothing.
    for _ in 0..9 {
        let r = get(&c, &lb.url("/")).await.unwrap();
        assert_ne!(node_of(&r.text()), "web03");
    }
    let log = lb.log_text();
    assert!(log.contains("removed=[\"web03\"]"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_config_changes_nothing() {
    let cluster = Cluster::start(nets::OPS_RELOAD_BROKEN, &[]);
    let addr = cluster.lb_addr();
    let head = base_yaml(addr, &cluster.docroot());
    let lb = Fpmlb::start(
        &cluster.dir,
        addr,
        &format!("{head}{}", cluster.backends_yaml()),
    );
    // web01 only, and a typo on line 3 of the backends: refused as a whole.
    let broken = format!(
        "{head}backends:\n  - name: web01\n    adress: \"{}:9000\"\n",
        cluster.net.ip(2)
    );
    let typo_line = broken.lines().position(|l| l.contains("adress")).unwrap() + 1;
    std::fs::write(&lb.config, broken).unwrap();
    lb.signal("HUP");
    assert!(wait_log(&lb, "reload refused").await, "{}", lb.log_text());
    let log = lb.log_text();
    assert!(
        log.contains(&format!("line {typo_line}")) && log.contains("adress"),
        "{log}"
    );
    assert!(!log.contains("config reloaded"));
    let c = client(false);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..9 {
        let r = get(&c, &lb.url("/")).await.unwrap();
        assert_eq!(r.status, 200);
        *seen.entry(node_of(&r.text())).or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "all three nodes still serve: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_busy_sends_fewer_requests_to_a_busy_pool() {
    let cluster = Cluster::start(nets::OPS_LEAST_BUSY, &["--nodes", "2", "--children", "4"]);
    let addr = cluster.lb_addr();
    let nodes = cluster.nodes();
    // The admin API on, to see what fpmlb knows of the pools.
    let admin = cluster.net.addr(1, 9180);
    let head =
        base_yaml(addr, &cluster.docroot()).replace("listen: off", &format!("listen: \"{admin}\""));
    let yaml = format!(
        "{head}balance: least_busy\nhealth:\n  interval: 200ms\n  status_path: /fpm-status\n{}",
        backends_yaml(&nodes)
    );
    let lb = Fpmlb::start_with_admin(&cluster.dir, addr, Some(admin), &yaml);
    // Keep 3 of web01's 4 workers busy with slow scripts sent straight to
    // php-fpm (another client of the pool, as a cron or a second balancer).
    let busy: Vec<std::process::Child> = (0..3)
        .map(|_| {
            child_command("php")
                .arg(support::repo().join("integration/fcgi.php"))
                .arg(&nodes[0].1)
                .arg(format!("{}/slow.php", cluster.docroot()))
                .args(["--uri", "/slow.php?ms=4000", "--quiet-stderr"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    struct Reap(Vec<std::process::Child>);
    impl Drop for Reap {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let _reap = Reap(busy);
    // Wait until fpmlb's status poll sees web01 busy (bounded).
    let c = client(false);
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut seen_busy = false;
    for _ in 0..200 {
        if let Ok(r) = get(&c, &format!("http://{admin}/status.json")).await {
            let j = r.json();
            let web01 = j["backends"]
                .as_array()
                .and_then(|a| a.iter().find(|b| b["name"] == "web01").cloned());
            if web01
                .and_then(|b| b["pool"]["idle_processes"].as_u64())
                .is_some_and(|idle| idle <= 1)
            {
                seen_busy = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen_busy,
        "fpmlb never saw web01's workers busy:\n{}",
        lb.log_text()
    );
    for _ in 0..20 {
        let r = get(&c, &lb.url("/")).await.unwrap();
        assert_eq!(r.status, 200);
        *counts.entry(node_of(&r.text())).or_default() += 1;
    }
    let web01 = counts.get("web01").copied().unwrap_or(0);
    let web02 = counts.get("web02").copied().unwrap_or(0);
    assert!(
        web01 < web02,
        "least_busy should favour the idle pool: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostname_backend_becomes_one_backend_per_address() {
    let cluster = Cluster::start(nets::OPS_HOSTNAME_BACKEND, &["--nodes", "1"]);
    let addr = cluster.lb_addr();
    let (_, node) = cluster.nodes().remove(0);
    let port = node.rsplit(':').next().unwrap();
    // "localhost" resolves (through /etc/hosts) to 127.0.0.1 and maybe ::1;
    // neither runs php-fpm here, which is fine: this checks naming.
    let yaml = format!(
        "{}resolve_interval: 1s\nbackends:\n  - name: real\n    address: \"{node}\"\n  - name: dns\n    address: \"localhost:{port}\"\n",
        base_yaml(addr, &cluster.docroot())
    );
    let lb = Fpmlb::start(&cluster.dir, addr, &yaml);
    assert!(wait_log(&lb, "dns#127.0.0.1").await, "{}", lb.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish_then_exits_0() {
    let cluster = Cluster::start(nets::OPS_SIGTERM, &["--nodes", "1"]);
    let addr = cluster.lb_addr();
    let yaml = format!(
        "{}timeouts:\n  shutdown_grace: 10s\n{}",
        base_yaml(addr, &cluster.docroot()),
        cluster.backends_yaml()
    );
    let mut lb = Fpmlb::start(&cluster.dir, addr, &yaml);
    let c = client(false);
    let slow = {
        let (c, url) = (c.clone(), lb.url("/slow.php?ms=1500"));
        tokio::spawn(async move { get(&c, &url).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    lb.signal("TERM");
    assert!(wait_log(&lb, "shutting down").await, "{}", lb.log_text());
    // No new connections once shutting down.
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "still accepting after SIGTERM");
    let r = slow.await.unwrap().unwrap();
    assert_eq!(r.status, 200, "the request in flight finished");
    let mut status = None;
    for _ in 0..100 {
        if let Ok(Some(s)) = lb.child.try_wait() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", lb.log_text());
}
