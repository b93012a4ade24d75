//! Admission control: at most so many sandboxed processes at once. A spawn
//! never waits for room; beyond the cap it is refused. One atomic word,
//! because every sandboxed call takes a slot and gives it back.
//!
//! The epoch ticker also looks at that word, once per tick, to tell whether
//! calls run or came and went since its last look. It only *reads* it: a
//! line the ticker wrote would have to come back from the ticker's core at
//! the next call's first write, a cross-core transfer on every call of a
//! steady stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One taken slot, in the low half of the word.
const ONE_TAKEN: u64 = 1;
/// One more slot taken since start, in the high half (wrapping).
const ONE_ADMITTED: u64 = 1 << 32;

/// The slots of one sandbox.
pub(crate) struct Admission {
    /// Slots taken now (low 32 bits) and slots ever taken (high 32 bits,
    /// wrapping): one word, so taking a slot is one atomic operation, and
    /// the ticker sees calls that came and went between two looks by the
    /// count having moved.
    word: AtomicU64,
    max: usize,
}

/// What the ticker saw of the slots at a look (see
/// [`Admission::look`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Seen(u32);

/// A slot, given back when dropped.
pub(crate) struct Slot<'a>(&'a Admission);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

impl Admission {
    pub(crate) fn new(max: usize) -> Arc<Admission> {
        // The low half counts taken slots: the cap must fit in it.
        let max = max.min(u32::MAX as usize);
        Arc::new(Admission {
            word: AtomicU64::new(0),
            max,
        })
    }

    /// Takes a slot; false when all are taken. Whoever took one gives it
    /// back with [`give_back`](Self::give_back) (the sandboxed process's
    /// guard does, when its future is dropped: no handle per slot, which
    /// would cost a reference count each way).
    pub(crate) fn try_take(&self) -> bool {
        self.word
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |word| {
                (taken(word) < self.max).then(|| word.wrapping_add(ONE_TAKEN + ONE_ADMITTED))
            })
            .is_ok()
    }

    /// Gives back a slot taken with [`try_take`](Self::try_take).
    pub(crate) fn give_back(&self) {
        self.word.fetch_sub(ONE_TAKEN, Ordering::Release);
    }

    /// A slot held for as long as the guard lives, or `None` when all are
    /// taken (for work that holds one across awaits and may be cancelled).
    pub(crate) fn hold(&self) -> Option<Slot<'_>> {
        self.try_take().then_some(Slot(self))
    }

    /// The ticker's look, a plain read: whether a slot was taken since the
    /// look that left `seen` (which it updates), and how many are taken now.
    pub(crate) fn look(&self, seen: &mut Seen) -> (bool, usize) {
        let word = self.word.load(Ordering::Relaxed);
        let admitted = Seen((word >> 32) as u32);
        let started = admitted != *seen;
        *seen = admitted;
        (started, taken(word))
    }

    /// Slots taken now.
    pub(crate) fn taken(&self) -> usize {
        taken(self.word.load(Ordering::Relaxed))
    }
}

/// The taken slots in an admission word.
fn taken(word: u64) -> usize {
    (word & u32::MAX as u64) as usize
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
        let mut seen = Seen::default();
        assert_eq!(admission.look(&mut seen), (false, 0));
        assert!(admission.try_take());
        admission.give_back();
        assert_eq!(admission.look(&mut seen), (true, 0));
        assert_eq!(admission.look(&mut seen), (false, 0));
        assert!(admission.try_take());
        assert_eq!(
            admission.look(&mut seen),
            (true, 1),
            "one taken and still held"
        );
        assert_eq!(admission.look(&mut seen), (false, 1));
    }

    /// The count of slots ever taken may wrap; the taken slots beside it
    /// are unaffected, and a look still sees the count move.
    #[test]
    fn the_count_of_slots_ever_taken_wraps_without_touching_the_taken_ones() {
        let admission = Admission::new(2);
        admission
            .word
            .store(u64::from(u32::MAX) << 32, Ordering::Relaxed);
        let mut seen = Seen::default();
        admission.look(&mut seen);
        assert!(admission.try_take());
        assert_eq!(admission.taken(), 1);
        assert_eq!(admission.look(&mut seen), (true, 1));
        admission.give_back();
        assert_eq!(admission.taken(), 0);
    }
}
