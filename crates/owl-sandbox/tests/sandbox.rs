//! Sandboxed processes with the talk's math guests: crash, runaway, kill,
//! limits, upgrade, exactness.

use std::time::{Duration, Instant};

use owl_runtime::{Config, ExitReason, Runtime, SpawnOptions};
use owl_sandbox::{LoadError, Sandbox, SandboxConfig, SpawnError};

const MATH_V1: &[u8] = include_bytes!("../../../guests/math.wat");
const MATH_FIXED: &[u8] = include_bytes!("../../../guests/math_fixed.wat");
const LIMIT: Duration = Duration::from_secs(10);
/// The bound on a guest call of tens of milliseconds of CPU. Guest threads
/// run in the kernel's idle class: on a machine whose cores are all busy
/// with normal work (two `yes`, a loaded CI runner) they get about 0.3 % of
/// a core, so such a call may take half a minute there.
const LONG_CALL_LIMIT: Duration = Duration::from_secs(90);

fn setup() -> (Runtime, Sandbox) {
    let rt = Runtime::new(Config::default().schedulers(2)).unwrap();
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    assert_eq!(sandbox.load("math", MATH_V1), Ok(1));
    (rt, sandbox)
}

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    within_for(LIMIT, what, f).await
}

async fn within_for<F: std::future::Future>(limit: Duration, what: &str, f: F) -> F::Output {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?}: {what}"))
}

/// Waits (bounded) until no process runs the math module any more: a killed
/// guest leaves at the end of its current slice.
async fn no_math_guests_left(sandbox: &Sandbox) {
    within("the guests to leave", async {
        while !sandbox.running("math").is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// A temporary child that calculates ∑(1..n) in a sandboxed process linked
/// to its supervisor, as the math supervisor's children are.
fn calculation_child(sandbox: &Sandbox, n: i64) -> owl_runtime::supervisor::ChildSpec {
    use owl_runtime::supervisor::{ChildSpec, Restart};
    let sandbox = sandbox.clone();
    ChildSpec::worker("calc", move |args| {
        let sandbox = sandbox.clone();
        async move {
            let opts = SpawnOptions::new()
                .link_to(args.supervisor.clone())
                .parent(args.supervisor.clone());
            let task = sandbox
                .spawn(&args.node, "math", "sum", vec![n], opts)
                .map_err(ExitReason::error)?;
            Ok(task.pid().clone())
        }
    })
    .restart(Restart::Temporary)
}

/// ∑(1..n) from the guest's (status, lo, hi).
fn sum_of(values: &[i64]) -> Result<u128, &'static str> {
    match values {
        [0, lo, hi] => Ok(((*hi as u64 as u128) << 64) | *lo as u64 as u128),
        [1, _, _] => Err("invalid input"),
        other => panic!("unexpected guest output {other:?}"),
    }
}

async fn sum(
    rt_node: &owl_runtime::Node,
    sandbox: &Sandbox,
    n: i64,
) -> Result<Result<u128, &'static str>, ExitReason> {
    let task = sandbox
        .spawn(rt_node, "math", "sum", vec![n], SpawnOptions::new())
        .unwrap();
    within_for(LONG_CALL_LIMIT, "a sum", task.join())
        .await
        .map(|out| sum_of(&out.values))
}

#[test]
fn version_one_sums_correctly_and_crashes_on_13_naming_the_trap_and_function() {
    let (rt, sandbox) = setup();
    let node = rt.node();
    rt.block_on(async move {
        assert_eq!(sum(&node, &sandbox, 5).await, Ok(Ok(15)));
        assert_eq!(sum(&node, &sandbox, 100).await, Ok(Ok(5050)));
        match sum(&node, &sandbox, 13).await {
            Err(ExitReason::Error(m)) => {
                assert!(m.contains("unreachable"), "{m}");
                assert!(m.contains("math:sum"), "{m}");
            }
            other => panic!("13 should crash, got {other:?}"),
        }
        // The crash changed nothing for the next calculation.
        assert_eq!(sum(&node, &sandbox, 7).await, Ok(Ok(28)));
    });
}

#[test]
fn a_runaway_guest_keeps_running_without_blocking_native_processes_until_killed() {
    let (rt, sandbox) = setup();
    let node = rt.node();
    rt.block_on(async move {
        let runaway = sandbox
            .spawn(&node, "math", "sum", vec![-1], SpawnOptions::new())
            .unwrap();
        let pid = runaway.pid().clone();
        // Native processes still answer promptly while the guest spins.
        for _ in 0..20 {
            let ping = node.spawn_task(|_| async { 1 });
            assert_eq!(within("a native ping", ping.join()).await, Ok(1));
        }
        // It keeps a guest thread busy (measured from the thread's CPU
        // clock) whenever the machine leaves it a core: guests run in the
        // kernel's idle class, so wait until it had 50 ms of one.
        let before = sandbox.guest_sample();
        within("the runaway's first 50 ms of CPU", async {
            while node.info(&pid).unwrap().cpu_time < Duration::from_millis(50) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let busy = sandbox.guest_sample().utilization_since(&before);
        assert!(busy.total > 0.0, "guest threads {busy:?}");
        // And it keeps running: it is still alive, doing work.
        let info = node.info(&pid).expect("the runaway is alive");
        assert_eq!(info.current_activity, "math:sum(-1)");
        assert_eq!(sandbox.running("math"), vec![pid.clone()]);
        assert!(node.kill(&pid));
        let killed_at = Instant::now();
        assert_eq!(
            within("the kill", runaway.join()).await,
            Err(ExitReason::Killed)
        );
        assert!(killed_at.elapsed() < Duration::from_millis(500));
        // The guest itself stops at its next epoch yield: its slot frees up.
        no_math_guests_left(&sandbox).await;
    });
}

#[test]
fn a_fresh_calculation_completes_next_to_ten_runaways() {
    let (rt, sandbox) = setup();
    let node = rt.node();
    rt.block_on(async move {
        let runaways: Vec<_> = (0..10)
            .map(|_| {
                sandbox
                    .spawn(&node, "math", "sum", vec![-5], SpawnOptions::new())
                    .unwrap()
            })
            .collect();
        assert_eq!(sum(&node, &sandbox, 10).await, Ok(Ok(55)));
        for r in &runaways {
            node.kill(r.pid());
        }
    });
}

#[test]
fn exact_results_around_the_64_bit_boundary() {
    let (rt, sandbox) = setup();
    sandbox.load("math", MATH_FIXED).unwrap();
    let node = rt.node();
    rt.block_on(async move {
        let closed = |n: u128| n * (n + 1) / 2;
        for n in [
            0i64,
            1,
            2,
            13,
            6_074_000_999,
            6_074_001_000,
            6_074_001_001,
            9_999_999_999,
            i64::MAX - 1,
            i64::MAX,
        ] {
            assert_eq!(
                sum(&node, &sandbox, n).await,
                Ok(Ok(closed(n as u128))),
                "n = {n}"
            );
        }
        assert_eq!(
            sum(&node, &sandbox, 9_999_999_999).await,
            Ok(Ok(49_999_999_995_000_000_000))
        );
        assert_eq!(sum(&node, &sandbox, -1).await, Ok(Err("invalid input")));
    });
}

#[test]
fn version_one_is_slow_but_exact() {
    // 20 million loop iterations in the guest; the 128-bit carry itself is
    // exercised by the fixed version around the 64-bit boundary.
    let (rt, sandbox) = setup();
    let node = rt.node();
    rt.block_on(async move {
        let n: i64 = 20_000_000; // ∑ = 200000010000000 (fits), loop runs 2e7 times
        assert_eq!(sum(&node, &sandbox, n).await, Ok(Ok(200_000_010_000_000)));
    });
}

/// A call's first slice runs inline and is cut at its first deadline; the
/// call then starts over on the guest threads, on a fresh instance. The
/// guest below counts its runs in its own memory before a long loop: it
/// must answer 1 — the first attempt left no trace — and the loop's sum.
#[test]
fn a_call_that_outlives_its_first_slice_answers_as_if_it_ran_once() {
    let (rt, sandbox) = setup();
    sandbox
        .load(
            "counted",
            br#"(module
                 (memory 1)
                 (func (export "run") (param $n i64) (result i64 i64)
                   (local $i i64) (local $sum i64)
                   (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
                   (block $done (loop $next
                     (br_if $done (i64.ge_s (local.get $i) (local.get $n)))
                     (local.set $i (i64.add (local.get $i) (i64.const 1)))
                     (local.set $sum (i64.add (local.get $sum) (local.get $i)))
                     (br $next)))
                   (i64.extend_i32_u (i32.load (i32.const 0)))
                   (local.get $sum)))"#,
        )
        .unwrap();
    let node = rt.node();
    // 50 million iterations: far longer than a slice (100-200 µs).
    let n: i64 = 50_000_000;
    let task = sandbox
        .spawn(&node, "counted", "run", vec![n], SpawnOptions::new())
        .unwrap();
    let out = rt
        .block_on(within_for(LONG_CALL_LIMIT, "the long call", task.join()))
        .unwrap();
    assert_eq!(out.values, vec![1, n * (n + 1) / 2]);
    // And a short one, all inline, the same way.
    let task = sandbox
        .spawn(&node, "counted", "run", vec![100], SpawnOptions::new())
        .unwrap();
    let out = rt.block_on(within("the short call", task.join())).unwrap();
    assert_eq!(out.values, vec![1, 5050]);
}

#[test]
fn upgrade_keeps_running_processes_on_their_version_and_purge_kills_them() {
    let (rt, sandbox) = setup();
    let node = rt.node();
    rt.block_on(async move {
        let old = sandbox
            .spawn(&node, "math", "sum", vec![-1], SpawnOptions::new())
            .unwrap();
        let old_pid = old.pid().clone();
        assert_eq!(
            sandbox.upgrade("math", MATH_FIXED.to_vec(), None).await,
            Ok(2)
        );
        // New spawns get version 2: the fix.
        let task = sandbox
            .spawn(&node, "math", "sum", vec![13], SpawnOptions::new())
            .unwrap();
        let out = within("v2 sum", task.join()).await.unwrap();
        assert_eq!((out.version, sum_of(&out.values)), (2, Ok(91)));
        // The old process still runs version 1.
        assert!(old_pid.is_alive());
        assert_eq!(node.info(&old_pid).unwrap().label, "sandbox math v1");
        let listed = sandbox.modules();
        assert_eq!(listed[0].versions, vec![(1, 1), (2, 0)]);
        assert_eq!(sandbox.purge(&node, "math"), 1);
        assert_eq!(within("purged", old.join()).await, Err(ExitReason::Killed));
        assert_eq!(sandbox.modules()[0].versions, vec![(2, 0)]);
    });
}

/// Calls spawned but not yet started are not listed as running, yet a purge
/// of their version or a `kill_all` of their module stops them before they
/// run: a call that would return at once ends killed instead.
#[test]
fn calls_past_their_first_slice_stop_before_the_guest_threads_when_purged_or_all_killed() {
    const INC: &[u8] = br#"(module
        (func (export "owl_reusable"))
        (func (export "run") (param i64) (result i64)
          (i64.add (local.get 0) (i64.const 1)))
        (func (export "spin") (param i64) (result i64)
          (loop $forever (br $forever))
          (unreachable)))"#;
    // One scheduler: the processes of the calls the driver spawns (each
    // still running after its first slice, run inside `spawn`) wait in its
    // queue until the driver's own poll ends.
    let rt = Runtime::new(Config::default().schedulers(1)).unwrap();
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    assert_eq!(sandbox.load("inc", INC), Ok(1));
    let node = rt.node();
    let driver = node.spawn_task(move |p| async move {
        let node = p.node().clone();
        let spawn_calls = |function: &str, n: usize| -> Vec<_> {
            (0..n)
                .map(|i| {
                    sandbox
                        .spawn(&node, "inc", function, vec![i as i64], SpawnOptions::new())
                        .unwrap()
                })
                .collect()
        };
        // No await between these spawns and the kill: none has reached the
        // guest threads.
        let queued = spawn_calls("spin", 20);
        assert!(sandbox.running("inc").is_empty());
        assert_eq!(sandbox.kill_all(&node, "inc"), 0, "none was running yet");
        let mut ends = Vec::new();
        for task in queued {
            ends.push(within("a killed call", task.join()).await);
        }
        assert!(
            ends.iter().all(|e| *e == Err(ExitReason::Killed)),
            "{ends:?}"
        );
        // Later calls are not affected.
        let later = spawn_calls("run", 1).pop().unwrap();
        assert_eq!(
            within("a later call", later.join()).await.unwrap().values,
            vec![1]
        );

        // The same for a purge: calls of version 1 not yet there stop…
        let queued = spawn_calls("spin", 20);
        assert_eq!(sandbox.load("inc", INC), Ok(2));
        assert_eq!(sandbox.purge(&node, "inc"), 0, "none was running yet");
        for task in queued {
            assert_eq!(
                within("a purged call", task.join()).await,
                Err(ExitReason::Killed)
            );
        }
        // …and version 2 serves.
        let v2 = spawn_calls("run", 1).pop().unwrap();
        let out = within("a version 2 call", v2.join()).await.unwrap();
        assert_eq!((out.version, out.values), (2, vec![1]));
        let calls = sandbox.modules()[0].calls;
        (calls.started, calls.returned, calls.killed, calls.crashed)
    });
    assert_eq!(
        rt.block_on(within("the driver", driver.join())).unwrap(),
        (42, 2, 40, 0)
    );
}

#[test]
fn a_broken_module_is_rejected_and_the_current_version_keeps_serving() {
    let (rt, sandbox) = setup();
    let node = rt.node();
    assert!(matches!(
        sandbox.load("math", b"(module (func $oops"),
        Err(LoadError::Compile(_))
    ));
    assert!(matches!(
        sandbox.load("math", b"\0asm garbage"),
        Err(LoadError::Compile(_))
    ));
    let missing = br#"(module (func (export "other") (param i64) (result i64) (local.get 0)))"#;
    assert!(
        matches!(sandbox.load("math", missing), Err(LoadError::Exports(m)) if m.contains("sum"))
    );
    let retyped = br#"(module (func (export "sum") (param i32) (result i32) (local.get 0)))"#;
    assert!(matches!(
        sandbox.load("math", retyped),
        Err(LoadError::Exports(_))
    ));
    let imports = br#"(module (import "env" "now" (func)) (func (export "sum") (param i64) (result i32 i64 i64) i32.const 0 i64.const 0 i64.const 0))"#;
    assert!(matches!(sandbox.load("math", imports), Err(LoadError::Imports(m)) if m == "env::now"));
    assert!(matches!(
        sandbox.load("Bad Name!", MATH_FIXED),
        Err(LoadError::InvalidName(_))
    ));
    assert_eq!(sandbox.modules()[0].current, 1);
    rt.block_on(async move { assert_eq!(sum(&node, &sandbox, 4).await, Ok(Ok(10))) });
}

#[test]
fn the_memory_limit_ends_a_guest_cleanly() {
    let rt = Runtime::new(Config::default().schedulers(2)).unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        memory_limit: 1 << 20,
        ..Default::default()
    })
    .unwrap();
    let hog = br#"(module (memory 1)
        (func (export "grow") (param i64) (result i64)
          (i64.extend_i32_s (memory.grow (i32.wrap_i64 (local.get 0))))))"#;
    sandbox.load("hog", hog).unwrap();
    let node = rt.node();
    rt.block_on(async move {
        let small = sandbox
            .spawn(&node, "hog", "grow", vec![2], SpawnOptions::new())
            .unwrap();
        assert_eq!(
            within("small growth", small.join()).await.unwrap().values,
            vec![1]
        );
        let big = sandbox
            .spawn(&node, "hog", "grow", vec![100], SpawnOptions::new())
            .unwrap();
        match within("big growth", big.join()).await {
            Err(ExitReason::Error(m)) => assert!(m.contains("memory"), "{m}"),
            other => panic!("expected a memory-limit crash, got {other:?}"),
        }
        let ping = node.spawn_task(|_| async { "fine" });
        assert_eq!(ping.join().await, Ok("fine"));
    });
}

#[test]
fn bad_spawns_get_clear_errors_and_admission_control_refuses_beyond_the_cap() {
    let rt = Runtime::new(Config::default().schedulers(2)).unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        max_processes: 2,
        ..Default::default()
    })
    .unwrap();
    sandbox.load("math", MATH_V1).unwrap();
    let node = rt.node();
    let spawn = |n: i64| sandbox.spawn(&node, "math", "sum", vec![n], SpawnOptions::new());
    assert!(matches!(
        sandbox.spawn(&node, "nope", "sum", vec![1], SpawnOptions::new()),
        Err(SpawnError::NoSuchModule(_))
    ));
    assert!(matches!(
        sandbox.spawn(&node, "math", "nope", vec![1], SpawnOptions::new()),
        Err(SpawnError::NoSuchFunction(_))
    ));
    assert!(matches!(
        sandbox.spawn(&node, "math", "sum", vec![], SpawnOptions::new()),
        Err(SpawnError::NoSuchFunction(_))
    ));
    // Only i32 and i64 cross: a float function is refused before it runs.
    sandbox
        .load(
            "float",
            br#"(module (func (export "half") (param f64) (result f64)
                (f64.mul (local.get 0) (f64.const 0.5))))"#,
        )
        .unwrap();
    let refused = sandbox.spawn(&node, "float", "half", vec![1], SpawnOptions::new());
    assert!(
        matches!(&refused, Err(SpawnError::NoSuchFunction(why)) if why.contains("i32 and i64")),
        "{refused:?}"
    );
    let a = spawn(-1).unwrap();
    let b = spawn(-1).unwrap();
    assert!(matches!(spawn(5), Err(SpawnError::Overloaded)));
    rt.block_on(async {
        node.kill(a.pid());
        node.kill(b.pid());
        within("a", a.join()).await.unwrap_err();
        within("b", b.join()).await.unwrap_err();
    });
    assert!(spawn(5).is_ok(), "permits come back when processes end");
}

#[test]
fn ten_thousand_spawn_and_kill_cycles_leave_nothing_behind() {
    let (rt, sandbox) = setup();
    let node = rt.node();
    rt.block_on(async move {
        for _ in 0..10_000 {
            let t = sandbox
                .spawn(&node, "math", "sum", vec![-1], SpawnOptions::new())
                .unwrap();
            node.kill(t.pid());
            assert_eq!(t.join().await, Err(ExitReason::Killed));
        }
        no_math_guests_left(&sandbox).await;
        assert_eq!(node.process_count(), 0);
        // The admission permits all came back.
        assert!(
            sandbox
                .spawn(&node, "math", "sum", vec![1], SpawnOptions::new())
                .is_ok()
        );
    });
}

#[test]
fn a_cpu_budget_switched_on_ends_runaways_already_running_with_cpu_limit() {
    let (rt, sandbox) = setup();
    let node = rt.node();
    rt.block_on(async move {
        let runaway = sandbox
            .spawn(&node, "math", "sum", vec![-1], SpawnOptions::new())
            .unwrap();
        // It runs past any budget we are about to set.
        within("some CPU use", async {
            while node.info(runaway.pid()).unwrap().cpu_time < Duration::from_millis(30) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        assert!(sandbox.set_cpu_budget("math", Some(Duration::from_millis(20))));
        assert_eq!(
            within("the budget", runaway.join()).await,
            Err(ExitReason::CpuLimit)
        );
        // Short calls stay well within it.
        assert_eq!(sum(&node, &sandbox, 100).await, Ok(Ok(5050)));
        assert!(sandbox.set_cpu_budget("math", None));
        assert!(!sandbox.set_cpu_budget("nope", None));
    });
}

#[test]
fn the_stack_of_a_running_guest_names_its_functions() {
    let (rt, sandbox) = setup();
    let node = rt.node();
    rt.block_on(async move {
        let runaway = sandbox
            .spawn(&node, "math", "sum", vec![-1], SpawnOptions::new())
            .unwrap();
        let stack = sandbox
            .stack(runaway.pid(), LIMIT)
            .await
            .expect("a running guest answers");
        assert!(!stack.is_empty(), "{stack:?}");
        assert!(
            stack.iter().all(|f| f == "sum" || f == "naive_sum"),
            "{stack:?}"
        );
        assert_eq!(
            stack.last().map(String::as_str),
            Some("sum"),
            "the export is the outermost frame"
        );
        let native = node.spawn_task(|_| async { 1 });
        assert_eq!(
            sandbox.stack(native.pid(), Duration::from_millis(50)).await,
            Err(owl_sandbox::StackError::NotAGuest)
        );
        node.kill(runaway.pid());
        assert_eq!(runaway.join().await, Err(ExitReason::Killed));
    });
}

#[test]
fn a_sandboxed_process_is_monitored_and_supervised_like_any_other() {
    use owl_runtime::Down;
    use owl_runtime::supervisor::{Supervisor, SupervisorSpec};
    let (rt, sandbox) = setup();
    let node = rt.node();
    rt.block_on(async move {
        // A session-like process links to its calculation (set before the
        // calculation runs) and, trapping exits, hears the crash reason.
        let sb = sandbox.clone();
        let watcher = node.spawn_task(move |mut p| async move {
            p.trap_exit(true);
            let node = p.node().clone();
            let opts = SpawnOptions::new().link_to(p.pid().clone());
            let calc = sb.spawn(&node, "math", "sum", vec![13], opts).unwrap();
            let exit: owl_runtime::Exit = p.recv().await;
            assert_eq!(&exit.from, calc.pid());
            // A monitor set now, after the end, reports noproc.
            p.monitor(calc.pid());
            let down: Down = p.recv().await;
            (exit.reason, down.reason)
        });
        match within("the link", watcher.join()).await.unwrap() {
            (ExitReason::Error(m), ExitReason::NoProc) => assert!(m.contains("unreachable"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }

        // Under a dynamic supervisor, as the math supervisor will hold them.
        let sup = Supervisor::start(&node, SupervisorSpec::dynamic())
            .await
            .unwrap();
        let spec = calculation_child(&sandbox, -1);
        let pid = sup.start_child(spec, LIMIT).await.unwrap();
        assert_eq!(node.info(&pid).unwrap().parent, Some(sup.pid().id()));
        assert_eq!(sup.count_children(LIMIT).await.unwrap().active, 1);
        sup.terminate_child(&pid, LIMIT).await.unwrap();
        assert!(!pid.is_alive());
        assert_eq!(sup.count_children(LIMIT).await.unwrap().active, 0);
    });
}

/// A call that returns within its first slice runs in its caller and never
/// needs a scheduled process; it still has a pid, and whoever the options
/// name hears of it as of a process that ended `normal`: the reply first,
/// then the `Down`; a supervisor it is linked to forgets it.
#[test]
fn a_call_done_in_its_first_slice_needs_no_process_and_its_watchers_still_hear() {
    use owl_runtime::supervisor::{Supervisor, SupervisorSpec};
    use owl_runtime::{Down, Message};
    use owl_sandbox::GuestReply;
    let (rt, sandbox) = setup();
    // On a one-scheduler node, inside a process that does not await, no
    // other process runs: a call whose pid is not in the table right after
    // `spawn` never was. Whether a call returns within its first slice
    // depends on its thread not being descheduled for a tick meanwhile, so
    // it is tried a few times.
    let one = Runtime::new(Config::default().schedulers(1)).unwrap();
    let sb = sandbox.clone();
    let calls = one.node().spawn_task(move |p| async move {
        let node = p.node().clone();
        let mut finished_at_birth = 0;
        for _ in 0..20 {
            let (spawned, exited, crashed) = node.lifecycle_counts();
            let task = sb
                .spawn(&node, "math", "sum", vec![100], SpawnOptions::new())
                .unwrap();
            let pid = task.pid().clone();
            if node.lookup(pid.id()).is_none() {
                finished_at_birth += 1;
                assert!(!pid.is_alive());
                assert_eq!(
                    node.lifecycle_counts(),
                    (spawned + 1, exited + 1, crashed),
                    "counted as a process that ended normally"
                );
            }
            let out = task.join().await.unwrap();
            assert_eq!(sum_of(&out.values), Ok(5050));
        }
        finished_at_birth
    });
    let finished_at_birth = one.block_on(within("the sums", calls.join())).unwrap();
    assert!(
        finished_at_birth > 0,
        "no call returned within its first slice"
    );

    let node = rt.node();
    rt.block_on(async move {
        let sb = sandbox.clone();
        let asker = node.spawn_task(move |mut p| async move {
            let me = p.pid().clone();
            let opts = SpawnOptions::new().monitored_by(me.clone());
            let calc = sb
                .spawn_reply(p.node(), "math", "sum", vec![100], opts, me)
                .unwrap();
            let first: Message = p.recv_any().await;
            let reply = first
                .downcast::<GuestReply>()
                .expect("the reply comes first");
            let down: Down = p.recv().await;
            (
                reply.from == calc,
                sum_of(&reply.output.values),
                down.pid == calc,
                down.reason,
            )
        });
        assert_eq!(
            within("the reply and the Down", asker.join())
                .await
                .unwrap(),
            (true, Ok(5050), true, ExitReason::Normal)
        );

        // Under a dynamic supervisor, as the math service starts them.
        let sup = Supervisor::start(&node, SupervisorSpec::dynamic())
            .await
            .unwrap();
        let spec = calculation_child(&sandbox, 100);
        for _ in 0..100 {
            sup.start_child(spec.clone(), LIMIT).await.unwrap();
        }
        within("the supervisor to forget its 100 ended children", async {
            while sup.count_children(LIMIT).await.unwrap().active > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert!(sup.pid().is_alive());
    });
}
