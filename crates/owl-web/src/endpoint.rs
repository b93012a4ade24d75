//! The web endpoint: every route, and the supervised processes that serve
//! them — `web` (rest_for_one) over the live session supervisor and the
//! endpoint that accepts connections.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{any, get, post, put};
use owl_runtime::ExitReason;
use owl_runtime::supervisor::{ChildSpec, Strategy, SupervisorSpec};
use owl_system::{Services, listener};

use crate::{Web, WebConfig, accept, api, assets, auth, guards, live, pages};

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
        let open = Arc::new(accept::Open::default());
        let web = Web {
            connections: open.clone(),
            services: services.clone(),
            auth: Arc::new(auth),
            secure_cookies: public_url.starts_with("https://"),
            live: live::LiveAdmission::new(config.max_live_per_address),
            public_url: public_url.trim_end_matches('/').into(),
        };
        let limits = accept::Limits {
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
                let open = open.clone();
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
                    let drain = accept::Drain::new(open.clone());
                    let limits = accept::Limits {
                        max_connections: limits.max_connections,
                        header_timeout: limits.header_timeout,
                        trusted_proxies: limits.trusted_proxies.clone(),
                    };
                    let reason = tokio::select! {
                        () = accept::run(socket, router, limits, drain.clone()) => {
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

/// Every route of the system, grouped by who may call it; each group's
/// guard (see `access`) checks once for all its routes.
fn router(web: Web) -> Router {
    use axum::middleware::from_fn_with_state as guard;
    // Anyone: the pages visitors use, their live connections, the public API.
    let public = Router::new()
        .route("/", get(pages::sum::index))
        .route("/live/sum", get(pages::sum::live))
        .route("/load", get(pages::load::index))
        .route("/live/load", get(pages::load::live))
        .route("/board", get(pages::board::index))
        .route("/board/{topic}", get(pages::board::topic))
        .route("/board/{topic}/older", get(pages::board::older))
        .route("/board/{topic}/qr.svg", get(pages::board::qr))
        .route("/live/board/{topic}", get(pages::board::live))
        .route("/login", get(pages::login::page).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route("/assets/{name}", get(assets::serve))
        // Browsers that ask before reading the page's icon link.
        .route(
            "/favicon.ico",
            get(|| async { axum::response::Redirect::to(&assets::url("favicon.svg")) }),
        )
        .route("/api/health", get(api::health))
        .route("/api/sum", post(api::sum))
        .route("/api/load", get(api::get_load))
        .route(
            "/api/board/{topic}",
            get(api::board_posts).post(api::board_post),
        )
        .route("/api/{*rest}", any(api::not_found));
    // The admin, or anyone with --public-dashboards: watching.
    let viewers = Router::new()
        .route("/dashboard/processes", get(pages::processes::index))
        .route("/dashboard/processes/{n}", get(pages::processes::detail))
        .route("/live/dashboard/processes", get(pages::processes::live))
        .route(
            "/live/dashboard/processes/{n}",
            get(pages::processes::live_detail),
        )
        .route("/dashboard/system", get(pages::system::index))
        .route("/dashboard/tree", get(pages::tree::index))
        .route("/live/dashboard/system", get(pages::system::live))
        .route("/metrics", get(crate::metrics::metrics))
        .route_layer(guard(web.clone(), guards::viewers));
    // The admin, in a browser or with the token: acting from pages.
    let admins = Router::new()
        .route(
            "/dashboard/processes/{n}/kill",
            post(pages::processes::kill),
        )
        .route("/board/{topic}/admin", get(pages::board::admin))
        .route(
            "/board/{topic}/admin/delete/{id}",
            post(pages::board::delete),
        )
        .route("/board/{topic}/admin/reset", post(pages::board::reset))
        .route(
            "/board/{topic}/admin/read-only",
            post(pages::board::read_only),
        )
        .route_layer(guard(web.clone(), guards::admins));
    // The admin's scripts: acting through the JSON API.
    let scripts = Router::new()
        .route("/api/load", put(api::put_load))
        .route(
            "/api/board/{topic}/{id}",
            axum::routing::delete(api::board_delete),
        )
        .route_layer(guard(web.clone(), guards::scripts));
    Router::new()
        .merge(public)
        .merge(viewers)
        .merge(admins)
        .merge(scripts)
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(crate::MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            crate::layout::with_admin_state,
        ))
        // What the browser accepts, for bodies worth it (not images, not
        // the live sockets, which carry their own frames).
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
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
