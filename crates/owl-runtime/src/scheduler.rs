//! Schedulers: the executor's worker threads, how many of them may use a CPU
//! ("schedulers online"), how busy they are, and the long-poll watchdog.
//!
//! Utilization is measured like the BEAM's scheduler wall time: for each
//! worker, the share of wall time its thread spent on a CPU (read from the
//! thread's CPU clock, so it is exact whether the worker ran processes,
//! timers or I/O).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::node::NodeInner;
use crate::priority::Priority;
use crate::process::cell::ProcessCell;

/// The cycle counter used for per-poll accounting (TSC where available).
pub(crate) fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Milliseconds on a coarse monotonic clock (a few ms resolution, but far
/// cheaper than a precise read): for timestamps like a process's start time.
pub(crate) fn coarse_now_ms() -> u64 {
    crate::sys::coarse_now_ms()
}

pub(crate) fn cycles_to_duration(cycles: u64) -> Duration {
    Duration::from_nanos(clock().delta_as_nanos(0, cycles))
}

/// What one worker thread is doing, shared with the watchdog and samplers.
pub(crate) struct WorkerSlot {
    /// The pid number being polled now, 0 when none.
    current: AtomicU64,
    poll_started: AtomicU64,
    /// Set once the current poll has been reported as too long.
    reported: AtomicBool,
    threshold_cycles: AtomicU64,
}

impl WorkerSlot {
    pub(crate) fn begin_poll(&self, pid: u64, start: u64) {
        self.poll_started.store(start, Ordering::Relaxed);
        self.reported.store(false, Ordering::Relaxed);
        self.current.store(pid, Ordering::Release);
    }

    pub(crate) fn end_poll(&self, cell: &ProcessCell, start: u64, end: u64) {
        self.current.store(0, Ordering::Release);
        if end.saturating_sub(start) > self.threshold_cycles.load(Ordering::Relaxed)
            && !self.reported.swap(true, Ordering::AcqRel)
        {
            report_long_poll(cell, cycles_to_duration(end - start), true);
        }
    }
}

fn report_long_poll(cell: &ProcessCell, blocked: Duration, finished: bool) {
    cell.long_polls.fetch_add(1, Ordering::Relaxed);
    let name = cell
        .state
        .lock()
        .extras
        .as_ref()
        .and_then(|e| e.name.clone());
    let pid = crate::PidId(cell.id);
    // One line per kind of process per window; the next says how many
    // were left out (each process still counts all of its own).
    let left_out = match cell.node.upgrade() {
        Some(node) => match node
            .log_limiter
            .check_burst(&format!("long poll {}", cell.label), 1)
        {
            crate::log_limit::Verdict::Write { left_out } => left_out,
            crate::log_limit::Verdict::LeaveOut => return,
        },
        None => 0,
    };
    tracing::warn!(%pid, name = name.as_deref(), label = %cell.label,
        blocked_ms = blocked.as_secs_f64() * 1e3, still_running = !finished,
        left_out,
        "long poll: a native process blocked its scheduler");
}

thread_local! {
    static WORKER: Cell<Option<&'static WorkerSlot>> = const { Cell::new(None) };
}

/// The slot of the worker thread we are on, if this is one of a node's workers.
pub(crate) fn current_worker() -> Option<&'static WorkerSlot> {
    WORKER.get()
}

/// A point-in-time reading of the busy time of every thread that computes
/// for the node: its schedulers, and the helper threads it adopted (a
/// sandbox's guest threads, see [`Node::adopt_thread`](crate::Node::adopt_thread)).
///
/// Take two and compare them with [`utilization_since`](Self::utilization_since),
/// like `scheduler:sample/0` and `scheduler:utilization/2` on the BEAM.
///
/// ```
/// use owl_runtime::Runtime;
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let before = rt.node().scheduler_sample();
/// std::thread::sleep(std::time::Duration::from_millis(20));
/// let usage = rt.node().scheduler_sample().utilization_since(&before);
/// assert!((0.0..=1.0).contains(&usage.total));
/// ```
#[derive(Clone, Debug)]
pub struct SchedulerSample {
    at: Instant,
    busy: Vec<Duration>,
    helpers: Vec<Duration>,
    online: usize,
}

/// Busy fractions between two samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Utilization {
    /// The busy share of the cores online (0.0–1.0): schedulers and helper
    /// threads together, as a runaway sandboxed process shows on the BEAM.
    pub total: f64,
    /// Each scheduler's busy fraction (0.0–1.0).
    pub per_scheduler: Vec<f64>,
    /// Busy time of the helper threads (guest execution), in cores: 1.0 is
    /// one core kept busy.
    pub helpers: f64,
}

impl SchedulerSample {
    /// A sample of some threads' CPU clocks alone — a sandbox's guest
    /// threads, say — measured the same way, over `threads.len()` cores.
    ///
    /// ```
    /// use owl_runtime::SchedulerSample;
    /// use owl_runtime::sys::ThreadClock;
    ///
    /// let me = ThreadClock::current().unwrap();
    /// let before = SchedulerSample::of_threads(&[me]);
    /// // Busy until this thread has had 20 ms of CPU (however long the
    /// // machine takes to give them).
    /// let start = me.cpu_time();
    /// while me.cpu_time() - start < std::time::Duration::from_millis(20) {}
    /// let busy = SchedulerSample::of_threads(&[me]).utilization_since(&before);
    /// assert!(busy.total > 0.0 && busy.per_scheduler.len() == 1, "{busy:?}");
    /// ```
    pub fn of_threads(threads: &[crate::sys::ThreadClock]) -> SchedulerSample {
        SchedulerSample {
            at: Instant::now(),
            busy: threads.iter().map(|c| c.cpu_time()).collect(),
            helpers: Vec::new(),
            online: threads.len(),
        }
    }

    /// Utilization between `earlier` and this sample.
    pub fn utilization_since(&self, earlier: &SchedulerSample) -> Utilization {
        let wall = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        let fraction = |now: &[Duration], before: &[Duration]| -> Vec<f64> {
            now.iter()
                .enumerate()
                .map(|(i, b)| {
                    let was = before.get(i).copied().unwrap_or_default();
                    (b.saturating_sub(was).as_secs_f64() / wall).clamp(0.0, 1.0)
                })
                .collect()
        };
        let per = fraction(&self.busy, &earlier.busy);
        let helpers: f64 = fraction(&self.helpers, &earlier.helpers).iter().sum();
        let total = (per.iter().sum::<f64>() + helpers) / self.online.max(1) as f64;
        Utilization {
            total: total.clamp(0.0, 1.0),
            per_scheduler: per,
            helpers,
        }
    }
}

/// A number of schedulers online outside what the node has.
///
/// ```
/// use owl_runtime::{Config, Runtime};
/// let rt = Runtime::new(Config::default().schedulers(1)).unwrap();
/// let refused = rt.node().set_schedulers_online(3).unwrap_err();
/// assert_eq!(refused.to_string(), "schedulers online must be between 1 and 1, not 3");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulersOutOfRange {
    /// What was asked for.
    pub asked: usize,
    /// The most the node allows.
    pub max: usize,
}

impl std::fmt::Display for SchedulersOutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "schedulers online must be between 1 and {}, not {}",
            self.max, self.asked
        )
    }
}
impl std::error::Error for SchedulersOutOfRange {}

/// A thread that computes for the node: a worker (by slot) or an adopted helper.
struct ComputeThread {
    clock: crate::sys::ThreadClock,
    worker_slot: Option<usize>,
}

/// How much longer than a normal one a background poll must last to be
/// reported as blocking its scheduler.
const BACKGROUND_LONG_POLL_FACTOR: u32 = 10;

pub(crate) struct Schedulers {
    /// The normal schedulers' slots, then the background schedulers' (as
    /// many of each): `slots[i]` and `slots[workers + i]` share CPU `i`'s
    /// place in "schedulers online".
    slots: &'static [WorkerSlot],
    workers: usize,
    /// Slots handed out so far, per priority (background, normal).
    assigned: [AtomicUsize; 2],
    /// Every thread pinned by "schedulers online" and counted in utilization.
    threads: parking_lot::Mutex<Vec<ComputeThread>>,
    online: AtomicUsize,
    /// CPUs this OS process may use, in order; "online = n" pins workers to the first n.
    cpus: Vec<usize>,
    pub long_poll_threshold: Duration,
    /// The node these workers run, set once it exists.
    pub node: OnceLock<Weak<NodeInner>>,
}

impl Schedulers {
    pub(crate) fn new(workers: usize, long_poll_threshold: Duration) -> Arc<Schedulers> {
        let per_ns = cycles_per_nanosecond();
        let slots: Vec<WorkerSlot> = (0..2 * workers)
            .map(|i| {
                // Polls are timed on the wall clock, and the kernel preempts
                // a background poll whenever normal work wants its core: such
                // a poll looks longer than it ran, so it must look much longer
                // before it is reported.
                let threshold = if i < workers {
                    long_poll_threshold
                } else {
                    long_poll_threshold * BACKGROUND_LONG_POLL_FACTOR
                };
                WorkerSlot {
                    current: AtomicU64::new(0),
                    poll_started: AtomicU64::new(0),
                    reported: AtomicBool::new(false),
                    threshold_cycles: AtomicU64::new((threshold.as_nanos() as f64 * per_ns) as u64),
                }
            })
            .collect();
        let cpus = crate::sys::allowed_cpus();
        Arc::new(Schedulers {
            // A few hundred bytes per runtime, kept for the life of the OS process
            // so worker threads can hold a plain `&'static` to their slot.
            slots: Box::leak(slots.into_boxed_slice()),
            workers,
            assigned: Default::default(),
            threads: Default::default(),
            online: AtomicUsize::new(workers.min(cpus.len().max(1))),
            cpus,
            long_poll_threshold,
            node: OnceLock::new(),
        })
    }

    /// Normal schedulers (there are as many background ones).
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    pub(crate) fn online(&self) -> usize {
        self.online.load(Ordering::Relaxed)
    }

    /// The most schedulers that may be online: the worker count, at most the
    /// CPUs this OS process may use.
    pub(crate) fn max_online(&self) -> usize {
        self.workers.min(self.cpus.len().max(1))
    }

    /// The allowed CPUs no scheduler is ever pinned to.
    pub(crate) fn spare_cpus(&self) -> Vec<usize> {
        self.cpus
            .get(self.max_online()..)
            .unwrap_or_default()
            .to_vec()
    }

    /// Called on a worker thread of the schedulers of `priority`: gives it a
    /// slot (once) and applies the current CPU mask to it.
    pub(crate) fn register_current_thread(
        &self,
        priority: Priority,
    ) -> Option<&'static WorkerSlot> {
        if let Some(slot) = WORKER.get() {
            return Some(slot);
        }
        let lane = priority as usize;
        let n = self.assigned[lane].fetch_add(1, Ordering::AcqRel);
        if n >= self.workers {
            return None;
        }
        let i = match priority {
            Priority::Normal => n,
            Priority::Low => self.workers + n,
        };
        let slot = self.slots.get(i)?;
        if let Some(clock) = crate::sys::ThreadClock::current() {
            self.adopt(clock, Some(i));
        }
        WORKER.set(Some(slot));
        Some(slot)
    }

    /// Pins a thread to the online CPUs and counts it in utilization from now on.
    pub(crate) fn adopt(&self, clock: crate::sys::ThreadClock, worker_slot: Option<usize>) {
        self.pin(clock.tid(), self.online());
        let mut threads = self.threads.lock();
        threads.retain(|t| t.clock.tid() != clock.tid());
        threads.push(ComputeThread { clock, worker_slot });
    }

    /// Sets how many CPUs the node computes on: 1 ..= [`max_online`](Self::max_online).
    /// Every compute thread (schedulers and adopted helpers) is pinned to them.
    pub(crate) fn set_online(&self, n: usize) -> Result<usize, SchedulersOutOfRange> {
        let max = self.max_online();
        if n == 0 || n > max {
            return Err(SchedulersOutOfRange { asked: n, max });
        }
        let previous = self.online.swap(n, Ordering::AcqRel);
        for t in self.threads.lock().iter() {
            self.pin(t.clock.tid(), n);
        }
        Ok(previous)
    }

    fn pin(&self, tid: i32, online: usize) {
        if self.cpus.is_empty() {
            return;
        }
        let cpus = &self.cpus[..online.clamp(1, self.cpus.len())];
        if let Err(e) = crate::sys::pin_thread(tid, cpus) {
            // A thread that has exited meanwhile cannot be pinned (no such
            // thread); anything else means "schedulers online" does not
            // hold: say so.
            if e.raw_os_error() != Some(libc::ESRCH) {
                tracing::warn!(target: "owl::scheduler", tid, error = %e,
                    "could not pin a thread to the online CPUs");
            }
        }
    }

    /// The pid number each scheduler (normal and background) is polling
    /// right now, for those that are polling one.
    pub(crate) fn running_now(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .map(|slot| slot.current.load(Ordering::Acquire))
            .filter(|&pid| pid != 0)
    }

    pub(crate) fn sample(&self) -> SchedulerSample {
        let threads = self.threads.lock();
        let mut busy = vec![Duration::ZERO; self.workers];
        let mut helpers = Vec::new();
        for t in threads.iter() {
            match t.worker_slot {
                // A scheduler's figure is its normal and background threads
                // together: both compute on its CPU.
                Some(i) => busy[i % self.workers] += t.clock.cpu_time(),
                None => helpers.push(t.clock.cpu_time()),
            }
        }
        SchedulerSample {
            at: Instant::now(),
            busy,
            helpers,
            online: self.online(),
        }
    }

    /// Runs until `stop` is set: reports polls still in progress after the
    /// threshold, naming the process (a finished long poll is reported by the
    /// worker itself).
    pub(crate) fn watchdog(self: Arc<Self>, stop: Arc<AtomicBool>) {
        // A stuck scheduler is reported within two thresholds (or 40 ms);
        // waking more often would cost an idle node more than it tells.
        let period = self.long_poll_threshold.max(Duration::from_millis(20));
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(period);
            let now = clock().raw();
            for slot in self.slots {
                let pid = slot.current.load(Ordering::Acquire);
                if pid == 0 {
                    continue;
                }
                let started = slot.poll_started.load(Ordering::Relaxed);
                let elapsed = now.saturating_sub(started);
                if elapsed <= slot.threshold_cycles.load(Ordering::Relaxed)
                    || slot.current.load(Ordering::Acquire) != pid
                    || slot.reported.swap(true, Ordering::AcqRel)
                {
                    continue;
                }
                let cell = self
                    .node
                    .get()
                    .and_then(Weak::upgrade)
                    .and_then(|n| n.table.get(pid));
                if let Some(cell) = cell {
                    report_long_poll(&cell, cycles_to_duration(elapsed), false);
                }
            }
        }
    }
}

fn cycles_per_nanosecond() -> f64 {
    let probe = 1_000_000_000u64;
    let ns = clock().delta_as_nanos(0, probe).max(1);
    probe as f64 / ns as f64
}
