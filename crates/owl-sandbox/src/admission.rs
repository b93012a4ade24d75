//! Admission control: at most so many sandboxed processes at once. A spawn
//! never waits for room; beyond the cap it is refused. One atomic counter,
//! because every sandboxed call takes a slot and gives it back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The slots of one sandbox.
pub(crate) struct Admission {
    taken: AtomicUsize,
    max: usize,
    /// A slot was taken since the epoch ticker last asked: short calls come
    /// and go between two ticks, and the ticker must not take a steady
    /// stream of them for idleness.
    recent: AtomicBool,
}

/// A taken slot, given back when dropped.
pub(crate) struct Slot(Arc<Admission>);

impl Admission {
    pub(crate) fn new(max: usize) -> Arc<Admission> {
        Arc::new(Admission {
            taken: AtomicUsize::new(0),
            max,
            recent: AtomicBool::new(false),
        })
    }

    /// A slot, or `None` when all are taken.
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<Slot> {
        self.taken
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |taken| {
                (taken < self.max).then_some(taken + 1)
            })
            .ok()
            .map(|_| {
                self.recent.store(true, Ordering::Relaxed);
                Slot(self.clone())
            })
    }

    /// Whether a slot was taken since the last time this was asked.
    pub(crate) fn started_since_asked(&self) -> bool {
        self.recent.swap(false, Ordering::Relaxed)
    }

    /// Slots taken now.
    pub(crate) fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_slots_than_the_cap_and_a_dropped_one_is_free_again() {
        let admission = Admission::new(2);
        let a = admission.try_take().unwrap();
        let _b = admission.try_take().unwrap();
        assert!(admission.try_take().is_none());
        assert_eq!(admission.taken(), 2);
        drop(a);
        assert_eq!(admission.taken(), 1);
        assert!(admission.try_take().is_some());
    }

    #[test]
    fn a_slot_taken_and_given_back_between_two_looks_is_seen_once() {
        let admission = Admission::new(2);
        assert!(!admission.started_since_asked());
        drop(admission.try_take().unwrap());
        assert!(admission.started_since_asked());
        assert!(!admission.started_since_asked());
    }
}
