//! A token passed around a ring of P processes, M rounds.

use std::time::Instant;

use owl_runtime::{Node, Pid};

use super::Report;

pub(crate) async fn run(node: &Node, size: usize, rounds: usize) -> Result<Report, String> {
    let size = size.max(2);
    let hops = (size * rounds) as u64;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let (ring_tx, ring_rx) = tokio::sync::oneshot::channel::<Pid>();
    node.spawn(move |p| async move {
        let mut done = Some(done_tx);
        let pids: Vec<Pid> = (0..size)
            .map(|_| {
                let done = done.take();
                p.spawn(move |mut q| async move {
                    let next: Pid = q.recv().await;
                    loop {
                        let remaining: u64 = q.recv().await;
                        if remaining == 0 {
                            if let Some(done) = done {
                                let _ = done.send(());
                            }
                            return;
                        }
                        let _ = next.send(remaining - 1);
                        if remaining < size as u64 {
                            return; // the token will not come round again
                        }
                    }
                })
            })
            .collect();
        for (i, pid) in pids.iter().enumerate() {
            let _ = pid.send(pids[(i + 1) % size].clone());
        }
        let _ = ring_tx.send(pids[0].clone());
    });
    let first = ring_rx.await.map_err(|_| "ring setup failed")?;
    // The token's count is the hops still to go; whoever receives 0 reports.
    // `hops` is a multiple of the ring size, so the 0 lands on pids[0], which holds `done`.
    let start = Instant::now();
    first.send(hops).map_err(|_| "ring member gone")?;
    done_rx.await.map_err(|_| "ring broke")?;
    let elapsed = start.elapsed();
    Ok(Report::new("ring", "owl")
        .with("processes", size as f64)
        .with("rounds", rounds as f64)
        .with("msgs_per_s", hops as f64 / elapsed.as_secs_f64()))
}
