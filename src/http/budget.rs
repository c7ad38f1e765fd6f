//! A budget of bytes shared by many requests: what request bodies hold in
//! memory, what responses read ahead of their clients hold in memory and in
//! temp files. A request takes its share a piece at a time and holds it
//! until it drops it; when the budget is spent, the taker falls back to
//! something slower that costs no more of it (a temp file, or waiting for
//! the client), so many clients together cannot grow fpmlb without bound.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes that many requests share; cloning shares the same budget.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
    /// The budget's size, for [`ByteBudget::held`].
    total: usize,
}

impl ByteBudget {
    /// A budget of `bytes` (at most tokio's semaphore maximum, about 2^61).
    pub fn new(bytes: usize) -> ByteBudget {
        let total = bytes.min(Semaphore::MAX_PERMITS);
        ByteBudget {
            permits: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Bytes of the budget not taken.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// The budget's size.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes of the budget taken now (what the admin API shows).
    pub fn held(&self) -> usize {
        self.total.saturating_sub(self.available())
    }

    /// Takes `n` more bytes of the budget into `held`, if there are that
    /// many; `held` gives them all back when it is dropped.
    pub fn take(&self, n: usize, held: &mut Option<OwnedSemaphorePermit>) -> bool {
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        match Arc::clone(&self.permits).try_acquire_many_owned(n) {
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
