//! The system dashboard, `/dashboard/system`: the node at a glance, live.

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use owl_runtime::{Message, Node, Process, SchedulerSample};
use owl_sandbox::Sandbox;
use owl_system::observe;

use super::processes::bytes;
use crate::live::{ClientEvent, LiveView};
use crate::{App, layout, pages};

const REFRESH: Duration = Duration::from_secs(1);

struct Tick;

/// `GET /dashboard/system`.
pub async fn index(State(app): State<App>, headers: HeaderMap) -> Response {
    if !app.auth.access(&headers).can_view() {
        return pages::login::required("/dashboard/system");
    }
    let main = html! {
        div hx-ext="ws,morph" ws-connect="/live/dashboard/system" {
            h1 { "System" }
            p #live-state .live-state aria-live="polite" { "connecting…" }
            p #live-notice .live-notice role="status" {}
            div #system hx-swap-oob="morph" { p.hint { "loading…" } }
        }
    };
    Html(layout::page("System", "/dashboard/system", main).into_string()).into_response()
}

/// The live page's session state.
pub struct SystemPage {
    node: Node,
    sandbox: Sandbox,
    previous: (SchedulerSample, SchedulerSample),
    stats: Option<observe::SystemStats>,
}

impl SystemPage {
    pub fn new(node: Node, sandbox: Sandbox) -> SystemPage {
        let previous = (node.scheduler_sample(), sandbox.guest_sample());
        SystemPage {
            node,
            sandbox,
            previous,
            stats: None,
        }
    }

    fn refresh(&mut self) {
        let now = (self.node.scheduler_sample(), self.sandbox.guest_sample());
        let utilization = now.0.utilization_since(&self.previous.0);
        let guests = now.1.utilization_since(&self.previous.1);
        self.previous = now;
        self.stats = Some(observe::snapshot(
            &self.node,
            &self.sandbox,
            utilization,
            guests,
        ));
    }
}

impl LiveView for SystemPage {
    fn mount(&mut self, ctx: &mut Process) {
        self.refresh();
        self.node.send_interval(ctx.pid(), REFRESH, || Tick);
    }

    fn render(&self) -> Markup {
        let Some(s) = &self.stats else {
            return html! { div #system hx-swap-oob="morph" {} };
        };
        html! {
            div #system hx-swap-oob="morph" {
                div.table-wrap { table.info {
                    tr { th { "uptime" } td { (format!("{:.0} s", s.uptime.as_secs_f64())) } }
                    tr { th { "processes" } td { (s.processes) " alive; " (s.spawned) " spawned, " (s.exited) " exited, " (s.crashed) " crashed since start" } }
                    tr { th { "memory (resident)" } td { (bytes(s.memory_rss)) } }
                    tr { th { "schedulers" } td { (s.schedulers_online) " online of " (s.schedulers) } }
                    tr { th { "scheduler utilization" } td {
                        (format!("{:.0}%", s.utilization.total * 100.0))
                        @for (i, u) in s.utilization.per_scheduler.iter().enumerate() {
                            " · #" (i + 1) ": " (format!("{:.0}%", u * 100.0))
                        }
                    } }
                    tr { th { "guest threads (sandboxed work)" } td {
                        (format!("{:.0}%", s.guest_utilization.total * 100.0))
                        " of " (s.guest_utilization.per_scheduler.len()) " thread(s)"
                    } }
                } }
                h2 { "Processes by kind" }
                div.table-wrap { table {
                    thead { tr { th { "kind (label)" } th { "count" } } }
                    tbody { @for (label, n) in &s.by_label { tr { td { (label) } td { (n) } } } }
                } }
                h2 { "Guest modules" }
                div.table-wrap { table {
                    thead { tr { th { "module" } th { "current" } th { "versions (running)" } th { "calls: started / returned / crashed / killed" } } }
                    tbody { @for m in &s.modules { tr {
                        td { (m.name) } td { "v" (m.current) }
                        td { @for (v, n) in &m.versions { "v" (v) " (" (n) ") " } }
                        td { (m.calls.started) " / " (m.calls.returned) " / " (m.calls.crashed) " / " (m.calls.killed) }
                    } } }
                } }
            }
        }
    }

    async fn handle_event(&mut self, _ctx: &mut Process, _event: ClientEvent) -> bool {
        false
    }

    async fn handle_info(&mut self, _ctx: &mut Process, msg: Message) -> bool {
        if msg.is::<Tick>() {
            self.refresh();
            return true;
        }
        false
    }
}
