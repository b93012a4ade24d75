//! Sliding-window rate limits: at most `limit` events per key within any
//! `window`, with a bounded number of keys remembered.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Keys remembered at once; beyond, keys idle for a whole window are
/// forgotten (they could not be refused anyway).
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub(crate) struct SlidingWindow<K> {
    limit: usize,
    window: Duration,
    recent: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: Hash + Eq + Clone> SlidingWindow<K> {
    pub(crate) fn new(limit: usize, window: Duration) -> SlidingWindow<K> {
        SlidingWindow {
            limit: limit.max(1),
            window,
            recent: Mutex::default(),
        }
    }

    /// `Err(wait)` if `key` has used its events within the window (it may
    /// again after `wait`); `Ok` otherwise, counting nothing.
    pub(crate) fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut recent = self.recent.lock();
        let Some(times) = recent.get_mut(key) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        match times.front() {
            Some(oldest) if times.len() >= self.limit => {
                Err(self.window - now.duration_since(*oldest))
            }
            _ => Ok(()),
        }
    }

    /// Counts one event of `key`.
    pub(crate) fn count(&self, key: &K, now: Instant) {
        let mut recent = self.recent.lock();
        if recent.len() >= MAX_KEYS && !recent.contains_key(key) {
            let window = self.window;
            recent.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        let times = recent.entry(key.clone()).or_default();
        times.push_back(now);
        // Only the newest `limit` matter for a refusal.
        while times.len() > self.limit {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_beyond_the_limit_wait_for_the_oldest_to_leave_the_window() {
        let limit = SlidingWindow::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..2 {
            assert!(limit.check(&"a", t0 + Duration::from_secs(i)).is_ok());
            limit.count(&"a", t0 + Duration::from_secs(i));
        }
        assert_eq!(
            limit.check(&"a", t0 + Duration::from_secs(3)),
            Err(Duration::from_secs(7))
        );
        assert!(limit.check(&"b", t0).is_ok(), "keys are apart");
        assert!(limit.check(&"a", t0 + Duration::from_secs(10)).is_ok());
    }
}
