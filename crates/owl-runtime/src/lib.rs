//! # owl-runtime
//!
//! The BEAM's building blocks for Rust, on tokio: lightweight processes with
//! an identity and a mailbox, links, monitors and exit signals, OTP-style
//! supervisors and servers, a name registry, process groups, timers, and
//! introspection of every process (CPU time, reductions, mailbox, memory,
//! current activity), plus scheduler utilization and a watchdog that names
//! native processes that block a scheduler.
//!
//! A process is an `async` body that receives its own [`Process`] handle:
//!
//! ```
//! use owl_runtime::{Runtime, Down, ExitReason};
//!
//! let rt = Runtime::new(Default::default()).unwrap();
//! let node = rt.node();
//! let reason = rt.block_on(async move {
//!     let (tx, rx) = tokio::sync::oneshot::channel();
//!     node.spawn(|mut p| async move {
//!         // A crash is local: only the failing process ends, and its monitor hears why.
//!         let (_child, _mref) = p.spawn_monitor(|_| async { panic!("13") });
//!         let down: Down = p.recv().await;
//!         tx.send(down.reason).unwrap();
//!     });
//!     rx.await.unwrap()
//! });
//! assert!(matches!(reason, ExitReason::Panic(msg) if msg.starts_with("13")));
//! ```
//!
//! Module map: [`process`] (spawn, receive, links, monitors), [`supervisor`]
//! (restart strategies and intensity), [`server`] (gen_server-like calls and
//! casts), [`task`] (await one computation or its crash), [`timer`],
//! registry and groups on [`Node`], [`info`] (the process table), [`trace`]
//! (messages in and out of one process) and
//! [`scheduler`] (utilization, schedulers online, long-poll watchdog).
//!
//! ## Where to start
//!
//! - [`guide`]: one page per concept (processes, links and monitors,
//!   supervision, servers, back pressure, introspection, logging), each with
//!   code that runs as a test.
//! - [`prelude`]: `use owl_runtime::prelude::*;` brings the names a typical
//!   program needs.
//! - `examples/`: whole programs — `service` (a supervised counter server
//!   with a name), `supervision` (restart strategies and intensity, live),
//!   `back_pressure` (bounded mailboxes), `introspection` (the process table
//!   and `top`). Run one with `cargo run -p owl-runtime --example service`.
//!
//! ## How the modules depend on each other
//!
//! Everything above the process core is layered: [`server`], [`supervisor`],
//! [`timer`], [`task`], [`info`] and the private `call` and `lifecycle`
//! modules use the core and nothing uses them back. The core itself is one
//! knot on purpose: a [`Node`] owns the table of process cells, the run
//! queues, the registry, the groups and the trace state, while a process cell
//! (and every [`Pid`], which carries its cell for a lock-free local send) must
//! reach its node to schedule itself, to unregister its names, to leave its
//! groups and to report its exit. Cutting that loop would put a trait object
//! and a virtual call on every send and every wake-up, the paths the
//! benchmarks measure. So `node`, `pid`, `message`, `process` (with its
//! `cell` and `task`), `scheduler`, `registry`, `group` and `trace` import one
//! another, and each keeps one concept: `registry.rs` holds names and their
//! `impl Node` methods, `group.rs` groups, `trace.rs` tracing, and so on. The
//! workspace test `module_graph` fails on any other import cycle, and on
//! this one growing.
//!
//! Crash and supervisor reports go through [`tracing`](https://docs.rs/tracing);
//! with no subscriber installed they are printed to stderr, rate-limited to
//! five per ten seconds per kind, so a crash loop cannot flood a log.

pub mod busy;
mod call;
pub mod exit;
mod group;
pub mod guide;
pub mod info;
pub mod label;
mod label_count;
mod lifecycle;
mod log_limit;
pub mod message;
pub mod node;
pub mod pid;
pub mod prelude;
pub mod priority;
pub mod process;
mod registry;
pub mod scheduler;
pub mod server;
mod shards;
pub mod sleep;
pub mod supervisor;
pub mod sys;
pub mod task;
pub mod timer;
pub mod trace;

pub use busy::Busiest;
pub use exit::{ExitReason, IntoExitReason};
pub use info::{ProcessInfo, ProcessSample, Status, TopEntry};
pub use label::Label;
pub use message::{Down, Exit, Message};
pub use node::{Config, Node, RunQueues, Runtime};
pub use pid::{MonitorRef, ParsePidError, Pid, PidId};
pub use priority::Priority;
pub use process::{Measured, Process, SendError, SpawnOptions, WorkMeter};
pub use registry::RegisterError;
pub use scheduler::{SchedulerSample, SchedulersOutOfRange, Utilization};
pub use server::{CallError, StartError};
pub use task::Task;
pub use timer::TimerRef;
