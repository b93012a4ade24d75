//! The sum page, `/`: the visitor's input, one line per calculation, kept
//! live by the page's session.

use std::collections::{HashMap, VecDeque};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use owl_runtime::{Message, PidId, Process};
use owl_system::math::{self, Client, MathService, Outcome, Scope, StartError};

use crate::live::{self, ClientEvent, LiveConnect, LiveView};
use crate::{Web, layout, visitor};

/// Calculations one page may have running at once: one visitor cannot take
/// the machine.
pub(crate) const MAX_RUNNING_PER_PAGE: usize = 20;
/// Lines a page keeps; older finished lines scroll away.
const MAX_LINES: usize = 100;
/// How much of an invalid input a line repeats.
const SHOWN_INPUT_CHARS: usize = 24;

/// `GET /`: the page, and a visitor cookie for a browser that has none.
pub(crate) async fn index(State(web): State<Web>, headers: HeaderMap) -> Response {
    let mut response = page().into_response();
    visitor::give_cookie(&web, &headers, &mut response);
    response
}

/// `GET /live/sum`: the page's live connection and its session.
pub(crate) async fn live(State(web): State<Web>, connect: LiveConnect) -> Response {
    let (math, client) = (web.services.math.clone(), connect.client.clone());
    live::upgrade(connect, &web, "/", move || {
        SumPage::new(math.clone(), client.clone())
    })
}

fn page() -> Markup {
    let main = html! {
        div hx-ext="ws,morph" ws-connect="/live/sum" {
            h1 { "∑(1..n)" }
            form #sum-form .inline ws-send data-reset autocomplete="off" {
                input type="hidden" name="event" value="sum";
                // Not `inputmode="numeric"`: an iPhone's number pad has no
                // minus key, and `-1` is one of the talk's three bugs.
                input #n name="n" type="text" inputmode="text" enterkeyhint="go"
                    autocapitalize="off" autocorrect="off" spellcheck="false"
                    maxlength=(math::MAX_INPUT_CHARS)
                    placeholder="an integer, e.g. 100" aria-label="n" required autofocus;
                button type="submit" { "Calculate" }
            }
            p #live-state .live-state aria-live="polite" { "connecting…" }
            p #live-notice .live-notice role="status" {}
            (render_lines(&VecDeque::new()))
            p.hint {
                "Each line is its own sandboxed process. Try 13, a negative number, or 9999999999 — "
                "the page stays responsive, and so does everyone else's."
            }
        }
    };
    layout::page("Sum", "/", main)
}

#[derive(Debug)]
enum LineState {
    Calculating,
    /// The exact sum, in decimal digits.
    Sum(String),
    /// Ended without an answer: a summary (`error`, `error: CPU limit`,
    /// `stopped`), why in a few words (shown under the line), and the full
    /// reason (its tooltip).
    Ended(&'static str, String, String),
    Invalid(&'static str),
    /// Not started: the page's or the server's limit.
    Refused(String),
}

#[derive(Debug)]
struct Line {
    id: u64,
    input: String,
    state: LineState,
}

/// The session state of one sum page.
pub(crate) struct SumPage {
    math: MathService,
    client: Client,
    /// Newest first.
    lines: VecDeque<Line>,
    next_id: u64,
    /// Running calculations → their line.
    running: HashMap<PidId, u64>,
}

impl SumPage {
    pub(crate) fn new(math: MathService, client: Client) -> SumPage {
        SumPage {
            math,
            client,
            lines: VecDeque::new(),
            next_id: 1,
            running: HashMap::new(),
        }
    }

    fn push(&mut self, input: String, state: LineState) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.lines.push_front(Line { id, input, state });
        self.lines.truncate(MAX_LINES);
        id
    }

    async fn submit(&mut self, ctx: &mut Process, raw: &str) {
        let n = match math::parse_input(raw) {
            Ok(n) => n,
            Err(invalid) => {
                self.push(shorten(raw.trim()), LineState::Invalid(invalid.detail()));
                return;
            }
        };
        if self.running.len() >= MAX_RUNNING_PER_PAGE {
            // Count what actually runs: calculations may have answered while
            // this page's events were queued ahead of their answers.
            self.settle_finished(ctx).await;
        }
        if self.running.len() >= MAX_RUNNING_PER_PAGE {
            let why = format!(
                "not started: {MAX_RUNNING_PER_PAGE} calculations are running on this page already"
            );
            self.push(n.to_string(), LineState::Refused(why));
            return;
        }
        match self.math.start(ctx, &n, &self.client).await {
            Ok(pid) => {
                let line = self.push(n.to_string(), LineState::Calculating);
                self.running.insert(pid.id(), line);
            }
            Err(StartError::FairShare(refusal)) => {
                let why = match refusal.scope {
                    Scope::Address => format!(
                        "not started: your network address runs {} calculations, as many as one address may; wait for one to end",
                        refusal.cap
                    ),
                    // Everyone holds as few as a newcomer may squeeze: no
                    // one gives up a slot for this page.
                    Scope::Node if refusal.held == 0 => format!(
                        "not started: the server is at its limit of {} calculations, shared fairly among visitors; try again soon",
                        refusal.cap
                    ),
                    Scope::Node => format!(
                        "not started: the server is at its limit and you run {} calculations, your fair share; wait for one of yours to end",
                        refusal.held
                    ),
                };
                self.push(n.to_string(), LineState::Refused(why));
            }
            Err(StartError::Overloaded) => {
                let why = "not started: the server is at its limit of calculations, try again soon";
                self.push(n.to_string(), LineState::Refused(why.into()));
            }
            Err(other) => {
                let why = format!("not started: {other}");
                self.push(
                    n.to_string(),
                    LineState::Ended("error", why, other.to_string()),
                );
            }
        }
    }

    /// Lets the calculations run for a moment, then takes every answer and
    /// `Down` already in the mailbox.
    async fn settle_finished(&mut self, ctx: &mut Process) {
        tokio::task::yield_now().await;
        for msg in MathService::take_settled(ctx) {
            self.settle(msg);
        }
    }

    /// Updates the line of a calculation that ended; false if the message
    /// is not about one of this page's calculations.
    fn settle(&mut self, msg: Message) -> bool {
        let Ok(settled) = MathService::settle(msg) else {
            return false;
        };
        // Unknown pids: the `Down` after an answer, or a line scrolled away.
        let Some(line_id) = self.running.remove(&settled.pid.id()) else {
            return false;
        };
        let Some(line) = self.lines.iter_mut().find(|l| l.id == line_id) else {
            return false;
        };
        line.state = match settled.outcome {
            Outcome::Sum(sum) => LineState::Sum(sum),
            Outcome::Invalid => LineState::Invalid("the calculation does not take it"),
            Outcome::Crashed(reason) => LineState::Ended(
                Outcome::summary(&reason),
                Outcome::explain(&reason),
                reason.to_string(),
            ),
        };
        true
    }
}

impl LiveView for SumPage {
    fn render(&self) -> Markup {
        render_lines(&self.lines)
    }

    async fn handle_event(&mut self, ctx: &mut Process, event: ClientEvent) -> bool {
        match event.name.as_str() {
            "sum" => {
                self.submit(ctx, event.field("n")).await;
                true
            }
            _ => false,
        }
    }

    async fn handle_info(&mut self, _ctx: &mut Process, msg: Message) -> bool {
        self.settle(msg)
    }
}

fn shorten(input: &str) -> String {
    if input.chars().count() <= SHOWN_INPUT_CHARS {
        input.to_string()
    } else {
        let head: String = input.chars().take(SHOWN_INPUT_CHARS).collect();
        format!("{head}…")
    }
}

fn render_lines(lines: &VecDeque<Line>) -> Markup {
    html! {
        ol #sum-lines .lines hx-swap-oob="morph" aria-live="polite" {
            @for line in lines {
                @let (state, value, why, title): (&str, String, Option<&str>, Option<&str>) = match &line.state {
                    LineState::Calculating => ("calculating", "calculating…".into(), None, None),
                    LineState::Sum(sum) => ("ok", sum.clone(), None, None),
                    LineState::Ended(summary, why, reason) => {
                        ("error", (*summary).to_string(), Some(why.as_str()), Some(reason.as_str()))
                    }
                    LineState::Invalid(detail) => ("invalid", "invalid input".into(), Some(*detail), None),
                    LineState::Refused(why) => ("refused", why.clone(), None, None),
                };
                li id=(format!("line-{}", line.id)) data-state=(state) title=[title] {
                    span.line { "∑(1.." (line.input) ") = " span.value { (value) } }
                    // On a phone there is no hover: the reason is written out.
                    @if let Some(why) = why {
                        small.reason { (why) }
                    }
                }
            }
        }
    }
}
