//! Spreading sequential numbers (pid numbers, child serials) over parts of
//! unequal size, so that tables split into parts never grow all at once.
//!
//! A hash map that grows rehashes every entry in one insert: 115 ms at
//! 917,504 entries on this machine, a whole second of a scheduler's
//! attention at ten million. Split into parts of *equal* size, the parts
//! still reach their next size within a few consecutive inserts, and the
//! rehashes add up to the same pause. Part `i` here takes `PARTS + i`
//! shares of the keys, so part sizes differ up to twice, and their growths
//! are spread over each doubling: for a million entries, one part every ten
//! thousand inserts or so.

/// How many parts.
pub(crate) const PARTS: usize = 64;

/// Slots of the lookup table: part `i` holds about `PARTS + i` shares of
/// them.
const SLOTS: usize = 4096;

/// Which part each slot belongs to: parts in order, part `i` taking
/// `SLOTS · (PARTS + i) / Σ shares` slots (rounded along the running total).
const fn slot_parts() -> [u8; SLOTS] {
    let total_shares = (PARTS * PARTS + PARTS * (PARTS - 1) / 2) as u64;
    let mut table = [0u8; SLOTS];
    let (mut part, mut shares_so_far, mut slot) = (0usize, 0u64, 0usize);
    while part < PARTS {
        shares_so_far += (PARTS + part) as u64;
        let end = (SLOTS as u64 * shares_so_far / total_shares) as usize;
        while slot < end {
            table[slot] = part as u8;
            slot += 1;
        }
        part += 1;
    }
    table
}

/// Each slot's part, computed at compile time.
static SLOT_PARTS: [u8; SLOTS] = slot_parts();

/// The part of `key`: a slot picked by a multiplicative hash (keys are
/// sequential numbers), then that slot's part — one multiply, one shift,
/// one load, as it runs for every spawn and every exit.
pub(crate) fn part_of(key: u64) -> usize {
    let slot = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros());
    SLOT_PARTS[slot as usize] as usize
}

/// A key of a [`PartedMap`]: a sequential number that picks its part.
pub(crate) trait PartKey: Copy + Eq + std::hash::Hash {
    fn part_key(&self) -> u64;
}

impl PartKey for u64 {
    fn part_key(&self) -> u64 {
        *self
    }
}

type Part<K, V> = rustc_hash::FxHashMap<K, V>;

/// A hash map in [`PARTS`] parts of unequal size, for one owner (a
/// supervisor's children, a process's links): growing rehashes one part,
/// never the whole map.
#[derive(Debug)]
pub(crate) struct PartedMap<K, V> {
    parts: Vec<Part<K, V>>,
    len: usize,
}

impl<K: PartKey, V> Default for PartedMap<K, V> {
    fn default() -> Self {
        PartedMap {
            parts: (0..PARTS).map(|_| Part::default()).collect(),
            len: 0,
        }
    }
}

impl<K: PartKey, V> PartedMap<K, V> {
    fn part(&self, key: &K) -> &Part<K, V> {
        &self.parts[part_of(key.part_key())]
    }

    fn part_mut(&mut self, key: &K) -> &mut Part<K, V> {
        &mut self.parts[part_of(key.part_key())]
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Inserts or replaces; the value it replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.part_mut(&key).insert(key, value);
        self.len += old.is_none() as usize;
        old
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let removed = self.part_mut(key).remove(key);
        self.len -= removed.is_some() as usize;
        removed
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.part(key).get(key)
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.part(key).contains_key(key)
    }

    /// Every entry, part by part (in no particular order).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.parts.iter().flat_map(|part| part.iter())
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        for part in &mut self.parts {
            part.retain(|k, v| keep(k, v));
        }
        self.len = self.parts.iter().map(|p| p.len()).sum();
    }

    pub(crate) fn clear(&mut self) {
        for part in &mut self.parts {
            *part = Part::default();
        }
        self.len = 0;
    }

    /// Slots allocated, all parts together (for memory estimates).
    pub(crate) fn capacity(&self) -> usize {
        self.parts.iter().map(|p| p.capacity()).sum()
    }
}

impl<K, V> IntoIterator for PartedMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Part<K, V>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.parts.into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parted_map_finds_and_forgets_what_it_holds() {
        let mut map = PartedMap::default();
        for key in 0..10_000u64 {
            assert_eq!(map.insert(key, key * 2), None);
        }
        assert_eq!(map.insert(5, 0), Some(10));
        assert_eq!(map.len(), 10_000);
        assert_eq!(map.get(&5), Some(&0));
        assert_eq!(map.remove(&7), Some(14));
        assert_eq!(
            (map.remove(&7), map.get(&7), map.len()),
            (None, None, 9_999)
        );
        assert_eq!(map.iter().count(), 9_999);
        map.retain(|k, _| k % 2 == 0);
        assert_eq!((map.len(), map.iter().count()), (5_000, 5_000));
        map.clear();
        assert_eq!((map.len(), map.iter().count()), (0, 0));
    }

    #[test]
    fn parts_differ_in_size_so_they_grow_at_different_moments() {
        let mut sizes = [0usize; PARTS];
        for key in 0..640_000u64 {
            sizes[part_of(key)] += 1;
        }
        // Part i takes PARTS + i shares: the last about twice the first.
        let (first, last) = (sizes[0] as f64, sizes[PARTS - 1] as f64);
        assert!((1.8..2.2).contains(&(last / first)), "{sizes:?}");
        // Growing from part to part: no part smaller than one eight before it.
        assert!((8..PARTS).all(|i| sizes[i] > sizes[i - 8]), "{sizes:?}");
    }
}
