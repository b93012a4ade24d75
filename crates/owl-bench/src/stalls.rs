//! How often the machine takes the CPU away from a running thread, and for
//! how long.
//!
//! On a shared virtual machine the hypervisor does so hundreds or thousands
//! of times a second, for 5–40 µs each (docs/benchmarks.md). An operation
//! of D µs is then hit in about `D × stalls per µs` of its runs, whatever
//! runs it: once that share passes 1 %, its p99 is a stall, not the
//! operation. So a p99 of a few-microsecond operation is reported with the
//! stall rate of the same run, measured just before it.

use std::time::{Duration, Instant};

use super::Report;

/// A gap this long between two clock reads of a spinning thread is a stall
/// (the reads themselves take tens of nanoseconds).
const STALL: Duration = Duration::from_micros(2);

/// How long the spinning thread looks.
const LOOK: Duration = Duration::from_millis(300);

/// What one look found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stalls {
    /// Stalls per second of the look.
    pub per_s: f64,
    /// Their median length, µs.
    pub median_us: f64,
    /// The share of the look they took, per cent.
    pub lost_pct: f64,
}

impl Stalls {
    /// Spins on a thread of its own for a while, reading the clock: every
    /// gap of [`STALL`] or more between two reads is one.
    pub(crate) fn measure() -> Stalls {
        std::thread::spawn(|| Stalls::from_gaps(spin(LOOK, |_| {}), LOOK))
            .join()
            .expect("the stall probe does not panic")
    }

    fn from_gaps(mut gaps: Vec<Duration>, span: Duration) -> Stalls {
        gaps.sort();
        let lost: Duration = gaps.iter().sum();
        Stalls {
            per_s: gaps.len() as f64 / span.as_secs_f64(),
            median_us: gaps
                .get(gaps.len() / 2)
                .map_or(0.0, |g| g.as_secs_f64() * 1e6),
            lost_pct: lost.as_secs_f64() / span.as_secs_f64() * 100.0,
        }
    }

    /// `report` with the figures of `look`, if one was taken.
    pub(crate) fn add(look: Option<Stalls>, report: Report) -> Report {
        match look {
            Some(look) => report
                .with("machine_stalls_per_s", look.per_s)
                .with("machine_stall_p50_us", look.median_us)
                .with("machine_lost_pct", look.lost_pct),
            None => report,
        }
    }
}

/// The gaps of [`STALL`] or more between consecutive clock reads over
/// `span`; `between` runs between reads with the time spent so far (the
/// tests hold the thread up there).
fn spin(span: Duration, mut between: impl FnMut(Duration)) -> Vec<Duration> {
    let start = Instant::now();
    let mut gaps = Vec::new();
    let mut last = start;
    while last - start < span {
        between(last - start);
        let now = Instant::now();
        if now - last >= STALL {
            gaps.push(now - last);
        }
        last = now;
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures are the gaps' rate, median and share of the look.
    #[test]
    fn stalls_are_counted_per_second_with_their_median_and_share() {
        let us = Duration::from_micros;
        let stalls = Stalls::from_gaps(vec![us(30), us(10), us(20)], Duration::from_millis(1));
        assert_eq!(stalls.per_s, 3000.0);
        assert_eq!(stalls.median_us, 20.0);
        assert!((stalls.lost_pct - 6.0).abs() < 1e-9, "{}", stalls.lost_pct);
        let none = Stalls::from_gaps(Vec::new(), Duration::from_millis(1));
        assert_eq!((none.per_s, none.median_us, none.lost_pct), (0.0, 0.0, 0.0));
    }

    /// A thread held up while it spins is seen to stall: a sleep of 5 ms
    /// between two reads shows as a gap at least that long.
    #[test]
    fn a_thread_held_up_while_it_spins_shows_a_stall() {
        let mut reads = 0;
        let gaps = spin(Duration::from_millis(200), |_| {
            reads += 1;
            if reads == 100 {
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        assert!(reads > 100, "the look ended before the sleep");
        assert!(
            gaps.iter().any(|g| *g >= Duration::from_millis(5)),
            "{gaps:?}"
        );
    }
}
