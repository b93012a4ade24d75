//! Process sleep on a hashed timer wheel with millisecond ticks.
//!
//! A node may hold a million processes that each sleep most of the time (the
//! talk's load workers wake once a second). A wheel entry is a waker and
//! one word for the deadline's turn of the wheel and the address of the
//! sleeper's process cell (24 bytes, no allocation of its own), and firing
//! one is a `Vec` scan, which makes such workloads several times cheaper
//! than general-purpose timers. The wheel is advanced by one ticker task on
//! the schedulers of its processes, which sleeps until the next slot that
//! holds a sleeper (and while none does, until one comes): a node with a
//! few sleepers wakes for them, not every tick (each wake-up of an idle
//! scheduler thread costs tens of microseconds on a small VM, measured).
//!
//! A slot's `Vec` keeps its capacity when it empties, and a periodic
//! workload fills every one of the 4,096 slots in turn: kept in place, that
//! capacity was four to five times the entries ever pending at once
//! (heaptrack: 20 MB for 100,000 once-a-second sleepers). An emptied
//! slot's `Vec` therefore goes to a few spares, and the next empty slot to
//! get an entry takes one: only the slots that hold entries hold memory.
//!
//! [`Sleep`] and [`Interval`] live inside process futures, a million of
//! them at once, so they are kept to four words each.
//!
//! A million sleepers are far more than the caches hold, so each process
//! woken costs memory misses on its task and its cell — most of a job's
//! cost, measured. The ticker therefore first asks the CPU to load every
//! task and cell of the millisecond it fires (prefetches, which overlap),
//! and only then wakes them: the schedulers then find them in cache.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// The bytes of a sleeper's cell its scheduler reads, as offsets from
    /// its address: prefetched before waking it.
    cell_hot: std::ops::Range<usize>,
    /// How often the ticker fires what is due (a multiple of 1 ms).
    tick: Duration,
    /// Every entry with a deadline at or before this tick has fired.
    now_ms: AtomicU64,
    /// The coarse clock's reading (`sys::coarse_now_ms`) at `origin`.
    origin_coarse_ms: u64,
    /// Set while the ticker sleeps more than a few ticks: `now_ms` may
    /// then lag the clock by that much, and an [`Interval`] that must know
    /// whether it fell behind reads the coarse clock instead.
    sleeps_long: AtomicBool,
    state: Mutex<WheelState>,
    /// Wakes the ticker when an entry arrives that is due before the tick
    /// it sleeps until (or in an empty wheel).
    armed: Notify,
}

/// One sleeper in its slot: its waker, and one word for the turn of the
/// wheel it is due in (the top [`TURN_BITS`]) and where its process cell
/// lies in memory (the rest; to prefetch, the wheel knows which of the
/// cell's bytes its scheduler reads).
///
/// A million sleepers are pending at once, so a word saved here is 8 MB.
/// The slot gives a deadline's low bits, the turn its high ones; 16 bits of
/// turn reach [`NEAR`] ticks (74 hours) ahead, and later deadlines wait in
/// [`WheelState::far`]. An address wider than 48 bits (five-level page
/// tables) only makes the prefetch miss: a prefetch never faults.
struct Entry {
    waker: Waker,
    word: u64,
}

/// Bits of an [`Entry`]'s word that hold its deadline's turn.
const TURN_BITS: u32 = 16;
const ADDR_BITS: u32 = 64 - TURN_BITS;
const ADDR_MASK: u64 = (1 << ADDR_BITS) - 1;
const TURN_MASK: u64 = (1 << TURN_BITS) - 1;
/// Deadlines less than this many ticks ahead fit an entry's turn.
const NEAR: u64 = (SLOTS << TURN_BITS) - SLOTS;

impl Entry {
    fn new(deadline: u64, waker: Waker, cell: usize) -> Entry {
        let turn = (deadline / SLOTS) & TURN_MASK;
        Entry {
            waker,
            word: turn << ADDR_BITS | (cell as u64 & ADDR_MASK),
        }
    }

    fn cell(&self) -> usize {
        (self.word & ADDR_MASK) as usize
    }

    /// The entry's deadline, seen from tick `t` of its slot: every entry in
    /// a slot is due at or after the slot's next tick, and less than
    /// [`NEAR`] ticks after it, so its turn is the first one at or after
    /// `t`'s with the same low bits.
    fn deadline(&self, t: u64) -> u64 {
        let turns_ahead = (self.word >> ADDR_BITS).wrapping_sub(t / SLOTS) & TURN_MASK;
        t + turns_ahead * SLOTS
    }
}

/// A sleeper due [`NEAR`] ticks or more ahead, kept whole until its
/// deadline comes near enough for a slot.
struct FarEntry {
    deadline: u64,
    waker: Waker,
    cell: usize,
}

/// Emptied slot vectors kept for reuse. A slot empties about once a tick
/// at most, so a few cover the steady state; more are dropped.
const SPARE_SLOTS: usize = 16;
/// A spare larger than this (a burst of sleepers all due at once) is freed
/// rather than kept.
const SPARE_MAX_ENTRIES: usize = 1 << 16;

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

    /// The bytes `range` of the memory at `addr`.
    fn within(addr: usize, range: &std::ops::Range<usize>) -> Prefetch {
        Prefetch {
            addr: addr + range.start,
            bytes: range.len(),
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
/// The coarse clock's resolution (a jiffy at 250 Hz), and more.
const COARSE_SLACK_MS: u64 = 5;
/// A ticker's sleep of more ticks than this is long (see
/// [`TimerWheel::sleeps_long`]).
const LONG_SLEEP_TICKS: u32 = 4;
/// Sleepers woken at once (below the 256 of a scheduler's local queue).
const WAKE_CHUNK: usize = 128;
/// Polls a tokio worker makes before it resumes a task that yielded (its
/// default event interval: yielded tasks wait for its next maintenance).
const POLLS_PER_YIELD: usize = 61;
/// Yields of the ticker between chunks: enough for the worker to have run
/// the chunk it woke before the next one comes. With fewer, the ticker
/// outran its worker (128 woken per 61 run), the local queue overflowed,
/// and half of it went through the shared queue: a linked list through
/// the tasks themselves, whose every hop was a cache miss (12 % of the
/// scheduler's time at a million jobs, measured with `perf`).
const YIELDS_PER_CHUNK: usize = WAKE_CHUNK.div_ceil(POLLS_PER_YIELD);
/// Room kept for the sleepers of one tick between ticks.
const FIRED_KEPT: usize = 64 * WAKE_CHUNK;
/// What a woken task's scheduler reads of it: tokio's task header and
/// the start of its future (the process's), up to the `ProcessTask`'s own
/// fields behind a small body — a load worker's all lie in the first 256
/// bytes from the waker's data pointer. A prefetch of lines not read is
/// not free: a chunk's prefetches wait for the CPU's few fill buffers
/// (384 bytes, the trailer too, gave a million jobs 0.354 – 0.422 cores
/// where 256 gave 0.340 – 0.375; `owl bench load`, alternating runs).
const TASK_SPAN: usize = 256;

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
    /// Emptied slots' vectors, capacity kept (see the module doc).
    spare: Vec<Vec<Entry>>,
    /// Sleepers due too far ahead for a slot (see [`Entry`]); looked at
    /// once a turn.
    far: Vec<FarEntry>,
    current: u64,
    /// Entries in slots and far.
    pending: usize,
    /// The tick the ticker sleeps until (`u64::MAX` while the wheel is
    /// empty): an entry due before it must wake the ticker. The ticker
    /// plans under this lock after firing, so it sees every entry; one
    /// that comes between its wake-up and its firing at worst wakes it
    /// once more to plan again.
    planned: u64,
}

impl WheelState {
    /// Moves far sleepers whose deadline came near into their slots (once
    /// a turn: [`NEAR`] is many turns), and fires any already due (after
    /// a stall longer than `NEAR`).
    fn bring_near(&mut self, fired: &mut Vec<(Waker, Prefetch)>, hot: &std::ops::Range<usize>) {
        let mut i = 0;
        while i < self.far.len() {
            let deadline = self.far[i].deadline;
            if deadline - self.current.min(deadline) >= NEAR {
                i += 1;
                continue;
            }
            let entry = self.far.swap_remove(i);
            if deadline <= self.current {
                fired.push((entry.waker, Prefetch::within(entry.cell, hot)));
                self.pending -= 1;
            } else {
                self.push(deadline, entry.waker, entry.cell);
            }
        }
    }

    /// The first tick after `current` whose slot holds an entry (the entry
    /// may be due in a later turn: waking then only finds nothing to
    /// fire), or the next turn's first tick when only far sleepers wait.
    /// At most one scan of the slots, which costs less than the wake-ups
    /// it saves.
    fn next_due(&self) -> Option<u64> {
        if self.pending == 0 {
            return None;
        }
        let near = (1..=SLOTS)
            .map(|ahead| self.current + ahead)
            .find(|tick| !self.slots[(tick & MASK) as usize].is_empty());
        near.or_else(|| Some((self.current / SLOTS + 1) * SLOTS))
    }

    fn push(&mut self, deadline: u64, waker: Waker, cell: usize) {
        if deadline - self.current >= NEAR {
            self.far.push(FarEntry {
                deadline,
                waker,
                cell,
            });
            return;
        }
        let slot = &mut self.slots[(deadline & MASK) as usize];
        if slot.capacity() == 0
            && let Some(spare) = self.spare.pop()
        {
            *slot = spare;
        }
        slot.push(Entry::new(deadline, waker, cell));
    }
}

impl TimerWheel {
    /// A wheel whose ticker fires what is due every `tick` (at least 1 ms):
    /// a sleep ends up to one tick after its deadline. A woken sleeper's
    /// scheduler reads the bytes `cell_hot` of its cell.
    pub(crate) fn new(tick: Duration, cell_hot: std::ops::Range<usize>) -> Arc<TimerWheel> {
        Arc::new(TimerWheel {
            origin: Instant::now(),
            cell_hot,
            tick: tick.max(Duration::from_millis(1)),
            now_ms: AtomicU64::new(0),
            origin_coarse_ms: crate::sys::coarse_now_ms(),
            sleeps_long: AtomicBool::new(false),
            state: Mutex::new(WheelState {
                slots: (0..SLOTS).map(|_| Vec::new()).collect(),
                spare: Vec::new(),
                far: Vec::new(),
                current: 0,
                pending: 0,
                planned: u64::MAX,
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

    /// The current tick, at worst [`COARSE_SLACK_MS`] early: the last
    /// fired tick, or the coarse clock's while the ticker sleeps long.
    fn now_at_least(&self) -> u64 {
        let fired = self.now_ms.load(Ordering::Acquire);
        if !self.sleeps_long.load(Ordering::Relaxed) {
            return fired;
        }
        let coarse = crate::sys::coarse_now_ms()
            .saturating_sub(self.origin_coarse_ms)
            .saturating_sub(COARSE_SLACK_MS);
        fired.max(coarse)
    }

    fn is_due(&self, deadline: u64) -> bool {
        self.now_ms.load(Ordering::Acquire) >= deadline
    }

    /// Adds an entry; false if the deadline has already passed.
    fn insert(&self, deadline: u64, waker: Waker, cell: usize) -> bool {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if deadline <= st.current {
            return false;
        }
        st.push(deadline, waker, cell);
        st.pending += 1;
        let sooner = deadline < st.planned;
        drop(guard);
        if sooner {
            self.armed.notify_one();
        }
        true
    }

    /// Fires every entry due by now: moves their wakers, with what to
    /// prefetch of their processes, to `fired`.
    fn advance(&self, fired: &mut Vec<(Waker, Prefetch)>) {
        self.advance_to(self.tick_of(Instant::now()).saturating_sub(1), fired);
    }

    /// Fires every entry due by tick `to`.
    fn advance_to(&self, to: u64, fired: &mut Vec<(Waker, Prefetch)>) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if to <= st.current {
            return;
        }
        let from = st.current;
        let steps = (to - from).min(SLOTS);
        let hot = &self.cell_hot;
        for step in 1..=steps {
            let tick = from + step;
            let slot = &mut st.slots[(tick & MASK) as usize];
            if slot.is_empty() {
                continue;
            }
            let before = slot.len();
            // Entries of later turns stay; order within a slot means nothing.
            let mut i = 0;
            while i < slot.len() {
                if slot[i].deadline(tick) <= to {
                    let entry = slot.swap_remove(i);
                    let cell = Prefetch::within(entry.cell(), hot);
                    fired.push((entry.waker, cell));
                } else {
                    i += 1;
                }
            }
            let removed = before - slot.len();
            if slot.is_empty() {
                let emptied = std::mem::take(slot);
                if st.spare.len() < SPARE_SLOTS && emptied.capacity() <= SPARE_MAX_ENTRIES {
                    st.spare.push(emptied);
                }
            }
            st.pending -= removed;
        }
        st.current = to;
        if !st.far.is_empty() && from / SLOTS != to / SLOTS {
            st.bring_near(fired, hot);
        }
        self.now_ms.store(to, Ordering::Release);
    }

    /// Plans the ticker's next wake-up: the instant it should fire what
    /// is due next, no sooner than one tick after `last`; `None` while the
    /// wheel is empty.
    fn plan(&self, last: Instant) -> Option<Instant> {
        let mut st = self.state.lock();
        let next = st.next_due();
        st.planned = next.unwrap_or(u64::MAX);
        // `advance` fires deadlines strictly before the current
        // millisecond: wake just past the due one's start.
        let at = next.map(|tick| {
            (self.origin + Duration::from_millis(tick) + Duration::from_nanos(1))
                .max(last + self.tick)
        });
        let long = at.is_none_or(|at| at > last + self.tick * LONG_SLEEP_TICKS);
        self.sleeps_long.store(long, Ordering::Relaxed);
        at
    }

    /// Runs on the node's executor for the node's lifetime.
    pub(crate) async fn run_ticker(self: Arc<Self>) {
        let mut fired = Vec::new();
        let mut last = Instant::now();
        loop {
            match self.plan(last) {
                None => {
                    self.armed.notified().await;
                    continue;
                }
                Some(at) => {
                    let woken = tokio::time::timeout_at(at.into(), self.armed.notified()).await;
                    if woken.is_ok() {
                        // A sooner sleeper came: plan again.
                        continue;
                    }
                }
            }
            last = Instant::now();
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
                    for _ in 0..YIELDS_PER_CHUNK {
                        tokio::task::yield_now().await;
                    }
                }
            }
            drop(rest);
            // A stall (a million processes spawned on one core) can fire
            // half a million sleepers at once; keep room for a normal
            // tick's, not that burst's 16 MB for good.
            fired.shrink_to(FIRED_KEPT);
        }
    }
}

/// The future of [`Process::sleep`](crate::Process::sleep) and
/// [`Process::sleep_until`](crate::Process::sleep_until): ready at the first
/// millisecond tick at or after its deadline.
pub struct Sleep<'a> {
    wheel: &'a TimerWheel,
    deadline: Deadline,
    on_wait: &'a std::sync::atomic::AtomicU8,
    /// The address of the sleeper's process cell.
    cell: usize,
}

/// A deadline tick, and whether the sleep holds an entry in the wheel for
/// it — one word, in its top bit: ticks are milliseconds, far below 2^63.
#[derive(Clone, Copy)]
struct Deadline(u64);

impl Deadline {
    const REGISTERED: u64 = 1 << 63;

    fn new(tick: u64) -> Deadline {
        Deadline(tick & !Self::REGISTERED)
    }

    fn tick(self) -> u64 {
        self.0 & !Self::REGISTERED
    }

    fn registered(self) -> bool {
        self.0 & Self::REGISTERED != 0
    }

    fn set_registered(&mut self) {
        self.0 |= Self::REGISTERED;
    }
}

impl std::fmt::Debug for Sleep<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline_ms", &self.deadline.tick())
            .finish()
    }
}

impl<'a> Sleep<'a> {
    /// A sleep until `until` of the process whose cell is at `cell`.
    pub(crate) fn new<C>(
        wheel: &'a TimerWheel,
        until: Instant,
        on_wait: &'a std::sync::atomic::AtomicU8,
        cell: &'a C,
    ) -> Self {
        Sleep {
            deadline: Deadline::new(wheel.tick_of(until)),
            wheel,
            on_wait,
            cell: cell as *const C as usize,
        }
    }
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.wheel.is_due(self.deadline.tick()) {
            self.on_wait.store(0, Ordering::Relaxed);
            return Poll::Ready(());
        }
        // Registered once: our entry stays in the wheel until it fires, and it
        // only fires once the deadline is due, so a wake-up for another reason
        // (a message) finds it still in place.
        if !self.deadline.registered() {
            if !self
                .wheel
                .insert(self.deadline.tick(), cx.waker().clone(), self.cell)
            {
                self.on_wait.store(0, Ordering::Relaxed);
                return Poll::Ready(());
            }
            self.deadline.set_registered();
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
    cell: usize,
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
    /// Ticks of the process whose cell is at `cell`.
    pub(crate) fn new<C>(
        wheel: &'a TimerWheel,
        start: Instant,
        period: Duration,
        on_wait: &'a std::sync::atomic::AtomicU8,
        cell: &'a C,
    ) -> Self {
        Interval {
            next: wheel.tick_of(start),
            period: (period.as_millis() as u64).max(1),
            wheel,
            on_wait,
            cell: cell as *const C as usize,
        }
    }

    /// Sleeps until the next tick (at once if it is due), then schedules
    /// the one after: a period later, or — if that is already past — a
    /// period from now.
    pub fn tick(&mut self) -> Sleep<'a> {
        let deadline = self.next;
        let now = self.wheel.now_at_least();
        self.next = if deadline + self.period > now {
            deadline + self.period
        } else {
            now + self.period
        };
        Sleep {
            wheel: self.wheel,
            deadline: Deadline::new(deadline),
            on_wait: self.on_wait,
            cell: self.cell,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(wheel: &TimerWheel) -> (usize, usize) {
        let st = wheel.state.lock();
        let in_slots = st.slots.iter().map(Vec::capacity).sum();
        let spare = st.spare.iter().map(Vec::capacity).sum();
        (in_slots, spare)
    }

    /// Sleepers spread over every slot, as a million periodic processes
    /// are: once they have fired, the wheel keeps a few spare vectors, not
    /// the capacity of every slot it ever filled — and the next sleeper
    /// into an empty slot takes a spare instead of allocating.
    #[test]
    fn fired_slots_give_their_memory_back() {
        let wheel = TimerWheel::new(Duration::from_millis(1), 0..8);
        let cell = 0u64;
        for deadline in 1..=SLOTS {
            for _ in 0..100 {
                assert!(wheel.insert(
                    deadline,
                    Waker::noop().clone(),
                    &cell as *const u64 as usize
                ));
            }
        }
        let (in_slots, _) = held(&wheel);
        assert!(in_slots >= 100 * SLOTS as usize);

        let mut fired = Vec::new();
        wheel.advance_to(SLOTS, &mut fired);
        assert_eq!(fired.len(), 100 * SLOTS as usize);
        assert!(
            fired
                .iter()
                .all(|(_, at)| at.bytes == std::mem::size_of::<u64>())
        );
        let (in_slots, spare) = held(&wheel);
        assert_eq!(in_slots, 0, "an emptied slot keeps no memory");
        assert!(spare > 0 && wheel.state.lock().spare.len() <= SPARE_SLOTS);

        let spares_before = wheel.state.lock().spare.len();
        assert!(wheel.insert(SLOTS + 5, Waker::noop().clone(), 0));
        assert_eq!(wheel.state.lock().spare.len(), spares_before - 1);
        assert!(held(&wheel).0 >= 100, "the slot took a spare's capacity");
    }

    /// A sleeper due in a later turn of the wheel stays in its slot while
    /// the slot's due entries fire.
    #[test]
    fn a_later_turn_stays_while_its_slot_fires() {
        let wheel = TimerWheel::new(Duration::from_millis(1), 0..8);
        assert!(wheel.insert(7, Waker::noop().clone(), 0));
        assert!(wheel.insert(7 + SLOTS, Waker::noop().clone(), 0));
        let mut fired = Vec::new();
        wheel.advance_to(10, &mut fired);
        assert_eq!(fired.len(), 1);
        assert_eq!(wheel.state.lock().pending, 1);
        fired.clear();
        wheel.advance_to(7 + SLOTS, &mut fired);
        assert_eq!(fired.len(), 1);
        assert_eq!(wheel.state.lock().pending, 0);
    }

    /// A million sleepers are pending at once: each word of an entry is
    /// 8 MB there.
    #[test]
    fn an_entry_is_three_words() {
        assert_eq!(std::mem::size_of::<Entry>(), 24);
    }

    /// The furthest deadline a slot holds keeps its turn: it does not fire
    /// a tick early, however many turns lie between.
    #[test]
    fn the_furthest_slot_deadline_fires_on_its_tick() {
        let wheel = TimerWheel::new(Duration::from_millis(1), 0..8);
        let deadline = NEAR - 1;
        assert!(wheel.insert(deadline, Waker::noop().clone(), 0));
        assert!(wheel.state.lock().far.is_empty());
        let mut fired = Vec::new();
        wheel.advance_to(SLOTS * 3 + 17, &mut fired);
        wheel.advance_to(deadline - 1, &mut fired);
        assert!(fired.is_empty());
        wheel.advance_to(deadline, &mut fired);
        assert_eq!(fired.len(), 1);
        assert_eq!(wheel.state.lock().pending, 0);
    }

    /// A sleeper due beyond what an entry's turn reaches waits apart, comes
    /// into its slot when near, and fires on its tick; one whose deadline
    /// a stall jumped over fires at once.
    #[test]
    fn a_sleeper_due_far_ahead_waits_apart_then_fires_on_its_tick() {
        let wheel = TimerWheel::new(Duration::from_millis(1), 0..8);
        let (late, later) = (NEAR + 5, NEAR + SLOTS * 2 + 100);
        assert!(wheel.insert(late, Waker::noop().clone(), 0));
        assert!(wheel.insert(later, Waker::noop().clone(), 8));
        assert_eq!(wheel.state.lock().far.len(), 2);
        assert_eq!(wheel.state.lock().pending, 2);

        let mut fired = Vec::new();
        wheel.advance_to(late + 10, &mut fired);
        assert_eq!(fired.len(), 1, "the deadline jumped over fires");
        assert!(
            wheel.state.lock().far.is_empty(),
            "the other one is near now"
        );
        fired.clear();
        wheel.advance_to(later - 1, &mut fired);
        assert!(fired.is_empty());
        wheel.advance_to(later, &mut fired);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].1.addr, 8, "with its cell's address");
        assert_eq!(wheel.state.lock().pending, 0);
    }

    /// The ticker sleeps until the first slot that holds a sleeper, not
    /// every tick, and a sleeper due sooner than that wakes it.
    #[test]
    fn the_ticker_sleeps_until_the_next_sleeper() {
        let wheel = TimerWheel::new(Duration::from_millis(1), 0..8);
        let start = wheel.origin;
        assert!(wheel.plan(start).is_none(), "an empty wheel waits");
        assert!(wheel.insert(500, Waker::noop().clone(), 0));
        let woken = |wheel: &TimerWheel| {
            let notified = std::pin::pin!(wheel.armed.notified());
            notified
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_ready()
        };
        assert!(woken(&wheel), "the first sleeper wakes the idle ticker");
        let at = wheel.plan(start).unwrap();
        assert_eq!(at.duration_since(start).as_millis(), 500);

        assert!(wheel.insert(900, Waker::noop().clone(), 0));
        assert!(!woken(&wheel), "a later sleeper lets it sleep");
        assert!(wheel.insert(20, Waker::noop().clone(), 0));
        assert!(woken(&wheel), "a sooner one wakes it");
        let at = wheel.plan(start).unwrap();
        assert_eq!(at.duration_since(start).as_millis(), 20);

        // Never sooner than a tick after the last firing.
        let last = start + Duration::from_micros(19_500);
        assert_eq!(wheel.plan(last).unwrap(), last + Duration::from_millis(1));
    }

    /// An interval that fell more than a period behind skips the missed
    /// ticks even while the ticker sleeps long and the wheel's last fired
    /// tick lags the clock.
    #[test]
    fn an_interval_behind_a_sleeping_ticker_skips_its_missed_ticks() {
        let mut wheel = TimerWheel::new(Duration::from_millis(1), 0..8);
        // As if the wheel were made a second ago and nothing had fired since.
        Arc::get_mut(&mut wheel).unwrap().origin_coarse_ms -= 1000;
        let on_wait = std::sync::atomic::AtomicU8::new(0);
        let cell = 0u64;
        let start = wheel.origin + Duration::from_millis(5);
        let mut every = Interval::new(&wheel, start, Duration::from_millis(10), &on_wait, &cell);
        drop(every.tick());
        assert_eq!(every.next, 15, "a ticker that fires often: no clock read");

        assert!(wheel.plan(wheel.origin).is_none());
        assert!(wheel.sleeps_long.load(Ordering::Relaxed));
        drop(every.tick());
        assert!(every.next > 900, "skips to now, not {}", every.next);
    }

    /// With only sleepers beyond a slot's reach, the ticker wakes at the
    /// next turn, where they are brought near.
    #[test]
    fn far_sleepers_alone_wake_the_ticker_at_the_next_turn() {
        let wheel = TimerWheel::new(Duration::from_millis(1), 0..8);
        assert!(wheel.insert(NEAR + 5, Waker::noop().clone(), 0));
        assert_eq!(wheel.state.lock().next_due(), Some(SLOTS));
    }

    #[test]
    fn a_deadline_keeps_its_tick_when_registered() {
        let mut d = Deadline::new(12_345);
        assert!(!d.registered());
        d.set_registered();
        assert!(d.registered());
        assert_eq!(d.tick(), 12_345);
    }
}
