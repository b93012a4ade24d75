//! Instance reuse, attacked: modules that declare their calls independent
//! but keep a secret in memory, a global or a table; a guest that grows its
//! memory to the cap; guests killed mid-write or trapping; an upgrade with
//! idle instances of the old version. No call may see what an earlier call
//! left behind, and reuse must still happen where it is safe.

use std::time::Duration;

use owl_runtime::{ExitReason, Node, Runtime, SpawnOptions};
use owl_sandbox::{ModuleInfo, Sandbox, SandboxConfig};

fn setup() -> (Runtime, Sandbox, Node) {
    let rt = Runtime::new(Default::default()).unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        memory_limit: 1 << 20,
        ..SandboxConfig::default()
    })
    .unwrap();
    let node = rt.node();
    (rt, sandbox, node)
}

fn call(
    rt: &Runtime,
    sandbox: &Sandbox,
    node: &Node,
    module: &str,
    function: &str,
    args: Vec<i64>,
) -> Result<Vec<i64>, ExitReason> {
    let task = sandbox
        .spawn(node, module, function, args, SpawnOptions::new())
        .unwrap();
    rt.block_on(task.join()).map(|out| out.values)
}

fn info(sandbox: &Sandbox, module: &str) -> ModuleInfo {
    sandbox
        .modules()
        .into_iter()
        .find(|m| m.name == module)
        .unwrap()
}

/// A module that declares itself reusable and keeps `secret` in `state`.
fn stateful(state: &str) -> String {
    let (decl, write, read) = match state {
        "memory" => (
            "(memory 1)",
            "(i64.store (i32.const 0) (local.get 0))",
            "(i64.load (i32.const 0))",
        ),
        "global" => (
            "(global $g (mut i64) (i64.const 0))",
            "(global.set $g (local.get 0))",
            "(global.get $g)",
        ),
        "table" => (
            "(table 1 funcref) (func $mark) (elem declare func $mark)",
            "(table.set (i32.const 0) (ref.func $mark))",
            "(if (result i64) (ref.is_null (table.get (i32.const 0)))
                 (then (i64.const 0)) (else (i64.const 1)))",
        ),
        other => panic!("no such state {other}"),
    };
    format!(
        r#"(module
             (func (export "owl_reusable"))
             {decl}
             (func (export "write") (param i64) (result i64) {write} (i64.const 0))
             (func (export "read") (result i64) {read})
             (func (export "fill") (param i64) {write} (loop (br 0))))"#
    )
}

const STATELESS: &str = r#"(module
    (func (export "owl_reusable"))
    (global $k i64 (i64.const 5))
    (func (export "add") (param i64) (result i64)
      (i64.add (local.get 0) (global.get $k)))
    (func (export "boom") (unreachable))
    (func (export "spin") (loop (br 0))))"#;

#[test]
fn a_stateless_module_serves_call_after_call_from_one_instance() {
    let (rt, sandbox, node) = setup();
    sandbox.load("pure", STATELESS.as_bytes()).unwrap();
    let module = info(&sandbox, "pure");
    assert!(module.reuses_instances);
    // The marker is a declaration, not a function callers see.
    assert!(!module.functions.iter().any(|f| f.contains("owl_reusable")));
    let mut pids = Vec::new();
    for n in 0..50 {
        let task = sandbox
            .spawn(&node, "pure", "add", vec![n], SpawnOptions::new())
            .unwrap();
        pids.push(task.pid().clone());
        assert_eq!(rt.block_on(task.join()).unwrap().values, vec![n + 5]);
    }
    // Each call was a process of its own...
    pids.sort_by_key(|p| p.id().0);
    pids.dedup();
    assert_eq!(pids.len(), 50);
    // ...and the one instance went back after each call, to serve the next.
    assert_eq!(info(&sandbox, "pure").idle_instances, 1);
}

#[test]
fn a_secret_left_in_memory_a_global_or_a_table_never_reaches_the_next_call() {
    let (rt, sandbox, node) = setup();
    for state in ["memory", "global", "table"] {
        sandbox.load(state, stateful(state).as_bytes()).unwrap();
        let module = info(&sandbox, state);
        assert!(
            !module.reuses_instances,
            "{state}: a module with state must never be reused"
        );
        for round in 0..5 {
            assert_eq!(
                call(&rt, &sandbox, &node, state, "write", vec![42]),
                Ok(vec![0])
            );
            assert_eq!(
                call(&rt, &sandbox, &node, state, "read", vec![]),
                Ok(vec![0]),
                "{state}, round {round}: the next call saw the secret"
            );
        }
        assert_eq!(info(&sandbox, state).idle_instances, 0);
    }
}

#[test]
fn memory_grown_to_the_cap_is_small_again_for_the_next_call() {
    let (rt, sandbox, node) = setup();
    sandbox
        .load(
            "grow",
            br#"(module
                 (func (export "owl_reusable"))
                 (memory 1)
                 ;; Grows a page at a time until the sandbox refuses (a trap).
                 (func (export "grow") (result i64)
                   (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
                   (i64.extend_i32_u (memory.size)))
                 (func (export "size") (result i64) (i64.extend_i32_u (memory.size))))"#,
        )
        .unwrap();
    let grown = call(&rt, &sandbox, &node, "grow", "grow", vec![]);
    assert!(
        matches!(&grown, Err(reason) if reason.to_string().contains("memory")),
        "growing past the 1 MiB cap must end the call: {grown:?}"
    );
    for _ in 0..3 {
        assert_eq!(
            call(&rt, &sandbox, &node, "grow", "size", vec![]),
            Ok(vec![1])
        );
    }
}

#[test]
fn a_guest_killed_mid_write_leaves_nothing_for_the_next_call() {
    let (rt, sandbox, node) = setup();
    sandbox
        .load("memory", stateful("memory").as_bytes())
        .unwrap();
    let task = sandbox
        .spawn(&node, "memory", "fill", vec![42], SpawnOptions::new())
        .unwrap();
    let pid = task.pid().clone();
    // The guest answers for its stack from inside its loop: the secret is
    // written by then.
    let stack = rt.block_on(sandbox.stack(&pid, Duration::from_secs(30)));
    assert!(stack.is_ok(), "{stack:?}");
    node.kill(&pid);
    assert_eq!(rt.block_on(task.join()), Err(ExitReason::Killed));
    assert_eq!(
        call(&rt, &sandbox, &node, "memory", "read", vec![]),
        Ok(vec![0])
    );
}

#[test]
fn a_trapped_or_killed_instance_is_dropped_not_reused() {
    let (rt, sandbox, node) = setup();
    sandbox.load("pure", STATELESS.as_bytes()).unwrap();
    assert_eq!(
        call(&rt, &sandbox, &node, "pure", "add", vec![1]),
        Ok(vec![6])
    );
    assert_eq!(info(&sandbox, "pure").idle_instances, 1);
    // The trap runs on the kept instance, and takes it down with it.
    assert!(call(&rt, &sandbox, &node, "pure", "boom", vec![]).is_err());
    assert_eq!(info(&sandbox, "pure").idle_instances, 0);

    assert_eq!(
        call(&rt, &sandbox, &node, "pure", "add", vec![1]),
        Ok(vec![6])
    );
    let spin = sandbox
        .spawn(&node, "pure", "spin", vec![], SpawnOptions::new())
        .unwrap();
    let pid = spin.pid().clone();
    assert!(
        rt.block_on(sandbox.stack(&pid, Duration::from_secs(30)))
            .is_ok()
    );
    node.kill(&pid);
    assert_eq!(rt.block_on(spin.join()), Err(ExitReason::Killed));
    // Dropping a killed guest's store may finish on its guest thread just
    // after the process ended; the instance must never come back.
    assert_eq!(info(&sandbox, "pure").idle_instances, 0);
    assert_eq!(
        call(&rt, &sandbox, &node, "pure", "add", vec![2]),
        Ok(vec![7])
    );
    assert_eq!(info(&sandbox, "pure").idle_instances, 1);
}

#[test]
fn an_upgrade_drains_the_old_versions_instances() {
    let (rt, sandbox, node) = setup();
    let version = |n: i64| {
        format!(
            r#"(module (func (export "owl_reusable"))
                 (func (export "which") (result i64) (i64.const {n})))"#
        )
    };
    sandbox.load("v", version(1).as_bytes()).unwrap();
    for _ in 0..3 {
        assert_eq!(
            call(&rt, &sandbox, &node, "v", "which", vec![]),
            Ok(vec![1])
        );
    }
    assert_eq!(info(&sandbox, "v").idle_instances, 1);
    sandbox.load("v", version(2).as_bytes()).unwrap();
    assert_eq!(info(&sandbox, "v").idle_instances, 0);
    for _ in 0..3 {
        assert_eq!(
            call(&rt, &sandbox, &node, "v", "which", vec![]),
            Ok(vec![2])
        );
    }
    assert_eq!(info(&sandbox, "v").idle_instances, 1);
    // A new version that no longer declares itself reusable is not reused.
    sandbox
        .load(
            "v",
            br#"(module (func (export "which") (result i64) (i64.const 3)))"#,
        )
        .unwrap();
    assert_eq!(
        call(&rt, &sandbox, &node, "v", "which", vec![]),
        Ok(vec![3])
    );
    let module = info(&sandbox, "v");
    assert!(!module.reuses_instances);
    assert_eq!(module.idle_instances, 0);
}

#[test]
fn a_runaway_reads_running_in_the_process_table_not_waiting() {
    let (rt, sandbox, node) = setup();
    sandbox.load("pure", STATELESS.as_bytes()).unwrap();
    let spin = sandbox
        .spawn(&node, "pure", "spin", vec![], SpawnOptions::new())
        .unwrap();
    let pid = spin.pid().clone();
    // Answered from inside its loop: it has left its first slice by now.
    assert!(
        rt.block_on(sandbox.stack(&pid, Duration::from_secs(30)))
            .is_ok()
    );
    // It computes on a guest thread, or waits there for its next slice;
    // the owl process awaiting it is not "waiting" for anything else
    // (once its first slice on a guest thread is over).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while node.info(&pid).unwrap().status != owl_runtime::Status::Runnable {
        assert!(
            std::time::Instant::now() < deadline,
            "never between two slices"
        );
        std::thread::yield_now();
    }
    for _ in 0..50 {
        let status = node.info(&pid).unwrap().status;
        assert_ne!(status, owl_runtime::Status::Waiting);
        std::thread::yield_now();
    }
    node.kill(&pid);
    assert_eq!(rt.block_on(spin.join()), Err(ExitReason::Killed));
}
