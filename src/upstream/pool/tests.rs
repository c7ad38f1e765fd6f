use super::cap::Race;
use super::readiness::CHECKS_CLOSED_LIMIT;
use super::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

fn settings(max_conns: usize, queue_size: usize) -> PoolSettings {
    PoolSettings {
        max_conns,
        queue_size,
        connect_timeout: Duration::from_secs(1),
        queue_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(5),
    }
}

/// An idle timeout shorter than [`RECYCLE_AFTER`], so that the tests of
/// idle order are not overtaken by recycling.
fn short_idle(max_conns: usize) -> PoolSettings {
    PoolSettings {
        idle_timeout: Duration::from_millis(100),
        ..settings(max_conns, 10)
    }
}

/// Accepts every connection and keeps it open (a php-fpm worker per
/// connection), until the returned task is aborted.
fn keep_accepting(l: TcpListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            kept.push(s);
        }
    })
}

/// A pool of `settings` over a listener that accepts every connection
/// and keeps it open ([`keep_accepting`]), with the accepting task.
async fn pool_accepting(settings: PoolSettings) -> (Pool, tokio::task::JoinHandle<()>) {
    let (l, ep) = listener().await;
    let accept = keep_accepting(l);
    (Pool::new(ep, settings), accept)
}

/// `n` new connections of `pool`, lent at once.
async fn lend_all(pool: &Pool, n: usize) -> Vec<PooledConn> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(pool.acquire().await.unwrap());
    }
    conns
}

/// Whether the pool's question for a free worker is out.
fn asking(pool: &Pool) -> bool {
    pool.inner.asking.load(Ordering::Acquire)
}

async fn listener() -> (TcpListener, Endpoint) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, Endpoint::Tcp(addr))
}

#[tokio::test]
async fn reuses_released_connections_and_caps_open_ones() {
    let (pool, accept) = pool_accepting(settings(2, 10)).await;
    let a = pool.acquire().await.unwrap();
    let b = pool.acquire().await.unwrap();
    assert!(!a.reused && !b.reused);
    // At the cap: the third waits and times out.
    assert!(matches!(
        pool.acquire().await,
        Err(PoolError::QueueTimeout(_))
    ));
    a.release();
    let c = pool.acquire().await.unwrap();
    assert!(c.reused);
    assert_eq!(pool.figures().opened, 2);
    drop(b); // closed, not kept
    drop(c);
    assert_eq!(pool.figures().idle, 0);
    accept.abort();
}

/// php-fpm's answer to the readiness check (GET_VALUES_RESULT).
const CHECK_ANSWER: &[u8] = b"\x01\x0a\x00\x00\x00\x12\x06\x00\x0f\x01FCGI_MPXS_CONNS0\0\0\0\0\0\0";

/// Once a request was seen to wait for a script working on after its
/// response, a connection whose readiness check is not answered yet
/// keeps its slot, on a task of its own, and is kept for reuse once the
/// answer comes.
#[tokio::test]
async fn a_connection_is_held_back_until_its_worker_answers_the_check() {
    use tokio::io::AsyncWriteExt;
    let (l, ep) = listener().await;
    let pool = Pool::new(ep, settings(1, 10));
    assert!(!pool.holds_back());
    pool.hold_back(WORKED_ON, Instant::now());
    assert!(pool.holds_back());
    let mut conn = pool.acquire().await.unwrap();
    let (mut worker, _) = l.accept().await.unwrap();
    assert!(conn.check_ready(Duration::from_secs(5)));
    conn.conn().unwrap().ready_check_sent();
    conn.release();
    assert_eq!(pool.figures().idle, 0);
    assert!(
        pool.try_slot().is_none(),
        "the busy worker's slot was freed"
    );
    worker.write_all(CHECK_ANSWER).await.unwrap();
    let again = pool.acquire().await.unwrap();
    assert!(again.reused);
    assert_eq!(pool.figures().opened, 1);
}

/// Before any request waited for a script, a connection whose check is
/// not answered goes back to the pool at once and is lent again: the
/// next exchange reads the answer.
#[tokio::test]
async fn a_connection_is_lent_again_before_its_check_is_answered() {
    // One exchange in CHECK_EVERY is checked, the first among them.
    use tokio::io::AsyncWriteExt;
    let (l, ep) = listener().await;
    let pool = Pool::new(ep, settings(1, 10));
    let mut conn = pool.acquire().await.unwrap();
    let (mut worker, _) = l.accept().await.unwrap();
    assert!(conn.check_ready(Duration::from_secs(5)));
    conn.conn().unwrap().ready_check_sent();
    conn.release();
    let mut again = pool.acquire().await.unwrap();
    assert!(again.reused);
    assert_eq!(again.conn().unwrap().checks_pending(), 1);
    // Its answer now: a connection found with it is ready.
    worker.write_all(CHECK_ANSWER).await.unwrap();
    again.release();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut third = pool.acquire().await.unwrap();
    assert!(third.reused);
    assert_eq!(third.conn().unwrap().checks_pending(), 0);
}

/// A php-fpm that closes each connection after answering the check
/// (as older versions' source reads) would never keep one: after
/// [`CHECKS_CLOSED_LIMIT`] such closes, with none found open, the pool
/// stops checking.
#[tokio::test]
async fn checks_stop_when_php_fpm_closes_after_answering_them() {
    use tokio::io::AsyncWriteExt;
    let (l, ep) = listener().await;
    let pool = Pool::new(ep, settings(1, 10));
    // Every request checked.
    pool.hold_back(WORKED_ON, Instant::now());
    for round in 0..=CHECKS_CLOSED_LIMIT {
        let mut conn = pool.acquire().await.unwrap();
        assert!(!conn.reused, "round {round}");
        let (mut worker, _) = l.accept().await.unwrap();
        assert_eq!(
            conn.check_ready(Duration::from_secs(5)),
            round < CHECKS_CLOSED_LIMIT,
            "round {round}"
        );
        conn.conn().unwrap().ready_check_sent();
        worker.write_all(CHECK_ANSWER).await.unwrap();
        drop(worker);
        tokio::time::sleep(Duration::from_millis(20)).await;
        conn.release();
    }
}

/// A connection opened on the asking thread is reused before one
/// opened on another (whose readiness comes through that thread's I/O
/// driver), even one used more recently.
#[tokio::test]
async fn an_idle_connection_of_the_asking_thread_comes_first() {
    let (pool, accept) = pool_accepting(settings(2, 10)).await;
    let mut here = pool.acquire().await.unwrap();
    let mut there = pool.acquire().await.unwrap();
    // Told apart by their request ids.
    let here_id = here.conn().unwrap().next_request_id();
    for _ in 0..5 {
        there.conn().unwrap().next_request_id();
    }
    assert_eq!(here.home, crate::runtime::current());
    there.home = Some(usize::MAX);
    here.release();
    there.release(); // on top
    let mut first = pool.acquire().await.unwrap();
    assert!(first.reused);
    assert_eq!(first.conn().unwrap().next_request_id(), here_id + 1);
    // With none of its own idle, a thread takes another's.
    let mut second = pool.acquire().await.unwrap();
    assert!(second.reused);
    assert_eq!(second.conn().unwrap().next_request_id(), here_id + 5);
    drop((first, second));
    accept.abort();
}

/// A connection opened on one serving thread and lent on another is
/// moved to the second's I/O driver: it still works once the first
/// thread's runtime is gone.
#[test]
fn a_connection_lent_on_another_thread_moves_to_it() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (l, ep) = rt.block_on(listener());
    let l = l.into_std().unwrap();
    l.set_nonblocking(false).unwrap();
    let echo = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = l.accept().unwrap();
        let mut b = [0u8; 8];
        while s.read_exact(&mut b).is_ok() {
            s.write_all(&b).unwrap();
        }
    });
    let pool = Pool::new(ep, settings(1, 10));
    let first = crate::runtime::Workers::start(1).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let p = pool.clone();
    first.spawn_connection(async move {
        let conn = p.acquire().await.unwrap();
        let home = conn.home;
        conn.release();
        tx.send(home).unwrap();
    });
    assert_eq!(rx.recv().unwrap(), Some(0));
    // The thread it was opened on is gone with its runtime.
    first.stop();
    drop(first);
    let second = crate::runtime::Workers::start(2).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let hold = std::sync::Arc::new(tokio::sync::Notify::new());
    // Thread 0 busy with a connection of its own: the next goes to 1.
    let held = std::sync::Arc::clone(&hold);
    second.spawn_connection(async move { held.notified().await });
    second.spawn_connection(async move {
        let mut conn = pool.acquire().await.unwrap();
        let reused = conn.reused;
        let home = conn.home;
        let c = conn.conn().unwrap();
        // An empty STDOUT record of request 1, echoed back.
        let echoed = async {
            c.write_all(&[1, 6, 0, 1, 0, 0, 0, 0])
                .await
                .map_err(|e| e.to_string())?;
            c.read_record().await.map_err(|e| e.to_string())
        };
        let echoed = tokio::time::timeout(Duration::from_secs(5), echoed).await;
        tx.send((
            reused,
            home,
            crate::runtime::current(),
            format!("{echoed:?}"),
        ))
        .unwrap();
    });
    let (reused, home, here, echoed) = rx.recv().unwrap();
    assert!(reused);
    assert_eq!(here, Some(1));
    assert_eq!(home, here);
    assert!(echoed.starts_with("Ok(Ok(Some((1, "), "{echoed}");
    hold.notify_one();
    second.stop();
    drop(rt);
    drop(echo);
}

#[tokio::test]
async fn a_closed_idle_connection_is_not_reused() {
    let (l, ep) = listener().await;
    let pool = Pool::new(ep, settings(1, 10));
    let conn = pool.acquire().await.unwrap();
    let (server_side, _) = l.accept().await.unwrap();
    conn.release();
    drop(server_side); // php-fpm worker exited
    tokio::time::sleep(Duration::from_millis(50)).await;
    let accept = tokio::spawn(async move { l.accept().await.map(|_| ()) });
    let fresh = pool.acquire().await.unwrap();
    assert!(!fresh.reused);
    accept.await.unwrap().unwrap();
}

#[tokio::test]
async fn queue_is_bounded() {
    let (pool, _keep) = pool_accepting(settings(1, 0)).await;
    let _held = pool.acquire().await.unwrap();
    assert!(matches!(
        pool.acquire().await,
        Err(PoolError::QueueFull { .. })
    ));
}

#[tokio::test]
async fn cap_can_be_lowered_and_raised() {
    let (pool, _keep) = pool_accepting(settings(4, 10)).await;
    pool.set_cap(1);
    assert_eq!(pool.figures().cap, 1);
    let _one = pool.acquire().await.unwrap();
    assert!(pool.acquire().await.is_err());
    pool.set_cap(8); // clamped to the configured 4
    assert_eq!(pool.figures().cap, 4);
    let _two = pool.acquire().await.unwrap();
}

/// A slow script on a quiet pool: its new connection gets no answer
/// within the patience, but nothing else of the pool holds a worker, so
/// nothing says the pool is full. Its cap stays, and other requests get
/// connections of their own (php-fpm's idle workers take them).
#[tokio::test]
async fn a_slow_script_on_a_quiet_pool_teaches_no_cap() {
    let (_l, ep) = listener().await;
    let pool = Pool::new(ep, settings(2, 10));
    let mut slow = pool.acquire().await.unwrap();
    slow.waiting_for_worker(WORKER_PATIENCE);
    assert_eq!(pool.figures().cap, 2);
    // Two such scripts at once: still nothing answered, nothing learnt.
    let mut slow_too = pool.acquire().await.unwrap();
    slow_too.waiting_for_worker(WORKER_PATIENCE);
    assert_eq!(slow.first_answer(), None, "no warning: nothing is known");
    assert_eq!(slow_too.first_answer(), None);
    assert_eq!(pool.figures().cap, 2);
}

/// Start-up: every connection new, each page slow (PHP connecting to
/// its session store, opcache compiling). One goes past the patience
/// while the others are in use but not answered either: they show no
/// worker held, nothing is learnt, and the cap stays. Once one of them
/// is answered, it counts.
#[tokio::test]
async fn slow_first_pages_on_new_connections_teach_no_cap() {
    let (pool, _keep) = pool_accepting(settings(4, 10)).await;
    let mut conns = lend_all(&pool, 4).await;
    let learned = |pool: &Pool| pool.cap().learned.map(|(cap, _)| cap);
    conns[0].waiting_for_worker(WORKER_PATIENCE);
    assert_eq!(learned(&pool), None, "no worker seen held");
    assert_eq!(conns[0].first_answer(), None);
    // Answered, it holds a worker: the next one that waits learns.
    conns[1].waiting_for_worker(WORKER_PATIENCE);
    assert_eq!(learned(&pool), Some(1), "conns[0] answered, conns[1] waits");
    assert_eq!(pool.figures().learned, Some(1), "shown");
    let judged = conns.remove(1);
    drop(conns);
    assert_eq!(pool.figures().cap, 1, "owed permits kept back");
    // The judged one dropped before its answer (its client gone): nothing
    // showed that it waited, and the cap comes back with its permit.
    drop(judged);
    // Dropped unanswered (a failed exchange): no longer counted.
    assert_eq!(pool.inner.unheard.load(Ordering::Relaxed), 0);
    assert_eq!(learned(&pool), None, "the lowering taken back");
    assert_eq!(pool.figures().learned, None);
    assert_eq!(pool.figures().cap, 4);
    assert_eq!(pool.figures().in_use, 0);
}

/// Two judgements that overlap, both dropped unanswered (two pages whose
/// clients left): the second, made at the cap the first lowered, lowers it
/// again; the first taken back while the second is in force is remembered,
/// so that taking back the second leaves no learnt cap, not the first's.
#[tokio::test]
async fn overlapping_judgements_taken_back_leave_no_cap() {
    let (pool, _keep) = pool_accepting(settings(4, 10)).await;
    let mut conns = lend_all(&pool, 4).await;
    assert_eq!(conns[0].first_answer(), None);
    conns[1].waiting_for_worker(WORKER_PATIENCE);
    let first = pool.cap().learned;
    assert!(first.is_some(), "the first judgement lowers the cap");
    conns[2].waiting_for_worker(WORKER_PATIENCE);
    let second = pool.cap().learned;
    assert!(
        second.is_some() && second != first,
        "the second, at it, too"
    );
    let second_judged = conns.remove(2);
    let first_judged = conns.remove(1);
    drop(first_judged);
    assert_eq!(pool.cap().learned, second, "the later one still in force");
    drop(second_judged);
    assert_eq!(pool.cap().learned, None, "neither showed a wait");
    drop(conns);
    assert_eq!(pool.figures().cap, 4);
    assert!(pool.cap().withdrawn.is_empty());
}

/// A page slower than the patience while another connection holds a
/// worker and a worker is free: the judgement lowers the cap, then the
/// pool's question (FCGI_GET_VALUES on a connection of its own, the
/// third to reach php-fpm) is answered before the page, so the cap comes
/// back before the page's answer, which teaches nothing even though a
/// worker was given back meanwhile (within the patience, by the timing
/// alone a wait). Answered, the pool's one question is over.
#[tokio::test]
async fn a_worker_free_for_the_question_shows_a_slow_page() {
    use tokio::io::AsyncWriteExt;
    let (l, ep) = listener().await;
    let pool = Pool::new(ep, settings(3, 10));
    let (asked_tx, asked_rx) = tokio::sync::oneshot::channel();
    let php_fpm = tokio::spawn(async move {
        let mut kept = Vec::new();
        for _ in 0..2 {
            kept.push(l.accept().await.unwrap().0);
        }
        let (mut question, _) = l.accept().await.unwrap();
        let mut got = [0u8; 4];
        question.read_exact(&mut got).await.unwrap();
        let _ = asked_tx.send(got);
        // GET_VALUES_RESULT, no pairs.
        question
            .write_all(&[1, 10, 0, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        kept
    });
    let mut served = pool.acquire().await.unwrap();
    assert_eq!(served.first_answer(), None);
    let mut slow = pool.acquire().await.unwrap();
    let freed = pool.freed();
    slow.waiting_for_worker(WORKER_PATIENCE);
    let learned = |pool: &Pool| pool.cap().learned.map(|(cap, _)| cap);
    assert_eq!(learned(&pool), Some(1), "lowered at the judgement");
    let asked = tokio::time::timeout(Duration::from_secs(10), asked_rx).await;
    let asked = asked.expect("no question reached php-fpm").unwrap();
    assert_eq!(asked, [1, 9, 0, 0], "GET_VALUES, id 0");
    for _ in 0..100 {
        if learned(&pool).is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(learned(&pool), None, "given back on the question's answer");
    assert_eq!(pool.figures().cap, 3);
    // The served one ends while the page runs: given back (the pool
    // starves for the page), which alone would have kept the cap.
    served.release();
    assert_eq!(pool.freed(), freed + 1);
    assert_eq!(slow.first_answer(), None, "no warning: nothing learnt");
    assert_eq!(pool.figures().cap, 3);
    drop(slow);
    let _kept = php_fpm.await.unwrap();
    assert!(!asking(&pool), "the question is over");
}

/// A connection closed after a failed or abandoned exchange freed its
/// worker too: counted, as given back and recycled ones are, so that a
/// question answered after it is not taken for one that found a worker
/// free. The question, never answered here, still ends.
#[tokio::test]
async fn every_close_counts_as_a_freed_worker() {
    let (pool, _keep) = pool_accepting(settings(3, 10)).await;
    let failed = pool.acquire().await.unwrap();
    drop(failed);
    assert_eq!(pool.freed(), 1);
    let mut served = pool.acquire().await.unwrap();
    assert_eq!(served.first_answer(), None);
    let mut slow = pool.acquire().await.unwrap();
    slow.waiting_for_worker(WORKER_PATIENCE);
    assert!(asking(&pool), "a question is out");
    assert_eq!(slow.first_answer(), None, "nothing given back");
    for _ in 0..100 {
        if !asking(&pool) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!asking(&pool), "the question ended");
    drop(served);
    assert_eq!(pool.freed(), 2);
}

#[test]
fn the_first_answer_wins_the_race() {
    let race = Race::default();
    assert!(race.asked_answered());
    assert!(!race.judged_answered(), "the question came first");
    assert!(!race.asked_answered());
    let race = Race::default();
    assert!(race.judged_answered());
    assert!(race.judged_answered(), "asked again: still first");
    assert!(!race.asked_answered(), "too late");
}

/// A slow script on a new connection while a kept one is served: from
/// the pool's side, a connection queued behind that worker, until its
/// answer comes later than the patience after the idle worker was given
/// back, or with no worker given back at all. Either way it had a worker
/// of its own: nothing is learnt, the cap stays.
#[tokio::test]
async fn a_slow_script_beside_kept_connections_teaches_no_cap() {
    let (pool, _keep) = pool_accepting(settings(3, 10)).await;
    tokio::time::pause();
    let fast = pool.acquire().await.unwrap();
    fast.release();
    let mut fast = pool.acquire().await.unwrap();
    assert!(fast.reused, "a kept connection holds a worker");
    let mut slow = pool.acquire().await.unwrap();
    slow.waiting_for_worker(WORKER_PATIENCE);
    // No worker given back (nothing idle, the fast one still runs):
    // the answer was the script's own.
    assert_eq!(slow.first_answer(), None);
    assert_eq!(pool.figures().cap, 3);
    slow.release();
    fast.answered();
    fast.release();
    assert_eq!(pool.figures().idle, 2);

    // A worker given back (the idle ones closed), but the answer comes
    // long after: not the freed worker's.
    let mut fast = pool.acquire().await.unwrap();
    let mut slow = pool.acquire_fresh().await.unwrap();
    slow.waiting_for_worker(WORKER_PATIENCE);
    assert_eq!(pool.figures().given_back, 1, "the idle one was closed");
    assert_eq!(pool.figures().cap, 2, "lowered while it waits");
    tokio::time::advance(WORKER_PATIENCE * 3).await;
    assert_eq!(slow.first_answer(), None);
    assert_eq!(pool.figures().cap, 3, "taken back");
    slow.release();
    // Past twice the patience with no answer: taken back too.
    let mut slower = pool.acquire_fresh().await.unwrap();
    slower.waiting_for_worker(WORKER_PATIENCE);
    assert_eq!(pool.figures().cap, 2);
    slower.wait_over();
    assert_eq!(pool.figures().cap, 3);
    drop(slower);
    fast.answered();
    drop(fast);
}

/// php-fpm with one worker: each kept connection holds the worker until
/// it closes, and the next waits in the listen queue meanwhile.
#[tokio::test]
async fn a_connection_waiting_for_a_worker_gets_one_given_back() {
    let (l, ep) = listener().await;
    let pool = Pool::new(ep, settings(2, 10));
    let mut a = pool.acquire().await.unwrap();
    let (mut worker, _) = l.accept().await.unwrap();
    let mut b = pool.acquire().await.unwrap();
    assert!(b.watch_for_worker());
    assert_eq!(a.first_answer(), None, "a is answered");
    assert!(a.watch_for_worker(), "a is new too");

    // b's request gets no answer: the pool hears of it, once. (A long
    // patience: what follows runs on the real clock.)
    let patience = Duration::from_secs(60);
    b.waiting_for_worker(patience);
    b.waiting_for_worker(patience);
    assert_eq!(pool.inner.starving.load(Ordering::Relaxed), 1);
    // a finishes: closed rather than kept, which frees the worker.
    a.release();
    assert_eq!(pool.figures().idle, 0);
    assert_eq!(pool.figures().given_back, 1);
    let mut eof = [0u8; 1];
    assert_eq!(worker.read(&mut eof).await.unwrap(), 0, "a was closed");
    let _worker_now_serves_b = l.accept().await.unwrap();
    // One connection was served while b waited: the cap is 1 from the
    // judgement on, so the next request waits in the pool's queue
    // rather than in php-fpm's listen queue.
    assert_eq!(pool.figures().cap, 1);

    // b is answered right after a worker was given back: it had waited
    // for one, and the cap stays.
    assert_eq!(b.first_answer(), Some(1), "first time: warn");
    assert_eq!(pool.figures().cap, 1);
    assert_eq!(b.first_answer(), None, "learnt once");
    b.release();
    assert_eq!(pool.figures().idle, 1);
    let c = pool.acquire().await.unwrap();
    assert!(c.reused);
    // A kept connection never waits for a worker: it has its own.
    assert!(!c.watch_for_worker());
    assert!(matches!(
        pool.acquire().await,
        Err(PoolError::QueueTimeout(_))
    ));
    drop(c);

    // The learned cap holds for a while, then the full cap is tried again.
    let now = Instant::now();
    pool.close_idle(now + LEARNED_CAP_HOLD / 2);
    assert_eq!(pool.figures().cap, 1);
    pool.close_idle(now + LEARNED_CAP_HOLD);
    assert_eq!(pool.figures().cap, 2);
}

/// A pool holding a learnt cap shares its workers: a new connection
/// with no answer after SHARED_NUDGE has the pool close its least
/// recently used idle connection, whose worker goes to php-fpm's queue.
/// One answered by then, or in a pool that learnt nothing, does not.
#[tokio::test]
async fn a_shared_pool_gives_an_idle_worker_to_its_waiting_new_connection() {
    let (l, ep) = listener().await;
    let _keep = keep_accepting(l);
    let settle = || async {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    };
    let pool = Pool::new(ep, settings(4, 10));
    let mut a = pool.acquire().await.unwrap();
    a.first_answer();
    a.release();
    // Not shared: the new connection waits; nothing is closed for it.
    let waiting = pool.acquire_fresh().await.unwrap();
    tokio::time::pause();
    settle().await;
    tokio::time::advance(SHARED_NUDGE * 2).await;
    settle().await;
    assert_eq!((pool.figures().idle, pool.figures().given_back), (1, 0));
    drop(waiting);

    pool.learn_cap(2, false, Instant::now());
    let mut waiting = pool.acquire_fresh().await.unwrap();
    settle().await; // the nudge's timer starts
    tokio::time::advance(SHARED_NUDGE + Duration::from_millis(1)).await;
    settle().await;
    assert_eq!((pool.figures().idle, pool.figures().given_back), (0, 1));
    waiting.first_answer();
    waiting.release();
    // Answered before the nudge: nothing more is closed.
    tokio::time::advance(RECYCLE_GAP).await;
    let mut answered = pool.acquire_fresh().await.unwrap();
    settle().await;
    answered.first_answer();
    tokio::time::advance(SHARED_NUDGE * 2).await;
    settle().await;
    assert_eq!((pool.figures().idle, pool.figures().given_back), (1, 1));
    drop(answered);
}

/// A pool that learnt a cap of two, then lost a worker more to another
/// balancer: its new connection waits while its other one is idle. The
/// pool is at its cap (the idle connection holds a worker, though not a
/// permit), so the cap falls by one; without that, every replacement
/// of a recycled connection would wait the patience for 30 s.
#[tokio::test]
async fn a_wait_beside_an_idle_connection_is_a_wait_at_the_cap() {
    let (pool, _keep) = pool_accepting(settings(4, 10)).await;
    let mut kept = pool.acquire().await.unwrap();
    kept.first_answer();
    pool.learn_cap(2, false, Instant::now());
    kept.release();
    let mut waiting = pool.acquire_fresh().await.unwrap();
    assert_eq!((pool.figures().in_use, pool.figures().idle), (1, 1));
    waiting.waiting_for_worker(WORKER_PATIENCE);
    assert_eq!(pool.cap().learned.map(|(cap, _)| cap), Some(1));
    drop(waiting);
}

/// A learnt cap is lowered further by one step at most, and only by a
/// connection that waited with the pool at that cap: slow pages taken
/// for waits cannot ratchet it down to one.
#[tokio::test]
async fn a_learnt_cap_falls_one_step_at_a_time_and_only_at_the_cap() {
    let (_l, ep) = listener().await;
    let pool = Pool::new(ep, settings(8, 10));
    let now = Instant::now();
    assert_eq!(
        pool.learn_cap(3, false, now).cap,
        3,
        "first: the workers seen"
    );
    assert_eq!(
        pool.learn_cap(1, false, now).cap,
        3,
        "under the cap: nothing"
    );
    assert_eq!(pool.learn_cap(1, true, now).cap, 2, "at the cap: one step");
    assert_eq!(pool.figures().cap, 2);
    pool.close_idle(now + LEARNED_CAP_HOLD);
    assert_eq!(pool.figures().cap, 8, "the hold ended");
    // More workers counted than the cap in force (connections counted
    // twice while other threads release them): one fewer than the cap,
    // since one connection waited under it.
    let now = now + LEARNED_CAP_HOLD;
    assert_eq!(pool.learn_cap(10, true, now).cap, 7);
    assert_eq!(pool.learn_cap(10, true, now).cap, 6, "at the cap: one step");
}

#[test]
fn slow_pools_are_given_more_patience() {
    assert_eq!(worker_patience(None), WORKER_PATIENCE);
    assert_eq!(
        worker_patience(Some(Duration::from_millis(5))),
        WORKER_PATIENCE
    );
    assert_eq!(
        worker_patience(Some(Duration::from_millis(250))),
        Duration::from_secs(1)
    );
    assert_eq!(
        worker_patience(Some(Duration::from_secs(10))),
        WORKER_PATIENCE_MAX
    );
}

#[tokio::test]
async fn a_waiting_connection_closes_the_idle_ones_and_its_drop_ends_the_wait() {
    let (pool, keep) = pool_accepting(settings(3, 10)).await;
    let a = pool.acquire().await.unwrap();
    let mut b = pool.acquire().await.unwrap();
    let mut c = pool.acquire().await.unwrap();
    b.answered();
    b.release();
    assert_eq!(pool.figures().idle, 1);
    // c waits: b's idle connection holds a worker, so it is closed now.
    c.waiting_for_worker(WORKER_PATIENCE);
    assert_eq!(pool.figures().idle, 0);
    // c fails and is dropped: the wait is over, connections are kept.
    drop(c);
    a.release();
    assert_eq!(pool.figures().idle, 1);
    keep.abort();
}

/// Reads from a worker's end until the pool closes its connection.
async fn closed_by_pool(worker: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), worker.read(&mut buf)).await,
        Ok(Ok(0))
    )
}

#[tokio::test]
async fn a_probe_never_keeps_a_worker() {
    let (l, ep) = listener().await;
    let pool = Pool::new(ep, settings(2, 10));
    // No idle connection: the probe opens one and closes it after use.
    let probe = pool
        .acquire_for_probe(Duration::from_secs(1))
        .await
        .unwrap();
    let (mut worker, _) = l.accept().await.unwrap();
    probe.release();
    assert_eq!(pool.figures().idle, 0);
    assert!(
        closed_by_pool(&mut worker).await,
        "the probe's connection was closed"
    );

    // An idle connection is borrowed and goes back no younger: the
    // idle timeout closes it as if the probe had not used it.
    let pool = Pool::new(pool.endpoint().clone(), short_idle(2));
    let traffic = pool.acquire().await.unwrap();
    let (_worker, _) = l.accept().await.unwrap();
    traffic.release();
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(60)).await;
    let probe = pool
        .acquire_for_probe(Duration::from_secs(1))
        .await
        .unwrap();
    assert!(probe.reused, "borrowed the idle connection");
    probe.release();
    assert_eq!(pool.figures().idle, 1);
    // 110 ms idle since the traffic, 50 ms since the probe: closed.
    let later = Instant::now() + Duration::from_millis(50);
    assert_eq!(pool.close_idle(later), 1);
}

#[tokio::test]
async fn a_connection_is_recycled_once_old() {
    let (l, ep) = listener().await;
    let pool = Pool::new(ep, settings(2, 10));
    let first = pool.acquire().await.unwrap();
    let (mut worker, _) = l.accept().await.unwrap();
    first.release();
    tokio::time::pause();
    let again = pool.acquire().await.unwrap();
    assert!(again.reused);
    tokio::time::advance(RECYCLE_AFTER).await;
    // Its exchange ends cleanly, but it is old: closed, its worker
    // goes to whoever queued for one.
    again.release();
    assert_eq!(pool.figures().idle, 0);
    assert_eq!(pool.figures().recycled, 1);
    assert!(closed_by_pool(&mut worker).await);
}

/// Connections that come of age together are recycled one per
/// RECYCLE_GAP: the others are kept meanwhile, then recycled in turn.
#[tokio::test]
async fn a_pool_recycles_one_connection_per_gap() {
    let (l, ep) = listener().await;
    let pool = Pool::new(ep, settings(3, 10));
    let a = pool.acquire().await.unwrap();
    let (mut worker_a, _) = l.accept().await.unwrap();
    let b = pool.acquire().await.unwrap();
    let (mut worker_b, _) = l.accept().await.unwrap();
    tokio::time::pause();
    tokio::time::advance(RECYCLE_AFTER).await;
    a.release();
    b.release();
    assert_eq!(pool.figures().recycled, 1);
    assert_eq!(pool.figures().idle, 1, "the second is kept for now");
    assert!(closed_by_pool(&mut worker_a).await);
    // Within the gap, the sweep keeps it too; past it, recycles it.
    let now = Instant::now();
    pool.close_idle(now + RECYCLE_GAP / 2);
    assert_eq!(pool.figures().idle, 1);
    pool.close_idle(now + RECYCLE_GAP);
    assert_eq!(pool.figures().idle, 0);
    assert_eq!(pool.figures().recycled, 2);
    assert!(closed_by_pool(&mut worker_b).await);
}

/// While a connection waits for a worker, every finishing connection is
/// closed (each freed worker may go to another balancer's connection
/// queued first); once the wait is over (answered, or past twice the
/// patience), finishing connections are kept again.
#[tokio::test]
async fn workers_are_given_back_while_one_waits_and_not_after() {
    let (pool, _keep) = pool_accepting(settings(4, 10)).await;
    let a = pool.acquire().await.unwrap();
    let b = pool.acquire().await.unwrap();
    let c = pool.acquire().await.unwrap();
    let mut waiting = pool.acquire().await.unwrap();
    waiting.waiting_for_worker(WORKER_PATIENCE);
    a.release();
    b.release();
    assert_eq!(pool.figures().given_back, 2);
    assert_eq!(pool.figures().idle, 0);
    // The wait is over (LentConn::worker_wait_over, or an answer).
    waiting.answered();
    c.release();
    assert_eq!(pool.figures().given_back, 2);
    assert_eq!(pool.figures().idle, 1, "kept again");
}

#[tokio::test]
async fn idle_connections_are_reused_most_recent_first() {
    let (l, ep) = listener().await;
    let pool = Pool::new(ep, short_idle(2));
    let a = pool.acquire().await.unwrap();
    let (mut worker_a, _) = l.accept().await.unwrap();
    let b = pool.acquire().await.unwrap();
    let (_worker_b, _) = l.accept().await.unwrap();
    a.release();
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(20)).await;
    b.release();
    // b, the most recently used, serves the next requests; a is left
    // to age out.
    for _ in 0..3 {
        tokio::time::advance(Duration::from_millis(10)).await;
        let c = pool.acquire().await.unwrap();
        assert!(c.reused);
        c.release();
    }
    // a idle for 110 ms, b for 60 ms: only a reached the idle timeout
    // (neither is RECYCLE_AFTER old, so neither counts as recycled).
    tokio::time::advance(Duration::from_millis(60)).await;
    assert_eq!(pool.close_idle(Instant::now()), 1);
    assert!(closed_by_pool(&mut worker_a).await, "a aged out");
    assert_eq!(pool.figures().idle, 1);
    assert_eq!(pool.figures().recycled, 0);
    // b, once RECYCLE_AFTER old, is closed as recycled.
    tokio::time::advance(RECYCLE_AFTER).await;
    assert_eq!(pool.close_idle(Instant::now()), 1);
    assert_eq!(pool.figures().recycled, 1);
}

#[tokio::test]
async fn connect_error_is_reported() {
    let (l, ep) = listener().await;
    drop(l);
    let pool = Pool::new(ep, settings(1, 1));
    assert!(matches!(pool.acquire().await, Err(PoolError::Connect(_))));
    // The permit came back.
    assert_eq!(pool.figures().in_use, 0);
}

/// A connect that fails for want of fpmlb's own resources is told apart
/// from a backend that refuses or is gone.
#[test]
fn a_local_shortage_is_told_from_a_backend_failure() {
    assert!(LOCAL_SHORTAGE.contains(&libc::EMFILE));
    let backends = [
        libc::ECONNREFUSED,
        libc::ECONNRESET,
        libc::ENOENT,
        libc::EAGAIN,
        libc::ETIMEDOUT,
        libc::EADDRNOTAVAIL,
    ];
    let cases = LOCAL_SHORTAGE.map(|c| (c, true));
    for (code, is_local) in cases.into_iter().chain(backends.map(|c| (c, false))) {
        let e = PoolError::connecting(std::io::Error::from_raw_os_error(code));
        assert_eq!(matches!(e, PoolError::Local(_)), is_local, "{code}: {e}");
        assert_eq!(matches!(e, PoolError::Connect(_)), !is_local, "{code}: {e}");
    }
}
