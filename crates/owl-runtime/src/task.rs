//! Tasks: run one computation in its own process and await its result — or
//! learn how it crashed — without taking the caller down.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::exit::ExitReason;
use crate::node::Node;
use crate::pid::Pid;
use crate::process::cell::SignalKind;
use crate::process::{Process, SpawnOptions};

/// A computation running in its own process.
///
/// ```
/// use owl_runtime::{Runtime, ExitReason};
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let node = rt.node();
/// rt.block_on(async move {
///     let sum = node.spawn_task(|_| async { (1..=100u64).sum::<u64>() });
///     assert_eq!(sum.join().await, Ok(5050));
///
///     let crash = node.spawn_task(|_| async { if true { panic!("13") } else { 0 } });
///     assert!(matches!(crash.join().await, Err(ExitReason::Panic(m)) if m.starts_with("13")));
/// });
/// ```
#[derive(Debug)]
pub struct Task<T> {
    pid: Pid,
    outcome: Outcome<T>,
}

/// Where a task's result comes from.
#[derive(Debug)]
enum Outcome<T> {
    /// Its process runs (or ran): the result, or its exit reason.
    Running {
        result: oneshot::Receiver<T>,
        exited: crate::node::ExitReceiver,
    },
    /// It finished before its process needed to exist.
    Finished(T),
}

impl<T: Send + 'static> Task<T> {
    /// The task's process.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// Waits for the result, or the reason the task's process ended without one.
    pub async fn join(self) -> Result<T, ExitReason> {
        let (result, exited) = match self.outcome {
            Outcome::Running { result, exited } => (result, exited),
            Outcome::Finished(value) => return Ok(value),
        };
        match result.await {
            Ok(value) => Ok(value),
            Err(_) => Err(exited.await.unwrap_or(ExitReason::NoProc)),
        }
    }

    /// Like [`join`](Self::join), but gives up after `timeout`: the task is
    /// then killed and `Err(None)` returned.
    pub async fn join_timeout(self, timeout: Duration) -> Result<T, Option<ExitReason>> {
        let pid = self.pid.clone();
        match tokio::time::timeout(timeout, self.join()).await {
            Ok(r) => r.map_err(Some),
            Err(_) => {
                pid.exit_from_node(ExitReason::Kill);
                Err(None)
            }
        }
    }
}

impl Node {
    /// Like [`spawn_task`](Self::spawn_task) for bodies that can fail with an
    /// exit reason: `Err(reason)` ends the task's process with that reason
    /// (a crash report if it is a failure), and `join` returns it.
    pub fn spawn_try_task<F, Fut, T>(&self, opts: SpawnOptions, body: F) -> Task<T>
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ExitReason>> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, result) = oneshot::channel();
        // `body` runs now, at spawn time, like any process body's closure;
        // only the future it returns runs in the process.
        let (pid, exited) = self.spawn_watched(opts, move |p| {
            let work = body(p);
            async move {
                let value = work.await?;
                let _ = tx.send(value);
                Ok::<(), ExitReason>(())
            }
        });
        Task {
            pid,
            outcome: Outcome::Running { result, exited },
        }
    }

    /// A task whose work was done before its process needed to exist: the
    /// caller already has the result. The task gets the pid a process would
    /// have had; `last_words` runs as that process (a message it sends
    /// names that pid as its sender, and arrives before what the watchers
    /// hear); then the options' watchers learn that it ended `Normal`, as
    /// they would of a process that returned at once — a `link_to` process
    /// that traps exits gets an [`Exit`](crate::Exit), a `monitored_by`
    /// process a [`Down`](crate::Down). It is counted as spawned and exited,
    /// but never scheduled nor in the process table, and
    /// [`join`](Task::join) is ready at once.
    ///
    /// For work that may or may not finish at once: a sandboxed call runs
    /// its first slice in its caller, and only a call still running after
    /// it becomes a scheduled process.
    ///
    /// ```
    /// use owl_runtime::{Down, ExitReason, Runtime, SpawnOptions};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let heard = node.spawn_task(|mut p| async move {
    ///     let me = p.pid().clone();
    ///     let opts = SpawnOptions::new().monitored_by(me.clone());
    ///     let done = p.node().finished_task(opts, |pid| {
    ///         let _ = me.send(format!("done by {pid}"));
    ///         5050
    ///     });
    ///     let said: String = p.recv().await;
    ///     let down: Down = p.recv().await;
    ///     assert!(!done.pid().is_alive() && down.pid == *done.pid());
    ///     (said == format!("done by {}", done.pid()), down.reason, done.join().await)
    /// });
    /// assert_eq!(rt.block_on(heard.join()).unwrap(), (true, ExitReason::Normal, Ok(5050)));
    /// ```
    pub fn finished_task<T: Send + 'static>(
        &self,
        opts: SpawnOptions,
        last_words: impl FnOnce(&Pid) -> T,
    ) -> Task<T> {
        let (pid, value) = self.finish_at_once(opts, last_words);
        Task {
            pid,
            outcome: Outcome::Finished(value),
        }
    }

    /// [`finished_task`](Self::finished_task) for work answered by message,
    /// as [`spawn_opts`](Self::spawn_opts) is [`spawn_task`](Self::spawn_task)
    /// without the result: `last_words` sends the answer, and only the pid
    /// comes back.
    ///
    /// ```
    /// use owl_runtime::{Down, Runtime, SpawnOptions};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let heard = node.spawn_task(|mut p| async move {
    ///     let me = p.pid().clone();
    ///     let opts = SpawnOptions::new().monitored_by(me.clone());
    ///     let pid = p.node().finished_process(opts, |_| {
    ///         let _ = me.send(5050u64);
    ///     });
    ///     let sum: u64 = p.recv().await;
    ///     let down: Down = p.recv().await;
    ///     (sum, down.pid == pid)
    /// });
    /// assert_eq!(rt.block_on(heard.join()).unwrap(), (5050, true));
    /// ```
    pub fn finished_process(&self, opts: SpawnOptions, last_words: impl FnOnce(&Pid)) -> Pid {
        self.finish_at_once(opts, last_words).0
    }

    fn finish_at_once<T>(
        &self,
        opts: SpawnOptions,
        last_words: impl FnOnce(&Pid) -> T,
    ) -> (Pid, T) {
        let inner = &self.inner;
        let id = inner.next_pid();
        let pid = Pid::gone(crate::PidId(id));
        inner.counters.spawned.fetch_add(1, Ordering::Relaxed);
        let caller = crate::trace::current();
        crate::trace::set_current(id);
        let value = last_words(&pid);
        crate::trace::set_current(caller);
        inner.counters.exited.fetch_add(1, Ordering::Relaxed);
        // What a normal exit tells a link: a process trapping exits gets an
        // `Exit` message, any other ignores it. No link was ever made, so
        // the signal goes as a plain exit signal (the same for `Normal`).
        if let Some(cell) = opts.link_to.as_ref().and_then(Pid::cell) {
            cell.signal_exit(&pid, ExitReason::Normal, SignalKind::Exit);
        }
        if let Some(cell) = opts.monitored_by.as_ref().and_then(Pid::cell) {
            cell.deliver_down(crate::Down {
                monitor: self.next_monitor_ref(),
                pid: pid.clone(),
                reason: ExitReason::Normal,
            });
        }
        (pid, value)
    }

    /// Runs `body` in a new process (labelled `task`) and returns a handle to
    /// await its result.
    pub fn spawn_task<F, Fut, T>(&self, body: F) -> Task<T>
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_task_opts(SpawnOptions::new().label("task"), body)
    }

    /// [`spawn_task`](Self::spawn_task) with explicit spawn options.
    pub fn spawn_task_opts<F, Fut, T>(&self, opts: SpawnOptions, body: F) -> Task<T>
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, result) = oneshot::channel();
        let (pid, exited) = self.spawn_watched(opts, move |p| {
            let work = body(p);
            async move {
                let _ = tx.send(work.await);
            }
        });
        Task {
            pid,
            outcome: Outcome::Running { result, exited },
        }
    }
}
