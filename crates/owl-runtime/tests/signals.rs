//! Links, exit signals, trap_exit, monitors and kill — Erlang's rules.

mod common;

use common::{in_process, runtime, within};
use owl_runtime::{Down, Exit, ExitReason, Message, Pid, SpawnOptions};

/// A process that ends with `reason` when told to.
fn ends_on_command(p: &owl_runtime::Process) -> Pid {
    p.spawn_link(|mut q| async move { q.recv::<ExitReason>().await })
}

#[test]
fn an_abnormal_exit_propagates_along_links_in_both_directions() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        // parent <-> child: the child crashing takes the parent down.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let parent = node.spawn(move |p| async move {
            let child = ends_on_command(&p);
            tx.send(child).unwrap();
            std::future::pending::<()>().await;
        });
        let child = rx.await.unwrap();
        let parent_exit = parent.wait_exit();
        child.send(ExitReason::error("boom")).unwrap();
        assert_eq!(
            within("parent", parent_exit).await,
            ExitReason::error("boom")
        );

        // And the parent crashing takes the child down.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let parent = node.spawn(move |mut p| async move {
            tx.send(p.spawn_link(|mut q| async move {
                q.recv::<common::Never>().await;
            }))
            .unwrap();
            p.recv::<ExitReason>().await
        });
        let child = rx.await.unwrap();
        let child_exit = child.wait_exit();
        parent.send(ExitReason::error("parent failed")).unwrap();
        assert_eq!(
            within("child", child_exit).await,
            ExitReason::error("parent failed")
        );
    });
}

#[test]
fn a_normal_exit_does_not_take_linked_processes_down() {
    let rt = runtime();
    let alive = in_process(&rt, |mut p| async move {
        let child = ends_on_command(&p);
        let watch = child.wait_exit();
        child.send(ExitReason::Normal).unwrap();
        assert_eq!(watch.await, ExitReason::Normal);
        // Still here, and nothing arrived.
        p.recv_any_timeout(std::time::Duration::from_millis(10))
            .await
            .is_none()
    });
    assert!(alive);
}

#[test]
fn trap_exit_turns_exit_signals_into_messages() {
    let rt = runtime();
    let got = in_process(&rt, |mut p| async move {
        p.trap_exit(true);
        let crashing = ends_on_command(&p);
        let normal = ends_on_command(&p);
        crashing.send(ExitReason::error("bad")).unwrap();
        let first: Exit = p.recv().await;
        normal.send(ExitReason::Normal).unwrap();
        let second: Exit = p.recv().await;
        (
            first
                == Exit {
                    from: crashing,
                    reason: ExitReason::error("bad"),
                },
            second.reason,
        )
    });
    assert_eq!(got, (true, ExitReason::Normal));
}

#[test]
fn exit_signals_follow_erlang_rules() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        // exit(pid, normal) is ignored by a process that does not trap exits.
        let target = common::idle(&node);
        node.exit(&target, ExitReason::Normal);
        // exit(pid, shutdown) ends it with that reason.
        let exited = target.wait_exit();
        node.exit(&target, ExitReason::Shutdown);
        assert_eq!(within("shutdown", exited).await, ExitReason::Shutdown);

        // A trapping process receives exit signals as messages, from <0.0.0> here.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let opts = owl_runtime::SpawnOptions::new().trap_exit(true);
        let trapper = node.spawn_opts(opts, move |mut p| async move {
            let e: Exit = p.recv().await;
            tx.send(e).unwrap();
            p.recv::<common::Never>().await;
        });
        node.exit(&trapper, ExitReason::error("please stop"));
        let e = within("trapped exit", rx).await.unwrap();
        assert_eq!(e.reason, ExitReason::error("please stop"));
        assert_eq!(e.from.to_string(), "<0.0.0>");
        assert!(trapper.is_alive());
    });
}

#[test]
fn kill_cannot_be_trapped() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let trapper = node.spawn(move |mut p| async move {
            p.trap_exit(true);
            tx.send(()).unwrap();
            loop {
                let _ = p.recv_any().await;
            }
        });
        within("trap_exit set", rx).await.unwrap();
        let exited = trapper.wait_exit();
        assert!(node.kill(&trapper));
        assert_eq!(within("kill", exited).await, ExitReason::Killed);
        assert!(!node.kill(&trapper), "killing a dead process reports false");
    });
}

#[test]
fn a_killed_process_propagates_killed_which_linked_trappers_see() {
    let rt = runtime();
    let reason = in_process(&rt, |mut p| async move {
        p.trap_exit(true);
        let child = p.spawn_link(|mut q| async move {
            q.recv::<common::Never>().await;
        });
        p.node().kill(&child);
        let e: Exit = p.recv().await;
        e.reason
    });
    assert_eq!(reason, ExitReason::Killed);
}

#[test]
fn linking_to_a_dead_process_gives_noproc() {
    let rt = runtime();
    let reason = in_process(&rt, |mut p| async move {
        p.trap_exit(true);
        let gone = p.spawn(|_| async {});
        let down_ref = p.monitor(&gone);
        let _ = p
            .recv_match::<Down, _>(move |d| d.monitor == down_ref)
            .await;
        p.link(&gone);
        let e: Exit = p.recv().await;
        e.reason
    });
    assert_eq!(reason, ExitReason::NoProc);
}

/// Links join one node's processes (they are kept by pid number): a pid of
/// another runtime in the same OS process gets `NoProc`, and its process
/// is not linked — a crash here does not reach it.
#[test]
fn linking_to_a_process_of_another_node_gives_noproc() {
    let rt = runtime();
    let other_rt = runtime();
    let stranger = common::idle(&other_rt.node());
    let seen = stranger.clone();
    let reason = in_process(&rt, move |mut p| async move {
        p.trap_exit(true);
        p.link(&seen);
        let e: Exit = p.recv().await;
        e.reason
    });
    assert_eq!(reason, ExitReason::NoProc);
    assert!(stranger.is_alive());
    assert!(other_rt.node().info(&stranger).unwrap().links.is_empty());
}

#[test]
fn unlink_stops_propagation_and_drops_a_pending_exit_message() {
    let rt = runtime();
    let got = in_process(&rt, |mut p| async move {
        p.trap_exit(true);
        let child = ends_on_command(&p);
        let watch = child.wait_exit();
        child.send(ExitReason::error("late")).unwrap();
        watch.await;
        // The Exit message is (about to be) in our mailbox; unlink removes it.
        p.unlink(&child);
        let info = p.node().info(p.pid()).unwrap();
        (info.links.is_empty(), p.try_recv::<Exit>().is_none())
    });
    assert_eq!(got, (true, true));
}

#[test]
fn monitors_fire_once_with_the_reason() {
    let rt = runtime();
    let got = in_process(&rt, |mut p| async move {
        let (child, mref) = p.spawn_monitor(|mut q| async move {
            q.recv::<()>().await;
            Err::<(), _>("crashed on purpose")
        });
        child.send(()).unwrap();
        let down: Down = p.recv().await;
        let again = p
            .recv_timeout::<Down>(std::time::Duration::from_millis(20))
            .await;
        (
            down.monitor == mref,
            down.pid == child,
            down.reason,
            again.is_none(),
        )
    });
    assert_eq!(
        got,
        (true, true, ExitReason::error("crashed on purpose"), true)
    );
}

#[test]
fn monitoring_a_dead_pid_reports_noproc_at_once() {
    let rt = runtime();
    let reason = in_process(&rt, |mut p| async move {
        let (gone, first) = p.spawn_monitor(|_| async {});
        let _ = p.recv_match::<Down, _>(move |d| d.monitor == first).await;
        p.monitor(&gone);
        let down: Down = p.recv().await;
        down.reason
    });
    assert_eq!(reason, ExitReason::NoProc);
}

#[test]
fn demonitor_means_no_down_message() {
    let rt = runtime();
    let quiet = in_process(&rt, |mut p| async move {
        let target = common::idle(p.node());
        let mref = p.monitor(&target);
        p.demonitor(mref);
        let exited = target.wait_exit();
        p.node().kill(&target);
        exited.await;
        p.recv_timeout::<Down>(std::time::Duration::from_millis(20))
            .await
            .is_none()
    });
    assert!(quiet);
}

#[test]
fn monitors_and_links_are_visible_in_the_process_table() {
    let rt = runtime();
    let ok = in_process(&rt, |mut p| async move {
        let node = p.node().clone();
        let linked = ends_on_command(&p);
        let watched = common::idle(&node);
        p.monitor(&watched);
        let me = node.info(p.pid()).unwrap();
        let them = node.info(&watched).unwrap();
        let other = node.info(&linked).unwrap();
        me.links == vec![linked.clone()]
            && me.monitors == vec![watched.clone()]
            && them.monitored_by == vec![p.pid().clone()]
            && other.links == vec![p.pid().clone()]
    });
    assert!(ok);
}

#[test]
fn a_process_dying_while_monitoring_leaves_no_monitor_behind() {
    let rt = runtime();
    let node = rt.node();
    let target = common::idle(&node);
    rt.block_on(async {
        let t = target.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let watcher = node.spawn(move |mut p| async move {
            p.monitor(&t);
            tx.send(()).unwrap();
            p.recv::<()>().await;
        });
        within("the monitor", rx).await.unwrap();
        assert_eq!(
            node.info(&target).unwrap().monitored_by,
            vec![watcher.clone()]
        );
        let exited = watcher.wait_exit();
        watcher.send(()).unwrap();
        within("watcher", exited).await;
    });
    let info = node.info(&target).unwrap();
    assert!(info.monitored_by.is_empty(), "{:?}", info.monitored_by);
}

/// A task whose work was done before its process needed to exist (a
/// sandboxed call that returned in its first slice) still looks like a
/// process that ended `normal` to everyone the options name: its last
/// message first, then the `Exit` to a linked process trapping exits, then
/// the `Down`; a linked process not trapping exits lives on.
#[test]
fn a_task_finished_before_its_process_existed_tells_links_and_monitors_of_a_normal_exit() {
    let rt = runtime();
    let (order, bystander_answered, counted, gone, joined) = in_process(&rt, |mut p| async move {
        p.trap_exit(true);
        let me = p.pid().clone();
        let node = p.node().clone();
        let (spawned, exited, crashed) = node.lifecycle_counts();
        let opts = SpawnOptions::new()
            .link_to(me.clone())
            .monitored_by(me.clone());
        let done = node.finished_task(opts, |pid| {
            me.send(pid.clone()).unwrap();
            5050
        });
        let pid = done.pid().clone();
        let mut order = Vec::new();
        for _ in 0..3 {
            let msg: Message = within("the finished task's news", p.recv_any()).await;
            order.push(match msg.downcast::<Pid>() {
                Ok(from) => format!("message from itself: {}", from == pid),
                Err(msg) => match msg.downcast::<Exit>() {
                    Ok(exit) => format!("exit {} from itself: {}", exit.reason, exit.from == pid),
                    Err(msg) => {
                        let down = msg.downcast::<Down>().expect("a Down");
                        format!("down {} of itself: {}", down.reason, down.pid == pid)
                    }
                },
            });
        }
        // Linked to a process that does not trap exits: `normal` is ignored.
        let bystander = node.spawn(|mut q| async move {
            loop {
                let reply: tokio::sync::oneshot::Sender<()> = q.recv().await;
                let _ = reply.send(());
            }
        });
        node.finished_task(SpawnOptions::new().link_to(bystander.clone()), |_| ());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        bystander.send(tx).unwrap();
        let bystander_answered = within("the bystander's answer", rx).await.is_ok();
        // Two finished tasks and the bystander spawned; the two ended.
        let counted = node.lifecycle_counts() == (spawned + 3, exited + 2, crashed);
        let gone = !pid.is_alive() && node.lookup(pid.id()).is_none();
        (order, bystander_answered, counted, gone, done.join().await)
    });
    assert_eq!(
        order,
        [
            "message from itself: true",
            "exit normal from itself: true",
            "down normal of itself: true"
        ]
    );
    assert!(bystander_answered, "a normal exit took the bystander down");
    assert!(counted, "not counted as spawned and exited");
    assert!(gone, "its pid names a live process");
    assert_eq!(joined, Ok(5050));
}
