//! Fairness under attack: K runaway sandboxed loops plus the load workload,
//! then 2,000 probes one millisecond apart, each a fresh sandboxed sum(100)
//! round trip (spawn, run, result back) followed by a native ping; then
//! 2,000 more ticks, each a fresh *native* process doing the same sum (what
//! a sandboxed call costs beyond a process of owl's own).

use std::time::{Duration, Instant};

use owl_runtime::server::{self, Ctx, Handle, Server};
use owl_runtime::{Node, SpawnOptions};
use owl_sandbox::Sandbox;

use super::{Report, load_control};

const PROBES: usize = 2000;

struct Pong;

impl Server for Pong {}

impl Handle<()> for Pong {
    type Reply = ();
    async fn handle(&mut self, _: (), _: &mut Ctx<'_>) {}
}

pub(crate) async fn run(
    node: &Node,
    sandbox: &Sandbox,
    runaways: usize,
    workers: usize,
) -> Result<Report, String> {
    let mut spinning = Vec::new();
    let rss_before = super::rss_bytes();
    for _ in 0..runaways {
        let task = sandbox
            .spawn(
                node,
                "math",
                "sum",
                vec![-1],
                SpawnOptions::new().label("runaway"),
            )
            .map_err(|e| e.to_string())?;
        spinning.push(task);
    }
    // What a runaway holds while it waits for its next slice: its store,
    // instance and the touched part of its stack (measured before the load
    // workers start, so they do not count).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_runaway_kib = match runaways {
        0 => 0.0,
        k => super::rss_bytes().saturating_sub(rss_before) as f64 / k as f64 / 1024.0,
    };
    let (_load, load_root, _) = load_control::start(node, workers).await?;
    // Let the workers' random start delays play out and the runaways get demoted.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let pong = server::start(node, Pong, SpawnOptions::new().label("pong"))
        .await
        .map_err(|e| e.to_string())?;
    let sandbox = sandbox.clone();
    let prober = node.spawn_task(move |p| async move {
        let node = p.node().clone();
        let mut sandboxed = Vec::with_capacity(PROBES);
        let mut native = Vec::with_capacity(PROBES);
        let mut ticks = tokio::time::interval(Duration::from_millis(1));
        for _ in 0..PROBES {
            ticks.tick().await;
            let start = Instant::now();
            let task = sandbox
                .spawn(&node, "math", "sum", vec![100], SpawnOptions::new())
                .map_err(|e| e.to_string())?;
            let out = task.join().await.map_err(|e| e.to_string())?;
            if out.values != [0, 5050, 0] {
                return Err(format!("wrong sum: {:?}", out.values));
            }
            sandboxed.push(start.elapsed());
            let start = Instant::now();
            pong.call((), Duration::from_secs(5))
                .await
                .map_err(|e| e.to_string())?;
            native.push(start.elapsed());
        }
        let mut process = Vec::with_capacity(PROBES);
        for _ in 0..PROBES {
            ticks.tick().await;
            let start = Instant::now();
            // The same sum as spawn-calc's native processes.
            let sum =
                node.spawn_task(|_| async { (1..=std::hint::black_box(100u64)).sum::<u64>() });
            let out = sum.join().await.map_err(|e| e.to_string())?;
            if out != 5050 {
                return Err(format!("wrong native sum: {out}"));
            }
            process.push(start.elapsed());
        }
        Ok((sandboxed, native, process))
    });
    let (mut sandboxed, mut native, mut process) = prober
        .join()
        .await
        .map_err(|e| format!("prober crashed: {e}"))??;
    for task in &spinning {
        node.kill(task.pid());
    }
    load_root.shutdown(Duration::from_secs(60)).await;
    sandboxed.sort();
    native.sort();
    process.sort();
    let us = |v: &[Duration], q: f64| {
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6
    };
    Ok(Report::new("fairness", "owl")
        .with("runaway", runaways as f64)
        .with("workers", workers as f64)
        .with("p50_us", us(&sandboxed, 0.50))
        .with("p99_us", us(&sandboxed, 0.99))
        .with("max_us", us(&sandboxed, 1.0))
        .with("native_p50_us", us(&native, 0.50))
        .with("native_p99_us", us(&native, 0.99))
        .with("native_max_us", us(&native, 1.0))
        .with("process_p50_us", us(&process, 0.50))
        .with("process_p99_us", us(&process, 0.99))
        .with("rss_per_runaway_kib", per_runaway_kib))
}
