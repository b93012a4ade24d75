//! The `owl` binary as an operator runs it: benchmarks and the node's lifecycle.

use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{Served, http, owl};

/// Runs `owl bench ARGS --json` and returns the parsed result lines.
fn bench(args: &[&str]) -> Vec<serde_json::Value> {
    let out = owl()
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("owl runs");
    assert!(
        out.status.success(),
        "owl bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn number(v: &serde_json::Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing or not a number in {v}"))
}

#[test]
fn bench_spawn_reports_time_memory_and_teardown() {
    let lines = bench(&["spawn", "--processes", "20000"]);
    let r = &lines[0];
    assert_eq!(
        (r["bench"].as_str(), r["system"].as_str()),
        (Some("spawn"), Some("owl"))
    );
    assert_eq!(number(r, "processes"), 20000.0);
    assert!(number(r, "us_per_spawn") > 0.0);
    assert!(number(r, "bytes_per_process") > 0.0);
    assert!(number(r, "teardown_us_per_process") > 0.0);
    assert_eq!(number(r, "schedulers"), 1.0);
}

#[test]
fn bench_ring_and_spawn_calc_report_rates() {
    let ring = &bench(&[
        "ring",
        "--processes",
        "500",
        "--rounds",
        "20",
        "--schedulers",
        "2",
    ])[0];
    assert!(number(ring, "msgs_per_s") > 1000.0);
    assert_eq!(number(ring, "schedulers"), 2.0);
    let calc = &bench(&["spawn-calc", "--processes", "5000"])[0];
    assert!(number(calc, "procs_per_s") > 1000.0);
}

#[test]
fn bench_load_runs_the_workers_once_a_second() {
    let r = &bench(&["load", "--workers", "2000", "--seconds", "2"])[0];
    let rate = number(r, "jobs_per_s");
    assert!(
        (1000.0..=3000.0).contains(&rate),
        "2000 workers should do ~2000 jobs/s, got {rate}"
    );
    assert!(number(r, "cpu_cores") >= 0.0);
    assert!(number(r, "rss_mb") > 1.0);
}

#[test]
fn bench_compare_beam_adds_a_beam_line_when_erlang_is_installed() {
    let has_escript = Command::new("escript").arg("-h").output().is_ok();
    if !has_escript {
        eprintln!(
            "SKIPPED: escript not on PATH (apt-get install erlang-base to run the BEAM column)"
        );
        return;
    }
    let lines = bench(&[
        "ring",
        "--processes",
        "200",
        "--rounds",
        "5",
        "--compare-beam",
    ]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1]["system"].as_str(), Some("beam"));
    assert_eq!(lines[1]["bench"].as_str(), Some("ring"));
    assert!(number(&lines[1], "msgs_per_s") > 0.0);
}

#[test]
fn bench_rejects_bad_arguments_with_a_clear_error() {
    let out = owl()
        .args(["bench", "ring", "--schedulers", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--schedulers must be at least 1"));
    let out = owl().args(["bench", "nonsense"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn serve_starts_serves_the_web_system_and_stops_cleanly_on_sigterm() {
    let mut node = Served::start("serve-test");
    assert!(
        node.banner[0].starts_with("owl node up"),
        "{:?}",
        node.banner
    );
    assert!(node.data_dir.is_dir());
    let addr = node.addr().to_string();
    let addr = addr.as_str();

    // The sum page and the API answer; a runaway calculation is left running.
    let page = http(addr, "GET / HTTP/1.0\r\n\r\n");
    assert!(
        page.starts_with("HTTP/1.0 200") || page.starts_with("HTTP/1.1 200"),
        "{page}"
    );
    assert!(page.contains("∑(1..n)"));
    let body = r#"{"input":"-1"}"#;
    let request = format!(
        "POST /api/sum?wait_ms=0 HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = http(addr, &request);
    assert!(
        answer.contains("202") && answer.contains("\"running\""),
        "{answer}"
    );

    // A second node on the same port is refused plainly.
    let busy = owl().args(["serve", "--bind", addr]).output().unwrap();
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("cannot listen"));

    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(node.child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "owl serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn bench_fairness_and_sandboxed_spawn_calc_report_latencies_and_rates() {
    let r = &bench(&["fairness", "--runaway", "2", "--workers", "200"])[0];
    assert_eq!(r["bench"].as_str(), Some("fairness"));
    for field in [
        "p50_us",
        "p99_us",
        "max_us",
        "native_p99_us",
        "process_p99_us",
    ] {
        assert!(number(r, field) > 0.0, "{field} in {r}");
    }
    assert!(number(r, "p50_us") <= number(r, "p99_us"));
    assert!(number(r, "process_p50_us") <= number(r, "process_p99_us"));
    // The machine's stalls of a running thread, measured just before.
    let (stalls, median, lost) = (
        number(r, "machine_stalls_per_s"),
        number(r, "machine_stall_p50_us"),
        number(r, "machine_lost_pct"),
    );
    assert!(stalls >= 0.0 && (0.0..=100.0).contains(&lost), "{r}");
    assert!(
        if stalls > 0.0 {
            median >= 2.0
        } else {
            median == 0.0
        },
        "{r}"
    );
    let calc = &bench(&["spawn-calc", "--sandboxed", "--processes", "2000"])[0];
    assert_eq!(number(calc, "sandboxed"), 1.0);
    assert!(number(calc, "procs_per_s") > 100.0);
}
