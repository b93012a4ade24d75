//! A process's mailbox: one word in the process cell until the first
//! message arrives.
//!
//! A `VecDeque` inline would take four words of every cell, and most of a
//! million background jobs never get a message: boxed, the queue costs an
//! idle process one pointer, and the cell fits a smaller size class of the
//! allocator (32 MB at a million processes). The box stays once made, so a
//! process that does receive pays for it once, not per message.

use std::collections::VecDeque;

/// The box is the point (one word instead of four in every cell), which
/// clippy's rule against boxed collections does not know.
#[expect(clippy::box_collection)]
pub(crate) struct Mailbox<M>(Option<Box<VecDeque<M>>>);

// Generic over the message type only to keep this module free of the
// message module (which depends on the process cell that holds a mailbox).
impl<M> Default for Mailbox<M> {
    fn default() -> Self {
        Mailbox(None)
    }
}

impl<M> Mailbox<M> {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    #[inline]
    pub(crate) fn push_back(&mut self, message: M) {
        match &mut self.0 {
            Some(queue) => queue.push_back(message),
            None => self.first(message),
        }
    }

    /// The first message ever: makes the queue (kept out of the inlined
    /// path, which every send takes).
    #[cold]
    #[inline(never)]
    fn first(&mut self, message: M) {
        self.0.get_or_insert_default().push_back(message);
    }

    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<M> {
        self.0.as_mut()?.pop_front()
    }

    /// Takes out the message at `at` (a position [`iter`](Self::iter) gave).
    #[inline]
    pub(crate) fn remove(&mut self, at: usize) -> Option<M> {
        self.0.as_mut()?.remove(at)
    }

    /// Where the oldest message `pred` accepts lies.
    #[inline]
    pub(crate) fn position(&self, pred: impl FnMut(&M) -> bool) -> Option<usize> {
        self.0.as_ref()?.iter().position(pred)
    }

    /// The messages, oldest first.
    #[inline]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &M> {
        self.0.iter().flat_map(|q| q.iter())
    }

    /// Bytes the queue itself takes on the heap (not what its messages hold).
    #[inline]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |q| {
            std::mem::size_of::<VecDeque<M>>() + q.capacity() * std::mem::size_of::<M>()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_takes_from_the_middle() {
        let mut mailbox = Mailbox::default();
        assert_eq!((mailbox.len(), mailbox.heap_bytes()), (0, 0));
        assert!(mailbox.pop_front().is_none());
        for n in 0..4u32 {
            mailbox.push_back(n);
        }
        assert_eq!(mailbox.position(|&n| n == 2), Some(2));
        assert_eq!(mailbox.remove(2), Some(2));
        assert_eq!(mailbox.iter().copied().collect::<Vec<_>>(), [0, 1, 3]);
        let rest: Vec<u32> = std::iter::from_fn(|| mailbox.pop_front()).collect();
        assert_eq!(rest, [0, 1, 3]);
        assert!(mailbox.heap_bytes() > 0, "the queue stays once made");
    }

    #[test]
    fn is_one_word() {
        assert_eq!(std::mem::size_of::<Mailbox<u32>>(), 8);
    }
}
