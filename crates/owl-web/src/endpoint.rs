//! The web endpoint: the router, and the supervised process that accepts
//! connections on the listening socket.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get, post};
use owl_runtime::supervisor::ChildSpec;
use owl_runtime::{Exit, ExitReason, Process, SpawnOptions};

use crate::pages::processes::ProcessesPage;
use crate::pages::sum::SumPage;
use crate::pages::system::SystemPage;
use crate::{App, api, assets, live, pages};

/// The registered name of the endpoint process.
pub const NAME: &str = "web_endpoint";
/// How long a stopping endpoint lets requests in flight finish.
const DRAIN: Duration = Duration::from_secs(2);

/// Every route of the system.
pub fn router(app: App) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { Html(pages::sum::page().into_string()) }),
        )
        .route("/live/sum", get(live_sum))
        .route("/live/dashboard/processes", get(live_processes))
        .route("/live/dashboard/system", get(live_system))
        .route("/dashboard/processes", get(pages::processes::index))
        .route("/dashboard/processes/{n}", get(pages::processes::detail))
        .route(
            "/dashboard/processes/{n}/kill",
            post(pages::processes::kill),
        )
        .route("/dashboard/system", get(pages::system::index))
        .route("/login", get(pages::login::page).post(pages::login::submit))
        .route("/metrics", get(crate::metrics::metrics))
        .route("/assets/{name}", get(assets::serve))
        .route("/api/sum", post(api::sum))
        .route("/api/health", get(api::health))
        .route("/api/{*rest}", any(api::not_found))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(api::MAX_BODY_BYTES))
        .with_state(app)
}

/// Upgrades a live page's connection: same-origin only, frames bounded.
fn upgrade<V, F>(
    ws: WebSocketUpgrade,
    headers: &HeaderMap,
    app: &App,
    page: &str,
    view: F,
) -> Response
where
    V: live::LiveView,
    F: Fn() -> V + Send + Sync + 'static,
{
    if !same_origin(headers) {
        return (
            StatusCode::FORBIDDEN,
            "cross-origin live connections are refused",
        )
            .into_response();
    }
    let (node, label) = (app.node.clone(), format!("live session {page}"));
    ws.max_message_size(live::MAX_FRAME_BYTES)
        .max_frame_size(live::MAX_FRAME_BYTES)
        .on_upgrade(move |socket| live::serve(socket, node, label, view))
}

async fn live_sum(ws: WebSocketUpgrade, headers: HeaderMap, State(app): State<App>) -> Response {
    let math = app.math.clone();
    upgrade(ws, &headers, &app, "/", move || SumPage::new(math.clone()))
}

async fn live_processes(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    State(app): State<App>,
) -> Response {
    if !app.auth.access(&headers).can_view() {
        return (StatusCode::UNAUTHORIZED, "dashboards need the admin token").into_response();
    }
    let node = app.node.clone();
    upgrade(ws, &headers, &app, "/dashboard/processes", move || {
        ProcessesPage::new(node.clone())
    })
}

async fn live_system(ws: WebSocketUpgrade, headers: HeaderMap, State(app): State<App>) -> Response {
    if !app.auth.access(&headers).can_view() {
        return (StatusCode::UNAUTHORIZED, "dashboards need the admin token").into_response();
    }
    let (node, sandbox) = (app.node.clone(), app.math.sandbox().clone());
    upgrade(ws, &headers, &app, "/dashboard/system", move || {
        SystemPage::new(node.clone(), sandbox.clone())
    })
}

/// Browsers send `Origin` with every WebSocket handshake; one from another
/// site must not drive a visitor's session (cross-site WebSocket hijacking).
/// Clients without `Origin` (scripts, load tests) are not browsers and pass.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// The endpoint as a child of the root supervisor. The socket is bound
/// before the tree starts (so `owl serve` fails early on a busy port), and a
/// restarted endpoint accepts on the same socket.
pub fn child_spec(app: App, listener: std::net::TcpListener) -> ChildSpec {
    let listener = Arc::new(listener);
    ChildSpec::worker(NAME, move |args| {
        let app = app.clone();
        let listener = listener.try_clone();
        async move {
            let listener = listener.map_err(|e| ExitReason::error(format!("listener: {e}")))?;
            let opts = SpawnOptions::new().label("web endpoint").trap_exit(true);
            Ok(args.spawn_link_opts(opts, move |p| serve(p, app, listener)))
        }
    })
}

async fn serve(mut p: Process, app: App, listener: std::net::TcpListener) -> ExitReason {
    if let Err(e) = p.register(NAME) {
        return ExitReason::error(e);
    }
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
    {
        Ok(l) => l,
        Err(e) => return ExitReason::error(format!("cannot accept on the listener: {e}")),
    };
    p.set_activity("accept");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(app)).with_graceful_shutdown(async move {
        let _ = stopped.await;
    });
    let server = server.into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => match result {
            Ok(()) => ExitReason::error("the server stopped by itself"),
            Err(e) => ExitReason::error(format!("the server failed: {e}")),
        },
        // Only the supervisor is linked: its exit signal means stop.
        exit = p.recv::<Exit>() => {
            let _ = stop.send(());
            let _ = tokio::time::timeout(DRAIN, server).await;
            exit.reason
        }
    }
}
