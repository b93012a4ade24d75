//! What watching costs: N load workers run (load control, as on the load
//! page); for a phase nobody watches, then `viewers` process dashboards
//! refresh every second (the operator's process list, as the live table
//! asks it), then one search reads every process. Reports the viewers' CPU
//! (the difference between the phases), the job rate in each phase, the
//! worst dip of the rate while watched (the sampler's 100 ms points), and
//! how long the search took.

use std::time::{Duration, Instant};

use owl_runtime::Node;
use owl_sandbox::Sandbox;
use owl_system::math::{MathConfig, MathService};
use owl_system::operator::{ListQuery, Operator, SortKey};

use super::{Report, cpu_time, load_control};

/// One phase's figures.
struct Phase {
    jobs_per_s: f64,
    cpu_cores: f64,
    /// The lowest 100 ms sample of the job rate during the phase.
    worst_jobs_per_s: f64,
}

async fn measure(load: &owl_system::load::LoadControl, seconds: u64) -> Phase {
    let (jobs0, cpu0, at0) = (load.jobs(), cpu_time(), Instant::now());
    let mut worst = f64::MAX;
    while at0.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The sampler's rate is a one-second moving average, refreshed
        // every 100 ms: a stall shows as a dip in it.
        worst = worst.min(load.latest().jobs_per_s);
    }
    let wall = at0.elapsed().as_secs_f64();
    Phase {
        jobs_per_s: (load.jobs() - jobs0) as f64 / wall,
        cpu_cores: (cpu_time() - cpu0).as_secs_f64() / wall,
        worst_jobs_per_s: worst,
    }
}

pub(crate) async fn run(
    node: &Node,
    sandbox: &Sandbox,
    workers: usize,
    viewers: usize,
    seconds: u64,
) -> Result<Report, String> {
    let math =
        MathService::new(sandbox.clone(), MathConfig::default()).map_err(|e| e.to_string())?;
    let operator = Operator::new(node.clone(), sandbox.clone(), math);
    let (load, root, _) = load_control::start(node, workers).await?;
    // Every worker has had its first job before the quiet phase starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let quiet = measure(&load, seconds).await;

    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut refreshes = Vec::new();
    for _ in 0..viewers {
        let (operator, watching) = (operator.clone(), watching.clone());
        refreshes.push(node.spawn_task(move |_| async move {
            let query = ListQuery {
                sort: SortKey::Cpu,
                filter: String::new(),
                limit: 50,
            };
            let mut longest = Duration::ZERO;
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let list = operator.processes(&query).await;
                longest = longest.max(t.elapsed());
                std::hint::black_box(list);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            longest
        }));
    }
    // The profiler's first window fills before the watched phase counts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let watched = measure(&load, seconds).await;
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut slowest_refresh = Duration::ZERO;
    for r in refreshes {
        slowest_refresh = slowest_refresh.max(r.join().await.map_err(|e| e.to_string())?);
    }

    // A search must read every process: by a pid in the middle.
    let wanted = format!("<0.{}.0>", node.process_count() / 2);
    let search = Instant::now();
    let found = operator
        .processes(&ListQuery {
            sort: SortKey::Cpu,
            filter: wanted,
            limit: 50,
        })
        .await;
    let search_ms = search.elapsed().as_secs_f64() * 1e3;
    let processes = found.total;

    load.set_target(0).map_err(|e| e.to_string())?;
    root.shutdown(Duration::from_secs(60)).await;
    Ok(Report::new("observe", "owl")
        .with("workers", workers as f64)
        .with("viewers", viewers as f64)
        .with("processes", processes as f64)
        .with("quiet_jobs_per_s", quiet.jobs_per_s)
        .with("watched_jobs_per_s", watched.jobs_per_s)
        .with("jobs_ratio", watched.jobs_per_s / quiet.jobs_per_s.max(1.0))
        .with(
            "worst_dip",
            watched.worst_jobs_per_s / quiet.jobs_per_s.max(1.0),
        )
        .with("viewers_cpu_cores", watched.cpu_cores - quiet.cpu_cores)
        .with("slowest_refresh_ms", slowest_refresh.as_secs_f64() * 1e3)
        .with("search_ms", search_ms))
}
