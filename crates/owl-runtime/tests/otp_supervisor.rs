//! Supervisor semantics checked against Erlang/OTP's own `supervisor_SUITE`:
//! each test names the OTP case it comes from, written anew against owl's API.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{runtime, within};
use owl_runtime::supervisor::{
    AutoShutdown, ChildError, ChildSpec, ChildStatus, Restart, Started, Strategy, Supervisor,
    SupervisorRef, SupervisorSpec,
};
use owl_runtime::{ExitReason, Pid};

const T: Duration = Duration::from_secs(5);

/// A child that waits for messages forever.
fn sleeper(id: &str) -> ChildSpec {
    ChildSpec::worker(id, |args| async move {
        Ok(args.spawn_link(|mut p| async move {
            loop {
                p.recv_any().await;
            }
        }))
    })
}

/// A child that counts its starts; `fails(n)` says whether start `n` (from 1) fails.
fn counted(id: &str, starts: Arc<AtomicUsize>, fails: fn(usize) -> bool) -> ChildSpec {
    ChildSpec::worker(id, move |args| {
        let n = starts.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if fails(n) {
                return Err(ExitReason::error(format!("start {n} fails")));
            }
            Ok(args.spawn_link(|mut p| async move {
                loop {
                    p.recv_any().await;
                }
            }))
        }
    })
}

async fn child_pid(sup: &SupervisorRef, id: &str) -> Option<Pid> {
    sup.which_children(T)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == id)
        .and_then(|c| c.pid)
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    within(what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
}

/// hanging_restart_loop: a restart that keeps failing slowly is retried
/// through the supervisor's mailbox, so the supervisor still answers, shows
/// the child as restarting, and `terminate_child` ends the retries.
#[test]
fn a_slowly_failing_restart_leaves_the_supervisor_responsive() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let starts = Arc::new(AtomicUsize::new(0));
        let tries = starts.clone();
        let slow_failure = ChildSpec::worker("c", move |args| {
            let n = tries.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n > 1 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Err(ExitReason::error("still broken"));
                }
                Ok(args.spawn_link(|mut p| async move {
                    loop {
                        p.recv_any().await;
                    }
                }))
            }
        });
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(1000, Duration::from_secs(60))
            .child(slow_failure);
        let sup = Supervisor::start(&node, spec).await.unwrap();
        let first = child_pid(&sup, "c").await.unwrap();
        node.kill(&first);
        wait_for("a failed restart", || async {
            starts.load(Ordering::SeqCst) >= 3
        })
        .await;
        // Each try takes 100 ms; the supervisor answers between tries.
        let children = sup.which_children(Duration::from_secs(1)).await.unwrap();
        assert_eq!(children[0].status, ChildStatus::Restarting);
        assert_eq!(children[0].pid, None);
        assert_eq!(sup.count_children(T).await.unwrap().active, 0);
        assert_eq!(sup.delete_child("c", T).await, Err(ChildError::Restarting));
        sup.terminate_child("c", Duration::from_secs(1))
            .await
            .unwrap();
        let after_stop = starts.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            starts.load(Ordering::SeqCst) <= after_stop + 1,
            "retries go on after terminate_child"
        );
        assert_eq!(
            sup.which_children(T).await.unwrap()[0].status,
            ChildStatus::Stopped
        );
        assert_eq!(
            within("shutdown", sup.shutdown(T)).await,
            Some(ExitReason::Shutdown)
        );
    });
}

/// simple_global_supervisor: top → middle supervisor → a worker holding a
/// registered name. Killing the middle supervisor must never make the
/// restarted worker find its name still taken by the old one.
#[test]
fn a_killed_subtree_restarts_without_finding_its_names_taken() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        for round in 0..200 {
            let named = ChildSpec::worker("named", |args| async move {
                let pid = args.spawn_link(|mut p| async move {
                    loop {
                        p.recv_any().await;
                    }
                });
                if let Err(e) = args.node.register("otp_global_worker", &pid) {
                    args.node.kill(&pid);
                    return Err(ExitReason::error(e));
                }
                Ok(pid)
            });
            let middle = SupervisorSpec::new(Strategy::OneForOne).child(named);
            let top = SupervisorSpec::new(Strategy::OneForOne)
                .child(ChildSpec::supervisor("middle", middle));
            let top = Supervisor::start(&node, top).await.unwrap();
            let old_middle = child_pid(&top, "middle").await.unwrap();
            let old_worker = node.whereis("otp_global_worker").unwrap();
            node.kill(&old_middle);
            wait_for("the subtree back", || async {
                node.whereis("otp_global_worker")
                    .is_some_and(|w| w != old_worker)
            })
            .await;
            assert!(
                top.pid().is_alive(),
                "round {round}: the top supervisor gave up"
            );
            assert_eq!(
                top.count_children(T).await.unwrap().restarts,
                1,
                "round {round}"
            );
            assert_eq!(
                within("shutdown", top.shutdown(T)).await,
                Some(ExitReason::Shutdown)
            );
        }
    });
}

/// one_for_all_other_child_fails_restart: when a later child fails to
/// restart, the whole group is stopped and started again in order.
#[test]
fn one_for_all_restarts_the_whole_group_after_a_failed_restart() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (a_starts, b_starts) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let spec = SupervisorSpec::new(Strategy::OneForAll)
            .intensity(10, Duration::from_secs(10))
            .child(counted("a", a_starts.clone(), |_| false))
            // b's first restart (its second start) fails once.
            .child(counted("b", b_starts.clone(), |n| n == 2));
        let sup = Supervisor::start(&node, spec).await.unwrap();
        let a1 = child_pid(&sup, "a").await.unwrap();
        node.kill(&a1);
        wait_for("b back", || async { b_starts.load(Ordering::SeqCst) == 3 }).await;
        wait_for("both running", || async {
            sup.which_children(T)
                .await
                .unwrap()
                .iter()
                .all(|c| c.status == ChildStatus::Running)
        })
        .await;
        // a: started at first, in the failed round, and again in the retry.
        assert_eq!(a_starts.load(Ordering::SeqCst), 3);
        assert_eq!(sup.count_children(T).await.unwrap().restarts, 2);
        sup.shutdown(T).await;
    });
}

/// do_not_save_start_parameters_for_temporary_children (found there): a
/// monitor is gone once its `Down` arrived, on both sides.
#[test]
fn fired_monitors_leave_nothing_behind() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let sup = Supervisor::start(&node, SupervisorSpec::dynamic())
            .await
            .unwrap();
        for _ in 0..2000 {
            let child = sup.start_child(sleeper("job"), T).await.unwrap();
            sup.terminate_child(&child, T).await.unwrap();
        }
        let info = node.info(sup.pid()).unwrap();
        assert!(
            info.monitors.is_empty(),
            "{} stale monitors",
            info.monitors.len()
        );
        assert!(info.links.is_empty());

        // A process monitoring many short-lived ones keeps no trace of them.
        let watcher = node.spawn_task(|mut p| async move {
            for _ in 0..500 {
                let (_, _mref) = p.spawn_monitor(|_| async {});
                let _: owl_runtime::Down = p.recv().await;
            }
            p.node().info(p.pid()).unwrap().monitors.len()
        });
        assert_eq!(within("watcher", watcher.join()).await, Ok(0));
        sup.shutdown(T).await;
    });
}

/// sup_flags and child_specs: invalid flags and specs are refused at start.
#[test]
fn invalid_flags_and_child_specs_are_refused_at_start() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let zero_period = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(1, Duration::ZERO)
            .child(sleeper("a"));
        let err = Supervisor::start(&node, zero_period).await.unwrap_err();
        assert!(err.to_string().contains("restart period"), "{err}");

        let twins = SupervisorSpec::new(Strategy::OneForOne)
            .child(sleeper("a"))
            .child(sleeper("a"));
        let err = Supervisor::start(&node, twins).await.unwrap_err();
        assert!(
            err.to_string().contains("duplicate child id \"a\""),
            "{err}"
        );

        let significant_permanent =
            SupervisorSpec::new(Strategy::OneForOne).child(sleeper("a").significant(true));
        assert!(
            Supervisor::start(&node, significant_permanent)
                .await
                .is_err()
        );
        assert_eq!(node.process_count(), 0, "nothing was left running");
    });
}

/// A start function may ignore the start: the child is kept, not running,
/// and `restart_child` may start it later.
#[test]
fn an_ignored_start_is_not_an_error() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let lazy = ChildSpec::worker("lazy", move |args| {
            let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    return Ok(Started::Ignore);
                }
                Ok(Started::Pid(args.spawn_link(|mut p| async move {
                    loop {
                        p.recv_any().await;
                    }
                })))
            }
        });
        let spec = SupervisorSpec::new(Strategy::OneForOne).child(lazy);
        let sup = Supervisor::start(&node, spec).await.unwrap();
        let children = sup.which_children(T).await.unwrap();
        assert_eq!(
            (children[0].status, children[0].pid.clone()),
            (ChildStatus::Stopped, None)
        );
        let pid = sup.restart_child("lazy", T).await.unwrap();
        assert!(pid.is_alive());
        sup.shutdown(T).await;
    });
}

/// `{shutdown, Term}` is an orderly stop: a transient child ending with it
/// is not restarted.
#[test]
fn shutdown_with_a_reason_is_an_orderly_stop() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let starts = Arc::new(AtomicUsize::new(0));
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .child(counted("t", starts.clone(), |_| false).restart(Restart::Transient));
        let sup = Supervisor::start(&node, spec).await.unwrap();
        let pid = child_pid(&sup, "t").await.unwrap();
        let ended = pid.wait_exit();
        node.exit(&pid, ExitReason::shutdown_with("done for today"));
        assert_eq!(ended.await, ExitReason::shutdown_with("done for today"));
        wait_for("the supervisor to see it", || async {
            sup.which_children(T).await.unwrap()[0].status == ChildStatus::Stopped
        })
        .await;
        assert_eq!(starts.load(Ordering::SeqCst), 1, "not restarted");
        sup.shutdown(T).await;
    });
}

/// Significant children and auto_shutdown (OTP 24+).
#[test]
fn significant_children_end_their_supervisor() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let sig = |id: &str| sleeper(id).restart(Restart::Transient).significant(true);
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .auto_shutdown(AutoShutdown::AllSignificant)
            .child(sig("a"))
            .child(sig("b"))
            .child(sleeper("other"));
        let sup = Supervisor::start(&node, spec).await.unwrap();
        let ended = sup.pid().wait_exit();
        let a = child_pid(&sup, "a").await.unwrap();
        node.exit(&a, ExitReason::Shutdown);
        wait_for("a stopped", || async {
            sup.which_children(T).await.unwrap()[0].status == ChildStatus::Stopped
        })
        .await;
        assert!(
            sup.pid().is_alive(),
            "one significant child is still running"
        );
        let b = child_pid(&sup, "b").await.unwrap();
        let other = child_pid(&sup, "other").await.unwrap();
        node.exit(&b, ExitReason::Normal);
        // Normal is ignored by a process that does not trap exits; end it for real.
        node.exit(&b, ExitReason::Shutdown);
        assert_eq!(within("auto shutdown", ended).await, ExitReason::Shutdown);
        assert!(!other.is_alive(), "the other children were stopped");

        let any = SupervisorSpec::new(Strategy::OneForOne)
            .auto_shutdown(AutoShutdown::AnySignificant)
            .child(sig("a"))
            .child(sig("b"));
        let sup = Supervisor::start(&node, any).await.unwrap();
        let ended = sup.pid().wait_exit();
        node.exit(&child_pid(&sup, "b").await.unwrap(), ExitReason::Shutdown);
        assert_eq!(within("auto shutdown", ended).await, ExitReason::Shutdown);
    });
}

/// get_childspec, and start_child answering already started with the pid.
#[test]
fn child_specs_can_be_read_back() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .child(sleeper("a").restart(Restart::Transient));
        let sup = Supervisor::start(&node, spec).await.unwrap();
        let read = sup.get_childspec("a", T).await.unwrap();
        assert_eq!((read.id(), read.restart_type()), ("a", Restart::Transient));
        assert_eq!(
            sup.get_childspec("zz", T).await.unwrap_err(),
            ChildError::NotFound
        );
        let running = child_pid(&sup, "a").await.unwrap();
        assert_eq!(
            sup.start_child(sleeper("a"), T).await,
            Err(ChildError::AlreadyStarted(running))
        );
        sup.shutdown(T).await;
    });
}

/// A supervisor whose child fails to start ends with a shutdown-class
/// reason that names the child (OTP: `{shutdown, {failed_to_start_child, Id, R}}`).
#[test]
fn a_failed_child_start_is_reported_as_a_shutdown_naming_the_child() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .child(sleeper("fine"))
            .child(counted("broken", Arc::new(AtomicUsize::new(0)), |_| true));
        let owl_runtime::StartError::Failed(err) =
            Supervisor::start(&node, spec).await.unwrap_err()
        else {
            panic!("a failed start")
        };
        assert!(err.is_shutdown(), "{err:?}");
        assert!(!err.is_abnormal());
        let text = err.to_string();
        assert!(
            text.contains("failed to start child \"broken\"") && text.contains("start 1 fails"),
            "{text}"
        );
        assert_eq!(node.process_count(), 0);
    });
}

/// What a dynamic supervisor and its children cost stays linear in their
/// number (a spot check here; `owl bench supervisor` measures it).
#[test]
fn many_children_start_and_stop() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let sup = Supervisor::start(&node, SupervisorSpec::dynamic())
            .await
            .unwrap();
        for _ in 0..20_000 {
            sup.start_child(sleeper("job"), T).await.unwrap();
        }
        assert_eq!(sup.count_children(T).await.unwrap().active, 20_000);
        assert_eq!(
            within("shutdown", sup.shutdown(Duration::from_secs(10))).await,
            Some(ExitReason::Shutdown)
        );
        assert_eq!(node.process_count(), 0);
    });
}

/// Found by `owl console chaos`: a killed supervisor whose child is itself
/// a named supervisor with many children (it traps exits, and shutting its
/// children down takes a while). In OTP the replacement's start fails with
/// `already_started` until the old one is gone, and the failed tries use up
/// the restart intensity of the supervisor above. Here a supervisor gives up
/// its name as soon as it begins to stop for good, so the subtree comes back
/// at the first try: one restart per round.
#[test]
fn a_killed_subtree_with_a_slow_named_supervisor_heals() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let busy = SupervisorSpec::dynamic().name("otp_busy_workers");
        let middle =
            SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::supervisor("workers", busy));
        // Every failed try counts as a restart, as in OTP: the pause between
        // tries keeps them few (here about ten per round in a debug build).
        let top = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(50, Duration::from_secs(10))
            .child(ChildSpec::supervisor("middle", middle));
        let top = Supervisor::start(&node, top).await.unwrap();
        for round in 0..3 {
            let workers = SupervisorRef::from_pid(node.whereis("otp_busy_workers").unwrap());
            workers
                .start_children(sleeper("w").restart(Restart::Temporary), 5_000, T)
                .await
                .unwrap();
            let middle = child_pid(&top, "middle").await.unwrap();
            node.kill(&middle);
            wait_for("the subtree back", || async {
                node.whereis("otp_busy_workers")
                    .is_some_and(|w| w != *workers.pid())
            })
            .await;
            assert!(
                top.pid().is_alive(),
                "round {round}: the top supervisor gave up"
            );
        }
        assert_eq!(top.count_children(T).await.unwrap().restarts, 3);
        top.shutdown(T).await;
    });
}
