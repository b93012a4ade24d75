//! The sampler: ten times a second, jobs per second and utilization, each
//! smoothed by a moving average of ten, for the load page's charts.
//!
//! It runs on a thread of its own, on absolute deadlines, so its ticks stay
//! on time however many workers queue on the schedulers (on the BEAM the
//! same sampler runs at high priority, and still fell 1.3 s behind at a
//! million jobs). Every sample goes to the [`TICKS`](super::TICKS) group as
//! a message, and into the history new pages get at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use owl_runtime::Node;

use super::{HISTORY, Shared, TICK, TICKS};

/// Samples averaged for each point.
const SMOOTHING: usize = 10;

/// One point of the charts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Point {
    /// Unix time of the sample, in milliseconds.
    pub at_ms: u64,
    /// Successful jobs per second, averaged over the last second.
    pub jobs_per_s: f64,
    /// Utilization of the cores online (0.0–1.0), averaged likewise.
    pub utilization: f64,
    /// Workers running.
    pub workers: u64,
    /// In a cluster: the jobs per second of all nodes up, this one's as
    /// measured here and the others' as they last published them (twice a
    /// second). `None` for a node alone.
    pub cluster_jobs_per_s: Option<f64>,
    /// The jobs per second the workers would do on time: one each, for the
    /// workers that ran through the whole last second.
    pub expected_jobs_per_s: f64,
    /// True while the jobs have fallen behind for two seconds or more
    /// (below 95 % of `expected_jobs_per_s`): the background work does not
    /// get the CPU it needs, because normal work or other programs take it.
    pub behind: bool,
}

impl Point {
    /// "behind: 730k of 1,000k jobs/s, the core is full" while the jobs
    /// fall behind; `None` while they keep up.
    pub fn behind_text(&self, cores_online: usize) -> Option<String> {
        if !self.behind {
            return None;
        }
        let why = if self.utilization < 0.9 {
            "other work holds the CPU".to_string()
        } else if cores_online == 1 {
            "the core is full".to_string()
        } else {
            format!("the {cores_online} cores are full")
        };
        Some(format!(
            "behind: {} of {} jobs/s, {why}",
            thousands(self.jobs_per_s),
            thousands(self.expected_jobs_per_s)
        ))
    }
}

/// 730k, 1,000k, 950: jobs per second as a person reads them.
fn thousands(rate: f64) -> String {
    let rate = rate.round() as u64;
    if rate < 10_000 {
        return rate.to_string();
    }
    let k = rate / 1000;
    if k >= 1000 {
        format!("{},{:03}k", k / 1000, k % 1000)
    } else {
        format!("{k}k")
    }
}

/// Falls behind after this many short samples in a row (2 s), and catches
/// up again after as many on time (so one slow second does not flap).
const BEHIND_AFTER: u32 = 20;
/// Fewer expected jobs per second than this is too few to judge.
const BEHIND_FLOOR: f64 = 100.0;

/// Tells whether the jobs keep up with their workers.
#[derive(Debug, Default)]
struct Pace {
    /// Workers at each of the last samples, oldest first.
    workers: VecDeque<u64>,
    streak: u32,
    behind: bool,
}

impl Pace {
    /// The expected rate now, and whether the jobs are behind it.
    fn update(&mut self, workers: u64, jobs_per_s: f64) -> (f64, bool) {
        if self.workers.len() > SMOOTHING {
            self.workers.pop_front();
        }
        self.workers.push_back(workers);
        // A new worker waits up to a second for its first job, and one
        // leaving stops at once: only those there a second ago, and still
        // there, owe a job.
        let expected = self.workers.front().copied().unwrap_or(0).min(workers) as f64;
        let short = expected >= BEHIND_FLOOR && jobs_per_s < 0.95 * expected;
        if short == self.behind {
            self.streak = 0;
        } else {
            self.streak += 1;
            if self.streak >= BEHIND_AFTER {
                self.behind = short;
                self.streak = 0;
            }
        }
        (expected, self.behind)
    }
}

/// How late the sampler's ticks fired, over all ticks since start.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Lateness {
    /// Ticks taken.
    pub ticks: u64,
    /// Median lateness in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The worst.
    pub max_ms: f64,
}

#[derive(Debug, Default)]
pub(super) struct Samples {
    points: VecDeque<Point>,
    /// Lateness of every tick, in microseconds, bucketed by the microsecond
    /// up to 10 s (a histogram, so a long run costs no memory).
    late_us: Vec<u64>,
    ticks: u64,
}

const LATE_BUCKETS: usize = 10_000;
const LATE_BUCKET_US: u64 = 1_000;

impl Samples {
    pub(super) fn latest(&self) -> Point {
        self.points.back().copied().unwrap_or_default()
    }

    pub(super) fn history(&self) -> Vec<Point> {
        self.points.iter().copied().collect()
    }

    fn record(&mut self, point: Point, late: Duration) {
        if self.points.len() == HISTORY {
            self.points.pop_front();
        }
        self.points.push_back(point);
        if self.late_us.is_empty() {
            self.late_us = vec![0; LATE_BUCKETS + 1];
        }
        let bucket = (late.as_micros() as u64 / LATE_BUCKET_US).min(LATE_BUCKETS as u64);
        self.late_us[bucket as usize] += 1;
        self.ticks += 1;
    }

    pub(super) fn lateness(&self) -> Lateness {
        let quantile = |q: f64| -> f64 {
            let want = ((self.ticks as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, n) in self.late_us.iter().enumerate() {
                seen += n;
                if seen >= want {
                    return (i as u64 * LATE_BUCKET_US) as f64 / 1000.0;
                }
            }
            0.0
        };
        let max = self
            .late_us
            .iter()
            .rposition(|n| *n > 0)
            .map_or(0.0, |i| (i as u64 * LATE_BUCKET_US) as f64 / 1000.0);
        Lateness {
            ticks: self.ticks,
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
            max_ms: max,
        }
    }
}

/// Stops the sampler thread when dropped (the manager holds it).
pub(super) struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Starts the sampler; `others` tells, in a cluster, the other nodes'
/// published jobs per second (`None` alone).
pub(super) fn start(
    node: Node,
    shared: Arc<Shared>,
    mut utilization: impl FnMut() -> f64 + Send + 'static,
    others: impl Fn() -> Option<f64> + Send + 'static,
) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("owl-load-sampler".into())
        .spawn(move || {
            let _ = owl_runtime::sys::set_timer_slack(Duration::from_micros(50));
            let mut rates: VecDeque<f64> = VecDeque::with_capacity(SMOOTHING);
            let mut busy: VecDeque<f64> = VecDeque::with_capacity(SMOOTHING);
            let mut pace = Pace::default();
            let mut last_jobs = shared.jobs.load(Ordering::Relaxed);
            let mut last_at = Instant::now();
            let mut deadline = last_at + TICK;
            while !stopped.load(Ordering::Relaxed) {
                let now = Instant::now();
                if deadline > now {
                    std::thread::sleep(deadline - now);
                }
                let at = Instant::now();
                let late = at.saturating_duration_since(deadline);
                let jobs = shared.jobs.load(Ordering::Relaxed);
                let elapsed = at.duration_since(last_at).as_secs_f64().max(1e-6);
                push(&mut rates, (jobs - last_jobs) as f64 / elapsed);
                push(&mut busy, utilization());
                (last_jobs, last_at) = (jobs, at);
                let jobs_per_s = average(&rates);
                let workers = shared.running.load(Ordering::Relaxed);
                let (expected_jobs_per_s, behind) = pace.update(workers, jobs_per_s);
                let point = Point {
                    expected_jobs_per_s,
                    behind,
                    at_ms: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                    jobs_per_s,
                    cluster_jobs_per_s: others().map(|o| o + jobs_per_s),
                    utilization: average(&busy),
                    workers,
                };
                shared.samples.lock().record(point, late);
                node.broadcast(TICKS, point);
                // On the next tick of the schedule; ticks missed are skipped.
                deadline += TICK;
                while deadline <= at {
                    deadline += TICK;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(target: "owl::load", error = %e, "the load sampler could not start");
    }
    Running(stop)
}

fn push(window: &mut VecDeque<f64>, value: f64) {
    if window.len() == SMOOTHING {
        window.pop_front();
    }
    window.push_back(value);
}

fn average(window: &VecDeque<f64>) -> f64 {
    if window.is_empty() {
        return 0.0;
    }
    window.iter().sum::<f64>() / window.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_fall_behind_only_after_two_slow_seconds_and_catch_up_after_two_good_ones() {
        let mut pace = Pace::default();
        // A second of a steady million.
        for _ in 0..SMOOTHING + 1 {
            assert_eq!(pace.update(1_000_000, 1_000_000.0), (1_000_000.0, false));
        }
        // Slow for less than two seconds: not yet.
        for _ in 0..BEHIND_AFTER - 1 {
            assert!(!pace.update(1_000_000, 730_000.0).1);
        }
        assert!(pace.update(1_000_000, 730_000.0).1, "two seconds short");
        let point = Point {
            jobs_per_s: 730_000.0,
            expected_jobs_per_s: 1_000_000.0,
            utilization: 1.0,
            behind: true,
            ..Point::default()
        };
        assert_eq!(
            point.behind_text(1).as_deref(),
            Some("behind: 730k of 1,000k jobs/s, the core is full")
        );
        // One good sample does not end it; two seconds of them do.
        assert!(pace.update(1_000_000, 1_000_000.0).1);
        for _ in 0..BEHIND_AFTER - 1 {
            pace.update(1_000_000, 1_000_000.0);
        }
        assert!(!pace.update(1_000_000, 1_000_000.0).1);
    }

    #[test]
    fn ramping_up_or_down_is_not_falling_behind() {
        let mut pace = Pace::default();
        // Workers arrive in batches; their first jobs come within a second.
        for i in 0..100u64 {
            let workers = (i * 10_000).min(500_000);
            let jobs = ((i.saturating_sub(10)) * 10_000).min(500_000) as f64;
            assert!(!pace.update(workers, jobs).1, "sample {i}");
        }
        // The target drops: the rest leave at once.
        for _ in 0..50 {
            assert!(!pace.update(1_000, 1_000.0).1);
        }
    }
}
