//! Hostile guest modules: valid WebAssembly generated at random (huge
//! memories, start functions, deep recursion, endless loops, many
//! functions). Loading them as an upgrade must end in time with a version or
//! a clear refusal, never a panic or a hang, and every generated function
//! the sandbox runs ends (returns, traps, or is killed) without leaking its
//! slot. Generated modules that declare their calls independent get a
//! reused instance only when that cannot change any call's result.
//! `OWL_FUZZ_CASES` sets the number of modules (40 here).

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use owl_runtime::{Runtime, SpawnOptions};
use owl_sandbox::{Sandbox, SandboxConfig};

fn cases() -> usize {
    std::env::var("OWL_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40)
}

/// A module with at least one exported function of `(i64*) -> (i64*)`
/// shape and no imports, so the sandbox may take it; with `exports`, a
/// module whose exports are exactly those of that module. A `stateless`
/// module has no memory, table or global.
fn module(seed: u64, exports: Option<&[u8]>, stateless: bool) -> Vec<u8> {
    let mut bytes = vec![0u8; 4096];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut u = Unstructured::new(&bytes);
    let mut config = wasm_smith::Config::arbitrary(&mut u).unwrap_or_default();
    config.max_imports = 0;
    // At least one function and export; a random config may allow fewer,
    // and the generator refuses a maximum under its minimum.
    config.min_exports = 1;
    config.max_exports = config.max_exports.max(1);
    config.min_funcs = 1;
    config.max_funcs = config.max_funcs.max(1);
    config.export_everything = true;
    config.max_memories = 1;
    // Half the modules ask for more memory than a guest may have.
    config.max_memory32_bytes = if seed.is_multiple_of(2) {
        1 << 32
    } else {
        1 << 20
    };
    config.allow_start_export = true;
    config.threads_enabled = false;
    config.exceptions_enabled = false;
    config.gc_enabled = false;
    config.simd_enabled = false;
    config.relaxed_simd_enabled = false;
    config.memory64_enabled = false;
    config.custom_page_sizes_enabled = false;
    config.wide_arithmetic_enabled = false;
    config.tail_call_enabled = false;
    config.reference_types_enabled = false;
    config.multi_value_enabled = true;
    if let Some(exports) = exports {
        config.export_everything = false;
        config.exports = Some(exports.to_vec());
        // Answers, not traps: more of them to compare.
        config.disallow_traps = true;
    }
    if stateless {
        config.max_memories = 0;
        config.min_memories = 0;
        config.max_tables = 0;
        config.min_tables = 0;
    }
    let bytes = wasm_smith::Module::new(config, &mut u)
        .map(|m| m.to_bytes())
        .unwrap_or_default();
    match exports {
        Some(_) => instrument(&bytes, stateless).unwrap_or_default(),
        None => bytes,
    }
}

/// The export [`instrument`] adds: a fingerprint of everything an instance
/// holds (its globals, its memory byte for byte, its tables' entries).
const STATE: &str = "owl_state";

/// What a module holds, read before it is rewritten.
#[derive(Default)]
struct Holdings {
    types: u32,
    funcs: u32,
    globals: Vec<wasmparser::ValType>,
    memory: bool,
    tables: u32,
}

/// Rewrites a generated module: adds the [`STATE`] export, and with
/// `freeze` makes its globals unchangeable (each becomes immutable, each
/// `global.set` drops its value: wasm-smith keeps values it would otherwise
/// drop in mutable globals of its own).
struct Instrument {
    freeze: bool,
    holds: Holdings,
}

type ReencodeResult<T> = Result<T, wasm_encoder::reencode::Error<std::convert::Infallible>>;

impl Instrument {
    /// `acc = rotl(acc, 5) ^ <value pushed by push>`, on local 0.
    fn mix(f: &mut wasm_encoder::Function, push: &[wasm_encoder::Instruction<'_>]) {
        use wasm_encoder::Instruction as I;
        f.instruction(&I::LocalGet(0))
            .instruction(&I::I64Const(5))
            .instruction(&I::I64Rotl);
        for i in push {
            f.instruction(i);
        }
        f.instruction(&I::I64Xor).instruction(&I::LocalSet(0));
    }

    /// `for (local 1 = 0; local 1 < end; local 1 += step) mix(item)`,
    /// with `end` what `end` pushes.
    fn each(
        f: &mut wasm_encoder::Function,
        end: &[wasm_encoder::Instruction<'_>],
        step: i32,
        item: &[wasm_encoder::Instruction<'_>],
    ) {
        use wasm_encoder::{BlockType, Instruction as I};
        f.instruction(&I::I32Const(0)).instruction(&I::LocalSet(1));
        for i in end {
            f.instruction(i);
        }
        f.instruction(&I::LocalSet(2))
            .instruction(&I::Block(BlockType::Empty))
            .instruction(&I::Loop(BlockType::Empty))
            .instruction(&I::LocalGet(1))
            .instruction(&I::LocalGet(2))
            .instruction(&I::I32GeU)
            .instruction(&I::BrIf(1));
        Self::mix(f, item);
        f.instruction(&I::LocalGet(1))
            .instruction(&I::I32Const(step))
            .instruction(&I::I32Add)
            .instruction(&I::LocalSet(1))
            .instruction(&I::Br(0))
            .instruction(&I::End)
            .instruction(&I::End);
    }

    fn state_function(&self) -> wasm_encoder::Function {
        use wasm_encoder::{Instruction as I, MemArg, ValType};
        let mut f = wasm_encoder::Function::new([(1, ValType::I64), (2, ValType::I32)]);
        for (index, ty) in self.holds.globals.iter().enumerate() {
            let get = I::GlobalGet(index as u32);
            match ty {
                wasmparser::ValType::I32 => Self::mix(&mut f, &[get, I::I64ExtendI32U]),
                wasmparser::ValType::I64 => Self::mix(&mut f, &[get]),
                wasmparser::ValType::F32 => {
                    Self::mix(&mut f, &[get, I::I32ReinterpretF32, I::I64ExtendI32U])
                }
                wasmparser::ValType::F64 => Self::mix(&mut f, &[get, I::I64ReinterpretF64]),
                _ => {}
            }
        }
        if self.holds.memory {
            Self::mix(&mut f, &[I::MemorySize(0), I::I64ExtendI32U]);
            let load = I::I64Load(MemArg {
                offset: 0,
                align: 3,
                target: wasm_encoder::MemArgTarget::Memory(0),
                ordering: None,
            });
            let bytes = [I::MemorySize(0), I::I32Const(16), I::I32Shl];
            Self::each(&mut f, &bytes, 8, &[I::LocalGet(1), load]);
        }
        for table in 0..self.holds.tables {
            Self::mix(&mut f, &[I::TableSize(table), I::I64ExtendI32U]);
            let entry = [
                I::LocalGet(1),
                I::TableGet(table),
                I::RefIsNull,
                I::I64ExtendI32U,
            ];
            Self::each(&mut f, &[I::TableSize(table)], 1, &entry);
        }
        f.instruction(&I::LocalGet(0)).instruction(&I::End);
        f
    }
}

impl wasm_encoder::reencode::Reencode for Instrument {
    type Error = std::convert::Infallible;

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> ReencodeResult<()> {
        wasm_encoder::reencode::utils::parse_type_section(self, types, section)?;
        types.ty().function([], [wasm_encoder::ValType::I64]);
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        functions: &mut wasm_encoder::FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> ReencodeResult<()> {
        wasm_encoder::reencode::utils::parse_function_section(self, functions, section)?;
        functions.function(self.holds.types);
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut wasm_encoder::ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> ReencodeResult<()> {
        wasm_encoder::reencode::utils::parse_export_section(self, exports, section)?;
        exports.export(STATE, wasm_encoder::ExportKind::Func, self.holds.funcs);
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> ReencodeResult<()> {
        wasm_encoder::reencode::utils::parse_code_section(self, code, section)?;
        code.function(&self.state_function());
        Ok(())
    }

    fn global_type(
        &mut self,
        ty: wasmparser::GlobalType,
    ) -> ReencodeResult<wasm_encoder::GlobalType> {
        let ty = wasm_encoder::reencode::utils::global_type(self, ty)?;
        Ok(wasm_encoder::GlobalType {
            mutable: ty.mutable && !self.freeze,
            ..ty
        })
    }

    fn instruction<'a>(
        &mut self,
        op: wasmparser::Operator<'a>,
    ) -> ReencodeResult<wasm_encoder::Instruction<'a>> {
        match op {
            wasmparser::Operator::GlobalSet { .. } if self.freeze => {
                Ok(wasm_encoder::Instruction::Drop)
            }
            op => wasm_encoder::reencode::utils::instruction(self, op),
        }
    }
}

/// `wasm` with the [`STATE`] export (see [`Instrument`]).
fn instrument(wasm: &[u8], freeze: bool) -> Option<Vec<u8>> {
    use wasm_encoder::reencode::Reencode;
    let mut holds = Holdings::default();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            wasmparser::Payload::TypeSection(types) => {
                for group in types {
                    holds.types += group.ok()?.types().len() as u32;
                }
            }
            wasmparser::Payload::ImportSection(imports) if imports.count() > 0 => return None,
            wasmparser::Payload::FunctionSection(funcs) => holds.funcs = funcs.count(),
            wasmparser::Payload::GlobalSection(globals) => {
                for global in globals {
                    holds.globals.push(global.ok()?.ty.content_type);
                }
            }
            wasmparser::Payload::MemorySection(memories) => holds.memory = memories.count() > 0,
            wasmparser::Payload::TableSection(tables) => holds.tables = tables.count(),
            _ => {}
        }
    }
    let mut module = wasm_encoder::Module::new();
    Instrument { freeze, holds }
        .parse_core_module(&mut module, wasmparser::Parser::new(0), wasm)
        .ok()?;
    Some(module.finish())
}

#[test]
fn hostile_modules_are_taken_or_refused_in_time_and_never_leak() {
    let rt = Runtime::new(Default::default()).unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        max_processes: 8,
        ..SandboxConfig::default()
    })
    .unwrap();
    let node = rt.node();
    let (mut taken, mut refused, mut ran) = (0, 0, 0);
    for seed in 0..cases() as u64 {
        let bytes = module(seed, None, false);
        if bytes.is_empty() {
            continue;
        }
        let name = format!("m{seed}");
        let started = Instant::now();
        let loaded = rt.block_on(sandbox.upgrade(&name, bytes, None));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "module {seed} took {:?}",
            started.elapsed()
        );
        let Ok(_) = loaded else {
            refused += 1;
            continue;
        };
        taken += 1;
        // Run each exported function that takes only integers, briefly.
        let info = sandbox
            .modules()
            .into_iter()
            .find(|m| m.name == name)
            .unwrap();
        for f in info.functions.iter().take(3) {
            let (fname, sig) = f.split_once('(').unwrap();
            let params = sig.split(')').next().unwrap();
            if params
                .split(", ")
                .any(|p| !p.is_empty() && p != "i64" && p != "i32")
            {
                continue;
            }
            let arity = params.split(", ").filter(|p| !p.is_empty()).count();
            let Ok(task) = sandbox.spawn(&node, &name, fname, vec![7; arity], SpawnOptions::new())
            else {
                continue;
            };
            ran += 1;
            let pid = task.pid().clone();
            let outcome = rt.block_on(task.join_timeout(Duration::from_millis(200)));
            if outcome.is_err() {
                node.kill(&pid);
            }
        }
    }
    // Every slot came back: the sandbox takes as many guests as before.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running: usize = sandbox
            .modules()
            .iter()
            .flat_map(|m| m.versions.iter().map(|(_, n)| n))
            .sum();
        if running == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{running} guests never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    sandbox
        .load(
            "probe",
            br#"(module (func (export "one") (result i64) (i64.const 1)))"#,
        )
        .unwrap();
    for _ in 0..8 {
        let task = sandbox
            .spawn(&node, "probe", "one", vec![], SpawnOptions::new())
            .unwrap();
        assert_eq!(rt.block_on(task.join()).unwrap().values, vec![1]);
    }
    eprintln!("hostile modules: {taken} taken, {refused} refused, {ran} functions run");
    assert!(taken + refused > 0);
}

/// Every call of a generated module that declares itself reusable must
/// return what a fresh instance returns: the first call of each function runs
/// on a fresh instance, later ones on a kept one where the sandbox keeps any.
#[test]
fn reused_instances_answer_as_fresh_ones() {
    let shape = wat::parse_str(
        r#"(module
             (func (export "owl_reusable"))
             (func (export "f") (param i64) (result i64) unreachable)
             (func (export "g") (param i64 i64) (result i64 i64) unreachable))"#,
    )
    .unwrap();
    let rt = Runtime::new(Default::default()).unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        max_processes: 8,
        memory_limit: 1 << 20,
        ..SandboxConfig::default()
    })
    .unwrap();
    let node = rt.node();
    let started = Instant::now();
    let (mut reused, mut fresh, mut compared) = (0, 0, 0);
    for seed in 0..cases() as u64 {
        // Half of them without state, where the sandbox should reuse.
        let bytes = module(seed ^ 0x5eed, Some(&shape), seed.is_multiple_of(2));
        let name = format!("r{seed}");
        if bytes.is_empty() || sandbox.load(&name, &bytes).is_err() {
            continue;
        }
        // Endless loops end at the budget, traps at once: only answers
        // that came back are compared (a budget can end one call of a slow
        // function and not the next).
        sandbox.set_cpu_budget(&name, Some(Duration::from_millis(50)));
        let run = |function: &str, args: Vec<i64>| {
            let task = sandbox
                .spawn(&node, &name, function, args, SpawnOptions::new())
                .unwrap();
            let pid = task.pid().clone();
            let out = rt.block_on(task.join_timeout(Duration::from_secs(20)));
            if out.is_err() {
                node.kill(&pid);
            }
            out.ok().map(|out| out.values)
        };
        // The very first call of a module runs on a fresh instance.
        let Some(fresh_state) = run(STATE, vec![]) else {
            continue;
        };
        let mut answers: [Option<Vec<i64>>; 2] = [None, None];
        for round in 0..3 {
            for (i, (function, args)) in
                [("f", vec![7]), ("g", vec![7, -3])].into_iter().enumerate()
            {
                if let Some(answer) = run(function, args) {
                    match &answers[i] {
                        None => answers[i] = Some(answer),
                        Some(first) => {
                            compared += 1;
                            assert_eq!(
                                &answer, first,
                                "module {seed}, {function} call {round}: answered differently"
                            );
                        }
                    }
                }
                // Whatever the call left behind, the next call starts clean.
                if let Some(state) = run(STATE, vec![]) {
                    compared += 1;
                    assert_eq!(
                        state, fresh_state,
                        "module {seed}: after {function}, call {round}, a call started on state a fresh instance does not have"
                    );
                }
            }
        }
        let module = sandbox
            .modules()
            .into_iter()
            .find(|m| m.name == name)
            .unwrap();
        if module.reuses_instances {
            reused += 1;
        } else {
            fresh += 1;
        }
    }
    eprintln!(
        "reuse fuzz: {reused} modules reused, {fresh} refused for their state, \
         {compared} answers compared in {:?}",
        started.elapsed()
    );
    assert!(reused > 0 && fresh > 0, "{reused} reused, {fresh} refused");
}
