//! Pools shared with others, against real php-fpm: a worker held by an
//! outside FastCGI client, health checks of an idle pool, and two fpmlb
//! over the same pools (an HA pair). php-fpm gives a worker to one
//! connection at a time, so a kept connection nobody serves pins a worker;
//! these show that no request waits behind one (every request answered),
//! without timing anything.
//!
//! Each test has its own 127.0.N.x network (tests/support/nets.rs).

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{Cluster, Fpmlb, base_yaml, client, get, nets, repo};

/// An outside FastCGI client (integration/bench/hold_worker.py) that ran
/// one request with FCGI_KEEP_CONN and keeps the connection: it holds one
/// php-fpm worker until dropped.
struct HeldWorker(Child);

impl HeldWorker {
    fn hold(cluster: &Cluster, node: &str, count: usize) -> HeldWorker {
        let ready = cluster.dir.join("held");
        let _ = std::fs::remove_file(&ready);
        let child = Command::new("python3")
            .arg(repo().join("integration/bench/hold_worker.py"))
            .args([
                "--pool",
                node,
                "--count",
                &count.to_string(),
                "--hold",
                "300",
            ])
            .arg("--script")
            .arg(format!("{}/hello.php", cluster.docroot()))
            .arg("--ready")
            .arg(&ready)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Owned at once: dropping it (a panic below too) kills the holder.
        let held = HeldWorker(child);
        for _ in 0..200 {
            if std::fs::read_to_string(&ready).is_ok_and(|t| t.starts_with("held")) {
                return held;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("hold_worker.py did not hold a worker of {node}");
    }
}

impl Drop for HeldWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `count` GETs of `path`, `parallel` at a time; every status.
async fn load(lb: &Fpmlb, path: &str, count: usize, parallel: usize) -> Vec<u16> {
    let c = client(false);
    let url = lb.url(path);
    let mut statuses = Vec::new();
    for _ in 0..count.div_ceil(parallel) {
        let batch = (0..parallel).map(|_| get(&c, &url));
        for r in futures_util::future::join_all(batch).await {
            statuses.push(r.map_or(0, |r| r.status));
        }
    }
    statuses
}

fn one_node_yaml(addr: SocketAddr, cluster: &Cluster, extra: &str) -> String {
    let (name, node) = cluster.nodes().remove(0);
    format!(
        "{}{extra}backends:\n  - name: {name}\n    address: \"{node}\"\n    max_conns: 2\n",
        base_yaml(addr, &cluster.docroot())
    )
}

/// `yaml` with its admin API on `admin` instead of off.
fn with_admin(yaml: &str, admin: SocketAddr) -> String {
    let off = "admin:\n  listen: off\n";
    assert!(yaml.contains(off), "{yaml}");
    yaml.replacen(off, &format!("admin:\n  listen: \"{admin}\"\n"), 1)
}

/// The connection figures of fpmlb's one backend (status.json), read
/// until `pred` holds, at most 20 s.
async fn pool_figures(admin: SocketAddr, pred: impl Fn(&Value) -> bool) -> Value {
    figures_until(
        admin,
        pred,
        Duration::from_millis(100),
        Duration::from_secs(20),
    )
    .await
}

/// As [`pool_figures`], read `every` (none: back to back) for at most
/// `within`; the last read when `pred` never held.
async fn figures_until(
    admin: SocketAddr,
    pred: impl Fn(&Value) -> bool,
    every: Duration,
    within: Duration,
) -> Value {
    let url = format!("http://{admin}/status.json");
    let c = client(false);
    let since = std::time::Instant::now();
    loop {
        let r = get(&c, &url).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let last = r.json()["backends"][0]["connections"].clone();
        if pred(&last) || since.elapsed() >= within {
            return last;
        }
        if !every.is_zero() {
            tokio::time::sleep(every).await;
        }
    }
}

fn figure(figures: &Value, name: &str) -> u64 {
    figures[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {figures}"))
}

/// Kept connections from anyone to `node` (ip:port), as /proc/net/tcp
/// shows them: established sockets whose remote end is the pool.
fn connections_to(node: &str) -> usize {
    let addr: SocketAddr = node.parse().unwrap();
    let SocketAddr::V4(v4) = addr else {
        panic!("{node} is not IPv4")
    };
    // /proc/net/tcp writes an IPv4 address as the little-endian u32 in hex.
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[2] == want && f[3] == "01"
        })
        .count()
}

/// One of the pool's two workers is held by an outside client (what an
/// nginx `keepalive` connection or a cron job over cgi-fcgi does): fpmlb,
/// whose cap says two, still answers every request; its second connection,
/// queued behind the held worker, gets a worker back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_held_by_an_outside_client_costs_no_request() {
    let cluster = Cluster::start(
        nets::SHARING_HELD_WORKER,
        &["--nodes", "1", "--children", "2"],
    );
    let (_, node) = cluster.nodes().remove(0);
    let _held = HeldWorker::hold(&cluster, &node, 1);
    // A request stuck behind the held worker would wait for it until
    // timeouts.read, and be a 504. The idle timeout is longer than that,
    // so that closing an idle connection at the idle timeout (5 s by
    // default) cannot give the worker back in time: only giving it back
    // (or recycling the connection) does.
    let admin = nets::SHARING_HELD_WORKER.addr(1, 9180);
    let yaml = with_admin(
        &one_node_yaml(
            cluster.lb_addr(),
            &cluster,
            "timeouts:\n  idle: 60s\n  read: 15s\n",
        ),
        admin,
    );
    let lb = Fpmlb::start_with_admin(&cluster.dir, cluster.lb_addr(), Some(admin), &yaml);
    let statuses = load(&lb, "/hello.php", 40, 4).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // The connection queued behind the held worker was answered once a
    // kept one was closed for it: the pool learnt that it has one worker.
    let log = lb.log_text();
    assert!(
        log.contains("waited for a php-fpm worker") && log.contains("the cap is now 1"),
        "{log}"
    );
    // Shown while it holds (30 s).
    let figures = pool_figures(admin, |f| f["learned"] == 1).await;
    assert_eq!(figures["learned"], 1, "{figures}");
    let metrics = get(&client(false), &format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text();
    assert!(
        metrics.contains("fpmlb_pool_connection_cap_learned{backend=\"web01\"} 1"),
        "{metrics}"
    );
}

/// Health checks (ping and status page every 200 ms) of a pool with no
/// traffic: no connection of fpmlb's stays open between two checks, and
/// no check runs on a connection an earlier one kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_keep_no_connection_to_an_idle_pool() {
    let cluster = Cluster::start(
        nets::SHARING_IDLE_CHECKS,
        &["--nodes", "1", "--children", "2"],
    );
    let (_, node) = cluster.nodes().remove(0);
    let health = "health:\n  interval: 200ms\n  timeout: 1s\n  ping_path: /fpm-ping\n  status_path: /fpm-status\n";
    let admin = nets::SHARING_IDLE_CHECKS.addr(1, 9180);
    let yaml = with_admin(&one_node_yaml(cluster.lb_addr(), &cluster, health), admin);
    let lb = Fpmlb::start_with_admin(&cluster.dir, cluster.lb_addr(), Some(admin), &yaml);
    // Some traffic first: its kept connections age out like any.
    let statuses = load(&lb, "/hello.php", 8, 2).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // Sampled across many checks: a check's connection is open only while
    // it runs, so some samples must find none.
    let mut counts = Vec::new();
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        counts.push(connections_to(&node));
    }
    assert!(
        counts.iter().rev().take(20).any(|&n| n == 0),
        "a connection stayed open between checks: {counts:?}"
    );
    // Counted: once no connection is idle, the next checks open their own
    // connections (10 of them here), and none reuses one an earlier check
    // kept. Sampling alone misses a check's connection kept until it is
    // recycled: the idle sweep closes it a while before a check opens the
    // next, so some samples find none.
    let before = pool_figures(admin, |f| figure(f, "idle") == 0).await;
    assert_eq!(
        figure(&before, "idle"),
        0,
        "a connection stayed idle: {before}"
    );
    let goal = figure(&before, "opened") + 10;
    let after = pool_figures(admin, |f| figure(f, "opened") >= goal).await;
    assert_eq!(
        figure(&after, "reused"),
        figure(&before, "reused"),
        "a check reused a connection kept by an earlier one: {before} -> {after}"
    );
    assert!(
        figure(&after, "opened") >= goal,
        "the checks opened no connections: {before} -> {after}"
    );
    let log = lb.log_text();
    assert!(!log.contains("backend DOWN"), "{log}");
}

/// Two fpmlb over the same pool of two workers (an HA pair). The first
/// keeps its connections for a minute of idleness (`timeouts.idle: 60s`),
/// yet every request of the second is answered: a kept connection is given
/// back (recycled) after a while, so the one queued behind it gets the
/// worker. Then both are loaded at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_over_the_same_pools_both_get_answers() {
    let cluster = Cluster::start(
        nets::SHARING_TWO_INSTANCES,
        &["--nodes", "1", "--children", "2"],
    );
    let net = nets::SHARING_TWO_INSTANCES;
    let (a_addr, b_addr) = (net.addr(1, 8080), net.addr(1, 8081));
    let extra = "timeouts:\n  idle: 60s\n  read: 15s\n";
    let dir_a = cluster.dir.join("a");
    let dir_b = cluster.dir.join("b");
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let a = Fpmlb::start(&dir_a, a_addr, &one_node_yaml(a_addr, &cluster, extra));
    let b = Fpmlb::start(&dir_b, b_addr, &one_node_yaml(b_addr, &cluster, extra));

    // a takes both workers, then goes quiet with its connections kept.
    let first = load(&a, "/hello.php", 6, 2).await;
    assert!(first.iter().all(|&s| s == 200), "{first:?}");
    // b's connections queue behind a's until a gives its workers back.
    let second = load(&b, "/hello.php", 20, 2).await;
    assert!(second.iter().all(|&s| s == 200), "{second:?}");

    // Both loaded at once.
    let (ra, rb) = tokio::join!(load(&a, "/hello.php", 40, 2), load(&b, "/hello.php", 40, 2));
    assert!(ra.iter().all(|&s| s == 200), "a: {ra:?}");
    assert!(rb.iter().all(|&s| s == 200), "b: {rb:?}");
}

/// A script slower than the worker patience, on a new connection of a
/// quiet pool, looks like a connection queued behind busy workers; but
/// nothing else of the pool's holds a worker, so nothing says the pool is
/// full: its cap stays at two, and a request that comes while the slow
/// one runs gets php-fpm's other worker, not fpmlb's queue (whose 1 s
/// would be a 503 with a learnt cap of one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_script_on_a_quiet_pool_holds_up_no_other_request() {
    let cluster = Cluster::start(
        nets::SHARING_SLOW_SCRIPT,
        &["--nodes", "1", "--children", "2"],
    );
    let yaml = one_node_yaml(cluster.lb_addr(), &cluster, "timeouts:\n  queue: 1s\n");
    let lb = Fpmlb::start(&cluster.dir, cluster.lb_addr(), &yaml);
    let url = lb.url("/slow.php?ms=4000");
    let slow = tokio::spawn(async move { get(&client(false), &url).await.unwrap().status });
    // Past the worker patience (100 ms with no history) while it runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = get(&client(false), &lb.url("/hello.php")).await.unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.text(), lb.log_text());
    assert!(
        !slow.is_finished(),
        "the slow script ended first: nothing was shown"
    );
    assert_eq!(slow.await.unwrap(), 200);
}

/// A script slower than the worker patience on a new connection, while
/// the pool's other worker answers fast requests on a kept connection:
/// from fpmlb's side, exactly what a connection queued behind a worker
/// held by someone else looks like, until the slow one is answered long
/// after fpmlb gave a worker back. Nothing is learnt from it: the fast
/// requests keep php-fpm's second worker while the slow one runs (a
/// learnt cap of one would queue them behind it, 503 after `queue: 1s`),
/// and the pool's cap is still two afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_script_beside_fast_ones_teaches_no_cap() {
    let net = nets::SHARING_SLOW_BESIDE_FAST;
    let cluster = Cluster::start(net, &["--nodes", "1", "--children", "2"]);
    let admin = net.addr(1, 9180);
    let yaml = with_admin(
        &one_node_yaml(cluster.lb_addr(), &cluster, "timeouts:\n  queue: 1s\n"),
        admin,
    );
    let lb = Fpmlb::start_with_admin(&cluster.dir, cluster.lb_addr(), Some(admin), &yaml);
    let url = lb.url("/slow.php?ms=3000");
    let slow = tokio::spawn(async move { get(&client(false), &url).await.unwrap().status });
    // Fast requests one after another while the slow one runs, past its
    // patience (100 ms with no history) and on for a while.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let c = client(false);
    let mut fast = Vec::new();
    for _ in 0..20 {
        let r = get(&c, &lb.url("/hello.php")).await.unwrap();
        fast.push(r.status);
        if r.status != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        fast.iter().all(|&s| s == 200),
        "{fast:?}\n{}",
        lb.log_text()
    );
    assert!(
        !slow.is_finished(),
        "the slow script ended first: nothing was shown"
    );
    assert_eq!(slow.await.unwrap(), 200);
    let figures = pool_figures(admin, |f| figure(f, "in_use") == 0).await;
    assert_eq!(figure(&figures, "cap"), 2, "{figures}\n{}", lb.log_text());
    let log = lb.log_text();
    assert!(!log.contains("waited"), "{log}");
}

/// One php-fpm node of four workers behind fpmlb (`max_conns: 4`,
/// `queue: 1s`, its admin API on .1:9180), warmed with fast answers one at
/// a time (one kept connection): the pool's patience is its floor, 100 ms.
async fn four_workers_warm(net: nets::Net) -> (Cluster, Fpmlb, SocketAddr) {
    let cluster = Cluster::start(net, &["--nodes", "1", "--children", "4"]);
    let admin = net.addr(1, 9180);
    let yaml = with_admin(
        &one_node_yaml(cluster.lb_addr(), &cluster, "timeouts:\n  queue: 1s\n")
            .replace("max_conns: 2", "max_conns: 4"),
        admin,
    );
    let lb = Fpmlb::start_with_admin(&cluster.dir, cluster.lb_addr(), Some(admin), &yaml);
    let warm = load(&lb, "/hello.php", 30, 1).await;
    assert!(warm.iter().all(|&s| s == 200), "{warm:?}");
    (cluster, lb, admin)
}

/// A page slower than the patience (100 ms with no history) but answered
/// within twice it, on a new connection, while another request of the
/// pool ends: from the timing alone, a connection that waited in php-fpm's
/// listen queue until a worker was given back. But php-fpm had workers
/// free all along (four, and fpmlb used three), which a connection of
/// fpmlb's own asks at the judgement (FCGI_GET_VALUES, answered by a free
/// worker before the page): nothing is learnt. Learnt, the cap would be
/// one (the one other connection answered) for 30 s, and a request while
/// the long one runs would wait behind it in fpmlb's queue (503 after
/// `queue: 1s`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_page_while_others_end_teaches_no_cap() {
    let (_cluster, lb, admin) = four_workers_warm(nets::SHARING_SLOW_PAGE_WHILE_OTHERS_END).await;
    let fetch = |path: &str| {
        let url = lb.url(path);
        tokio::spawn(async move { get(&client(false), &url).await.map_or(0, |r| r.status) })
    };
    // Answered at once, then works on for 2.5 s: one connection (the kept
    // one), lent until its script ends, that holds a worker.
    let long = fetch("/early.php?ms=2500");
    assert_eq!(long.await.unwrap(), 200);
    // Judged at its patience (100 ms), answered 60 ms later.
    let slow = fetch("/slow.php?ms=160");
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Ends about halfway between the two: a connection given back.
    let other = fetch("/slow.php?ms=110");
    assert_eq!(slow.await.unwrap(), 200);
    assert_eq!(other.await.unwrap(), 200);
    // The long script still runs: a free permit serves this at once.
    let r = get(&client(false), &lb.url("/hello.php")).await.unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.text(), lb.log_text());
    let figures = pool_figures(admin, |f| figure(f, "in_use") == 1).await;
    assert_eq!(
        figure(&figures, "in_use"),
        1,
        "the long script ended first: nothing was shown"
    );
    assert_eq!(figure(&figures, "cap"), 4, "{figures}\n{}", lb.log_text());
    // The slow page was judged: the other request's connection, ending
    // while it waited, was closed to give its worker back.
    assert!(figure(&figures, "given_back") >= 1, "{figures}");
    let log = lb.log_text();
    assert!(!log.contains("waited for a php-fpm worker"), "{log}");
}

/// A page its client cancels after fpmlb judged its new connection (no
/// answer within the patience while the pool's other connections held
/// workers) and before any answer came: nothing showed that it waited for
/// a worker, so the cap lowered at the judgement is given back, as when a
/// wait ends unanswered at twice the patience. (With a worker free, the
/// pool's question would show it and give the cap back anyway: here none
/// is, the page has the last one.) Kept, the pool would hold a cap of three
/// for 30 s with no warning said, and a request while the long scripts run
/// would wait in fpmlb's queue (503 after `queue: 1s`) for a permit that
/// php-fpm's fourth worker could serve once the abandoned page ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_its_client_cancels_teaches_no_cap() {
    let (_cluster, lb, admin) = four_workers_warm(nets::SHARING_CANCELLED_PAGE).await;
    // The client's HTTP/2 connection, open before the page's time starts.
    let h2 = client(true);
    let r = get(&h2, &lb.url("/hello.php")).await.unwrap();
    assert_eq!(r.status, 200, "{}", lb.log_text());
    // Each answered at once, then works on for 2.5 s: three connections,
    // each lent until its script ends, hold three of the four workers.
    for _ in 0..3 {
        let r = get(&client(false), &lb.url("/early.php?ms=2500"))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", lb.log_text());
    }
    // On a new connection, the fourth worker's: judged at the patience
    // (100 ms), which lowers the cap to the three connections served
    // (status.json's `learned`). Its client then resets the HTTP/2 stream,
    // before the page's answer (200 ms) and before its wait would have
    // ended (twice the patience).
    let page = {
        let (h2, url) = (h2.clone(), lb.url("/slow.php?ms=200"));
        tokio::spawn(async move { get(&h2, &url).await })
    };
    let judged = |f: &Value| !f["learned"].is_null();
    let figures = figures_until(admin, judged, Duration::ZERO, Duration::from_millis(180)).await;
    page.abort();
    assert_eq!(
        figures["learned"],
        3,
        "not judged in time\n{}",
        lb.log_text()
    );
    assert!(page.await.is_err_and(|e| e.is_cancelled()), "answered");
    // The long scripts still run: the fourth permit serves this, once the
    // abandoned page has ended.
    let r = get(&client(false), &lb.url("/hello.php")).await.unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.text(), lb.log_text());
    let figures = pool_figures(admin, |f| figure(f, "in_use") <= 3).await;
    assert_eq!(figure(&figures, "cap"), 4, "{figures}\n{}", lb.log_text());
    assert!(figures["learned"].is_null(), "{figures}");
    let log = lb.log_text();
    assert!(!log.contains("waited for a php-fpm worker"), "{log}");
}

/// A script that answers with `fastcgi_finish_request()` and works on
/// (Symfony's `kernel.terminate`, Laravel's terminable middleware):
/// php-fpm sends END_REQUEST at that call, on a connection it keeps, while
/// its worker is still busy (php-src#10335). fpmlb sends a readiness check
/// behind each request, which php-fpm answers only once the script has
/// ended. A connection goes back to the pool at once, as long as no request
/// was seen to wait for a script: the first that does (its check's answer
/// comes late) makes the pool hold each connection back until its script
/// has ended, so the next request goes to the pool's other worker instead.
/// Kept connections are reused as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_busy_after_its_response_is_not_lent_a_request() {
    let net = nets::SHARING_FINISH_REQUEST;
    let cluster = Cluster::start(net, &["--nodes", "1", "--children", "2"]);
    let admin = net.addr(1, 9180);
    let yaml = with_admin(&one_node_yaml(cluster.lb_addr(), &cluster, ""), admin);
    let lb = Fpmlb::start_with_admin(&cluster.dir, cluster.lb_addr(), Some(admin), &yaml);
    let c = client(false);
    let pid = |r: &support::Resp| {
        assert_eq!(r.status, 200, "{}\n{}", r.text(), lb.log_text());
        r.text().trim().to_string()
    };
    // One after another, a script that does not work on: one kept
    // connection (one worker) serves them all.
    let mut quick = Vec::new();
    for _ in 0..6 {
        quick.push(pid(&get(&c, &lb.url("/finish.php")).await.unwrap()));
    }
    assert!(quick.windows(2).all(|w| w[0] == w[1]), "{quick:?}");
    // Scripts that work on: their connection goes back to the pool, and
    // the next request waits for them there, until one that carried a
    // check (one in CHECK_EVERY = 16, health checks' requests counted)
    // shows it.
    let seen = "for a php-fpm worker still running the script before it";
    let mut waits = 0;
    while !lb.log_text().contains(seen) {
        waits += 1;
        assert!(waits <= 17, "never seen\n{}", lb.log_text());
        let busy = pid(&get(&c, &lb.url("/finish.php?ms=300")).await.unwrap());
        let next = pid(&get(&c, &lb.url("/finish.php")).await.unwrap());
        assert_eq!(busy, next, "{}", lb.log_text());
    }
    // From now on a busy worker's connection is held back.
    let busy = pid(&get(&c, &lb.url("/finish.php?ms=4000")).await.unwrap());
    let next = pid(&get(&c, &lb.url("/finish.php")).await.unwrap());
    assert_ne!(
        busy,
        next,
        "the request after went to the busy worker\n{}",
        lb.log_text()
    );
    let figures = pool_figures(admin, |f| figure(f, "worked_on") >= 2).await;
    assert_eq!(figure(&figures, "worked_on"), 2, "{figures}");
    // Connections were kept and reused throughout (each recycled at
    // 250 ms of age).
    assert!(figure(&figures, "reused") >= 6, "{figures}");
}
