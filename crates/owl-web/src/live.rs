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
use std::pin::Pin;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as Frame, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use owl_runtime::supervisor::{ChildSpec, Restart, SupervisorRef, SupervisorSpec};
use owl_runtime::{ExitReason, Message, Node, Process, SendError, SpawnOptions};
use tokio::sync::mpsc;

use crate::server::ConnectionSlot;

/// The registered name of the supervisor of all live sessions.
pub const SESSIONS: &str = "live_sup";
/// Sessions allowed at once; beyond, new pages are told to come back later.
pub(crate) const MAX_SESSIONS: usize = 10_000;
/// Browser events a session may have queued; beyond, the connection stops
/// reading from the browser until there is room.
const MAILBOX: usize = 64;
/// Rendered frames waiting for a slow browser before the session waits too.
const OUTBOX: usize = 16;
/// The largest WebSocket message a page may send.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
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
/// bounded, the connection's slot kept for the socket's life.
pub(crate) fn upgrade<V, F>(
    ws: WebSocketUpgrade,
    headers: &HeaderMap,
    slot: Option<ConnectionSlot>,
    node: &Node,
    page: &str,
    view: F,
) -> Response
where
    V: LiveView,
    F: Fn() -> V + Send + Sync + 'static,
{
    if !crate::endpoint::same_origin(headers) {
        return (
            StatusCode::FORBIDDEN,
            "cross-origin live connections are refused",
        )
            .into_response();
    }
    let (node, label) = (node.clone(), format!("live session {page}"));
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_FRAME_BYTES * 4)
        .on_upgrade(move |socket| async move {
            serve(socket, node, label, view).await;
            drop(slot);
        })
}

type Sending = Pin<Box<dyn Future<Output = Result<(), SendError<ClientEvent>>> + Send>>;

/// Serves one page's WebSocket: starts its session under the session
/// supervisor and relays frames until either side ends.
async fn serve<V, F>(mut socket: WebSocket, node: Node, label: String, view: F)
where
    V: LiveView,
    F: Fn() -> V + Send + Sync + 'static,
{
    let (out_tx, mut out_rx) = mpsc::channel::<String>(OUTBOX);
    let session = match start_session(&node, label, out_tx, view).await {
        Ok(session) => session,
        Err(why) => {
            tracing::warn!(why, "live session not started");
            close(&mut socket, 1013, "no session available, try again later").await;
            return;
        }
    };
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
            html = out_rx.recv() => {
                let Some(html) = html else { continue };
                if socket.send(Frame::Text(html.into())).await.is_err() {
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
                let (code, why) = match reason {
                    // A node shutting down: come back when it is up again.
                    r if r.is_shutdown() => (1012, "service restart"),
                    ExitReason::Normal => (1000, "session ended"),
                    _ => (1011, "session crashed"),
                };
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
    out: mpsc::Sender<String>,
    view: F,
) -> Result<owl_runtime::Pid, String>
where
    V: LiveView,
    F: Fn() -> V + Send + Sync + 'static,
{
    let supervisor = node
        .resolve(SESSIONS)
        .ok_or("the session supervisor is not running")?;
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
    out: mpsc::Sender<String>,
) -> Result<(), ExitReason> {
    let gone = |_| ExitReason::Shutdown;
    view.mount(&mut ctx);
    out.send(view.render().into_string()).await.map_err(gone)?;
    loop {
        let first = ctx.recv_any().await;
        let mut changed = handle(&mut view, &mut ctx, first).await;
        // Whatever queued up meanwhile is handled before rendering once.
        while let Some(next) = ctx.try_recv_any() {
            changed |= handle(&mut view, &mut ctx, next).await;
        }
        if changed {
            out.send(view.render().into_string()).await.map_err(gone)?;
        }
    }
}

async fn handle<V: LiveView>(view: &mut V, ctx: &mut Process, msg: Message) -> bool {
    match msg.downcast::<ClientEvent>() {
        Ok(event) => view.handle_event(ctx, event).await,
        Err(msg) => view.handle_info(ctx, msg).await,
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
