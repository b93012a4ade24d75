//! Process sleep on a hashed timer wheel with millisecond ticks.
//!
//! A node may hold a million processes that each sleep most of the time (the
//! talk's load workers wake once a second). A wheel entry is a deadline, a
//! waker and the address of the sleeper's process cell (32 bytes, no
//! allocation of its own) and firing one is a `Vec` scan, which makes such
//! workloads several times cheaper than general-purpose timers. The wheel is
//! advanced by one ticker task on the schedulers of its processes, which
//! sleeps while no process is sleeping.
//!
//! A million sleepers are far more than the caches hold, so each process
//! woken costs memory misses on its task and its cell — most of a job's
//! cost, measured. The ticker therefore first asks the CPU to load every
//! task and cell of the millisecond it fires (prefetches, which overlap),
//! and only then wakes them: the schedulers then find them in cache.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// What a sleeping process's `waiting_on` says (the process table shows
/// "sleeping" rather than "waiting for a message").
pub(crate) const WAIT_SLEEP: u8 = 1;

/// Slots in the wheel: one per millisecond, so one turn covers ~4 s. Longer
/// sleeps stay in their slot for later turns.
const SLOTS: u64 = 4096;
const MASK: u64 = SLOTS - 1;

pub(crate) struct TimerWheel {
    origin: Instant,
    /// How often the ticker fires what is due (a multiple of 1 ms).
    tick: Duration,
    /// Every entry with a deadline at or before this tick has fired.
    now_ms: AtomicU64,
    state: Mutex<WheelState>,
    /// Wakes the ticker when the first entry arrives in an empty wheel.
    armed: Notify,
}

/// One sleeper: its deadline tick, its waker, and where its process cell
/// lies in memory (to prefetch).
struct Entry {
    deadline: u64,
    waker: Waker,
    cell: Prefetch,
}

/// An address to prefetch: the memory a woken sleeper's scheduler will read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prefetch {
    addr: usize,
    bytes: usize,
}

impl Prefetch {
    /// The `bytes` of memory at `addr`.
    pub(crate) fn of<T>(value: &T) -> Prefetch {
        Prefetch {
            addr: value as *const T as usize,
            bytes: std::mem::size_of::<T>(),
        }
    }

    /// Asks the cache for every line of the memory.
    pub(crate) fn issue(self) {
        let mut at = self.addr & !(CACHE_LINE - 1);
        while at < self.addr + self.bytes {
            prefetch_line(at);
            at += CACHE_LINE;
        }
    }
}

const CACHE_LINE: usize = 64;
/// Sleepers woken at once (below the 256 of a scheduler's local queue).
const WAKE_CHUNK: usize = 128;
/// What a woken task's scheduler reads of it: tokio's task header, its
/// future (the process's) and trailer — the first few hundred bytes from
/// the waker's data pointer. Over-reaching is harmless: a prefetch of
/// memory that is not read only costs bandwidth.
const TASK_SPAN: usize = 384;

#[inline]
fn prefetch_line(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint to the cache: it never faults and reads
    // nothing into the program, whatever the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(addr as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

struct WheelState {
    slots: Vec<Vec<Entry>>,
    current: u64,
    pending: usize,
}

impl TimerWheel {
    /// A wheel whose ticker fires what is due every `tick` (at least 1 ms):
    /// a sleep ends up to one tick after its deadline.
    pub(crate) fn new(tick: Duration) -> Arc<TimerWheel> {
        Arc::new(TimerWheel {
            origin: Instant::now(),
            tick: tick.max(Duration::from_millis(1)),
            now_ms: AtomicU64::new(0),
            state: Mutex::new(WheelState {
                slots: (0..SLOTS).map(|_| Vec::new()).collect(),
                current: 0,
                pending: 0,
            }),
            armed: Notify::new(),
        })
    }

    /// The first tick at or after `at`.
    fn tick_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        let ms = since.as_millis() as u64;
        if since > Duration::from_millis(ms) {
            ms + 1
        } else {
            ms
        }
    }

    fn is_due(&self, deadline: u64) -> bool {
        self.now_ms.load(Ordering::Acquire) >= deadline
    }

    /// Adds an entry; false if the deadline has already passed.
    fn insert(&self, deadline: u64, waker: Waker, cell: Prefetch) -> bool {
        let mut st = self.state.lock();
        if deadline <= st.current {
            return false;
        }
        st.slots[(deadline & MASK) as usize].push(Entry {
            deadline,
            waker,
            cell,
        });
        st.pending += 1;
        let first = st.pending == 1;
        drop(st);
        if first {
            self.armed.notify_one();
        }
        true
    }

    /// Fires every entry due by now: moves their wakers, with what to
    /// prefetch of their processes, to `fired`.
    fn advance(&self, fired: &mut Vec<(Waker, Prefetch)>) {
        let to = self.tick_of(Instant::now()).saturating_sub(1);
        let mut st = self.state.lock();
        if to <= st.current {
            return;
        }
        let from = st.current;
        let steps = (to - from).min(SLOTS);
        for step in 1..=steps {
            let slot = &mut st.slots[((from + step) & MASK) as usize];
            if slot.is_empty() {
                continue;
            }
            let before = slot.len();
            // Entries of later turns stay; order within a slot means nothing.
            let mut i = 0;
            while i < slot.len() {
                if slot[i].deadline <= to {
                    let entry = slot.swap_remove(i);
                    fired.push((entry.waker, entry.cell));
                } else {
                    i += 1;
                }
            }
            let removed = before - slot.len();
            st.pending -= removed;
        }
        st.current = to;
        self.now_ms.store(to, Ordering::Release);
    }

    /// Runs on the node's executor for the node's lifetime.
    pub(crate) async fn run_ticker(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut fired = Vec::new();
        loop {
            let idle = self.state.lock().pending == 0;
            if idle {
                self.armed.notified().await;
                ticks.reset();
            }
            ticks.tick().await;
            self.advance(&mut fired);
            // A chunk at a time: its tasks and cells are loaded together,
            // woken, and run before the next chunk is loaded — a working
            // set that stays in the cache, and a chunk that fits the
            // scheduler's local run queue.
            let mut rest = fired.drain(..).peekable();
            while rest.peek().is_some() {
                let chunk: Vec<(Waker, Prefetch)> = rest.by_ref().take(WAKE_CHUNK).collect();
                for (waker, cell) in &chunk {
                    cell.issue();
                    Prefetch {
                        addr: waker.data() as usize,
                        bytes: TASK_SPAN,
                    }
                    .issue();
                }
                for (waker, _) in chunk {
                    waker.wake();
                }
                if rest.peek().is_some() {
                    tokio::task::yield_now().await;
                }
            }
        }
    }
}

/// The future of [`Process::sleep`](crate::Process::sleep) and
/// [`Process::sleep_until`](crate::Process::sleep_until): ready at the first
/// millisecond tick at or after its deadline.
pub struct Sleep<'a> {
    wheel: &'a TimerWheel,
    deadline: u64,
    registered: bool,
    on_wait: &'a std::sync::atomic::AtomicU8,
    cell: Prefetch,
}

impl std::fmt::Debug for Sleep<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline_ms", &self.deadline)
            .finish()
    }
}

impl<'a> Sleep<'a> {
    pub(crate) fn new(
        wheel: &'a TimerWheel,
        until: Instant,
        on_wait: &'a std::sync::atomic::AtomicU8,
        cell: Prefetch,
    ) -> Self {
        Sleep {
            deadline: wheel.tick_of(until),
            wheel,
            registered: false,
            on_wait,
            cell,
        }
    }
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.wheel.is_due(self.deadline) {
            self.on_wait.store(0, Ordering::Relaxed);
            return Poll::Ready(());
        }
        // Registered once: our entry stays in the wheel until it fires, and it
        // only fires once the deadline is due, so a wake-up for another reason
        // (a message) finds it still in place.
        if !self.registered {
            if !self
                .wheel
                .insert(self.deadline, cx.waker().clone(), self.cell)
            {
                self.on_wait.store(0, Ordering::Relaxed);
                return Poll::Ready(());
            }
            self.registered = true;
        }
        self.on_wait.store(WAIT_SLEEP, Ordering::Relaxed);
        Poll::Pending
    }
}

impl Drop for Sleep<'_> {
    fn drop(&mut self) {
        self.on_wait.store(0, Ordering::Relaxed);
    }
}

/// Ticks at a fixed period on the timer wheel: see
/// [`Process::interval_at`](crate::Process::interval_at).
pub struct Interval<'a> {
    wheel: &'a TimerWheel,
    next: u64,
    period: u64,
    on_wait: &'a std::sync::atomic::AtomicU8,
    cell: Prefetch,
}

impl std::fmt::Debug for Interval<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interval")
            .field("next_tick_ms", &self.next)
            .field("period_ms", &self.period)
            .finish()
    }
}

impl<'a> Interval<'a> {
    pub(crate) fn new(
        wheel: &'a TimerWheel,
        start: Instant,
        period: Duration,
        on_wait: &'a std::sync::atomic::AtomicU8,
        cell: Prefetch,
    ) -> Self {
        Interval {
            next: wheel.tick_of(start),
            period: (period.as_millis() as u64).max(1),
            wheel,
            on_wait,
            cell,
        }
    }

    /// Sleeps until the next tick (at once if it is due), then schedules
    /// the one after: a period later, or — if that is already past — a
    /// period from now.
    pub fn tick(&mut self) -> Sleep<'a> {
        let deadline = self.next;
        let now = self.wheel.now_ms.load(Ordering::Acquire);
        self.next = if deadline + self.period > now {
            deadline + self.period
        } else {
            now + self.period
        };
        Sleep {
            wheel: self.wheel,
            deadline,
            registered: false,
            on_wait: self.on_wait,
            cell: self.cell,
        }
    }
}
