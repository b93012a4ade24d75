//! The process dashboard: `/dashboard/processes` (a live table, refreshed
//! every second) and `/dashboard/processes/{n}` (one process, with Kill).

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use owl_runtime::{Message, Process};
use owl_system::Services;
use owl_system::at::At;
use owl_system::operator::{ListQuery, Neighbour, ProcessDetail, ProcessList, SortKey, Stack};

use super::format::{bytes, duration, thousands};
use super::node_menu::{self, NodeQuery, node_suffix, pid_text};
use crate::guards::AdminForm;
use crate::live::{self, ClientEvent, LiveConnect, LiveView};
use crate::{Web, layout};

/// Rows the live table shows at first, and the choices beyond.
const ROWS: usize = 50;
const ROW_CHOICES: [usize; 4] = [50, 100, 500, 1_000];
/// The table refreshes every this many ticks (seconds); 0 is paused.
const REFRESH: Duration = Duration::from_secs(1);
const EVERY_CHOICES: [(u64, &str); 4] = [
    (1, "every 1 s"),
    (2, "every 2 s"),
    (5, "every 5 s"),
    (0, "paused"),
];

struct Tick;

/// `GET /dashboard/processes`.
pub(crate) async fn index(State(web): State<Web>) -> Markup {
    let sort_options = html! {
        @for key in SortKey::ALL {
            option value=(key.name()) selected[key == SortKey::Cpu] { (key.name()) }
        }
    };
    let main = html! {
        div hx-ext="ws,morph" ws-connect="/live/dashboard/processes" {
            h1 { "Processes" }
            form #proc-filter .inline ws-send hx-trigger="input delay:250ms, change, submit" autocomplete="off" {
                input type="hidden" name="event" value="filter";
                input #q name="q" type="search" placeholder="search pid, name, label, activity" aria-label="search";
                select #sort name="sort" aria-label="sort by" { (sort_options) }
                select #limit name="limit" aria-label="rows" {
                    @for n in ROW_CHOICES { option value=(n) selected[n == ROWS] { (n) " rows" } }
                }
                select #every name="every" aria-label="refresh" {
                    @for (n, title) in EVERY_CHOICES { option value=(n) selected[n == 1] { (title) } }
                }
                (node_menu::menu(&web))
            }
            p #live-state .live-state aria-live="polite" { "connecting…" }
            p #live-notice .live-notice role="status" {}
            div #proc-table hx-swap-oob="morph" { p.hint { "loading…" } }
        }
    };
    layout::wide("Processes", "/dashboard/processes", main)
}

/// `GET /live/dashboard/processes`.
pub(crate) async fn live(State(web): State<Web>, connect: LiveConnect) -> Response {
    let services = web.services.clone();
    let public = web.auth.public_dashboards();
    live::upgrade(connect, &web, "/dashboard/processes", move || {
        ProcessesPage::new(services.clone(), public)
    })
}

/// The live table's session state.
struct ProcessesPage {
    services: Services,
    query: ListQuery,
    /// The node shown.
    at: At,
    /// What it answered last.
    list: Result<ProcessList, String>,
    /// Anyone may watch (`--public-dashboards`): a logout ends nothing.
    public: bool,
    /// Refresh every this many ticks; 0: paused.
    every: u64,
    ticks: u64,
}

impl ProcessesPage {
    fn new(services: Services, public: bool) -> ProcessesPage {
        let query = ListQuery {
            limit: ROWS,
            ..ListQuery::default()
        };
        // The first frame shows the frame of the table; the rows follow at
        // once (mount asks for them).
        let list = Ok(ProcessList {
            total: services.node.process_count(),
            window_ms: 0,
            processes: Vec::new(),
        });
        ProcessesPage {
            services,
            query,
            at: At::Local,
            list,
            public,
            every: 1,
            ticks: 0,
        }
    }

    /// A column header that sorts the table by `key` when tapped (the
    /// page's script sets the sort menu, which sends it).
    fn sort_header(&self, key: SortKey, title: &str) -> Markup {
        let current = self.query.sort == key;
        html! {
            th aria-sort=[current.then_some("descending")] {
                button.sort type="button" data-sort=(key.name()) {
                    (title) @if current { " ▼" }
                }
            }
        }
    }

    /// Asks the node shown for its list (this node, or another one over
    /// the cluster: the same call, the same rows).
    async fn refresh(&mut self) {
        self.list = self
            .services
            .at(self.at.clone())
            .processes(self.query.clone())
            .await
            .map_err(|e| e.to_string());
    }
}

impl LiveView for ProcessesPage {
    fn revoke(&mut self) -> bool {
        self.public
    }

    fn mount(&mut self, ctx: &mut Process) {
        tick_now_and_every_second(&self.services, ctx);
    }

    fn render(&self) -> Markup {
        let list = match &self.list {
            Ok(list) => list,
            Err(e) => {
                return html! { div #proc-table hx-swap-oob="morph" { p.hint.error { (e) } } };
            }
        };
        let at = &self.at;
        html! {
            div #proc-table hx-swap-oob="morph" {
                p.hint {
                    @if let Some(node) = at.name() { "Node " strong { (node) } ": " }
                    (thousands(list.total as u64)) " processes; the top " (list.processes.len()) " by " (self.query.sort.name())
                    @if !self.query.filter.is_empty() { " matching “" (self.query.filter) "”" }
                    ". CPU is each process's share of one core over the last " (format!("{:.1}", list.window_ms as f64 / 1e3)) " s, sampled a thousand times a second."
                    @if self.every == 0 { " " strong { "Paused." } }
                }
                div.table-wrap { table {
                    thead { tr {
                        th { "pid" } th { "name / label" } th { "priority" }
                        (self.sort_header(SortKey::Cpu, "CPU"))
                        (self.sort_header(SortKey::Reductions, "reductions"))
                        (self.sort_header(SortKey::Memory, "memory"))
                        (self.sort_header(SortKey::Mailbox, "queue"))
                        th { "activity" }
                    } }
                    tbody {
                        // On a phone each row is a card: pid, label and CPU
                        // on top, the activity under them, the rest small.
                        @for row in &list.processes {
                            tr id=(format!("{}p{}", at.name().map(|n| format!("{n}-")).unwrap_or_default(), row.id)) {
                                td.pid { a href=(format!("/dashboard/processes/{}{}", row.id, node_suffix(at))) { (pid_text(at, row.id)) } }
                                td.name { (row.name_or_label()) }
                                td.minor data-label="priority" { (row.priority) }
                                td.cpu data-label="CPU" { (format!("{:.1}%", row.cpu_pct)) }
                                td.minor data-label="reductions" { (thousands(row.reductions)) }
                                td.minor data-label="memory" { (bytes(row.memory_bytes)) }
                                td.minor data-label="queue" { (thousands(row.queue as u64)) }
                                td.activity { (row.activity) }
                            }
                        }
                    }
                } }
            }
        }
    }

    async fn handle_event(&mut self, _ctx: &mut Process, event: ClientEvent) -> bool {
        if event.name != "filter" {
            return false;
        }
        self.query.filter = event.field("q").chars().take(100).collect();
        self.query.sort = event.field("sort").parse().unwrap_or_default();
        self.query.limit = event
            .field("limit")
            .parse()
            .ok()
            .filter(|n| ROW_CHOICES.contains(n))
            .unwrap_or(ROWS);
        self.every = event
            .field("every")
            .parse()
            .ok()
            .filter(|n| EVERY_CHOICES.iter().any(|(every, _)| every == n))
            .unwrap_or(1);
        match At::choose(&self.services, event.field("node")) {
            Ok(at) => self.at = at,
            Err(e) => {
                self.list = Err(e.to_string());
                return true;
            }
        }
        self.refresh().await;
        true
    }

    async fn handle_info(&mut self, _ctx: &mut Process, msg: Message) -> bool {
        if msg.is::<Tick>() {
            self.ticks += 1;
            if self.every == 0 || !self.ticks.is_multiple_of(self.every) {
                return false;
            }
            self.refresh().await;
            return true;
        }
        false
    }
}

/// A page's first figures at once, then a refresh every [`REFRESH`].
fn tick_now_and_every_second(services: &Services, ctx: &mut Process) {
    let _ = ctx.pid().send(Tick);
    services.node.send_interval(ctx.pid(), REFRESH, || Tick);
}

/// A link to a neighbouring process of the same node, with its label.
fn neighbour_link(at: &At, n: &Neighbour) -> Markup {
    html! {
        a href=(format!("/dashboard/processes/{}{}", n.id, node_suffix(at))) { (pid_text(at, n.id)) }
        @if let Some(l) = &n.label { " " span.hint { (l) } }
    }
}

/// `GET /dashboard/processes/{n}`: everything about process `<0.n.0>`
/// (of another node with `?node=NAME`).
pub(crate) async fn detail(
    State(web): State<Web>,
    headers: HeaderMap,
    Path(n): Path<u64>,
    Query(node): Query<NodeQuery>,
) -> Response {
    let at = match node.at(&web) {
        Ok(at) => at,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                layout::page("Process", "", html! { p { (e) } }),
            )
                .into_response();
        }
    };
    let title = format!("Process {}", pid_text(&at, n));
    let detail = match web.services.at(at.clone()).process(n).await {
        Ok(detail) => detail,
        Err(e) => {
            let main = html! {
                h1 { (title) }
                p { "There is no such process now (" (e.to_string()) "). " a href="/dashboard/processes" { "All processes" } }
            };
            return (StatusCode::NOT_FOUND, layout::page(&title, "", main)).into_response();
        }
    };
    // After logging in, a page of this node's; the dashboard for another
    // node's (a login returns to our own pages only, without a query).
    let back = match &at {
        At::Local => format!("/dashboard/processes/{n}"),
        At::Node(_) => "/dashboard/processes".to_string(),
    };
    let main = html! {
        p { a href="/dashboard/processes" { "← All processes" } }
        h1 { (title) @if let Some(name) = &detail.row.name { " " small.hint { (name) } } }
        @if let Some(node) = at.name() { p.hint { "A process of node " strong { (node) } ", shown here over the cluster." } }
        // Live: the figures and the stack refresh every second.
        div hx-ext="ws,morph" ws-connect=(format!("/live/dashboard/processes/{n}{}", node_suffix(&at))) {
            p #live-state .live-state aria-live="polite" { "connecting…" }
            (detail_region(&at, Ok(&detail)))
        }
        (kill_or_login(&web, &headers, &format!("/dashboard/processes/{n}/kill{}", node_suffix(&at)), &back, &pid_text(&at, n)))
    };
    layout::page(&title, "", main).into_response()
}

/// The live part of a process's page: its figures and its stack, or why
/// they are gone.
fn detail_region(at: &At, detail: Result<&ProcessDetail, &str>) -> Markup {
    html! {
        div #proc-detail hx-swap-oob="morph" {
            @match detail {
                Ok(detail) => { (info_table(at, detail)) (stack_section(detail)) }
                Err(e) => p { "There is no such process now (" (e) "). " a href="/dashboard/processes" { "All processes" } },
            }
        }
    }
}

/// `GET /live/dashboard/processes/{n}`: the live figures of one process.
pub(crate) async fn live_detail(
    State(web): State<Web>,
    Path(n): Path<u64>,
    Query(node): Query<NodeQuery>,
    connect: LiveConnect,
) -> Response {
    let at = match node.at(&web) {
        Ok(at) => at,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let (services, public) = (web.services.clone(), web.auth.public_dashboards());
    // One label for every process page: labels count kinds, not pids.
    live::upgrade(connect, &web, "/dashboard/processes/detail", move || {
        DetailPage {
            services: services.clone(),
            at: at.clone(),
            n,
            detail: Err("loading…".into()),
            public,
        }
    })
}

/// A process page's session state.
struct DetailPage {
    services: Services,
    at: At,
    n: u64,
    detail: Result<ProcessDetail, String>,
    /// Anyone may watch (`--public-dashboards`): a logout ends nothing.
    public: bool,
}

impl LiveView for DetailPage {
    fn revoke(&mut self) -> bool {
        self.public
    }

    fn mount(&mut self, ctx: &mut Process) {
        tick_now_and_every_second(&self.services, ctx);
    }

    fn render(&self) -> Markup {
        detail_region(&self.at, self.detail.as_ref().map_err(String::as_str))
    }

    async fn handle_event(&mut self, _ctx: &mut Process, _event: ClientEvent) -> bool {
        false
    }

    async fn handle_info(&mut self, _ctx: &mut Process, msg: Message) -> bool {
        if !msg.is::<Tick>() {
            return false;
        }
        self.detail = self
            .services
            .at(self.at.clone())
            .process(self.n)
            .await
            .map_err(|e| e.to_string());
        true
    }
}

/// A guest's call stack, or a native process's activity.
fn stack_section(detail: &ProcessDetail) -> Markup {
    html! {
        h2 { "Stack" }
        @match &detail.stack {
            Stack::Guest(frames) => ol.stack { @for f in frames { li { code { (f) } } } },
            Stack::GuestBusy => p.hint { "A sandboxed process whose threads were too busy to show its stack within a second. Reload to ask again." },
            Stack::Native(activity) => p.hint { "A native process: no stack to capture. Current activity: " (activity) },
        }
    }
}

/// The admin's Kill button (posting to `action`, with the CSRF field), or
/// a login link that comes back to `back`.
fn kill_or_login(web: &Web, headers: &HeaderMap, action: &str, back: &str, pid: &str) -> Markup {
    html! {
        @if web.auth.is_admin(headers) {
            // Asked first: a kill cannot be taken back.
            form method="post" action=(action) data-confirm=(format!("Kill {pid}? It ends at once; its supervisor decides what happens next.")) {
                input type="hidden" name="csrf" value=(web.auth.csrf());
                button.danger type="submit" { "Kill" }
            }
        } @else {
            p.hint { a href=(format!("/login?next={back}")) { "Log in with the admin token" } " to kill processes." }
        }
    }
}

fn info_table(at: &At, d: &ProcessDetail) -> Markup {
    let r = &d.row;
    html! {
        div.table-wrap { table.info {
            @if let Some(node) = at.name() { tr { th { "node" } td { (node) } } }
            tr { th { "label" } td { (r.label) } }
            tr { th { "state" } td { (r.state) } }
            tr { th { "priority" } td { (r.priority) } }
            tr { th { "current activity" } td { (r.activity) } }
            tr { th { "parent" } td { @if let Some(p) = &d.parent { (neighbour_link(at, p)) } @else { "—" } } }
            tr { th { "running for" } td { (duration(Duration::from_millis(d.uptime_ms))) } }
            tr { th { "CPU time" } td { (duration(Duration::from_micros(r.cpu_total_us))) " (" (format!("{:.1}%", r.cpu_pct)) " of one core lately)" } }
            tr { th { "reductions" } td { (thousands(r.reductions)) } }
            tr { th { "memory" } td { (bytes(r.memory_bytes))
                @if let Some(limit) = d.memory_limit_bytes { " (linear memory limit " (bytes(limit)) ")" } } }
            tr { th { "message queue" } td { (r.queue) @if let Some(c) = d.mailbox_capacity { " of " (c) } } }
            tr { th { "traps exits" } td { (d.trap_exit) } }
            tr { th { "long polls" } td { (d.long_polls) } }
            tr { th { "links" } td { @for p in &d.links { (neighbour_link(at, p)) br; } } }
            tr { th { "monitors" } td { @for p in &d.monitors { (neighbour_link(at, p)) br; } } }
            tr { th { "monitored by" } td { @for p in &d.monitored_by { (neighbour_link(at, p)) br; } } }
        } }
    }
}

/// `POST /dashboard/processes/{n}/kill`: the admin's form (token, origin
/// and CSRF checked by [`AdminForm`]), then the untrappable kill signal —
/// here, or at another node of the cluster with `?node=NAME`.
pub(crate) async fn kill(
    State(web): State<Web>,
    Path(n): Path<u64>,
    Query(node): Query<NodeQuery>,
    AdminForm(_): AdminForm<serde::de::IgnoredAny>,
) -> Response {
    let at = match node.at(&web) {
        Ok(at) => at,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    match web.services.at(at.clone()).kill(n).await {
        // Killed, or gone already: the page says which.
        Ok(()) | Err(owl_system::operator::OperatorError::NoProcess(_)) => {
            Redirect::to(&format!("/dashboard/processes/{n}{}", node_suffix(&at))).into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            layout::page("Kill", "", html! { p { (e.to_string()) } }),
        )
            .into_response(),
    }
}
