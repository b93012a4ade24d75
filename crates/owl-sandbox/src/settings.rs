//! What all versions of a module share, running calls included: its CPU
//! budget, read at every tick of every call, requests for its processes'
//! stacks, and how its calls ended.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::stack_requests::StackRequests;

/// Settings and counters shared by all versions of a module, running ones included.
#[derive(Default)]
pub(crate) struct ModuleSettings {
    /// CPU-time budget per process in nanoseconds; 0 means none.
    pub cpu_budget_ns: AtomicU64,
    pub started: AtomicU64,
    pub returned: AtomicU64,
    pub crashed: AtomicU64,
    pub killed: AtomicU64,
    /// How many times all its processes were killed at once
    /// ([`Sandbox::kill_all`](crate::Sandbox::kill_all)): a call spawned
    /// before the last time, and not yet listed as running then, stops
    /// before it runs.
    pub kill_all: AtomicU64,
    /// Requests for the stacks of its running processes.
    pub stack_requests: StackRequests,
}

/// How the calls of one module (all its versions) ended so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Sandboxed processes started.
    pub started: u64,
    /// Calls that returned results.
    pub returned: u64,
    /// Calls that crashed: a trap, the memory limit, the CPU budget.
    pub crashed: u64,
    /// Processes ended from outside (killed, shut down, purged) mid-call.
    pub killed: u64,
}

impl ModuleSettings {
    pub(crate) fn counts(&self) -> CallCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CallCounts {
            started: get(&self.started),
            returned: get(&self.returned),
            crashed: get(&self.crashed),
            killed: get(&self.killed),
        }
    }
}
