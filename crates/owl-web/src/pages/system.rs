//! The system dashboard, `/dashboard/system`: the node at a glance, live.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use owl_runtime::{Message, Process};
use owl_system::operator::{Meter, Operator, SystemStats};

use owl_cluster::Cluster;
use serde_json::Value;

use super::processes::bytes;
use crate::access::Viewer;
use crate::live::{self, ClientEvent, LiveConnect, LiveView};
use crate::peer;
use crate::{Web, layout};

const REFRESH: Duration = Duration::from_secs(1);

struct Tick;

/// `GET /dashboard/system`.
pub(crate) async fn index(_: Viewer, State(web): State<Web>) -> Markup {
    let nodes = peer::node_choices(&web);
    let main = html! {
        div hx-ext="ws,morph" ws-connect="/live/dashboard/system" {
            h1 { "System" }
            @if !nodes.is_empty() {
                form #system-node .inline ws-send hx-trigger="change" autocomplete="off" {
                    input type="hidden" name="event" value="node";
                    select #node name="node" aria-label="node" {
                        @for (value, label) in &nodes { option value=(value) { (label) } }
                    }
                }
            }
            p #live-state .live-state aria-live="polite" { "connecting…" }
            p #live-notice .live-notice role="status" {}
            div #system hx-swap-oob="morph" { p.hint { "loading…" } }
        }
    };
    layout::wide("System", "/dashboard/system", main)
}

/// `GET /live/dashboard/system`.
pub(crate) async fn live(_: Viewer, State(web): State<Web>, connect: LiveConnect) -> Response {
    let operator = web.services.operator.clone();
    let cluster = web.services.cluster.clone();
    let public = web.auth.public_dashboards();
    live::upgrade(connect, &web, "/dashboard/system", move || {
        SystemPage::new(operator.clone(), cluster.clone(), public)
    })
}

/// The live page's session state.
struct SystemPage {
    operator: Operator,
    meter: Meter,
    stats: Option<SystemStats>,
    cluster: Option<Cluster>,
    /// Another node's figures, when one is chosen: its name and what it sent.
    remote: Option<(String, Result<Value, String>)>,
    /// Anyone may watch (`--public-dashboards`): a logout ends nothing.
    public: bool,
}

impl SystemPage {
    fn new(operator: Operator, cluster: Option<Cluster>, public: bool) -> SystemPage {
        SystemPage {
            public,
            meter: operator.meter(),
            operator,
            stats: None,
            cluster,
            remote: None,
        }
    }

    fn refresh(&mut self) {
        self.stats = Some(self.operator.stats(&mut self.meter));
    }

    async fn refresh_remote(&mut self) {
        if let (Some(cluster), Some((node, figures))) = (&self.cluster, &mut self.remote) {
            *figures = peer::fetch(cluster, node, "/cluster/system", None).await;
        }
    }

    fn render_remote(node: &str, figures: &Result<Value, String>) -> Markup {
        html! {
            div #system hx-swap-oob="morph" {
                @match figures {
                    Err(e) => p.hint.error { (e) },
                    Ok(s) => {
                        p.hint { "Node " strong { (node) } ", over the cluster." }
                        div.table-wrap { table.info {
                            tr { th { "uptime" } td { (s["uptime_s"]) " s" } }
                            tr { th { "processes" } td { (s["processes"]) " alive; " (s["spawned"]) " spawned, " (s["exited"]) " exited, " (s["crashed"]) " crashed since start" } }
                            tr { th { "memory (resident)" } td { (bytes(s["memory_rss"].as_u64().unwrap_or(0))) } }
                            tr { th { "schedulers" } td { (s["schedulers_online"]) " online of " (s["schedulers"]) } }
                            tr { th { "scheduler utilization" } td { (format!("{:.0}%", s["utilization"].as_f64().unwrap_or(0.0) * 100.0)) } }
                        } }
                        h2 { "Processes by kind" }
                        div.table-wrap { table {
                            thead { tr { th { "kind (label)" } th { "count" } } }
                            tbody { @for pair in s["by_label"].as_array().into_iter().flatten() {
                                tr { td { (pair[0].as_str().unwrap_or("")) } td { (pair[1]) } }
                            } }
                        } }
                    }
                }
            }
        }
    }
}

impl LiveView for SystemPage {
    fn revoke(&mut self) -> bool {
        self.public
    }

    fn mount(&mut self, ctx: &mut Process) {
        self.refresh();
        self.operator
            .node()
            .send_interval(ctx.pid(), REFRESH, || Tick);
    }

    fn render(&self) -> Markup {
        if let Some((node, figures)) = &self.remote {
            return Self::render_remote(node, figures);
        }
        let Some(s) = &self.stats else {
            return html! { div #system hx-swap-oob="morph" {} };
        };
        html! {
            div #system hx-swap-oob="morph" {
                div.table-wrap { table.info {
                    tr { th { "uptime" } td { (format!("{:.0} s", s.uptime.as_secs_f64())) } }
                    tr { th { "processes" } td { (s.processes) " alive; " (s.spawned) " spawned, " (s.exited) " exited, " (s.crashed) " crashed since start" } }
                    tr { th { "memory (resident)" } td { (bytes(s.memory_rss)) } }
                    tr { th { "schedulers" } td { (s.schedulers_online) " online of " (s.schedulers) " (the cores all of owl computes on)" } }
                    tr { th { "scheduler utilization" } td {
                        (format!("{:.0}%", s.utilization.total * 100.0))
                        " of the cores online, sandboxed work included"
                        @for (i, u) in s.utilization.per_scheduler.iter().enumerate() {
                            " · #" (i + 1) ": " (format!("{:.0}%", u * 100.0))
                        }
                    } }
                    tr { th { "guest threads (sandboxed work)" } td {
                        (format!("{:.0}%", s.utilization.guests * 100.0))
                        " of " (s.utilization.guest_threads) " thread(s)"
                    } }
                } }
                h2 { "Processes by kind" }
                div.table-wrap { table {
                    thead { tr { th { "kind (label)" } th { "count" } } }
                    tbody { @for (label, n) in &s.by_label { tr { td { (label) } td { (n) } } } }
                } }
                h2 { "Guest modules" }
                div.table-wrap { table {
                    thead { tr { th { "module" } th { "current" } th { "versions (running)" } th { "calls: started / returned / crashed / killed" } th { "CPU budget" } } }
                    tbody { @for m in &s.modules { tr {
                        td { (m.name) } td { "v" (m.current) }
                        td { @for (v, n) in &m.versions { "v" (v) " (" (n) ") " } }
                        td { (m.calls.started) " / " (m.calls.returned) " / " (m.calls.crashed) " / " (m.calls.killed) }
                        td { @match m.cpu_budget { Some(b) => (format!("{} s per process", b.as_secs_f64())), None => "none" } }
                    } } }
                } }
            }
        }
    }

    async fn handle_event(&mut self, _ctx: &mut Process, event: ClientEvent) -> bool {
        if event.name != "node" {
            return false;
        }
        self.remote = peer::other_node(self.cluster.as_ref(), event.field("node"))
            .map(|node| (node, Err("loading…".into())));
        self.refresh_remote().await;
        true
    }

    async fn handle_info(&mut self, _ctx: &mut Process, msg: Message) -> bool {
        if msg.is::<Tick>() {
            self.refresh();
            self.refresh_remote().await;
            return true;
        }
        false
    }
}
