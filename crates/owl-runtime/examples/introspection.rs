//! Introspection of a running node: find the busiest process with `top`,
//! look inside it with `info`, watch its messages with `trace`, and see the
//! whole supervision tree.
//!
//! Run it: `cargo run -p owl-runtime --example introspection`

use std::time::Duration;

use owl_runtime::prelude::*;

fn main() {
    let rt = Runtime::new(Config::default()).expect("runtime");
    let node = rt.node();
    rt.block_on(async move {
        // A busy echo server among idle processes.
        let echo = node.spawn_opts(SpawnOptions::new().label("echo"), |mut p| async move {
            loop {
                let (from, n): (Pid, u64) = p.recv().await;
                let t = std::time::Instant::now();
                while t.elapsed() < Duration::from_micros(200) {}
                let _ = from.send(n + 1);
            }
        });
        for _ in 0..50 {
            node.spawn_opts(SpawnOptions::new().label("idle"), |mut p| async move {
                p.recv::<()>().await;
            });
        }
        let caller = echo.clone();
        node.spawn_opts(
            SpawnOptions::new().label("client"),
            move |mut p| async move {
                loop {
                    caller.send((p.pid().clone(), 1u64)).unwrap();
                    let _: u64 = p.recv().await;
                }
            },
        );

        let top = node.top(Duration::from_millis(200), 3).await;
        for e in &top {
            println!(
                "top: {} {:<8} {:>5.1}% cpu {:>6} reductions",
                e.pid, e.label, e.cpu_share, e.reductions
            );
        }
        let info = node.info(&echo).expect("alive");
        println!(
            "info: {} status {} activity {:?} queue {}",
            info.pid, info.status, info.current_activity, info.message_queue_len
        );
        let events = node.trace(&echo, Duration::from_millis(20), 4).await;
        for e in events {
            println!(
                "trace: {:>6.2} ms {:?} {}",
                e.at.as_secs_f64() * 1e3,
                e.direction,
                e.message_type
            );
        }

        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .label("app")
            .child(ChildSpec::supervisor("jobs", SupervisorSpec::dynamic()));
        let sup = Supervisor::start(&node, spec).await.expect("tree");
        print!(
            "{}",
            owl_runtime::supervisor::tree(&sup, Duration::from_secs(1))
                .await
                .expect("tree")
        );
        sup.shutdown(Duration::from_secs(1)).await;
    });
}
