//! Spawn N idle processes, each waiting in receive; measure spawn time,
//! memory per process, and teardown time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use owl_runtime::{Node, Pid};

use super::{Report, rss_bytes};

struct Stop;

pub(crate) async fn run(node: &Node, n: usize) -> Result<Report, String> {
    let baseline_procs = node.process_count();
    let rss_before = rss_bytes();
    let waiting = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let counter = waiting.clone();
    // Spawn from inside a process, as a BEAM process would.
    node.spawn(move |p| async move {
        let mut pids: Vec<Pid> = Vec::with_capacity(n);
        let start = Instant::now();
        for _ in 0..n {
            let counter = counter.clone();
            pids.push(p.spawn(move |mut q| async move {
                counter.fetch_add(1, Ordering::Relaxed);
                q.recv::<Stop>().await;
            }));
        }
        let spawn_time = start.elapsed();
        let _ = tx.send((pids, spawn_time));
    });
    let (pids, spawn_time) = rx.await.map_err(|_| "spawner crashed")?;
    while waiting.load(Ordering::Relaxed) < n {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let rss_after = rss_bytes();
    let teardown_start = Instant::now();
    for pid in &pids {
        let _ = pid.send(Stop);
    }
    while node.process_count() > baseline_procs {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let teardown = teardown_start.elapsed();
    Ok(Report::new("spawn", "owl")
        .with("processes", n as f64)
        .with("us_per_spawn", spawn_time.as_secs_f64() * 1e6 / n as f64)
        .with(
            "bytes_per_process",
            rss_after.saturating_sub(rss_before) as f64 / n as f64,
        )
        .with(
            "teardown_us_per_process",
            teardown.as_secs_f64() * 1e6 / n as f64,
        ))
}
