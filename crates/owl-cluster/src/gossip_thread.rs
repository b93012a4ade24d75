//! The gossip thread: chitchat's server — its UDP exchanges and its
//! phi-accrual failure detector — runs on an OS thread of its own with a
//! small executor of its own, never on the node's schedulers.
//!
//! A node at ten times the talk's load keeps its schedulers busy by design.
//! Were gossip queued behind that work, a saturated node would answer late,
//! its peers would declare it down, take over its share of the load, and
//! deepen the very overload that fooled them (measured before this thread
//! existed: seven false "down"s in seventy seconds at a million jobs). On
//! its own thread gossip needs a few microseconds of CPU a few times a
//! second, and the kernel gives them at once: a thread that sleeps most of
//! the time runs ahead of busy ones when it wakes.

use tokio::runtime::{Builder, Handle, Runtime};

#[derive(Debug)]
pub(crate) struct GossipThread {
    runtime: Option<Runtime>,
}

impl GossipThread {
    pub(crate) fn start() -> std::io::Result<GossipThread> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("owl-gossip")
            .enable_all()
            .build()?;
        Ok(GossipThread {
            runtime: Some(runtime),
        })
    }

    pub(crate) fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("the gossip thread runs until dropped")
            .handle()
    }
}

impl Drop for GossipThread {
    fn drop(&mut self) {
        // Dropped wherever the last cluster handle goes, maybe inside async
        // code: stop without waiting for the thread.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
