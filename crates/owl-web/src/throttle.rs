//! Log lines for events a client can cause at will (refused connections,
//! failed logins, forged node requests): counted always, written at most
//! once per few seconds with the count since the last line, so no client
//! can flood the log or the disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often one kind of repeated event is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Counts one kind of event and logs it at most once per [`LOG_EVERY`].
pub(crate) struct Throttled {
    what: &'static str,
    target: Target,
    since_log: AtomicU64,
    last: parking_lot::Mutex<Option<Instant>>,
}

/// Where a throttled line goes (`tracing` targets must be literals).
#[derive(Clone, Copy)]
pub(crate) enum Target {
    Web,
    Auth,
}

impl Throttled {
    pub(crate) const fn new(target: Target, what: &'static str) -> Throttled {
        Throttled {
            what,
            target,
            since_log: AtomicU64::new(0),
            last: parking_lot::const_mutex(None),
        }
    }

    /// Counts one event; writes a warning naming `detail` (the latest one)
    /// and how many happened since the last line, if the last line is old
    /// enough.
    pub(crate) fn hit(&self, detail: &dyn std::fmt::Display) {
        let count = self.since_log.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last.lock();
        if last.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        self.since_log.store(0, Ordering::Relaxed);
        drop(last);
        let what = self.what;
        match self.target {
            Target::Web => tracing::warn!(target: "owl::web", count, "{what}: {detail}"),
            Target::Auth => tracing::warn!(target: "owl::auth", count, "{what}: {detail}"),
        }
    }
}
