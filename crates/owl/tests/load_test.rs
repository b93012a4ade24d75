//! `owl load`, the talk's load test, against a real `owl serve`: its users
//! really arrive (the node runs their calculations), its report counts them,
//! and it refuses what it cannot do.

use std::time::{Duration, Instant};

mod common;
use common::{LIMIT, Served, owl};

fn load(node: &Served, args: &[&str]) -> serde_json::Value {
    let url = format!("http://{}", node.addr());
    let output = owl()
        .args(["load", "--url", &url, "--ramp", "1s", "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "owl load failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn running_calculations(node: &Served) -> u64 {
    node.ok(&["ps", "--filter", "math:sum(-1)"])["processes"]
        .as_array()
        .map_or(0, |list| list.len() as u64)
}

#[test]
fn live_users_arrive_and_their_runaways_run_on_the_node() {
    let node = Served::start("load-live");
    // `-1` runs away: the users' calculations stay on the node, countable.
    let report = load(&node, &["--users", "6", "--hold", "2s", "--input", "-1"]);
    assert_eq!(report["users_connected"], 6, "{report}");
    assert_eq!(report["submit_ok"], 6, "{report}");
    assert_eq!(report["submit_failed"], 0, "{report}");
    for probe in ["page", "live_sum", "api_sum"] {
        assert!(
            report[format!("{probe}_count")].as_u64().unwrap() >= 10,
            "{probe}: {report}"
        );
        assert!(report[format!("{probe}_p99_ms")].as_f64().unwrap() > 0.0);
    }
    // The node holds what the users started (calculations outlive pages).
    let deadline = Instant::now() + LIMIT;
    while running_calculations(&node) < 6 {
        assert!(
            Instant::now() < deadline,
            "the users' runaways are not running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn users_beyond_the_nodes_limit_are_reported_refused() {
    let node = Served::start_with("load-limit", &["--max-calculations", "3"]);
    // Eight visitors with a runaway each, three slots: each visitor holds
    // one, so no one gives a slot up and five are refused, as are the
    // probes' own sums — and the report says so, kind by kind.
    let report = load(&node, &["--users", "8", "--input", "-1", "--hold", "1s"]);
    assert_eq!(report["users_connected"], 8, "{report}");
    assert_eq!(report["submit_ok"], 3, "{report}");
    assert_eq!(report["submit_failed"], 5, "{report}");
    let errors = &report["errors"];
    assert_eq!(errors["not started (a limit)"], 5, "{report}");
    assert!(
        errors["probe live sum: refused: the server is at its limit of calculations"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{report}"
    );
    assert!(
        errors["probe api sum: HTTP 503"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{report}"
    );
}

#[test]
fn api_users_are_counted() {
    let node = Served::start("load-api");
    let report = load(
        &node,
        &[
            "--mode", "api", "--users", "5", "--input", "5", "--hold", "1s",
        ],
    );
    assert_eq!(report["users_connected"], 5, "{report}");
    assert_eq!(report["submit_ok"], 5, "{report}");
    assert_eq!(report["http_503"], 0, "{report}");
    // Each user's sum and each probe's ran on the node: 5 + 2 per probe round.
    let modules = node.ok(&["modules"]);
    let returned = modules["modules"][0]["calls"]["returned"].as_u64().unwrap();
    let probes = report["api_sum_count"].as_u64().unwrap();
    assert!(
        returned >= 5 + 2 * probes,
        "{returned} returned, {probes} probes: {modules}"
    );
}

#[test]
fn bad_arguments_are_refused_before_any_request() {
    for (args, says) in [
        (&["--users", "0"][..], "users"),
        (&["--users", "20000"][..], "users"),
        (&["--ramp", "forever"][..], "ramp"),
        (&["--url", "ftp://127.0.0.1:1"][..], "http"),
        (&["--mode", "storm"][..], "mode"),
    ] {
        let output = owl().arg("load").args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
