//! The epoch ticker: the clock that ends guests' slices. Every tick at
//! which a call is in flight it advances the engine's epoch, and a guest
//! past its deadline then yields (or, in its inline first slice, is
//! interrupted). Between calls it leaves the epoch alone: a deadline counts
//! ticks from when its call set it, so a tick with no call in flight ends
//! nothing, and would only move the epoch's cache line — which every call
//! reads — to the ticker's core. For the same reason the ticker only reads
//! the admission word it looks at (see `admission`).
//!
//! It ticks only as fast as needed, because on a small machine each wake-up
//! of this thread is a few microseconds taken from whatever runs on its
//! core — and, measured, far more than that from a commit's sync waiting
//! for the same core (docs/benchmarks.md):
//! - every `tick` (100 µs by default) while a *young* call runs: one in its
//!   first slice on a native scheduler, or in the guest executor's fast
//!   lane. Those are the slices that must stay short: the first holds a
//!   native scheduler, the others make a fresh call wait behind a runaway;
//! - every [`SLOW_TICKS`] ticks (1 ms) otherwise: while only long-running
//!   guests run (they share the guest threads in 1 ms slices), or while
//!   none runs — a stream of short calls then costs a thousand wake-ups a
//!   second, not ten thousand. A call that starts in such a moment and runs
//!   long holds its scheduler at most one slow tick plus one tick before it
//!   moves to the guest threads;
//! - not at all after a second without any sandboxed process (parked until
//!   the next spawn unparks it: an unpark of a sleeping thread is a system
//!   call, which the steady states above avoid).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wasmtime::EngineWeak;

use crate::admission::{Admission, Seen};

/// A slow tick is this many ticks long.
pub(crate) const SLOW_TICKS: u32 = 10;
/// Fast ticks after young work was last seen: enough for a first slice
/// seen at a slow tick to reach its deadline (two ticks after it began).
const FAST_AFTER_YOUNG: u32 = 2;

/// Tells the ticker whether a young call runs (see the module doc).
#[derive(Default)]
pub(crate) struct Pace {
    /// Calls in their first slice now.
    first_slices: AtomicUsize,
    /// A call was queued in the executor's fast lane since the ticker last
    /// looked.
    fast_lane: AtomicBool,
    /// Slices running on the guest threads now, on a line of its own: the
    /// guest threads write it, the calls' first slices never do.
    guest_slices: Padded<AtomicUsize>,
}

/// A value alone on its cache line.
#[derive(Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl Pace {
    /// Counts a call's first slice until the guard is dropped: a short call
    /// that comes and goes between two ticks leaves the ticker slow.
    pub(crate) fn first_slice(&self) -> FirstSlice<'_> {
        self.first_slices.fetch_add(1, Ordering::Relaxed);
        FirstSlice(self)
    }

    /// A call was queued in the guest executor's fast lane.
    /// Counts a slice on a guest thread until the guard drops.
    pub(crate) fn guest_slice(&self) -> GuestSlice<'_> {
        self.guest_slices.0.fetch_add(1, Ordering::Relaxed);
        GuestSlice(self)
    }

    /// Whether a guest thread is in the middle of a slice. A guest whose
    /// process was killed then runs on to the end of its slice, its
    /// admission slot already given back: the epoch must still move for
    /// that slice to end.
    fn guest_slice_running(&self) -> bool {
        self.guest_slices.0.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn fast_lane(&self) {
        self.fast_lane.store(true, Ordering::Relaxed);
    }

    /// Whether a young call runs now, or was queued since the last look.
    fn young(&self) -> bool {
        let queued =
            self.fast_lane.load(Ordering::Relaxed) && self.fast_lane.swap(false, Ordering::Relaxed);
        queued || self.first_slices.load(Ordering::Relaxed) > 0
    }
}

/// A first slice in progress (see [`Pace::first_slice`]).
pub(crate) struct FirstSlice<'a>(&'a Pace);

impl Drop for FirstSlice<'_> {
    fn drop(&mut self) {
        self.0.first_slices.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A slice on a guest thread, counted while it runs.
pub(crate) struct GuestSlice<'a>(&'a Pace);

impl Drop for GuestSlice<'_> {
    fn drop(&mut self) {
        self.0.guest_slices.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Fast or slow ticks, from whether young work was seen at each.
#[derive(Default)]
struct Cadence {
    /// Fast ticks still owed to the young work last seen.
    fast_left: u32,
}

impl Cadence {
    /// How long to wait for the next tick.
    fn next_pause(&mut self, young: bool, tick: Duration) -> Duration {
        if young {
            self.fast_left = FAST_AFTER_YOUNG;
        }
        if self.fast_left > 0 {
            self.fast_left -= 1;
            tick
        } else {
            tick * SLOW_TICKS
        }
    }
}

/// Without any sandboxed process for this long, the ticker parks.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// Starts the ticker thread for `engine`; it ends when `stop` is set (or
/// the engine is gone).
pub(crate) fn start(
    engine: EngineWeak,
    admission: Arc<Admission>,
    pace: Arc<Pace>,
    tick: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::Thread> {
    let thread = std::thread::Builder::new()
        .name("owl-epoch".into())
        .spawn(move || {
            // Ticks of 100 µs need the kernel's default 50 µs timer slack gone.
            if let Err(e) = owl_runtime::sys::set_timer_slack(Duration::from_nanos(1)) {
                tracing::warn!(error = %e, "epoch ticks may run late: cannot set the timer slack");
            }
            let mut last_busy = Instant::now();
            let mut cadence = Cadence::default();
            let mut seen = Seen::default();
            while !stop.load(Ordering::Acquire) {
                // A call that came and went between two looks counts too.
                let (started, running) = admission.look(&mut seen);
                if started || running > 0 || pace.guest_slice_running() {
                    last_busy = Instant::now();
                } else if last_busy.elapsed() > PARK_AFTER {
                    // The timeout only rechecks `stop`.
                    std::thread::park_timeout(Duration::from_millis(100));
                    continue;
                }
                std::thread::sleep(cadence.next_pause(pace.young(), tick));
                // Only a call in flight needs the epoch to move: a deadline
                // counts ticks from when its call set it. Between calls the
                // epoch's line, which every call reads, then stays where
                // the calls last read it instead of moving to this core
                // every millisecond. A slice still running on a guest
                // thread (its process killed, its slot given back) needs
                // it to move, or it would never end.
                if admission.taken() == 0 && !pace.guest_slice_running() {
                    continue;
                }
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        })?;
    Ok(thread.thread().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_micros(100);

    /// A first slice counts while its guard lives: a call that came and went
    /// between two looks leaves the ticker slow. A fast-lane call is seen
    /// once, at the next look.
    #[test]
    fn young_work_is_a_first_slice_running_now_or_a_fast_lane_call_since_the_last_look() {
        let pace = Pace::default();
        assert!(!pace.young());
        let slice = pace.first_slice();
        assert!(pace.young());
        assert!(pace.young(), "still running at the next look");
        drop(slice);
        assert!(!pace.young(), "a first slice that ended is not young work");
        pace.fast_lane();
        assert!(pace.young());
        assert!(!pace.young(), "a fast-lane call is seen once");
    }

    /// Young work gets fast ticks, enough of them for a first slice seen at
    /// a slow tick to reach its two-tick deadline; without any, ticks are
    /// ten times slower.
    #[test]
    fn ticks_are_fast_while_young_work_is_seen_and_slow_after() {
        let mut cadence = Cadence::default();
        assert_eq!(cadence.next_pause(false, TICK), TICK * SLOW_TICKS);
        let paces: Vec<Duration> = [true, false, false, false]
            .into_iter()
            .map(|young| cadence.next_pause(young, TICK))
            .collect();
        assert_eq!(paces, [TICK, TICK, TICK * SLOW_TICKS, TICK * SLOW_TICKS]);
        // Young work seen at every look keeps every tick fast.
        assert!((0..10).all(|_| cadence.next_pause(true, TICK) == TICK));
    }
}
