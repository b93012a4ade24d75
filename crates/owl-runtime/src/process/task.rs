//! The future that runs one process on the executor: it accounts CPU time and
//! reductions per poll, applies pending exit signals between polls, turns a
//! panic into an exit reason, and reports polls that block a worker too long.

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Once};
use std::task::{Context, Poll};

use crate::exit::{ExitReason, IntoExitReason};
use crate::process::cell::{ProcessCell, status};
use crate::scheduler::{self, clock};

pin_project_lite::pin_project! {
    pub(crate) struct ProcessTask<F> {
        cell: Arc<ProcessCell>,
        // The data pointer of the executor's waker as last stored in the
        // cell (0: none yet), to skip re-storing it on every poll. Not the
        // waker itself: its 8 more bytes are, for a million small processes,
        // the difference between tokio's 256-byte task and its 384-byte one
        // (tasks are 128-byte aligned). The executor's waker for a task is
        // the task's own address, so a new address means a new waker.
        known_waker: usize,
        // The process body; `None` once it ended (dropped in place).
        #[pin]
        body: Option<F>,
    }

    impl<F> PinnedDrop for ProcessTask<F> {
        // The executor dropped the process without finishing it (the runtime
        // is shutting down): it ends as killed, so links and monitors still fire.
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if this.body.is_some() {
                this.cell.finish(ExitReason::Killed);
            }
        }
    }
}

impl<F> ProcessTask<F> {
    pub(crate) fn new(cell: Arc<ProcessCell>, body: F) -> Self {
        ProcessTask {
            cell,
            known_waker: 0,
            body: Some(body),
        }
    }
}

impl<F> Future for ProcessTask<F>
where
    F: Future,
    F::Output: IntoExitReason,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let mut body = this.body;
        let cell: &Arc<ProcessCell> = this.cell;
        let Some(fut) = body.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        let waker_data = cx.waker().data() as usize;
        if *this.known_waker != waker_data {
            cell.state.lock().task_waker = Some(cx.waker().clone());
            *this.known_waker = waker_data;
        }

        if cell.exit_pending.load(Ordering::Acquire)
            && let Some(reason) = cell.take_pending_exit()
        {
            cell.status.store(status::EXITING, Ordering::Release);
            let dropped = catch_unwind(AssertUnwindSafe(|| body.set(None)));
            cell.finish(dropped.map_or_else(ExitReason::from_panic, |_| reason));
            return Poll::Ready(());
        }

        cell.status.store(status::RUNNING, Ordering::Release);
        let slot = scheduler::current_worker().or_else(|| {
            let node = cell.node.upgrade()?;
            node.schedulers.register_current_thread(cell.priority)
        });
        let start = clock().raw();
        if let Some(slot) = slot {
            slot.begin_poll(cell.id, start);
        }
        IN_PROCESS.set(true);
        crate::trace::set_current(cell.id);
        let result = catch_unwind(AssertUnwindSafe(|| fut.poll(cx)));
        crate::trace::set_current(0);
        IN_PROCESS.set(false);
        let end = clock().raw();
        cell.stats
            .cpu_cycles
            .fetch_add(end.saturating_sub(start), Ordering::Relaxed);
        cell.stats.reductions.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = slot {
            slot.end_poll(cell, start, end);
        }

        let reason = match result {
            Ok(Poll::Pending) => {
                let _ = cell.status.compare_exchange(
                    status::RUNNING,
                    status::WAITING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                return Poll::Pending;
            }
            Ok(Poll::Ready(out)) => out.into_exit_reason(),
            Err(payload) => ExitReason::from_panic(payload),
        };
        cell.status.store(status::EXITING, Ordering::Release);
        let dropped = catch_unwind(AssertUnwindSafe(|| body.set(None)));
        cell.finish(dropped.map_or_else(ExitReason::from_panic, |_| reason));
        Poll::Ready(())
    }
}

thread_local! {
    /// True while this thread polls a process body: its panics become exit
    /// reasons and crash reports, so the default "thread panicked" line is skipped.
    static IN_PROCESS: Cell<bool> = const { Cell::new(false) };
    /// Where the last in-process panic happened, for the exit reason.
    static PANIC_LOCATION: Cell<Option<String>> = const { Cell::new(None) };
}

/// Installs (once per OS process) a panic hook that keeps panics inside
/// processes quiet — they are reported once, as crash reports — and defers
/// to the previous hook for every other panic.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_PROCESS.get() {
                PANIC_LOCATION.set(
                    info.location()
                        .map(|l| format!("{}:{}", l.file(), l.line())),
                );
            } else {
                previous(info);
            }
        }));
    });
}

impl ExitReason {
    /// The reason for a panic caught with [`std::panic::catch_unwind`], as a
    /// process that panicked ends with: `panic: message`, with where it
    /// panicked when that was inside a process's poll. For code that runs a
    /// process's work outside its poll and must end it the same way.
    ///
    /// ```
    /// use owl_runtime::ExitReason;
    ///
    /// let caught = std::panic::catch_unwind(|| panic!("13")).unwrap_err();
    /// assert_eq!(ExitReason::from_panic(caught), ExitReason::Panic("13".into()));
    /// ```
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> ExitReason {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_string());
        let text = match PANIC_LOCATION.take() {
            Some(at) => format!("{message} (at {at})"),
            None => message,
        };
        ExitReason::Panic(text.into())
    }
}
