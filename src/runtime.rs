//! The threads that serve client connections: one tokio current-thread
//! runtime each, as nginx runs a connection in one worker process and
//! HAProxy in one thread.
//!
//! With tokio's multi-thread runtime, an idle thread waits in the I/O
//! driver's `epoll_wait` on behalf of the busy one: every php-fpm answer
//! then wakes that thread to hand the event over, and a connection's task
//! moves between threads (on one HTTP/2 connection of many streams, one
//! `epoll_wait` per request against 0.1 with one thread, and 30% more CPU
//! per request than one thread on static files: README, Performance). Here
//! each thread waits in its own `epoll_wait` only when it has nothing to
//! do, and a connection stays on the thread it was given.
//!
//! The daemon's own work (accept loops, health and session checks, the
//! admin API, ACME) runs on the main thread's runtime; each accepted
//! connection is handed to the thread serving the fewest
//! ([`Workers::spawn_connection`]). A socket is registered with the
//! runtime of the thread that opened it and may be used from another (its
//! readiness then comes through its own thread's driver, which wakes that
//! thread to pass it on): the connection pools therefore lend a connection
//! opened on the asking thread ([`current`]) first, and move one opened on
//! another to the asking thread's driver before lending it.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How long a stopping thread waits for its blocking tasks (file reads,
/// temp files) once its connections are done.
const BLOCKING_GRACE: Duration = Duration::from_secs(1);

/// Threads for blocking tasks (file reads, temp files), all serving threads
/// together: tokio's default for one runtime, shared out between them.
const BLOCKING_THREADS: usize = 512;

/// The least each serving thread may have, however many there are.
const BLOCKING_THREADS_MIN: usize = 8;

thread_local! {
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The serving thread this code runs on (its index), `None` elsewhere.
pub fn current() -> Option<usize> {
    WORKER.with(Cell::get)
}

/// The serving threads.
#[derive(Debug)]
pub struct Workers {
    workers: Vec<Worker>,
    /// Where the next tie goes (round robin among the least loaded).
    next: AtomicUsize,
}

#[derive(Debug)]
struct Worker {
    handle: Handle,
    /// Connections it serves now.
    open: Arc<AtomicUsize>,
    /// Stops the thread (taken by [`Workers::stop`]).
    stop: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

/// Counts a connection on its thread until dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `serve`, counted in `open` until it ends or is dropped. Not an async
/// block around `serve`: it would hold the future twice (as the block's
/// capture and as what it awaits), and an idle client's task would double
/// in size.
fn counted<F>(serve: F, open: Open) -> impl Future<Output = ()> + Send + 'static
where
    F: Future<Output = ()> + Send + 'static,
{
    serve.map(move |()| drop(open))
}

impl Workers {
    /// Starts `n` serving threads (at least one).
    pub fn start(n: usize) -> std::io::Result<Workers> {
        let n = n.max(1);
        let blocking = (BLOCKING_THREADS / n).max(BLOCKING_THREADS_MIN);
        let mut workers = Vec::with_capacity(n);
        for index in 0..n {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(blocking)
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("fpmlb-worker-{index}"))
                .spawn(move || {
                    WORKER.with(|w| w.set(Some(index)));
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                    runtime.shutdown_timeout(BLOCKING_GRACE);
                })?;
            workers.push(Worker {
                handle,
                open: Arc::new(AtomicUsize::new(0)),
                stop: Mutex::new(Some((stop, thread))),
            });
        }
        Ok(Workers {
            workers,
            next: AtomicUsize::new(0),
        })
    }

    /// Connections each thread serves now.
    pub fn open(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| w.open.load(Ordering::Relaxed))
            .collect()
    }

    /// Runs one connection's future on the thread serving the fewest
    /// (ties in turn).
    pub fn spawn_connection<F>(&self, serve: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.workers.len();
        let Some(worker) = (0..n)
            .map(|i| &self.workers[(start + i) % n])
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            return;
        };
        worker.open.fetch_add(1, Ordering::Relaxed);
        let open = Open(Arc::clone(&worker.open));
        worker.handle.spawn(counted(serve, open));
    }

    /// Stops every thread: what they still run is dropped. Blocks until
    /// they are gone (at most `BLOCKING_GRACE` for blocking tasks).
    pub fn stop(&self) {
        let mut threads = Vec::new();
        for worker in &self.workers {
            let taken = match worker.stop.lock() {
                Ok(mut guard) => guard.take(),
                Err(poisoned) => poisoned.into_inner().take(),
            };
            if let Some((stop, thread)) = taken {
                let _ = stop.send(());
                threads.push(thread);
            }
        }
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a serving thread panicked");
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's task is its future and the thread's count, no more:
    /// an idle client's memory is mostly that future.
    #[test]
    fn counting_a_connection_adds_nothing_to_its_task() {
        let big = [7u8; 4096];
        let serve = async move {
            tokio::task::yield_now().await;
            std::hint::black_box(&big);
        };
        let alone = std::mem::size_of_val(&serve);
        let open = Open(Arc::new(AtomicUsize::new(1)));
        let task = counted(serve, open);
        assert!(
            std::mem::size_of_val(&task) <= alone + 16,
            "{} bytes for a {alone}-byte future",
            std::mem::size_of_val(&task)
        );
    }

    #[test]
    fn connections_go_to_the_thread_serving_the_fewest() {
        let workers = Workers::start(2).unwrap();
        let (hold, held) = tokio::sync::watch::channel(false);
        let (ran, mut ran_on) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..3 {
            let mut held = held.clone();
            let ran = ran.clone();
            workers.spawn_connection(async move {
                let _ = ran.send(current());
                let _ = held.wait_for(|done| *done).await;
            });
        }
        let mut threads = Vec::new();
        for _ in 0..3 {
            threads.push(ran_on.blocking_recv().unwrap());
        }
        threads.sort();
        assert_eq!(threads, vec![Some(0), Some(0), Some(1)]);
        let mut open = workers.open();
        open.sort();
        assert_eq!(open, vec![1, 2]);
        // The next one goes to the thread with one.
        let ran = ran.clone();
        let mut held2 = held.clone();
        workers.spawn_connection(async move {
            let _ = ran.send(current());
            let _ = held2.wait_for(|done| *done).await;
        });
        let fourth = ran_on.blocking_recv().unwrap();
        assert_eq!(workers.open(), vec![2, 2]);
        assert!(fourth.is_some());
        hold.send(true).unwrap();
        workers.stop();
        assert_eq!(workers.open(), vec![0, 0]);
        assert_eq!(current(), None);
    }
}
