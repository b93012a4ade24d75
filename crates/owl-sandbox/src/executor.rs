//! The guest executor: worker threads that run guest calls in slices, with a
//! two-level feedback queue so fresh work never waits behind runaways.
//!
//! A guest yields at every epoch tick. A call that has used fewer than
//! `DEMOTE_AFTER` slices is queued in the *fast* lane, one that keeps going is
//! demoted to the *background* lane. Workers take fast work first, and one
//! background task every `BACKGROUND_SHARE` picks so runaways still progress.
//! So a new calculation waits at most for the slice in progress, however many
//! runaways there are.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

/// Slices (epoch ticks) a call may use before it counts as long-running.
pub(crate) const DEMOTE_AFTER: u32 = 4;
/// One pick in this many goes to the background lane when both have work.
const BACKGROUND_SHARE: u32 = 4;

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Task {
    future: Mutex<Option<BoxFuture>>,
    slices: AtomicU32,
    queued: AtomicBool,
    cancelled: AtomicBool,
    shared: Weak<Shared>,
}

#[derive(Default)]
struct Lanes {
    fast: VecDeque<Arc<Task>>,
    background: VecDeque<Arc<Task>>,
    picks: u32,
    stopping: bool,
}

struct Shared {
    lanes: Mutex<Lanes>,
    /// Told of fast-lane work, which the epoch ticker slices finely.
    pace: Arc<crate::ticker::Pace>,
    work: Condvar,
    /// The guest threads' CPU clocks.
    clocks: Mutex<Vec<owl_runtime::sys::ThreadClock>>,
}

impl Shared {
    fn enqueue(&self, task: Arc<Task>) {
        let mut lanes = self.lanes.lock();
        if task.slices.load(Ordering::Relaxed) < DEMOTE_AFTER {
            lanes.fast.push_back(task);
            self.pace.fast_lane();
        } else {
            lanes.background.push_back(task);
        }
        drop(lanes);
        self.work.notify_one();
    }

    /// The next task to run, or `None` when the executor stops.
    fn next(&self) -> Option<Arc<Task>> {
        let mut lanes = self.lanes.lock();
        loop {
            if lanes.stopping {
                return None;
            }
            lanes.picks = lanes.picks.wrapping_add(1);
            let background_turn = lanes.picks.is_multiple_of(BACKGROUND_SHARE);
            let task = if background_turn {
                lanes
                    .background
                    .pop_front()
                    .or_else(|| lanes.fast.pop_front())
            } else {
                lanes
                    .fast
                    .pop_front()
                    .or_else(|| lanes.background.pop_front())
            };
            match task {
                Some(t) => return Some(t),
                None => self.work.wait(&mut lanes),
            }
        }
    }
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel)
            && let Some(shared) = self.shared.upgrade()
        {
            shared.enqueue(self.clone());
        }
    }
}

/// Runs guest futures on `threads` worker threads.
pub(crate) struct GuestExecutor {
    shared: Arc<Shared>,
}

/// A running guest call: its result, and cancellation when dropped.
pub(crate) struct GuestHandle<T> {
    task: Arc<Task>,
    result: oneshot::Receiver<T>,
}

impl<T> GuestHandle<T> {
    /// The call's output; `None` if it was cancelled or panicked.
    pub(crate) async fn join(mut self) -> Option<T> {
        (&mut self.result).await.ok()
    }
}

impl<T> Drop for GuestHandle<T> {
    fn drop(&mut self) {
        self.task.cancelled.store(true, Ordering::Release);
        // Free the guest now unless a worker is running its slice; then the
        // worker drops it when the slice ends (within one epoch tick).
        if let Some(mut fut) = self.task.future.try_lock() {
            drop(fut.take());
        }
    }
}

impl GuestExecutor {
    pub(crate) fn start(
        threads: usize,
        pace: Arc<crate::ticker::Pace>,
    ) -> std::io::Result<GuestExecutor> {
        let shared = Arc::new(Shared {
            lanes: Mutex::new(Lanes::default()),
            pace,
            work: Condvar::new(),
            clocks: Mutex::new(Vec::new()),
        });
        for i in 0..threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("owl-guest-{i}"))
                .spawn(move || {
                    // Native work (pages, supervisors, even background jobs)
                    // comes first when both want the same core; guests share
                    // what it leaves.
                    if let Err(e) = owl_runtime::sys::idle_thread_priority() {
                        tracing::warn!(error = %e, "guest thread runs at normal priority");
                    }
                    if let Some(clock) = owl_runtime::sys::ThreadClock::current() {
                        shared.clocks.lock().push(clock);
                        shared.work.notify_all();
                    }
                    worker(shared)
                })?;
        }
        // Wait until every thread has told its clock (microseconds), so that
        // `threads` is complete as soon as the executor exists.
        let mut lanes = shared.lanes.lock();
        while shared.clocks.lock().len() < threads.max(1) {
            shared
                .work
                .wait_for(&mut lanes, std::time::Duration::from_millis(10));
        }
        drop(lanes);
        Ok(GuestExecutor { shared })
    }

    /// A CPU-time sample of the guest threads, for their utilization.
    pub(crate) fn sample(&self) -> owl_runtime::SchedulerSample {
        owl_runtime::SchedulerSample::of_threads(&self.shared.clocks.lock())
    }

    /// The guest threads' CPU clocks (and thread ids).
    pub(crate) fn threads(&self) -> Vec<owl_runtime::sys::ThreadClock> {
        self.shared.clocks.lock().clone()
    }

    /// Runs `fut`, which has already used `slices` slices elsewhere (they
    /// count towards demotion to the background lane).
    pub(crate) fn spawn<F, T>(&self, fut: F, slices: u32) -> GuestHandle<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, result) = oneshot::channel();
        let task = Arc::new(Task {
            future: Mutex::new(Some(Box::pin(async move {
                let _ = tx.send(fut.await);
            }))),
            slices: AtomicU32::new(slices),
            queued: AtomicBool::new(true),
            cancelled: AtomicBool::new(false),
            shared: Arc::downgrade(&self.shared),
        });
        self.shared.enqueue(task.clone());
        GuestHandle { task, result }
    }

    /// Calls waiting to run, in the fast and background lanes.
    pub(crate) fn queued(&self) -> (usize, usize) {
        let lanes = self.shared.lanes.lock();
        (lanes.fast.len(), lanes.background.len())
    }
}

impl Drop for GuestExecutor {
    fn drop(&mut self) {
        let mut lanes = self.shared.lanes.lock();
        lanes.stopping = true;
        lanes.fast.clear();
        lanes.background.clear();
        drop(lanes);
        self.shared.work.notify_all();
    }
}

fn worker(shared: Arc<Shared>) {
    while let Some(task) = shared.next() {
        task.queued.store(false, Ordering::Release);
        let mut slot = task.future.lock();
        if task.cancelled.load(Ordering::Acquire) {
            drop(slot.take());
            continue;
        }
        let Some(fut) = slot.as_mut() else { continue };
        task.slices.fetch_add(1, Ordering::Relaxed);
        // Counted until the slice ends, with the drop of a call killed
        // meanwhile: the ticker keeps the epoch moving until then.
        let _slice = shared.pace.guest_slice();
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        // A panic in a guest call is a bug in the host glue, not the guest
        // (guest faults are traps, returned as errors): end that call only.
        let done =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(&mut cx)));
        if !matches!(done, Ok(Poll::Pending)) || task.cancelled.load(Ordering::Acquire) {
            drop(slot.take());
        }
    }
}
