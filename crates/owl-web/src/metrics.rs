//! `GET /metrics`: the node's figures in Prometheus' text format — the
//! same [`SystemStats`](owl_system::operator::SystemStats) the dashboards
//! and the console show. Utilization covers the last second (the look
//! every viewer shares), not the time since the previous scrape.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::Web;

/// `GET /metrics`.
pub(crate) async fn metrics(State(web): State<Web>) -> Response {
    let mut response = render(&web).await.into_response();
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

async fn render(web: &Web) -> String {
    let operator = &web.services.operator;
    let stats = operator.stats();
    let mut out = String::new();
    let one = |v: f64| vec![(String::new(), v)];

    family(
        &mut out,
        "owl_processes",
        "gauge",
        "Processes alive.",
        &one(stats.processes as f64),
    );
    family(
        &mut out,
        "owl_processes_spawned_total",
        "counter",
        "Processes spawned since start.",
        &one(stats.spawned as f64),
    );
    family(
        &mut out,
        "owl_processes_exited_total",
        "counter",
        "Processes ended since start.",
        &one(stats.exited as f64),
    );
    family(
        &mut out,
        "owl_processes_crashed_total",
        "counter",
        "Processes that crashed (panic, error, CPU budget).",
        &one(stats.crashed as f64),
    );
    family(
        &mut out,
        "owl_uptime_seconds",
        "gauge",
        "Time since the node started.",
        &one(stats.uptime_s),
    );
    family(
        &mut out,
        "owl_memory_resident_bytes",
        "gauge",
        "Resident memory of the OS process.",
        &one(stats.memory_rss_bytes as f64),
    );
    family(
        &mut out,
        "owl_utilization",
        "gauge",
        "Busy share of the cores online over the last second, sandboxed work included.",
        &one(stats.utilization),
    );
    let per: Vec<(String, f64)> = stats
        .utilization_per_scheduler
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("{{scheduler=\"{}\"}}", i + 1), *v))
        .collect();
    family(
        &mut out,
        "owl_scheduler_utilization",
        "gauge",
        "Busy fraction of each scheduler thread over the last second.",
        &per,
    );
    family(
        &mut out,
        "owl_guest_thread_utilization",
        "gauge",
        "Busy fraction of the guest threads (sandboxed work) over the last second.",
        &one(stats.guest_utilization),
    );
    family(
        &mut out,
        "owl_schedulers_online",
        "gauge",
        "Cores the node computes on.",
        &one(stats.schedulers_online as f64),
    );

    let math = operator.math();
    let calls = math.counts();
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
        "Calculations ended from outside (killed, purged, made room, orphaned, shut down).",
        &one(calls.killed as f64),
    );
    family(
        &mut out,
        "owl_calculations_refused_total",
        "counter",
        "Calculations refused at the limit (the client held its fair share, or the sandbox was full).",
        &one(math.refused() as f64),
    );
    family(
        &mut out,
        "owl_calculations_squeezed_total",
        "counter",
        "Calculations ended to make room for another client's (fair admission).",
        &one(math.squeezed() as f64),
    );
    family(
        &mut out,
        "owl_sandbox_admissions_refused_total",
        "counter",
        "Sandboxed spawns refused by the sandbox's own limit.",
        &one(operator.sandbox_refused() as f64),
    );
    let modules: Vec<(String, f64)> = stats
        .modules
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
    let restarts: Vec<(String, f64)> = operator
        .restarts()
        .await
        .into_iter()
        .map(|(id, n)| (format!("{{supervisor=\"{}\"}}", escape(&id)), n as f64))
        .collect();
    family(
        &mut out,
        "owl_supervisor_restarts_total",
        "counter",
        "Restarts each supervisor performed.",
        &restarts,
    );
    if let Some(dist) = &web.services.dist {
        distribution(&mut out, dist);
    }
    out
}

/// The node's traffic with the other nodes of its cluster.
fn distribution(out: &mut String, dist: &owl_cluster::dist::Dist) {
    let one = |v: u64| vec![(String::new(), v as f64)];
    let stats = dist.stats();
    let peers = dist.nodes();
    family(
        out,
        "owl_dist_peers_connected",
        "gauge",
        "Other nodes this node has a live connection to.",
        &one(peers.len() as u64),
    );
    let queued: Vec<(String, f64)> = peers
        .iter()
        .map(|node| {
            let bytes = dist.queued_bytes(node) as f64;
            (format!("{{node=\"{}\"}}", escape(node)), bytes)
        })
        .collect();
    family(
        out,
        "owl_dist_queued_bytes",
        "gauge",
        "Bytes waiting to go to each connected node (a slow peer shows here first).",
        &queued,
    );
    let counters = [
        (
            "owl_dist_frames_sent_total",
            "Frames sent to other nodes: messages, calls and their answers, signals, ticks.",
            stats.frames_sent,
        ),
        (
            "owl_dist_frames_received_total",
            "Frames received from other nodes.",
            stats.frames_received,
        ),
        (
            "owl_dist_direct_writes_total",
            "Frames their sender wrote at once, without waking the connection's writer.",
            stats.direct_writes,
        ),
        (
            "owl_dist_bulk_frames_total",
            "Large frames sent on bulk connections, a marker in their place on the main one.",
            stats.bulk_frames,
        ),
        (
            "owl_dist_undeliverable_total",
            "Messages that arrived for no process, or of a type unknown here.",
            stats.undeliverable,
        ),
        (
            "owl_dist_connections_refused_total",
            "Connections refused: a bad handshake, another cluster's secret, a malformed frame.",
            stats.refused,
        ),
    ];
    for (name, help, value) in counters {
        family(out, name, "counter", help, &one(value));
    }
    family(
        out,
        "owl_dist_remote_watches",
        "gauge",
        "Links and monitors this node's processes hold on remote processes.",
        &one(stats.watching),
    );
    family(
        out,
        "owl_dist_watched_here",
        "gauge",
        "Links and monitors remote processes hold on this node's processes.",
        &one(stats.watched_here),
    );
    family(
        out,
        "owl_dist_bulk_connections",
        "gauge",
        "Bulk connections up: each carries the large messages to one peer.",
        &one(stats.bulk_connections),
    );
}
