//! The runaway example is the sandbox's tour; this keeps it true.

use std::process::Command;

#[test]
fn runaway_is_found_killed_and_fixed_live() {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("runaway");
    assert!(
        path.exists(),
        "example runaway was not built at {}",
        path.display()
    );
    let out = Command::new(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", out.status);
    assert!(
        stdout.contains("the v1 runaway still runs: true"),
        "{stdout}"
    );
    assert!(stdout.contains("it ended: Killed"), "{stdout}");
}
