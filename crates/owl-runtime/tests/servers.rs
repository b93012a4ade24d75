//! The server behaviour (gen_server) and the task helper.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{in_process, runtime, within};
use owl_runtime::server::{
    self, CallError, Ctx, Handle, HandleLater, ReplyTo, Server, ServerRef, StartError,
};
use owl_runtime::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
use owl_runtime::{ExitReason, Message, SpawnOptions};

const T: Duration = Duration::from_secs(5);

/// A key-value store that logs its lifecycle.
#[derive(Default)]
struct Store {
    items: Vec<(String, u64)>,
    log: Arc<Mutex<Vec<String>>>,
    ticks: u32,
}

/// Requests, each with its own reply type.
struct Put(String, u64);
struct Get(String);
struct Sleep(Duration);
struct Crash;
struct Stop;

impl Server for Store {
    async fn init(&mut self, p: &mut Ctx<'_>) -> Result<(), ExitReason> {
        p.trap_exit(true);
        self.log.lock().unwrap().push("init".into());
        Ok(())
    }

    async fn handle_info(&mut self, msg: Message, _: &mut Ctx<'_>) {
        if msg.is::<&str>() {
            self.ticks += 1;
        }
    }

    async fn terminate(&mut self, reason: &ExitReason, _: &mut Ctx<'_>) {
        self.log.lock().unwrap().push(format!("terminate {reason}"));
    }
}

impl Handle<Put> for Store {
    type Reply = ();
    async fn handle(&mut self, Put(k, v): Put, _: &mut Ctx<'_>) {
        self.items.push((k, v));
    }
}

impl Handle<Get> for Store {
    type Reply = Option<u64>;
    async fn handle(&mut self, Get(k): Get, _: &mut Ctx<'_>) -> Option<u64> {
        self.items
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| *v)
    }
}

impl Handle<Sleep> for Store {
    type Reply = ();
    async fn handle(&mut self, Sleep(d): Sleep, _: &mut Ctx<'_>) {
        tokio::time::sleep(d).await;
    }
}

impl Handle<Crash> for Store {
    type Reply = ();
    async fn handle(&mut self, _: Crash, _: &mut Ctx<'_>) {
        panic!("asked to crash");
    }
}

impl Handle<Stop> for Store {
    type Reply = u32;
    async fn handle(&mut self, _: Stop, ctx: &mut Ctx<'_>) -> u32 {
        ctx.stop(ExitReason::Normal);
        self.ticks
    }
}

#[test]
fn calls_casts_and_info_messages_reach_their_callbacks() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let log = Arc::new(Mutex::new(Vec::new()));
        let store = Store {
            log: log.clone(),
            ..Default::default()
        };
        let s = server::start(&node, store, SpawnOptions::new())
            .await
            .unwrap();
        s.cast(Put("a".into(), 1)).unwrap();
        s.cast(Put("b".into(), 2)).unwrap();
        assert_eq!(s.call(Get("b".into()), T).await, Ok(Some(2)));
        assert_eq!(s.call(Get("zz".into()), T).await, Ok(None));
        // Info messages queue ahead of the call below, so both are handled first.
        s.pid().send("tick").unwrap();
        s.pid().send("tick").unwrap();
        let exited = s.pid().wait_exit();
        let ticks = s.call(Stop, T).await.unwrap();
        assert_eq!(within("stop", exited).await, ExitReason::Normal);
        assert_eq!(ticks, 2);
        assert_eq!(*log.lock().unwrap(), ["init", "terminate normal"]);
        assert_eq!(node.info(s.pid()).map(|i| i.label), None);
    });
}

#[test]
fn a_call_that_takes_too_long_times_out_and_a_crash_is_reported() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let s = server::start(&node, Store::default(), SpawnOptions::new())
            .await
            .unwrap();
        assert_eq!(node.info(s.pid()).unwrap().label, "Store");
        assert_eq!(
            s.call(Sleep(Duration::from_secs(60)), Duration::from_millis(20))
                .await,
            Err(CallError::Timeout)
        );
        let s2 = server::start(&node, Store::default(), SpawnOptions::new())
            .await
            .unwrap();
        match s2.call(Crash, T).await {
            Err(CallError::Exited(ExitReason::Panic(m))) => {
                assert!(m.contains("asked to crash"), "{m}")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(s2.call(Get("a".into()), T).await, Err(CallError::NoProcess));
        assert!(s2.cast(Put("a".into(), 1)).is_err());
    });
}

#[test]
fn a_reply_does_not_depend_on_other_messages_in_the_callers_mailbox() {
    let rt = runtime();
    let node = rt.node();
    let s = rt
        .block_on(server::start(&node, Store::default(), SpawnOptions::new()))
        .unwrap();
    let got = in_process(&rt, move |p| async move {
        for i in 0..100u64 {
            p.pid().send(i).unwrap();
        }
        s.cast(Put("k".into(), 9)).unwrap();
        let v = s.call(Get("k".into()), T).await.unwrap();
        (v, p.mailbox_len())
    });
    assert_eq!(got, (Some(9), 100));
}

struct FailsInit;

impl Server for FailsInit {
    async fn init(&mut self, _: &mut Ctx<'_>) -> Result<(), ExitReason> {
        Err(ExitReason::error("bad config"))
    }
}

#[test]
fn a_failing_init_is_returned_to_the_starter() {
    let rt = runtime();
    let node = rt.node();
    let err = rt
        .block_on(server::start(&node, FailsInit, SpawnOptions::new()))
        .unwrap_err();
    assert_eq!(err, StartError::Failed(ExitReason::error("bad config")));
    assert_eq!(node.process_count(), 0);
}

#[test]
fn a_supervised_server_runs_terminate_when_its_supervisor_stops() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let spec = SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::worker(
            "store",
            move |args| {
                let store = Store {
                    log: l.clone(),
                    ..Default::default()
                };
                async move { server::start_link(&args, store, SpawnOptions::new()).await }
            },
        ));
        let sup = Supervisor::start(&node, spec).await.unwrap();
        let pid = sup.which_children(T).await.unwrap()[0].pid.clone().unwrap();
        let store: ServerRef<Store> = ServerRef::from_pid(pid);
        store.cast(Put("x".into(), 1)).unwrap();
        assert_eq!(store.call(Get("x".into()), T).await, Ok(Some(1)));
        within("shutdown", sup.shutdown(T)).await;
        assert_eq!(*log.lock().unwrap(), ["init", "terminate shutdown"]);
    });
}

#[test]
fn tasks_return_results_or_crash_reasons() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let ok = node.spawn_task(|_| async { (1..=100u64).sum::<u64>() });
        assert_eq!(within("task", ok.join()).await, Ok(5050));
        let crash = node.spawn_task(|_| async {
            let input = std::hint::black_box(13);
            if input == 13 {
                panic!("unlucky {input}");
            }
            input
        });
        assert!(matches!(within("crash", crash.join()).await, Err(ExitReason::Panic(m)) if m.contains("unlucky 13")));
        let slow = node.spawn_task(|_| async { std::future::pending::<u8>().await });
        let pid = slow.pid().clone();
        assert_eq!(slow.join_timeout(Duration::from_millis(10)).await, Err(None));
        within("killed task", pid.wait_exit()).await;
        assert!(!pid.is_alive());
    });
}

/// A task's `join` hears how its process ended however it ended — here a
/// kill from outside — and waiting for a task is no monitor: the process
/// lists none (every task has this watch, and it costs no monitor entry).
#[test]
fn a_killed_task_joins_with_killed_and_its_join_is_not_a_monitor() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let task = node.spawn_task(|_| async { std::future::pending::<u8>().await });
        let info = node.info(task.pid()).expect("alive until killed");
        assert!(info.monitored_by.is_empty(), "{:?}", info.monitored_by);
        assert!(node.kill(task.pid()));
        assert_eq!(
            within("killed task", task.join()).await,
            Err(ExitReason::Killed)
        );
    });
}

/// A server of another kind, for calls that reach the wrong server.
struct Echo;

impl Server for Echo {}

impl Handle<u8> for Echo {
    type Reply = u8;
    async fn handle(&mut self, n: u8, _: &mut Ctx<'_>) -> u8 {
        n
    }
}

/// Keeps every deferred reply and never answers: its callers time out.
struct Hoarder(Vec<ReplyTo<u8>>);

impl Server for Hoarder {}

impl HandleLater<u8> for Hoarder {
    type Reply = u8;
    async fn handle_later(&mut self, _: u8, reply: ReplyTo<u8>, _: &mut Ctx<'_>) {
        self.0.push(reply);
    }
}

/// Drops every deferred reply unanswered.
struct Refuser;

impl Server for Refuser {}

impl HandleLater<u8> for Refuser {
    type Reply = u8;
    async fn handle_later(&mut self, _: u8, reply: ReplyTo<u8>, _: &mut Ctx<'_>) {
        drop(reply);
    }
}

/// Every call ends within its timeout, whatever the target does with the
/// request, and says which case it was: another kind of process fails at
/// once (`WrongKind`), a dropped reply at once (`NoReply`), a server that
/// keeps the request lets the timeout pass (`Timeout`).
#[test]
fn a_call_always_ends_within_its_timeout() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let short = Duration::from_millis(300);
        let echo = server::start(&node, Echo, SpawnOptions::new())
            .await
            .unwrap();

        // A name looked up and wrapped as the wrong kind of server.
        node.register("echo", echo.pid()).unwrap();
        let wrong: ServerRef<Store> = ServerRef::from_pid(node.whereis("echo").unwrap());
        let r = within(
            "a call to the wrong server",
            wrong.call(Get("k".into()), short),
        )
        .await;
        assert!(matches!(r, Err(CallError::WrongKind(_))), "{r:?}");

        // A supervisor request to a plain server.
        let not_a_sup = owl_runtime::supervisor::SupervisorRef::from_pid(echo.pid().clone());
        let r = within(
            "which_children of a server",
            not_a_sup.which_children(short),
        )
        .await;
        assert_eq!(r.unwrap_err(), CallError::WrongKind("supervisor"));

        // A plain process is no server.
        let plain = common::idle(&node);
        let plain_ref = ServerRef::<Echo>::from_pid(plain.clone());
        let r = within("a call to a plain process", plain_ref.call(1, short)).await;
        assert!(matches!(r, Err(CallError::WrongKind(_))), "{r:?}");

        // A reply dropped unanswered: told at once.
        let refuser = server::start(&node, Refuser, SpawnOptions::new())
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let r = within("a dropped reply", refuser.call(1u8, T)).await;
        assert_eq!(r, Err(CallError::NoReply));
        assert!(
            started.elapsed() < T / 5,
            "at once: {:?}",
            started.elapsed()
        );

        // A request kept and never answered: the timeout answers.
        let hoarder = server::start(&node, Hoarder(Vec::new()), SpawnOptions::new())
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let r = within("a kept request", hoarder.call(1u8, short)).await;
        assert_eq!(r, Err(CallError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(2));

        // The right server still answers.
        assert_eq!(echo.call(7, short).await, Ok(7));
        node.kill(&plain);
    });
}

/// Small things a Rust developer runs into first.
#[test]
fn pids_errors_and_reasons_behave_like_ordinary_rust_values() {
    let rt = runtime();
    let node = rt.node();
    let pid = common::idle(&node);
    // A pid prints as a pid, in `{}` and `{:?}`.
    assert_eq!(format!("{pid:?}"), pid.to_string());
    assert_eq!(format!("{:?}", pid.id()), pid.to_string());
    // `send(..).unwrap()` needs no `Debug` on the message type.
    struct Opaque;
    pid.send(Opaque).unwrap();
    // An exit reason is an error: `?` takes it into `Box<dyn Error>`.
    fn fails() -> Result<(), Box<dyn std::error::Error>> {
        Err(ExitReason::error("disk full"))?
    }
    assert_eq!(fails().unwrap_err().to_string(), "disk full");
    // `top` names what it lists.
    let top = rt.block_on(node.top(Duration::from_millis(20), 5));
    let row = top
        .iter()
        .find(|e| e.pid == pid)
        .expect("the idle process is listed");
    assert_eq!(row.label, "process");
    node.kill(&pid);
}

/// Names: a server registers at start; a typed lookup finds only a server
/// of the right kind; a name taken fails the start.
#[test]
fn servers_start_under_a_name_and_are_found_by_type() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let store = server::start_named(&node, "store", Store::default(), SpawnOptions::new())
            .await
            .unwrap();
        let found = ServerRef::<Store>::whereis(&node, "store").unwrap();
        assert_eq!(found.pid(), store.pid());
        assert!(
            ServerRef::<Echo>::whereis(&node, "store").is_none(),
            "not an Echo"
        );
        assert!(ServerRef::<Store>::whereis(&node, "nobody").is_none());
        let plain = common::idle(&node);
        node.register("plain", &plain).unwrap();
        assert!(
            ServerRef::<Store>::whereis(&node, "plain").is_none(),
            "not a server"
        );
        let taken = server::start_named(&node, "store", Echo, SpawnOptions::new()).await;
        assert_eq!(
            taken.unwrap_err(),
            StartError::AlreadyStarted(store.pid().clone())
        );
        found.cast(Put("a".into(), 1)).unwrap();
        assert_eq!(found.call(Get("a".into()), T).await, Ok(Some(1)));
        node.kill(&plain);
    });
}
