//! How many live processes carry each label, kept as processes spawn and
//! exit: reading it costs the number of labels, not of processes, so the
//! system page and `/metrics` stay cheap next to a million processes.
//!
//! Each thread counts into its own shard (its lock is uncontended, and a
//! spawn costs a hash of its label and an add); a reader sums the shards.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

/// Shards: enough that threads seldom share one.
const SHARDS: usize = 32;

pub(crate) struct LabelCounts {
    shards: Box<[Mutex<FxHashMap<String, i64>>]>,
}

impl Default for LabelCounts {
    fn default() -> Self {
        LabelCounts {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

thread_local! {
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SHARD.get().unwrap_or_else(|| {
        let shard = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
        SHARD.set(Some(shard));
        shard
    })
}

impl LabelCounts {
    /// Counts one more (`+1`) or one fewer (`-1`) process labelled `label`.
    pub(crate) fn add(&self, label: &str, delta: i64) {
        let mut shard = self.shards[my_shard()].lock();
        match shard.get_mut(label) {
            Some(n) => *n += delta,
            None => {
                shard.insert(label.to_string(), delta);
            }
        }
    }

    /// Live processes per label, most first (then by label).
    pub(crate) fn snapshot(&self) -> Vec<(String, usize)> {
        let mut total: FxHashMap<String, i64> = FxHashMap::default();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            // A label whose processes all ended leaves no trace behind.
            shard.retain(|_, n| *n != 0);
            for (label, n) in shard.iter() {
                *total.entry(label.clone()).or_default() += n;
            }
        }
        let mut counts: Vec<(String, usize)> = total
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(label, n)| (label, n as usize))
            .collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counts
    }
}
