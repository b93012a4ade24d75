//! Supervisors: OTP's restart strategies, intensity, start and shutdown order.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{runtime, within};
use owl_runtime::supervisor::{
    ChildError, ChildKind, ChildSpec, Restart, Shutdown, Strategy, Supervisor, SupervisorRef,
    SupervisorSpec, TreeNode, tree,
};
use owl_runtime::{Down, Exit, ExitReason, Node, Pid, SpawnOptions};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// Traps exits; records its id when its supervisor stops it.
    RecordsShutdown,
    /// Traps exits and ignores the supervisor's `shutdown`.
    IgnoresShutdown,
}

/// Observes children: every start (id, pid) and every orderly stop (id).
#[derive(Clone)]
struct Probe {
    starts: mpsc::UnboundedSender<(String, Pid)>,
    stops: Arc<Mutex<Vec<String>>>,
}

struct Observed {
    starts: mpsc::UnboundedReceiver<(String, Pid)>,
    stops: Arc<Mutex<Vec<String>>>,
}

impl Observed {
    async fn next_start(&mut self) -> (String, Pid) {
        within("a child start", self.starts.recv())
            .await
            .expect("probe alive")
    }
    async fn starts(&mut self, n: usize) -> Vec<(String, Pid)> {
        let mut all = Vec::new();
        for _ in 0..n {
            all.push(self.next_start().await);
        }
        all
    }
    fn stops(&self) -> Vec<String> {
        self.stops.lock().unwrap().clone()
    }
}

fn probe() -> (Probe, Observed) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stops = Arc::new(Mutex::new(Vec::new()));
    (
        Probe {
            starts: tx,
            stops: stops.clone(),
        },
        Observed { starts: rx, stops },
    )
}

/// A worker that ends with whatever `ExitReason` it is sent.
fn child(probe: &Probe, id: &str, behaviour: Behaviour) -> ChildSpec {
    let probe = probe.clone();
    let name = id.to_string();
    ChildSpec::worker(id, move |args| {
        let probe = probe.clone();
        let id = name.clone();
        async move {
            let opts = SpawnOptions::new().trap_exit(true).label("test child");
            let stops = probe.stops.clone();
            let me = id.clone();
            let pid = args.spawn_link_opts(opts, move |mut p| async move {
                loop {
                    let msg = p.recv_any().await;
                    let msg = match msg.downcast::<ExitReason>() {
                        Ok(reason) => return reason,
                        Err(m) => m,
                    };
                    if let Ok(exit) = msg.downcast::<Exit>()
                        && behaviour == Behaviour::RecordsShutdown
                    {
                        stops.lock().unwrap().push(me.clone());
                        return exit.reason;
                    }
                }
            });
            // Recorded when the start function returns: the supervisor's start order.
            probe.starts.send((id, pid.clone())).unwrap();
            Ok(pid)
        }
    })
}

fn abc(probe: &Probe) -> Vec<ChildSpec> {
    ["a", "b", "c"]
        .iter()
        .map(|id| child(probe, id, Behaviour::RecordsShutdown))
        .collect()
}

async fn start(node: &Node, strategy: Strategy, children: Vec<ChildSpec>) -> SupervisorRef {
    let mut spec = SupervisorSpec::new(strategy).intensity(10, Duration::from_secs(10));
    for c in children {
        spec = spec.child(c);
    }
    within("supervisor start", Supervisor::start(node, spec))
        .await
        .expect("supervisor starts")
}

async fn pids(sup: &SupervisorRef) -> Vec<Option<Pid>> {
    sup.which_children(T)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.pid)
        .collect()
}

/// A worker that waits for a `()` it is never sent.
fn idle_worker() -> ChildSpec {
    ChildSpec::worker("w", |args| {
        let pid = args.spawn_link(|mut p| async move { p.recv::<()>().await });
        async move { Ok(pid) }
    })
}

fn crash(pid: &Pid) {
    pid.send(ExitReason::error("crash")).unwrap();
}

#[test]
fn children_start_in_order_and_stop_in_reverse_order() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let sup = start(&node, Strategy::OneForOne, abc(&probe)).await;
        let order: Vec<String> = seen.starts(3).await.into_iter().map(|(id, _)| id).collect();
        assert_eq!(order, ["a", "b", "c"]);
        let ids: Vec<String> = sup
            .which_children(T)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(
            within("shutdown", sup.shutdown(T)).await,
            Some(ExitReason::Shutdown)
        );
        assert_eq!(seen.stops(), ["c", "b", "a"]);
        assert_eq!(node.process_count(), 0);
    });
}

#[test]
fn one_for_one_restarts_only_the_failed_child() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let sup = start(&node, Strategy::OneForOne, abc(&probe)).await;
        let first = seen.starts(3).await;
        crash(&first[1].1);
        let (id, new_b) = seen.next_start().await;
        assert_eq!(id, "b");
        assert_ne!(new_b, first[1].1);
        assert_eq!(
            pids(&sup).await,
            vec![
                Some(first[0].1.clone()),
                Some(new_b),
                Some(first[2].1.clone())
            ]
        );
        assert!(seen.stops().is_empty(), "nobody else was stopped");
        assert_eq!(sup.count_children(T).await.unwrap().restarts, 1);
    });
}

#[test]
fn one_for_all_restarts_every_child_stopping_the_others_in_reverse() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let sup = start(&node, Strategy::OneForAll, abc(&probe)).await;
        let first = seen.starts(3).await;
        crash(&first[1].1);
        let again = seen.starts(3).await;
        let ids: Vec<&str> = again.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        for (old, new) in first.iter().zip(&again) {
            assert_ne!(old.1, new.1);
        }
        assert_eq!(seen.stops(), ["c", "a"]);
        assert_eq!(
            pids(&sup).await,
            again.into_iter().map(|(_, p)| Some(p)).collect::<Vec<_>>()
        );
    });
}

#[test]
fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let sup = start(&node, Strategy::RestForOne, abc(&probe)).await;
        let first = seen.starts(3).await;
        crash(&first[1].1);
        let again = seen.starts(2).await;
        let ids: Vec<&str> = again.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(seen.stops(), ["c"]);
        let now = pids(&sup).await;
        assert_eq!(now[0], Some(first[0].1.clone()), "a is untouched");
        assert_eq!(now[1], Some(again[0].1.clone()));
        assert_eq!(now[2], Some(again[1].1.clone()));
    });
}

#[test]
fn transient_children_restart_only_after_abnormal_exits() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let t = child(&probe, "t", Behaviour::RecordsShutdown).restart(Restart::Transient);
        let sup = start(&node, Strategy::OneForOne, vec![t]).await;
        let (_, pid) = seen.next_start().await;
        crash(&pid);
        let (_, pid) = seen.next_start().await;
        let exited = pid.wait_exit();
        pid.send(ExitReason::Normal).unwrap();
        within("normal exit", exited).await;
        // No restart: the child is kept but not running.
        let children = sup.which_children(T).await.unwrap();
        assert_eq!(children.len(), 1);
        assert_eq!(children[0].pid, None);
        assert!(seen.starts.try_recv().is_err());
        // Shutdown is not abnormal either.
        assert_eq!(sup.restart_child("t", T).await.map(|_| ()), Ok(()));
        let (_, pid) = seen.next_start().await;
        let exited = pid.wait_exit();
        pid.send(ExitReason::Shutdown).unwrap();
        within("shutdown exit", exited).await;
        assert_eq!(pids(&sup).await, vec![None]);
    });
}

#[test]
fn temporary_children_are_never_restarted_and_are_forgotten() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let tmp = child(&probe, "tmp", Behaviour::RecordsShutdown).restart(Restart::Temporary);
        let keep = child(&probe, "keep", Behaviour::RecordsShutdown);
        let sup = start(&node, Strategy::OneForOne, vec![tmp, keep]).await;
        let first = seen.starts(2).await;
        let exited = first[0].1.wait_exit();
        crash(&first[0].1);
        within("crash", exited).await;
        let ids: Vec<String> = sup
            .which_children(T)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["keep"]);
        assert!(seen.starts.try_recv().is_err());
    });
}

#[test]
fn exceeding_restart_intensity_stops_the_supervisor_and_its_parent_reacts() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let inner = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(1, Duration::from_secs(60))
            .label("inner supervisor")
            .child(child(&probe, "w", Behaviour::RecordsShutdown));
        let top = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(5, Duration::from_secs(60))
            .child(ChildSpec::supervisor("inner", inner));
        let top = within("start", Supervisor::start(&node, top))
            .await
            .unwrap();
        let inner_before = pids(&top).await[0].clone().unwrap();
        let inner_down = inner_before.wait_exit();

        let (_, w) = seen.next_start().await;
        crash(&w); // restart 1: allowed
        let (_, w) = seen.next_start().await;
        crash(&w); // restart 2: more than 1 in the period
        assert_eq!(
            within("inner gives up", inner_down).await,
            ExitReason::Shutdown
        );

        // The top supervisor restarts the inner one, which starts w again.
        let (id, _) = seen.next_start().await;
        assert_eq!(id, "w");
        let inner_after = pids(&top).await[0].clone().unwrap();
        assert_ne!(inner_after, inner_before);
        assert_eq!(top.count_children(T).await.unwrap().restarts, 1);
    });
}

#[test]
fn a_top_level_supervisor_that_gives_up_exits_with_shutdown() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(0, Duration::from_secs(60))
            .child(child(&probe, "only", Behaviour::RecordsShutdown));
        let sup = Supervisor::start(&node, spec).await.unwrap();
        let exited = sup.pid().wait_exit();
        let (_, pid) = seen.next_start().await;
        crash(&pid);
        assert_eq!(
            within("supervisor exit", exited).await,
            ExitReason::Shutdown
        );
        assert!(!sup.pid().is_alive());
    });
}

#[test]
fn shutdown_timeout_kills_a_child_that_ignores_shutdown_and_brutal_kill_is_immediate() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let stubborn = child(&probe, "stubborn", Behaviour::IgnoresShutdown)
            .shutdown(Shutdown::Timeout(Duration::from_millis(50)));
        let brutal =
            child(&probe, "brutal", Behaviour::IgnoresShutdown).shutdown(Shutdown::BrutalKill);
        let sup = start(&node, Strategy::OneForOne, vec![stubborn, brutal]).await;
        let started = seen.starts(2).await;
        let stubborn_exit = started[0].1.wait_exit();
        let brutal_exit = started[1].1.wait_exit();
        let began = std::time::Instant::now();
        assert_eq!(
            within("shutdown", sup.shutdown(T)).await,
            Some(ExitReason::Shutdown)
        );
        assert!(
            began.elapsed() >= Duration::from_millis(50),
            "waited for the timeout"
        );
        assert_eq!(stubborn_exit.await, ExitReason::Killed);
        assert_eq!(brutal_exit.await, ExitReason::Killed);
    });
}

#[test]
fn a_child_that_fails_to_start_fails_the_supervisor_start_and_stops_the_others() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let broken = ChildSpec::worker("broken", |_| async {
            Err::<Pid, _>(ExitReason::error("no config"))
        });
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .child(child(&probe, "first", Behaviour::RecordsShutdown))
            .child(broken);
        let err = within("start", Supervisor::start(&node, spec))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("broken") && err.to_string().contains("no config"),
            "{err}"
        );
        seen.next_start().await;
        assert_eq!(seen.stops(), ["first"]);
    });
}

#[test]
fn static_children_can_be_added_stopped_restarted_and_deleted() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let sup = start(&node, Strategy::OneForOne, vec![]).await;
        let pid = sup
            .start_child(child(&probe, "x", Behaviour::RecordsShutdown), T)
            .await
            .unwrap();
        assert_eq!(seen.next_start().await.1, pid);
        // OTP: {error, {already_started, Pid}} while it runs…
        assert_eq!(
            sup.start_child(child(&probe, "x", Behaviour::RecordsShutdown), T)
                .await,
            Err(ChildError::AlreadyStarted(pid.clone()))
        );
        assert_eq!(sup.delete_child("x", T).await, Err(ChildError::Running));
        sup.terminate_child("x", T).await.unwrap();
        assert_eq!(seen.stops(), ["x"]);
        assert_eq!(pids(&sup).await, vec![None]);
        // …and {error, already_present} once it is stopped.
        assert_eq!(
            sup.start_child(child(&probe, "x", Behaviour::RecordsShutdown), T)
                .await,
            Err(ChildError::AlreadyPresent("x".into()))
        );
        let again = sup.restart_child("x", T).await.unwrap();
        assert_ne!(again, pid);
        sup.terminate_child("x", T).await.unwrap();
        sup.delete_child("x", T).await.unwrap();
        assert!(sup.which_children(T).await.unwrap().is_empty());
        assert_eq!(sup.terminate_child("x", T).await, Err(ChildError::NotFound));
    });
}

#[test]
fn a_dynamic_supervisor_starts_counts_restarts_and_terminates_children() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let spec = SupervisorSpec::dynamic()
            .max_children(3)
            .intensity(10, Duration::from_secs(10));
        let sup = Supervisor::start(&node, spec).await.unwrap();
        let a = sup
            .start_child(child(&probe, "job", Behaviour::RecordsShutdown), T)
            .await
            .unwrap();
        let tmp = child(&probe, "tmp", Behaviour::RecordsShutdown).restart(Restart::Temporary);
        let b = sup.start_child(tmp, T).await.unwrap();
        let c = sup
            .start_child(child(&probe, "job", Behaviour::RecordsShutdown), T)
            .await
            .unwrap();
        seen.starts(3).await;
        assert_eq!(
            sup.start_child(child(&probe, "job", Behaviour::RecordsShutdown), T)
                .await,
            Err(ChildError::MaxChildren)
        );
        let counts = sup.count_children(T).await.unwrap();
        assert_eq!((counts.specs, counts.active, counts.workers), (3, 3, 3));
        let ids: Vec<String> = sup
            .which_children(T)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, vec![a.to_string(), b.to_string(), c.to_string()]);

        // A permanent child that crashes comes back with a new pid.
        crash(&a);
        let (_, a2) = seen.next_start().await;
        assert_ne!(a2, a);
        // A temporary one is forgotten.
        let gone = b.wait_exit();
        crash(&b);
        within("temporary exit", gone).await;
        // Terminate by pid.
        sup.terminate_child(&c, T).await.unwrap();
        let left: Vec<Option<Pid>> = pids(&sup).await;
        assert_eq!(left, vec![Some(a2.clone())]);
        // Stopping a child that is already gone is not an error (OTP's
        // child_adm_simple): a stop racing a crash has nothing left to do.
        assert_eq!(sup.terminate_child(&c, T).await, Ok(()));
        // A live process that is not a child is still refused.
        let stranger = common::idle(&node);
        assert_eq!(
            sup.terminate_child(&stranger, T).await,
            Err(ChildError::NotFound)
        );
        node.kill(&stranger);
        assert_eq!(
            within("shutdown", sup.shutdown(T)).await,
            Some(ExitReason::Shutdown)
        );
        assert!(!a2.is_alive());
    });
}

/// A dynamic child whose restart fails waits for its retry without a pid,
/// comes back with a new one, and is then found by that pid like any other.
#[test]
fn a_dynamic_child_whose_restart_fails_comes_back_and_is_found_by_its_new_pid() {
    use owl_runtime::supervisor::ChildStatus;
    use std::sync::atomic::{AtomicBool, Ordering};
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let broken = Arc::new(AtomicBool::new(false));
        let gate = broken.clone();
        let flaky = ChildSpec::worker("job", move |args| {
            let broken = gate.load(Ordering::SeqCst);
            let starts = probe.starts.clone();
            async move {
                if broken {
                    return Err(ExitReason::error("still broken"));
                }
                let pid = args.spawn_link(|mut p| async move { p.recv::<ExitReason>().await });
                starts.send(("job".to_string(), pid.clone())).unwrap();
                Ok(pid)
            }
        });
        let spec = SupervisorSpec::dynamic().intensity(1_000, Duration::from_secs(10));
        let sup = Supervisor::start(&node, spec).await.unwrap();
        let a = sup.start_child(flaky, T).await.unwrap();
        seen.next_start().await;

        broken.store(true, Ordering::SeqCst);
        crash(&a);
        within("the child to wait for a retry", async {
            loop {
                let children = sup.which_children(T).await.unwrap();
                if children.len() == 1 && children[0].status == ChildStatus::Restarting {
                    assert_eq!(children[0].pid, None);
                    break;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        let counts = sup.count_children(T).await.unwrap();
        assert_eq!((counts.specs, counts.active), (1, 0));

        broken.store(false, Ordering::SeqCst);
        let (_, a2) = seen.next_start().await;
        assert_ne!(a2, a);
        assert_eq!(pids(&sup).await, vec![Some(a2.clone())]);
        // Found by its new pid: a crash restarts it again, a stop ends it.
        crash(&a2);
        let (_, a3) = seen.next_start().await;
        assert_eq!(pids(&sup).await, vec![Some(a3.clone())]);
        assert_eq!(sup.terminate_child(&a2, T).await, Ok(()), "already gone");
        sup.terminate_child(&a3, T).await.unwrap();
        assert!(pids(&sup).await.is_empty());
        assert!(!a3.is_alive());
    });
}

/// A killed dynamic supervisor takes every child with it: its links to
/// them (kept by pid number beyond the first) all carry the signal.
#[test]
fn a_killed_dynamic_supervisor_takes_every_child_with_it() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let sup = Supervisor::start(&node, SupervisorSpec::dynamic())
            .await
            .unwrap();
        let worker = idle_worker();
        sup.start_children(worker, 100, T).await.unwrap();
        let children: Vec<Pid> = pids(&sup).await.into_iter().flatten().collect();
        assert_eq!(children.len(), 100);
        let ends: Vec<_> = children.iter().map(|c| c.wait_exit()).collect();
        node.kill(sup.pid());
        for end in ends {
            assert_eq!(within("a child's end", end).await, ExitReason::Killed);
        }
    });
}

#[test]
fn the_supervision_tree_can_be_walked() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, _seen) = probe();
        let inner = SupervisorSpec::new(Strategy::OneForOne).child(child(
            &probe,
            "leaf",
            Behaviour::RecordsShutdown,
        ));
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .label("root supervisor")
            .name("root")
            .child(child(&probe, "worker", Behaviour::RecordsShutdown))
            .child(ChildSpec::supervisor("inner", inner));
        let sup = Supervisor::start(&node, spec).await.unwrap();
        assert_eq!(node.whereis("root"), Some(sup.pid().clone()));
        let t = tree(&sup, T).await.unwrap();
        assert_eq!(t.id, "root supervisor");
        let names: Vec<&str> = t.children.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(names, ["worker", "inner"]);
        assert_eq!(t.children[1].kind, ChildKind::Supervisor);
        assert_eq!(t.children[1].children[0].id, "leaf");
        assert_eq!(
            node.info(t.children[1].pid.as_ref().unwrap())
                .unwrap()
                .parent,
            Some(sup.pid().id())
        );
    });
}

/// A dynamic supervisor of thousands of workers: the tree reads the first
/// of them and counts the rest, so a look costs the same at any size.
#[test]
fn the_tree_reads_a_bounded_number_of_a_big_supervisors_children() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let workers = Supervisor::start(&node, SupervisorSpec::dynamic().label("pool"))
            .await
            .unwrap();
        let worker = idle_worker();
        let read = TreeNode::READ_CHILDREN;
        workers
            .start_children(worker, read + 1_500, T)
            .await
            .unwrap();
        let page = workers.first_children(7, T).await.unwrap();
        assert_eq!((page.children.len(), page.total), (7, read + 1_500));
        let t = tree(&workers, T).await.unwrap();
        assert_eq!((t.children.len(), t.unlisted), (read, 1_500));
        assert_eq!(t.child_count(), read + 1_500);
        let shown = t.to_string();
        let more = read + 1_500 - TreeNode::SHOWN_CHILDREN;
        assert!(shown.contains(&format!("… {more} more")), "{shown}");
    });
}

#[test]
fn a_supervisor_ignores_exits_of_processes_that_are_not_its_children() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (probe, mut seen) = probe();
        let sup = start(&node, Strategy::OneForOne, abc(&probe)).await;
        seen.starts(3).await;
        // Link a stranger to the supervisor, then let it crash.
        let sup_pid = sup.pid().clone();
        let stranger = node.spawn_opts(SpawnOptions::new().link_to(sup_pid), |mut p| async move {
            p.recv::<()>().await;
            Err::<(), _>("stranger crash")
        });
        let monitor = node.spawn_task(move |mut p| async move {
            p.monitor(&stranger);
            stranger.send(()).unwrap();
            let d: Down = p.recv().await;
            d.reason
        });
        assert_eq!(
            monitor.join().await.unwrap(),
            ExitReason::error("stranger crash")
        );
        assert_eq!(sup.count_children(T).await.unwrap().active, 3);
        assert!(seen.starts.try_recv().is_err());
    });
}
