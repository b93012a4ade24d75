//! Running one guest call: an instance in its own store — fresh, or kept
//! from an earlier call of a stateless module (see [`reuse`](crate::reuse))
//! — with a memory limit, yielding to its executor at every epoch tick so
//! that it can be time-sliced and cancelled at any instruction.

use std::sync::Arc;

use std::sync::atomic::{AtomicUsize, Ordering};

use owl_runtime::{ExitReason, WorkMeter};
use wasmtime::{
    Engine, Func, Instance, Store, StoreLimitsBuilder, Trap, UpdateDeadline, Val, WasmBacktrace,
};

use crate::code::Version;
use crate::host_state::{GuestState, StackProbe};
use crate::reuse;

/// One guest call: what to run, with which limits, reporting to whom.
pub(crate) struct GuestCall {
    pub engine: Engine,
    pub version: Arc<Version>,
    pub module: Arc<str>,
    pub function: Arc<str>,
    pub args: CallArgs,
    pub memory_limit: usize,
    /// Linear memory all the sandbox's instances hold.
    pub memory_held: Arc<AtomicUsize>,
    pub meter: WorkMeter,
    pub probe: Arc<StackProbe>,
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

/// Calls `function(args)` on a new instance of `version` (or a kept one);
/// what it returned, or the exit reason of the crash.
pub(crate) async fn call(call: GuestCall) -> Result<Returned, ExitReason> {
    let GuestCall {
        engine,
        version,
        module,
        function,
        args,
        memory_limit,
        memory_held,
        meter,
        probe,
    } = call;
    // A reusable module's instance from an earlier call, or a new one.
    let (mut store, kept) = match version.pool.as_ref().and_then(reuse::Pool::take) {
        Some(idle) => (idle.store, Some((idle.instance, idle.last, idle.memory))),
        None => (new_store(&engine, memory_limit, memory_held), None),
    };
    // This call's own meter, deadline and budget, whatever instance it uses.
    store.data_mut().meter = Some(meter.clone());
    // Epoch deadlines start out expired. The first slice gets two ticks, so it
    // lasts at least one full tick wherever in a tick it starts (a short call
    // then finishes on its caller's scheduler); at every tick after that the
    // guest checks the module's CPU budget (read each time, so switching it on
    // reaches processes already running) and yields back to its executor.
    store.set_epoch_deadline(2);
    let settings = version.settings.clone();
    store.epoch_deadline_callback(move |ctx| {
        if probe.requested.swap(false, Ordering::AcqRel)
            && let Some(reply) = probe.reply.lock().take()
        {
            let _ = reply.send(stack_of(&ctx));
        }
        let budget = settings.cpu_budget_ns.load(Ordering::Relaxed);
        if budget != 0 && meter.cpu_time().as_nanos() as u64 > budget {
            return Err(wasmtime::Error::new(CpuLimitExceeded));
        }
        Ok(UpdateDeadline::Yield(1))
    });

    let crash = |e: wasmtime::Error| crash_reason(&module, &function, &e);
    let (instance, func, memory) = match kept {
        // The function the instance ran last is looked up once, not per call.
        Some((instance, Some((name, func)), memory)) if name == function => {
            (instance, func, memory)
        }
        Some((instance, _, memory)) => {
            let func = export(&mut store, instance, &module, &function)?;
            (instance, func, memory)
        }
        None => {
            let instance = version
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(crash)?;
            let func = export(&mut store, instance, &module, &function)?;
            let memory = version
                .pool
                .as_ref()
                .and_then(|pool| pool.memory_of(&mut store, instance));
            (instance, func, memory)
        }
    };
    // The type as the module declared it: asking the store for it costs more.
    let ty = version
        .function(&function)
        .ok_or_else(|| ExitReason::error(format!("{module} has no function {function}")))?;
    let params: Vec<Val> = match &args {
        CallArgs::Values(values) => ty
            .params()
            .zip(values)
            .map(|(t, &a)| match t {
                wasmtime::ValType::I32 => Val::I32(a as i32),
                _ => Val::I64(a),
            })
            .collect(),
        CallArgs::Bytes(bytes) => {
            let at = write_input(&mut store, instance, bytes, &module, &function).await?;
            vec![Val::I32(at as i32), Val::I32(bytes.len() as i32)]
        }
    };
    let mut results: Vec<Val> = ty.results().map(|_| Val::I64(0)).collect();
    // A trap or a budget overrun drops the instance here, with the store;
    // so does a kill (the whole future is dropped mid-call).
    func.call_async(&mut store, &params, &mut results)
        .await
        .map_err(crash)?;
    let values = as_i64s(&results);
    let bytes = match args {
        CallArgs::Values(_) => None,
        CallArgs::Bytes(_) => Some(read_output(
            &mut store, instance, &values, &module, &function,
        )?),
    };
    if let Some(pool) = &version.pool
        && pool.still_empty(&store, memory)
    {
        // Nothing of this call stays with the instance but what is in the
        // code: the pool only holds modules without state, and this
        // instance's memory, if any, is still empty (see `reuse`).
        store.data_mut().meter = None;
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        pool.give_back(reuse::Idle {
            store,
            instance,
            last: Some((function, func)),
            memory,
        });
    }
    Ok((values, bytes))
}

/// Grows the instance's memory by enough pages for `bytes` and writes them
/// there (the growth counts against the memory limit, so the limit bounds
/// what an input may cost); where they start.
async fn write_input(
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
    let grown = memory.grow_async(&mut *store, pages).await;
    grown
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

/// The exported function `function` of `instance`.
fn export(
    store: &mut Store<GuestState>,
    instance: Instance,
    module: &str,
    function: &str,
) -> Result<Func, ExitReason> {
    instance
        .get_func(store, function)
        .ok_or_else(|| ExitReason::error(format!("{module} has no function {function}")))
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
    store
}

/// A trial run of a candidate version: a fresh instance with the real
/// memory limit, preempted like a real process, given `deadline` of wall
/// time to instantiate (its start function runs then) and to answer the
/// canary. `Err` says why it failed.
pub(crate) async fn trial(
    engine: Engine,
    pre: wasmtime::InstancePre<GuestState>,
    memory_limit: usize,
    memory_held: Arc<AtomicUsize>,
    canary: Option<crate::Canary>,
    tick: std::time::Duration,
) -> Result<(), String> {
    let mut store = new_store(&engine, memory_limit, memory_held);
    let max_ticks = (crate::TRIAL_DEADLINE.as_nanos() / tick.as_nanos().max(1)).max(1) as u64;
    let mut ticks = 0u64;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        ticks += 1;
        if ticks > max_ticks {
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
