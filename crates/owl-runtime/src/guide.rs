//! A guide to owl-runtime, one page per concept, for a newcomer who has not
//! read the source. Each page has code that compiles and runs as a test.
//! Runnable programs are in `examples/` (`cargo run -p owl-runtime --example service`).

/// # Processes and messages
///
/// A process is an `async` body that receives its own [`Process`](crate::Process)
/// handle. It has a pid, a mailbox, and nothing shared with other processes
/// but what it sends. [`Pid::send`](crate::Pid::send) never blocks (like
/// Erlang's `!`); a receive takes the first message of the type asked for
/// (a selective receive), leaving the others queued in order.
///
/// ```
/// use owl_runtime::prelude::*;
///
/// let rt = Runtime::new(Config::default()).unwrap();
/// let node = rt.node();
/// let answer = rt.block_on(async move {
///     let doubler = node.spawn(|mut p| async move {
///         loop {
///             let (from, n): (Pid, i64) = p.recv().await;
///             let _ = from.send(n * 2);
///         }
///     });
///     node.spawn_task(move |mut p| async move {
///         doubler.send((p.pid().clone(), 21i64)).unwrap();
///         p.recv::<i64>().await
///     })
///     .join()
///     .await
/// });
/// assert_eq!(answer, Ok(42));
/// ```
///
/// A mailbox is unbounded unless [`SpawnOptions::mailbox_capacity`](crate::SpawnOptions::mailbox_capacity)
/// bounds it; then `send` reports `Full` and `send_wait` waits for room
/// (back pressure — see `examples/back_pressure.rs`). Answers to a
/// process's own requests go with [`Pid::send_reply`](crate::Pid::send_reply),
/// which a full mailbox never refuses. `Ok` from a send always means the
/// message is in the mailbox; a refusal gives the message back.
///
/// **Signals are not messages.** Exit signals and `Down`s never count
/// against a bounded mailbox and are never dropped. Signals from one
/// process to another arrive in the order sent, as on the BEAM: after
/// `p.exit(&server, reason)`, nothing `p` sends the server later is ever
/// taken from its mailbox — even if the server was busy in a long poll
/// when the exit arrived.
pub mod processes {}

/// # Links, monitors and exit signals
///
/// When a process ends, everything linked to it gets an *exit signal* with
/// the reason; a process that does not trap exits dies of any reason but
/// `normal`. A *monitor* is one-way and gentler: the watcher gets one
/// [`Down`](crate::Down) message, and the monitor is gone.
///
/// ```
/// use owl_runtime::prelude::*;
///
/// let rt = Runtime::new(Config::default()).unwrap();
/// let node = rt.node();
/// let reason = rt.block_on(async move {
///     node.spawn_task(|mut p| async move {
///         // Set before the child runs: even an instant crash is seen.
///         let (_child, _mref) = p.spawn_monitor(|_| async { panic!("13") });
///         p.recv::<Down>().await.reason
///     })
///     .join()
///     .await
/// });
/// assert!(matches!(reason, Ok(ExitReason::Panic(m)) if m.starts_with("13")));
/// ```
///
/// `Kill` (sent with [`Node::exit`](crate::Node::exit)) is untrappable.
/// [`SpawnOptions::monitored_by`](crate::SpawnOptions::monitored_by) lets a
/// third party (a supervisor) start a process that someone else watches.
pub mod links_and_monitors {}

/// # Supervisors
///
/// A supervisor starts its children in order, restarts them by strategy
/// (`one_for_one`, `one_for_all`, `rest_for_one`) and restart type
/// (permanent, transient, temporary), gives up past its restart intensity
/// (escalating to its own supervisor), and stops its children in reverse
/// order. A dynamic supervisor starts children on demand (like OTP's
/// `simple_one_for_one`). See `examples/supervision.rs`.
///
/// ```
/// use std::time::Duration;
/// use owl_runtime::prelude::*;
///
/// let rt = Runtime::new(Config::default()).unwrap();
/// let node = rt.node();
/// rt.block_on(async move {
///     let cache = ChildSpec::worker("cache", |args| async move {
///         Ok(args.spawn_link(|mut p| async move { p.recv::<()>().await; }))
///     });
///     let jobs = ChildSpec::supervisor("jobs", SupervisorSpec::dynamic().name("jobs"));
///     let spec = SupervisorSpec::new(Strategy::RestForOne)
///         .intensity(5, Duration::from_secs(10))
///         .child(cache)
///         .child(jobs);
///     let root = Supervisor::start(&node, spec).await.unwrap();
///     assert_eq!(root.count_children(Duration::from_secs(1)).await.unwrap().active, 2);
///     root.shutdown(Duration::from_secs(1)).await;
/// });
/// ```
///
/// The semantics follow OTP's `supervisor` (its own test suite's cases are
/// in `tests/otp_supervisor.rs`); docs/runtime.md lists the differences.
pub mod supervisors {}

/// # Servers
///
/// A [`Server`](crate::server::Server) owns state and answers requests one
/// at a time; each kind of request is a [`Handle`](crate::server::Handle)
/// implementation with its own reply type. A call always ends within its
/// timeout; a server can be registered under a name and found by type.
///
/// ```
/// use std::time::Duration;
/// use owl_runtime::prelude::*;
///
/// struct Greeter;
/// impl Server for Greeter {}
/// impl Handle<String> for Greeter {
///     type Reply = String;
///     async fn handle(&mut self, name: String, _: &mut Ctx<'_>) -> String {
///         format!("hello, {name}")
///     }
/// }
///
/// let rt = Runtime::new(Config::default()).unwrap();
/// let node = rt.node();
/// let reply = rt.block_on(async move {
///     server::start_named(&node, "greeter", Greeter, SpawnOptions::new()).await.unwrap();
///     let greeter = ServerRef::<Greeter>::whereis(&node, "greeter").unwrap();
///     greeter.call("owl".to_string(), Duration::from_secs(1)).await
/// });
/// assert_eq!(reply.unwrap(), "hello, owl");
/// ```
///
/// Under a supervisor, start servers with
/// [`server::start_link`](crate::server::start_link). A name already taken
/// refuses the start without a crash
/// ([`StartError::AlreadyStarted`](crate::StartError::AlreadyStarted)); a
/// failed start leaves no exit signal with the caller.
///
/// `terminate` runs when a server stops on purpose: a handler called
/// [`Ctx::stop`](crate::server::Ctx::stop), someone called
/// [`ServerRef::stop`](crate::server::ServerRef::stop), or its parent
/// (supervisor) stopped it. A server that does not trap exits is killed by
/// any other exit signal without it — as in OTP.
///
/// What a server may answer, and when, is the next page: [`replies`].
pub mod servers {}

/// # Replies: now, later, never
///
/// **Now.** A [`Handle`](crate::server::Handle) returns its reply; the
/// caller of [`call`](crate::server::ServerRef::call) gets it.
///
/// **Later.** A [`HandleLater`](crate::server::HandleLater) gets the
/// caller's [`ReplyTo`](crate::server::ReplyTo) and may keep it — in its
/// state, or in a message to another process — and go on serving others;
/// whoever holds it answers once with `send` (OTP's `{noreply, State}` and
/// `gen_server:reply/2`). The caller does not see the difference. Its
/// timeout holds all the same; a `ReplyTo` dropped unanswered ends the call
/// at once with `NoReply`. `examples/pool.rs` is a pool that answers "job
/// done" when the worker that ran the job reports it.
///
/// ```
/// use std::time::Duration;
/// use owl_runtime::prelude::*;
///
/// /// Answers a question once a helper process has worked it out.
/// struct Oracle;
/// impl Server for Oracle {}
/// struct Ask(u64);
/// impl HandleLater<Ask> for Oracle {
///     type Reply = u64;
///     async fn handle_later(&mut self, Ask(n): Ask, reply: ReplyTo<u64>, ctx: &mut Ctx<'_>) {
///         // The helper answers the caller directly; the oracle moves on.
///         ctx.spawn(move |_| async move { reply.send(n * n); });
///     }
/// }
///
/// let rt = Runtime::new(Config::default()).unwrap();
/// let node = rt.node();
/// let answer = rt.block_on(async move {
///     let oracle = server::start(&node, Oracle, SpawnOptions::new()).await.unwrap();
///     oracle.call(Ask(12), Duration::from_secs(1)).await
/// });
/// assert_eq!(answer, Ok(144));
/// ```
///
/// **Never.** A cast's reply is dropped. A call ends within its timeout,
/// whatever happens, and says what happened ([`CallError`](crate::server::CallError)):
///
/// | the call ends with | when | how soon |
/// |---|---|---|
/// | the reply | it came | when it came |
/// | `Full` | the target's bounded mailbox is full (the request was not sent; [`call_wait`](crate::server::ServerRef::call_wait) waits for room instead) | at once |
/// | `NoProcess` | the target is gone | at once |
/// | `Exited(reason)` | the target ended before answering | when it ended |
/// | `NoReply` | the target dropped the request (a dropped `ReplyTo`) | at once |
/// | `WrongKind` | the target is another kind of process | at once |
/// | `CallingSelf` | a process called itself | at once |
/// | `Timeout` | none of the above within the timeout | at the timeout |
///
/// [`send_request`](crate::server::ServerRef::send_request) sends now and
/// collects later (`gen_server:send_request/2`); a handle from
/// [`ServerRef::named`](crate::server::ServerRef::named) finds the server
/// by name at every call, so it never goes stale across restarts.
///
/// **Left out, on purpose.** `gen_server:multi_call` and `abcast` (calls to
/// a name on many nodes: owl's cluster does not route process messages),
/// `hibernate` (a waiting process here is already just its state, a few
/// hundred bytes), `format_status` (the process table and `Debug` cover
/// it), and `code_change` (native code is not hot-swapped; hot upgrades are
/// the sandbox's, for WebAssembly guests).
pub mod replies {}

/// # Introspection
///
/// Every process can be listed, measured and inspected while it runs:
/// [`Node::info`](crate::Node::info) (status, CPU time, reductions, mailbox,
/// memory, links, monitors, current activity), [`Node::top`](crate::Node::top)
/// (the busiest over an interval), [`Node::trace`](crate::Node::trace)
/// (messages in and out), [`supervisor::tree`](crate::supervisor::tree),
/// [`Node::scheduler_sample`](crate::Node::scheduler_sample) for
/// utilization. See `examples/introspection.rs`.
///
/// ```
/// use std::time::Duration;
/// use owl_runtime::prelude::*;
///
/// let rt = Runtime::new(Config::default()).unwrap();
/// let node = rt.node();
/// let pid = node.spawn_opts(SpawnOptions::new().label("worker"), |mut p| async move {
///     p.set_activity("waiting for work");
///     p.recv::<()>().await
/// });
/// let info = rt.block_on(async {
///     tokio::time::sleep(Duration::from_millis(10)).await;
///     node.info(&pid).unwrap()
/// });
/// assert_eq!((info.label.as_str(), info.current_activity.as_str()), ("worker", "receive"));
/// ```
pub mod introspection {}

/// # Logging: crashes are loud
///
/// Crash reports ("crash report: process <0.42.0> (…) exited: …"),
/// supervisor reports and watchdog warnings are [`tracing`] events. Install
/// a subscriber to see them the way you like — one line does:
///
/// ```no_run
/// tracing_subscriber::fmt().init();
/// ```
///
/// With no subscriber at all, crash reports and supervisor reports (a
/// child terminated, a restart failed, "reached maximum restart intensity;
/// shutting down", a child that would not stop) still reach stderr, as
/// OTP's logger prints to the terminal by default: neither is ever silent.
/// Reports of the same crash are summarised past a burst (five per ten
/// seconds per kind, then a count), so a loop of crashes cannot flood the
/// log; the counters ([`Node::lifecycle_counts`](crate::Node::lifecycle_counts)) stay exact.
///
/// The long-poll watchdog names a native process that holds a scheduler
/// longer than [`Config::long_poll_threshold`](crate::Config::long_poll_threshold):
/// 10 ms in release builds, 100 ms in debug builds (unoptimised code is
/// that much slower), or `OWL_LONG_POLL_MS`.
pub mod logging {}
