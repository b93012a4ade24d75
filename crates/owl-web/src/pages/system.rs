//! The system dashboard, `/dashboard/system`: the node at a glance, live,
//! with charts of the last five minutes it was watched (memory, utilization,
//! processes, spawns and crashes per second).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
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
/// Points the charts keep: five minutes at one a second.
const HISTORY: usize = 300;

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
            div #system-charts .charts {
                figure { figcaption { "Memory, resident (MB) " span.now #now-mem {} } div #chart-mem .chart {} }
                figure { figcaption { "Utilization (%): schedulers and guest threads " span.now #now-util-sys {} } div #chart-util-sys .chart {} }
                figure { figcaption { "Processes alive " span.now #now-procs {} } div #chart-procs .chart {} }
                figure { figcaption { "Spawned and crashed per second " span.now #now-rates {} } div #chart-rates .chart {} }
            }
            template #system-data data-seq="0" {}
            div #system hx-swap-oob="morph" { p.hint { "loading…" } }
        }
    };
    layout::with_charts("System", "/dashboard/system", main)
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
    /// The charts' points since the page opened (or switched node):
    /// `[unix s, memory MB, utilization %, guest %, processes, spawned/s,
    /// crashed/s]`.
    history: VecDeque<[f64; 7]>,
    /// Points not sent yet; the first frame sends the whole history.
    unsent: RefCell<Vec<[f64; 7]>>,
    history_sent: Cell<bool>,
    seq: Cell<u64>,
    /// The counters at the last point, for rates.
    last: Option<(u64, u64, std::time::Instant)>,
}

impl SystemPage {
    fn new(services: Services, public: bool) -> SystemPage {
        SystemPage {
            stats: Ok(services.operator.stats()),
            services,
            at: At::Local,
            public,
            history: VecDeque::with_capacity(HISTORY),
            unsent: RefCell::new(Vec::new()),
            history_sent: Cell::new(false),
            seq: Cell::new(0),
            last: None,
        }
    }

    /// Adds the latest figures to the charts' history.
    fn record(&mut self) {
        let Ok(s) = &self.stats else {
            return;
        };
        let now = std::time::Instant::now();
        let rates = match self.last {
            Some((spawned, crashed, at)) => {
                let secs = now.duration_since(at).as_secs_f64().max(1e-3);
                (
                    s.spawned.saturating_sub(spawned) as f64 / secs,
                    s.crashed.saturating_sub(crashed) as f64 / secs,
                )
            }
            None => (0.0, 0.0),
        };
        self.last = Some((s.spawned, s.crashed, now));
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let point = [
            unix,
            s.memory_rss_bytes as f64 / 1e6,
            s.utilization * 100.0,
            s.guest_utilization * 100.0,
            s.processes as f64,
            rates.0,
            rates.1,
        ];
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(point);
        self.unsent.borrow_mut().push(point);
    }

    /// Another node shown: its charts start afresh.
    fn forget(&mut self) {
        self.history.clear();
        self.unsent.borrow_mut().clear();
        self.history_sent.set(false);
        self.last = None;
    }

    /// The points to send (all at first, then the new ones), for the
    /// page's script to draw.
    fn data(&self) -> Markup {
        let (kind, points): (&str, Vec<[f64; 7]>) = if self.history_sent.replace(true) {
            ("points", std::mem::take(&mut *self.unsent.borrow_mut()))
        } else {
            self.unsent.borrow_mut().clear();
            ("history", self.history.iter().copied().collect())
        };
        let rows: Vec<String> = points
            .iter()
            .map(|p| {
                format!(
                    "[{:.1},{:.1},{:.1},{:.1},{:.0},{:.1},{:.1}]",
                    p[0], p[1], p[2], p[3], p[4], p[5], p[6]
                )
            })
            .collect();
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        html! {
            template #system-data hx-swap-oob="true" data-seq=(seq) data-kind=(kind)
                data-json=(format!("[{}]", rows.join(","))) {}
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
            (self.data())
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
            Ok(at) => {
                self.at = at;
                self.forget();
            }
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
            self.record();
            return true;
        }
        false
    }
}
