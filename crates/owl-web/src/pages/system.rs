//! The system dashboard, `/dashboard/system`: the node at a glance, live.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use owl_runtime::{Message, Process};
use owl_system::Services;
use owl_system::at::At;
use owl_system::operator::SystemStats;

use super::format::{bytes, duration, thousands};
use super::node_menu;
use crate::live::{self, ClientEvent, LiveConnect, LiveView};
use crate::{Web, layout};

const REFRESH: Duration = Duration::from_secs(1);

struct Tick;

/// `GET /dashboard/system`.
pub(crate) async fn index(State(web): State<Web>) -> Markup {
    let menu = node_menu::menu(&web);
    let main = html! {
        div hx-ext="ws,morph" ws-connect="/live/dashboard/system" {
            h1 { "System" }
            @if web.services.cluster.is_some() {
                form #system-node .inline ws-send hx-trigger="change" autocomplete="off" {
                    input type="hidden" name="event" value="node";
                    (menu)
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
pub(crate) async fn live(State(web): State<Web>, connect: LiveConnect) -> Response {
    let services = web.services.clone();
    let public = web.auth.public_dashboards();
    live::upgrade(connect, &web, "/dashboard/system", move || {
        SystemPage::new(services.clone(), public)
    })
}

/// The live page's session state.
struct SystemPage {
    services: Services,
    /// The node shown.
    at: At,
    /// What it answered last.
    stats: Result<SystemStats, String>,
    /// Anyone may watch (`--public-dashboards`): a logout ends nothing.
    public: bool,
}

impl SystemPage {
    fn new(services: Services, public: bool) -> SystemPage {
        SystemPage {
            stats: Ok(services.operator.stats()),
            services,
            at: At::Local,
            public,
        }
    }

    /// Asks the node shown for its figures (here or over the cluster: the
    /// same call, the same figures).
    async fn refresh(&mut self) {
        self.stats = self
            .services
            .at(self.at.clone())
            .stats()
            .await
            .map_err(|e| e.to_string());
    }
}

impl LiveView for SystemPage {
    fn revoke(&mut self) -> bool {
        self.public
    }

    fn mount(&mut self, ctx: &mut Process) {
        self.services
            .node
            .send_interval(ctx.pid(), REFRESH, || Tick);
    }

    fn render(&self) -> Markup {
        let s = match &self.stats {
            Ok(s) => s,
            Err(e) => return html! { div #system hx-swap-oob="morph" { p.hint.error { (e) } } },
        };
        html! {
            div #system hx-swap-oob="morph" {
                @if let Some(node) = self.at.name() { p.hint { "Node " strong { (node) } ", over the cluster." } }
                div.table-wrap { table.info {
                    tr { th { "uptime" } td { (duration(std::time::Duration::from_secs_f64(s.uptime_s.max(0.0)))) } }
                    tr { th { "processes" } td { (thousands(s.processes as u64)) " alive; " (thousands(s.spawned)) " spawned, " (thousands(s.exited)) " exited, " (thousands(s.crashed)) " crashed since start" } }
                    tr { th { "memory (resident)" } td { (bytes(s.memory_rss_bytes)) } }
                    tr { th { "schedulers" } td { (s.schedulers_online) " online of " (s.schedulers) " (the cores all of owl computes on)" } }
                    tr { th { "scheduler utilization" } td {
                        // The total counts the guest threads too; each
                        // scheduler's own figure does not, so say which is which.
                        (format!("{:.0}%", s.utilization * 100.0))
                        " of the cores online, guest threads included; the schedulers' own work:"
                        @for (i, u) in s.utilization_per_scheduler.iter().enumerate() {
                            @if i > 0 { "," }
                            " #" (i + 1) " " (format!("{:.0}%", u * 100.0))
                        }
                    } }
                    tr { th { "guest threads (sandboxed work)" } td {
                        (format!("{:.0}%", s.guest_utilization * 100.0))
                        " of " (s.guest_threads) " thread(s)"
                    } }
                } }
                h2 { "Processes by kind" }
                div.table-wrap { table {
                    thead { tr { th { "kind (label)" } th { "count" } } }
                    tbody { @for l in &s.by_label { tr { td { (l.label) } td { (thousands(l.count as u64)) } } } }
                } }
                h2 { "Guest modules" }
                div.table-wrap { table {
                    thead { tr { th { "module" } th { "current" } th { "versions (running)" } th { "calls: started / returned / crashed / killed" } th { "CPU budget" } th { "instances" } } }
                    tbody { @for m in &s.modules { tr {
                        td { (m.name) } td { "v" (m.current) }
                        td { @for v in &m.versions { "v" (v.version) " (" (v.running) ") " } }
                        td { (thousands(m.calls.started)) " / " (thousands(m.calls.returned)) " / " (thousands(m.calls.crashed)) " / " (thousands(m.calls.killed)) }
                        td { @match m.cpu_budget_s { Some(b) => (format!("{b} s per process")), None => "none" } }
                        td { @if m.reuses_instances { "reused (" (m.idle_instances) " idle)" } @else { "fresh for each call" } }
                    } } }
                } }
            }
        }
    }

    async fn handle_event(&mut self, _ctx: &mut Process, event: ClientEvent) -> bool {
        if event.name != "node" {
            return false;
        }
        match At::choose(&self.services, event.field("node")) {
            Ok(at) => self.at = at,
            Err(e) => {
                self.stats = Err(e.to_string());
                return true;
            }
        }
        self.refresh().await;
        true
    }

    async fn handle_info(&mut self, _ctx: &mut Process, msg: Message) -> bool {
        if msg.is::<Tick>() {
            self.refresh().await;
            return true;
        }
        false
    }
}
