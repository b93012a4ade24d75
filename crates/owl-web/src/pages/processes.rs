//! The process dashboard: `/dashboard/processes` (a live table, refreshed
//! every second) and `/dashboard/processes/{n}` (one process, with Kill).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use owl_runtime::{ExitReason, Message, PidId, Process, ProcessInfo};
use owl_system::operator::{Operator, RecentCpu, SortKey, Stack};

use owl_cluster::Cluster;

use crate::access::{AdminForm, Viewer};
use crate::live::{self, ClientEvent, LiveConnect, LiveView};
use crate::peer::{self, AtNode, RemoteList, RemoteProcess};
use crate::{Web, layout};

/// Rows the live table shows at most.
const ROWS: usize = 50;
const REFRESH: Duration = Duration::from_secs(1);

struct Tick;

/// `GET /dashboard/processes`.
pub(crate) async fn index(_: Viewer, State(web): State<Web>) -> Markup {
    let nodes = peer::node_choices(&web);
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
                @if !nodes.is_empty() {
                    select #node name="node" aria-label="node" {
                        @for (value, label) in &nodes { option value=(value) { (label) } }
                    }
                }
            }
            p #live-state .live-state aria-live="polite" { "connecting…" }
            p #live-notice .live-notice role="status" {}
            div #proc-table hx-swap-oob="morph" { p.hint { "loading…" } }
        }
    };
    layout::wide("Processes", "/dashboard/processes", main)
}

/// `GET /live/dashboard/processes`.
pub(crate) async fn live(_: Viewer, State(web): State<Web>, connect: LiveConnect) -> Response {
    let operator = web.services.operator.clone();
    let cluster = web.services.cluster.clone();
    let public = web.auth.public_dashboards();
    live::upgrade(connect, &web, "/dashboard/processes", move || {
        ProcessesPage::new(operator.clone(), cluster.clone(), public)
    })
}

/// The live table's session state.
struct ProcessesPage {
    operator: Operator,
    sort: SortKey,
    query: String,
    recent: RecentCpu,
    last: HashMap<PidId, Duration>,
    /// The time the last CPU figures cover.
    window: Duration,
    cluster: Option<Cluster>,
    /// Another node's list, when one is chosen: its name and what it sent.
    remote: Option<(String, Result<RemoteList, String>)>,
    /// Anyone may watch (`--public-dashboards`): a logout ends nothing.
    public: bool,
}

impl ProcessesPage {
    fn new(operator: Operator, cluster: Option<Cluster>, public: bool) -> ProcessesPage {
        ProcessesPage {
            public,
            cluster,
            remote: None,
            operator,
            sort: SortKey::Cpu,
            query: String::new(),
            recent: RecentCpu::default(),
            last: HashMap::new(),
            window: Duration::ZERO,
        }
    }
}

impl LiveView for ProcessesPage {
    fn revoke(&mut self) -> bool {
        self.public
    }

    fn mount(&mut self, ctx: &mut Process) {
        (self.last, self.window) = self.recent.update(self.operator.node());
        self.operator
            .node()
            .send_interval(ctx.pid(), REFRESH, || Tick);
    }

    fn render(&self) -> Markup {
        if let Some((node, list)) = &self.remote {
            return self.render_remote(node, list);
        }
        let rows = self
            .operator
            .processes(self.sort, ROWS, &self.query, Some(&self.last));
        let total = self.operator.node().process_count();
        let window = self.window.as_secs_f64().max(1e-3);
        let share = |d: Duration| d.as_secs_f64() / window * 100.0;
        html! {
            div #proc-table hx-swap-oob="morph" {
                p.hint { (total) " processes; the top " (rows.len()) " by " (self.sort.name())
                    @if !self.query.is_empty() { " matching “" (self.query) "”" } ". CPU is in % of one core over the last second." }
                div.table-wrap { table {
                    thead { tr {
                        th { "pid" } th { "name / label" } th { "CPU" } th { "reductions" }
                        th { "memory" } th { "queue" } th { "activity" }
                    } }
                    tbody {
                        @for row in &rows {
                            @let i = &row.info;
                            tr id=(format!("p{}", i.pid.id().0)) {
                                td { a href=(format!("/dashboard/processes/{}", i.pid.id().0)) { (i.pid) } }
                                td { (i.name.as_deref().unwrap_or(&i.label)) }
                                td { (format!("{:.1}%", share(row.recent_cpu.unwrap_or_default()))) }
                                td { (i.reductions) }
                                td { (bytes(i.memory_bytes as u64)) }
                                td { (i.message_queue_len) }
                                td { (i.current_activity) }
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
        self.query = event.field("q").chars().take(100).collect();
        self.sort = event.field("sort").parse().unwrap_or_default();
        self.remote = peer::other_node(self.cluster.as_ref(), event.field("node"))
            .map(|node| (node, Err("loading…".into())));
        self.refresh_remote().await;
        true
    }

    async fn handle_info(&mut self, _ctx: &mut Process, msg: Message) -> bool {
        if msg.is::<Tick>() {
            (self.last, self.window) = self.recent.update(self.operator.node());
            self.refresh_remote().await;
            return true;
        }
        false
    }
}

impl ProcessesPage {
    /// Fetches the chosen node's list again (signed, over HTTP).
    async fn refresh_remote(&mut self) {
        let (Some(cluster), Some((node, list))) = (&self.cluster, &mut self.remote) else {
            return;
        };
        let query = serde_urlencoded::to_string([
            ("sort", self.sort.name()),
            ("q", self.query.as_str()),
            ("limit", &ROWS.to_string()),
        ])
        .unwrap_or_default();
        *list = peer::fetch(cluster, node, &format!("/cluster/processes?{query}"), None).await;
    }

    fn render_remote(&self, node: &str, list: &Result<RemoteList, String>) -> Markup {
        html! {
            div #proc-table hx-swap-oob="morph" {
                @match list {
                    Err(e) => p.hint.error { (e) },
                    Ok(list) => {
                        p.hint { "Node " strong { (node) } ": " (list.total) " processes; the top " (list.rows.len()) " by " (self.sort.name())
                            @if !self.query.is_empty() { " matching “" (self.query) "”" } ". CPU is the total since each process started." }
                        div.table-wrap { table {
                            thead { tr {
                                th { "pid" } th { "name / label" } th { "CPU" } th { "reductions" }
                                th { "memory" } th { "queue" } th { "activity" }
                            } }
                            tbody {
                                @for r in &list.rows {
                                    tr id=(format!("{node}-p{}", r.id)) {
                                        td { a href=(format!("/dashboard/processes/{}?node={node}", r.id)) { (node) " " (r.pid) } }
                                        td { (r.name) }
                                        td { (format!("{:.1} ms", r.cpu_ms)) }
                                        td { (r.reductions) }
                                        td { (bytes(r.memory)) }
                                        td { (r.queue) }
                                        td { (r.activity) }
                                    }
                                }
                            }
                        } }
                    }
                }
            }
        }
    }
}

/// Bytes in the largest fitting unit.
pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn pid_link(operator: &Operator, id: PidId) -> Markup {
    let label = operator.lookup(id).map(|i| i.name.unwrap_or(i.label));
    html! { a href=(format!("/dashboard/processes/{}", id.0)) { (id) } @if let Some(l) = label { " " span.hint { (l) } } }
}

/// `GET /dashboard/processes/{n}`: everything about process `<0.n.0>`
/// (of another node with `?node=NAME`).
pub(crate) async fn detail(
    _: Viewer,
    State(web): State<Web>,
    headers: HeaderMap,
    Path(n): Path<u64>,
    Query(at): Query<AtNode>,
) -> Response {
    match at.remote(&web) {
        Ok(Some((cluster, node))) => {
            return remote_detail(&web, &headers, &cluster, &node, n).await;
        }
        Ok(None) => {}
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                layout::page("Process", "", html! { p { (e) } }),
            )
                .into_response();
        }
    }
    let operator = &web.services.operator;
    let title = format!("Process {}", PidId(n));
    let Some(info) = operator.lookup(PidId(n)) else {
        let main = html! {
            h1 { (title) }
            p { "No such process: it has ended (or never existed). " a href="/dashboard/processes" { "All processes" } }
        };
        return (StatusCode::NOT_FOUND, layout::page(&title, "", main)).into_response();
    };
    let stack = operator.stack(&info.pid).await.ok();
    let frames = match &stack {
        Some(Stack::Guest(frames)) => Some(frames.as_slice()),
        _ => None,
    };
    let main = html! {
        h1 { (title) @if let Some(name) = &info.name { " " small.hint { (name) } } }
        (info_table(operator, &info))
        (stack_section(frames, &info.current_activity))
        (kill_or_login(&web, &headers, &format!("/dashboard/processes/{n}/kill"), &format!("/dashboard/processes/{n}")))
    };
    layout::page(&title, "", main).into_response()
}

/// A guest's call stack, or a native process's activity.
fn stack_section(frames: Option<&[String]>, activity: &str) -> Markup {
    html! {
        h2 { "Stack" }
        @match frames {
            Some(frames) => ol.stack { @for f in frames { li { code { (f) } } } },
            None => p.hint { "A native process: no stack to capture. Current activity: " (activity) },
        }
    }
}

/// The admin's Kill button (posting to `action`, with the CSRF field), or
/// a login link that comes back to `back`.
fn kill_or_login(web: &Web, headers: &HeaderMap, action: &str, back: &str) -> Markup {
    html! {
        @if web.auth.is_admin(headers) {
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(web.auth.csrf());
                button.danger type="submit" { "Kill" }
            }
        } @else {
            p.hint { a href=(format!("/login?next={back}")) { "Log in with the admin token" } " to kill processes." }
        }
    }
}

fn info_table(operator: &Operator, i: &ProcessInfo) -> Markup {
    let uptime = i.started_at.elapsed().unwrap_or_default();
    html! {
        div.table-wrap { table.info {
            tr { th { "label" } td { (i.label) } }
            tr { th { "status" } td { (format!("{:?}", i.status).to_lowercase()) } }
            tr { th { "current activity" } td { (i.current_activity) } }
            tr { th { "parent" } td { @if let Some(p) = i.parent { (pid_link(operator, p)) } @else { "—" } } }
            tr { th { "running for" } td { (format!("{:.1} s", uptime.as_secs_f64())) } }
            tr { th { "CPU time" } td { (format!("{:.3} ms", i.cpu_time.as_secs_f64() * 1e3)) } }
            tr { th { "reductions" } td { (i.reductions) } }
            tr { th { "memory" } td { (bytes(i.memory_bytes as u64))
                @if let Some(limit) = i.memory_limit { " (linear memory limit " (bytes(limit as u64)) ")" } } }
            tr { th { "message queue" } td { (i.message_queue_len) @if let Some(c) = i.mailbox_capacity { " of " (c) } } }
            tr { th { "traps exits" } td { (i.trap_exit) } }
            tr { th { "long polls" } td { (i.long_polls) } }
            tr { th { "links" } td { @for p in &i.links { (pid_link(operator, p.id())) br; } } }
            tr { th { "monitors" } td { @for p in &i.monitors { (pid_link(operator, p.id())) br; } } }
            tr { th { "monitored by" } td { @for p in &i.monitored_by { (pid_link(operator, p.id())) br; } } }
        } }
    }
}

/// Another node's process, fetched over the cluster.
async fn remote_detail(
    web: &Web,
    headers: &HeaderMap,
    cluster: &Cluster,
    node: &str,
    n: u64,
) -> Response {
    let title = format!("Process {node} {}", PidId(n));
    let back = html! { a href="/dashboard/processes" { "All processes" } };
    let process: RemoteProcess =
        match peer::fetch(cluster, node, &format!("/cluster/processes/{n}"), None).await {
            Ok(p) => p,
            Err(e) => {
                let main = html! { h1 { (title) } p { (e) ". " (back) } };
                return (StatusCode::NOT_FOUND, layout::page(&title, "", main)).into_response();
            }
        };
    let activity = process
        .fields
        .iter()
        .find(|(label, _)| label == "current activity")
        .map_or("", |(_, value)| value.as_str());
    let main = html! {
        h1 { (title) @if let Some(name) = &process.name { " " small.hint { (name) } } }
        p.hint { "A process of node " strong { (node) } ", shown here over the cluster." }
        div.table-wrap { table.info {
            tr { th { "node" } td { (node) } }
            @for (label, value) in &process.fields { tr { th { (label) } td { (value) } } }
        } }
        (stack_section(process.stack.as_deref(), activity))
        // After logging in, the dashboard (a login returns to our own pages
        // only, without a query naming the node).
        (kill_or_login(web, headers, &format!("/dashboard/processes/{n}/kill?node={node}"), "/dashboard/processes"))
    };
    layout::page(&title, "", main).into_response()
}

/// `POST /dashboard/processes/{n}/kill`: the admin's form (token, origin
/// and CSRF checked by [`AdminForm`]), then the untrappable kill signal —
/// here, or at another node of the cluster with `?node=NAME`.
pub(crate) async fn kill(
    State(web): State<Web>,
    Path(n): Path<u64>,
    Query(at): Query<AtNode>,
    AdminForm(_): AdminForm<serde::de::IgnoredAny>,
) -> Response {
    if n == 0 {
        return (StatusCode::BAD_REQUEST, "<0.0.0> is the node itself").into_response();
    }
    match at.remote(&web) {
        Ok(Some((cluster, node))) => {
            let path = format!("/cluster/processes/{n}/kill");
            let done: Result<serde_json::Value, String> =
                peer::fetch(&cluster, &node, &path, Some(&serde_json::json!({}))).await;
            return match done {
                Ok(_) => {
                    Redirect::to(&format!("/dashboard/processes/{n}?node={node}")).into_response()
                }
                Err(e) => (
                    StatusCode::BAD_GATEWAY,
                    layout::page("Kill", "", html! { p { (e) } }),
                )
                    .into_response(),
            };
        }
        Ok(None) => {}
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    }
    let operator = &web.services.operator;
    if let Some(info) = operator.lookup(PidId(n)) {
        let _ = operator.kill(&info.pid, ExitReason::Kill);
    }
    Redirect::to(&format!("/dashboard/processes/{n}")).into_response()
}
