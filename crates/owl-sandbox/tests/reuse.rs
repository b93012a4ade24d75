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

/// Waits (up to 30 s) until `done` holds.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited 30 s for {what}"
        );
        std::thread::yield_now();
    }
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
    // Its one page counts in the sandbox's memory while it runs (on the
    // guest executor once it outlived its first slice)...
    wait_for("the running guest's page to count", || {
        sandbox.guest_memory() == 64 << 10
    });
    node.kill(&pid);
    assert_eq!(rt.block_on(task.join()), Err(ExitReason::Killed));
    // ...and not once its instance is gone (dropped by the guest thread at
    // the end of its slice). It was the only call: its slice ends only if
    // the epoch keeps moving after its process ended and gave its
    // admission slot back.
    wait_for("the killed guest's memory to be freed", || {
        sandbox.guest_memory() == 0
    });
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
    // the owl process awaiting it is not "waiting" for anything else once
    // its first slice on a guest thread is over (until then its own poll,
    // ending after that slice began, may have written "waiting"). Each
    // slice counts a reduction, and the process itself is not polled again
    // until the guest ends: one more reduction than at the stack's answer
    // means a slice that was running then has ended. (Waiting for the
    // status to read "runnable" instead, a window of microseconds between
    // two slices, could take longer than any bound on a loaded machine.)
    let answered_at = node.info(&pid).unwrap().reductions;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while node.info(&pid).unwrap().reductions <= answered_at {
        assert!(
            std::time::Instant::now() < deadline,
            "no slice ended in 60 s"
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

/// Reusable, with a memory that starts empty: `add` never touches it,
/// `keep` grows it and writes a secret, `size` reports its pages and
/// `peek` reads the secret back (trapping if there is no page). `sum` is a
/// byte call: the sum of its input's bytes.
const EMPTY_MEMORY: &str = r#"(module
    (func (export "owl_reusable"))
    (memory (export "memory") 0)
    (func (export "add") (param i64) (result i64) (i64.add (local.get 0) (i64.const 1)))
    (func (export "keep") (param i64) (result i64)
      (drop (memory.grow (i32.const 1)))
      (i64.store (i32.const 8) (local.get 0))
      (i64.const 0))
    (func (export "size") (result i64) (i64.extend_i32_u (memory.size)))
    (func (export "peek") (result i64) (i64.load (i32.const 8)))
    (func (export "sum") (param $at i32) (param $len i32) (result i32 i32 i32)
      (local $total i32) (local $end i32)
      (local.set $end (i32.add (local.get $at) (local.get $len)))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
        (local.set $total (i32.add (local.get $total) (i32.load8_u (local.get $at))))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $next)))
      (i32.store (i32.const 0) (local.get $total))
      (i32.const 0) (i32.const 0) (i32.const 4)))"#;

#[test]
fn an_empty_memory_keeps_reuse_and_a_call_that_wrote_to_it_loses_its_instance() {
    let (rt, sandbox, node) = setup();
    sandbox.load("mem", EMPTY_MEMORY.as_bytes()).unwrap();
    assert!(info(&sandbox, "mem").reuses_instances);
    // Calls that leave the memory empty share one instance.
    for n in 0..5 {
        assert_eq!(
            call(&rt, &sandbox, &node, "mem", "add", vec![n]),
            Ok(vec![n + 1])
        );
    }
    assert_eq!(info(&sandbox, "mem").idle_instances, 1);
    // A call that grows it and writes a secret takes that instance and
    // does not give it back...
    assert_eq!(
        call(&rt, &sandbox, &node, "mem", "keep", vec![4242]),
        Ok(vec![0])
    );
    assert_eq!(info(&sandbox, "mem").idle_instances, 0);
    // ...so the next call starts with an empty memory, as a fresh instance
    // does: no pages, and reading the secret's address traps.
    assert_eq!(
        call(&rt, &sandbox, &node, "mem", "size", vec![]),
        Ok(vec![0])
    );
    let peek = call(&rt, &sandbox, &node, "mem", "peek", vec![]);
    assert!(
        matches!(&peek, Err(reason) if reason.to_string().contains("out of bounds")),
        "{peek:?}"
    );
}

#[test]
fn a_byte_call_reads_its_input_from_memory_and_answers_with_bytes() {
    let (rt, sandbox, node) = setup();
    sandbox.load("mem", EMPTY_MEMORY.as_bytes()).unwrap();
    let input = vec![200u8; 3000];
    let task = sandbox
        .spawn_bytes(&node, "mem", "sum", input, SpawnOptions::new())
        .unwrap();
    let out = rt.block_on(task.join()).unwrap();
    assert_eq!(out.values[0], 0);
    assert_eq!(out.bytes, Some(600_000u32.to_le_bytes().to_vec()));
    // Its instance grew a page for the input, so it was not kept.
    assert_eq!(info(&sandbox, "mem").idle_instances, 0);

    // An input larger than the memory limit (1 MiB here) is a crash of
    // that call, for lack of memory: the limit bounds what an input costs.
    let task = sandbox
        .spawn_bytes(&node, "mem", "sum", vec![1; 2 << 20], SpawnOptions::new())
        .unwrap();
    let too_big = rt.block_on(task.join());
    assert!(
        matches!(&too_big, Err(reason) if reason.to_string().contains("memory")),
        "{too_big:?}"
    );
    // A function of the wrong shape is refused before anything runs.
    assert!(
        sandbox
            .spawn_bytes(&node, "mem", "add", vec![1], SpawnOptions::new())
            .is_err()
    );
}

#[test]
fn a_memory_that_starts_with_pages_or_has_data_is_never_reused() {
    let (_rt, sandbox, _node) = setup();
    for (name, decl) in [
        ("paged", r#"(memory (export "memory") 1)"#),
        ("data", r#"(memory (export "memory") 0) (data "")"#),
        ("hidden", "(memory 0)"),
    ] {
        let source = format!(
            r#"(module (func (export "owl_reusable")) {decl}
                 (func (export "f") (result i64) (i64.const 1)))"#
        );
        sandbox.load(name, source.as_bytes()).unwrap();
        assert!(!info(&sandbox, name).reuses_instances, "{name}");
    }
}
