//! Process sleep on a hashed timer wheel with millisecond ticks.
//!
//! A node may hold a million processes that each sleep most of the time (the
//! talk's load workers wake once a second). A wheel entry is a deadline and a
//! waker (24 bytes, no allocation of its own) and firing one is a `Vec` scan,
//! which makes such workloads several times cheaper than general-purpose
//! timers. The wheel is advanced by one ticker task on the node's executor,
//! which sleeps while no process is sleeping.

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
    /// Every entry with a deadline at or before this tick has fired.
    now_ms: AtomicU64,
    state: Mutex<WheelState>,
    /// Wakes the ticker when the first entry arrives in an empty wheel.
    armed: Notify,
}

struct WheelState {
    slots: Vec<Vec<(u64, Waker)>>,
    current: u64,
    pending: usize,
}

impl TimerWheel {
    pub(crate) fn new() -> Arc<TimerWheel> {
        Arc::new(TimerWheel {
            origin: Instant::now(),
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
    fn insert(&self, deadline: u64, waker: Waker) -> bool {
        let mut st = self.state.lock();
        if deadline <= st.current {
            return false;
        }
        st.slots[(deadline & MASK) as usize].push((deadline, waker));
        st.pending += 1;
        let first = st.pending == 1;
        drop(st);
        if first {
            self.armed.notify_one();
        }
        true
    }

    /// Fires every entry due by now; returns their wakers.
    fn advance(&self, fired: &mut Vec<Waker>) {
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
            slot.retain(|(deadline, waker)| {
                if *deadline <= to {
                    fired.push(waker.clone());
                    false
                } else {
                    true
                }
            });
            let removed = before - slot.len();
            st.pending -= removed;
        }
        st.current = to;
        self.now_ms.store(to, Ordering::Release);
    }

    /// Runs on the node's executor for the node's lifetime.
    pub(crate) async fn run_ticker(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(Duration::from_millis(1));
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
            for waker in fired.drain(..) {
                waker.wake();
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
    ) -> Self {
        Sleep {
            deadline: wheel.tick_of(until),
            wheel,
            registered: false,
            on_wait,
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
            if !self.wheel.insert(self.deadline, cx.waker().clone()) {
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
