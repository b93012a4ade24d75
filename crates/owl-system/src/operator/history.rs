//! A node's figures over the last five minutes, a point a second, kept by
//! the node itself: a system page opened now shows five minutes at once,
//! every viewer reads the same points, and no viewer pays for them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use owl_runtime::supervisor::ChildSpec;
use owl_runtime::{Process, SpawnOptions};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::Operator;
use crate::host::{CpuTimes, HostMemory};

/// Points kept: five minutes at one a second.
pub const HISTORY_POINTS: usize = 300;
/// How often a point is taken.
pub const POINT_EVERY: Duration = Duration::from_secs(1);

/// A node's figures at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemPoint {
    /// When, in seconds since the Unix epoch.
    pub unix_s: f64,
    /// Resident memory of the OS process, bytes.
    pub memory_rss_bytes: u64,
    /// Linear memory of the sandboxed guests, bytes (part of the resident
    /// memory once touched).
    pub guest_memory_bytes: u64,
    /// Memory the board's SQLite holds, bytes.
    pub board_memory_bytes: u64,
    /// Busy share of the cores online (0–1), guest threads included.
    pub utilization: f64,
    /// Busy share of the guest threads (0–1).
    pub guest_utilization: f64,
    /// Processes alive.
    pub processes: u64,
    /// Processes spawned per second since the point before.
    pub spawned_per_s: f64,
    /// Processes crashed per second since the point before.
    pub crashed_per_s: f64,
    /// Processes waiting in the normal schedulers' shared run queue.
    pub run_queue: u64,
    /// …and in the background schedulers'.
    pub run_queue_background: u64,
    /// Busy share of all the machine's CPUs (0–1), every program on it.
    pub host_cpu: Option<f64>,
    /// The machine's memory.
    pub host_memory: Option<HostMemory>,
}

/// The last [`HISTORY_POINTS`] points. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct SystemHistory {
    points: Arc<Mutex<VecDeque<SystemPoint>>>,
}

impl SystemHistory {
    /// Every point kept, oldest first.
    pub fn points(&self) -> Vec<SystemPoint> {
        self.points.lock().iter().cloned().collect()
    }

    /// The newest point, once one was taken.
    pub fn latest(&self) -> Option<SystemPoint> {
        self.points.lock().back().cloned()
    }

    fn push(&self, point: SystemPoint) {
        let mut points = self.points.lock();
        if points.len() == HISTORY_POINTS {
            points.pop_front();
        }
        points.push_back(point);
    }
}

/// What a point's rates are measured against: the counters and the
/// machine's CPU times at the point before.
struct Previous {
    at: Instant,
    spawned: u64,
    crashed: u64,
    cpu: Option<CpuTimes>,
}

/// The worker that takes a point a second (`board_memory` reads what the
/// board's store holds).
pub(crate) fn sampler_spec(
    operator: Operator,
    board_memory: impl Fn() -> u64 + Send + Sync + 'static,
) -> ChildSpec {
    let board_memory = Arc::new(board_memory);
    ChildSpec::worker("system_history", move |args| {
        let (operator, board_memory) = (operator.clone(), board_memory.clone());
        let opts = SpawnOptions::new().label("system history");
        let pid = args.spawn_link_opts(opts, move |p| sample(p, operator, board_memory));
        async move { Ok(pid) }
    })
}

async fn sample(p: Process, operator: Operator, board_memory: Arc<dyn Fn() -> u64 + Send + Sync>) {
    let node = operator.node().clone();
    let (spawned, _, crashed) = node.lifecycle_counts();
    let mut previous = Previous {
        at: Instant::now(),
        spawned,
        crashed,
        cpu: CpuTimes::now(),
    };
    let mut next = Instant::now() + POINT_EVERY;
    loop {
        p.sleep_until(next).await;
        next += POINT_EVERY;
        // Behind by more than a point (a stopped machine): start afresh
        // rather than take a burst of points.
        if next < Instant::now() {
            next = Instant::now() + POINT_EVERY;
        }
        let now = Instant::now();
        let (spawned, _, crashed) = node.lifecycle_counts();
        let cpu = CpuTimes::now();
        let secs = now.duration_since(previous.at).as_secs_f64().max(1e-3);
        let utilization = operator.utilization();
        let queues = node.run_queues();
        let point = SystemPoint {
            unix_s: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            memory_rss_bytes: owl_runtime::sys::resident_memory(),
            guest_memory_bytes: operator.sandbox().guest_memory() as u64,
            board_memory_bytes: board_memory(),
            utilization: utilization.total,
            guest_utilization: utilization.guests,
            processes: node.process_count() as u64,
            spawned_per_s: spawned.saturating_sub(previous.spawned) as f64 / secs,
            crashed_per_s: crashed.saturating_sub(previous.crashed) as f64 / secs,
            run_queue: queues.normal as u64,
            run_queue_background: queues.background as u64,
            host_cpu: cpu
                .zip(previous.cpu)
                .and_then(|(cpu, before)| cpu.busy_since(&before)),
            host_memory: HostMemory::now(),
        };
        operator.history().push(point);
        previous = Previous {
            at: now,
            spawned,
            crashed,
            cpu,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_last_five_minutes() {
        let history = SystemHistory::default();
        assert_eq!(history.latest(), None);
        for i in 0..HISTORY_POINTS + 10 {
            history.push(SystemPoint {
                unix_s: i as f64,
                ..SystemPoint::default()
            });
        }
        let points = history.points();
        assert_eq!(points.len(), HISTORY_POINTS);
        assert_eq!(points[0].unix_s, 10.0);
        assert_eq!(
            history.latest().unwrap().unix_s,
            (HISTORY_POINTS + 9) as f64
        );
    }
}
