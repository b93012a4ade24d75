//! Which processes keep the node busy, found by sampling rather than by
//! reading every process: while someone asks, a profiler thread looks a
//! thousand times a second at what each scheduler (and each thread that
//! computes for a process, like a sandbox's guest threads) is running, and
//! counts. A process's share of the samples over a second is its share of
//! a scheduler's time, as `perf` would measure it.
//!
//! The cost is a few reads per scheduler per millisecond — the same for a
//! hundred processes as for a million — and nothing at all when nobody has
//! asked for ten seconds (the thread sleeps). Processes too light to be
//! sampled (a job of half a microsecond a second) show no share: they use
//! none worth showing. Exact CPU time per process is still kept, in
//! [`ProcessInfo::cpu_time`](crate::ProcessInfo::cpu_time).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rustc_hash::FxHashMap;

use crate::pid::id::PidId;

/// Time between samples.
const PERIOD: Duration = Duration::from_millis(1);
/// The window a share covers.
const WINDOW: Duration = Duration::from_secs(1);
/// The profiler sleeps once nobody has asked for this long.
const IDLE_AFTER: Duration = Duration::from_secs(10);

/// What one window of samples says: each busy process's share of one
/// scheduler's time.
///
/// ```
/// use std::time::{Duration, Instant};
/// use owl_runtime::Runtime;
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let node = rt.node();
/// let busy = node.spawn(|p| async move {
///     loop {
///         let t = Instant::now();
///         while t.elapsed() < Duration::from_millis(5) {}
///         p.sleep(Duration::from_millis(1)).await;
///     }
/// });
/// // The first ask starts the profiler; a window later, the shares are in.
/// let deadline = Instant::now() + Duration::from_secs(30);
/// loop {
///     let sample = node.busiest();
///     if let Some((top, share)) = sample.processes.first() {
///         if *top == busy.id() {
///             assert!(*share > 20.0 && *share <= 100.0, "{share}");
///             break;
///         }
///     }
///     assert!(Instant::now() < deadline);
///     std::thread::sleep(Duration::from_millis(50));
/// }
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Busiest {
    /// The window the shares cover (zero before the first one is complete).
    pub window: Duration,
    /// Samples taken per scheduler in it.
    pub samples: u64,
    /// Each process sampled running, with its share of one scheduler's time
    /// in % (100 = a whole core), busiest first.
    pub processes: Vec<(PidId, f64)>,
}

/// A thread that computes for processes outside the schedulers (a guest
/// thread): which node and which process it is computing for now.
pub(crate) struct HelperSlot {
    node: AtomicUsize,
    pid: AtomicU64,
}

static HELPERS: Mutex<Vec<&'static HelperSlot>> = Mutex::new(Vec::new());

thread_local! {
    static HELPER: Cell<Option<&'static HelperSlot>> = const { Cell::new(None) };
}

/// Marks this (non-scheduler) thread as computing for process `pid` of the
/// node `node_id` (its address) until the returned guard drops.
pub(crate) fn computing_for(node_id: usize, pid: u64) -> ComputingFor {
    let slot = HELPER.get().unwrap_or_else(|| {
        // One slot per thread that ever computed for a process, for the
        // life of the OS process: a few bytes per guest thread.
        let slot: &'static HelperSlot = Box::leak(Box::new(HelperSlot {
            node: AtomicUsize::new(0),
            pid: AtomicU64::new(0),
        }));
        HELPERS.lock().push(slot);
        HELPER.set(Some(slot));
        slot
    });
    slot.node.store(node_id, Ordering::Relaxed);
    slot.pid.store(pid, Ordering::Release);
    ComputingFor(slot)
}

pub(crate) struct ComputingFor(&'static HelperSlot);

impl Drop for ComputingFor {
    fn drop(&mut self) {
        self.0.pid.store(0, Ordering::Release);
    }
}

#[derive(Default)]
struct State {
    latest: Busiest,
    asked: Option<Instant>,
    running: bool,
}

/// A node's profiler: its latest window, and the thread that makes them.
#[derive(Default)]
pub(crate) struct Profiler {
    state: Mutex<State>,
    asked: Condvar,
}

impl Profiler {
    /// The latest window; starts the profiler thread if it sleeps or never
    /// ran. `running_now` tells the pids the node's schedulers poll at this
    /// instant; `node_id` names the node among the helper threads' slots.
    pub(crate) fn ask(
        self: &Arc<Self>,
        node_id: usize,
        running_now: impl Fn(&mut dyn FnMut(u64)) + Send + 'static,
    ) -> Busiest {
        let mut st = self.state.lock();
        st.asked = Some(Instant::now());
        if !st.running {
            st.running = true;
            let me = Arc::downgrade(self);
            let started = std::thread::Builder::new()
                .name("owl-profiler".into())
                .spawn(move || profile(me, node_id, running_now));
            if started.is_err() {
                st.running = false;
            }
        }
        self.asked.notify_one();
        st.latest.clone()
    }
}

/// The profiler thread: samples while asked, sleeps otherwise, ends with
/// the node.
fn profile(profiler: Weak<Profiler>, me: usize, running_now: impl Fn(&mut dyn FnMut(u64))) {
    let _ = crate::sys::set_timer_slack(Duration::from_micros(50));
    let mut counts: FxHashMap<u64, u64> = FxHashMap::default();
    let mut seen: Vec<u64> = Vec::new();
    let mut ticks = 0u64;
    let mut window_start = Instant::now();
    loop {
        // The node owns its profiler: once the node is gone, so is this.
        let Some(this) = profiler.upgrade() else {
            return;
        };
        {
            let mut st = this.state.lock();
            if st.asked.is_none_or(|at| at.elapsed() > IDLE_AFTER) {
                // Nobody watches: forget the window and sleep until asked.
                st.latest = Busiest::default();
                counts.clear();
                ticks = 0;
                let woken = this.asked.wait_for(&mut st, IDLE_AFTER);
                if woken.timed_out() && Arc::strong_count(&this) == 1 {
                    st.running = false;
                    return;
                }
                window_start = Instant::now();
                continue;
            }
        }
        // A process seen on two threads in one look (its own poll on a
        // scheduler while its guest computes on a helper) counts once: a
        // share is of one scheduler's time, never above 100 %.
        seen.clear();
        running_now(&mut |pid| seen.push(pid));
        for helper in HELPERS.lock().iter() {
            let pid = helper.pid.load(Ordering::Acquire);
            if pid != 0 && helper.node.load(Ordering::Relaxed) == me {
                seen.push(pid);
            }
        }
        seen.sort_unstable();
        seen.dedup();
        for &pid in &seen {
            *counts.entry(pid).or_default() += 1;
        }
        ticks += 1;
        let elapsed = window_start.elapsed();
        if elapsed >= WINDOW {
            let mut processes: Vec<(PidId, f64)> = counts
                .drain()
                .map(|(pid, n)| (PidId(pid), n as f64 * 100.0 / ticks as f64))
                .collect();
            processes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            this.state.lock().latest = Busiest {
                window: elapsed,
                samples: ticks,
                processes,
            };
            ticks = 0;
            window_start = Instant::now();
        }
        drop(this);
        std::thread::sleep(PERIOD);
    }
}
