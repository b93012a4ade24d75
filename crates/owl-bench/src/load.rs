//! The reference's load-control workload: each worker waits a random 0–1 s,
//! then once a second computes sum(1..100) and bumps a shared counter.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use owl_runtime::{Node, SpawnOptions};
use tokio::time::Instant as TokioInstant;

use super::{Report, cpu_time, rss_bytes};

/// Starts `workers` load workers; returns the shared job counter.
pub(crate) async fn start_workers(node: &Node, workers: usize) -> Result<Arc<AtomicU64>, String> {
    let jobs = Arc::new(AtomicU64::new(0));
    let counter = jobs.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    node.spawn(move |p| async move {
        for i in 0..workers {
            let jobs = counter.clone();
            let start_delay = Duration::from_micros(splitmix(i as u64) % 1_000_000);
            if i.is_multiple_of(1024) {
                // Let the scheduler breathe: a native loop never yields on its own.
                tokio::task::yield_now().await;
            }
            p.spawn_opts(
                SpawnOptions::new().label("load worker"),
                move |q| async move {
                    let mut next = Instant::now() + start_delay;
                    loop {
                        q.sleep_until(next).await;
                        let sum: u64 = (1..=black_box(100u64)).sum();
                        black_box(sum);
                        jobs.fetch_add(1, Ordering::Relaxed);
                        next += Duration::from_secs(1);
                    }
                },
            );
        }
        let _ = tx.send(());
    });
    rx.await.map_err(|_| "spawner crashed")?;
    Ok(jobs)
}

pub(crate) async fn run(node: &Node, workers: usize, seconds: u64) -> Result<Report, String> {
    let seconds = seconds.max(2);
    let jobs = start_workers(node, workers).await?;
    let start = Instant::now();
    let half = Duration::from_secs(seconds) / 2;
    tokio::time::sleep(half).await;
    let (jobs_mid, cpu_mid, at_mid) = (jobs.load(Ordering::Relaxed), cpu_time(), Instant::now());
    tokio::time::sleep_until(TokioInstant::from_std(start + Duration::from_secs(seconds))).await;
    let (jobs_end, cpu_end, at_end) = (jobs.load(Ordering::Relaxed), cpu_time(), Instant::now());
    let wall = (at_end - at_mid).as_secs_f64();
    let rss = rss_bytes();
    Ok(Report::new("load", "owl")
        .with("workers", workers as f64)
        .with("seconds", seconds as f64)
        .with("jobs_per_s", (jobs_end - jobs_mid) as f64 / wall)
        .with("cpu_cores", (cpu_end - cpu_mid).as_secs_f64() / wall)
        .with("rss_mb", rss as f64 / 1048576.0)
        .with("processes", node.process_count() as f64))
}

/// A well-mixed pseudo-random number from an index (SplitMix64).
fn splitmix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
