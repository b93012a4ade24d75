//! Processes: the handle a running process gets ([`Process`]), how to spawn
//! one ([`SpawnOptions`]), and sending to one ([`Pid::send`]).

pub(crate) mod cell;
pub(crate) mod link_set;
pub(crate) mod mailbox;
pub(crate) mod receive;
pub(crate) mod small_map;
pub(crate) mod table;
pub(crate) mod task;

use crate::label::Label;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use self::cell::status;
use crate::exit::{ExitReason, IntoExitReason};
use crate::message::{Exit, Message};
use crate::node::Node;
use crate::pid::{MonitorRef, Pid};
use crate::priority::Priority;
pub use cell::SendError;
use cell::{ProcessCell, SignalKind, Watcher};
pub use receive::{AnyMessage, ByType, Matcher, Recv};

/// The future of [`Process::recv`]: the first message of type `T`.
pub type RecvTyped<'a, T> = Recv<'a, ByType<T, fn(&T) -> bool>>;

/// A running process's handle on itself: its mailbox, its links and monitors,
/// and the node it lives on. Every process body receives one.
///
/// ```
/// use owl_runtime::Runtime;
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let node = rt.node();
/// let answer = rt.block_on(async move {
///     let echo = node.spawn(|mut p| async move {
///         loop {
///             let (from, text): (owl_runtime::Pid, String) = p.recv().await;
///             let _ = from.send(text.to_uppercase());
///         }
///     });
///     let (tx, rx) = tokio::sync::oneshot::channel();
///     node.spawn(move |mut p| async move {
///         echo.send((p.pid().clone(), "hello".to_string())).unwrap();
///         tx.send(p.recv::<String>().await).unwrap();
///     });
///     rx.await.unwrap()
/// });
/// assert_eq!(answer, "HELLO");
/// ```
pub struct Process {
    pub(crate) cell: Arc<ProcessCell>,
    pid: Pid,
    node: Node,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process").field("pid", &self.pid).finish()
    }
}

impl Process {
    /// This process's pid.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// The node this process runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Waits for the first message of type `T`; messages of other types stay in
    /// the mailbox, in order (a selective receive by type).
    pub fn recv<T: Send + 'static>(&mut self) -> RecvTyped<'_, T> {
        Recv::by_type(&self.cell, |_| true)
    }

    /// Waits for the first message of type `T` for which `pred` is true.
    pub fn recv_match<T, P>(&mut self, pred: P) -> Recv<'_, ByType<T, P>>
    where
        T: Send + 'static,
        P: FnMut(&T) -> bool + Unpin,
    {
        Recv::by_type(&self.cell, pred)
    }

    /// Like [`recv`](Self::recv), giving up after `timeout` (`None` then).
    pub async fn recv_timeout<T: Send + 'static>(&mut self, timeout: Duration) -> Option<T> {
        tokio::time::timeout(timeout, self.recv::<T>()).await.ok()
    }

    /// Takes the first message of type `T` if there is one, without waiting.
    pub fn try_recv<T: Send + 'static>(&mut self) -> Option<T> {
        receive::take_first::<T>(&self.cell, &mut |_| true)
    }

    /// Waits for the next message, whatever its type.
    pub fn recv_any(&mut self) -> Recv<'_, AnyMessage> {
        Recv::any(&self.cell)
    }

    /// Takes the oldest message if there is one, without waiting: a process
    /// can drain its mailbox, then act once for the whole batch.
    ///
    /// ```
    /// use owl_runtime::Runtime;
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let drained = node.spawn_task(|mut p| async move {
    ///     p.pid().send(1u8).unwrap();
    ///     p.pid().send("two").unwrap();
    ///     let mut n = 0;
    ///     while p.try_recv_any().is_some() {
    ///         n += 1;
    ///     }
    ///     n
    /// });
    /// assert_eq!(rt.block_on(drained.join()), Ok(2));
    /// ```
    pub fn try_recv_any(&mut self) -> Option<Message> {
        receive::take_oldest(&self.cell)
    }

    /// Like [`recv_any`](Self::recv_any), giving up after `timeout`.
    pub async fn recv_any_timeout(&mut self, timeout: Duration) -> Option<Message> {
        tokio::time::timeout(timeout, self.recv_any()).await.ok()
    }

    /// Number of messages waiting in the mailbox.
    pub fn mailbox_len(&self) -> usize {
        self.cell.state.lock().mailbox.len()
    }

    /// Turns exit signals into [`Exit`] messages (`true`) or lets them end
    /// this process (`false`, the default). `Kill` is never trapped.
    pub fn trap_exit(&mut self, on: bool) {
        self.cell.state.lock().trap_exit = on;
    }

    /// Whether this process traps exits.
    pub fn traps_exit(&self) -> bool {
        self.cell.state.lock().trap_exit
    }

    /// Links this process with `other`: when either ends abnormally, the other
    /// gets an exit signal. Linking to a dead process delivers a `NoProc`
    /// signal at once, as on the BEAM; so does linking to a process of
    /// another node in the same OS process (links join one node's processes;
    /// across nodes, see `owl-cluster`).
    pub fn link(&mut self, other: &Pid) {
        link_cells(&self.cell, other);
    }

    /// Removes a link (both directions). An [`Exit`] from `other` already in
    /// the mailbox is removed too, so nothing from the old link is seen later.
    pub fn unlink(&mut self, other: &Pid) {
        let was_linked = self.cell.state.lock().remove_link(other.id());
        if let Some(cell) = other.cell() {
            cell.state.lock().remove_link(self.pid.id());
        }
        // A link signal removes the link when it is delivered: while the
        // link was still in place, no `Exit` of it can be waiting, and the
        // mailbox scan is skipped (a supervisor unlinking 100,000 children
        // would otherwise scan its mailbox 100,000 times).
        if !was_linked {
            while receive::take_first::<Exit>(&self.cell, &mut |e| &e.from == other).is_some() {}
        }
    }

    /// Monitors `other`: a [`Down`](crate::Down) message arrives exactly once
    /// when it ends, with `NoProc` at once if it is already gone.
    pub fn monitor(&mut self, other: &Pid) -> MonitorRef {
        monitor_as(&self.cell, &self.pid, &self.node, other)
    }

    /// Removes a monitor, and its `Down` message if one already arrived.
    pub fn demonitor(&mut self, mref: MonitorRef) {
        let target = self
            .cell
            .state
            .lock()
            .extras
            .as_mut()
            .and_then(|ex| ex.monitoring.remove(&mref));
        if let Some(cell) = target.and_then(|t| t.cell()) {
            cell.remove_monitor(mref);
        }
        while receive::take_first::<crate::Down>(&self.cell, &mut |d| d.monitor == mref).is_some() {
        }
    }

    /// Sends an exit signal from this process to `target` (see [`Node::exit`]).
    pub fn exit(&self, target: &Pid, reason: ExitReason) {
        if let Some(cell) = target.cell() {
            cell.signal_exit(&self.pid, reason, SignalKind::Exit);
        }
    }

    /// Spawns a process with default options; this process is its parent.
    pub fn spawn<F, Fut>(&self, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        self.spawn_opts(SpawnOptions::new(), body)
    }

    /// Spawns a process linked to this one (atomically: the link exists
    /// before the child runs).
    pub fn spawn_link<F, Fut>(&self, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        self.spawn_opts(SpawnOptions::new().link_to(self.pid.clone()), body)
    }

    /// Spawns a process monitored by this one (atomically: the monitor exists
    /// before the child runs, so its `Down` carries the real reason).
    pub fn spawn_monitor<F, Fut>(&mut self, body: F) -> (Pid, MonitorRef)
    where
        F: FnOnce(Process) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        let opts = SpawnOptions::new().parent(self.pid.clone());
        let (pid, mref) = self
            .node
            .spawn_inner(opts, None, Some(self.pid.clone()), body);
        (pid, mref.expect("a process watcher gets a monitor"))
    }

    /// Spawns with explicit options; the parent defaults to this process.
    pub fn spawn_opts<F, Fut>(&self, mut opts: SpawnOptions, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        if opts.parent.is_none() {
            opts.parent = Some(self.pid.clone());
        }
        self.node.spawn_opts(opts, body)
    }

    /// Registers this process under `name` (see [`Node::register`]).
    pub fn register(&self, name: &str) -> Result<(), crate::RegisterError> {
        self.node.register(name, &self.pid)
    }

    /// Marks this process as one that stops for good when its parent sends
    /// it an exit signal, trapping or not (supervisors and servers): its
    /// name is then released the moment the signal arrives.
    pub(crate) fn stops_with_parent(&self) {
        self.cell.state.lock().extras().stops_with_parent = true;
    }

    /// Gives up this process's registered name, if it has one: called by a
    /// process that has begun to stop for good (a supervisor told by its
    /// parent to shut down its children), so that its replacement can
    /// register while it is still busy ending.
    pub(crate) fn release_own_name(&self) {
        let name = self
            .cell
            .state
            .lock()
            .extras
            .as_mut()
            .and_then(|ex| ex.name.take());
        if let Some(name) = name {
            self.node.inner.registry.release(&name, self.pid.id());
        }
    }

    /// Sets what this process reports as its current activity in the process
    /// table (while it is not waiting in a receive).
    pub fn set_activity(&self, activity: impl Into<Arc<str>>) {
        self.cell.state.lock().extras().activity = Some(activity.into());
    }

    /// Reports memory this process holds beyond its own Rust state (for
    /// example a WebAssembly guest's linear memory), for the memory estimate.
    pub fn set_memory_hint(&self, bytes: usize) {
        self.cell.set_memory_hint(bytes);
    }

    /// Reports the most memory this process may hold beyond its Rust state
    /// (a guest's linear memory limit), shown next to what it holds.
    pub fn set_memory_limit(&self, bytes: usize) {
        self.cell.state.lock().extras().memory_limit = bytes;
    }

    /// Adds `n` to this process's reductions: lets work that is not visible
    /// to the runtime (a guest's instructions) count as work done.
    pub fn add_reductions(&self, n: u64) {
        self.cell.stats.reductions.fetch_add(n, Ordering::Relaxed);
    }

    /// A handle that charges work done on this process's behalf elsewhere
    /// (another executor, a thread pool) to its CPU time and reductions.
    pub fn work_meter(&self) -> WorkMeter {
        WorkMeter {
            cell: self.cell.clone(),
        }
    }

    /// Sleeps for `duration` (millisecond resolution), showing `sleep` as the
    /// current activity meanwhile. Cheap enough for a million sleeping processes.
    pub fn sleep(&self, duration: Duration) -> crate::sleep::Sleep<'_> {
        self.sleep_until(std::time::Instant::now() + duration)
    }

    /// Sleeps until `deadline` (see [`sleep`](Self::sleep)).
    pub fn sleep_until(&self, deadline: std::time::Instant) -> crate::sleep::Sleep<'_> {
        let wheel = self.node.inner.wheel_for(self.cell.priority);
        let cell: &ProcessCell = &self.cell;
        crate::sleep::Sleep::new(wheel, deadline, &cell.waiting_on, cell)
    }

    /// Ticks every `period` from `start` on, on the same wheel as
    /// [`sleep`](Self::sleep): `interval.tick().await` sleeps until the next
    /// tick. A process that falls more than a period behind skips the ticks
    /// it missed instead of catching up in a burst. The wheel's own tick
    /// count keeps the schedule, so a tick reads no clock: a million
    /// periodic processes cost their work and their wake-ups, nothing more.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use owl_runtime::Runtime;
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let beats = rt.node().spawn_task(|p| async move {
    ///     let start = Instant::now();
    ///     let mut every = p.interval_at(start, Duration::from_millis(10));
    ///     for _ in 0..3 {
    ///         every.tick().await;
    ///     }
    ///     start.elapsed()
    /// });
    /// let took = rt.block_on(beats.join()).unwrap();
    /// assert!(took >= Duration::from_millis(19), "{took:?}");
    /// ```
    pub fn interval_at(
        &self,
        start: std::time::Instant,
        period: Duration,
    ) -> crate::sleep::Interval<'_> {
        let wheel = self.node.inner.wheel_for(self.cell.priority);
        let cell: &ProcessCell = &self.cell;
        crate::sleep::Interval::new(wheel, start, period, &cell.waiting_on, cell)
    }
}

/// Charges work done outside the process's own polls to the process (see
/// [`Process::work_meter`]).
///
/// ```
/// use owl_runtime::Runtime;
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let node = rt.node();
/// let reductions = rt.block_on(async move {
///     node.spawn_task(|p| async move {
///         let meter = p.work_meter();
///         // Work on another executor, measured poll by poll.
///         let work = meter.measure(async { (1..=1000u64).sum::<u64>() });
///         tokio::spawn(work).await.unwrap();
///         p.node().info(p.pid()).unwrap().reductions
///     }).join().await.unwrap()
/// });
/// assert!(reductions >= 2);
/// ```
#[derive(Clone)]
pub struct WorkMeter {
    cell: Arc<ProcessCell>,
}

impl std::fmt::Debug for WorkMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkMeter")
            .field("pid", &crate::PidId(self.cell.id))
            .finish()
    }
}

impl WorkMeter {
    /// Wraps `fut` so that each of its polls, wherever it runs, adds its
    /// duration to the process's CPU time and one reduction.
    pub fn measure<F: Future>(&self, fut: F) -> Measured<F> {
        Measured {
            meter: self.clone(),
            fut,
        }
    }

    /// Reports memory the process holds beyond its Rust state, from wherever
    /// the work runs (see [`Process::set_memory_hint`]).
    pub fn set_memory_hint(&self, bytes: usize) {
        self.cell.set_memory_hint(bytes);
    }

    /// The process's CPU time so far (its own polls plus measured work).
    pub fn cpu_time(&self) -> Duration {
        crate::scheduler::cycles_to_duration(self.cell.stats.cpu_cycles.load(Ordering::Relaxed))
    }
}

pin_project_lite::pin_project! {
    /// The future of [`WorkMeter::measure`].
    #[derive(Debug)]
    pub struct Measured<F> {
        meter: WorkMeter,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for Measured<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        // Off the schedulers, the profiler learns whom this thread works for
        // (on a scheduler, the process being polled says it already), and
        // the process table shows the process running while the work runs,
        // runnable while it waits for its next turn, waiting once it is done.
        let elsewhere = crate::scheduler::current_worker().is_none();
        let _computing = elsewhere.then(|| {
            let node = this.meter.cell.node.as_ptr() as usize;
            crate::busy::computing_for(node, this.meter.cell.id)
        });
        let state = &this.meter.cell.status;
        if elsewhere {
            for from in [status::WAITING, status::RUNNABLE] {
                let _ = state.compare_exchange(
                    from,
                    status::RUNNING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
        }
        let start = crate::scheduler::clock().raw();
        let out = this.fut.poll(cx);
        let end = crate::scheduler::clock().raw();
        if elsewhere {
            // Pending: queued for its next slice. (From waiting too: the
            // process's own poll may have ended after this slice began.)
            let (after, from): (u8, &[u8]) = match out {
                std::task::Poll::Pending => (status::RUNNABLE, &[status::RUNNING, status::WAITING]),
                std::task::Poll::Ready(_) => (status::WAITING, &[status::RUNNING]),
            };
            for &from in from {
                let _ = state.compare_exchange(from, after, Ordering::AcqRel, Ordering::Acquire);
            }
        }
        let stats = &this.meter.cell.stats;
        stats
            .cpu_cycles
            .fetch_add(end.saturating_sub(start), Ordering::Relaxed);
        stats.reductions.fetch_add(1, Ordering::Relaxed);
        out
    }
}

/// Links the process in `cell` with `other`. Our side is written first: if
/// `other` exits after it saw the link, its signal finds ours in place.
///
/// Links join processes of one node: they are kept by pid number and found
/// in the node's table when a signal is due, so a pid of another node in
/// the same OS process (two runtimes side by side) is refused with
/// `NoProc`, as a pid this node does not know.
fn link_cells(cell: &Arc<ProcessCell>, other: &Pid) {
    let me = cell.pid();
    let target = other.cell();
    // Itself, by identity: a pid of another node may carry the same number.
    if target.as_ref().is_some_and(|t| Arc::ptr_eq(t, cell)) {
        return;
    }
    cell.state.lock().add_link(other);
    let same_node = |t: &Arc<ProcessCell>| std::sync::Weak::ptr_eq(&t.node, &cell.node);
    let linked = target.filter(same_node).is_some_and(|target| {
        let mut st = target.state.lock();
        if st.exited {
            return false;
        }
        st.add_link(&me);
        true
    });
    if !linked {
        cell.signal_exit(other, ExitReason::NoProc, SignalKind::Link);
    }
}

/// How to start a process: label, mailbox bound, link, exit trapping.
///
/// ```
/// use owl_runtime::{Runtime, SpawnOptions, SendError};
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let pid = rt.node().spawn_opts(
///     SpawnOptions::new().label("slow consumer").mailbox_capacity(1),
///     |mut p| async move { p.sleep(std::time::Duration::from_secs(60)).await },
/// );
/// assert!(pid.send(1u8).is_ok());
/// assert!(matches!(pid.send(2u8), Err(SendError::Full(2))));
/// ```
#[derive(Default, Clone, Debug)]
pub struct SpawnOptions {
    pub(crate) label: Option<Label>,
    pub(crate) mailbox_capacity: Option<usize>,
    pub(crate) link_to: Option<Pid>,
    pub(crate) parent: Option<Pid>,
    pub(crate) monitored_by: Option<Pid>,
    pub(crate) trap_exit: bool,
    pub(crate) priority: Option<Priority>,
}

impl SpawnOptions {
    /// Default options: unbounded mailbox, no link, not trapping exits.
    pub fn new() -> Self {
        Self::default()
    }

    /// A label (kind) shown in the process table, e.g. `"web session /"`;
    /// a [`Label`] made once is shared by all the processes spawned with it.
    pub fn label(mut self, label: impl Into<Label>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Runs the process at `priority` for its whole life (see
    /// [`Priority`]); without it, a process is
    /// [`Normal`](Priority::Normal) — or, started by a supervisor, what its
    /// child spec says.
    ///
    /// ```
    /// use owl_runtime::{Priority, Runtime, SpawnOptions};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let job = rt.node().spawn_task_opts(SpawnOptions::new().priority(Priority::Low), |_| async { 2 + 2 });
    /// assert_eq!(rt.block_on(job.join()), Ok(4));
    /// ```
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Bounds the mailbox to `capacity` messages (at least 1): senders then
    /// feel back pressure ([`Pid::send`] reports `Full`, [`Pid::send_wait`] waits).
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox_capacity = Some(capacity.max(1));
        self
    }

    /// Links the new process to `pid` before it first runs.
    pub fn link_to(mut self, pid: Pid) -> Self {
        self.link_to = Some(pid);
        self
    }

    /// Records `pid` as the parent (shown in the process table).
    pub fn parent(mut self, pid: Pid) -> Self {
        self.parent = Some(pid);
        self
    }

    /// Sets a monitor from `watcher` on the new process before it first runs,
    /// so `watcher` gets its [`Down`](crate::Down) with the real exit reason
    /// however fast it ends — even when a third party (a supervisor) spawns
    /// it. The `Down` names the new process's pid.
    ///
    /// ```
    /// use owl_runtime::{Down, ExitReason, Runtime, SpawnOptions};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let reason = node.spawn_task(|mut p| async move {
    ///     let opts = SpawnOptions::new().monitored_by(p.pid().clone());
    ///     let helper = p.node().clone();
    ///     // Someone else spawns the worker; we still see how it ended.
    ///     let pid = helper.spawn_opts(opts, |_| async { ExitReason::error("boom") });
    ///     let down: Down = p.recv().await;
    ///     assert_eq!(down.pid, pid);
    ///     down.reason
    /// });
    /// assert_eq!(rt.block_on(reason.join()), Ok(ExitReason::error("boom")));
    /// ```
    pub fn monitored_by(mut self, watcher: Pid) -> Self {
        self.monitored_by = Some(watcher);
        self
    }

    /// Starts the process already trapping exits.
    pub fn trap_exit(mut self, on: bool) -> Self {
        self.trap_exit = on;
        self
    }
}

impl Node {
    pub(crate) fn build_process(
        &self,
        opts: SpawnOptions,
        future_bytes: usize,
        exit_channel: Option<cell::ExitSender>,
    ) -> Process {
        let inner = &self.inner;
        let id = inner.next_pid();
        let bounded = opts.mailbox_capacity.map(|capacity| {
            Box::new(cell::Bounded {
                capacity,
                space: tokio::sync::Notify::new(),
            })
        });
        let cell = Arc::new(ProcessCell {
            id,
            node: Arc::downgrade(inner),
            label: opts.label.unwrap_or(Label::from("process")),
            parent_id: opts
                .parent
                .as_ref()
                .and_then(|p| std::num::NonZeroU64::new(p.id().0)),
            priority: opts.priority.unwrap_or_default(),
            started_ds: (crate::scheduler::coarse_now_ms().saturating_sub(inner.started_ms) / 100)
                .try_into()
                .unwrap_or(u32::MAX),
            future_bytes: future_bytes.min(u32::MAX as usize) as u32,
            bounded,
            state: parking_lot::Mutex::new(cell::State {
                mailbox: Default::default(),
                receiving: cell::Receiving::No,
                task_waker: None,
                exited: false,
                trap_exit: opts.trap_exit,
                link: None,
                exit_channel,
                extras: None,
            }),
            status: std::sync::atomic::AtomicU8::new(cell::status::RUNNABLE),
            waiting_on: Default::default(),
            exit_pending: Default::default(),
            stats: Default::default(),
            long_polls: Default::default(),
        });
        inner.table.insert(id, cell.clone());
        inner.labels.add(&cell.label, 1);
        if let Some(to) = &opts.link_to {
            link_cells(&cell, to);
        }
        Process {
            pid: cell.pid(),
            cell,
            node: self.clone(),
        }
    }
}

impl Pid {
    /// Sends an exit signal from the node itself (`<0.0.0>`): the one path
    /// behind `Node::exit`, supervisor shutdown and task timeouts.
    pub(crate) fn exit_from_node(&self, reason: ExitReason) {
        if let Some(cell) = self.cell() {
            cell.signal_exit(&Pid::system(), reason, SignalKind::Exit);
        }
    }

    /// Sends `msg` without ever waiting, like Erlang's `!`.
    ///
    /// Fails with [`SendError::NoProcess`] if the process is gone (callers that
    /// follow Erlang's "send and forget" simply ignore it) and with
    /// [`SendError::Full`] if its mailbox is bounded and full — the
    /// non-blocking *try-send*; use [`send_wait`](Self::send_wait) to wait for room.
    pub fn send<M: Send + 'static>(&self, msg: M) -> Result<(), SendError<M>> {
        let Some(cell) = self.cell() else {
            return Err(SendError::NoProcess(msg));
        };
        cell.deliver_with(msg, Message::new, true)
    }

    /// Sends the answer to a request the receiver itself made (the result
    /// of work it started): delivered even when its bounded mailbox is full.
    ///
    /// A bounded mailbox limits what *others* ask of a process; the answers
    /// to its own requests must never be dropped by it, or the process would
    /// see the worker end (its `Down`) without the answer that came first.
    /// They are bounded by how much work the receiver started.
    ///
    /// ```
    /// use owl_runtime::{Runtime, SendError, SpawnOptions};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let pid = rt.node().spawn_opts(SpawnOptions::new().mailbox_capacity(1), |mut p| async move {
    ///     p.recv::<()>().await
    /// });
    /// pid.send(1u8).unwrap();
    /// assert!(matches!(pid.send(2u8), Err(SendError::Full(2))));
    /// assert!(pid.send_reply(3u8).is_ok(), "an answer is never refused for room");
    /// ```
    pub fn send_reply<M: Send + 'static>(&self, msg: M) -> Result<(), SendError<M>> {
        let Some(cell) = self.cell() else {
            return Err(SendError::NoProcess(msg));
        };
        cell.deliver_with(msg, Message::new, false)
    }

    /// Sends `msg`, waiting while a bounded mailbox is full: back pressure.
    /// Fails only if the process is gone.
    pub async fn send_wait<M: Send + 'static>(&self, mut msg: M) -> Result<(), SendError<M>> {
        let Some(cell) = self.cell() else {
            return Err(SendError::NoProcess(msg));
        };
        loop {
            let room = cell.bounded.as_ref().map(|b| b.space.notified());
            let mut room = std::pin::pin!(room);
            if let Some(n) = room.as_mut().as_pin_mut() {
                n.enable();
            }
            match self.send(msg) {
                Err(SendError::Full(m)) => msg = m,
                other => return other,
            }
            if let Some(n) = room.as_pin_mut() {
                n.await;
            }
            if cell.has_exited() {
                return Err(SendError::NoProcess(msg));
            }
        }
    }

    /// Resolves with the process's exit reason once it has ended (`NoProc` if
    /// it was already gone). Usable from any async code, in a process or not.
    pub fn wait_exit(&self) -> impl Future<Output = ExitReason> + Send + 'static {
        let (tx, rx) = futures_channel::oneshot::channel();
        let immediate = match self.cell() {
            Some(cell) => {
                let mref = cell
                    .node
                    .upgrade()
                    .map(|n| n.next_monitor_ref())
                    .unwrap_or(MonitorRef(0));
                cell.add_monitor(mref, Watcher::Channel(tx)).is_err()
            }
            None => true,
        };
        async move {
            if immediate {
                return ExitReason::NoProc;
            }
            rx.await.unwrap_or(ExitReason::NoProc)
        }
    }
}

/// Sets a monitor of `other` owned by the process of `cell` (`pid`): the
/// `Down` goes to it, and its `demonitor` removes it.
pub(crate) fn monitor_as(
    cell: &Arc<ProcessCell>,
    pid: &Pid,
    node: &Node,
    other: &Pid,
) -> MonitorRef {
    let mref = node.next_monitor_ref();
    cell.state
        .lock()
        .extras()
        .monitoring
        .insert_new(mref, other.clone());
    let watcher = Watcher::Process(pid.clone());
    let refused = match other.cell() {
        Some(target) => target.add_monitor(mref, watcher).is_err(),
        None => true,
    };
    if refused {
        if let Some(ex) = cell.state.lock().extras.as_mut() {
            ex.monitoring.remove(&mref);
        }
        let down = crate::Down {
            monitor: mref,
            pid: other.clone(),
            reason: ExitReason::NoProc,
        };
        let _ = cell.deliver(Message::new(down), false);
    }
    mref
}
