//! Tasks: run one computation in its own process and await its result — or
//! learn how it crashed — without taking the caller down.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::exit::ExitReason;
use crate::node::Node;
use crate::pid::Pid;
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
    result: oneshot::Receiver<T>,
    exited: crate::node::ExitReceiver,
}

impl<T: Send + 'static> Task<T> {
    /// The task's process.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// Waits for the result, or the reason the task's process ended without one.
    pub async fn join(self) -> Result<T, ExitReason> {
        match self.result.await {
            Ok(value) => Ok(value),
            Err(_) => Err(self.exited.await.unwrap_or(ExitReason::NoProc)),
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
            result,
            exited,
        }
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
            result,
            exited,
        }
    }
}
