//! The service unit in deploy/ is one systemd accepts.

use std::process::Command;

#[test]
fn the_systemd_unit_verifies() {
    let Ok(which) = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
    else {
        panic!("no shell");
    };
    if !which.status.success() {
        let msg =
            "systemd-analyze is needed to check deploy/owl.service (apt-get install -y systemd)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("\n!!! SKIPPING the_systemd_unit_verifies: {msg} !!!\n");
        return;
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/owl.service"
    ))
    .unwrap();
    // The unit names the installed binary; verify it against the one built.
    let unit = unit.replace("/usr/local/bin/owl", env!("CARGO_BIN_EXE_owl"));
    for required in [
        "Restart=on-failure",
        "LimitNOFILE=",
        "DynamicUser=yes",
        "StateDirectory=owl",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(required), "the unit lacks {required}");
    }
    let dir = std::env::temp_dir().join(format!("owl-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("owl.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}
