//! What the host keeps beside each guest instance: its resource limits, and
//! for the call it runs on the guest executor the meter that shows its
//! memory in the process table, its pid (to answer a request for its call
//! stack) and the module's settings. Both the loaded code (which pre-links
//! instances for this state) and the running guest use it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use owl_runtime::WorkMeter;
use wasmtime::StoreLimits;

use crate::settings::ModuleSettings;

/// What belongs to the call an instance runs now (an instance kept for
/// reuse serves several calls, one after the other).
pub(crate) struct CallState {
    /// Charges the call's work and memory to its process.
    pub(crate) meter: WorkMeter,
    /// Its process's pid number, to find a request for its stack.
    pub(crate) pid: u64,
    /// The module's CPU budget and stack requests live here.
    pub(crate) settings: Arc<ModuleSettings>,
}

/// Per-instance host state: the resource limits, the call it runs, and whom
/// to tell how much linear memory the guest holds (the process table shows
/// it, and the sandbox counts every instance's together).
pub(crate) struct GuestState {
    pub(crate) limits: StoreLimits,
    /// The call running now on the guest executor; `None` between calls
    /// and during an inline first slice.
    pub(crate) call: Option<CallState>,
    /// The call runs its first slice inline: its deadline interrupts it.
    pub(crate) inline: bool,
    /// The inline first slice of the call ran out (see
    /// `guest::call_first_slice`).
    pub(crate) outlived_slice: bool,
    /// Linear memory this instance holds, in bytes.
    pub(crate) held: usize,
    /// Linear memory all instances of the sandbox hold.
    pub(crate) all_held: Arc<AtomicUsize>,
    /// Set once the instance is kept by a pool for reuse: the count of
    /// instances the pools hold (idle or lent to a call), which the
    /// instance leaves when it is dropped (see `reuse::Pool`).
    pub(crate) pooled: Option<Arc<AtomicUsize>>,
}

impl GuestState {
    pub(crate) fn new(limits: StoreLimits, all_held: Arc<AtomicUsize>) -> GuestState {
        GuestState {
            limits,
            call: None,
            inline: false,
            outlived_slice: false,
            held: 0,
            all_held,
            pooled: None,
        }
    }
}

impl Drop for GuestState {
    fn drop(&mut self) {
        self.all_held.fetch_sub(self.held, Ordering::Relaxed);
        if let Some(pooled) = &self.pooled {
            pooled.fetch_sub(1, Ordering::Relaxed);
        }
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
            if let Some(call) = &self.call {
                call.meter.set_memory_hint(desired);
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
