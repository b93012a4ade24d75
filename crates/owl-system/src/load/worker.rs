//! One load worker: waits a random 0–1 s, then once a second computes
//! ∑(1..100) and counts a success — until there are more workers than the
//! target, when it leaves by itself at its next wake-up.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use owl_runtime::supervisor::ChildSpec;
use owl_runtime::{Priority, Process, SpawnOptions};

use super::{Shared, WORKER_LABEL};

const PERIOD: Duration = Duration::from_secs(1);

/// Counts a worker as running from its start until it ends, however it ends.
struct Counted {
    shared: Arc<Shared>,
    /// False once the worker left on its own (it took itself off the count).
    counted: bool,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.counted {
            self.shared.running.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The spec the manager starts workers from (their supervisor restarts one
/// that is killed; one that leaves ends normally and is not restarted).
pub(super) fn child_spec(shared: Arc<Shared>) -> ChildSpec {
    ChildSpec::worker("load worker", move |args| {
        shared.running.fetch_add(1, Ordering::Relaxed);
        let counted = Counted {
            shared: shared.clone(),
            counted: true,
        };
        let opts = SpawnOptions::new().label(WORKER_LABEL);
        let pid = args.spawn_link_opts(opts, move |p| work(p, counted));
        async move { Ok(pid) }
    })
    .priority(Priority::Low)
}

/// The worker's body. An `async` block rather than an `async fn`: an
/// `async fn` keeps its arguments twice in its future (as arguments, and
/// as the locals they move into), and at a million workers those 48 bytes
/// decide whether a worker's task fits tokio's 256-byte allocation or
/// needs 384.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would store its arguments twice (see above)"
)]
fn work(p: Process, mut counted: Counted) -> impl Future<Output = ()> + Send {
    async move {
        let first = Duration::from_micros(spread(p.pid().id().0) % 1_000_000);
        // Once a second; after a stall, on from then, not in a burst.
        let mut every = p.interval_at(Instant::now() + first, PERIOD);
        loop {
            every.tick().await;
            if leave(&mut counted) {
                return;
            }
            let sum: u64 = (1..=black_box(100u64)).sum();
            black_box(sum);
            counted.shared.jobs.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Takes this worker off the count if there are more workers than the
/// target; true if it should leave.
fn leave(counted: &mut Counted) -> bool {
    let shared = &counted.shared;
    let mut running = shared.running.load(Ordering::Relaxed);
    loop {
        if running <= shared.target.load(Ordering::Relaxed) {
            return false;
        }
        match shared.running.compare_exchange_weak(
            running,
            running - 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                counted.counted = false;
                return true;
            }
            Err(now) => running = now,
        }
    }
}

/// A well-mixed number from a pid (SplitMix64): each worker its own phase.
fn spread(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use owl_runtime::Runtime;

    /// A million workers are the talk at ten times its size: each byte of a
    /// worker is a megabyte of the node. The runtime reports a process's
    /// memory from the size of its task's future: 152 bytes at most (the
    /// worker's own 128 and the runtime's 24; 504 in all with the cell and
    /// the fixed parts) keep tokio's task for it at 256 bytes, not 384.
    #[test]
    fn a_worker_fits_tokios_smallest_task() {
        let rt = Runtime::new(Default::default()).unwrap();
        let shared = super::super::LoadControl::new(0).shared.clone();
        let counted = super::Counted {
            shared,
            counted: false,
        };
        let pid = rt.node().spawn(move |p| super::work(p, counted));
        let bytes = rt.node().info(&pid).map(|i| i.memory_bytes);
        assert!(
            bytes.is_some_and(|b| b <= 504),
            "a load worker takes {bytes:?} bytes; above 504 its task grows by 128"
        );
    }
}
