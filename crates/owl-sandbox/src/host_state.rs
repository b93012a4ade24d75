//! What the host keeps beside each guest instance: its resource limits, the
//! meter that shows its memory in the process table, and the probe through
//! which another thread asks for its call stack. Both the loaded code (which
//! pre-links instances for this state) and the running guest use it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use owl_runtime::WorkMeter;
use wasmtime::StoreLimits;

/// Lets another thread ask a running guest for its call stack, which the
/// guest answers at its next epoch tick.
#[derive(Default)]
pub(crate) struct StackProbe {
    pub(crate) requested: AtomicBool,
    pub(crate) reply: parking_lot::Mutex<Option<tokio::sync::oneshot::Sender<Vec<String>>>>,
}

impl StackProbe {
    pub(crate) fn request(&self) -> tokio::sync::oneshot::Receiver<Vec<String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        *self.reply.lock() = Some(tx);
        self.requested.store(true, Ordering::Release);
        rx
    }
}

/// Per-instance host state: the resource limits, and whom to tell how much
/// linear memory the guest holds (the process table shows it, and the
/// sandbox counts every instance's together).
pub(crate) struct GuestState {
    pub(crate) limits: StoreLimits,
    pub(crate) meter: Option<WorkMeter>,
    /// Linear memory this instance holds, in bytes.
    pub(crate) held: usize,
    /// Linear memory all instances of the sandbox hold.
    pub(crate) all_held: Arc<AtomicUsize>,
}

impl GuestState {
    pub(crate) fn new(limits: StoreLimits, all_held: Arc<AtomicUsize>) -> GuestState {
        GuestState {
            limits,
            meter: None,
            held: 0,
            all_held,
        }
    }
}

impl Drop for GuestState {
    fn drop(&mut self) {
        self.all_held.fetch_sub(self.held, Ordering::Relaxed);
    }
}

impl wasmtime::ResourceLimiter for GuestState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            // A store holds one memory (a module has at most one), so what
            // it holds is the size it grows to.
            self.all_held
                .fetch_add(desired.saturating_sub(self.held), Ordering::Relaxed);
            self.held = desired.max(self.held);
            if let Some(meter) = &self.meter {
                meter.set_memory_hint(desired);
            }
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
