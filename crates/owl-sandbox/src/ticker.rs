//! The epoch ticker: the clock that ends guests' slices. Every tick it
//! advances the engine's epoch, and a guest past its deadline then yields
//! (or, in its inline first slice, is interrupted).
//!
//! It ticks only as fast as needed, because on a small machine each wake-up
//! of this thread is a few microseconds taken from whatever runs on its
//! core:
//! - every `tick` (100 µs by default) while any sandboxed process exists;
//! - every [`QUIET_TICKS`] ticks (1 ms) while none does — a stream of short
//!   calls then costs a thousand wake-ups a second, not ten thousand, and a
//!   call that starts in a quiet moment and runs long holds its scheduler at
//!   most one quiet tick plus one tick before it moves to the guest threads;
//! - not at all after a second without any (parked until the next spawn
//!   unparks it: an unpark of a sleeping thread is a system call, which the
//!   steady states above avoid).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::EngineWeak;

use crate::admission::Admission;

/// A quiet tick is this many ticks long.
pub(crate) const QUIET_TICKS: u32 = 10;
/// Without any sandboxed process for this long, the ticker parks.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// Starts the ticker thread for `engine`; it ends when `stop` is set (or
/// the engine is gone).
pub(crate) fn start(
    engine: EngineWeak,
    admission: Arc<Admission>,
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
            while !stop.load(Ordering::Acquire) {
                let running = admission.taken() > 0;
                // A call that came and went between two looks counts too.
                if admission.started_since_asked() || running {
                    last_busy = Instant::now();
                } else if last_busy.elapsed() > PARK_AFTER {
                    // The timeout only rechecks `stop`.
                    std::thread::park_timeout(Duration::from_millis(100));
                    continue;
                }
                std::thread::sleep(if running { tick } else { tick * QUIET_TICKS });
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        })?;
    Ok(thread.thread().clone())
}
