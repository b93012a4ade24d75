//! The few operating-system calls the runtime makes, in one place: thread
//! ids and CPU affinity, timer slack, the page size, a coarse clock, and
//! per-thread CPU clocks, the idle scheduling class, short time slices.
//! Everything but the thread CPU clocks, `SCHED_IDLE` and the slices goes
//! through rustix; those need `pthread_getcpuclockid`, `sched_setscheduler`
//! and `sched_setattr`, which rustix does not wrap, so the only `unsafe` of
//! this module is there.

use std::time::Duration;

use rustix::thread::{CpuSet, Pid as Tid};

/// The kernel's id of the calling thread.
pub(crate) fn current_tid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// The CPUs this OS process may run on, in ascending order (empty if the
/// kernel would not say).
pub(crate) fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Restricts thread `tid` to `cpus`.
pub(crate) fn pin_thread(tid: i32, cpus: &[usize]) -> std::io::Result<()> {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu);
    }
    let tid = Tid::from_raw(tid).ok_or_else(|| std::io::Error::other("invalid thread id"))?;
    rustix::thread::sched_setaffinity(Some(tid), &set).map_err(std::io::Error::from)
}

/// Restricts the calling thread to `cpus` (as numbered by the kernel).
///
/// ```
/// let cpus: Vec<usize> = (0..std::thread::available_parallelism().unwrap().get()).collect();
/// std::thread::spawn(move || owl_runtime::sys::pin_current_thread(&cpus).unwrap())
///     .join()
///     .unwrap();
/// ```
pub fn pin_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    pin_thread(current_tid(), cpus)
}

/// Sets the calling thread's timer slack: how late the kernel may fire its
/// timers to batch wake-ups (50 µs by default, too coarse for 100 µs ticks).
///
/// ```
/// owl_runtime::sys::set_timer_slack(std::time::Duration::from_nanos(1)).unwrap();
/// ```
pub fn set_timer_slack(slack: Duration) -> std::io::Result<()> {
    let ns = std::num::NonZeroU64::new(slack.as_nanos().max(1) as u64);
    rustix::thread::set_current_timer_slack(ns).map_err(std::io::Error::from)
}

/// Lowers the calling thread's CPU priority by `nice` steps (0–19), so the
/// kernel runs other threads of the node first when both want the CPU.
///
/// ```
/// owl_runtime::sys::lower_thread_priority(0).unwrap();
/// ```
pub fn lower_thread_priority(nice: i32) -> std::io::Result<()> {
    // On Linux, PRIO_PROCESS with "the caller" names the calling thread.
    rustix::process::setpriority_process(None, nice.clamp(0, 19)).map_err(std::io::Error::from)
}

/// Asks the kernel to run the calling thread in short turns of `slice`
/// (Linux 6.12 and later; clamped there to 0.1 – 100 ms). Under its EEVDF
/// scheduler a thread that has run less than its slice is not preempted by
/// a waking one, and the default slice is a few milliseconds: a thread
/// that moves bulk data asks for short turns, so the threads that answer
/// requests never wait that long for a core it holds. Its share of the CPU
/// stays what its nice value gives it. Keeps the thread's nice value.
/// Older kernels refuse or ignore the request.
///
/// ```
/// use std::time::Duration;
/// std::thread::spawn(|| {
///     // An error only means the kernel keeps its own slice.
///     let _ = owl_runtime::sys::shorten_thread_slice(Duration::from_micros(100));
/// })
/// .join()
/// .unwrap();
/// ```
pub fn shorten_thread_slice(slice: Duration) -> std::io::Result<()> {
    /// `struct sched_attr` as of its first version (48 bytes), which every
    /// kernel with `sched_setattr` takes.
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let nice = rustix::process::getpriority_process(None).map_err(std::io::Error::from)?;
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime: slice.as_nanos() as u64,
        deadline: 0,
        period: 0,
    };
    // SAFETY: `attr` is a valid `sched_attr` of the size it declares and
    // outlives the call; pid 0 names the calling thread, and flags are 0.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Puts the calling thread in the kernel's idle class (`SCHED_IDLE`): it
/// gets a core only when no thread of normal priority — not even a
/// background scheduler at nice 19 — wants it (a weight of 3 against their
/// 15 and 1,024), and it is preempted as soon as one does. Sandboxed
/// runaways run there: they share what the node's own work leaves.
///
/// ```
/// std::thread::spawn(|| owl_runtime::sys::idle_thread_priority().unwrap())
///     .join()
///     .unwrap();
/// ```
pub fn idle_thread_priority() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, initialised `sched_param` that outlives the
    // call, and pid 0 names the calling thread; the call reads nothing else.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Raises this OS process's soft limit on open files to its hard limit (a
/// node may hold thousands of connections); returns the new soft limit.
///
/// ```
/// let limit = owl_runtime::sys::raise_fd_limit().unwrap();
/// assert_eq!(owl_runtime::sys::fd_limit(), Some(limit));
/// ```
pub fn raise_fd_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).map_err(std::io::Error::from)?;
    }
    Ok(limit.current.unwrap_or(u64::MAX))
}

/// This OS process's soft limit on open files (`None`: unlimited).
pub fn fd_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// The size of a memory page in bytes.
///
/// ```
/// assert!(owl_runtime::sys::page_size().is_power_of_two());
/// ```
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// Milliseconds on the coarse monotonic clock: a few milliseconds of
/// resolution, far cheaper than a precise read.
pub(crate) fn coarse_now_ms() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Resident memory of this OS process in bytes, from `/proc/self/statm`
/// (0 where it cannot be read).
///
/// ```
/// assert!(owl_runtime::sys::resident_memory() > 0);
/// ```
pub fn resident_memory() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * page_size() as u64
}

/// A thread's CPU-time clock: how much CPU time that thread has used, read
/// from any other thread. Schedulers and the sandbox's guest threads are
/// measured this way.
///
/// ```
/// use owl_runtime::sys::ThreadClock;
///
/// let clock = ThreadClock::current().unwrap();
/// let before = clock.cpu_time();
/// let t = std::time::Instant::now();
/// while t.elapsed() < std::time::Duration::from_millis(20) {} // busy
/// assert!(clock.cpu_time() > before);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadClock {
    id: libc::clockid_t,
    tid: i32,
}

impl ThreadClock {
    /// The calling thread's clock, or `None` if the system has none.
    pub fn current() -> Option<ThreadClock> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: `pthread_self()` is the calling thread, alive for the
        // call, and `id` is a valid place for the result.
        let failed = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        (failed == 0).then(|| ThreadClock {
            id,
            tid: current_tid(),
        })
    }

    /// The kernel id of the thread this clock measures.
    pub fn tid(&self) -> i32 {
        self.tid
    }

    /// CPU time the thread has used so far; zero once it has exited.
    pub fn cpu_time(&self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid place for the result; a clock of a thread
        // that has exited makes the call fail, which reads as zero.
        if unsafe { libc::clock_gettime(self.id, &mut ts) } != 0 {
            return Duration::ZERO;
        }
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}
