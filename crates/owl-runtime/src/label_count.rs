//! How many live processes carry each label, kept as processes spawn and
//! exit: reading it costs the number of labels, not of processes, so the
//! system page and `/metrics` stay cheap next to a million processes.
//!
//! Each thread counts into its own shard (its lock is uncontended); a
//! reader sums the shards. A shard keys its counts by where the label's
//! text lives, not by the text: processes of one kind share one label, so a
//! spawn hashes one word and compares no text. The entry keeps its label,
//! so that address cannot be reused by another text while the entry
//! exists; two labels with the same text at different addresses are added
//! up when read.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use crate::Label;

/// Shards: enough that threads seldom share one.
const SHARDS: usize = 32;

/// Entries a shard keeps for labels with no live process, so that a kind
/// of process spawned again and again is not inserted and removed each time.
const KEPT_AT_ZERO: usize = 256;

/// One shard: the label's text (address, length) → the label, and its
/// count.
type Shard = FxHashMap<(usize, usize), (Label, i64)>;

pub(crate) struct LabelCounts {
    shards: Box<[Mutex<Shard>]>,
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
    pub(crate) fn add(&self, label: &Label, delta: i64) {
        let key = (label.as_str().as_ptr() as usize, label.len());
        let mut shard = self.shards[my_shard()].lock();
        let n = &mut shard.entry(key).or_insert_with(|| (label.clone(), 0)).1;
        *n += delta;
        // Labels made per spawn would each leave an entry: past a few
        // hundred, one whose processes all ended goes at once.
        if *n == 0 && shard.len() > KEPT_AT_ZERO {
            shard.remove(&key);
        }
    }

    /// Live processes per label, most first (then by label).
    pub(crate) fn snapshot(&self) -> Vec<(String, usize)> {
        let mut total: FxHashMap<String, i64> = FxHashMap::default();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            // A label whose processes all ended leaves no trace behind.
            shard.retain(|_, (_, n)| *n != 0);
            for (label, n) in shard.values() {
                match total.get_mut(label.as_str()) {
                    Some(sum) => *sum += n,
                    None => {
                        total.insert(label.to_string(), *n);
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_with_the_same_text_add_up_wherever_their_text_lives() {
        let counts = LabelCounts::default();
        let shared = Label::from(String::from("worker"));
        let other_copy = Label::from(String::from("worker"));
        counts.add(&shared, 1);
        counts.add(&shared.clone(), 1);
        counts.add(&other_copy, 1);
        counts.add(&Label::from("worker"), 1);
        counts.add(&Label::from("reaper"), 1);
        assert_eq!(
            counts.snapshot(),
            [("worker".to_string(), 4), ("reaper".to_string(), 1)]
        );
        counts.add(&other_copy, -1);
        counts.add(&Label::from("reaper"), -1);
        assert_eq!(counts.snapshot(), [("worker".to_string(), 3)]);
    }

    #[test]
    fn labels_made_per_spawn_leave_a_bounded_number_of_entries() {
        let counts = LabelCounts::default();
        for n in 0..10_000 {
            let label = Label::from(format!("job {n}"));
            counts.add(&label, 1);
            counts.add(&label, -1);
        }
        let entries = counts.shards[my_shard()].lock().len();
        assert!(entries <= KEPT_AT_ZERO + 1, "{entries} entries");
        assert!(counts.snapshot().is_empty());
    }
}
