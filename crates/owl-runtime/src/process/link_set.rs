//! A process's links beyond its first, by pid number (plain `u64`s: this
//! module knows nothing of pids, so it joins no module cycle).
//!
//! Nearly every process has one link (its supervisor's, kept inline in the
//! cell) or a handful: a plain vector. A dynamic supervisor links to every
//! child, a million of them at the talk's size, and its children's pid
//! numbers come in runs (a batch is spawned in order; restarts take new
//! numbers later on). So a large set is a bitmap in 64-number words, kept in
//! a map by word: a run of a million numbers takes 16,000 words (~0.4 MB
//! with the map's slack) where a hash set of numbers took 18 MB. The worst
//! case, numbers 64 or more apart, costs 16 bytes a link instead of 8 —
//! what a supervisor whose children have all restarted once, spread among
//! many other spawns, would have.

use crate::shards::PartedMap;

/// Links beyond this move the set from a vector to a bitmap.
const FEW: usize = 16;
/// Numbers per bitmap word.
const WORD_BITS: u64 = 64;

#[derive(Debug)]
pub(crate) enum LinkSet {
    Few(Vec<u64>),
    /// Word `n` holds numbers `64·n` to `64·n + 63`; a word that empties
    /// is removed.
    Many {
        words: PartedMap<u64, u64>,
        len: usize,
    },
}

impl Default for LinkSet {
    fn default() -> Self {
        LinkSet::Few(Vec::new())
    }
}

/// The word of `id` and its bit in it.
fn place(id: u64) -> (u64, u64) {
    (id / WORD_BITS, 1 << (id % WORD_BITS))
}

impl LinkSet {
    pub(crate) fn len(&self) -> usize {
        match self {
            LinkSet::Few(v) => v.len(),
            LinkSet::Many { len, .. } => *len,
        }
    }

    /// Adds `id` unless present; whether it was added.
    pub(crate) fn insert(&mut self, id: u64) -> bool {
        match self {
            LinkSet::Few(v) if v.contains(&id) => false,
            LinkSet::Few(v) if v.len() < FEW => {
                v.push(id);
                true
            }
            LinkSet::Few(v) => {
                let mut many = LinkSet::Many {
                    words: PartedMap::default(),
                    len: 0,
                };
                for old in v.drain(..).chain([id]) {
                    many.insert(old);
                }
                *self = many;
                true
            }
            LinkSet::Many { words, len } => {
                let (word, bit) = place(id);
                let old = words.get(&word).copied().unwrap_or(0);
                if old & bit != 0 {
                    return false;
                }
                words.insert(word, old | bit);
                *len += 1;
                true
            }
        }
    }

    /// Removes `id`; whether it was there.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        match self {
            LinkSet::Few(v) => match v.iter().position(|&k| k == id) {
                Some(at) => {
                    v.swap_remove(at);
                    true
                }
                None => false,
            },
            LinkSet::Many { words, len } => {
                let (word, bit) = place(id);
                let Some(&old) = words.get(&word) else {
                    return false;
                };
                if old & bit == 0 {
                    return false;
                }
                match old & !bit {
                    0 => words.remove(&word),
                    rest => words.insert(word, rest),
                };
                *len -= 1;
                true
            }
        }
    }

    /// Every linked number, in no particular order.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = u64> + '_> {
        match self {
            LinkSet::Few(v) => Box::new(v.iter().copied()),
            LinkSet::Many { words, .. } => Box::new(words.iter().flat_map(|(&word, &bits)| {
                // Set bits only, lowest first.
                let mut rest = bits;
                std::iter::from_fn(move || {
                    let bit = rest.trailing_zeros();
                    (bit < 64).then(|| {
                        rest &= rest - 1;
                        word * WORD_BITS + u64::from(bit)
                    })
                })
            })),
        }
    }

    /// Bytes on the heap, for the memory estimate.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            LinkSet::Few(v) => v.capacity() * std::mem::size_of::<u64>(),
            // Buckets of a word and its number, plus one control byte each.
            LinkSet::Many { words, .. } => words.capacity() * (2 * 8 + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(set: &LinkSet) -> Vec<u64> {
        let mut ids: Vec<u64> = set.iter().collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn a_set_grows_into_a_bitmap_and_keeps_every_link() {
        let mut set = LinkSet::default();
        let ids: Vec<u64> = (1..=1000).chain([5_000_000, 63, 64, 127]).collect();
        for &id in &ids {
            set.insert(id);
        }
        assert!(matches!(set, LinkSet::Many { .. }));
        assert!(!set.insert(500), "a link is kept once");
        assert_eq!(set.len(), 1001);

        assert!(set.remove(5_000_000));
        assert!(!set.remove(5_000_000));
        assert!(!set.remove(4_999_999), "a number of an absent word");
        assert!(!set.remove(1001), "a clear bit of a present word");
        assert_eq!(set.len(), 1000);
        assert_eq!(sorted(&set), (1..=1000).collect::<Vec<_>>());
    }

    /// A supervisor's million children, numbered in a run, take a few
    /// words where a set of numbers took 18 MB; removing them all gives the
    /// words back.
    #[test]
    fn a_run_of_numbers_takes_a_bit_each() {
        let mut set = LinkSet::default();
        for id in 1_000..101_000 {
            set.insert(id);
        }
        assert_eq!(set.len(), 100_000);
        assert!(
            set.heap_bytes() < 100_000 / 2,
            "{} bytes for 100,000 links",
            set.heap_bytes()
        );
        for id in 1_000..101_000 {
            assert!(set.remove(id));
        }
        assert_eq!(set.len(), 0);
        assert_eq!(set.iter().count(), 0);
        let LinkSet::Many { words, .. } = &set else {
            panic!("still a bitmap");
        };
        assert_eq!(words.len(), 0, "emptied words are removed");
    }
}
