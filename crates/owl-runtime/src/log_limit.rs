//! Keeps repeated reports from flooding the log: the same kind of report
//! (a crash of the same kind of process for the same reason) is written at
//! most `BURST` times per `WINDOW`; beyond that it is counted, and the next
//! report of that kind says how many were left out. Counters (metrics) stay
//! exact: only the log lines are summarised. Long-poll warnings get one line
//! per kind of process per window: they are a hint for the developer, and
//! must not bury the crash reports an operator looks for.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

const BURST: u32 = 5;
const WINDOW: Duration = Duration::from_secs(10);
/// Kinds of reports remembered at once; past it the oldest windows are dropped.
const KINDS: usize = 1024;

#[derive(Default)]
pub(crate) struct LogLimiter {
    kinds: Mutex<HashMap<String, Window>>,
}

struct Window {
    started: Instant,
    written: u32,
    left_out: u64,
}

/// Whether to write a report, and how many like it were left out before.
pub(crate) enum Verdict {
    Write { left_out: u64 },
    LeaveOut,
}

impl LogLimiter {
    /// At most [`BURST`] reports of `kind` per window.
    pub(crate) fn check(&self, kind: &str) -> Verdict {
        self.check_burst(kind, BURST)
    }

    /// At most `burst` reports of `kind` per window.
    pub(crate) fn check_burst(&self, kind: &str, burst: u32) -> Verdict {
        let now = Instant::now();
        let mut kinds = self.kinds.lock();
        if kinds.len() >= KINDS && !kinds.contains_key(kind) {
            kinds.retain(|_, w| now.duration_since(w.started) < WINDOW);
            if kinds.len() >= KINDS {
                kinds.clear();
            }
        }
        let window = kinds.entry(kind.to_string()).or_insert(Window {
            started: now,
            written: 0,
            left_out: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            let left_out = window.left_out;
            *window = Window {
                started: now,
                written: 1,
                left_out: 0,
            };
            return Verdict::Write { left_out };
        }
        if window.written < burst {
            window.written += 1;
            Verdict::Write { left_out: 0 }
        } else {
            window.left_out += 1;
            Verdict::LeaveOut
        }
    }
}

/// Writes a report to stderr when no `tracing` subscriber is installed
/// (OTP's logger writes to the terminal by default too), and says whether
/// it did: crash and supervisor reports are never silent.
pub(crate) fn unobserved(text: impl FnOnce() -> String) -> bool {
    if tracing::dispatcher::has_been_set() {
        return false;
    }
    eprintln!("{}", text());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_written_then_counted() {
        let limiter = LogLimiter::default();
        let written = (0..100)
            .filter(|_| matches!(limiter.check("crash of x"), Verdict::Write { .. }))
            .count();
        assert_eq!(written, BURST as usize);
        assert!(matches!(
            limiter.check("another kind"),
            Verdict::Write { left_out: 0 }
        ));
    }

    #[test]
    fn long_polls_get_one_line_per_kind_per_window() {
        let limiter = LogLimiter::default();
        let written = (0..50)
            .filter(|_| {
                matches!(
                    limiter.check_burst("long poll dashboard", 1),
                    Verdict::Write { .. }
                )
            })
            .count();
        assert_eq!(written, 1);
        // Another kind of process is not held back by the first.
        assert!(matches!(
            limiter.check_burst("long poll console", 1),
            Verdict::Write { left_out: 0 }
        ));
    }
}
