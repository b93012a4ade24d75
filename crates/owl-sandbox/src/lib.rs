//! # owl-sandbox
//!
//! Sandboxed owl processes: code that may misbehave (loop forever, crash,
//! eat memory) runs as a WebAssembly guest on wasmtime, inside an ordinary owl
//! process — same pid, links, monitors, exit reasons, supervision and process
//! table as a native one — but *preempted* (it yields to its executor every
//! epoch tick, 100 µs by default, ten ticks once it runs long),
//! *memory-limited* (16 MiB by default, a clean crash beyond), *killable at
//! any instruction*, and *hot-swappable* through a code server with
//! numbered module versions.
//!
//! Guests run on their own executor, so a runaway guest never holds the
//! schedulers that run native processes (web sessions, supervisors).
//!
//! A module that holds no state and says so (see [`reuse`]) has its
//! instances kept from call to call: a short call then costs about as much
//! as two native processes, not a fresh WebAssembly instance.
//!
//! ```
//! use owl_runtime::{Runtime, SpawnOptions};
//! use owl_sandbox::{Sandbox, SandboxConfig};
//!
//! let rt = Runtime::new(Default::default()).unwrap();
//! let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
//! sandbox
//!     .load("double", br#"(module (func (export "run") (param i64) (result i64)
//!         (i64.mul (local.get 0) (i64.const 2))))"#)
//!     .unwrap();
//! let node = rt.node();
//! let out = rt.block_on(async move {
//!     let task = sandbox.spawn(&node, "double", "run", vec![21], SpawnOptions::new()).unwrap();
//!     task.join().await.unwrap()
//! });
//! assert_eq!(out.values, vec![42]);
//! ```

mod admission;
mod code;
mod executor;
mod guest;
mod host_state;
pub mod reuse;
mod settings;
mod stack_requests;
mod ticker;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use owl_runtime::{ExitReason, Node, Pid, SpawnOptions, Task};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use code::{LoadError, MAX_COMPILED_BYTES, MAX_SOURCE_BYTES, ModuleInfo};
pub use settings::CallCounts;

/// How long a candidate version may take to instantiate (and answer its
/// canary) in a trial run before it is refused.
pub const TRIAL_DEADLINE: Duration = Duration::from_secs(1);

/// A known-answer call a candidate version must pass before it replaces
/// the current one (see [`Sandbox::upgrade`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canary {
    /// The exported function to call.
    pub function: String,
    /// Its arguments.
    pub args: Vec<i64>,
    /// The results it must return (`i32` results sign-extended).
    pub expected: Vec<i64>,
}

/// Limits and timing of a [`Sandbox`]. The defaults are the ones the crate
/// documentation promises:
///
/// ```
/// use std::time::Duration;
/// use owl_sandbox::SandboxConfig;
///
/// let config = SandboxConfig::default();
/// assert_eq!(config.epoch_tick, Duration::from_micros(100));
/// assert_eq!(config.memory_limit, 16 << 20);
/// assert_eq!((config.max_processes, config.guest_threads), (1000, 1));
/// ```
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Linear memory one guest may use (default 16 MiB).
    pub memory_limit: usize,
    /// Sandboxed processes that may run at once (admission control; default 1,000).
    pub max_processes: usize,
    /// How often young guests yield — a call in its first slice, or in its
    /// first few slices on the guest threads: the longest a fresh call waits
    /// behind a runaway (default 100 µs). While no call is young the clock
    /// ticks ten times slower (long-running guests then share the guest
    /// threads in slices of ten ticks), so a call that starts then may hold
    /// its scheduler up to ten ticks before it moves to the guest threads.
    pub epoch_tick: Duration,
    /// Worker threads of the guest executor (default 1).
    pub guest_threads: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            memory_limit: 16 << 20,
            max_processes: 1000,
            epoch_tick: Duration::from_micros(100),
            guest_threads: 1,
        }
    }
}

/// Why a sandboxed process was not started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// No module of that name is loaded.
    NoSuchModule(String),
    /// The module has no such function, or it takes a different number of arguments.
    NoSuchFunction(String),
    /// `max_processes` sandboxed processes are running already.
    Overloaded,
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::NoSuchModule(m) => write!(f, "no module named {m:?}"),
            SpawnError::NoSuchFunction(m) => write!(f, "no such function: {m}"),
            SpawnError::Overloaded => {
                f.write_str("overloaded: too many sandboxed processes running")
            }
        }
    }
}
impl std::error::Error for SpawnError {}

/// Why [`Sandbox::stack`] shows no stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StackError {
    /// The process is not a running sandboxed process: a native one, or
    /// one that has ended.
    NotAGuest,
    /// It is one, but it reached no epoch tick within the timeout: the
    /// guest threads are too busy to run it just now.
    NoAnswer,
}

impl std::fmt::Display for StackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StackError::NotAGuest => "not a running sandboxed process",
            StackError::NoAnswer => {
                "the guest did not show its stack in time (its threads are busy)"
            }
        })
    }
}
impl std::error::Error for StackError {}

/// What a sandboxed call returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestOutput {
    /// The function's results (`i32` results sign-extended).
    pub values: Vec<i64>,
    /// For a byte call ([`Sandbox::spawn_bytes`]), the bytes its
    /// `(status, ptr, len)` results pointed at; `None` for other calls.
    pub bytes: Option<Vec<u8>>,
    /// The module version that ran.
    pub version: u32,
}

struct Inner {
    engine: Engine,
    code: code::CodeServer,
    guests: executor::GuestExecutor,
    admission: Arc<admission::Admission>,
    /// What the epoch ticker needs to know to tick fast or slow.
    pace: Arc<ticker::Pace>,
    /// Spawns refused by admission control since start.
    refused: std::sync::atomic::AtomicU64,
    /// What a new instance's store gets: the memory limit, and the count
    /// of linear memory every guest instance holds together.
    store_setup: guest::StoreSetup,
    config: SandboxConfig,
    stop_ticker: Arc<AtomicBool>,
    /// The epoch ticker thread, parked while no sandboxed process exists.
    ticker: std::thread::Thread,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Release);
    }
}

/// Why a sandbox could not be set up (the engine, or its threads).
///
/// ```
/// let e = owl_sandbox::SetupError("no threads".into());
/// assert_eq!(e.to_string(), "the sandbox could not start: no threads");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the sandbox could not start: {}", self.0)
    }
}
impl std::error::Error for SetupError {}

/// The engine, code server and guest executor. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.inner.config)
            .field("modules", &self.modules().len())
            .finish()
    }
}

impl Sandbox {
    /// Starts the guest executor and the epoch ticker.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SetupError> {
        let mut pool = PoolingAllocationConfig::default();
        // A killed guest leaves its process at once, but a guest thread in
        // the middle of its slice frees the instance at the slice's end: one
        // spare slot per guest thread (and one for a trial run) keeps a
        // newcomer admitted right after a kill from finding the pool full.
        // Idle reusable instances hold slots too.
        let slots =
            (config.max_processes.max(1) + config.guest_threads.max(1) + 1 + reuse::IDLE_TOTAL)
                as u32;
        pool.total_core_instances(slots)
            .total_memories(slots)
            .total_tables(slots)
            .total_stacks(slots)
            .max_memory_size(config.memory_limit);
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .memory_reservation(config.memory_limit as u64)
            .memory_guard_size(64 << 10)
            .async_stack_size(512 << 10)
            .max_wasm_stack(256 << 10)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm)
            .map_err(|e| SetupError(format!("cannot start the WebAssembly engine: {e:#}")))?;
        let pace = Arc::new(ticker::Pace::default());
        let guests = executor::GuestExecutor::start(config.guest_threads, pace.clone())
            .map_err(|e| SetupError(format!("cannot start the guest threads: {e}")))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let admission = admission::Admission::new(config.max_processes);
        let ticker = ticker::start(
            engine.weak(),
            admission.clone(),
            pace.clone(),
            config.epoch_tick,
            stop_ticker.clone(),
        )
        .map_err(|e| SetupError(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Sandbox {
            inner: Arc::new(Inner {
                engine,
                code: Default::default(),
                guests,
                admission,
                pace,
                refused: Default::default(),
                store_setup: guest::StoreSetup {
                    memory_limit: config.memory_limit,
                    memory_held: Default::default(),
                },
                ticker,
                config,
                stop_ticker,
            }),
        })
    }

    /// Loads `source` (`.wat` text or `.wasm`) as the newest version of module
    /// `name`; returns its version number. A module that does not compile,
    /// needs imports, or lacks a function the current version exports is
    /// rejected and the current version stays. It is not tried out: use it
    /// for code you trust (the guests shipped with the program). Compiling
    /// takes milliseconds; a running system loads new code with
    /// [`upgrade`](Self::upgrade), off the executors and after a trial run.
    pub fn load(&self, name: &str, source: &[u8]) -> Result<u32, LoadError> {
        let candidate = self.inner.code.compile(&self.inner.engine, name, source)?;
        let version = self.inner.code.install(name, candidate);
        tracing::info!(module = name, version, "module loaded");
        Ok(version)
    }

    /// Loads a new version of `name` into a running system, safely: it is
    /// compiled on a blocking thread (never on a scheduler), then tried out
    /// before it replaces the current version — instantiated with the same
    /// memory limit and preemption as a real process and a deadline of
    /// [`TRIAL_DEADLINE`], and, with a `canary`, called once with a known
    /// answer. A module whose start function traps, loops or runs out of
    /// memory, or whose canary answers wrong, is refused
    /// ([`LoadError::Rejected`]) and the current version keeps serving.
    ///
    /// ```
    /// use owl_runtime::Runtime;
    /// use owl_sandbox::{Canary, LoadError, Sandbox, SandboxConfig};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    /// let double = br#"(module (func (export "run") (param i64) (result i64)
    ///     (i64.mul (local.get 0) (i64.const 2))))"#;
    /// sandbox.load("m", double).unwrap();
    /// let canary = Canary { function: "run".into(), args: vec![21], expected: vec![42] };
    /// // A start function that never ends is refused; version 1 stays.
    /// let hangs = br#"(module (func $spin (loop (br 0))) (start $spin)
    ///     (func (export "run") (param i64) (result i64) (local.get 0)))"#;
    /// let refused = rt.block_on(sandbox.upgrade("m", hangs.to_vec(), Some(canary.clone())));
    /// assert!(matches!(refused, Err(LoadError::Rejected(_))), "{refused:?}");
    /// // A wrong answer is refused too.
    /// let wrong = br#"(module (func (export "run") (param i64) (result i64) (local.get 0)))"#;
    /// assert!(rt.block_on(sandbox.upgrade("m", wrong.to_vec(), Some(canary.clone()))).is_err());
    /// assert_eq!(sandbox.modules()[0].current, 1);
    /// ```
    pub async fn upgrade(
        &self,
        name: &str,
        source: Vec<u8>,
        canary: Option<Canary>,
    ) -> Result<u32, LoadError> {
        let (this, module) = (self.clone(), name.to_string());
        let candidate = tokio::task::spawn_blocking(move || {
            this.inner
                .code
                .compile(&this.inner.engine, &module, &source)
        })
        .await
        .unwrap_or_else(|e| Err(LoadError::Compile(format!("the compiler crashed: {e}"))))?;
        // The trial holds an admission slot like any guest: it keeps the
        // epoch ticking (so a looping start function is preempted) and it
        // cannot push the sandbox past its limit.
        let permit = self.inner.admission.hold().ok_or_else(|| {
            LoadError::Rejected("the sandbox is full; try again when fewer guests run".into())
        })?;
        self.inner.ticker.unpark();
        let trial = guest::trial(
            self.inner.engine.clone(),
            candidate.pre.clone(),
            self.inner.config.memory_limit,
            self.inner.store_setup.memory_held.clone(),
            canary,
        );
        let outcome = self
            .inner
            .guests
            .spawn(trial, executor::DEMOTE_AFTER)
            .join()
            .await
            .unwrap_or_else(|| Err("the trial was cancelled".into()));
        drop(permit);
        outcome.map_err(|why| LoadError::Rejected(code::excerpt(&why)))?;
        let version = self.inner.code.install(name, candidate);
        tracing::info!(module = name, version, "module upgraded after a trial run");
        Ok(version)
    }

    /// Loaded modules and their versions.
    pub fn modules(&self) -> Vec<ModuleInfo> {
        self.inner.code.list()
    }

    /// Drops the old versions of `name` and kills the processes still running
    /// them; returns how many were killed.
    pub fn purge(&self, node: &Node, name: &str) -> usize {
        let victims = self.inner.code.purge(name).unwrap_or_default();
        victims.iter().filter(|pid| node.kill(pid)).count()
    }

    /// Sets (or with `None` removes) the CPU-time budget of each process of
    /// `module`: past it, a process ends with the exit reason `cpu_limit`.
    /// It applies to processes already running too. Returns false if no such
    /// module is loaded.
    pub fn set_cpu_budget(&self, module: &str, budget: Option<Duration>) -> bool {
        let Some(version) = self.inner.code.current(module) else {
            return false;
        };
        let ns = budget.map_or(0, |b| (b.as_nanos() as u64).max(1));
        version.settings.cpu_budget_ns.store(ns, Ordering::Relaxed);
        true
    }

    /// The current call stack of a running sandboxed process, innermost
    /// function first (function names from the module's name section),
    /// captured at the guest's next epoch tick. A native or ended process is
    /// [`StackError::NotAGuest`]; a guest that reaches no tick within
    /// `timeout` (its threads are busy) is [`StackError::NoAnswer`] — it is
    /// still a guest, ask again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use owl_runtime::{Runtime, SpawnOptions};
    /// use owl_sandbox::{Sandbox, SandboxConfig, StackError};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    /// sandbox
    ///     .load("spin", br#"(module (func $spin (export "run") (loop (br 0))))"#)
    ///     .unwrap();
    /// let node = rt.node();
    /// rt.block_on(async {
    ///     let runaway = sandbox.spawn(&node, "spin", "run", vec![], SpawnOptions::new()).unwrap();
    ///     let stack = sandbox.stack(runaway.pid(), Duration::from_secs(10)).await;
    ///     assert_eq!(stack, Ok(vec!["spin".to_string()]));
    ///     let native = node.spawn(|_| std::future::pending::<()>());
    ///     let none = sandbox.stack(&native, Duration::from_secs(1)).await;
    ///     assert_eq!(none, Err(StackError::NotAGuest));
    ///     node.kill(runaway.pid());
    /// });
    /// ```
    pub async fn stack(&self, pid: &Pid, timeout: Duration) -> Result<Vec<String>, StackError> {
        let id = pid.id().0;
        let settings = self
            .inner
            .code
            .settings_of(pid)
            .ok_or(StackError::NotAGuest)?;
        let answer = settings.stack_requests.request(id);
        // It may have ended just before the request went in.
        if self.inner.code.settings_of(pid).is_none() {
            drop(settings.stack_requests.take(id));
            return Err(StackError::NotAGuest);
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(frames)) => Ok(frames),
            // The guest ended before its next tick (its registration drops
            // the request).
            Ok(Err(_)) => Err(StackError::NotAGuest),
            Err(_) => {
                drop(settings.stack_requests.take(id));
                Err(StackError::NoAnswer)
            }
        }
    }

    /// A CPU-time sample of the guest threads: compare two with
    /// [`utilization_since`](owl_runtime::SchedulerSample::utilization_since)
    /// to see how busy runaway guests keep them (the schedulers' own
    /// utilization does not include guest work).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use owl_runtime::{Runtime, SpawnOptions};
    /// use owl_sandbox::{Sandbox, SandboxConfig};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    /// sandbox.load("spin", br#"(module (func (export "run") (loop (br 0))))"#).unwrap();
    /// let node = rt.node();
    /// rt.block_on(async {
    ///     let before = sandbox.guest_sample();
    ///     let runaway = sandbox.spawn(&node, "spin", "run", vec![], SpawnOptions::new()).unwrap();
    ///     // A call's first slice runs in its caller, and guests
    ///     // run on what the machine leaves: give this one time to get there.
    ///     let deadline = Instant::now() + Duration::from_secs(10);
    ///     let busy = loop {
    ///         tokio::time::sleep(Duration::from_millis(10)).await;
    ///         let busy = sandbox.guest_sample().utilization_since(&before);
    ///         if busy.total > 0.0 || Instant::now() > deadline {
    ///             break busy;
    ///         }
    ///     };
    ///     assert!(busy.total > 0.0, "{busy:?}");
    ///     node.kill(runaway.pid());
    /// });
    /// ```
    pub fn guest_sample(&self) -> owl_runtime::SchedulerSample {
        self.inner.guests.sample()
    }

    /// The guest threads, for [`Node::adopt_thread`](owl_runtime::Node::adopt_thread):
    /// adopted, they run on the schedulers-online cores and count in
    /// scheduler utilization.
    pub fn guest_threads(&self) -> Vec<owl_runtime::sys::ThreadClock> {
        self.inner.guests.threads()
    }

    /// Spawns refused by admission control (`max_processes` reached) since start.
    ///
    /// ```
    /// use owl_runtime::{Runtime, SpawnOptions};
    /// use owl_sandbox::{Sandbox, SandboxConfig, SpawnError};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let sandbox = Sandbox::new(SandboxConfig { max_processes: 1, ..Default::default() }).unwrap();
    /// sandbox.load("spin", br#"(module (func (export "run") (loop (br 0))))"#).unwrap();
    /// let node = rt.node();
    /// rt.block_on(async {
    ///     let first = sandbox.spawn(&node, "spin", "run", vec![], SpawnOptions::new()).unwrap();
    ///     let second = sandbox.spawn(&node, "spin", "run", vec![], SpawnOptions::new());
    ///     assert_eq!(second.unwrap_err(), SpawnError::Overloaded);
    ///     assert_eq!(sandbox.refused(), 1);
    ///     node.kill(first.pid());
    /// });
    /// ```
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Linear memory the guest instances hold now, all together, in bytes
    /// (running guests, idle kept instances and trial runs: what their
    /// memories have grown to).
    ///
    /// ```
    /// use owl_runtime::{Runtime, SpawnOptions};
    /// use owl_sandbox::{Sandbox, SandboxConfig};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    /// sandbox.load("page", br#"(module (memory 1)
    ///     (func (export "run") (result i64) (i64.const 0)))"#).unwrap();
    /// let task = sandbox.spawn(&rt.node(), "page", "run", vec![], SpawnOptions::new()).unwrap();
    /// rt.block_on(task.join()).unwrap();
    /// // Its instance (one 64 KiB page) was dropped when the call ended.
    /// assert_eq!(sandbox.guest_memory(), 0);
    /// ```
    pub fn guest_memory(&self) -> usize {
        self.inner.store_setup.memory_held.load(Ordering::Relaxed)
    }

    /// Guest calls waiting for a guest thread: (fast lane, background lane).
    pub fn queued(&self) -> (usize, usize) {
        self.inner.guests.queued()
    }

    /// Every process running any version of `name` on the guest threads:
    /// each call that outlived its first slice and has not ended. A call
    /// that returns within its first slice — nearly every calculation, in
    /// microseconds — is never listed, nor is one not yet started.
    /// [`kill_all`](Self::kill_all) and [`purge`](Self::purge) still reach
    /// those: they stop before they run.
    pub fn running(&self, name: &str) -> Vec<Pid> {
        self.inner.code.running(name)
    }

    /// Kills every process of `name` (the talk's `kill_math()`): those
    /// [`running`](Self::running), which it counts, and those spawned but
    /// not yet started, which stop before they run (counted as killed in
    /// the module's [`calls`](ModuleInfo::calls)). A call in the middle of
    /// its first slice finishes it, as it would if it were killed.
    ///
    /// ```
    /// use owl_runtime::{ExitReason, Runtime, SpawnOptions};
    /// use owl_sandbox::{Sandbox, SandboxConfig};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    /// sandbox.load("spin", br#"(module (func (export "spin") (loop (br 0))))"#).unwrap();
    /// let node = rt.node();
    /// let runaway = sandbox.spawn(&node, "spin", "spin", vec![], SpawnOptions::new()).unwrap();
    /// // Whether it runs on the guest threads by now or has not started yet:
    /// sandbox.kill_all(&node, "spin");
    /// assert_eq!(rt.block_on(runaway.join()), Err(ExitReason::Killed));
    /// ```
    pub fn kill_all(&self, node: &Node, name: &str) -> usize {
        let victims = self.inner.code.kill_all(name);
        victims.iter().filter(|pid| node.kill(pid)).count()
    }

    /// Starts a sandboxed process that calls `module:function(args)` on the
    /// newest version and returns the results, or ends with the guest's crash
    /// (a trap, the memory limit) as its exit reason.
    ///
    /// The call's first slice runs right here, in the caller, for up to two
    /// epoch ticks (200 µs by default). A call that returns within it —
    /// nearly every calculation, in microseconds — is over before `spawn`
    /// returns: the task is finished already, and no process is ever
    /// scheduled for it ([`Node::finished_task`]: it still has a pid, counts
    /// as spawned and exited, and `link_to` and `monitored_by` hear of a
    /// `normal` exit). A call that crashes there, or is still running,
    /// becomes a process like any other: the crash is its exit reason, and a
    /// long call starts over on the guest threads.
    pub fn spawn(
        &self,
        node: &Node,
        module: &str,
        function: &str,
        args: Vec<i64>,
        opts: SpawnOptions,
    ) -> Result<Task<GuestOutput>, SpawnError> {
        let call = self.admit(module, function, guest::CallArgs::Values(args))?;
        Ok(call.spawn(node, opts))
    }

    /// Like [`spawn`](Self::spawn), for a *byte call*: `input` is written
    /// into the guest's memory and the function reads it from there.
    ///
    /// The convention: the module exports a memory named `memory`; the
    /// host grows it by enough pages for `input` (counted against the memory
    /// limit, so the limit bounds what an input may cost), writes `input`
    /// there and calls `function(ptr: i32, len: i32) -> (status: i32, ptr:
    /// i32, len: i32)`; the bytes the results point at come back in
    /// [`GuestOutput::bytes`], the status in `values[0]`. A module that
    /// starts with an empty memory may still have its instances reused by
    /// its other calls (see [`reuse`]); a byte call's instance never is.
    ///
    /// ```
    /// use owl_runtime::{Runtime, SpawnOptions};
    /// use owl_sandbox::{Sandbox, SandboxConfig};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    /// // Answers with its input, unchanged: status 0, the same bytes.
    /// sandbox.load("echo", br#"(module (memory (export "memory") 0)
    ///     (func (export "echo") (param i32 i32) (result i32 i32 i32)
    ///       (i32.const 0) (local.get 0) (local.get 1)))"#).unwrap();
    /// let node = rt.node();
    /// let task = sandbox
    ///     .spawn_bytes(&node, "echo", "echo", b"hello".to_vec(), SpawnOptions::new())
    ///     .unwrap();
    /// let out = rt.block_on(task.join()).unwrap();
    /// assert_eq!((out.values[0], out.bytes), (0, Some(b"hello".to_vec())));
    /// ```
    pub fn spawn_bytes(
        &self,
        node: &Node,
        module: &str,
        function: &str,
        input: Vec<u8>,
        opts: SpawnOptions,
    ) -> Result<Task<GuestOutput>, SpawnError> {
        let call = self.admit(module, function, guest::CallArgs::Bytes(input))?;
        Ok(call.spawn(node, opts))
    }

    /// Like [`spawn`](Self::spawn), but the results arrive as a message: the
    /// process sends a [`GuestReply`] to `reply_to` just before it ends
    /// normally, the way an Erlang worker answers its caller. Pair it with a
    /// monitor set before the guest runs
    /// ([`SpawnOptions::monitored_by`](owl_runtime::SpawnOptions::monitored_by))
    /// to hear of crashes: the reply, if any, always comes before the `Down`.
    ///
    /// ```
    /// use owl_runtime::{Down, ExitReason, Runtime, SpawnOptions};
    /// use owl_sandbox::{GuestReply, Sandbox, SandboxConfig};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    /// sandbox.load("m", br#"(module (func (export "inc") (param i64) (result i64)
    ///     (i64.add (local.get 0) (i64.const 1))))"#).unwrap();
    /// let node = rt.node();
    /// let answer = node.spawn_task(move |mut p| async move {
    ///     let me = p.pid().clone();
    ///     // Monitored from before it runs: even an instant crash is heard.
    ///     let opts = SpawnOptions::new().monitored_by(me.clone());
    ///     sandbox.spawn_reply(p.node(), "m", "inc", vec![41], opts, me).unwrap();
    ///     let reply: GuestReply = p.recv().await;
    ///     let down: Down = p.recv().await;
    ///     (reply.output.values, down.reason)
    /// });
    /// assert_eq!(rt.block_on(answer.join()).unwrap(), (vec![42], ExitReason::Normal));
    /// ```
    pub fn spawn_reply(
        &self,
        node: &Node,
        module: &str,
        function: &str,
        args: Vec<i64>,
        opts: SpawnOptions,
        reply_to: Pid,
    ) -> Result<Pid, SpawnError> {
        let call = self.admit(module, function, guest::CallArgs::Values(args))?;
        Ok(call.spawn_replying(node, opts, reply_to))
    }

    /// [`spawn_reply`](Self::spawn_reply) for a byte call (see
    /// [`spawn_bytes`](Self::spawn_bytes) for the convention).
    pub fn spawn_reply_bytes(
        &self,
        node: &Node,
        module: &str,
        function: &str,
        input: Vec<u8>,
        opts: SpawnOptions,
        reply_to: Pid,
    ) -> Result<Pid, SpawnError> {
        let call = self.admit(module, function, guest::CallArgs::Bytes(input))?;
        Ok(call.spawn_replying(node, opts, reply_to))
    }

    /// Checks the call against the newest version and takes an admission slot.
    fn admit(
        &self,
        module: &str,
        function: &str,
        args: guest::CallArgs,
    ) -> Result<Held, SpawnError> {
        let version = self
            .inner
            .code
            .current(module)
            .ok_or_else(|| SpawnError::NoSuchModule(module.to_string()))?;
        let (export_index, export) = version
            .export(function)
            .ok_or_else(|| SpawnError::NoSuchFunction(format!("{module}:{function}")))?;
        let Some(signature) = &export.signature else {
            return Err(SpawnError::NoSuchFunction(format!(
                "{module}:{function} uses types other than i32 and i64: it cannot be called"
            )));
        };
        match &args {
            guest::CallArgs::Values(values) if signature.params.len() != values.len() => {
                return Err(SpawnError::NoSuchFunction(format!(
                    "{module}:{function} takes {} arguments, not {}",
                    signature.params.len(),
                    values.len()
                )));
            }
            guest::CallArgs::Bytes(_) if !takes_bytes(signature) => {
                return Err(SpawnError::NoSuchFunction(format!(
                    "{module}:{function} does not take bytes: a byte call's function is \
                     (ptr: i32, len: i32) -> (status: i32, ptr: i32, len: i32)"
                )));
            }
            _ => {}
        }
        if !self.inner.admission.try_take() {
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            return Err(SpawnError::Overloaded);
        }
        // Cheap when it is already ticking: unpark only sets a flag then.
        self.inner.ticker.unpark();
        Ok(Held {
            inner: self.inner.clone(),
            kill_all_seen: version.settings.kill_all.load(Ordering::Acquire),
            call: guest::GuestCall {
                version,
                export: export_index,
                args,
                // Its process's, if it comes to have one.
                pid: 0,
            },
            registered: false,
            settled: false,
        })
    }
}

/// Whether `signature` is a byte call's `(i32, i32) -> (i32, i32, i32)`.
fn takes_bytes(signature: &code::Signature) -> bool {
    use code::Int::I32;
    *signature.params == [I32; 2] && *signature.results == [I32; 3]
}

/// What a sandboxed process started with [`Sandbox::spawn_reply`] sends to
/// its caller when the guest function returns.
#[derive(Clone, Debug)]
pub struct GuestReply {
    /// The sandboxed process that ran the call.
    pub from: Pid,
    /// Its results.
    pub output: GuestOutput,
}

impl Held {
    /// Runs the call's first slice right here, in the caller, and spawns a
    /// [`Task`] for it: one that has already finished if the guest returned
    /// within that slice (nearly every calculation), otherwise a process
    /// (see [`first_slice`](Self::first_slice)).
    fn spawn(self, node: &Node, opts: SpawnOptions) -> Task<GuestOutput> {
        match self.first_slice() {
            FirstSlice::Returned(output) => node.finished_task(opts, |_| output),
            FirstSlice::Left(left) => {
                node.spawn_try_task(left.options(opts), move |p| left.body(p))
            }
        }
    }

    /// Like [`spawn`](Self::spawn), answering `reply_to` with a
    /// [`GuestReply`] just before the call ends normally.
    fn spawn_replying(self, node: &Node, opts: SpawnOptions, reply_to: Pid) -> Pid {
        match self.first_slice() {
            FirstSlice::Returned(output) => node.finished_process(opts, |from| {
                // An answer to the caller's own request: never refused for
                // room.
                let _ = reply_to.send_reply(GuestReply {
                    from: from.clone(),
                    output,
                });
            }),
            FirstSlice::Left(left) => node.spawn_opts(left.options(opts), move |p| {
                let from = p.pid().clone();
                let job = left.body(p);
                async move {
                    let output = job.await?;
                    let _ = reply_to.send_reply(GuestReply { from, output });
                    Ok::<(), ExitReason>(())
                }
            }),
        }
    }

    /// The call's first slice, run by its caller: a short calculation is
    /// over before a process would have been scheduled, so it never needs
    /// one — no task, no table entry, no thread hop (`Node::finished_task`
    /// still gives it a pid and tells its watchers). A call that crashes
    /// there becomes a process that ends with the crash, reported as any
    /// crash is; one still running after its first slice (at most two epoch
    /// ticks) becomes a process that starts the call over on the guest
    /// executor (see `guest::call_first_slice`).
    fn first_slice(mut self) -> FirstSlice {
        // Admitted a moment ago, in this same call: a purge or `kill_all`
        // since then finds it in its first slice, which it finishes (the
        // checks come before it goes on to the guest threads).
        self.call
            .version
            .settings
            .started
            .fetch_add(1, Ordering::Relaxed);
        let inner = &*self.inner;
        let first_slice = inner.pace.first_slice();
        // A panic here would be a bug in this crate's glue, not the guest's
        // (guest faults are traps, returned as errors). It ends the call, as
        // it would have ended the call's process, not the caller.
        let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            guest::call_first_slice(&self.call, &inner.store_setup)
        }))
        .unwrap_or_else(|panic| Some(Err(ExitReason::from_panic(panic))));
        drop(first_slice);
        let then = match first {
            Some(Ok((values, bytes))) => {
                let output = GuestOutput {
                    values,
                    bytes,
                    version: self.call.version.number,
                };
                self.settle(&Ok(()));
                return FirstSlice::Returned(output);
            }
            Some(Err(crash)) => Then::Crash(crash),
            None => Then::Continue,
        };
        FirstSlice::Left(Left { held: self, then })
    }
}

/// How a call's first slice, run by its caller, left it.
enum FirstSlice {
    /// The guest returned.
    Returned(GuestOutput),
    /// The call needs a process.
    Left(Left),
}

/// A call whose first slice did not finish it, ready to become a process.
/// It holds an admission slot: [`body`](Left::body) hands it to the
/// process, which gives it back when it ends, even unpolled.
struct Left {
    held: Held,
    then: Then,
}

/// What the process of a call its first slice did not finish does.
enum Then {
    /// Ends with the guest's crash.
    Crash(ExitReason),
    /// Runs the call on the guest executor.
    Continue,
}

impl Left {
    /// The caller's options, labelled with the module and version for the
    /// process table.
    fn options(&self, opts: SpawnOptions) -> SpawnOptions {
        opts.label(self.held.call.version.label.clone())
    }

    /// The process's body, made at spawn time.
    fn body(
        self,
        p: owl_runtime::Process,
    ) -> impl Future<Output = Result<GuestOutput, ExitReason>> + Send + 'static {
        let Left { mut held, then } = self;
        held.call.pid = p.pid().id().0;
        // Boxed: the process's future is moved a few times while it is
        // spawned, and the call's state is large.
        Box::pin(run(p, held, then))
    }
}

/// The body of a sandboxed process. `held` gives back its admission slot
/// and its registration when the process ends, even if never polled.
async fn run(
    p: owl_runtime::Process,
    mut held: Held,
    then: Then,
) -> Result<GuestOutput, ExitReason> {
    let result = match then {
        Then::Crash(crash) => {
            describe(&p, &held);
            Err(crash)
        }
        Then::Continue => on_guest_threads(&p, &mut held).await,
    };
    held.settle(&result);
    result
}

/// Writes down what the call is, for the process table and a crash report:
/// its arguments (so they show which input misbehaved) and its memory
/// limit. Only for a call that crashes or lives on: one that returns within
/// its first slice is over before anyone could look.
fn describe(p: &owl_runtime::Process, held: &Held) {
    let call = &held.call;
    p.set_activity(activity(call.module(), call.function(), &call.args));
    p.set_memory_limit(held.inner.store_setup.memory_limit);
}

/// Runs the call from the start on the guest executor, as an async call
/// that yields at every epoch tick, so it cannot hold native schedulers.
async fn on_guest_threads(
    p: &owl_runtime::Process,
    held: &mut Held,
) -> Result<GuestOutput, ExitReason> {
    // Still running after a tick: a runaway, or a long calculation.
    if held.stopped() {
        return Err(ExitReason::Killed);
    }
    describe(p, held);
    // From now on it is listed (`running`, `stack`, purge, kill_all).
    if !held.register(p.pid()) {
        return Err(ExitReason::Killed);
    }
    let (inner, call) = (&*held.inner, &mut held.call);
    // The executor's call owns what it needs; the guard keeps the version
    // for the registration.
    let owned = guest::GuestCall {
        version: call.version.clone(),
        export: call.export,
        args: std::mem::replace(&mut call.args, guest::CallArgs::Values(Vec::new())),
        pid: call.pid,
    };
    let meter = p.work_meter();
    let job = guest::call(owned, inner.store_setup.clone(), meter.clone());
    // Dropping the handle (this process killed) cancels the guest.
    let (values, bytes) = inner
        .guests
        .spawn(meter.measure(job), 1)
        .join()
        .await
        .unwrap_or_else(|| Err(ExitReason::error("guest call was cancelled")))?;
    Ok(GuestOutput {
        values,
        bytes,
        version: held.call.version.number,
    })
}

/// `module:function(arg, …)`, built by hand: it is written for every call
/// that crashes or outlives its first slice. A byte call shows its input
/// as text, cut to a few dozen characters.
fn activity(module: &str, function: &str, args: &guest::CallArgs) -> Arc<str> {
    const SHOWN_BYTES: usize = 40;
    let mut out = String::with_capacity(module.len() + function.len() + 3 + 21);
    out.push_str(module);
    out.push(':');
    out.push_str(function);
    out.push('(');
    match args {
        guest::CallArgs::Values(values) => {
            let mut digits = itoa::Buffer::new();
            for (i, arg) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(digits.format(*arg));
            }
        }
        guest::CallArgs::Bytes(bytes) => {
            out.push_str(&String::from_utf8_lossy(
                &bytes[..bytes.len().min(SHOWN_BYTES)],
            ));
            if bytes.len() > SHOWN_BYTES {
                out.push_str(&format!("… {} bytes", bytes.len()));
            }
        }
    }
    out.push(')');
    out.into()
}

/// What a sandboxed call holds from its admission to its end: the call,
/// and on the sandbox its admission slot and, once it outlived its first
/// slice, its place in its version's running set. Dropping it — however
/// the call ends: returned in its first slice, or its process ended, even
/// unpolled — gives both back, drops any request for its stack and counts
/// how the call ended.
///
/// Only calls on the guest threads are entered in the running set:
/// entering and removing every call cost more than a short call itself
/// (docs/benchmarks.md). What the set is for still holds for the others: a
/// call in its first slice when its version is purged, or its module's
/// processes are all killed, finishes that slice and stops before it goes
/// on to the guest threads (`stopped`), as a process killed mid-poll would.
struct Held {
    inner: Arc<Inner>,
    call: guest::GuestCall,
    /// The module's `kill_all` count when the call was admitted.
    kill_all_seen: u64,
    /// It is in its version's running set.
    registered: bool,
    /// The call came to an end by itself (returned or crashed).
    settled: bool,
}

impl Held {
    /// Whether its version was purged or its module's processes were all
    /// killed since it was admitted.
    fn stopped(&self) -> bool {
        let version = &self.call.version;
        version.retired.load(Ordering::Acquire)
            || version.settings.kill_all.load(Ordering::Acquire) != self.kill_all_seen
    }

    /// Enters the process in its version's running set; false if it must
    /// stop instead. It looks after entering: a purge or a `kill_all` either
    /// finds it in the set or has marked what it looks at.
    fn register(&mut self, pid: &Pid) -> bool {
        self.call
            .version
            .running
            .lock()
            .insert(self.call.pid, pid.clone());
        self.registered = true;
        !self.stopped()
    }

    /// Counts how the call ended. One stopped before or at its
    /// registration (`ExitReason::Killed`, which no guest returns) counts as
    /// killed, when the guard is dropped.
    fn settle<T>(&mut self, result: &Result<T, ExitReason>) {
        let settings = &self.call.version.settings;
        let counter = match result {
            Ok(_) => &settings.returned,
            Err(ExitReason::Killed) => return,
            Err(_) => &settings.crashed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.settled = true;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let version = &self.call.version;
        if self.registered {
            version.running.lock().remove(&self.call.pid);
        }
        // A request for the stack of a process that ended hears so at once.
        drop(version.settings.stack_requests.take(self.call.pid));
        if !self.settled {
            version.settings.killed.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.admission.give_back();
    }
}
