//! Priorities: normal work runs before background work on a shared core,
//! background work still progresses (at the stated bound) while normal
//! work saturates it, a supervised child keeps its priority across
//! restarts, and low processes are processes like any other.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{LIMIT, in_process, runtime, within};
use owl_runtime::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
use owl_runtime::{Config, ExitReason, Node, Priority, Runtime, SpawnOptions};

/// A process that does fixed units of work (each some tens of
/// microseconds of arithmetic), yielding after each, counting them in
/// `done`, until `stop` is set. Work done, not time spent, is what a
/// preempted thread cannot fake: its polls last longer on the wall clock.
fn spinner(node: &Node, priority: Priority, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let opts = SpawnOptions::new().priority(priority).label("spinner");
    node.spawn_opts(opts, move |_| async move {
        let mut x = 1u64;
        while !stop.load(Ordering::Relaxed) {
            for i in 0..20_000u64 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
            done.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
        }
    });
}

/// Polls until `cond` holds, failing after the test limit.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT * 3, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn normal_work_runs_first_and_background_work_still_progresses() {
    // One scheduler, online on one CPU: its normal and background threads
    // share that core, as on the talk's one-core node.
    let rt = Runtime::new(Config::default().schedulers(1).schedulers_online(1)).unwrap();
    let node = rt.node();
    let stop = Arc::new(AtomicBool::new(false));

    let (low, normal) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let count = |c: &Arc<AtomicU64>| c.load(Ordering::Relaxed);

    // Alone, background work has the core: measure its pace for 300 ms.
    spinner(&node, Priority::Low, stop.clone(), low.clone());
    wait_for("the background spinner to run", || count(&low) > 0);
    let (start, from) = (Instant::now(), count(&low));
    wait_for("300 ms of background work alone", || {
        start.elapsed() >= Duration::from_millis(300)
    });
    let alone_per_s = (count(&low) - from) as f64 / start.elapsed().as_secs_f64();

    // Normal work arrives and wants the whole core: it takes it.
    spinner(&node, Priority::Normal, stop.clone(), normal.clone());
    wait_for("the normal spinner to run", || count(&normal) > 0);
    let (start, low0, normal0) = (Instant::now(), count(&low), count(&normal));
    wait_for("two seconds of contention", || {
        start.elapsed() >= Duration::from_secs(2)
    });
    let seconds = start.elapsed().as_secs_f64();
    let (low_got, normal_got) = (count(&low) - low0, count(&normal) - normal0);
    stop.store(true, Ordering::Relaxed);
    let low_share = low_got as f64 / seconds / alone_per_s;
    eprintln!(
        "alone: {alone_per_s:.0} units/s; contended for {seconds:.1} s: normal {normal_got}, \
         low {low_got} units ({:.1} % of its pace alone)",
        low_share * 100.0
    );

    // The kernel's weights are 1,024 to 15: low keeps ~1.4 % of its pace.
    assert!(
        low_got * 10 < normal_got,
        "normal work first: normal {normal_got}, low {low_got} units"
    );
    // Never starved: at least a fifth of that bound.
    assert!(
        low_share >= 0.003,
        "background work must still progress: {low_got} units in {seconds:.1} s \
         ({:.2} % of its pace alone)",
        low_share * 100.0
    );
}

#[test]
fn a_supervised_child_keeps_its_priority_across_restarts() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let spec = SupervisorSpec::new(Strategy::OneForOne).child(
            ChildSpec::worker("job", |args| async move {
                Ok(args.spawn_link(|mut p| async move { p.recv::<()>().await }))
            })
            .priority(Priority::Low),
        );
        let sup = Supervisor::start(&node, spec).await.unwrap();
        let first = sup.which_children(LIMIT).await.unwrap()[0]
            .pid
            .clone()
            .unwrap();
        assert_eq!(node.info(&first).unwrap().priority, Priority::Low);
        node.kill(&first);
        let second = within("the restart", async {
            loop {
                let children = sup.which_children(LIMIT).await.unwrap();
                match &children[0].pid {
                    Some(pid) if *pid != first => return pid.clone(),
                    _ => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        })
        .await;
        assert_eq!(node.info(&second).unwrap().priority, Priority::Low);

        // Batches of a dynamic supervisor share the spec, and its priority.
        let pool = Supervisor::start(&node, SupervisorSpec::dynamic())
            .await
            .unwrap();
        let job = ChildSpec::dynamic_worker(|args| async move {
            Ok(args.spawn_link(|mut p| async move { p.recv::<()>().await }))
        })
        .priority(Priority::Low);
        pool.start_children(job, 3, LIMIT).await.unwrap();
        for child in pool.which_children(LIMIT).await.unwrap() {
            let info = node.info(child.pid.as_ref().unwrap()).unwrap();
            assert_eq!(info.priority, Priority::Low);
        }
        // Options the start function gives win over the spec's.
        let explicit = ChildSpec::dynamic_worker(|args| async move {
            let opts = SpawnOptions::new().priority(Priority::Normal);
            Ok(args.spawn_link_opts(opts, |mut p| async move { p.recv::<()>().await }))
        })
        .priority(Priority::Low);
        let pid = pool.start_child(explicit, LIMIT).await.unwrap();
        assert_eq!(node.info(&pid).unwrap().priority, Priority::Normal);
    });
}

#[test]
fn low_processes_sleep_talk_and_link_like_any_other() {
    let rt = runtime();
    let got = in_process(&rt, |mut p| async move {
        let me = p.pid().clone();
        p.trap_exit(true);
        let opts = SpawnOptions::new()
            .priority(Priority::Low)
            .link_to(p.pid().clone());
        let worker = p.spawn_opts(opts, move |mut w| async move {
            w.sleep(Duration::from_millis(20)).await;
            let n: u32 = w.recv().await;
            me.send(n * 2).unwrap();
            ExitReason::error("done")
        });
        worker.send(21u32).unwrap();
        let answer: u32 = p.recv().await;
        let exit: owl_runtime::Exit = p.recv().await;
        (answer, exit.reason)
    });
    assert_eq!(got, (42, ExitReason::error("done")));
}

#[test]
fn dropping_the_runtime_ends_background_processes_as_killed() {
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let rt = runtime();
    let ended = Arc::new(AtomicBool::new(false));
    let guard = SetOnDrop(ended.clone());
    let opts = SpawnOptions::new().priority(Priority::Low);
    let pid = rt.node().spawn_opts(opts, move |mut p| async move {
        let _guard = guard;
        p.recv::<()>().await;
    });
    wait_for("the low process to be running", || {
        rt.node().info(&pid).is_some()
    });
    drop(rt);
    assert!(ended.load(Ordering::Acquire), "its future was dropped");
    assert!(!pid.is_alive());
}
