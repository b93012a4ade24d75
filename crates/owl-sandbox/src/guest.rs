//! Running one guest call: an instance in its own store — fresh, or kept
//! from an earlier call of a stateless module (see [`reuse`](crate::reuse))
//! — with a memory limit, yielding to its executor at every epoch tick so
//! that it can be time-sliced and cancelled at any instruction.

use std::sync::Arc;

use std::sync::atomic::{AtomicUsize, Ordering};

use owl_runtime::{ExitReason, WorkMeter};
use wasmtime::{
    Engine, Func, Instance, Memory, Store, StoreLimitsBuilder, Trap, UpdateDeadline, Val, ValRaw,
    WasmBacktrace,
};

use crate::code::{Int, Version};
use crate::host_state::{CallState, GuestState};
use crate::reuse;

/// One guest call: what to run and for which process. Everything else it
/// needs comes from its version (names, signature, settings) or, for a new
/// store, from [`StoreSetup`]: a short call then clones no shared pointer
/// beyond its version, which costs an atomic each way.
pub(crate) struct GuestCall {
    pub version: Arc<Version>,
    /// Which of the version's exports it calls.
    pub export: usize,
    pub args: CallArgs,
    /// Its process's pid number.
    pub pid: u64,
}

impl GuestCall {
    /// The module's name.
    pub(crate) fn module(&self) -> &Arc<str> {
        &self.version.name
    }

    /// The called function's name.
    pub(crate) fn function(&self) -> &Arc<str> {
        &self.version.exports[self.export].name
    }
}

/// What a store for a new instance is set up with: the memory limit, and
/// the count of linear memory all the sandbox's instances hold.
#[derive(Clone)]
pub(crate) struct StoreSetup {
    pub memory_limit: usize,
    pub memory_held: Arc<AtomicUsize>,
}

/// What a guest function is called with.
pub(crate) enum CallArgs {
    /// Its `i64`/`i32` parameters.
    Values(Vec<i64>),
    /// Bytes written into its memory (a byte call: see
    /// [`Sandbox::spawn_bytes`](crate::Sandbox::spawn_bytes)).
    Bytes(Vec<u8>),
}

/// The memory export a byte call writes its input into and reads its
/// output from.
pub(crate) const BYTE_CALL_MEMORY: &str = "memory";

/// What a call returned: its `i64`/`i32` results, and for a byte call the
/// bytes it pointed at.
pub(crate) type Returned = (Vec<i64>, Option<Vec<u8>>);

/// Runs `call` right here, on the calling thread, for at most its first
/// slice: what it returned or why it crashed, or `None` when it outlived the
/// slice.
///
/// No fiber and no future: a short calculation (`sum(100)` takes a
/// microsecond) costs only the call itself. A call still running at its
/// first epoch deadline is interrupted and its instance dropped; the caller
/// then runs it from the start with [`call`], preemptibly, elsewhere. That is
/// the same call, not a second one: a guest has no imports, so all it can
/// change is its own instance, and the next instance (fresh, or kept from a
/// call of a stateless module, which is the same) starts from the same
/// state. What the first slice cost stays counted in the process's CPU time.
pub(crate) fn call_first_slice(
    call: &GuestCall,
    setup: &StoreSetup,
) -> Option<Result<Returned, ExitReason>> {
    let (mut store, kept) = begin(call, setup, None);
    let mut values = Values::default();
    let ran = (|| {
        let prepared = match kept {
            Some(kept) => prepare_kept(&mut store, kept, call)?,
            None => {
                let instance = call
                    .version
                    .pre
                    .instantiate(&mut store)
                    .map_err(Crash::Wasm)?;
                prepare_fresh(&mut store, instance, call)?
            }
        };
        values.prepare(&mut store, prepared.instance, call)?;
        values
            .call_unchecked(&mut store, prepared.func)
            .map_err(Crash::Wasm)?;
        Ok::<_, Crash>(prepared)
    })();
    match ran {
        Ok(prepared) => Some(finish(store, prepared, &values, call)),
        Err(Crash::Wasm(_)) if store.data().outlived_slice => None,
        Err(crash) => Some(Err(crash.reason(call))),
    }
}

/// Runs `call` from the start as a future that yields at every epoch tick
/// (on the guest executor): what it returned, or the exit reason of the
/// crash. `meter` is its process's: the call's memory shows there, and its
/// CPU time counts against the module's budget.
pub(crate) async fn call(
    call: GuestCall,
    setup: StoreSetup,
    meter: WorkMeter,
) -> Result<Returned, ExitReason> {
    let (mut store, kept) = begin(&call, &setup, Some(meter));
    let mut values = Values::default();
    let ran = async {
        let prepared = match kept {
            Some(kept) => prepare_kept(&mut store, kept, &call)?,
            None => {
                let instance = call
                    .version
                    .pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(Crash::Wasm)?;
                prepare_fresh(&mut store, instance, &call)?
            }
        };
        let (params, results) = values.prepare(&mut store, prepared.instance, &call)?;
        prepared
            .func
            .call_async(&mut store, params, results)
            .await
            .map_err(Crash::Wasm)?;
        Ok::<_, Crash>(prepared)
    }
    .await;
    // A trap or a budget overrun drops the instance here, with the store;
    // so does a kill (the whole future is dropped mid-call).
    match ran {
        Ok(prepared) => finish(store, prepared, &values, &call),
        Err(crash) => Err(crash.reason(&call)),
    }
}

/// Why a call failed before it produced results.
enum Crash {
    /// Wasmtime's error: a trap, the CPU budget, an interrupt.
    Wasm(wasmtime::Error),
    /// Already an exit reason: a missing function, a bad byte range.
    Reason(ExitReason),
}

impl From<ExitReason> for Crash {
    fn from(reason: ExitReason) -> Crash {
        Crash::Reason(reason)
    }
}

impl Crash {
    fn reason(self, call: &GuestCall) -> ExitReason {
        match self {
            Crash::Wasm(e) => crash_reason(call.module(), call.function(), &e),
            Crash::Reason(reason) => reason,
        }
    }
}

/// An instance ready for this call: the function looked up, and the memory
/// a reusable module must keep empty.
struct Prepared {
    instance: Instance,
    func: Func,
    memory: Option<Memory>,
}

/// An instance kept from an earlier call, without its store.
struct Kept {
    instance: Instance,
    last: Option<(usize, Func)>,
    memory: Option<Memory>,
}

/// The store this call runs in — holding an instance kept from an earlier
/// call of a stateless module, or a new one — set up for this call and its
/// first deadline. A call on the executor (`meter` given) also gets its
/// process's meter and module settings, for the memory it shows, its CPU
/// budget and stack requests; an inline first slice needs neither (it ends
/// at its first deadline), so it clones nothing for them.
fn begin(
    call: &GuestCall,
    setup: &StoreSetup,
    meter: Option<WorkMeter>,
) -> (Store<GuestState>, Option<Kept>) {
    let (mut store, kept) = match call.version.pool.as_ref().and_then(reuse::Pool::take) {
        Some(idle) => (
            idle.store,
            Some(Kept {
                instance: idle.instance,
                last: idle.last,
                memory: idle.memory,
            }),
        ),
        None => (
            new_store(
                call.version.pre.module().engine(),
                setup.memory_limit,
                setup.memory_held.clone(),
            ),
            None,
        ),
    };
    let inline = meter.is_none();
    let state = store.data_mut();
    state.call = meter.map(|meter| CallState {
        meter,
        pid: call.pid,
        settings: call.version.settings.clone(),
    });
    state.inline = inline;
    state.outlived_slice = false;
    // Epoch deadlines start out expired. An inline first slice gets two
    // ticks, so it lasts at least one full tick wherever in a tick it starts
    // (a short call then finishes on its caller's scheduler); on the
    // executor every slice is one tick.
    store.set_epoch_deadline(if inline { 2 } else { 1 });
    (store, kept)
}

/// A kept instance with this call's function (the one its last call ran is
/// looked up already).
fn prepare_kept(
    store: &mut Store<GuestState>,
    kept: Kept,
    call: &GuestCall,
) -> Result<Prepared, ExitReason> {
    let func = match kept.last {
        // A stream of calls of one function finds it looked up already.
        Some((export, func)) if export == call.export => func,
        _ => self::export(store, kept.instance, call)?,
    };
    Ok(Prepared {
        instance: kept.instance,
        func,
        memory: kept.memory,
    })
}

/// A new instance with this call's function and, for a reusable module, the
/// memory it must keep empty.
fn prepare_fresh(
    store: &mut Store<GuestState>,
    instance: Instance,
    call: &GuestCall,
) -> Result<Prepared, ExitReason> {
    let func = export(store, instance, call)?;
    let memory = call
        .version
        .pool
        .as_ref()
        .and_then(|pool| pool.memory_of(store, instance));
    Ok(Prepared {
        instance,
        func,
        memory,
    })
}

/// Parameters and results of one call, on the stack for the usual few.
#[derive(Default)]
struct Values {
    vals: smallvec::SmallVec<[Val; 6]>,
    params: usize,
}

impl Values {
    /// The call's parameters (a byte call's input written into the
    /// instance's memory first) and room for its results, typed as the
    /// module declared them (read once at load: asking the store costs
    /// more). Only `i32` and `i64` cross, so the values always match the
    /// function's type.
    fn prepare(
        &mut self,
        store: &mut Store<GuestState>,
        instance: Instance,
        call: &GuestCall,
    ) -> Result<(&[Val], &mut [Val]), ExitReason> {
        let signature = call.version.exports[call.export]
            .signature
            .as_ref()
            .ok_or_else(|| {
                ExitReason::error(format!(
                    "{} has no function {} taking and returning i32 and i64",
                    call.module(),
                    call.function()
                ))
            })?;
        let typed = |t: &Int, value: i64| match t {
            Int::I32 => Val::I32(value as i32),
            Int::I64 => Val::I64(value),
        };
        self.vals.clear();
        match &call.args {
            CallArgs::Values(values) => {
                self.vals.extend(
                    signature
                        .params
                        .iter()
                        .zip(values)
                        .map(|(t, &value)| typed(t, value)),
                );
            }
            CallArgs::Bytes(bytes) => {
                let at = write_input(store, instance, bytes, call.module(), call.function())?;
                self.vals
                    .extend([Val::I32(at as i32), Val::I32(bytes.len() as i32)]);
            }
        }
        self.params = self.vals.len();
        self.vals
            .extend(signature.results.iter().map(|t| typed(t, 0)));
        let (params, results) = self.vals.split_at_mut(self.params);
        Ok((params, results))
    }

    /// Calls `func` with the prepared parameters, without wasmtime's
    /// per-call type check and conversions (a few percent of a short call),
    /// and stores its results.
    fn call_unchecked(
        &mut self,
        store: &mut Store<GuestState>,
        func: Func,
    ) -> wasmtime::Result<()> {
        let raw = |v: &Val| match *v {
            Val::I32(x) => ValRaw::i32(x),
            Val::I64(x) => ValRaw::i64(x),
            _ => unreachable!("`prepare` lets only i32 and i64 through"),
        };
        let results = self.vals.len() - self.params;
        let mut slots: smallvec::SmallVec<[ValRaw; 6]> =
            self.vals[..self.params].iter().map(raw).collect();
        slots.resize(self.params.max(results), ValRaw::i64(0));
        // SAFETY: `func` is the export of this version's module that
        // `prepare` read the type of (looked up by name on an instance of
        // that module, in this store), and `prepare` wrote exactly that
        // type's parameters, as `i32`/`i64` only (no references that could
        // dangle); `slots` holds room for the parameters and the results.
        // This runs on a scheduler thread, never inside an async call of the
        // same store.
        unsafe { func.call_unchecked(&mut *store, &mut slots[..])? };
        for (result, slot) in self.vals[self.params..].iter_mut().zip(&slots) {
            *result = match result {
                Val::I32(_) => Val::I32(slot.get_i32()),
                _ => Val::I64(slot.get_i64()),
            };
        }
        Ok(())
    }

    fn results(&self) -> &[Val] {
        &self.vals[self.params..]
    }
}

/// What a call that returned gives back (for a byte call, the bytes its
/// results point at); its instance goes back to the pool if it may serve
/// another call.
fn finish(
    mut store: Store<GuestState>,
    prepared: Prepared,
    values: &Values,
    call: &GuestCall,
) -> Result<Returned, ExitReason> {
    let results = as_i64s(values.results());
    let bytes = match call.args {
        CallArgs::Values(_) => None,
        CallArgs::Bytes(_) => Some(read_output(
            &mut store,
            prepared.instance,
            &results,
            call.module(),
            call.function(),
        )?),
    };
    if let Some(pool) = &call.version.pool
        && pool.still_empty(&store, prepared.memory)
    {
        // Nothing of this call stays with the instance but what is in the
        // code: the pool only holds modules without state, and this
        // instance's memory, if any, is still empty (see `reuse`).
        store.data_mut().call = None;
        pool.give_back(reuse::Idle {
            store,
            instance: prepared.instance,
            last: Some((call.export, prepared.func)),
            memory: prepared.memory,
        });
    }
    Ok((results, bytes))
}

/// What a guest's epoch deadline does: end an inline first slice
/// (interrupting the call, which then runs again from the start on the
/// executor, where stack requests and the budget are seen to), or answer a
/// pending stack request, check the CPU budget (read each time, so
/// switching it on reaches processes already running) and yield to the
/// executor.
fn on_deadline(
    mut ctx: wasmtime::StoreContextMut<'_, GuestState>,
) -> wasmtime::Result<UpdateDeadline> {
    if ctx.data().inline {
        ctx.data_mut().outlived_slice = true;
        return Ok(UpdateDeadline::Interrupt);
    }
    let Some(call) = &ctx.data().call else {
        return Ok(UpdateDeadline::Yield(1));
    };
    if let Some(reply) = call.settings.stack_requests.take(call.pid) {
        let _ = reply.send(stack_of(&ctx));
    }
    let budget = call.settings.cpu_budget_ns.load(Ordering::Relaxed);
    if budget != 0 && call.meter.cpu_time().as_nanos() as u64 > budget {
        return Err(wasmtime::Error::new(CpuLimitExceeded));
    }
    Ok(UpdateDeadline::Yield(1))
}

/// Grows the instance's memory by enough pages for `bytes` and writes them
/// there (the growth counts against the memory limit, so the limit bounds
/// what an input may cost); where they start.
fn write_input(
    store: &mut Store<GuestState>,
    instance: Instance,
    bytes: &[u8],
    module: &str,
    function: &str,
) -> Result<usize, ExitReason> {
    let memory = instance
        .get_memory(&mut *store, BYTE_CALL_MEMORY)
        .ok_or_else(|| {
            ExitReason::error(format!(
                "{module} takes bytes but exports no memory named `{BYTE_CALL_MEMORY}`"
            ))
        })?;
    let at = memory.data_size(&*store);
    let pages = bytes.len().div_ceil(WASM_PAGE) as u64;
    memory
        .grow(&mut *store, pages)
        .and_then(|_| Ok(memory.write(&mut *store, at, bytes)?))
        .map_err(|e| crash_reason(module, function, &e))?;
    Ok(at)
}

/// The bytes a byte call's `(status, ptr, len)` results point at.
fn read_output(
    store: &mut Store<GuestState>,
    instance: Instance,
    values: &[i64],
    module: &str,
    function: &str,
) -> Result<Vec<u8>, ExitReason> {
    let &[_, ptr, len] = values else {
        return Err(ExitReason::error(format!(
            "{module}:{function} returned {values:?}, not (status, ptr, len)"
        )));
    };
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    let memory = instance
        .get_memory(&mut *store, BYTE_CALL_MEMORY)
        .ok_or_else(|| ExitReason::error(format!("{module} has no memory to answer from")))?;
    memory
        .data(&*store)
        .get(ptr..ptr.saturating_add(len))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            ExitReason::error(format!(
                "{module}:{function} answered with bytes outside its memory ({len} at {ptr})"
            ))
        })
}

/// The size of a WebAssembly memory page.
const WASM_PAGE: usize = 64 << 10;

/// A call's `i64`/`i32` results (`i32` sign-extended).
fn as_i64s(results: &[Val]) -> Vec<i64> {
    results
        .iter()
        .map(|v| match v {
            Val::I32(x) => i64::from(*x),
            Val::I64(x) => *x,
            _ => 0,
        })
        .collect()
}

/// The function `call` calls, exported by `instance`.
fn export(
    store: &mut Store<GuestState>,
    instance: Instance,
    call: &GuestCall,
) -> Result<Func, ExitReason> {
    instance.get_func(store, call.function()).ok_or_else(|| {
        ExitReason::error(format!(
            "{} has no function {}",
            call.module(),
            call.function()
        ))
    })
}

/// A store for one instance, with the memory limit; the memory it holds
/// counts in `all_held`.
fn new_store(
    engine: &Engine,
    memory_limit: usize,
    all_held: Arc<AtomicUsize>,
) -> Store<GuestState> {
    let limits = StoreLimitsBuilder::new()
        .memory_size(memory_limit)
        .trap_on_grow_failure(true)
        .instances(1)
        .build();
    let mut store = Store::new(engine, GuestState::new(limits, all_held));
    store.limiter(|s| s);
    store.epoch_deadline_callback(on_deadline);
    store
}

/// A trial run of a candidate version: a fresh instance with the real
/// memory limit, preempted like a real process, given
/// [`TRIAL_DEADLINE`](crate::TRIAL_DEADLINE) of wall time to instantiate
/// (its start function runs then) and to answer the canary. `Err` says why
/// it failed.
///
/// Wall time, read at each of its epoch deadlines, not a count of them: the
/// ticker slows down while only long-running guests run, and the guest
/// threads run on what the machine leaves, so a count of ticks could stand
/// for ten seconds, or for an hour on a saturated machine.
pub(crate) async fn trial(
    engine: Engine,
    pre: wasmtime::InstancePre<GuestState>,
    memory_limit: usize,
    memory_held: Arc<AtomicUsize>,
    canary: Option<crate::Canary>,
) -> Result<(), String> {
    let mut store = new_store(&engine, memory_limit, memory_held);
    let started = std::time::Instant::now();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if started.elapsed() > crate::TRIAL_DEADLINE {
            return Err(wasmtime::Error::msg("it ran past the trial deadline"));
        }
        Ok(UpdateDeadline::Yield(1))
    });
    let describe = |e: wasmtime::Error| match e.downcast_ref::<Trap>() {
        Some(trap) => format!("{trap}"),
        None => format!("{}", e.root_cause()),
    };
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| format!("instantiating it failed: {}", describe(e)))?;
    let Some(canary) = canary else {
        return Ok(());
    };
    let func = instance
        .get_func(&mut store, &canary.function)
        .ok_or_else(|| format!("it has no function {}", canary.function))?;
    let ty = func.ty(&store);
    let params: Vec<Val> = ty
        .params()
        .zip(&canary.args)
        .map(|(t, &a)| match t {
            wasmtime::ValType::I32 => Val::I32(a as i32),
            _ => Val::I64(a),
        })
        .collect();
    let mut results: Vec<Val> = ty.results().map(|_| Val::I64(0)).collect();
    func.call_async(&mut store, &params, &mut results)
        .await
        .map_err(|e| format!("its canary call failed: {}", describe(e)))?;
    let got = as_i64s(&results);
    if got != canary.expected {
        let args: Vec<String> = canary.args.iter().map(i64::to_string).collect();
        return Err(format!(
            "its canary call {}({}) returned {got:?}, not {:?}",
            canary.function,
            args.join(", "),
            canary.expected
        ));
    }
    Ok(())
}

/// The guest's call stack, innermost function first.
fn stack_of(ctx: &wasmtime::StoreContextMut<'_, GuestState>) -> Vec<String> {
    WasmBacktrace::force_capture(ctx)
        .frames()
        .iter()
        .map(|f| {
            let name = f
                .func_name()
                .map_or_else(|| format!("func[{}]", f.func_index()), str::to_string);
            match f.module().name() {
                Some(module) => format!("{module}!{name}"),
                None => name,
            }
        })
        .collect()
}

/// The error an epoch callback raises when a process used up its CPU budget.
#[derive(Debug)]
struct CpuLimitExceeded;

impl std::fmt::Display for CpuLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CPU-time budget exceeded")
    }
}
impl std::error::Error for CpuLimitExceeded {}

/// "trap in math:sum: wasm `unreachable` instruction executed" — the trap and
/// the innermost guest function that has a name.
fn crash_reason(module: &str, function: &str, err: &wasmtime::Error) -> ExitReason {
    let in_function = err
        .downcast_ref::<WasmBacktrace>()
        .and_then(|bt| {
            bt.frames()
                .iter()
                .find_map(|f| f.func_name().map(str::to_string))
        })
        .unwrap_or_else(|| function.to_string());
    if err.downcast_ref::<CpuLimitExceeded>().is_some() {
        return ExitReason::CpuLimit;
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ExitReason::CpuLimit,
        Some(trap) => ExitReason::error(format!("trap in {module}:{in_function}: {trap}")),
        None => ExitReason::error(format!(
            "{module}:{in_function} failed: {}",
            err.root_cause()
        )),
    }
}
