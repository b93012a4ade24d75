//! `GET /metrics`: the node's figures in Prometheus' text format.
//! Scheduler utilization is measured between two scrapes (the first scrape
//! after start measures since the node started).

use std::fmt::Write;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use owl_runtime::supervisor::{SupervisorRef, TreeNode};
use owl_system::observe;

use crate::App;

const SUPERVISOR_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn metrics(State(app): State<App>, headers: HeaderMap) -> Response {
    if !app.auth.access(&headers).can_view() {
        return (
            StatusCode::UNAUTHORIZED,
            "metrics need the admin token (Authorization: Bearer …) unless the node runs with --public-dashboards\n",
        )
            .into_response();
    }
    let mut response = render(&app).await.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// One metric family: help, type, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn render(app: &App) -> String {
    let node = &app.node;
    let mut out = String::new();
    let one = |v: f64| vec![(String::new(), v)];

    family(
        &mut out,
        "owl_processes",
        "gauge",
        "Processes alive.",
        &one(node.process_count() as f64),
    );
    let (spawned, exited, crashed) = node.lifecycle_counts();
    family(
        &mut out,
        "owl_processes_spawned_total",
        "counter",
        "Processes spawned since start.",
        &one(spawned as f64),
    );
    family(
        &mut out,
        "owl_processes_exited_total",
        "counter",
        "Processes ended since start.",
        &one(exited as f64),
    );
    family(
        &mut out,
        "owl_processes_crashed_total",
        "counter",
        "Processes that crashed (panic, error, CPU budget).",
        &one(crashed as f64),
    );
    family(
        &mut out,
        "owl_uptime_seconds",
        "gauge",
        "Time since the node started.",
        &one(node.uptime().as_secs_f64()),
    );
    family(
        &mut out,
        "owl_memory_resident_bytes",
        "gauge",
        "Resident memory of the OS process.",
        &one(observe::resident_memory() as f64),
    );

    let now = (node.scheduler_sample(), app.math.sandbox().guest_sample());
    let utilization = {
        let mut last = app.metrics_sample.lock();
        let u = last.as_ref().map(|before| {
            (
                now.0.utilization_since(&before.0),
                now.1.utilization_since(&before.1),
            )
        });
        *last = Some(now);
        u
    };
    if let Some((u, guests)) = utilization {
        family(
            &mut out,
            "owl_guest_thread_utilization",
            "gauge",
            "Busy fraction of the guest threads (sandboxed work) since the previous scrape.",
            &one(guests.total),
        );
        let per: Vec<(String, f64)> = u
            .per_scheduler
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{{scheduler=\"{}\"}}", i + 1), *v))
            .collect();
        family(
            &mut out,
            "owl_scheduler_utilization",
            "gauge",
            "Busy fraction of each scheduler since the previous scrape.",
            &per,
        );
    }
    family(
        &mut out,
        "owl_schedulers_online",
        "gauge",
        "Schedulers allowed to run.",
        &one(node.schedulers_online() as f64),
    );

    let calls = app.math.counts();
    family(
        &mut out,
        "owl_calculations_started_total",
        "counter",
        "Calculations started.",
        &one(calls.started as f64),
    );
    family(
        &mut out,
        "owl_calculations_finished_total",
        "counter",
        "Calculations that returned a result.",
        &one(calls.returned as f64),
    );
    family(
        &mut out,
        "owl_calculations_crashed_total",
        "counter",
        "Calculations that crashed (trap, memory, CPU budget).",
        &one(calls.crashed as f64),
    );
    family(
        &mut out,
        "owl_calculations_killed_total",
        "counter",
        "Calculations ended from outside (killed, purged, shut down).",
        &one(calls.killed as f64),
    );
    family(
        &mut out,
        "owl_calculations_refused_total",
        "counter",
        "Calculations refused at the limit (overloaded).",
        &one(app.math.refused() as f64),
    );
    family(
        &mut out,
        "owl_sandbox_admissions_refused_total",
        "counter",
        "Sandboxed spawns refused by admission control.",
        &one(app.math.sandbox().refused() as f64),
    );

    let modules: Vec<(String, f64)> = app
        .math
        .sandbox()
        .modules()
        .iter()
        .map(|m| {
            (
                format!("{{module=\"{}\"}}", escape(&m.name)),
                f64::from(m.current),
            )
        })
        .collect();
    family(
        &mut out,
        "owl_module_version",
        "gauge",
        "Newest loaded version of each guest module.",
        &modules,
    );

    if let Some(root) = node.resolve(crate::ROOT) {
        let root = SupervisorRef::from_pid(root);
        if let Ok(tree) = owl_runtime::supervisor::tree(&root, SUPERVISOR_TIMEOUT).await {
            let mut restarts = Vec::new();
            supervisor_restarts(&tree, &mut restarts).await;
            family(
                &mut out,
                "owl_supervisor_restarts_total",
                "counter",
                "Restarts each supervisor performed.",
                &restarts,
            );
        }
    }
    out
}

/// Restart counts of every supervisor in the tree.
async fn supervisor_restarts(tree: &TreeNode, out: &mut Vec<(String, f64)>) {
    let mut stack = vec![tree];
    while let Some(node) = stack.pop() {
        if node.kind != owl_runtime::supervisor::ChildKind::Supervisor {
            continue;
        }
        if let Some(pid) = &node.pid
            && let Ok(counts) = SupervisorRef::from_pid(pid.clone())
                .count_children(SUPERVISOR_TIMEOUT)
                .await
        {
            out.push((
                format!("{{supervisor=\"{}\"}}", escape(&node.id)),
                counts.restarts as f64,
            ));
        }
        stack.extend(node.children.iter());
    }
}
