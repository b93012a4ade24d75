//! Frames put back together from their chunks (see [`wire`](super::wire)).
//!
//! A frame of several chunks announces its length in the first, so its
//! buffer is taken once, at its size; what all unfinished frames of a
//! connection announce together is bounded, so a peer cannot make a node
//! hold more than twice the largest message by starting frames it never
//! ends.
//!
//! The buffers come from a [`BufferPool`] and go back to it when the
//! message that lends them ([`Bytes`](super::Bytes) slices, see
//! [`splice`](super::splice)) is dropped. Fresh memory is what a large
//! frame costs most: the kernel zeroes every page on first touch (half of
//! the receiving scheduler's time in a stream of 10 MB messages, measured
//! with `perf`), in the scheduler's thread, while its processes wait.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::wire::{self, Malformed, Place};

/// Buffers of finished large frames, kept for the next ones.
#[derive(Debug)]
pub(crate) struct BufferPool {
    /// The most bytes of capacity kept.
    budget: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    pub(crate) fn new(budget: usize) -> Arc<BufferPool> {
        Arc::new(BufferPool {
            budget,
            free: Mutex::new(Vec::new()),
        })
    }

    /// An empty buffer with room for `len` bytes: the smallest kept one
    /// that fits, or a new one.
    fn take(&self, len: usize) -> Vec<u8> {
        let mut free = self.free.lock();
        let fits = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        match fits {
            Some(i) => free.swap_remove(i),
            None => Vec::with_capacity(len),
        }
    }

    /// Keeps `buffer` if the budget has room for it.
    fn give_back(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        let mut free = self.free.lock();
        let kept: usize = free.iter().map(Vec::capacity).sum();
        if kept + buffer.capacity() <= self.budget {
            free.push(buffer);
        }
    }

    /// Bytes of capacity kept now.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.free.lock().iter().map(Vec::capacity).sum()
    }
}

/// A finished frame's buffer, lent to the message decoded from it; it goes
/// back to its pool when the last slice of it is dropped.
struct Lent {
    buffer: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

/// Frames that came in part, by lane; all of them together are bounded.
pub(crate) struct Partial {
    max: usize,
    pool: Arc<BufferPool>,
    /// The frame so far and its announced length, by lane.
    frames: HashMap<u64, (Vec<u8>, usize)>,
    /// The lengths announced for them, together.
    announced: usize,
}

/// What a chunk completed.
pub(crate) enum Assembled {
    /// Nothing yet: more chunks of its frame follow.
    NotYet,
    /// The chunk is a whole frame.
    Single,
    /// The chunk ended a frame of several.
    Whole(bytes::Bytes),
}

impl Partial {
    pub(crate) fn new(max: usize, pool: Arc<BufferPool>) -> Partial {
        Partial {
            max,
            pool,
            frames: HashMap::new(),
            announced: 0,
        }
    }

    /// Takes in one chunk of `lane`.
    pub(crate) fn add(
        &mut self,
        lane: u64,
        place: Place,
        chunk: &[u8],
    ) -> Result<Assembled, Malformed> {
        let started = self.frames.get_mut(&lane);
        match (place, started) {
            (Place::Last, None) => Ok(Assembled::Single),
            (Place::Middle, None) => Err(Malformed("a frame's middle without its start".into())),
            (Place::First, Some(_)) => Err(Malformed(
                "a frame started before the last one on its lane ended".into(),
            )),
            (Place::First, None) => {
                let (total, start) = chunk.split_at(wire::FIRST_PREFIX);
                let total = u32::from_le_bytes(total.try_into().expect("4 bytes")) as usize;
                if total > self.max || self.announced + total > 2 * self.max {
                    return Err(Malformed(format!("a frame over {} bytes", self.max)));
                }
                if total <= start.len() {
                    return Err(Malformed("a frame of several chunks that fits one".into()));
                }
                // Its whole size at once, so nothing is copied twice.
                let mut frame = self.pool.take(total);
                frame.extend_from_slice(start);
                self.frames.insert(lane, (frame, total));
                self.announced += total;
                Ok(Assembled::NotYet)
            }
            (Place::Middle | Place::Last, Some((frame, total))) => {
                let now = frame.len() + chunk.len();
                if now > *total || (place == Place::Last && now != *total) {
                    return Err(Malformed(format!(
                        "a frame of {now} bytes or more announced as {total}"
                    )));
                }
                frame.extend_from_slice(chunk);
                if place == Place::Middle {
                    return Ok(Assembled::NotYet);
                }
                let (frame, total) = self.frames.remove(&lane).expect("it was there");
                self.announced -= total;
                let pool = self.pool.clone();
                Ok(Assembled::Whole(bytes::Bytes::from_owner(Lent {
                    buffer: frame,
                    pool,
                })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::wire::{CHUNK, FIRST_PREFIX};

    /// `total` bytes of `fill` as the chunks of one frame.
    fn chunks(total: usize, fill: u8) -> Vec<(Place, Vec<u8>)> {
        let mut out = vec![(Place::First, (total as u32).to_le_bytes().to_vec())];
        out[0].1.resize(CHUNK, fill);
        let mut left = total - (CHUNK - FIRST_PREFIX);
        while left > 0 {
            let len = left.min(CHUNK);
            left -= len;
            let place = if left == 0 {
                Place::Last
            } else {
                Place::Middle
            };
            out.push((place, vec![fill; len]));
        }
        out
    }

    fn assemble(partial: &mut Partial, lane: u64, total: usize, fill: u8) -> bytes::Bytes {
        for (place, chunk) in chunks(total, fill) {
            match partial.add(lane, place, &chunk).unwrap() {
                Assembled::Whole(frame) => return frame,
                Assembled::NotYet => {}
                Assembled::Single => panic!("a frame of several chunks"),
            }
        }
        panic!("never finished")
    }

    #[test]
    fn a_large_frames_buffer_serves_the_next_once_its_message_is_dropped() {
        let pool = BufferPool::new(1 << 20);
        let mut partial = Partial::new(1 << 20, pool.clone());
        let first = assemble(&mut partial, 1, 300_000, 1);
        assert!(first.iter().all(|&b| b == 1) && first.len() == 300_000);
        let at = first.as_ptr();
        // Still lent: the next frame gets a buffer of its own.
        let second = assemble(&mut partial, 1, 300_000, 2);
        assert_ne!(second.as_ptr(), at);
        assert!(
            first.iter().all(|&b| b == 1),
            "a lent buffer is never reused"
        );
        drop(first);
        assert!(pool.kept() >= 300_000);
        let third = assemble(&mut partial, 3, 200_000, 3);
        assert_eq!(third.as_ptr(), at, "the first buffer, reused");
        assert!(third.iter().all(|&b| b == 3) && third.len() == 200_000);
        drop((second, third));
        // Beyond its budget the pool keeps nothing more.
        let big = assemble(&mut partial, 5, 900_000, 4);
        drop(big);
        assert!(pool.kept() <= 1 << 20);
    }
}
