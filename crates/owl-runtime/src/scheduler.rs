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
use crate::process::cell::ProcessCell;

/// The cycle counter used for per-poll accounting (TSC where available).
pub(crate) fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Milliseconds on a coarse monotonic clock (a few ms resolution, but far
/// cheaper than a precise read): for timestamps like a process's start time.
pub(crate) fn coarse_now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
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
    /// The worker's pthread CPU clock, once it is known.
    cpu_clock: AtomicU64,
    threshold_cycles: AtomicU64,
}

impl WorkerSlot {
    pub fn begin_poll(&self, pid: u64, start: u64) {
        self.poll_started.store(start, Ordering::Relaxed);
        self.reported.store(false, Ordering::Relaxed);
        self.current.store(pid, Ordering::Release);
    }

    pub fn end_poll(&self, cell: &ProcessCell, start: u64, end: u64) {
        self.current.store(0, Ordering::Release);
        if end.saturating_sub(start) > self.threshold_cycles.load(Ordering::Relaxed)
            && !self.reported.swap(true, Ordering::AcqRel)
        {
            report_long_poll(cell, cycles_to_duration(end - start), true);
        }
    }
}

fn report_long_poll(cell: &ProcessCell, blocked: Duration, finished: bool) {
    cell.stats.long_polls.fetch_add(1, Ordering::Relaxed);
    let name = cell
        .state
        .lock()
        .extras
        .as_ref()
        .and_then(|e| e.name.clone());
    let pid = crate::PidId(cell.id);
    tracing::warn!(%pid, name = name.as_deref(), label = %cell.label,
        blocked_ms = blocked.as_secs_f64() * 1e3, still_running = !finished,
        "long poll: a native process blocked its scheduler");
}

thread_local! {
    static WORKER: Cell<Option<&'static WorkerSlot>> = const { Cell::new(None) };
}

/// The slot of the worker thread we are on, if this is one of a node's workers.
pub(crate) fn current_worker() -> Option<&'static WorkerSlot> {
    WORKER.get()
}

/// A point-in-time reading of every scheduler's busy time.
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
    online: usize,
}

/// Busy fractions (0.0–1.0) between two samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Utilization {
    /// Busy time of all workers over the wall time of the schedulers online.
    pub total: f64,
    /// Each worker's busy fraction.
    pub per_scheduler: Vec<f64>,
}

impl SchedulerSample {
    /// A sample of other threads that run work for the node — a guest
    /// executor's, say — from their CPU clocks (`pthread_getcpuclockid`),
    /// so their utilization is measured the same way.
    ///
    /// ```
    /// use owl_runtime::SchedulerSample;
    ///
    /// let mut clock: libc::clockid_t = 0;
    /// // SAFETY: asks for the calling thread's own CPU clock.
    /// assert_eq!(unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) }, 0);
    /// let before = SchedulerSample::of_thread_clocks(&[clock]);
    /// let t = std::time::Instant::now();
    /// while t.elapsed() < std::time::Duration::from_millis(50) {} // busy
    /// let busy = SchedulerSample::of_thread_clocks(&[clock]).utilization_since(&before);
    /// assert!(busy.total > 0.5, "{busy:?}");
    /// ```
    pub fn of_thread_clocks(clocks: &[libc::clockid_t]) -> SchedulerSample {
        SchedulerSample {
            at: Instant::now(),
            busy: clocks.iter().map(|&c| thread_cpu_time(c)).collect(),
            online: clocks.len(),
        }
    }

    /// Utilization between `earlier` and this sample.
    pub fn utilization_since(&self, earlier: &SchedulerSample) -> Utilization {
        let wall = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        let per: Vec<f64> = self
            .busy
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let before = earlier.busy.get(i).copied().unwrap_or_default();
                (b.saturating_sub(before).as_secs_f64() / wall).clamp(0.0, 1.0)
            })
            .collect();
        let total = per.iter().sum::<f64>() / self.online.max(1) as f64;
        Utilization {
            total: total.clamp(0.0, 1.0),
            per_scheduler: per,
        }
    }
}

pub(crate) struct Schedulers {
    slots: &'static [WorkerSlot],
    assigned: AtomicUsize,
    tids: parking_lot::Mutex<Vec<libc::pid_t>>,
    online: AtomicUsize,
    /// CPUs this OS process may use, in order; "online = n" pins workers to the first n.
    cpus: Vec<usize>,
    pub long_poll_threshold: Duration,
    /// The node these workers run, set once it exists.
    pub node: OnceLock<Weak<NodeInner>>,
}

impl Schedulers {
    pub fn new(workers: usize, long_poll_threshold: Duration) -> Arc<Schedulers> {
        let per_ns = cycles_per_nanosecond();
        let slots: Vec<WorkerSlot> = (0..workers)
            .map(|_| WorkerSlot {
                current: AtomicU64::new(0),
                poll_started: AtomicU64::new(0),
                reported: AtomicBool::new(false),
                cpu_clock: AtomicU64::new(u64::MAX),
                threshold_cycles: AtomicU64::new(
                    (long_poll_threshold.as_nanos() as f64 * per_ns) as u64,
                ),
            })
            .collect();
        let cpus = allowed_cpus();
        Arc::new(Schedulers {
            // A few hundred bytes per runtime, kept for the life of the OS process
            // so worker threads can hold a plain `&'static` to their slot.
            slots: Box::leak(slots.into_boxed_slice()),
            assigned: AtomicUsize::new(0),
            tids: Default::default(),
            online: AtomicUsize::new(workers.min(cpus.len().max(1))),
            cpus,
            long_poll_threshold,
            node: OnceLock::new(),
        })
    }

    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    pub fn online(&self) -> usize {
        self.online.load(Ordering::Relaxed)
    }

    /// The most schedulers that may be online: the worker count, at most the
    /// CPUs this OS process may use.
    pub fn max_online(&self) -> usize {
        self.slots.len().min(self.cpus.len().max(1))
    }

    /// Called on a worker thread: gives it a slot (once) and applies the
    /// current CPU mask to it.
    pub fn register_current_thread(&self) -> Option<&'static WorkerSlot> {
        if let Some(slot) = WORKER.get() {
            return Some(slot);
        }
        let i = self.assigned.fetch_add(1, Ordering::AcqRel);
        let slot = self.slots.get(i)?;
        // SAFETY: plain libc calls on the current thread with valid out-pointers.
        unsafe {
            let mut clk: libc::clockid_t = 0;
            if libc::pthread_getcpuclockid(libc::pthread_self(), &mut clk) == 0 {
                slot.cpu_clock.store(clk as u32 as u64, Ordering::Release);
            }
        }
        let tid = current_tid();
        self.tids.lock().push(tid);
        self.pin(tid, self.online());
        WORKER.set(Some(slot));
        Some(slot)
    }

    /// Sets how many CPUs the workers may use: 1 ..= [`max_online`](Self::max_online).
    pub fn set_online(&self, n: usize) -> Result<usize, String> {
        let max = self.max_online();
        if n == 0 || n > max {
            return Err(format!(
                "schedulers online must be between 1 and {max}, got {n}"
            ));
        }
        let previous = self.online.swap(n, Ordering::AcqRel);
        for &tid in self.tids.lock().iter() {
            self.pin(tid, n);
        }
        Ok(previous)
    }

    fn pin(&self, tid: libc::pid_t, online: usize) {
        if self.cpus.is_empty() {
            return;
        }
        // SAFETY: `set` is a zeroed, properly sized cpu_set_t that we fill with
        // CPU numbers the kernel reported as allowed.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &cpu in self.cpus.iter().take(online.max(1)) {
                libc::CPU_SET(cpu, &mut set);
            }
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }

    pub fn sample(&self) -> SchedulerSample {
        let busy = self
            .slots
            .iter()
            .map(|s| match s.cpu_clock.load(Ordering::Acquire) {
                u64::MAX => Duration::ZERO,
                clk => thread_cpu_time(clk as u32 as libc::clockid_t),
            })
            .collect();
        SchedulerSample {
            at: Instant::now(),
            busy,
            online: self.online(),
        }
    }

    /// Runs until `stop` is set: reports polls still in progress after the
    /// threshold, naming the process (a finished long poll is reported by the
    /// worker itself).
    pub fn watchdog(self: Arc<Self>, stop: Arc<AtomicBool>) {
        let period = (self.long_poll_threshold / 2).max(Duration::from_millis(1));
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
                    .and_then(|n| n.table.get(&pid).map(|c| c.clone()));
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

fn current_tid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn thread_cpu_time(clk: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; a clock id of an exited thread
    // makes the call fail, which reads as zero.
    if unsafe { libc::clock_gettime(clk, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a zeroed cpu_set_t the kernel fills in.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}
