//! Timers: deliver a message later, or every period, like `erlang:send_after/3`
//! and `timer:send_interval/3`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::node::Node;
use crate::pid::Pid;

/// A running timer; [`cancel`](TimerRef::cancel) stops it. Dropping the
/// reference does *not* cancel the timer (as on the BEAM).
#[derive(Debug)]
pub struct TimerRef {
    task: tokio::task::AbortHandle,
    /// Claimed by whoever acts first: the timer firing or `cancel`.
    claimed: Arc<AtomicBool>,
    repeating: bool,
}

impl TimerRef {
    /// Stops the timer. Returns true if a one-shot timer was stopped before it
    /// fired, or an interval was still running.
    pub fn cancel(&self) -> bool {
        self.task.abort();
        if self.repeating {
            !self.claimed.swap(true, Ordering::AcqRel)
        } else {
            self.claimed
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        }
    }
}

impl Node {
    /// Sends `msg` to `pid` after `delay`.
    ///
    /// ```
    /// use owl_runtime::Runtime;
    /// use std::time::Duration;
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let got = rt.block_on(async move {
    ///     let (tx, rx) = tokio::sync::oneshot::channel();
    ///     let pid = node.spawn(|mut p| async move { tx.send(p.recv::<&str>().await).unwrap() });
    ///     let cancelled = node.send_after(&pid, Duration::from_secs(60), "late");
    ///     let timer = node.send_after(&pid, Duration::from_millis(5), "ring");
    ///     assert!(cancelled.cancel());
    ///     let got = rx.await.unwrap();
    ///     assert!(!timer.cancel()); // it already fired
    ///     got
    /// });
    /// assert_eq!(got, "ring");
    /// ```
    pub fn send_after<M: Send + 'static>(&self, pid: &Pid, delay: Duration, msg: M) -> TimerRef {
        let claimed = Arc::new(AtomicBool::new(false));
        let claim = claimed.clone();
        let pid = pid.clone();
        let task = self.inner.handle.spawn(async move {
            tokio::time::sleep(delay).await;
            if claim
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let _ = pid.send(msg);
            }
        });
        TimerRef {
            task: task.abort_handle(),
            claimed,
            repeating: false,
        }
    }

    /// Sends `make()` to `pid` every `period` (first after one period) until
    /// cancelled or until `pid` is gone.
    pub fn send_interval<M, F>(&self, pid: &Pid, period: Duration, mut make: F) -> TimerRef
    where
        M: Send + 'static,
        F: FnMut() -> M + Send + 'static,
    {
        let claimed = Arc::new(AtomicBool::new(false));
        let done = claimed.clone();
        let pid = pid.clone();
        let period = period.max(Duration::from_millis(1));
        let task = self.inner.handle.spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if done.load(Ordering::Acquire) || pid.send(make()).is_err() && !pid.is_alive() {
                    done.store(true, Ordering::Release);
                    return;
                }
            }
        });
        TimerRef {
            task: task.abort_handle(),
            claimed,
            repeating: true,
        }
    }
}
