//! The web endpoint: every route, and the supervised processes that serve
//! them — `web` (rest_for_one) over the live session supervisor and the
//! endpoint that accepts connections.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::{any, get, post};
use owl_runtime::ExitReason;
use owl_runtime::supervisor::{ChildSpec, Strategy, SupervisorSpec};
use owl_system::{Services, listener};

use crate::{Web, WebConfig, api, assets, auth, cluster_api, live, pages, server};

/// The registered name of the endpoint process.
pub const ENDPOINT: &str = "web_endpoint";
/// The registered name of the web side's supervisor.
pub const SUPERVISOR: &str = "web";
/// How long a stopping endpoint lets requests in flight finish.
const DRAIN: Duration = Duration::from_secs(2);
/// File descriptors kept free for everything but HTTP connections (the
/// console, the database, log files, guests).
const RESERVED_FDS: u64 = 256;

/// The web side as an edge of the system: its supervisor, holding the live
/// session supervisor and the endpoint serving `listener` (bound before
/// the tree starts, so a busy port is an error at once).
pub fn endpoint(
    config: WebConfig,
    listener: std::net::TcpListener,
) -> impl FnOnce(&Services) -> Result<ChildSpec, String> + 'static {
    move |services| {
        let token = services.token.clone();
        let auth = auth::Auth::new(token, config.public_dashboards)?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("the web listener has no address: {e}"))?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let web = Web {
            services: services.clone(),
            auth: Arc::new(auth),
            secure_cookies: public_url.starts_with("https://"),
            live: live::LiveAdmission::new(config.max_live_per_address),
            public_url: public_url.trim_end_matches('/').into(),
        };
        let limits = server::Limits {
            max_connections: config
                .max_connections
                .unwrap_or_else(default_max_connections),
            header_timeout: config.header_timeout,
            trusted_proxies: config.trusted_proxies.clone().into(),
        };
        let limits = Arc::new(limits);
        let serve =
            listener::child_spec(ENDPOINT, "web endpoint", listener, move |mut p, socket| {
                let (router, limits) = (router(web.clone()), limits.clone());
                async move {
                    let socket = match socket
                        .set_nonblocking(true)
                        .and_then(|()| tokio::net::TcpListener::from_std(socket))
                    {
                        Ok(s) => s,
                        Err(e) => {
                            return ExitReason::error(format!(
                                "cannot accept on the listener: {e}"
                            ));
                        }
                    };
                    let drain = server::Drain::new();
                    let limits = server::Limits {
                        max_connections: limits.max_connections,
                        header_timeout: limits.header_timeout,
                        trusted_proxies: limits.trusted_proxies.clone(),
                    };
                    let reason = tokio::select! {
                        () = server::run(socket, router, limits, drain.clone()) => {
                            ExitReason::error("the server stopped by itself")
                        }
                        reason = listener::stopped(&mut p) => reason,
                    };
                    let _ = tokio::time::timeout(DRAIN, drain.finish()).await;
                    reason
                }
            });
        let spec = SupervisorSpec::new(Strategy::RestForOne)
            .name(SUPERVISOR)
            .label("web supervisor")
            .child(live::supervisor_spec())
            .child(serve);
        Ok(ChildSpec::supervisor(SUPERVISOR, spec))
    }
}

/// Connections the endpoint serves at once: what the file-descriptor
/// limit allows after a reserve, at most 65,536.
fn default_max_connections() -> usize {
    let limit = owl_runtime::sys::fd_limit().unwrap_or(1024);
    limit.saturating_sub(RESERVED_FDS).clamp(16, 65_536) as usize
}

/// Every route of the system.
fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(pages::sum::index))
        .route("/live/sum", get(pages::sum::live))
        .route("/load", get(pages::load::index))
        .route("/board", get(pages::board::index))
        .route("/board/{topic}", get(pages::board::topic))
        .route("/board/{topic}/older", get(pages::board::older))
        .route("/board/{topic}/qr.svg", get(pages::board::qr))
        .route("/board/{topic}/admin", get(pages::board::admin))
        .route(
            "/board/{topic}/admin/delete/{id}",
            post(pages::board::delete),
        )
        .route("/board/{topic}/admin/reset", post(pages::board::reset))
        .route("/live/board/{topic}", get(pages::board::live))
        .route("/live/load", get(pages::load::live))
        .route("/live/dashboard/processes", get(pages::processes::live))
        .route("/live/dashboard/system", get(pages::system::live))
        .route("/dashboard/processes", get(pages::processes::index))
        .route("/dashboard/processes/{n}", get(pages::processes::detail))
        .route(
            "/dashboard/processes/{n}/kill",
            post(pages::processes::kill),
        )
        .route("/dashboard/system", get(pages::system::index))
        .route("/login", get(pages::login::page).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route("/metrics", get(crate::metrics::metrics))
        .route("/assets/{name}", get(assets::serve))
        .route("/api/sum", post(api::sum))
        .route("/api/health", get(api::health))
        .route("/api/load", get(api::get_load).put(api::put_load))
        .route(
            "/api/board/{topic}",
            get(api::board_posts).post(api::board_post),
        )
        .route(
            "/api/board/{topic}/{id}",
            axum::routing::delete(api::board_delete),
        )
        .route("/api/{*rest}", any(api::not_found))
        .route(owl_system::at::NODE_PATH, post(cluster_api::node))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(api::MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(web)
}

/// Pages are never framed by another site (clickjacking on Kill buttons),
/// and content types are taken as given.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Browsers send `Origin` with every WebSocket handshake and form post; one
/// from another site must not drive a visitor's session or act as the
/// admin. Clients without `Origin` (scripts, load tests) are not browsers.
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
