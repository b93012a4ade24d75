//! Hostile guest modules: valid WebAssembly generated at random (huge
//! memories, start functions, deep recursion, endless loops, many
//! functions). Loading them as an upgrade must end in time with a version or
//! a clear refusal, never a panic or a hang, and every generated function
//! the sandbox runs ends (returns, traps, or is killed) without leaking its
//! slot. `OWL_FUZZ_CASES` sets the number of modules (40 here).

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
/// shape and no imports, so the sandbox may take it.
fn module(seed: u64) -> Vec<u8> {
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
    wasm_smith::Module::new(config, &mut u)
        .map(|m| m.to_bytes())
        .unwrap_or_default()
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
        let bytes = module(seed);
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
