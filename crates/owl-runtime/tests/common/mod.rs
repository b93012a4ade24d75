//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use owl_runtime::{Config, Node, Process, Runtime};

/// A two-scheduler runtime, like the CI machine.
pub(crate) fn runtime() -> Runtime {
    Runtime::new(Config::default().schedulers(2)).expect("runtime starts")
}

/// Every wait in the tests is bounded: a hang fails the test instead of blocking CI.
pub(crate) const LIMIT: Duration = Duration::from_secs(10);

pub(crate) async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Runs `body` as a process and returns its result; a panic inside it
/// (a failed assertion) fails the test with the panic's message.
pub(crate) fn in_process<F, Fut, T>(rt: &Runtime, body: F) -> T
where
    F: FnOnce(Process) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let node = rt.node();
    rt.block_on(async move {
        let task = node.spawn_task(body);
        match within("the test process", task.join()).await {
            Ok(v) => v,
            Err(reason) => panic!("test process failed: {reason}"),
        }
    })
}

/// A process that waits forever for a message it will never get.
pub(crate) fn idle(node: &Node) -> owl_runtime::Pid {
    node.spawn(|mut p| async move {
        p.recv::<Never>().await;
    })
}

pub(crate) struct Never;
