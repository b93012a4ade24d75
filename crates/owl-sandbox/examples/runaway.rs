//! A sandboxed guest that loops forever: preempted (the node stays
//! responsive), found by its CPU use, killed at any instruction, and fixed
//! with a live upgrade while the old version's process is still running.
//!
//! Run it: `cargo run -p owl-sandbox --example runaway`

use std::time::{Duration, Instant};

use owl_runtime::prelude::*;
use owl_sandbox::{Canary, Sandbox, SandboxConfig};

/// Version 1 counts up from 1 until it meets n: for n < 1, forever.
const V1: &str = r#"(module (func (export "sum") (param $n i64) (result i64)
    (local $i i64) (local $s i64)
    (local.set $i (i64.const 1))
    (block $done
      (loop $again
        (local.set $s (i64.add (local.get $s) (local.get $i)))
        (br_if $done (i64.eq (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $again)))
    (local.get $s)))"#;

/// Version 2: the closed form, and 0 for n < 1.
const V2: &str = r#"(module (func (export "sum") (param $n i64) (result i64)
    (if (result i64) (i64.lt_s (local.get $n) (i64.const 1))
      (then (i64.const 0))
      (else (i64.div_u (i64.mul (local.get $n) (i64.add (local.get $n) (i64.const 1))) (i64.const 2))))))"#;

fn main() {
    let rt = Runtime::new(Config::default()).expect("runtime");
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    sandbox.load("math", V1.as_bytes()).expect("v1");
    let node = rt.node();
    rt.block_on(async move {
        let runaway = sandbox
            .spawn(&node, "math", "sum", vec![-1], SpawnOptions::new())
            .expect("spawn");
        // The node stays responsive: native processes still answer at once.
        let started = Instant::now();
        let quick = node.spawn_task(|_| async { 2 + 2 });
        assert_eq!(quick.join().await, Ok(4));
        println!(
            "a native task answered in {:?} next to the runaway",
            started.elapsed()
        );

        // Found by its CPU use, inspected, killed.
        let top = node.top(Duration::from_millis(200), 1).await;
        println!(
            "busiest: {} {} {:.0}% cpu",
            top[0].pid, top[0].label, top[0].cpu_share
        );
        let stack = sandbox.stack(runaway.pid(), Duration::from_secs(1)).await;
        println!("its stack: {stack:?}");

        // The fix, live: new calls use v2 once it passed a known answer.
        let canary = Canary {
            function: "sum".into(),
            args: vec![100],
            expected: vec![5050],
        };
        let version = sandbox
            .upgrade("math", V2.as_bytes().to_vec(), Some(canary))
            .await
            .expect("v2");
        let fixed = sandbox
            .spawn(&node, "math", "sum", vec![-1], SpawnOptions::new())
            .expect("spawn");
        println!(
            "v{version}: sum(-1) = {:?}",
            fixed.join().await.expect("answer").values
        );
        let old = runaway.pid().clone();
        println!("the v1 runaway still runs: {}; killing it", old.is_alive());
        node.kill(&old);
        println!("it ended: {:?}", runaway.join().await.unwrap_err());
    });
}
