//! The node's process table: every live process's cell by pid number.
//!
//! Split into parts of unequal size (see [`shards`](crate::shards)), each
//! behind its own lock: spawns and exits on different schedulers rarely meet
//! on one lock, and growing the table never rehashes more than one part — a
//! million-process table grows without one long pause of whoever spawns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{RwLock, RwLockReadGuard};
use rustc_hash::FxHashMap;

use super::cell::ProcessCell;
use crate::shards::{PARTS, part_of};

/// One part: pid number → cell.
pub(crate) type Part = FxHashMap<u64, Arc<ProcessCell>>;

pub(crate) struct ProcessTable {
    parts: Box<[RwLock<Part>]>,
    len: AtomicUsize,
}

impl Default for ProcessTable {
    fn default() -> Self {
        ProcessTable {
            parts: (0..PARTS).map(|_| RwLock::new(Part::default())).collect(),
            len: AtomicUsize::new(0),
        }
    }
}

impl ProcessTable {
    pub(crate) fn insert(&self, id: u64, cell: Arc<ProcessCell>) {
        if self.parts[part_of(id)].write().insert(id, cell).is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn remove(&self, id: u64) -> Option<Arc<ProcessCell>> {
        let removed = self.parts[part_of(id)].write().remove(&id);
        if removed.is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// The cell of process `id`, while it lives.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<ProcessCell>> {
        self.parts[part_of(id)].read().get(&id).cloned()
    }

    /// `f` of the cell of process `id`, without taking a reference to it.
    pub(crate) fn with<R>(&self, id: u64, f: impl FnOnce(&Arc<ProcessCell>) -> R) -> Option<R> {
        self.parts[part_of(id)].read().get(&id).map(f)
    }

    /// Live processes.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Each part in turn, read-locked while the caller looks at it (one
    /// part at a time: spawns and exits elsewhere go on meanwhile).
    pub(crate) fn parts(&self) -> impl Iterator<Item = RwLockReadGuard<'_, Part>> {
        self.parts.iter().map(|part| part.read())
    }

    pub(crate) fn clear(&self) {
        for part in self.parts.iter() {
            let mut part = part.write();
            self.len.fetch_sub(part.len(), Ordering::Relaxed);
            *part = Part::default();
        }
    }
}
