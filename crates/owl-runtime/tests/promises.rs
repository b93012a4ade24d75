//! The runtime keeps what it prints and what OTP promises: a cast answered
//! `Ok` is in the mailbox, signals from one process arrive in order, calls
//! fail fast and say why, a refused start is no crash, supervisors' limits
//! and batches are honest, reports are never silent.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{in_process, runtime, within};
use owl_runtime::prelude::*;
use owl_runtime::supervisor::Batch;

/// Counts what it is sent; answers how many.
#[derive(Default)]
struct Tally(u64);

impl Server for Tally {}

struct Tick;
impl Handle<Tick> for Tally {
    type Reply = ();
    async fn handle(&mut self, _: Tick, _: &mut Ctx<'_>) {
        self.0 += 1;
    }
}

struct Count;
impl Handle<Count> for Tally {
    type Reply = u64;
    async fn handle(&mut self, _: Count, _: &mut Ctx<'_>) -> u64 {
        self.0
    }
}

/// Holds its handler for a while (a computation inside one poll).
struct Busy(Duration);
impl Handle<Busy> for Tally {
    type Reply = ();
    async fn handle(&mut self, Busy(d): Busy, _: &mut Ctx<'_>) {
        std::thread::sleep(d);
    }
}

/// Calls itself from inside a request.
struct CallMyself;
impl Handle<CallMyself> for Tally {
    type Reply = Result<u64, CallError>;
    async fn handle(&mut self, _: CallMyself, ctx: &mut Ctx<'_>) -> Result<u64, CallError> {
        let me = ServerRef::<Tally>::from_pid(ctx.pid().clone());
        me.call(Count, Duration::from_secs(5)).await
    }
}

const T: Duration = Duration::from_secs(10);

/// Four tasks cast 20,000 messages each at a server whose mailbox holds
/// four: every cast answered `Ok` is handled, every other one came back
/// `Full` with its message. (The check and the push were once two steps:
/// 1 to 80 `Ok`s of a run were lost.)
#[test]
fn every_cast_answered_ok_is_handled() {
    let rt = Runtime::new(Config::default().schedulers(4)).unwrap();
    let node = rt.node();
    rt.block_on(async move {
        let server = server::start(
            &node,
            Tally::default(),
            SpawnOptions::new().mailbox_capacity(4),
        )
        .await
        .unwrap();
        let casters: Vec<_> = (0..4)
            .map(|_| {
                let server = server.clone();
                tokio::spawn(async move {
                    let (mut ok, mut full) = (0u64, 0u64);
                    for _ in 0..20_000 {
                        match server.cast(Tick) {
                            Ok(()) => ok += 1,
                            Err(SendError::Full(Tick)) => full += 1,
                            Err(SendError::NoProcess(_)) => panic!("the server is alive"),
                        }
                        if (ok + full) % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    (ok, full)
                })
            })
            .collect();
        let mut answered_ok = 0;
        for caster in casters {
            let (ok, full) = caster.await.unwrap();
            assert_eq!(ok + full, 20_000);
            answered_ok += ok;
        }
        let handled = server.call_wait(Count, T).await.unwrap();
        assert_eq!(handled, answered_ok, "casts answered Ok but never handled");
    });
}

/// A call sent after an `exit` by the same process must fail, as on the
/// BEAM (signals from one sender arrive in order) — even when the target
/// is inside a long poll when the exit arrives and finds the call in its
/// mailbox afterwards.
#[test]
fn a_call_after_an_exit_from_the_same_process_never_succeeds() {
    let rt = runtime();
    in_process(&rt, |p| async move {
        for round in 0..20 {
            let server = server::start(p.node(), Tally::default(), SpawnOptions::new())
                .await
                .unwrap();
            server.cast(Busy(Duration::from_millis(20))).unwrap();
            // Inside its busy poll now (it took the request).
            while p
                .node()
                .info(server.pid())
                .is_some_and(|i| i.message_queue_len != 0)
            {
                tokio::task::yield_now().await;
            }
            p.exit(server.pid(), ExitReason::error("boom"));
            let answer = server.call(Count, T).await;
            assert_eq!(
                answer,
                Err(CallError::Exited(ExitReason::error("boom"))),
                "round {round}"
            );
        }
    });
}

/// The caller can always tell why a call failed: a full mailbox at once,
/// a dead server at once, itself, a slow server after the timeout — and a
/// caller that waits for room learns how a server that died meanwhile ended.
#[test]
fn calls_fail_fast_and_say_why() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let server = server::start(
            &node,
            Tally::default(),
            SpawnOptions::new().mailbox_capacity(1),
        )
        .await
        .unwrap();
        // Busy for a while, with one more request queued: full.
        server.cast(Busy(Duration::from_millis(300))).unwrap();
        within("the busy handler to start", async {
            while node
                .info(server.pid())
                .is_some_and(|i| i.message_queue_len != 0)
            {
                tokio::task::yield_now().await;
            }
        })
        .await;
        server.cast(Tick).unwrap();
        let started = Instant::now();
        assert_eq!(server.call(Count, T).await, Err(CallError::Full));
        assert!(started.elapsed() < T / 5, "at once, not after the timeout");
        // Slow: the timeout answers.
        assert_eq!(
            server.call_wait(Count, Duration::from_millis(50)).await,
            Err(CallError::Timeout)
        );
        // Waiting for room while the server dies: its exit reason.
        let waiting = {
            let server = server.clone();
            tokio::spawn(async move { server.call_wait(Count, T).await })
        };
        tokio::task::yield_now().await;
        node.exit(server.pid(), ExitReason::error("disk gone"));
        assert_eq!(
            within("the waiting call", waiting).await.unwrap(),
            Err(CallError::Exited(ExitReason::error("disk gone")))
        );
        // Dead: at once.
        let started = Instant::now();
        assert_eq!(server.call(Count, T).await, Err(CallError::NoProcess));
        assert!(started.elapsed() < T / 5);
        // Itself: at once, not after the timeout.
        let me = server::start(&node, Tally::default(), SpawnOptions::new())
            .await
            .unwrap();
        let started = Instant::now();
        assert_eq!(
            me.call(CallMyself, T).await,
            Ok(Err(CallError::CallingSelf))
        );
        assert!(started.elapsed() < T / 5);
    });
}

/// A start refused because the name is taken is no crash (OTP): the caller
/// gets `AlreadyStarted` with the holder, no crash report is written, and
/// neither a trapping nor a plain caller gets an exit signal.
#[test]
fn a_refused_start_is_no_crash_and_leaves_nothing_behind() {
    let rt = runtime();
    let node = rt.node();
    let holder = rt.block_on(async {
        server::start_named(&node, "tally", Tally::default(), SpawnOptions::new())
            .await
            .unwrap()
    });
    let crashed_before = node.lifecycle_counts().2;
    let holder_pid = holder.pid().clone();
    in_process(&rt, move |mut p| async move {
        // Linked, not trapping: a crash of the refused process would kill us.
        let args = StartArgs {
            node: p.node().clone(),
            supervisor: p.pid().clone(),
            priority: owl_runtime::Priority::Normal,
        };
        let refused =
            server::start_link_named(&args, Some("tally"), Tally::default(), SpawnOptions::new())
                .await;
        assert_eq!(
            refused.unwrap_err(),
            ExitReason::error(format!("already started as {holder_pid}"))
        );
        // Trapping: nothing arrives either.
        p.trap_exit(true);
        let again =
            server::start_link_named(&args, Some("tally"), Tally::default(), SpawnOptions::new())
                .await;
        assert!(again.is_err());
        // And a failed `init` leaves no `Exit` in our mailbox (OTP 26).
        struct Failing;
        impl Server for Failing {
            async fn init(&mut self, _: &mut Ctx<'_>) -> Result<(), ExitReason> {
                Err(ExitReason::error("no config"))
            }
        }
        let failed = server::start_link(&args, Failing, SpawnOptions::new()).await;
        assert_eq!(failed.unwrap_err(), ExitReason::error("no config"));
        assert!(p.try_recv::<Exit>().is_none(), "no exit signal left behind");
    });
    // The refusals wrote no crash report (the failed init is a real failure).
    assert_eq!(node.lifecycle_counts().2, crashed_before + 1);
    let unlinked = rt.block_on(async {
        server::start_named(&node, "tally", Tally::default(), SpawnOptions::new()).await
    });
    assert_eq!(
        unlinked.unwrap_err(),
        StartError::AlreadyStarted(holder.pid().clone())
    );
}

/// `max_children` means something only for a dynamic supervisor: a static
/// one with it is refused as an invalid spec.
#[test]
fn max_children_on_a_static_supervisor_is_refused() {
    let rt = runtime();
    let node = rt.node();
    let refused = rt.block_on(Supervisor::start(
        &node,
        SupervisorSpec::new(Strategy::OneForOne).max_children(3),
    ));
    let Err(StartError::Failed(reason)) = refused else {
        panic!("{refused:?}")
    };
    assert!(
        reason.to_string().contains("dynamic supervisor"),
        "{reason}"
    );
}

/// A batch says what it did: all of it, part of it (and why), or none.
#[test]
fn a_batch_of_children_reports_partial_starts() {
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let sup = Supervisor::start(&node, SupervisorSpec::dynamic().max_children(3))
            .await
            .unwrap();
        let sleeper = ChildSpec::dynamic_worker(|args| async move {
            Ok(args.spawn_link(|mut p| async move { p.recv::<()>().await }))
        })
        .restart(Restart::Temporary);
        let first = sup.start_children(sleeper.clone(), 5, T).await.unwrap();
        assert_eq!(
            first,
            Batch {
                requested: 5,
                started: 3,
                stopped_by: Some(ChildError::MaxChildren)
            }
        );
        let none = sup.start_children(sleeper, 2, T).await.unwrap();
        assert_eq!(none.started, 0);
        assert_eq!(none.stopped_by, Some(ChildError::MaxChildren));

        // A start that fails part-way stops the batch and says why.
        let jobs = Supervisor::start(&node, SupervisorSpec::dynamic())
            .await
            .unwrap();
        let n = Arc::new(AtomicUsize::new(0));
        let flaky = ChildSpec::dynamic_worker(move |args| {
            let n = n.clone();
            async move {
                if n.fetch_add(1, Ordering::Relaxed) == 2 {
                    return Err(ExitReason::error("third one fails"));
                }
                Ok(args.spawn_link(|mut p| async move { p.recv::<()>().await }))
            }
        })
        .restart(Restart::Temporary);
        let partial = jobs.start_children(flaky, 10, T).await.unwrap();
        assert_eq!(partial.started, 2);
        assert_eq!(
            partial.stopped_by,
            Some(ChildError::StartFailed(ExitReason::error(
                "third one fails"
            )))
        );
        assert!(!partial.is_complete());
    });
}

/// A server stopped on request finishes what is in its mailbox, runs
/// `terminate`, and ends with the reason asked for (`gen_server:stop/3`).
#[test]
fn a_server_stops_on_request_after_its_terminate() {
    struct Careful(Arc<AtomicUsize>);
    impl Server for Careful {
        async fn terminate(&mut self, reason: &ExitReason, _: &mut Ctx<'_>) {
            assert_eq!(reason, &ExitReason::shutdown_with("maintenance"));
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let rt = runtime();
    let node = rt.node();
    rt.block_on(async move {
        let terminated = Arc::new(AtomicUsize::new(0));
        let careful = server::start(&node, Careful(terminated.clone()), SpawnOptions::new())
            .await
            .unwrap();
        let ended = careful.pid().wait_exit();
        careful
            .stop(ExitReason::shutdown_with("maintenance"), T)
            .await
            .unwrap();
        assert_eq!(ended.await, ExitReason::shutdown_with("maintenance"));
        assert_eq!(terminated.load(Ordering::Relaxed), 1);
        assert_eq!(
            careful.stop(ExitReason::Normal, T).await,
            Err(CallError::NoProcess)
        );
    });
}

/// Every public error of the runtime is a `std::error::Error`.
#[test]
fn errors_are_errors() {
    fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
    is_error::<CallError>();
    is_error::<StartError>();
    is_error::<ChildError>();
    is_error::<SendError<()>>();
    is_error::<ExitReason>();
    is_error::<owl_runtime::SchedulersOutOfRange>();
    is_error::<owl_runtime::supervisor::InvalidSpec>();
    is_error::<owl_runtime::RegisterError>();
    is_error::<owl_runtime::ParsePidError>();
}

/// Supervisor reports reach stderr when no `tracing` subscriber is
/// installed, as crash reports do: "reached maximum restart intensity"
/// is never silent. (Run in a fresh process, where nothing installed one.)
#[test]
fn supervisor_reports_reach_stderr_without_a_subscriber() {
    if std::env::var_os("OWL_REPORTS_CHILD").is_some() {
        let rt = runtime();
        let node = rt.node();
        rt.block_on(async move {
            let crasher = ChildSpec::worker("crasher", |args| async move {
                Ok(args.spawn_link(|_| async { ExitReason::error("always") }))
            });
            let spec = SupervisorSpec::new(Strategy::OneForOne)
                .intensity(2, Duration::from_secs(5))
                .child(crasher);
            // It gives up at once; the start may fail or the supervisor end.
            if let Ok(sup) = Supervisor::start(&node, spec).await {
                sup.pid().wait_exit().await;
            }
        });
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "supervisor_reports_reach_stderr_without_a_subscriber",
            "--nocapture",
        ])
        .env("OWL_REPORTS_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("supervisor report"), "{stderr}");
    assert!(stderr.contains("child \"crasher\""), "{stderr}");
    assert!(
        stderr.contains("reached maximum restart intensity"),
        "{stderr}"
    );
}
