//! Spawn a process that computes sum(1..100), replies and exits — N times.

use std::hint::black_box;
use std::time::Instant;

use owl_runtime::Node;

use super::Report;

/// Spawned in batches so the number alive at once stays bounded, as a real
/// server handling requests would; the BEAM script does the same.
const BATCH: usize = 1000;

pub(crate) async fn run(node: &Node, n: usize) -> Result<Report, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    node.spawn(move |mut p| async move {
        let start = Instant::now();
        let me = p.pid().clone();
        let mut left = n;
        let mut check = 0u64;
        while left > 0 {
            let batch = left.min(BATCH);
            for _ in 0..batch {
                let parent = me.clone();
                p.spawn(move |_| async move {
                    let sum: u64 = (1..=black_box(100u64)).sum();
                    let _ = parent.send(sum);
                });
            }
            for _ in 0..batch {
                check += p.recv::<u64>().await;
            }
            left -= batch;
        }
        let _ = tx.send((start.elapsed(), check));
    });
    let (elapsed, check) = rx.await.map_err(|_| "driver crashed")?;
    if check != 5050 * n as u64 {
        return Err(format!("wrong sums: {check}"));
    }
    Ok(Report::new("spawn-calc", "owl")
        .with("processes", n as f64)
        .with("procs_per_s", n as f64 / elapsed.as_secs_f64()))
}

/// The same with sandboxed processes: each is a guest call of `math:sum(100)`
/// that answers its parent by message, as the native processes do (and as
/// the web's calculations do: `Sandbox::spawn_reply`).
pub(crate) async fn run_sandboxed(
    node: &Node,
    sandbox: &owl_sandbox::Sandbox,
    n: usize,
) -> Result<Report, String> {
    let sandbox = sandbox.clone();
    // The driver is a process too, as for the native variant.
    let driver = node.spawn_task(move |mut p| async move {
        let node = p.node().clone();
        let me = p.pid().clone();
        let start = Instant::now();
        let mut left = n;
        let mut check: u128 = 0;
        while left > 0 {
            let batch = left.min(BATCH);
            for _ in 0..batch {
                sandbox
                    .spawn_reply(
                        &node,
                        "math",
                        "sum",
                        vec![100],
                        owl_runtime::SpawnOptions::new(),
                        me.clone(),
                    )
                    .map_err(|e| e.to_string())?;
            }
            for _ in 0..batch {
                let reply: owl_sandbox::GuestReply = p.recv().await;
                check += reply.output.values[1] as u128;
            }
            left -= batch;
        }
        Ok::<_, String>((start.elapsed(), check))
    });
    let (elapsed, check) = driver
        .join()
        .await
        .map_err(|e| format!("driver crashed: {e}"))??;
    if check != 5050 * n as u128 {
        return Err(format!("wrong sums: {check}"));
    }
    Ok(Report::new("spawn-calc", "owl")
        .with("processes", n as f64)
        .with("sandboxed", 1.0)
        .with("procs_per_s", n as f64 / elapsed.as_secs_f64()))
}
