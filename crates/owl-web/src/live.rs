//! Live pages: every connected page is a runtime process — a *session* —
//! that holds the page's state, gets the browser's events as messages,
//! re-renders, and sends the new markup over the page's WebSocket, where
//! htmx morphs it into the DOM in place.
//!
//! The WebSocket itself is served by a plain connection task that shuttles
//! frames between the socket and the session: if the session crashes (or is
//! killed), the task closes the socket with code 1011, the browser reconnects
//! and a fresh session rebuilds the page. No other page notices.
//!
//! Back pressure applies to what the browser sends: while the session's
//! mailbox is full, the connection task stops reading the socket (TCP
//! pushes back to the browser) instead of dropping events. The answers to
//! work the session started itself (its calculations) are never refused.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message as Frame, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use owl_runtime::supervisor::{ChildSpec, Restart, SupervisorRef, SupervisorSpec};
use owl_runtime::{ExitReason, Message, Node, Process, SendError, SpawnOptions};
use owl_system::visitors::Client;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::Web;
use crate::accept::ConnectionSlot;

/// The registered name of the supervisor of all live sessions.
pub const SESSIONS: &str = "live_sup";
/// Sessions allowed at once; beyond, new pages are told to come back later.
pub(crate) const MAX_SESSIONS: usize = 10_000;

/// How a live page's session process is labelled: this, then the page's
/// path (the system page counts sessions by page from the labels).
pub(crate) const SESSION_LABEL: &str = "live session ";

fn session_label(page: &str) -> String {
    format!("{SESSION_LABEL}{page}")
}
/// Of those, kept for the admin's pages: a crowd (or a script) that fills
/// the node with pages never locks the operator out of the dashboards.
const ADMIN_RESERVE: usize = 64;
/// Live pages one address may keep open, by default: a conference room
/// behind one NAT (a thousand phones, a tab or two each) fits; one script
/// cannot take the node's 10,000.
pub(crate) const DEFAULT_PER_ADDRESS: usize = 2_500;
/// Browser events a session may have queued; beyond, the connection stops
/// reading from the browser until there is room.
const MAILBOX: usize = 64;
/// Rendered frames waiting for a slow browser before the session waits too.
const OUTBOX: usize = 16;
/// The largest WebSocket message a page may send.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// The largest frame a session may send a page. Views keep far below it by
/// design (a page shows a bounded number of rows and sends changes, not
/// the whole page, once it is up); a frame beyond it is a defect of ours,
/// logged and answered by closing the page, never dropped silently.
pub(crate) const MAX_OUT_FRAME: usize = 1024 * 1024;
/// What the WebSocket reads and writes at once: a frame's worth, so an idle
/// page costs a few kilobytes, not the library's default 128 KiB each way.
const SOCKET_BUFFER: usize = 4 * 1024;
/// How long a connection waits for the session supervisor to start a session.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// The server pings an idle page this often…
const PING_EVERY: Duration = Duration::from_secs(30);
/// …and closes a page it has heard nothing from (not even a pong) for this long.
const IDLE_LIMIT: Duration = Duration::from_secs(75);

/// A page's state and behaviour, run inside its session process.
pub(crate) trait LiveView: Send + 'static {
    /// Runs once in the new session before the first render (start timers here).
    fn mount(&mut self, ctx: &mut Process) {
        let _ = ctx;
    }

    /// The page's live region, rendered whole from the state. Its root
    /// element carries the id it replaces and `hx-swap-oob="morph"`.
    fn render(&self) -> Markup;

    /// What brings the page up to date after handled messages changed it:
    /// by default the whole region again. A view whose region can grow
    /// large (the board's posts) sends only what changed instead — new
    /// rows, removed rows — as out-of-band swaps, so one change costs the
    /// change, and the page never depends on its whole state fitting one frame.
    fn render_update(&mut self) -> Markup {
        self.render()
    }

    /// Handles an event from the browser; returns whether the page changed.
    fn handle_event(
        &mut self,
        ctx: &mut Process,
        event: ClientEvent,
    ) -> impl Future<Output = bool> + Send;

    /// Handles any other message in the session's mailbox; returns whether
    /// the page changed.
    fn handle_info(&mut self, ctx: &mut Process, msg: Message)
    -> impl Future<Output = bool> + Send;

    /// The admin session this page was opened with has ended (logout):
    /// take back what it allowed. Returns whether the page goes on (its
    /// region is then rendered again); `false` ends it, telling the
    /// browser why. By default a page holds no admin rights and goes on.
    fn revoke(&mut self) -> bool {
        true
    }
}

/// Sent to the live pages of an admin session that has ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Revoked;

/// The process group of the live pages opened with admin session `tag`.
pub(crate) fn rights_group(tag: u64) -> String {
    format!("live pages of admin session {tag:016x}")
}

/// What a session sends its connection.
enum Outgoing {
    /// Markup for the page.
    Html(String),
    /// Close the page with this code and reason; it does not reconnect.
    Close(u16, &'static str),
}

/// Live pages open per address, and room kept for the admin.
pub(crate) struct LiveAdmission {
    per_address: usize,
    open: Mutex<OpenPages>,
}

#[derive(Default)]
struct OpenPages {
    visitors: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// A visitor's page counted in [`LiveAdmission`] while it is open.
pub(crate) struct LiveTicket {
    admission: Arc<LiveAdmission>,
    ip: IpAddr,
}

impl Drop for LiveTicket {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock();
        open.visitors = open.visitors.saturating_sub(1);
        if let Some(n) = open.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.by_ip.remove(&self.ip);
            }
        }
    }
}

impl LiveAdmission {
    pub(crate) fn new(per_address: usize) -> Arc<LiveAdmission> {
        Arc::new(LiveAdmission {
            per_address: per_address.clamp(1, MAX_SESSIONS - ADMIN_RESERVE),
            open: Mutex::default(),
        })
    }

    /// Counts a visitor's page from `ip`, or says why it may not open.
    /// The admin's pages are not counted here (the supervisor's cap holds
    /// them, with the reserve visitors cannot use).
    fn enter(self: &Arc<Self>, ip: IpAddr) -> Result<LiveTicket, &'static str> {
        let mut open = self.open.lock();
        if open.visitors >= MAX_SESSIONS - ADMIN_RESERVE {
            return Err("the server has as many live pages as it serves; try again later");
        }
        let mine = open.by_ip.entry(ip).or_default();
        if *mine >= self.per_address {
            return Err("your network address has as many live pages open as it may; close some");
        }
        *mine += 1;
        open.visitors += 1;
        Ok(LiveTicket {
            admission: self.clone(),
            ip,
        })
    }
}

/// Everything a live page's connection brings: the upgrade, the
/// connection's slot, who it is (address, visitor), and the admin session
/// it carries, if any.
pub(crate) struct LiveConnect {
    ws: WebSocketUpgrade,
    same_origin: bool,
    slot: Option<ConnectionSlot>,
    ip: IpAddr,
    /// The visitor (or address) this page belongs to.
    pub client: Client,
    /// The admin rights the page was opened with: their session's tag
    /// (`Some` for a logged-in browser), and whether it is the admin at all.
    admin_session: Option<u64>,
    pub admin: bool,
}

impl FromRequestParts<Web> for LiveConnect {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        let ws = WebSocketUpgrade::from_request_parts(parts, web)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(LiveConnect {
            ws,
            same_origin: crate::auth::same_origin(&parts.headers),
            slot: parts.extensions.get::<ConnectionSlot>().cloned(),
            ip: crate::visitor::ip_of(&parts.extensions),
            client: crate::visitor::client_of(web, parts),
            admin_session: web.auth.admin_session(&parts.headers),
            admin: web.auth.is_admin(&parts.headers),
        })
    }
}

/// An event a page sent: a form's fields, named by its `event` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientEvent {
    /// What happened (the form's hidden `event` field), e.g. `"sum"`.
    pub name: String,
    /// The other fields, as strings.
    pub fields: HashMap<String, String>,
}

impl ClientEvent {
    /// A field's value, or `""` if the page did not send it.
    pub(crate) fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }

    /// Reads a text frame htmx's `ws-send` produced: a JSON object of string
    /// fields (plus the `HEADERS` object htmx adds, which is dropped).
    pub(crate) fn parse(text: &str) -> Result<ClientEvent, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let serde_json::Value::Object(map) = value else {
            return Err("not a JSON object".into());
        };
        let mut name = None;
        let mut fields = HashMap::new();
        for (key, value) in map {
            if key == "HEADERS" {
                continue;
            }
            let serde_json::Value::String(text) = value else {
                return Err(format!("field {key:?} is not a string"));
            };
            if key == "event" {
                name = Some(text);
            } else {
                fields.insert(key, text);
            }
        }
        let name = name.ok_or("no \"event\" field")?;
        Ok(ClientEvent { name, fields })
    }
}

/// The child spec of the session supervisor, for the application's tree.
pub(crate) fn supervisor_spec() -> ChildSpec {
    ChildSpec::supervisor(
        SESSIONS,
        SupervisorSpec::dynamic()
            .name(SESSIONS)
            .label("live session supervisor")
            .max_children(MAX_SESSIONS),
    )
}

/// Upgrades a live page's connection: same-origin only, frames and buffers
/// bounded, the connection's slot kept for the socket's life, a visitor's
/// page counted against its address's ceiling, an admin's page told when
/// its session ends.
pub(crate) fn upgrade<V, F>(connect: LiveConnect, web: &Web, page: &str, view: F) -> Response
where
    V: LiveView,
    F: Fn() -> V + Send + Sync + 'static,
{
    if !connect.same_origin {
        return (
            StatusCode::FORBIDDEN,
            "cross-origin live connections are refused",
        )
            .into_response();
    }
    let ticket = if connect.admin {
        Ok(None)
    } else {
        web.live.enter(connect.ip).map(Some)
    };
    let (node, label) = (web.services.node.clone(), session_label(page));
    let (slot, rights) = (connect.slot, connect.admin_session.map(rights_group));
    connect
        .ws
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_OUT_FRAME + SOCKET_BUFFER)
        .on_upgrade(move |mut socket| async move {
            match ticket {
                Ok(ticket) => {
                    serve(socket, node, label, rights, view).await;
                    drop(ticket);
                }
                Err(why) => {
                    tracing::debug!(target: "owl::web", why, "live page refused");
                    close(&mut socket, 1013, why).await;
                }
            }
            drop(slot);
        })
}

type Sending = Pin<Box<dyn Future<Output = Result<(), SendError<ClientEvent>>> + Send>>;

/// Serves one page's WebSocket: starts its session under the session
/// supervisor and relays frames until either side ends.
async fn serve<V, F>(
    mut socket: WebSocket,
    node: Node,
    label: String,
    rights: Option<String>,
    view: F,
) where
    V: LiveView,
    F: Fn() -> V + Send + Sync + 'static,
{
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(OUTBOX);
    let session = match start_session(&node, label.clone(), out_tx, view).await {
        Ok(session) => session,
        Err(why) => {
            tracing::warn!(why, "live session not started");
            close(&mut socket, 1013, "no session available, try again later").await;
            return;
        }
    };
    if let Some(group) = &rights {
        node.join(group, &session);
    }
    let exited = session.wait_exit();
    tokio::pin!(exited);
    // An event waiting for room in the session's mailbox: while it waits,
    // nothing more is read from the browser.
    let mut sending: Option<Sending> = None;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            frame = socket.recv(), if sending.is_none() => {
                heard = Instant::now();
                match frame {
                    Some(Ok(Frame::Text(text))) => {
                        let refusal = match ClientEvent::parse(text.as_str()) {
                            Ok(event) => match session.send(event) {
                                Ok(()) => None,
                                Err(SendError::Full(event)) => {
                                    let target = session.clone();
                                    sending = Some(Box::pin(async move { target.send_wait(event).await }));
                                    None
                                }
                                // The session is gone; its exit is handled below.
                                Err(SendError::NoProcess(_)) => None,
                            },
                            Err(why) => Some(format!("message not understood ({why})")),
                        };
                        if let Some(why) = refusal
                            && socket.send(Frame::Text(notice(&why).into())).await.is_err()
                        {
                            break;
                        }
                    }
                    Some(Ok(Frame::Binary(_))) => {
                        if socket.send(Frame::Text(notice("binary messages are not understood").into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => {}
                    Some(Err(e)) if is_too_big(&e) => {
                        close(&mut socket, 1009, "message too big: at most 16 KiB").await;
                        break;
                    }
                    // Closed by the browser, or a broken frame.
                    Some(Ok(Frame::Close(_))) | Some(Err(_)) | None => break,
                }
            }
            sent = async { sending.as_mut().expect("guarded").await }, if sending.is_some() => {
                sending = None;
                if sent.is_err() {
                    // The session is gone; its exit is handled below.
                    continue;
                }
            }
            out = out_rx.recv() => {
                let html = match out {
                    Some(Outgoing::Html(html)) => html,
                    Some(Outgoing::Close(code, why)) => {
                        close(&mut socket, code, why).await;
                        break;
                    }
                    None => continue,
                };
                if html.len() > MAX_OUT_FRAME {
                    // Ours to fix: say so, and let the page reconnect.
                    tracing::error!(target: "owl::web", page = %label, bytes = html.len(),
                        limit = MAX_OUT_FRAME, "a live page's frame is too large; closing the page");
                    close(&mut socket, 1011, "page update too large").await;
                    break;
                }
                if let Err(e) = socket.send(Frame::Text(html.into())).await {
                    tracing::debug!(target: "owl::web", page = %label, error = %e, "a live page's socket failed");
                    break;
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > IDLE_LIMIT {
                    close(&mut socket, 1001, "idle for too long").await;
                    break;
                }
                if socket.send(Frame::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            reason = &mut exited => {
                let (mut code, mut why) = match reason {
                    // A node shutting down: come back when it is up again.
                    r if r.is_shutdown() => (1012, "service restart"),
                    ExitReason::Normal => (1000, "session ended"),
                    _ => (1011, "session crashed"),
                };
                // What the session sent before it ended still goes out,
                // and a page it ended on purpose closes as it said.
                while let Ok(out) = out_rx.try_recv() {
                    match out {
                        Outgoing::Html(html) if html.len() <= MAX_OUT_FRAME => {
                            let _ = socket.send(Frame::Text(html.into())).await;
                        }
                        Outgoing::Html(_) => {}
                        Outgoing::Close(c, w) => (code, why) = (c, w),
                    }
                }
                close(&mut socket, code, why).await;
                return;
            }
        }
    }
    // The page went away: so does its session (its calculations go on under
    // their own supervisor, unless the node reaps orphans).
    node.exit(&session, ExitReason::Shutdown);
}

/// Whether a read failed because the browser sent more than a frame may hold.
fn is_too_big(e: &axum::Error) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("capacity") || text.contains("too long") || text.contains("too big")
}

async fn start_session<V, F>(
    node: &owl_runtime::Node,
    label: String,
    out: mpsc::Sender<Outgoing>,
    view: F,
) -> Result<owl_runtime::Pid, String>
where
    V: LiveView,
    F: Fn() -> V + Send + Sync + 'static,
{
    let supervisor = node
        .resolve(SESSIONS)
        .ok_or("the session supervisor is not running")?;
    // Made once: a restart shares the text instead of copying it.
    let label = owl_runtime::Label::from(label);
    let spec = ChildSpec::worker("session", move |args| {
        let opts = SpawnOptions::new()
            .label(label.clone())
            .mailbox_capacity(MAILBOX);
        let (out, view) = (out.clone(), view());
        let pid = args.spawn_link_opts(opts, move |p| run_session(p, view, out));
        async move { Ok(pid) }
    })
    .restart(Restart::Temporary);
    SupervisorRef::from_pid(supervisor)
        .start_child(spec, START_TIMEOUT)
        .await
        .map_err(|e| e.to_string())
}

/// The session process: render, then handle messages and re-render, until
/// the page goes away.
async fn run_session<V: LiveView>(
    mut ctx: Process,
    mut view: V,
    out: mpsc::Sender<Outgoing>,
) -> Result<(), ExitReason> {
    let gone = |_| ExitReason::Shutdown;
    view.mount(&mut ctx);
    out.send(Outgoing::Html(view.render().into_string()))
        .await
        .map_err(gone)?;
    loop {
        let first = ctx.recv_any().await;
        let mut handled = handle(&mut view, &mut ctx, first).await;
        // Whatever queued up meanwhile is handled before rendering once.
        while let Some(next) = ctx.try_recv_any() {
            handled = handled.and(handle(&mut view, &mut ctx, next).await);
        }
        match handled {
            Handled::Unchanged => {}
            Handled::Changed => out
                .send(Outgoing::Html(view.render_update().into_string()))
                .await
                .map_err(gone)?,
            Handled::End(code, why) => {
                let _ = out.send(Outgoing::Close(code, why)).await;
                return Ok(());
            }
        }
    }
}

/// What handling the messages of a batch did to the page.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handled {
    Unchanged,
    Changed,
    /// The page is over: close it with this code and reason.
    End(u16, &'static str),
}

impl Handled {
    fn and(self, next: Handled) -> Handled {
        match (self, next) {
            (end @ Handled::End(..), _) | (_, end @ Handled::End(..)) => end,
            (Handled::Changed, _) | (_, Handled::Changed) => Handled::Changed,
            _ => Handled::Unchanged,
        }
    }
}

async fn handle<V: LiveView>(view: &mut V, ctx: &mut Process, msg: Message) -> Handled {
    let changed = match msg.downcast::<ClientEvent>() {
        Ok(event) => view.handle_event(ctx, event).await,
        Err(msg) => match msg.downcast::<Revoked>() {
            Ok(Revoked) if !view.revoke() => {
                // 1008 (policy): the browser is told why and does not
                // reconnect into a refusal.
                return Handled::End(1008, "logged out: log in again to watch this page");
            }
            Ok(Revoked) => true,
            Err(msg) => view.handle_info(ctx, msg).await,
        },
    };
    if changed {
        Handled::Changed
    } else {
        Handled::Unchanged
    }
}

/// A short message to the visitor in the page's notice area.
fn notice(text: &str) -> String {
    html! { p #live-notice .live-notice hx-swap-oob="true" role="status" { (text) } }.into_string()
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = socket.send(Frame::Close(Some(frame))).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("OWL_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
        ))]

        /// Any frame a page (or an attacker) sends is an event or a clear
        /// refusal, never a panic.
        #[test]
        fn any_frame_is_an_event_or_refused(text in "\\PC{0,200}") {
            let _ = ClientEvent::parse(&text);
        }

        #[test]
        fn json_objects_of_strings_with_an_event_are_events(
            event in "[a-z]{1,10}",
            fields in proptest::collection::hash_map("[a-z]{1,8}", "\\PC{0,20}", 0..5),
        ) {
            let mut object: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .filter(|(k, _)| k.as_str() != "event" && k.as_str() != "HEADERS")
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            object.insert("event".into(), serde_json::Value::String(event.clone()));
            let parsed = ClientEvent::parse(&serde_json::Value::Object(object).to_string()).unwrap();
            prop_assert_eq!(parsed.name, event);
        }
    }

    #[test]
    fn events_are_read_from_htmx_json_and_anything_else_is_refused() {
        let event =
            ClientEvent::parse(r#"{"event":"sum","n":"5","HEADERS":{"HX-Request":"true"}}"#)
                .unwrap();
        assert_eq!(event.name, "sum");
        assert_eq!(event.field("n"), "5");
        assert_eq!(event.field("missing"), "");
        for bad in [
            "",
            "5",
            "[1]",
            r#"{"n":"5"}"#,
            r#"{"event":"sum","n":5}"#,
            "{",
        ] {
            assert!(ClientEvent::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
