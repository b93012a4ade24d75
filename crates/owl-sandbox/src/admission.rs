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

/// A slot, given back when dropped.
pub(crate) struct Slot<'a>(&'a Admission);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

impl Admission {
    pub(crate) fn new(max: usize) -> Arc<Admission> {
        Arc::new(Admission {
            taken: AtomicUsize::new(0),
            max,
            recent: AtomicBool::new(false),
        })
    }

    /// Takes a slot; false when all are taken. Whoever took one gives it
    /// back with [`give_back`](Self::give_back) (the sandboxed process's
    /// guard does, when its future is dropped: no handle per slot, which
    /// would cost a reference count each way).
    pub(crate) fn try_take(&self) -> bool {
        let taken = self
            .taken
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |taken| {
                (taken < self.max).then_some(taken + 1)
            })
            .is_ok();
        if taken {
            self.recent.store(true, Ordering::Relaxed);
        }
        taken
    }

    /// Gives back a slot taken with [`try_take`](Self::try_take).
    pub(crate) fn give_back(&self) {
        self.taken.fetch_sub(1, Ordering::Release);
    }

    /// A slot held for as long as the guard lives, or `None` when all are
    /// taken (for work that holds one across awaits and may be cancelled).
    pub(crate) fn hold(&self) -> Option<Slot<'_>> {
        self.try_take().then_some(Slot(self))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_slots_than_the_cap_and_one_given_back_is_free_again() {
        let admission = Admission::new(2);
        assert!(admission.try_take());
        assert!(admission.try_take());
        assert!(!admission.try_take());
        assert_eq!(admission.taken(), 2);
        admission.give_back();
        assert_eq!(admission.taken(), 1);
        assert!(admission.try_take());
    }

    #[test]
    fn a_slot_taken_and_given_back_between_two_looks_is_seen_once() {
        let admission = Admission::new(2);
        assert!(!admission.started_since_asked());
        assert!(admission.try_take());
        admission.give_back();
        assert!(admission.started_since_asked());
        assert!(!admission.started_since_asked());
    }
}
