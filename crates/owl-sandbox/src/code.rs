//! The code server: named guest modules with numbered versions. New spawns
//! use the newest version; processes keep the version they started with.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use owl_runtime::Pid;
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use wasmtime::{Engine, ExternType, FuncType, InstancePre, Linker, Module, ValType};

use crate::host_state::GuestState;
use crate::reuse;
use crate::settings::{CallCounts, ModuleSettings};

/// Why a module was not loaded. The current version, if any, stays in place.
/// Messages quote at most a short excerpt of what the compiler or the
/// candidate said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// Larger than the sandbox takes (source bytes, or compiled code).
    TooLarge(String),
    /// Not valid WebAssembly (binary or text); the compiler's message.
    Compile(String),
    /// It compiled, but a trial run refused it: its start function trapped,
    /// ran past the deadline or the memory limit, or its canary call gave
    /// the wrong answer.
    Rejected(String),
    /// It imports something the sandbox does not provide.
    Imports(String),
    /// It lacks a function the current version exports (or changed its type),
    /// or exports no function at all.
    Exports(String),
    /// Module names are 1–64 characters of `a-z`, `0-9`, `_` and `-`.
    InvalidName(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::TooLarge(m) => write!(f, "module too large: {m}"),
            LoadError::Compile(m) => write!(f, "module does not compile: {m}"),
            LoadError::Rejected(m) => write!(f, "module refused after a trial run: {m}"),
            LoadError::Imports(m) => {
                write!(f, "module imports what the sandbox does not provide: {m}")
            }
            LoadError::Exports(m) => write!(f, "module exports do not fit: {m}"),
            LoadError::InvalidName(n) => write!(f, "invalid module name {n:?}"),
        }
    }
}
impl std::error::Error for LoadError {}

/// The most of a compiler message an error quotes.
const EXCERPT_CHARS: usize = 400;

/// At most [`EXCERPT_CHARS`] of `text`, on one line.
pub(crate) fn excerpt(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(EXCERPT_CHARS + 1)
        .collect();
    if flat.chars().count() > EXCERPT_CHARS {
        let cut: String = flat.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// One loaded version of a module.
pub(crate) struct Version {
    pub number: u32,
    pub settings: Arc<ModuleSettings>,
    pub pre: InstancePre<GuestState>,
    /// The module's name, shared by every call (not copied per call).
    pub name: Arc<str>,
    /// Its functions.
    pub exports: Vec<Export>,
    /// Processes running this version on the guest threads (their calls
    /// outlived their first slice), by pid number. A call that ends within
    /// its first slice, as nearly every one does, is never entered: it is
    /// over within microseconds, and entering and removing it cost more
    /// than the call.
    pub running: Mutex<FxHashMap<u64, Pid>>,
    /// Purged: a call of this version that has not started stops before it
    /// runs (see `Held::stopped` in lib.rs).
    pub retired: AtomicBool,
    /// Idle instances for the next calls, for a reusable module.
    pub pool: Option<reuse::Pool>,
    /// Its processes' label in the process table: `sandbox NAME vN`.
    pub label: owl_runtime::Label,
}

impl Version {
    /// The exported function `name`, with its number among the exports.
    pub(crate) fn export(&self, name: &str) -> Option<(usize, &Export)> {
        self.exports
            .iter()
            .enumerate()
            .find(|(_, e)| &*e.name == name)
    }
}

/// An exported function of a version.
pub(crate) struct Export {
    /// Its name, shared by every call (not copied per call).
    pub name: Arc<str>,
    pub ty: FuncType,
    /// Its type as calls pass values, read once here rather than per call;
    /// `None` if it uses a type other than `i32` and `i64` (it cannot be
    /// called then).
    pub signature: Option<Signature>,
}

/// The integer types a call passes and gets back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Int {
    I32,
    I64,
}

/// A function's parameters and results, all `i32` or `i64`.
pub(crate) struct Signature {
    pub params: Box<[Int]>,
    pub results: Box<[Int]>,
}

impl Export {
    fn new(name: &str, ty: FuncType) -> Export {
        let int = |t: ValType| match t {
            ValType::I32 => Some(Int::I32),
            ValType::I64 => Some(Int::I64),
            _ => None,
        };
        let params: Option<Box<[Int]>> = ty.params().map(int).collect();
        let results: Option<Box<[Int]>> = ty.results().map(int).collect();
        Export {
            name: name.into(),
            signature: params
                .zip(results)
                .map(|(params, results)| Signature { params, results }),
            ty,
        }
    }
}

/// What [`Sandbox::modules`](crate::Sandbox::modules) reports for one module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The module's name.
    pub name: String,
    /// The newest version number (new spawns use it).
    pub current: u32,
    /// Every version still loaded, oldest first, with how many processes run it.
    pub versions: Vec<(u32, usize)>,
    /// The exported functions.
    pub functions: Vec<String>,
    /// How its calls ended so far.
    pub calls: CallCounts,
    /// The CPU-time budget of each of its processes, if one is set.
    pub cpu_budget: Option<std::time::Duration>,
    /// Whether calls of the current version reuse instances (the module
    /// declares it and holds no state: see [`reuse`](crate::reuse)).
    pub reuses_instances: bool,
    /// Instances of the current version kept for the next calls.
    pub idle_instances: usize,
}

/// Module sources larger than this are refused (bytes actually given).
pub const MAX_SOURCE_BYTES: usize = 16 << 20;
/// Compiled code larger than this is refused.
pub const MAX_COMPILED_BYTES: usize = 64 << 20;

/// A compiled version, checked but not yet the current one.
pub(crate) struct Candidate {
    pub pre: InstancePre<GuestState>,
    pub exports: Vec<Export>,
    /// Its instances may serve call after call, keeping what this says
    /// (see [`reuse`](crate::reuse)).
    pub reusable: Option<reuse::Stateless>,
}

#[derive(Default)]
pub(crate) struct CodeServer {
    modules: RwLock<FxHashMap<String, Vec<Arc<Version>>>>,
    /// Idle instances kept, every module together.
    idle: Arc<AtomicUsize>,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn describe(ty: &FuncType) -> String {
    let list = |it: &mut dyn Iterator<Item = ValType>| {
        it.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    format!(
        "({}) -> ({})",
        list(&mut ty.params()),
        list(&mut ty.results())
    )
}

/// The processes running any of `versions`.
fn running_in(versions: &[Arc<Version>]) -> Vec<Pid> {
    versions
        .iter()
        .flat_map(|v| v.running.lock().values().cloned().collect::<Vec<_>>())
        .collect()
}

impl CodeServer {
    /// Compiles `source` (`.wat` text or `.wasm` binary) as a candidate
    /// version of `name`, checking its imports and that it keeps the current
    /// version's exports. Slow (milliseconds): call it off the executors.
    pub(crate) fn compile(
        &self,
        engine: &Engine,
        name: &str,
        source: &[u8],
    ) -> Result<Candidate, LoadError> {
        if !valid_name(name) {
            return Err(LoadError::InvalidName(name.chars().take(80).collect()));
        }
        if source.len() > MAX_SOURCE_BYTES {
            return Err(LoadError::TooLarge(format!(
                "{} bytes of source; at most {MAX_SOURCE_BYTES} are taken",
                source.len()
            )));
        }
        let module = Module::new(engine, source)
            .map_err(|e| LoadError::Compile(excerpt(&format!("{e:#}"))))?;
        let image = module.image_range();
        let compiled = image.end as usize - image.start as usize;
        if compiled > MAX_COMPILED_BYTES {
            return Err(LoadError::TooLarge(format!(
                "{compiled} bytes of compiled code; at most {MAX_COMPILED_BYTES} are taken"
            )));
        }
        if let Some(import) = module.imports().next() {
            return Err(LoadError::Imports(excerpt(&format!(
                "{}::{}",
                import.module(),
                import.name()
            ))));
        }
        // The reuse marker is a declaration, not a function to call: a new
        // version may drop it (and lose reuse) without breaking callers.
        let exports: Vec<Export> = module
            .exports()
            .filter(|e| e.name() != reuse::REUSABLE_EXPORT)
            .filter_map(|e| match e.ty() {
                ExternType::Func(f) => Some(Export::new(e.name(), f)),
                _ => None,
            })
            .collect();
        if exports.is_empty() {
            return Err(LoadError::Exports("no exported function".into()));
        }
        if let Some(current) = self.current(name) {
            for Export {
                name: fname, ty, ..
            } in &current.exports
            {
                match exports.iter().find(|e| e.name == *fname).map(|e| &e.ty) {
                    None => {
                        return Err(LoadError::Exports(format!(
                            "missing {fname}{}",
                            describe(ty)
                        )));
                    }
                    Some(new) if !FuncType::eq(new, ty) => {
                        return Err(LoadError::Exports(format!(
                            "{fname} changed from {} to {}",
                            describe(ty),
                            describe(new)
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
        let reusable = if module.exports().any(|e| e.name() == reuse::REUSABLE_EXPORT) {
            match wat::parse_bytes(source)
                .map_err(|e| e.to_string())
                .and_then(|wasm| reuse::stateless(&wasm))
            {
                Ok(Ok(stateless)) => Some(stateless),
                Ok(Err(state)) => {
                    tracing::warn!(
                        module = name,
                        state,
                        "the module declares its calls independent but holds state: every call gets a fresh instance"
                    );
                    None
                }
                Err(e) => {
                    tracing::warn!(module = name, error = %e, "cannot read the module's sections: no reuse");
                    None
                }
            }
        } else {
            None
        };
        let linker = Linker::new(engine);
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Compile(excerpt(&format!("{e:#}"))))?;
        Ok(Candidate {
            pre,
            exports,
            reusable,
        })
    }

    /// Makes a compiled candidate the newest version of `name`; it keeps the
    /// module's settings (its CPU budget) and counters.
    pub(crate) fn install(&self, name: &str, candidate: Candidate) -> u32 {
        let mut modules = self.modules.write();
        let versions = modules.entry(name.to_string()).or_default();
        let number = versions.last().map_or(1, |v| v.number + 1);
        let settings = versions
            .last()
            .map_or_else(Default::default, |v| v.settings.clone());
        // No call of the new version may run on an old instance, and no
        // old instance should wait for calls that will not come.
        if let Some(pool) = versions.last().and_then(|v| v.pool.as_ref()) {
            pool.retire();
        }
        versions.push(Arc::new(Version {
            name: name.into(),
            number,
            settings,
            pre: candidate.pre,
            exports: candidate.exports,
            running: Mutex::new(FxHashMap::default()),
            retired: AtomicBool::new(false),
            label: format!("sandbox {name} v{number}").into(),
            pool: candidate
                .reusable
                .map(|stateless| reuse::Pool::new(self.idle.clone(), stateless)),
        }));
        number
    }

    /// The newest version of `name`.
    pub(crate) fn current(&self, name: &str) -> Option<Arc<Version>> {
        self.modules
            .read()
            .get(name)
            .and_then(|v| v.last().cloned())
    }

    /// Drops every version but the newest, returning the processes that still
    /// ran one of them (the caller kills them).
    pub(crate) fn purge(&self, name: &str) -> Option<Vec<Pid>> {
        let mut modules = self.modules.write();
        let versions = modules.get_mut(name)?;
        let keep = versions.pop()?;
        let old: Vec<Arc<Version>> = std::mem::take(versions);
        versions.push(keep);
        drop(modules);
        // Before looking at who runs them: a call that enters itself later
        // then sees the mark (it looks after entering itself).
        for version in &old {
            version.retired.store(true, Ordering::Release);
        }
        Some(running_in(&old))
    }

    /// Every process running any version of `name`.
    pub(crate) fn running(&self, name: &str) -> Vec<Pid> {
        let modules = self.modules.read();
        modules
            .get(name)
            .map(|versions| running_in(versions))
            .unwrap_or_default()
    }

    /// The settings (where stack requests go) of the module a live
    /// sandboxed process runs, whatever its module, known by its label —
    /// the very label its version gives its processes, not just the same
    /// text: a native process, or another sandbox's, may be named alike. (A
    /// call in its first slice is in no running set, but has its label.)
    pub(crate) fn settings_of(&self, pid: &Pid) -> Option<Arc<ModuleSettings>> {
        let label = pid.label()?;
        let modules = self.modules.read();
        modules
            .values()
            .flatten()
            .find(|v| std::ptr::eq(v.label.as_str(), label.as_str()))
            .map(|v| v.settings.clone())
    }

    /// Every process running any version of `name`, after marking the
    /// module so that its calls not yet started stop before they run.
    pub(crate) fn kill_all(&self, name: &str) -> Vec<Pid> {
        let modules = self.modules.read();
        let Some(versions) = modules.get(name) else {
            return Vec::new();
        };
        if let Some(version) = versions.last() {
            version.settings.kill_all.fetch_add(1, Ordering::AcqRel);
        }
        running_in(versions)
    }

    pub(crate) fn list(&self) -> Vec<ModuleInfo> {
        let modules = self.modules.read();
        let mut all: Vec<ModuleInfo> = modules
            .iter()
            .filter_map(|(name, versions)| {
                let current = versions.last()?;
                Some(ModuleInfo {
                    name: name.clone(),
                    current: current.number,
                    versions: versions
                        .iter()
                        .map(|v| (v.number, v.running.lock().len()))
                        .collect(),
                    functions: current
                        .exports
                        .iter()
                        .map(|e| format!("{}{}", e.name, describe(&e.ty)))
                        .collect(),
                    calls: current.settings.counts(),
                    cpu_budget: match current.settings.cpu_budget_ns.load(Ordering::Relaxed) {
                        0 => None,
                        ns => Some(std::time::Duration::from_nanos(ns)),
                    },
                    reuses_instances: current.pool.is_some(),
                    idle_instances: current.pool.as_ref().map_or(0, reuse::Pool::idle),
                })
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}
