//! A pool's connection slots: a count of permits (the pool's cap, see
//! `pool`) and the requests waiting for one.
//!
//! Waiting is first come first served, with one exception: a permit freed
//! on a serving thread goes to the oldest request waiting on that same
//! thread when it came at most [`LOCAL_SLACK`] after the oldest request
//! waiting anywhere. The connection that freed it then stays on its
//! thread: a request served on another thread has to wake that thread
//! (an `eventfd` write and a wake-up) and move the connection to its I/O
//! driver (two `epoll_ctl`; `crate::runtime`). With plain first come first
//! served, about half of the hand-overs of a loaded pool crossed threads:
//! `strace -c` of hello.php at 256 connections counted 0.59 `epoll_ctl`,
//! 0.44 `write` and 0.59 `epoll_wait` per request with two threads, none,
//! none and 0.1 with one, which used a fifth less CPU per request. The
//! slack bounds what the exception costs a waiting request: no request is
//! overtaken by one that came more than [`LOCAL_SLACK`] after it.
//!
//! Each thread's waiters are a queue of their own, so choosing is a look at
//! each queue's head. A waiter that gave up (timed out, or served by
//! another pool of the cluster-wide queue) leaves its entry behind, which
//! goes when it reaches its queue's head, or when the queue has doubled
//! since it was last swept: the queues stay within twice the live waiters.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;

/// How much later than the oldest waiter a waiter on the thread that frees
/// a permit may have come and still go first (see the module comment).
/// Well under a loaded pool's queue wait (17 ms for hello.php at 256
/// connections over 12 workers), and under the p99 of any page.
pub const LOCAL_SLACK: Duration = Duration::from_millis(2);

/// The fewest entries a queue holds before it is swept of waiters that
/// gave up.
const SWEEP_MIN: usize = 64;

/// A pool's permits and its waiters.
#[derive(Debug)]
pub struct Slots {
    permits: Arc<Semaphore>,
    queues: Mutex<Queues>,
}

#[derive(Debug, Default)]
struct Queues {
    /// Waiters by the serving thread they wait on: index 0 for none (the
    /// daemon's own thread, tests), thread `i` at `i + 1`.
    by_thread: Vec<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    waiters: VecDeque<Waiter>,
    /// The length at which it is next swept of waiters that gave up.
    sweep_at: usize,
}

#[derive(Debug)]
struct Waiter {
    since: Instant,
    tx: oneshot::Sender<Permit>,
}

/// One permit of a pool's slots. Dropped, it goes to the next waiter (see
/// the module comment), or back to the count.
#[derive(Debug)]
pub struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    slots: Arc<Slots>,
}

impl Permit {
    /// Takes the permit out of the count for good (the cap was lowered).
    pub fn forget(mut self) {
        if let Some(permit) = self.permit.take() {
            permit.forget();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            drop(permit);
            self.slots.hand_on();
        }
    }
}

/// The slots were dropped while a request waited (not in practice: the
/// pool holds them as long as anyone waits).
#[derive(Debug)]
pub struct Closed;

impl Slots {
    pub fn new(permits: usize) -> Arc<Slots> {
        Arc::new(Slots {
            permits: Arc::new(Semaphore::new(permits)),
            queues: Mutex::new(Queues::default()),
        })
    }

    fn queues(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn permit(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Permit {
        Permit {
            permit: Some(permit),
            slots: Arc::clone(self),
        }
    }

    /// A permit, if one is free now.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok()?;
        Some(self.permit(permit))
    }

    /// Waits for a permit (see the module comment for the order).
    /// Cancel-safe: a permit handed to a waiter that has gone goes on to
    /// the next.
    pub async fn acquire(self: &Arc<Self>) -> Result<Permit, Closed> {
        let rx = {
            let mut queues = self.queues();
            // Under the lock that `hand_on` takes after a permit is freed:
            // either the permit is seen here, or this waiter is seen there.
            if let Some(permit) = self.try_acquire() {
                return Ok(permit);
            }
            let (tx, rx) = oneshot::channel();
            queues.push(
                thread_index(crate::runtime::current()),
                Waiter {
                    since: Instant::now(),
                    tx,
                },
            );
            rx
        };
        rx.await.map_err(|_| Closed)
    }

    /// Returns `n` permits to the count (the cap was raised), handing them
    /// to waiters first.
    pub fn add_permits(self: &Arc<Self>, n: usize) {
        self.permits.add_permits(n);
        self.hand_on();
    }

    /// Takes up to `n` free permits out of the count; how many.
    pub fn forget_permits(&self, n: usize) -> usize {
        self.permits.forget_permits(n)
    }

    pub fn available_permits(&self) -> usize {
        self.permits.available_permits()
    }

    /// Hands free permits to waiters, chosen as the module comment says,
    /// while both last.
    fn hand_on(self: &Arc<Self>) {
        let here = thread_index(crate::runtime::current());
        let mut queues = self.queues();
        while let Some(at) = queues.choose(here, LOCAL_SLACK) {
            let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                return;
            };
            let Some(waiter) = queues.by_thread[at].waiters.pop_front() else {
                return;
            };
            if let Err(mut unsent) = waiter.tx.send(self.permit(permit)) {
                // It gave up just now: back to the count, without going
                // through `Permit::drop` (which would take this lock).
                drop(unsent.permit.take());
            }
        }
    }
}

impl Queues {
    fn push(&mut self, thread: usize, waiter: Waiter) {
        if self.by_thread.len() <= thread {
            self.by_thread.resize_with(thread + 1, Queue::default);
        }
        let queue = &mut self.by_thread[thread];
        if queue.waiters.len() >= queue.sweep_at.max(SWEEP_MIN) {
            queue.waiters.retain(|w| !w.tx.is_closed());
            queue.sweep_at = queue.waiters.len() * 2;
        }
        queue.waiters.push_back(waiter);
    }

    /// The queue whose head gets the next permit freed on thread `here`:
    /// `here`'s, when its head came at most `slack` after the oldest
    /// waiter's; else the oldest waiter's. Heads that gave up are dropped
    /// on the way. `None`: nobody waits.
    fn choose(&mut self, here: usize, slack: Duration) -> Option<usize> {
        let mut oldest: Option<(usize, Instant)> = None;
        for (at, queue) in self.by_thread.iter_mut().enumerate() {
            while queue.waiters.front().is_some_and(|w| w.tx.is_closed()) {
                queue.waiters.pop_front();
            }
            if let Some(head) = queue.waiters.front()
                && oldest.is_none_or(|(_, since)| head.since < since)
            {
                oldest = Some((at, head.since));
            }
        }
        let (first, since) = oldest?;
        let local = self
            .by_thread
            .get(here)
            .and_then(|q| q.waiters.front())
            .is_some_and(|head| head.since <= since + slack);
        Some(if local { here } else { first })
    }
}

/// A waiter's queue: 0 off the serving threads, thread `i` at `i + 1`.
fn thread_index(thread: Option<usize>) -> usize {
    thread.map_or(0, |i| i.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    /// Waits for a task, failing the test rather than hanging.
    async fn done<T>(task: tokio::task::JoinHandle<T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("served within 5 s")
            .unwrap()
    }

    /// A queue entry that came at `since`, with the receiver that keeps it
    /// waiting.
    fn waiter(since: Instant) -> (Waiter, oneshot::Receiver<Permit>) {
        let (tx, rx) = oneshot::channel();
        (Waiter { since, tx }, rx)
    }

    #[tokio::test]
    async fn the_freeing_thread_goes_first_only_within_the_slack() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = Queues::default();
        let (w, _keep_remote) = waiter(t0);
        q.push(1, w);
        let (w, rx_local) = waiter(t0 + ms(2));
        q.push(2, w);
        assert_eq!(q.choose(2, ms(2)), Some(2), "came within the slack");
        assert_eq!(q.choose(2, ms(1)), Some(1), "came after the slack");
        assert_eq!(q.choose(1, ms(0)), Some(1), "the oldest is local");
        assert_eq!(q.choose(0, ms(2)), Some(1), "nobody waits here");
        // A head that gave up is dropped on the way.
        drop(rx_local);
        assert_eq!(q.choose(2, ms(10)), Some(1));
        assert!(q.by_thread[2].waiters.is_empty());
        q.by_thread[1].waiters.clear();
        assert_eq!(q.choose(1, ms(10)), None);
    }

    #[tokio::test]
    async fn waiters_are_served_in_order_and_one_that_gave_up_is_passed_over() {
        let slots = Slots::new(1);
        let held = slots.try_acquire().unwrap();
        assert!(slots.try_acquire().is_none());
        let first = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.acquire().await.map(|_| 1) }
        });
        tokio::task::yield_now().await;
        // The second gives up before a permit is free.
        let gave_up = {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move { slots.acquire().await.map(|_| 2) })
        };
        tokio::task::yield_now().await;
        gave_up.abort();
        let third = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.acquire().await.map(|p| (3, p)) }
        });
        tokio::task::yield_now().await;
        drop(held);
        assert_eq!(done(first).await.unwrap(), 1);
        // The first's permit, dropped at its end, went past the one that
        // gave up to the third.
        let (n, permit) = done(third).await.unwrap();
        assert_eq!(n, 3);
        assert_eq!(slots.available_permits(), 0);
        drop(permit);
        assert_eq!(slots.available_permits(), 1, "back to the count");
    }

    #[tokio::test]
    async fn permits_added_and_forgotten() {
        let slots = Slots::new(1);
        assert_eq!(slots.forget_permits(1), 1);
        let waiting = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.acquire().await.map(Permit::forget) }
        });
        tokio::task::yield_now().await;
        slots.add_permits(1);
        done(waiting).await.unwrap();
        assert_eq!(slots.available_permits(), 0, "forgotten, not returned");
    }

    #[tokio::test]
    async fn entries_of_waiters_that_gave_up_are_swept() {
        let slots = Slots::new(0);
        for _ in 0..1000 {
            // Polled once (it queues), then dropped.
            assert!(slots.acquire().now_or_never().is_none());
        }
        let len = slots.queues().by_thread[0].waiters.len();
        assert!(len <= 2 * SWEEP_MIN, "{len} entries kept for 1000 gone");
    }
}
