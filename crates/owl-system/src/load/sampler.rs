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
                let point = Point {
                    at_ms: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                    jobs_per_s,
                    cluster_jobs_per_s: others().map(|o| o + jobs_per_s),
                    utilization: average(&busy),
                    workers: shared.running.load(Ordering::Relaxed),
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
