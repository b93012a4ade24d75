//! The load page, `/load`: the talk's load-control dashboard. Two live
//! charts — successful jobs per second and utilization, 60 s at 10 points a
//! second — and the two knobs: the target number of jobs and the schedulers
//! online. Anyone may watch; changing needs the admin login.
//!
//! A page that connects gets the whole history at once, then each new
//! point as a few bytes; the figures above the charts are refreshed once a
//! second. The charts live outside the morphed region, so they are drawn by
//! the page's script and never re-rendered.

use std::cell::{Cell, RefCell};

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use owl_runtime::{Message, Process};
use owl_system::access::same_secret;
use owl_system::load::{self, LoadControl, NodeState, Point};
use owl_system::operator::Operator;

use super::format::thousands;
use crate::live::{self, ClientEvent, LiveConnect, LiveView};
use crate::{Web, layout};

/// Points between refreshes of the figures above the charts (one second).
const FIGURES_EVERY: u32 = 10;

/// `GET /load`.
pub(crate) async fn index(State(web): State<Web>) -> Markup {
    let clustered = web.services.load.in_cluster();
    let main = html! {
        div hx-ext="ws,morph" ws-connect="/live/load" {
            h1 { "Load control" }
            p #live-state .live-state aria-live="polite" { "connecting…" }
            div #load-live hx-swap-oob="morph" { p.hint { "loading…" } }
            div #load-charts .charts {
                figure {
                    figcaption {
                        "Successful jobs per second" @if clustered { ": this node, and (dashed) the whole cluster" }
                        " " span.now #now-jobs {} @if clustered { " " span.now #now-cluster {} }
                    }
                    div #chart-jobs .chart data-cluster=[clustered.then_some("1")] {}
                }
                figure { figcaption { "Scheduler utilization (%)" " " span.now #now-util {} } div #chart-util .chart {} }
            }
            template #load-data data-seq="0" {}
            p.hint {
                "Each job is its own supervised process: it waits a random 0–1 s, then once a second computes ∑(1..100). "
                "Utilization counts every core owl computes on, sandboxed calculations included."
            }
        }
    };
    layout::with_charts("Load", "/load", main)
}

/// `GET /live/load`.
pub(crate) async fn live(State(web): State<Web>, connect: LiveConnect) -> Response {
    let admin = connect.admin;
    let csrf = web.auth.csrf().to_string();
    let (load, operator) = (web.services.load.clone(), web.services.operator.clone());
    live::upgrade(connect, &web, "/load", move || {
        LoadPage::new(load.clone(), operator.clone(), admin, csrf.clone())
    })
}

/// The page's session state.
struct LoadPage {
    load: LoadControl,
    operator: Operator,
    admin: bool,
    csrf: String,
    /// Points not sent yet; the first render sends the whole history.
    pending: RefCell<Vec<Point>>,
    history_sent: Cell<bool>,
    /// Whether the next render includes the figures and the form.
    figures_due: Cell<bool>,
    /// Numbers the page's data element so the script takes each once.
    seq: Cell<u64>,
    ticks: u32,
    notice: Option<String>,
}

impl LoadPage {
    fn new(load: LoadControl, operator: Operator, admin: bool, csrf: String) -> LoadPage {
        LoadPage {
            load,
            operator,
            admin,
            csrf,
            pending: RefCell::new(Vec::new()),
            history_sent: Cell::new(false),
            figures_due: Cell::new(true),
            seq: Cell::new(0),
            ticks: 0,
            notice: None,
        }
    }

    fn figures(&self) -> Markup {
        let latest = self.load.latest();
        let (online, schedulers) = self.operator.schedulers();
        let clustered = self.load.in_cluster();
        let nodes = if clustered {
            self.load.nodes()
        } else {
            Vec::new()
        };
        html! {
            div #load-live hx-swap-oob="morph" {
                div.table-wrap { table.info {
                    tr { th { @if clustered { "target (whole cluster)" } @else { "target" } }
                        td #load-target { (thousands(self.load.target())) " jobs" } }
                    @if clustered {
                        tr { th { "this node's share" } td #load-share { (thousands(self.load.share())) " jobs" } }
                    }
                    tr { th { "workers running" } td #load-workers { (thousands(self.load.workers())) } }
                    tr { th { "jobs per second" } td #load-rate { (thousands(latest.jobs_per_s.round() as u64))
                        // Never a silent drop: background jobs yield to
                        // everything else, and the page says when they do.
                        @if let Some(behind) = latest.behind_text(online) {
                            " " strong #load-behind .warn { "— " (behind) }
                        } } }
                    tr { th { "utilization" } td #load-util { (format!("{:.0}%", latest.utilization * 100.0)) } }
                    tr { th { "schedulers online" } td #load-schedulers { (online) " of " (schedulers) } }
                } }
                @if clustered {
                    div.table-wrap { table #load-nodes .list {
                        thead { tr { th { "node" } th { "state" } th.num { "share" } th.num { "workers" } th.num { "jobs/s" } } }
                        tbody {
                            @for n in &nodes {
                                tr data-node=(n.name) .down[n.state != NodeState::Up] {
                                    td { (n.name) @if n.is_self { " (this node)" } }
                                    td.state { (n.state) }
                                    td.num { (thousands(n.share)) }
                                    td.num.workers { (thousands(n.workers)) }
                                    td.num { (thousands(n.jobs_per_s.round() as u64)) }
                                }
                            }
                        }
                        tfoot { tr {
                            th { "cluster" }
                            td { (nodes.iter().filter(|n| n.state == NodeState::Up).count()) " up" }
                            td.num { (thousands(self.load.target())) }
                            td.num #load-total-workers { (thousands(nodes.iter().filter(|n| n.state == NodeState::Up).map(|n| n.workers).sum::<u64>())) }
                            td.num { (thousands(nodes.iter().filter(|n| n.state == NodeState::Up).map(|n| n.jobs_per_s).sum::<f64>().round() as u64)) }
                        } }
                    } }
                }
                @if self.admin {
                    form #load-form .inline ws-send autocomplete="off" {
                        input type="hidden" name="event" value="load";
                        input type="hidden" name="csrf" value=(self.csrf);
                        label { "jobs "
                            input #target name="target" type="text" inputmode="numeric"
                                placeholder=(self.load.target()) aria-label="target jobs" maxlength="12";
                        }
                        label { "schedulers "
                            select #schedulers name="schedulers" aria-label="schedulers online" {
                                @for n in 1..=schedulers {
                                    option value=(n) selected[n == online] { (n) }
                                }
                            }
                        }
                        button type="submit" { "Apply" }
                    }
                } @else {
                    p.hint { "Anyone may watch. " a href="/login?next=/load" { "Log in with the admin token" } " to change the load." }
                }
                p #live-notice .live-notice role="status" { @if let Some(n) = &self.notice { (n) } }
            }
        }
    }

    /// The points to send, as `[[unix seconds, jobs/s, utilization %], …]`.
    fn data(&self) -> Option<Markup> {
        let (kind, points) = if self.history_sent.replace(true) {
            let points = std::mem::take(&mut *self.pending.borrow_mut());
            if points.is_empty() {
                return None;
            }
            ("points", points)
        } else {
            self.pending.borrow_mut().clear();
            ("history", self.load.history())
        };
        let rows: Vec<String> = points
            .iter()
            .map(|p| {
                let cluster = p
                    .cluster_jobs_per_s
                    .map(|c| format!(",{c:.0}"))
                    .unwrap_or_default();
                format!(
                    "[{:.1},{:.0},{:.1}{cluster}]",
                    p.at_ms as f64 / 1000.0,
                    p.jobs_per_s,
                    p.utilization * 100.0
                )
            })
            .collect();
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        Some(html! {
            template #load-data hx-swap-oob="true" data-seq=(seq) data-kind=(kind)
                data-json=(format!("[{}]", rows.join(","))) {}
        })
    }

    fn apply(&mut self, event: &ClientEvent) -> Result<String, String> {
        if !self.admin {
            return Err("changing the load needs the admin login".into());
        }
        if !same_secret(event.field("csrf"), &self.csrf) {
            return Err("the form is stale (CSRF check failed); reload the page".into());
        }
        let change = load::LoadChange::parse(event.field("target"), event.field("schedulers"))
            .map_err(|e| e.to_string())?;
        let done = self
            .operator
            .change_load(&self.load, change)
            .map_err(|e| e.to_string())?;
        Ok(if done.is_empty() {
            "nothing to change".into()
        } else {
            done.join("; ")
        })
    }
}

impl LiveView for LoadPage {
    fn mount(&mut self, ctx: &mut Process) {
        ctx.node().join(load::TICKS, ctx.pid());
    }

    fn render(&self) -> Markup {
        let figures = self.figures_due.replace(false).then(|| self.figures());
        html! {
            @if let Some(f) = figures { (f) }
            @if let Some(d) = self.data() { (d) }
        }
    }

    async fn handle_event(&mut self, _ctx: &mut Process, event: ClientEvent) -> bool {
        if event.name != "load" {
            return false;
        }
        self.notice = Some(match self.apply(&event) {
            Ok(done) => done,
            Err(why) => format!("not changed: {why}"),
        });
        self.figures_due.set(true);
        true
    }

    fn revoke(&mut self) -> bool {
        // Anyone may watch: the page stays, without its controls.
        self.admin = false;
        self.figures_due.set(true);
        true
    }

    async fn handle_info(&mut self, _ctx: &mut Process, msg: Message) -> bool {
        let Ok(point) = msg.downcast::<Point>() else {
            return false;
        };
        self.pending.borrow_mut().push(point);
        self.ticks += 1;
        if self.ticks.is_multiple_of(FIGURES_EVERY) {
            self.figures_due.set(true);
        }
        true
    }
}
