//! The talk's guests on integers of any size: both versions' `sum_digits`
//! against exact answers, through the math service as the pages use it.

use std::time::Duration;

use owl_runtime::supervisor::{Strategy, Supervisor, SupervisorSpec};
use owl_runtime::{ExitReason, Node, Runtime, SpawnOptions};
use owl_sandbox::{Sandbox, SandboxConfig};
use owl_system::math::{
    self, Client, FUNCTION_DIGITS, Input, MathConfig, MathService, Outcome, parse_input,
};

fn sandbox() -> (Runtime, Sandbox, Node) {
    let rt = Runtime::new(Default::default()).unwrap();
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let node = rt.node();
    (rt, sandbox, node)
}

/// `sum_digits` of the `math` module now loaded, on `digits`.
fn sum_digits(rt: &Runtime, sandbox: &Sandbox, node: &Node, digits: &str) -> Outcome {
    let task = sandbox
        .spawn_bytes(
            node,
            math::MODULE,
            FUNCTION_DIGITS,
            digits.as_bytes().to_vec(),
            SpawnOptions::new(),
        )
        .unwrap();
    match rt.block_on(task.join()) {
        Ok(output) => Outcome::from_output(&output),
        Err(reason) => Outcome::Crashed(reason),
    }
}

fn sum(digits: &str) -> Outcome {
    Outcome::Sum(digits.to_string())
}

/// n(n+1)/2 for n < 2^64, exactly, in u128.
fn reference(n: u64) -> Outcome {
    let n = u128::from(n);
    sum(&(n * (n + 1) / 2).to_string())
}

#[test]
fn the_fixed_guest_sums_integers_of_any_size_exactly() {
    let (rt, sandbox, node) = sandbox();
    sandbox
        .load(math::MODULE, math::GUEST_FIXED.as_bytes())
        .unwrap();
    // Around every limb boundary (nine digits), 64 bits, and random values.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut cases: Vec<u64> = vec![0, 1, 2, 9, 10, 99, 100, 13, u64::MAX, 1 << 63];
    for k in 1..=19u32 {
        cases.push(10u64.pow(k) - 1);
        cases.push(10u64.pow(k));
    }
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cases.push(x >> (x % 64));
    }
    for n in cases {
        assert_eq!(
            sum_digits(&rt, &sandbox, &node, &n.to_string()),
            reference(n),
            "n = {n}"
        );
    }
    // Far beyond 128 bits, against closed forms: for n = 10^k − 1 the sum
    // is 4 9…9 5 0…0, for n = 10^k it is 5 0…0 5 0…0.
    for k in [20, 27, 28, 100, 500, 999, 1000] {
        let nines = "9".repeat(k);
        let expected = format!("4{}5{}", "9".repeat(k - 1), "0".repeat(k - 1));
        assert_eq!(
            sum_digits(&rt, &sandbox, &node, &nines),
            sum(&expected),
            "10^{k} - 1"
        );
        let power = format!("1{}", "0".repeat(k));
        let expected = format!("5{}5{}", "0".repeat(k - 1), "0".repeat(k - 1));
        assert_eq!(
            sum_digits(&rt, &sandbox, &node, &power),
            sum(&expected),
            "10^{k}"
        );
    }
    // A negative number, or anything but digits, is invalid input.
    for bad in ["-123456789012345678901234567890", "12a", "", "-"] {
        assert_eq!(
            sum_digits(&rt, &sandbox, &node, bad),
            Outcome::Invalid,
            "{bad:?}"
        );
    }
}

#[test]
fn version_one_keeps_its_three_bugs_on_digits_too() {
    let (rt, sandbox, node) = sandbox();
    sandbox
        .load(math::MODULE, math::GUEST_V1.as_bytes())
        .unwrap();
    // Correct where its loop ends (its sum carrying into a second limb)...
    for n in [1u64, 2, 5, 100, 12345, 100_000] {
        assert_eq!(
            sum_digits(&rt, &sandbox, &node, &n.to_string()),
            reference(n),
            "n = {n}"
        );
    }
    // ...13 crashes...
    assert!(matches!(
        sum_digits(&rt, &sandbox, &node, "13"),
        Outcome::Crashed(ExitReason::Error(e)) if e.contains("unreachable")
    ));
    // ...and a negative or a huge n runs until its CPU budget ends it.
    sandbox.set_cpu_budget(math::MODULE, Some(Duration::from_millis(50)));
    for runaway in [
        "-123456789012345678901234567890",
        "123456789012345678901234567890",
    ] {
        assert_eq!(
            sum_digits(&rt, &sandbox, &node, runaway),
            Outcome::Crashed(ExitReason::CpuLimit),
            "{runaway}"
        );
    }
}

#[test]
fn the_math_service_answers_a_huge_input_exactly_after_the_fix() {
    let (rt, sandbox, node) = sandbox();
    sandbox
        .load(math::MODULE, math::GUEST_FIXED.as_bytes())
        .unwrap();
    let math = MathService::new(sandbox, MathConfig::default()).unwrap();
    let input = parse_input("123456789012345678901234567890").unwrap();
    assert_eq!(input.to_i64(), None, "beyond 64 bits: the digits path");
    let outcomes = rt.block_on(async move {
        let mut spec = SupervisorSpec::new(Strategy::OneForOne);
        for child in math.child_specs() {
            spec = spec.child(child);
        }
        let _root = Supervisor::start(&node, spec).await.unwrap();
        let asker = node.spawn_task(move |mut p| async move {
            let mut outcomes = Vec::new();
            for n in [input, Input::from(100)] {
                let pid = math
                    .start(&mut p, &n, &Client::named("test"))
                    .await
                    .unwrap();
                loop {
                    match MathService::settle(p.recv_any().await) {
                        Ok(settled) if settled.pid == pid => break outcomes.push(settled.outcome),
                        _ => continue,
                    }
                }
            }
            outcomes
        });
        asker.join().await.unwrap()
    });
    assert_eq!(
        outcomes,
        [
            sum("7620789376619418375247675781329827788257125439388126809995"),
            sum("5050")
        ]
    );
}
