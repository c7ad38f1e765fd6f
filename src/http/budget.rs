//! A budget of bytes shared by many requests: what request bodies hold in
//! memory, what responses read ahead of their clients hold in memory and in
//! temp files. A request takes its share a piece at a time and holds it
//! until it drops it; when the budget is spent, the taker falls back to
//! something slower that costs no more of it (a temp file, or waiting for
//! the client), so many clients together cannot grow fpmlb without bound.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes that many requests share; cloning shares the same budget.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    permits: Arc<Semaphore>,
    /// The budget's size, for [`ByteBudget::held`].
    total: AtomicUsize,
    /// Bytes a shrinking ([`ByteBudget::resize`]) took off the total that
    /// were held then: forgotten as they come back, before the next take.
    /// Changed under its lock only, so that no take slips in between.
    debt: Mutex<usize>,
    /// `debt` is not zero: takes go through its lock.
    in_debt: AtomicBool,
}

impl ByteBudget {
    /// A budget of a configured size (`u64`), past the address space
    /// taken as all of it (it is capped to the semaphore's maximum anyway).
    pub fn of_size(bytes: u64) -> ByteBudget {
        ByteBudget::new(usize::try_from(bytes).unwrap_or(usize::MAX))
    }

    /// A budget of `bytes` (at most tokio's semaphore maximum, about 2^61).
    pub fn new(bytes: usize) -> ByteBudget {
        let total = bytes.min(Semaphore::MAX_PERMITS);
        ByteBudget {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(total)),
                total: AtomicUsize::new(total),
                debt: Mutex::new(0),
                in_debt: AtomicBool::new(false),
            }),
        }
    }

    fn debt(&self) -> MutexGuard<'_, usize> {
        self.inner
            .debt
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes of the budget not taken.
    pub fn available(&self) -> usize {
        let debt = self.debt();
        self.inner.permits.available_permits().saturating_sub(*debt)
    }

    /// The budget's size.
    pub fn total(&self) -> usize {
        self.inner.total.load(Ordering::Relaxed)
    }

    /// Bytes of the budget taken now (what the admin API shows): more than
    /// the total after a reload lowered it below what was held.
    pub fn held(&self) -> usize {
        let debt = self.debt();
        (self.total() + *debt).saturating_sub(self.inner.permits.available_permits())
    }

    /// Makes the budget `bytes` (a reload changed a setting), keeping what
    /// is held: a larger one is free to take at once; a smaller one takes
    /// no more until what is held fits under it, so the shares held and
    /// those taken by takes begun after it never add up to more than the
    /// new size.
    pub fn resize(&self, bytes: usize) {
        let inner = &self.inner;
        let bytes = bytes.min(Semaphore::MAX_PERMITS);
        let mut debt = self.debt();
        let old = inner.total.swap(bytes, Ordering::Relaxed);
        if bytes > old {
            // Growing pays what a shrinking still owes first.
            let more = bytes - old;
            let paid = more.min(*debt);
            *debt -= paid;
            inner.permits.add_permits(more - paid);
        } else {
            let less = old - bytes;
            *debt += less - inner.permits.forget_permits(less);
        }
        inner.in_debt.store(*debt > 0, Ordering::Release);
    }

    /// Takes `n` more bytes of the budget into `held`, if there are that
    /// many; `held` gives them all back when it is dropped.
    pub fn take(&self, n: usize, held: &mut Option<OwnedSemaphorePermit>) -> bool {
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        // After a shrinking: what came back pays the debt first; while any
        // is owed, nothing is taken.
        if self.inner.in_debt.load(Ordering::Acquire) {
            let mut debt = self.debt();
            *debt -= self.inner.permits.forget_permits(*debt);
            if *debt > 0 {
                return false;
            }
            self.inner.in_debt.store(false, Ordering::Release);
        }
        match Arc::clone(&self.inner.permits).try_acquire_many_owned(n) {
            Ok(permit) => {
                match held {
                    Some(h) => h.merge(permit),
                    None => *held = Some(permit),
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// Gives `n` bytes of `held` back to their budget at once (bytes taken
/// for something that did not happen); nothing when `held` has fewer.
pub fn give_back(n: usize, held: &mut Option<OwnedSemaphorePermit>) {
    if let Some(h) = held.as_mut() {
        drop(h.split(n));
    }
}

/// Bytes with the share of a budget they hold: the share goes back when
/// the last clone of the bytes is dropped (after hyper wrote them).
pub fn holding(bytes: Bytes, share: Option<OwnedSemaphorePermit>) -> Bytes {
    match share {
        None => bytes,
        Some(share) => Bytes::from_owner(Held {
            bytes,
            _share: share,
        }),
    }
}

struct Held {
    bytes: Bytes,
    _share: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_taken_until_spent_and_given_back_when_dropped() {
        let budget = ByteBudget::new(10);
        let mut held = None;
        assert!(budget.take(6, &mut held));
        assert!(budget.take(4, &mut held));
        assert!(!budget.take(1, &mut held));
        assert_eq!(budget.available(), 0);
        assert_eq!((budget.held(), budget.total()), (10, 10));
        give_back(4, &mut held);
        assert_eq!(budget.available(), 4);
        give_back(7, &mut held);
        assert_eq!(budget.available(), 4, "more than held: nothing");
        drop(held);
        assert_eq!(budget.held(), 0);
        assert_eq!(budget.available(), 10);
        assert!(!budget.take(usize::MAX, &mut None));
    }

    /// A reload that shrinks the budget below what is held takes nothing
    /// more until the held shares fit under the new size; one that grows
    /// it gives the difference at once, paying what a shrinking owes first.
    #[test]
    fn a_resized_budget_keeps_what_is_held_within_its_new_size() {
        let budget = ByteBudget::new(10);
        let mut first = None;
        assert!(budget.take(8, &mut first));
        budget.resize(5);
        assert_eq!(
            (budget.total(), budget.held(), budget.available()),
            (5, 8, 0)
        );
        assert!(!budget.take(1, &mut None), "8 held of 5");
        drop(first);
        assert_eq!(budget.available(), 5);
        let mut second = None;
        assert!(budget.take(5, &mut second));
        assert!(!budget.take(1, &mut None));
        drop(second);

        let mut third = None;
        assert!(budget.take(4, &mut third));
        budget.resize(2);
        budget.resize(7);
        assert_eq!((budget.total(), budget.available()), (7, 3));
        assert!(budget.take(3, &mut None));
        let mut fourth = None;
        assert!(budget.take(3, &mut fourth));
        assert!(!budget.take(1, &mut None));
        drop((third, fourth));
        assert_eq!((budget.held(), budget.available()), (0, 7));
    }

    #[test]
    fn bytes_hold_their_share_until_the_last_clone_goes() {
        let budget = ByteBudget::new(8);
        let mut share = None;
        assert!(budget.take(5, &mut share));
        let bytes = holding(Bytes::from_static(b"hello"), share);
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(budget.available(), 3);
        assert_eq!(&clone[..], b"hello");
        drop(clone);
        assert_eq!(budget.available(), 8);
    }
}
