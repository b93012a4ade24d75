//! Processes, messages and mailboxes: what a process author relies on.

mod common;

use std::time::Duration;

use common::{in_process, runtime, within};
use owl_runtime::{ExitReason, Message, Pid, SendError, SpawnOptions, Status};

#[test]
fn messages_arrive_in_order_and_selective_receive_skips_other_types() {
    let rt = runtime();
    let got = in_process(&rt, |mut p| async move {
        let me = p.pid().clone();
        me.send(1u32).unwrap();
        me.send("text").unwrap();
        me.send(2u32).unwrap();
        // Take the string first although it arrived second.
        let s: &str = p.recv().await;
        let a: u32 = p.recv().await;
        let b: u32 = p.recv().await;
        (s, a, b, p.mailbox_len())
    });
    assert_eq!(got, ("text", 1, 2, 0));
}

#[test]
fn recv_match_takes_the_first_message_that_matches() {
    let rt = runtime();
    let got = in_process(&rt, |mut p| async move {
        for n in [1u32, 7, 3, 9] {
            p.pid().send(n).unwrap();
        }
        let big = p.recv_match::<u32, _>(|n| *n > 5).await;
        let rest: Vec<u32> = vec![p.recv().await, p.recv().await, p.recv().await];
        (big, rest)
    });
    assert_eq!(got, (7, vec![1, 3, 9]));
}

#[test]
fn recv_timeout_gives_up_and_leaves_the_mailbox_alone() {
    let rt = runtime();
    let got = in_process(&rt, |mut p| async move {
        p.pid().send(5u8).unwrap();
        let none = p.recv_timeout::<u64>(Duration::from_millis(20)).await;
        (none, p.mailbox_len(), p.try_recv::<u8>())
    });
    assert_eq!(got, (None, 1, Some(5)));
}

#[test]
fn recv_any_hands_out_messages_of_any_type() {
    let rt = runtime();
    let got = in_process(&rt, |mut p| async move {
        p.pid().send(3i64).unwrap();
        let msg: Message = p.recv_any().await;
        (msg.type_name(), msg.downcast::<i64>().ok())
    });
    assert_eq!(got, ("i64", Some(3)));
}

#[test]
fn a_process_knows_its_pid_and_pids_round_trip_through_text() {
    let rt = runtime();
    let node = rt.node();
    let pid = common::idle(&node);
    let text = pid.to_string();
    assert!(text.starts_with("<0.") && text.ends_with(".0>"), "{text}");
    assert_eq!(node.resolve(&text), Some(pid.clone()));
    let seen = in_process(&rt, |p| async move { p.pid().to_string() });
    assert_ne!(seen, text);
}

#[test]
fn sending_to_a_dead_process_reports_no_process() {
    let rt = runtime();
    let node = rt.node();
    let pid = node.spawn(|mut p| async move {
        p.recv::<()>().await;
    });
    let exited = pid.wait_exit();
    pid.send(()).unwrap();
    assert_eq!(rt.block_on(within("exit", exited)), ExitReason::Normal);
    assert_eq!(pid.send(1u8), Err(SendError::NoProcess(1)));
    assert!(!pid.is_alive());
    assert!(node.lookup(pid.id()).is_none());
}

#[test]
fn a_bounded_mailbox_reports_full_and_makes_senders_wait() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let consumer = node.spawn_opts(
            SpawnOptions::new().mailbox_capacity(2),
            move |mut p| async move {
                go_rx.await.unwrap();
                loop {
                    let n: u32 = p.recv().await;
                    seen_tx.send(n).unwrap();
                }
            },
        );
        consumer.send(1u32).unwrap();
        consumer.send(2u32).unwrap();
        assert_eq!(consumer.send(3u32), Err(SendError::Full(3)));
        assert_eq!(node.info(&consumer).unwrap().message_queue_len, 2);

        // An awaiting send blocks while the mailbox is full...
        let sender = tokio::spawn({
            let consumer = consumer.clone();
            async move { consumer.send_wait(3u32).await }
        });
        tokio::task::yield_now().await;
        assert!(!sender.is_finished());
        // ...and goes through once the consumer makes room.
        go_tx.send(()).unwrap();
        within("the waiting sender", sender).await.unwrap().unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(within("delivery", seen_rx.recv()).await.unwrap());
        }
        assert_eq!(got, vec![1, 2, 3]);
    });
}

#[test]
fn a_sender_waiting_on_a_full_mailbox_learns_when_the_process_dies() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let stuck = node.spawn_opts(
            SpawnOptions::new().mailbox_capacity(1),
            |mut p| async move {
                p.recv::<common::Never>().await;
            },
        );
        stuck.send(0u8).unwrap();
        let sender = tokio::spawn({
            let stuck = stuck.clone();
            async move { stuck.send_wait(1u8).await }
        });
        tokio::task::yield_now().await;
        node.kill(&stuck);
        assert_eq!(
            within("the sender", sender).await.unwrap(),
            Err(SendError::NoProcess(1))
        );
    });
}

#[test]
fn a_panicking_process_ends_alone_with_its_message_as_reason() {
    let rt = runtime();
    let node = rt.node();
    let bystander = common::idle(&node);
    let crasher = node.spawn(|mut p| async move {
        if p.recv::<u32>().await == 13 {
            panic!("13 is not allowed");
        }
    });
    let exited = crasher.wait_exit();
    crasher.send(13u32).unwrap();
    let reason = rt.block_on(within("the crash", exited));
    match reason {
        ExitReason::Panic(msg) => assert!(msg.contains("13 is not allowed"), "{msg}"),
        other => panic!("unexpected reason {other:?}"),
    }
    assert!(bystander.is_alive());
    let (_, _, crashed) = node.lifecycle_counts();
    assert!(crashed >= 1);
}

#[test]
fn process_bodies_may_return_errors_as_exit_reasons() {
    let rt = runtime();
    let node = rt.node();
    let failing = node.spawn(|mut p| async move {
        p.recv::<()>().await;
        Err::<(), _>("disk full".to_string())
    });
    let explicit = node.spawn(|mut p| async move {
        p.recv::<()>().await;
        ExitReason::Shutdown
    });
    let (failed, stopped) = (failing.wait_exit(), explicit.wait_exit());
    failing.send(()).unwrap();
    explicit.send(()).unwrap();
    rt.block_on(async {
        assert_eq!(within("exit", failed).await, ExitReason::error("disk full"));
        assert_eq!(within("exit", stopped).await, ExitReason::Shutdown);
    });
}

#[test]
fn wait_exit_on_an_already_dead_pid_is_noproc() {
    let rt = runtime();
    let node = rt.node();
    let pid = node.spawn(|_| async {});
    rt.block_on(async {
        within("exit", pid.wait_exit()).await;
        assert_eq!(within("noproc", pid.wait_exit()).await, ExitReason::NoProc);
    });
}

#[test]
fn introspection_reports_what_a_process_is_doing() {
    let rt = runtime();
    let node = rt.node();
    let parent = common::idle(&node);
    let pid = node.spawn_opts(
        SpawnOptions::new()
            .label("worker kind")
            .parent(parent.clone())
            .mailbox_capacity(8),
        |mut p| async move {
            p.set_activity("sum(1..n)");
            p.recv::<common::Never>().await;
        },
    );
    node.register("introspected", &pid).unwrap();
    pid.send(42u64).unwrap();
    let info = rt.block_on(async {
        loop {
            let info = node.info(&pid).unwrap();
            if info.status == Status::Waiting && info.message_queue_len == 1 {
                break info;
            }
            tokio::task::yield_now().await;
        }
    });
    assert_eq!(info.label, "worker kind");
    assert_eq!(info.name.as_deref(), Some("introspected"));
    assert_eq!(info.parent, Some(parent.id()));
    assert_eq!(info.current_activity, "receive");
    assert_eq!(info.mailbox_capacity, Some(8));
    assert!(info.reductions >= 1);
    assert!(
        info.memory_bytes > 200,
        "memory estimate {}",
        info.memory_bytes
    );
    assert!(info.started_at <= std::time::SystemTime::now());
    assert!(node.processes().iter().any(|i| i.pid == pid));
    assert!(node.process_samples().iter().any(|s| s.pid == pid));
}

/// A process's start time is when it was spawned, to the tenth of a second
/// the cell keeps — read well after the spawn, so a start time in the
/// wrong unit would land in the future (clamped to "now") and show.
#[test]
fn a_process_start_time_is_when_it_was_spawned() {
    use std::time::{Duration, SystemTime};
    let rt = runtime();
    let node = rt.node();
    // Some uptime first, so the start is not the node's own start.
    while node.uptime() < Duration::from_millis(250) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = SystemTime::now();
    let pid = node.spawn(|mut p| async move {
        let () = p.recv().await;
    });
    let after = SystemTime::now();
    let spawned_at = node.uptime();
    while node.uptime() < spawned_at + Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = node.info(&pid).unwrap().started_at;
    // Tenths of a second, rounded down, on a clock that ticks every few ms.
    assert!(
        started >= before - Duration::from_millis(150),
        "started {started:?}, spawned after {before:?}"
    );
    assert!(
        started <= after + Duration::from_millis(20),
        "started {started:?}, spawned before {after:?}"
    );
}

#[test]
fn cpu_time_and_reductions_grow_with_work() {
    let rt = runtime();
    let node = rt.node();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let worker = node.spawn(move |mut p| async move {
        for _ in 0..200 {
            let mut x = 0u64;
            for i in 0..20_000u64 {
                x = x.wrapping_add(std::hint::black_box(i * i));
            }
            std::hint::black_box(x);
            tokio::task::yield_now().await;
        }
        tx.send(()).unwrap();
        p.recv::<common::Never>().await;
    });
    rx.recv_timeout(common::LIMIT).unwrap();
    let idle = common::idle(&node);
    let busy = node.info(&worker).unwrap();
    let lazy = node.info(&idle).unwrap();
    assert!(busy.reductions >= 200, "{}", busy.reductions);
    assert!(busy.cpu_time > lazy.cpu_time);
    assert!(
        busy.cpu_time > Duration::from_micros(100),
        "{:?}",
        busy.cpu_time
    );
}

#[test]
fn a_blocking_native_process_is_reported_by_the_long_poll_watchdog() {
    let rt = owl_runtime::Runtime::new(
        owl_runtime::Config::default()
            .schedulers(2)
            .long_poll_threshold(Duration::from_millis(5)),
    )
    .unwrap();
    let node = rt.node();
    let (tx, rx) = std::sync::mpsc::channel::<Pid>();
    node.spawn(move |mut p| async move {
        std::thread::sleep(Duration::from_millis(30)); // blocks its scheduler
        tokio::task::yield_now().await; // ends the long poll
        tx.send(p.pid().clone()).unwrap();
        p.recv::<common::Never>().await;
    });
    let pid = rx.recv_timeout(common::LIMIT).unwrap();
    assert!(node.info(&pid).unwrap().long_polls >= 1);
    let quick = common::idle(&node);
    assert_eq!(node.info(&quick).unwrap().long_polls, 0);
}

#[test]
fn registered_names_are_unique_and_released_on_exit() {
    let rt = runtime();
    let node = rt.node();
    let a = node.spawn(|mut p| async move {
        p.recv::<()>().await;
    });
    let b = common::idle(&node);
    node.register("db", &a).unwrap();
    assert!(
        matches!(node.register("db", &b), Err(owl_runtime::RegisterError::NameTaken(p)) if p == a)
    );
    assert!(matches!(
        node.register("other", &a),
        Err(owl_runtime::RegisterError::AlreadyNamed(_))
    ));
    assert!(node.register("", &b).is_err());
    assert_eq!(node.resolve("db"), Some(a.clone()));
    let exited = a.wait_exit();
    a.send(()).unwrap();
    rt.block_on(within("exit", exited));
    assert_eq!(node.whereis("db"), None);
    node.register("db", &b).unwrap();
    assert!(node.unregister("db"));
    assert_eq!(node.whereis("db"), None);
    assert!(node.registered().is_empty());
}

#[test]
fn a_name_is_free_by_the_time_a_monitor_hears_of_the_exit() {
    let rt = runtime();
    let freed = in_process(&rt, |mut p| async move {
        let node = p.node().clone();
        let target = common::idle(&node);
        node.register("short-lived", &target).unwrap();
        p.monitor(&target);
        node.kill(&target);
        let _: owl_runtime::Down = p.recv().await;
        node.whereis("short-lived").is_none()
    });
    assert!(freed);
}

#[test]
fn groups_broadcast_to_members_and_forget_dead_ones() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Pid, String)>();
        let mut members = Vec::new();
        for _ in 0..3 {
            let tx = tx.clone();
            members.push(node.spawn(move |mut p| async move {
                loop {
                    let text: String = p.recv().await;
                    tx.send((p.pid().clone(), text)).unwrap();
                }
            }));
        }
        for m in &members {
            assert!(node.join("room", m));
        }
        assert!(node.join("room", &members[0]), "joining twice is harmless");
        assert_eq!(node.members("room"), members);
        assert_eq!(node.broadcast("room", "hi".to_string()), 3);
        let mut heard = Vec::new();
        for _ in 0..3 {
            heard.push(within("broadcast", rx.recv()).await.unwrap().0);
        }
        heard.sort();
        assert_eq!(heard, members);

        node.leave("room", &members[0]);
        let exited = members[1].wait_exit();
        node.kill(&members[1]);
        assert_eq!(within("exit", exited).await, ExitReason::Killed);
        assert_eq!(node.members("room"), vec![members[2].clone()]);
        assert_eq!(node.groups(), vec!["room".to_string()]);
    });
}

#[test]
fn timers_deliver_later_and_cancel_cleanly() {
    let rt = runtime();
    let got = in_process(&rt, |mut p| async move {
        let node = p.node().clone();
        let me = p.pid().clone();
        let cancelled = node.send_after(&me, Duration::from_secs(60), "cancelled");
        assert!(cancelled.cancel());
        assert!(!cancelled.cancel(), "cancelling twice reports false");
        node.send_after(&me, Duration::from_millis(10), "fired");
        let first: &str = p.recv().await;
        let ticker = node.send_interval(&me, Duration::from_millis(2), || 1u8);
        let ticks: u8 = p.recv::<u8>().await + p.recv::<u8>().await + p.recv::<u8>().await;
        assert!(ticker.cancel());
        (first, ticks)
    });
    assert_eq!(got, ("fired", 3));
}

#[test]
fn schedulers_online_can_be_changed_within_bounds_and_utilization_is_a_fraction() {
    let rt = runtime();
    let node = rt.node();
    let max = node.schedulers_online();
    assert!(max >= 1);
    assert_eq!(node.set_schedulers_online(1), Ok(max));
    assert_eq!(node.schedulers_online(), 1);
    assert!(node.set_schedulers_online(0).is_err());
    assert!(node.set_schedulers_online(node.schedulers() + 1).is_err());
    node.set_schedulers_online(max).unwrap();

    let before = node.scheduler_sample();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    node.spawn(move |_| async move {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(60) {
            std::hint::black_box(0u64);
        }
        tx.send(()).unwrap();
    });
    rx.recv_timeout(common::LIMIT).unwrap();
    let usage = node.scheduler_sample().utilization_since(&before);
    assert!((0.0..=1.0).contains(&usage.total));
    assert_eq!(usage.per_scheduler.len(), node.schedulers());
    assert!(
        usage.per_scheduler.iter().any(|&u| u > 0.3),
        "a busy loop shows up as utilization: {usage:?}"
    );
}

#[test]
fn ten_thousand_spawn_and_kill_cycles_leave_no_process_behind() {
    let rt = runtime();
    let node = rt.node();
    let before = node.process_count();
    rt.block_on(async {
        for _ in 0..10_000 {
            let pid = common::idle(&node);
            let exited = pid.wait_exit();
            node.kill(&pid);
            assert_eq!(exited.await, ExitReason::Killed);
        }
    });
    assert_eq!(node.process_count(), before);
}

#[test]
fn sleep_lasts_at_least_its_duration_shows_as_activity_and_survives_other_wakeups() {
    let rt = runtime();
    let node = rt.node();
    let (tx, rx) = std::sync::mpsc::channel::<Duration>();
    let sleeper = node.spawn(move |p| async move {
        let start = std::time::Instant::now();
        p.sleep(Duration::from_millis(80)).await;
        tx.send(start.elapsed()).unwrap();
    });
    rt.block_on(async {
        loop {
            let info = node.info(&sleeper).unwrap();
            if info.current_activity == "sleep" {
                break;
            }
            tokio::task::yield_now().await;
        }
    });
    // A message wakes the process's task, but the sleep goes on.
    sleeper.send(1u8).unwrap();
    let slept = rx.recv_timeout(common::LIMIT).unwrap();
    assert!(slept >= Duration::from_millis(80), "{slept:?}");
}

#[test]
fn many_sleepers_wake_in_deadline_order() {
    let rt = runtime();
    let order = in_process(&rt, |mut p| async move {
        let me = p.pid().clone();
        for ms in [30u64, 10, 20] {
            let me = me.clone();
            p.spawn(move |q| async move {
                q.sleep(Duration::from_millis(ms)).await;
                me.send(ms).unwrap();
            });
        }
        vec![
            p.recv::<u64>().await,
            p.recv::<u64>().await,
            p.recv::<u64>().await,
        ]
    });
    assert_eq!(order, vec![10, 20, 30]);
}

#[test]
fn a_sleeping_process_can_be_killed() {
    let rt = runtime();
    let node = rt.node();
    let sleeper = node.spawn(|p| async move { p.sleep(Duration::from_secs(3600)).await });
    let exited = sleeper.wait_exit();
    node.kill(&sleeper);
    assert_eq!(rt.block_on(within("kill", exited)), ExitReason::Killed);
}
