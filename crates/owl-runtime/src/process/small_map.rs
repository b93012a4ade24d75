//! A map for a process's monitors: a plain vector while it is small (nearly
//! every process has a handful at most), a hash map once it grows (a
//! supervisor stopping 100,000 children monitors each one).
//!
//! The vector keeps the common case at a few bytes per entry and no hashing;
//! the switch keeps inserts and removals O(1) for the rare process that holds
//! many, so stopping a supervisor's children one by one stays linear. The
//! hash map is split into parts of unequal size (see
//! [`shards`](crate::shards)): a map of a million entries never rehashes
//! them all in one insert.

use crate::shards::{PartKey, PartedMap};

/// Entries beyond this move the map from a vector to a hash map.
const SMALL: usize = 16;

#[derive(Debug)]
pub(crate) enum SmallMap<K, V> {
    Small(Vec<(K, V)>),
    Large(PartedMap<K, V>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::Small(Vec::new())
    }
}

impl<K: PartKey, V> SmallMap<K, V> {
    pub(crate) fn len(&self) -> usize {
        match self {
            SmallMap::Small(v) => v.len(),
            SmallMap::Large(m) => m.len(),
        }
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        match self {
            SmallMap::Small(v) => v.iter().any(|(k, _)| k == key),
            SmallMap::Large(m) => m.contains_key(key),
        }
    }

    /// Inserts unless the key is present; returns whether it was inserted.
    pub(crate) fn insert_new(&mut self, key: K, value: V) -> bool {
        if self.contains_key(&key) {
            return false;
        }
        match self {
            SmallMap::Small(v) if v.len() < SMALL => v.push((key, value)),
            SmallMap::Small(v) => {
                let mut map = PartedMap::default();
                for (k, val) in v.drain(..).chain([(key, value)]) {
                    map.insert(k, val);
                }
                *self = SmallMap::Large(map);
            }
            SmallMap::Large(m) => {
                m.insert(key, value);
            }
        }
        true
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        match self {
            SmallMap::Small(v) => {
                let at = v.iter().position(|(k, _)| k == key)?;
                Some(v.swap_remove(at).1)
            }
            SmallMap::Large(m) => m.remove(key),
        }
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        match self {
            SmallMap::Small(v) => v.retain(|(k, val)| keep(k, val)),
            SmallMap::Large(m) => m.retain(keep),
        }
    }

    pub(crate) fn values(&self) -> Box<dyn Iterator<Item = &V> + '_> {
        match self {
            SmallMap::Small(v) => Box::new(v.iter().map(|(_, val)| val)),
            SmallMap::Large(m) => Box::new(m.iter().map(|(_, val)| val)),
        }
    }

    pub(crate) fn into_entries(self) -> Vec<(K, V)> {
        match self {
            SmallMap::Small(v) => v,
            SmallMap::Large(m) => m.into_iter().collect(),
        }
    }

    /// Bytes the entries take on the heap, for the memory estimate.
    pub(crate) fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(K, V)>();
        match self {
            SmallMap::Small(v) => v.capacity() * entry,
            // Buckets plus one control byte each.
            SmallMap::Large(m) => m.capacity() * (entry + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_into_a_hash_map_and_keeps_every_entry() {
        let mut m: SmallMap<u64, u64> = SmallMap::default();
        for i in 0..1000 {
            assert!(m.insert_new(i, i * 2));
        }
        assert!(!m.insert_new(5, 0), "duplicates are refused");
        assert!(matches!(m, SmallMap::Large(_)));
        assert_eq!(m.len(), 1000);
        assert_eq!(m.remove(&7), Some(14));
        assert_eq!(m.remove(&7), None);
        m.retain(|k, _| k % 2 == 0);
        assert_eq!(m.len(), 500);
        let mut values: Vec<u64> = m.into_entries().into_iter().map(|(_, v)| v).collect();
        values.sort();
        assert_eq!(values[..3], [0, 4, 8]);
    }
}
