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
/// which a full mailbox never refuses.
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
/// [`server::start_link`](crate::server::start_link).
pub mod servers {}

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
/// With no subscriber at all, crash reports still reach stderr, as OTP's
/// logger prints to the terminal by default: a crash is never silent.
/// Reports of the same crash are summarised past a burst (five per ten
/// seconds per kind, then a count), so a loop of crashes cannot flood the
/// log; the counters ([`Node::lifecycle_counts`](crate::Node::lifecycle_counts)) stay exact.
///
/// The long-poll watchdog names a native process that holds a scheduler
/// longer than [`Config::long_poll_threshold`](crate::Config::long_poll_threshold):
/// 10 ms in release builds, 100 ms in debug builds (unoptimised code is
/// that much slower), or `OWL_LONG_POLL_MS`.
pub mod logging {}
