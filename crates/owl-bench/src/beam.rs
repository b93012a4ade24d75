//! Runs the same workloads on the BEAM with `escript`, from Erlang scripts
//! embedded in the binary (sources in `bench/beam/`).

use std::process::Command;

use super::{Bench, Report};

const SCRIPTS: &[(&str, &str)] = &[
    ("spawn", include_str!("../../../bench/beam/spawn.escript")),
    ("ring", include_str!("../../../bench/beam/ring.escript")),
    (
        "spawn_calc",
        include_str!("../../../bench/beam/spawn_calc.escript"),
    ),
    ("load", include_str!("../../../bench/beam/load.escript")),
    (
        "fairness",
        include_str!("../../../bench/beam/fairness.escript"),
    ),
    ("dist", include_str!("../../../bench/beam/dist.escript")),
];

pub(crate) fn run(bench: &Bench, schedulers: usize) -> Result<Report, String> {
    let (script, args): (&str, Vec<String>) = match bench {
        Bench::Spawn { processes } => ("spawn", vec![processes.to_string()]),
        Bench::Ring { processes, rounds } => {
            ("ring", vec![processes.to_string(), rounds.to_string()])
        }
        Bench::SpawnCalc { processes, .. } => ("spawn_calc", vec![processes.to_string()]),
        Bench::Fairness { runaway, workers } => {
            ("fairness", vec![runaway.to_string(), workers.to_string()])
        }
        Bench::Load { workers, seconds } => {
            ("load", vec![workers.to_string(), seconds.to_string()])
        }
        Bench::Dist {
            pings,
            senders,
            each,
            monitors,
        } => (
            "dist",
            [pings, senders, each, monitors]
                .iter()
                .map(|n| n.to_string())
                .collect(),
        ),
        Bench::Supervisor { .. } | Bench::Observe { .. } | Bench::DistPeer { .. } => {
            return Err("no BEAM script for this benchmark".into());
        }
    };
    let source = SCRIPTS
        .iter()
        .find(|(n, _)| *n == script)
        .map(|(_, s)| *s)
        .expect("script embedded");
    let path =
        std::env::temp_dir().join(format!("owl-bench-{}-{script}.escript", std::process::id()));
    std::fs::write(&path, source).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let output = Command::new("escript")
        .arg(&path)
        .args(&args)
        .env("ERL_FLAGS", format!("+S {schedulers}:{schedulers}"))
        .output();
    let _ = std::fs::remove_file(&path);
    let output = output.map_err(|e| format!("escript not runnable ({e}); install erlang-base"))?;
    if !output.status.success() {
        return Err(format!(
            "escript failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or("escript printed no result")?;
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("bad escript output {line:?}: {e}"))?;
    let obj = value.as_object().ok_or("escript output is not an object")?;
    let name = obj.get("bench").and_then(|b| b.as_str()).unwrap_or(script);
    let mut report = Report::new(name, "beam");
    for (k, v) in obj {
        if let Some(n) = v.as_f64() {
            report = report.with(k, n);
        }
    }
    Ok(report)
}
