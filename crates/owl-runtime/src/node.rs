//! The node: one runtime instance with its executor, process table, registry,
//! groups and schedulers. [`Runtime`] owns it; [`Node`] is the cheap handle
//! every process and caller uses.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::exit::{ExitReason, IntoExitReason};
use crate::group::Groups;
use crate::pid::{MonitorRef, Pid, PidId};
use crate::priority::{BACKGROUND_NICE, BACKGROUND_TICK, Priority};
use crate::process::cell::{ExitSender, ProcessCell, Watcher};
use crate::process::task::{ProcessTask, install_panic_hook};
use crate::process::{Process, SpawnOptions};
use crate::registry::Registry;
use crate::scheduler::{SchedulerSample, Schedulers};

/// Where a watched process's exit reason arrives (see `Node::spawn_watched`).
pub(crate) type ExitReceiver = futures_channel::oneshot::Receiver<ExitReason>;

/// How to build a [`Runtime`].
///
/// ```
/// use owl_runtime::{Config, Runtime};
/// use std::time::Duration;
///
/// let rt = Runtime::new(Config::default().schedulers(1).long_poll_threshold(Duration::from_millis(5))).unwrap();
/// assert_eq!(rt.node().schedulers(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Worker threads (schedulers). 0 means one per CPU this process may use.
    pub schedulers: usize,
    /// Schedulers online at start (default: all of them).
    pub schedulers_online: Option<usize>,
    /// A poll of a native process longer than this is reported: 10 ms in
    /// release builds, 100 ms in debug builds (unoptimised code is that much
    /// slower); `OWL_LONG_POLL_MS` overrides the default.
    pub long_poll_threshold: Duration,
    /// Name prefix of the worker threads.
    pub thread_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            schedulers: 0,
            schedulers_online: None,
            long_poll_threshold: default_long_poll_threshold(),
            thread_name: "owl-scheduler".into(),
        }
    }
}

fn default_long_poll_threshold() -> Duration {
    let from_env = std::env::var("OWL_LONG_POLL_MS")
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok());
    let default = if cfg!(debug_assertions) { 100 } else { 10 };
    Duration::from_millis(from_env.unwrap_or(default).max(1))
}

impl Config {
    /// Sets the number of schedulers (worker threads); 0 = one per CPU.
    pub fn schedulers(mut self, n: usize) -> Self {
        self.schedulers = n;
        self
    }

    /// Sets how many schedulers are online at start.
    pub fn schedulers_online(mut self, n: usize) -> Self {
        self.schedulers_online = Some(n);
        self
    }

    /// Sets the long-poll watchdog threshold.
    pub fn long_poll_threshold(mut self, threshold: Duration) -> Self {
        self.long_poll_threshold = threshold;
        self
    }
}

/// What [`Node::run_queues`] reports: processes waiting for a scheduler.
///
/// ```
/// let rt = owl_runtime::Runtime::new(Default::default()).unwrap();
/// let owl_runtime::RunQueues { normal, background } = rt.node().run_queues();
/// println!("{normal} waiting, {background} in the background");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunQueues {
    /// In the normal schedulers' shared queue.
    pub normal: usize,
    /// In the background (low-priority) schedulers' shared queue.
    pub background: usize,
}

/// Owns a node and its executor. Dropping it stops every process (they end
/// as `killed`) and joins the worker threads; drop it outside async code.
///
/// ```
/// use owl_runtime::Runtime;
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let node = rt.node();
/// let pid = node.spawn(|mut p| async move { p.recv::<()>().await; });
/// // Watch before the process can end, or the answer may be `NoProc`.
/// let exited = pid.wait_exit();
/// pid.send(()).unwrap();
/// assert_eq!(rt.block_on(exited), owl_runtime::ExitReason::Normal);
/// ```
pub struct Runtime {
    executor: Option<tokio::runtime::Runtime>,
    /// The background schedulers, for low-priority processes.
    background: Option<tokio::runtime::Runtime>,
    node: Node,
    stop_watchdog: Arc<AtomicBool>,
}

impl Runtime {
    /// Starts the worker threads and the long-poll watchdog.
    pub fn new(config: Config) -> std::io::Result<Runtime> {
        install_panic_hook();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = if config.schedulers == 0 {
            cpus
        } else {
            config.schedulers
        };
        let schedulers = Schedulers::new(workers, config.long_poll_threshold);
        let wheel = crate::sleep::TimerWheel::new(Duration::from_millis(1), ProcessCell::HOT);
        // Background sleeps end on 4 ms ticks: a quarter of the wake-ups of
        // the scheduler thread (each a context switch) for work that waits
        // behind everything else anyway.
        let background_wheel = crate::sleep::TimerWheel::new(BACKGROUND_TICK, ProcessCell::HOT);
        let on_park = schedulers.clone();
        let executor = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(config.thread_name.clone())
            .on_thread_park(move || {
                on_park.register_current_thread(Priority::Normal);
            })
            .enable_all()
            .build()?;
        let on_park = schedulers.clone();
        let background = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(format!("{}-low", config.thread_name))
            .on_thread_start(|| {
                // The kernel then runs normal schedulers first (see `priority`).
                if let Err(e) = crate::sys::lower_thread_priority(BACKGROUND_NICE) {
                    tracing::warn!(target: "owl::scheduler", error = %e,
                        "a background scheduler runs at normal priority");
                }
            })
            .on_thread_park(move || {
                on_park.register_current_thread(Priority::Low);
            })
            .enable_all()
            .build()?;
        let inner = Arc::new(NodeInner {
            table: Default::default(),
            registry: Registry::default(),
            groups: Groups::default(),
            next_pid: AtomicU64::new(1),
            next_ref: AtomicU64::new(1),
            started: Instant::now(),
            started_at: SystemTime::now(),
            started_ms: crate::scheduler::coarse_now_ms(),
            handle: executor.handle().clone(),
            background: background.handle().clone(),
            schedulers: schedulers.clone(),
            counters: Counters::default(),
            wheel: wheel.clone(),
            background_wheel: background_wheel.clone(),
            tracers: Default::default(),
            log_limiter: Default::default(),
            labels: Default::default(),
            profiler: Default::default(),
            notable: Default::default(),
        });
        executor.spawn(wheel.run_ticker());
        background.spawn(background_wheel.run_ticker());
        let _ = schedulers.node.set(Arc::downgrade(&inner));
        if let Some(online) = config.schedulers_online {
            schedulers.set_online(online).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
            })?;
        }
        let stop_watchdog = Arc::new(AtomicBool::new(false));
        let stop = stop_watchdog.clone();
        std::thread::Builder::new()
            .name("owl-watchdog".into())
            .spawn(move || schedulers.watchdog(stop))?;
        Ok(Runtime {
            executor: Some(executor),
            background: Some(background),
            node: Node { inner },
            stop_watchdog,
        })
    }

    /// A handle on the node.
    pub fn node(&self) -> Node {
        self.node.clone()
    }

    /// Runs a future to completion on the executor, from outside it.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.executor().block_on(future)
    }

    /// The underlying tokio runtime handle (for spawning non-process tasks
    /// such as listeners).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.executor().handle()
    }

    fn executor(&self) -> &tokio::runtime::Runtime {
        self.executor.as_ref().expect("runtime is running")
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("node", &self.node).finish()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_watchdog.store(true, Ordering::Release);
        // Background processes first: the normal ones (their supervisors,
        // usually) still run to hear how they ended.
        if let Some(background) = self.background.take() {
            background.shutdown_timeout(Duration::from_secs(5));
        }
        if let Some(executor) = self.executor.take() {
            // Dropping the executor drops every process future; each ends as
            // killed and leaves the table.
            executor.shutdown_timeout(Duration::from_secs(5));
        }
        self.node.inner.table.clear();
    }
}

/// Counters of process lifecycles, for metrics.
#[derive(Default)]
pub(crate) struct Counters {
    pub spawned: AtomicU64,
    pub exited: AtomicU64,
    pub crashed: AtomicU64,
}

pub(crate) struct NodeInner {
    pub table: crate::process::table::ProcessTable,
    pub registry: Registry,
    pub groups: Groups,
    next_pid: AtomicU64,
    next_ref: AtomicU64,
    pub started: Instant,
    pub started_at: SystemTime,
    pub started_ms: u64,
    pub handle: tokio::runtime::Handle,
    /// The background schedulers' executor (low-priority processes).
    pub background: tokio::runtime::Handle,
    pub schedulers: Arc<Schedulers>,
    pub counters: Counters,
    pub wheel: Arc<crate::sleep::TimerWheel>,
    /// The timer wheel of background processes, ticked on their schedulers
    /// so that their wake-ups stay there.
    pub background_wheel: Arc<crate::sleep::TimerWheel>,
    /// Message traces running on this node.
    pub tracers: parking_lot::Mutex<Vec<Arc<crate::trace::Tracer>>>,
    /// Summarises repeated crash and supervisor reports.
    pub log_limiter: crate::log_limit::LogLimiter,
    /// Live processes per label.
    pub labels: crate::label_count::LabelCounts,
    /// Samples which processes keep the schedulers busy, while asked.
    pub profiler: Arc<crate::busy::Profiler>,
    /// Processes whose mailbox or memory grew large (pid numbers; see
    /// `Node::notable_processes`).
    pub notable: parking_lot::Mutex<rustc_hash::FxHashSet<u64>>,
}

impl NodeInner {
    /// Notes process `id` as notable (bounded: a node with more than 4,096
    /// of them shows the first).
    pub(crate) fn note(&self, id: u64) {
        let mut notable = self.notable.lock();
        if notable.len() < 4096 {
            notable.insert(id);
        }
    }

    /// The timer wheel of processes of `priority`.
    pub(crate) fn wheel_for(&self, priority: Priority) -> &Arc<crate::sleep::TimerWheel> {
        match priority {
            Priority::Normal => &self.wheel,
            Priority::Low => &self.background_wheel,
        }
    }

    pub(crate) fn next_pid(&self) -> u64 {
        self.next_pid.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn next_monitor_ref(&self) -> MonitorRef {
        MonitorRef(self.next_ref.fetch_add(1, Ordering::Relaxed))
    }

    /// Counts an exit and writes the crash report for abnormal ones that are
    /// real failures (a panic, an error, a blown budget). `killed` and
    /// `shutdown` are deliberate and are not crash reports. Reports of the
    /// same kind (label and reason) are summarised past a burst, so a
    /// visitor sending `13` in a loop cannot flood the log; with no
    /// `tracing` subscriber installed, reports go to stderr.
    pub(crate) fn report_exit(
        &self,
        cell: &ProcessCell,
        name: Option<&str>,
        activity: Option<&str>,
        reason: &ExitReason,
    ) {
        self.counters.exited.fetch_add(1, Ordering::Relaxed);
        if !matches!(
            reason,
            ExitReason::Panic(_) | ExitReason::Error(_) | ExitReason::CpuLimit
        ) {
            return;
        }
        self.counters.crashed.fetch_add(1, Ordering::Relaxed);
        let kind = format!("{}\u{0}{reason}", name.unwrap_or(&cell.label));
        let crate::log_limit::Verdict::Write { left_out } = self.log_limiter.check(&kind) else {
            return;
        };
        let text = format!(
            "crash report: process {} ({}) exited{}{}: {}{}",
            PidId(cell.id),
            name.unwrap_or(&cell.label),
            if activity.is_some() { " in " } else { "" },
            activity.unwrap_or(""),
            reason,
            if left_out > 0 {
                format!(" ({left_out} more like it were left out of the log in the last 10 s)")
            } else {
                String::new()
            }
        );
        // Crashes are never silent, even in a program that set up no logging.
        if crate::log_limit::unobserved(|| text.clone()) {
            return;
        }
        tracing::error!(
            target: "owl::crash",
            pid = %PidId(cell.id),
            name = name,
            label = %cell.label,
            activity = activity,
            reason = %reason,
            left_out,
            "{text}"
        );
    }
}

/// A handle on a node: spawn processes, look them up, signal them, inspect
/// them. Cheap to clone; every [`Process`] carries one.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("processes", &self.process_count())
            .field("schedulers", &self.schedulers())
            .finish()
    }
}

impl Node {
    /// Spawns a process with default options.
    pub fn spawn<F, Fut>(&self, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        self.spawn_opts(SpawnOptions::new(), body)
    }

    /// Spawns a process with the given options.
    pub fn spawn_opts<F, Fut>(&self, opts: SpawnOptions, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        self.spawn_inner(opts, None, None, body).0
    }

    /// Spawns a process whose exit reason is delivered to the returned
    /// channel; the watch is set before the process first runs, so even an
    /// immediate crash is seen with its real reason.
    pub(crate) fn spawn_watched<F, Fut>(&self, opts: SpawnOptions, body: F) -> (Pid, ExitReceiver)
    where
        F: FnOnce(Process) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        let (tx, rx) = futures_channel::oneshot::channel();
        (self.spawn_inner(opts, Some(tx), None, body).0, rx)
    }

    /// Spawns a process with its watchers set before it first runs: an
    /// exit channel (kept inline in the cell: every task has one, and no
    /// monitor entry is made for it), a watching process, and the options'
    /// `monitored_by`. Returns the reference of the first monitor set
    /// (`watcher`'s when there is one).
    pub(crate) fn spawn_inner<F, Fut>(
        &self,
        opts: SpawnOptions,
        exit_channel: Option<ExitSender>,
        watcher: Option<Pid>,
        body: F,
    ) -> (Pid, Option<MonitorRef>)
    where
        F: FnOnce(Process) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        let mut opts = opts;
        let monitored_by = opts.monitored_by.take();
        let process =
            self.build_process(opts, std::mem::size_of::<ProcessTask<Fut>>(), exit_channel);
        let cell = process.cell.clone();
        let pid = process.pid().clone();
        let mut first_ref = None;
        for owner in [watcher, monitored_by].into_iter().flatten() {
            let mref = self.next_monitor_ref();
            first_ref.get_or_insert(mref);
            if let Some(owner) = owner.cell() {
                owner
                    .state
                    .lock()
                    .extras()
                    .monitoring
                    .insert_new(mref, pid.clone());
            }
            let _ = cell.add_monitor(mref, Watcher::Process(owner));
        }
        let priority = cell.priority;
        let task = ProcessTask::new(cell, body(process));
        self.inner.counters.spawned.fetch_add(1, Ordering::Relaxed);
        match priority {
            Priority::Normal => drop(self.inner.handle.spawn(task)),
            Priority::Low => drop(self.inner.background.spawn(task)),
        }
        (pid, first_ref)
    }

    /// The live process with this pid number, if any.
    pub fn lookup(&self, id: PidId) -> Option<Pid> {
        self.inner.table.with(id.0, |c| c.pid())
    }

    /// Finds a process by pid text (`<0.N.0>`, `N`) or registered name.
    pub fn resolve(&self, pid_or_name: &str) -> Option<Pid> {
        match pid_or_name.parse::<PidId>() {
            Ok(id) => self.lookup(id),
            Err(_) => self.whereis(pid_or_name),
        }
    }

    /// Sends an exit signal to `target` from the node itself (`<0.0.0>`),
    /// like `erlang:exit/2`: `Kill` always ends it as `Killed`; a process
    /// trapping exits gets an [`Exit`](crate::Exit) message; otherwise
    /// `Normal` is ignored and any other reason ends it.
    pub fn exit(&self, target: &Pid, reason: ExitReason) {
        target.exit_from_node(reason);
    }

    /// Sets a monitor of `target` on behalf of `watcher`, from outside it
    /// (a connection's reader thread, say): `watcher` gets the
    /// [`Down`](crate::Down) and may remove it with
    /// [`Process::demonitor`](crate::Process::demonitor), exactly as if it
    /// had called [`Process::monitor`](crate::Process::monitor) itself.
    /// This lets a proxy put a monitor in place *before* acting on what
    /// comes next (the next message on a connection). `None` if `watcher`
    /// is gone.
    ///
    /// ```
    /// use owl_runtime::{Down, ExitReason, Runtime};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let reason = rt.block_on(async {
    ///     let (tx, rx) = tokio::sync::oneshot::channel();
    ///     let proxy = node.spawn(|mut p| async move {
    ///         let down: Down = p.recv().await;
    ///         tx.send(down.reason).unwrap();
    ///     });
    ///     let target = node.spawn(|mut p| async move {
    ///         let () = p.recv().await;
    ///         Err::<(), _>("done")
    ///     });
    ///     node.monitor_for(&proxy, &target).unwrap();
    ///     target.send(()).unwrap();
    ///     rx.await.unwrap()
    /// });
    /// assert_eq!(reason, ExitReason::error("done"));
    /// ```
    pub fn monitor_for(&self, watcher: &Pid, target: &Pid) -> Option<MonitorRef> {
        let cell = watcher.cell()?;
        Some(crate::process::monitor_as(&cell, watcher, self, target))
    }

    /// Kills `target` (untrappable). Returns false if it was not alive.
    pub fn kill(&self, target: &Pid) -> bool {
        let alive = target.is_alive();
        self.exit(target, ExitReason::Kill);
        alive
    }

    /// Number of live processes.
    pub fn process_count(&self) -> usize {
        self.inner.table.len()
    }

    /// Processes woken and waiting in the schedulers' shared run queues
    /// now, normal and background: a queue that stays long means the cores
    /// are behind. (Each scheduler also keeps a short queue of its own,
    /// at most a few hundred processes, which this does not count.)
    ///
    /// ```
    /// let rt = owl_runtime::Runtime::new(Default::default()).unwrap();
    /// let queues = rt.node().run_queues();
    /// println!("{} waiting, {} in the background", queues.normal, queues.background);
    /// ```
    pub fn run_queues(&self) -> RunQueues {
        RunQueues {
            normal: self.inner.handle.metrics().global_queue_depth(),
            background: self.inner.background.metrics().global_queue_depth(),
        }
    }

    /// Time since the node started.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Wall-clock time the node started.
    pub fn started_at(&self) -> SystemTime {
        self.inner.started_at
    }

    /// Processes spawned, exited and crashed since start.
    pub fn lifecycle_counts(&self) -> (u64, u64, u64) {
        let c = &self.inner.counters;
        (
            c.spawned.load(Ordering::Relaxed),
            c.exited.load(Ordering::Relaxed),
            c.crashed.load(Ordering::Relaxed),
        )
    }

    /// Number of schedulers (worker threads).
    pub fn schedulers(&self) -> usize {
        self.inner.schedulers.workers()
    }

    /// Schedulers currently online.
    pub fn schedulers_online(&self) -> usize {
        self.inner.schedulers.online()
    }

    /// The most schedulers that may be online: the scheduler count, at most
    /// the CPUs this OS process may use.
    ///
    /// ```
    /// let rt = owl_runtime::Runtime::new(owl_runtime::Config::default().schedulers(1)).unwrap();
    /// assert_eq!(rt.node().max_schedulers_online(), 1);
    /// ```
    pub fn max_schedulers_online(&self) -> usize {
        self.inner.schedulers.max_online()
    }

    /// The CPUs this OS process may use that no scheduler of this node
    /// ever runs on (those past [`max_schedulers_online`](Self::max_schedulers_online)):
    /// where a helper thread that should leave the schedulers' cores alone
    /// can run. Empty when the schedulers may use every CPU.
    ///
    /// ```
    /// let rt = owl_runtime::Runtime::new(owl_runtime::Config::default().schedulers(1)).unwrap();
    /// // One scheduler: every CPU but the one it runs on is spare.
    /// for cpu in rt.node().spare_cpus() {
    ///     println!("CPU {cpu} runs no scheduler");
    /// }
    /// ```
    pub fn spare_cpus(&self) -> Vec<usize> {
        self.inner.schedulers.spare_cpus()
    }

    /// Sets the schedulers online (1 up to [`schedulers`](Self::schedulers),
    /// at most the CPUs available); returns the previous value.
    pub fn set_schedulers_online(
        &self,
        n: usize,
    ) -> Result<usize, crate::scheduler::SchedulersOutOfRange> {
        self.inner.schedulers.set_online(n)
    }

    /// Reads every scheduler's busy time; compare two samples for utilization.
    pub fn scheduler_sample(&self) -> SchedulerSample {
        self.inner.schedulers.sample()
    }

    /// Makes a thread outside the executor part of the node's computing: it
    /// is pinned to the schedulers-online CPUs (now and whenever they
    /// change) and its busy time counts in scheduler utilization. A
    /// sandbox's guest threads are adopted so that "schedulers online = 1"
    /// is the one core *all* of owl computes on, runaway guests included.
    ///
    /// ```
    /// use owl_runtime::{Runtime, sys::ThreadClock};
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::{Duration, Instant};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let stop = Arc::new(AtomicBool::new(false));
    /// let (adopted, is_adopted) = std::sync::mpsc::channel();
    /// let busy = stop.clone();
    /// let helper = std::thread::spawn(move || {
    ///     node.adopt_thread(ThreadClock::current().unwrap());
    ///     adopted.send(()).unwrap();
    ///     while !busy.load(Ordering::Relaxed) {} // computing
    /// });
    /// is_adopted.recv().unwrap();
    /// // The helper's busy time shows in the node's utilization (as soon
    /// // as the kernel has given it a core).
    /// let before = rt.node().scheduler_sample();
    /// let deadline = Instant::now() + Duration::from_secs(20);
    /// loop {
    ///     std::thread::sleep(Duration::from_millis(10));
    ///     let usage = rt.node().scheduler_sample().utilization_since(&before);
    ///     if usage.helpers > 0.0 {
    ///         break;
    ///     }
    ///     assert!(Instant::now() < deadline, "{usage:?}");
    /// }
    /// stop.store(true, Ordering::Relaxed);
    /// helper.join().unwrap();
    /// ```
    pub fn adopt_thread(&self, clock: crate::sys::ThreadClock) {
        self.inner.schedulers.adopt(clock, None);
    }

    /// The tokio handle processes run on.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.inner.handle
    }

    pub(crate) fn next_monitor_ref(&self) -> MonitorRef {
        self.inner.next_monitor_ref()
    }
}
