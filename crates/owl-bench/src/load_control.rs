//! The load-control workload, as the load page runs it: N supervised
//! workers (owl-system's load control), each waiting a random 0–1 s, then
//! summing 1..100 once a second. Reports the job rate and CPU over the
//! second half of the run, memory, the sampler's lateness, and how long the
//! worker count takes to settle going up to N and back down to 0.

use std::time::{Duration, Instant};

use owl_runtime::Node;
use owl_runtime::supervisor::{Strategy, Supervisor, SupervisorRef, SupervisorSpec};
use owl_system::load::LoadControl;
use tokio::time::Instant as TokioInstant;

use super::{Report, cpu_time, rss_bytes};

/// Waits until `load` runs exactly `workers`; how long it took.
async fn settle(load: &LoadControl, workers: u64) -> Result<Duration, String> {
    let started = Instant::now();
    while load.workers() != workers {
        if started.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "the worker count did not settle at {workers} (it is {})",
                load.workers()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(started.elapsed())
}

/// Starts load control's subtree with `workers` jobs and waits until they
/// all run; returns it, its root, and how long the start took.
pub(crate) async fn start(
    node: &Node,
    workers: usize,
) -> Result<(LoadControl, SupervisorRef, Duration), String> {
    let load = LoadControl::new(0);
    let meter_node = node.clone();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(load.child_spec(move || {
        let node = meter_node.clone();
        let mut last = node.scheduler_sample();
        move || {
            let now = node.scheduler_sample();
            let busy = now.utilization_since(&last).total;
            last = now;
            busy
        }
    }));
    let root = Supervisor::start(node, spec)
        .await
        .map_err(|e| format!("load subtree: {e}"))?;
    load.set_target(workers as u64).map_err(|e| e.to_string())?;
    let up = settle(&load, workers as u64).await?;
    Ok((load, root, up))
}

pub(crate) async fn run(node: &Node, workers: usize, seconds: u64) -> Result<Report, String> {
    let seconds = seconds.max(2);
    let (load, root, up) = start(node, workers).await?;
    let start = Instant::now();
    let half = Duration::from_secs(seconds) / 2;
    tokio::time::sleep(half).await;
    let (jobs_mid, cpu_mid, at_mid) = (load.jobs(), cpu_time(), Instant::now());
    tokio::time::sleep_until(TokioInstant::from_std(start + Duration::from_secs(seconds))).await;
    let (jobs_end, cpu_end, at_end) = (load.jobs(), cpu_time(), Instant::now());
    let wall = (at_end - at_mid).as_secs_f64();
    let rss = rss_bytes();
    let lateness = load.lateness();
    let processes = node.process_count();
    load.set_target(0).map_err(|e| e.to_string())?;
    let down = settle(&load, 0).await?;
    root.shutdown(Duration::from_secs(60)).await;
    Ok(Report::new("load", "owl")
        .with("workers", workers as f64)
        .with("seconds", seconds as f64)
        .with("jobs_per_s", (jobs_end - jobs_mid) as f64 / wall)
        .with("cpu_cores", (cpu_end - cpu_mid).as_secs_f64() / wall)
        .with("rss_mb", rss as f64 / 1048576.0)
        .with("processes", processes as f64)
        .with("sampler_late_ms_p99", lateness.p99_ms)
        .with("sampler_late_ms_max", lateness.max_ms)
        .with("settle_up_s", up.as_secs_f64())
        .with("settle_down_s", down.as_secs_f64()))
}
