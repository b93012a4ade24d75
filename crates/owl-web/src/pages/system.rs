//! The system dashboard, `/dashboard/system`: the node at a glance, live,
//! with charts of its last five minutes — kept by the node (see
//! `owl_system::operator::SystemHistory`), so they are full the moment the
//! page opens: memory by kind, utilization, processes, spawns and crashes,
//! run queues, the machine's CPU and memory. Below: the figures now, the
//! open connections and live pages, the board's store, the guest modules.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use owl_runtime::{Message, Process};
use owl_system::Services;
use owl_system::at::At;
use owl_system::operator::{SystemPoint, SystemStats};

use super::format::{bytes, duration, thousands};
use super::node_menu;
use crate::accept::Open;
use crate::live::{self, ClientEvent, LiveConnect, LiveView};
use crate::{Web, layout};

const REFRESH: Duration = Duration::from_secs(1);

struct Tick;

/// `GET /dashboard/system`.
pub(crate) async fn index(State(web): State<Web>) -> Markup {
    let menu = node_menu::menu(&web);
    let chart = |title: &str, now: &str, id: &str| {
        html! { figure { figcaption { (title) " " span.now id=(now) {} } div.chart id=(id) {} } }
    };
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
                (chart("Memory (MB): resident, guests, board", "now-mem", "chart-mem"))
                (chart("Utilization (%): schedulers and guest threads", "now-util-sys", "chart-util-sys"))
                (chart("Processes alive", "now-procs", "chart-procs"))
                (chart("Spawned and crashed per second", "now-rates", "chart-rates"))
                (chart("Run queues: processes waiting for a scheduler", "now-queues", "chart-queues"))
                (chart("The machine (%): CPU busy, memory used", "now-host", "chart-host"))
            }
            template #system-data data-seq="0" {}
            div #system hx-swap-oob="morph" { p.hint { "loading…" } }
        }
    };
    layout::with_charts("System", "/dashboard/system", main)
}

/// `GET /live/dashboard/system`.
pub(crate) async fn live(State(web): State<Web>, connect: LiveConnect) -> Response {
    let (services, connections) = (web.services.clone(), web.connections.clone());
    let public = web.auth.public_dashboards();
    live::upgrade(connect, &web, "/dashboard/system", move || {
        SystemPage::new(services.clone(), connections.clone(), public)
    })
}

/// The live page's session state.
struct SystemPage {
    services: Services,
    /// This node's open HTTP connections.
    connections: Arc<Open>,
    /// The node shown.
    at: At,
    /// What it answered last.
    stats: Result<SystemStats, String>,
    /// Anyone may watch (`--public-dashboards`): a logout ends nothing.
    public: bool,
    /// The node's history, to send whole in the next frame (on opening,
    /// or after switching node).
    history: RefCell<Option<Vec<SystemPoint>>>,
    /// The time of the newest point sent.
    sent_up_to: Cell<f64>,
    seq: Cell<u64>,
}

/// A point as the page's script draws it: `[unix s, resident MB, guests
/// MB, board MB, schedulers %, guest threads %, processes, spawned/s,
/// crashed/s, run queue, background run queue, machine CPU %, machine
/// memory %]` (`null` where the node could not tell).
fn row(p: &SystemPoint) -> String {
    let mb = |b: u64| format!("{:.1}", b as f64 / 1e6);
    let share = |s: Option<f64>| s.map_or("null".to_string(), |s| format!("{:.1}", s * 100.0));
    format!(
        "[{:.1},{},{},{},{:.1},{:.1},{},{:.1},{:.1},{},{},{},{}]",
        p.unix_s,
        mb(p.memory_rss_bytes),
        mb(p.guest_memory_bytes),
        mb(p.board_memory_bytes),
        p.utilization * 100.0,
        p.guest_utilization * 100.0,
        p.processes,
        p.spawned_per_s,
        p.crashed_per_s,
        p.run_queue,
        p.run_queue_background,
        share(p.host_cpu),
        share(p.host_memory.map(|m| m.used_share())),
    )
}

impl SystemPage {
    fn new(services: Services, connections: Arc<Open>, public: bool) -> SystemPage {
        SystemPage {
            stats: Ok(services.stats()),
            history: RefCell::new(Some(services.operator.history().points())),
            services,
            connections,
            at: At::Local,
            public,
            sent_up_to: Cell::new(f64::MIN),
            seq: Cell::new(0),
        }
    }

    /// The points to send: the whole history after opening or switching,
    /// then each new point as it comes.
    fn data(&self) -> Markup {
        let history = self.history.borrow_mut().take();
        let (kind, points): (&str, Vec<&SystemPoint>) = match &history {
            Some(history) => ("history", history.iter().collect()),
            None => (
                "points",
                self.stats
                    .as_ref()
                    .ok()
                    .and_then(|s| s.latest.as_ref())
                    .filter(|p| p.unix_s > self.sent_up_to.get())
                    .into_iter()
                    .collect(),
            ),
        };
        if kind == "points" && points.is_empty() {
            return html! {};
        }
        if let Some(last) = points.last() {
            self.sent_up_to.set(last.unix_s);
        }
        let rows: Vec<String> = points.into_iter().map(row).collect();
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

    /// Another node shown: its own history replaces this one's.
    async fn switch(&mut self, at: At) {
        self.at = at;
        self.sent_up_to.set(f64::MIN);
        let history = self.services.at(self.at.clone()).history().await;
        *self.history.get_mut() = Some(history.unwrap_or_default());
        self.refresh().await;
    }

    fn memory(&self, s: &SystemStats) -> Markup {
        let Some(p) = &s.latest else {
            return html! { (bytes(s.memory_rss_bytes)) };
        };
        let other = p
            .memory_rss_bytes
            .saturating_sub(p.guest_memory_bytes + p.board_memory_bytes);
        html! {
            (bytes(p.memory_rss_bytes)) " resident: guests' linear memory " (bytes(p.guest_memory_bytes))
            ", the board's SQLite " (bytes(p.board_memory_bytes))
            ", everything else " (bytes(other)) " (processes, pages, the runtime, code)"
        }
    }

    fn machine(&self, s: &SystemStats) -> Markup {
        let p = s.latest.as_ref();
        html! {
            @if let Some(cpu) = p.and_then(|p| p.host_cpu) {
                "CPU " (format!("{:.0}%", cpu * 100.0)) " busy (all its cores, every program); "
            }
            @if let Some(m) = p.and_then(|p| p.host_memory) {
                "memory " (bytes(m.total - m.available.min(m.total))) " of " (bytes(m.total)) " in use; "
            }
            @if let Some(d) = s.data_disk {
                "disk of the data directory " (bytes(d.available)) " free of " (bytes(d.total))
            }
        }
    }

    /// Open connections and live pages (LiveDashboard's Sockets and Ports).
    fn sockets(&self, s: &SystemStats) -> Markup {
        let mut pages: Vec<(&str, usize)> = s
            .by_label
            .iter()
            .filter_map(|l| Some((l.label.strip_prefix(live::SESSION_LABEL)?, l.count)))
            .filter(|(page, _)| page.starts_with('/'))
            .collect();
        pages.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let total: usize = pages.iter().map(|(_, n)| n).sum();
        html! {
            h2 { "Connections and live pages" }
            @if matches!(self.at, At::Local) {
                p { (thousands(self.connections.count() as u64)) " HTTP connections open; "
                    (thousands(total as u64)) " live pages (one WebSocket and one session process each)." }
            } @else {
                p { (thousands(total as u64)) " live pages (one WebSocket and one session process each)." }
            }
            div.table-wrap { table {
                thead { tr { th { "page" } th { "live sessions" } } }
                tbody { @for (page, n) in &pages { tr { td { code { (page) } } td { (thousands(*n as u64)) } } } }
            } }
        }
    }

    fn board(&self, s: &SystemStats) -> Markup {
        let Some(b) = &s.board else {
            return html! {};
        };
        html! {
            h2 { "The board's store" }
            div.table-wrap { table.info {
                tr { th { "where" } td { (b.location) } }
                @if let Some(size) = b.bytes_on_disk { tr { th { "on disk" } td { (bytes(size)) " (database and write-ahead log)" } } }
                tr { th { "memory" } td { (bytes(b.memory_bytes)) " held by SQLite in this node" } }
                @if !b.posts.is_empty() {
                    tr { th { "posts" } td {
                        @for (i, (topic, n)) in b.posts.iter().enumerate() {
                            @if i > 0 { ", " }
                            (topic) " " (thousands(*n))
                        }
                    } }
                }
            } }
        }
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
        let queues = s
            .latest
            .as_ref()
            .map(|p| (p.run_queue, p.run_queue_background));
        html! {
            (self.data())
            div #system hx-swap-oob="morph" {
                @if let Some(node) = self.at.name() { p.hint { "Node " strong { (node) } ", over the cluster." } }
                div.table-wrap { table.info {
                    tr { th { "uptime" } td { (duration(std::time::Duration::from_secs_f64(s.uptime_s.max(0.0)))) } }
                    tr { th { "processes" } td { (thousands(s.processes as u64)) " alive; " (thousands(s.spawned)) " spawned, " (thousands(s.exited)) " exited, " (thousands(s.crashed)) " crashed since start" } }
                    tr { th { "memory" } td { (self.memory(s)) } }
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
                    @if let Some((normal, background)) = queues {
                        tr { th { "run queues" } td { (thousands(normal)) " waiting for a scheduler, " (thousands(background)) " for a background one" } }
                    }
                    tr { th { "the machine" } td { (self.machine(s)) } }
                } }
                (self.sockets(s))
                (self.board(s))
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
            Ok(at) => self.switch(at).await,
            Err(e) => self.stats = Err(e.to_string()),
        }
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
