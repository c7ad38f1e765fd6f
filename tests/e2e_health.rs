//! Liveness against real php-fpm: a frozen node leaves rotation and comes
//! back by itself; a pool saturated by slow scripts is busy, not dead.
//!
//! Each test has its own 127.0.N.x network (tests/support/nets.rs).

mod support;

use support::{Cluster, Fpmlb, base_yaml, client, get, nets, start_lb};

const HEALTH: &str = "health:\n  interval: 200ms\n  timeout: 300ms\n  rise: 2\n  fall: 2\n  ping_path: /fpm-ping\nmax_fails: 0\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_leaves_rotation_and_comes_back() {
    let cluster = Cluster::start(nets::HEALTH_FROZEN_NODE, &[]);
    let lb = start_lb(&cluster, HEALTH);
    cluster.kill_node("web02", "STOP");
    // Workers keep running but the master is frozen: freeze them all.
    freeze_workers(&cluster, "web02", "STOP");
    // The event and the backend on one line: the start-up lines name web02
    // whichever backend went down.
    lb.wait_log_line(&["backend DOWN", "backend=web02"]).await;
    let c = client(false);
    for _ in 0..9 {
        let r = get(&c, &lb.url("/")).await.unwrap();
        assert_eq!(r.status, 200);
        assert!(!r.text().contains("web02"), "a down node got traffic");
    }
    freeze_workers(&cluster, "web02", "CONT");
    cluster.kill_node("web02", "CONT");
    lb.wait_log_line(&["backend UP", "backend=web02"]).await;
    let mut saw_web02 = false;
    for _ in 0..6 {
        let r = get(&c, &lb.url("/")).await.unwrap();
        saw_web02 |= r.text().contains("web02");
    }
    assert!(saw_web02);
}

fn freeze_workers(cluster: &Cluster, node: &str, signal: &str) {
    let pid = std::fs::read_to_string(cluster.dir.join(format!("{node}.pid"))).unwrap();
    let status = std::process::Command::new("pkill")
        .arg(format!("-{signal}"))
        .arg("-P")
        .arg(pid.trim())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_pool_is_busy_not_dead() {
    // One node with 2 workers, both kept busy by slow scripts longer than
    // fall x interval: the ping cannot get a slot, but the pool is alive.
    let cluster = Cluster::start(
        nets::HEALTH_SATURATED_POOL,
        &["--nodes", "1", "--children", "2"],
    );
    let addr = cluster.lb_addr();
    let (name, node) = cluster.nodes().remove(0);
    let yaml = format!(
        "{}{HEALTH}backends:\n  - name: {name}\n    address: \"{node}\"\n    max_conns: 2\n",
        base_yaml(addr, &cluster.docroot())
    );
    let lb = Fpmlb::start(&cluster.dir, addr, &yaml);
    let c = client(false);
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            let url = lb.url("/slow.php?ms=1500");
            tokio::spawn(async move { get(&c, &url).await })
        })
        .collect();
    for s in slow {
        let r = s.await.unwrap().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let log = lb.log_text();
    assert!(
        !log.contains("backend DOWN"),
        "a busy pool was marked down:\n{log}"
    );
    assert!(
        lb.log_line_with(&["pool saturated", &format!("backend={name}")])
            .is_some(),
        "the checker saw no saturation of {name}:\n{log}"
    );
}
