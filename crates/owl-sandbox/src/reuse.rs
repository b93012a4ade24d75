//! Instances kept for the next call — only of modules where keeping one
//! cannot carry anything from one call to the next.
//!
//! Creating and tearing down a wasmtime instance costs a few microseconds
//! (allocating it from the pool, registering the module, `Instance::new`,
//! freeing the slot): more than a short calculation itself. So a module may
//! declare that its calls are independent — it exports something named
//! [`REUSABLE_EXPORT`] — and then an instance whose call returned is kept
//! for the next call of the same version.
//!
//! A declaration is not trusted: a module is reused only if it also has no
//! state an instance could carry: no table, no mutable global, no imports,
//! and no linear memory unless it starts empty (checked when it loads). An
//! empty memory is what lets a module take bytes (a [byte
//! call](crate::Sandbox::spawn_bytes)) and still be reused by its other
//! calls: an instance goes back to the pool only if its memory is still
//! empty when its call returns, so a call that grew it — every byte call —
//! ends with its instance dropped. What is left between two calls of a kept
//! instance is its code and its constants, identical in a fresh instance;
//! each call gets its own wasm stack, its own epoch deadline and CPU
//! budget, and shows as its own process. Resetting memories, tables and
//! globals in place was measured against: copying back a single 64 KiB page
//! costs what a fresh copy-on-write instance does, and non-exported globals
//! cannot be reset through wasmtime at all.
//!
//! An instance goes back to its pool only when its call returned; one that
//! trapped, ran out of budget or was killed is dropped. A version's pool is
//! drained when a newer version is installed, and a call only ever takes an
//! instance of its own version.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use wasmtime::wasmparser::{Parser, Payload};
use wasmtime::{Func, Instance, Memory, Store};

use crate::host_state::GuestState;

/// The export by which a module declares its calls independent of each
/// other (any kind of export: a function is the easiest to write).
///
/// ```
/// use owl_runtime::{Runtime, SpawnOptions};
/// use owl_sandbox::{Sandbox, SandboxConfig};
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
/// // Locals only, no memory: its instances may serve call after call.
/// sandbox.load("inc", br#"(module
///     (func (export "owl_reusable"))
///     (func (export "run") (param i64) (result i64)
///       (i64.add (local.get 0) (i64.const 1))))"#).unwrap();
/// let node = rt.node();
/// for n in 0..3 {
///     let task = sandbox.spawn(&node, "inc", "run", vec![n], SpawnOptions::new()).unwrap();
///     assert_eq!(rt.block_on(task.join()).unwrap().values, vec![n + 1]);
/// }
/// let module = sandbox.modules().into_iter().find(|m| m.name == "inc").unwrap();
/// assert!(module.reuses_instances);
/// assert_eq!(module.idle_instances, 1);
/// ```
pub const REUSABLE_EXPORT: &str = "owl_reusable";

/// Instances the pools keep at most, idle or lent to a call, all modules
/// together (each holds a slot of the engine's instance pool).
pub(crate) const IDLE_TOTAL: usize = 64;

/// What a module that may be reused keeps between calls: nothing, or one
/// exported memory that starts empty and must still be empty when a call
/// returns (checked after every call; see [`Stateless::empty_memory`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stateless {
    /// The export name of its memory, if it has one.
    pub empty_memory: Option<Box<str>>,
}

/// Whether a module that declared itself reusable holds no state an
/// instance could carry from one call to the next: `Err` names what it
/// holds.
///
/// A memory is allowed when it starts at zero pages, has no data segments
/// and is exported: a memory of zero pages holds no bytes, and a memory
/// never shrinks, so one still at zero pages after a call was never
/// written. The caller checks that after each call and drops an instance
/// whose memory grew. (Exported, so the host can check it; without data
/// segments, so `data.drop` cannot change what a later call sees.)
pub(crate) fn stateless(wasm: &[u8]) -> Result<Result<Stateless, &'static str>, String> {
    let mut memories = 0u32;
    let mut exported_memory = None;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| e.to_string())? {
            Payload::MemorySection(section) => {
                for memory in section {
                    memories += 1;
                    if memory.map_err(|e| e.to_string())?.initial > 0 {
                        return Ok(Err("a linear memory that starts with pages"));
                    }
                }
            }
            Payload::DataSection(s) if s.count() > 0 => return Ok(Err("data segments")),
            Payload::DataCountSection { count, .. } if count > 0 => {
                return Ok(Err("data segments"));
            }
            Payload::TableSection(s) if s.count() > 0 => return Ok(Err("a table")),
            Payload::GlobalSection(globals) => {
                for global in globals {
                    if global.map_err(|e| e.to_string())?.ty.mutable {
                        return Ok(Err("a mutable global"));
                    }
                }
            }
            Payload::ImportSection(imports) if imports.count() > 0 => {
                return Ok(Err("imports"));
            }
            Payload::ExportSection(exports) => {
                for export in exports {
                    let export = export.map_err(|e| e.to_string())?;
                    if export.kind == wasmtime::wasmparser::ExternalKind::Memory {
                        exported_memory = Some(Box::<str>::from(export.name));
                    }
                }
            }
            _ => {}
        }
    }
    match (memories, exported_memory) {
        (0, _) => Ok(Ok(Stateless::default())),
        (1, Some(name)) => Ok(Ok(Stateless {
            empty_memory: Some(name),
        })),
        (1, None) => Ok(Err("a linear memory it does not export")),
        _ => Ok(Err("more than one linear memory")),
    }
}

/// An instance between two calls, with its store.
pub(crate) struct Idle {
    pub store: Store<GuestState>,
    pub instance: Instance,
    /// The function its last call ran (the version's export number),
    /// looked up already.
    pub last: Option<(usize, Func)>,
    /// Its memory, looked up already, if the module has one.
    pub memory: Option<Memory>,
}

/// The idle instances of one version.
pub(crate) struct Pool {
    /// `None` once a newer version is installed: nothing goes back. One
    /// lock for both, so an instance given back while the version is
    /// retired cannot slip in after the drain.
    idle: Mutex<Option<Vec<Idle>>>,
    /// Instances the pools of every module of the sandbox hold, idle or
    /// lent to a call. An instance joins the count the first time it is
    /// kept, and leaves it when it is dropped (its store's state does
    /// that), so a call that takes one and gives it back changes no count.
    total: Arc<AtomicUsize>,
    /// What an instance may keep between calls.
    pub(crate) stateless: Stateless,
}

impl Pool {
    pub(crate) fn new(total: Arc<AtomicUsize>, stateless: Stateless) -> Pool {
        Pool {
            idle: Mutex::new(Some(Vec::new())),
            total,
            stateless,
        }
    }

    /// The memory an instance of this module must keep empty, if any
    /// (looked up by name once per instance).
    pub(crate) fn memory_of(
        &self,
        store: &mut Store<GuestState>,
        instance: Instance,
    ) -> Option<Memory> {
        let name = self.stateless.empty_memory.as_deref()?;
        instance.get_memory(store, name)
    }

    /// Whether an instance whose call returned may serve another call: its
    /// memory (from [`memory_of`](Self::memory_of)), if the module has one,
    /// is still empty.
    pub(crate) fn still_empty(&self, store: &Store<GuestState>, memory: Option<Memory>) -> bool {
        match (&self.stateless.empty_memory, memory) {
            (None, _) => true,
            (Some(_), Some(memory)) => memory.data_size(store) == 0,
            (Some(_), None) => false,
        }
    }

    /// An idle instance, if one is kept.
    pub(crate) fn take(&self) -> Option<Idle> {
        self.idle.lock().as_mut()?.pop()
    }

    /// Keeps an instance whose call returned, unless the version is retired
    /// or, for one not kept before, the pools hold enough already (the
    /// instance is dropped then).
    pub(crate) fn give_back(&self, mut idle: Idle) {
        let mut kept = self.idle.lock();
        let Some(kept) = kept.as_mut() else {
            return;
        };
        let state = idle.store.data_mut();
        if state.pooled.is_none() {
            if self.total.fetch_add(1, Ordering::Relaxed) >= IDLE_TOTAL {
                self.total.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            state.pooled = Some(self.total.clone());
        }
        kept.push(idle);
    }

    /// A newer version is in place: drop every idle instance, keep none.
    pub(crate) fn retire(&self) {
        // Dropped outside the lock; each leaves the count as it goes.
        let drained = self.idle.lock().take();
        drop(drained);
    }

    /// Instances kept now.
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().as_ref().map_or(0, Vec::len)
    }
}
