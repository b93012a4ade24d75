//! The examples are documentation; these tests keep them true by running each
//! built example and checking what it tells its reader.

use std::path::PathBuf;
use std::process::Command;

/// `cargo test` builds the examples next to the test binaries' `deps/`.
fn example(name: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let dir: PathBuf = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "example {name} was not built at {}",
        path.display()
    );
    let out = Command::new(&path).env("NO_COLOR", "1").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn service_finishes_every_job_but_the_unlucky_one() {
    let out = example("service");
    assert!(out.contains("jobs done: 99"), "{out}");
}

#[test]
fn supervision_restarts_what_each_strategy_promises() {
    let out = example("supervision");
    assert!(
        out.contains(r#"OneForOne: killing b restarted ["b"]"#),
        "{out}"
    );
    assert!(
        out.contains(r#"OneForAll: killing b restarted ["a", "b", "c"]"#),
        "{out}"
    );
    assert!(
        out.contains(r#"RestForOne: killing b restarted ["b", "c"]"#),
        "{out}"
    );
    assert!(
        out.contains("escalation: the outer supervisor ended with Shutdown"),
        "{out}"
    );
}

#[test]
fn back_pressure_bounds_the_queue() {
    let out = example("back_pressure");
    assert!(out.contains("the queue never held more than 8"), "{out}");
}

#[test]
fn introspection_shows_trace_and_tree() {
    let out = example("introspection");
    assert!(out.contains("trace:"), "{out}");
    assert!(out.contains("└── jobs"), "{out}");
}

#[test]
fn the_pool_answers_every_caller_when_its_worker_reports() {
    let out = example("pool");
    assert!(out.contains("job 20: sum 210"), "{out}");
    assert!(out.contains("job 13 failed: panic: 13 is unlucky"), "{out}");
    assert!(out.contains("jobs done: 19, failed: 1"), "{out}");
}
