//! Who may call what, as guards on groups of routes (see the router in
//! `endpoint.rs`) — never re-checked in each handler:
//!
//! - **viewers**: the dashboards, `/metrics` and their live pages — the
//!   admin, or anyone with `--public-dashboards`;
//! - **admins**: pages and forms that change something — the admin's
//!   bearer token or login session (forms also pass [`AdminForm`]'s CSRF
//!   and origin checks);
//! - **scripts**: API calls that change something — the bearer token
//!   itself (a browser's session is no credential for the JSON API).
//!
//! Other nodes of a cluster do not come through HTTP: they call the node
//! service over distribution (`owl_system::node_service`).
//!
//! A refused page asks for the login; other paths answer 401.

use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use serde::de::DeserializeOwned;

use crate::Web;
use crate::auth::Credential;
use crate::error::WebError;

/// A refusal for `path`: a page asks for the login, anything else says 401.
fn needs_login(path: &str, why: &str) -> WebError {
    let is_page = !["/api/", "/metrics", "/live/"]
        .iter()
        .any(|p| path.starts_with(p));
    if is_page {
        WebError::Login { next: path.into() }
    } else {
        WebError::text(StatusCode::UNAUTHORIZED, format!("{why}\n"))
    }
}

/// The viewers' guard: the admin, or anyone with public dashboards.
pub(crate) async fn viewers(
    State(web): State<Web>,
    request: Request,
    next: Next,
) -> Result<Response, WebError> {
    if !web.auth.can_view(request.headers()) {
        return Err(needs_login(
            request.uri().path(),
            "this needs the admin token (Authorization: Bearer …)",
        ));
    }
    Ok(next.run(request).await)
}

/// The admins' guard: the bearer token, or a logged-in browser.
pub(crate) async fn admins(
    State(web): State<Web>,
    request: Request,
    next: Next,
) -> Result<Response, WebError> {
    if !web.auth.is_admin(request.headers()) {
        return Err(needs_login(
            request.uri().path(),
            "this needs the admin token (Authorization: Bearer …)",
        ));
    }
    Ok(next.run(request).await)
}

/// The scripts' guard: the admin's bearer token itself.
pub(crate) async fn scripts(
    State(web): State<Web>,
    request: Request,
    next: Next,
) -> Result<Response, WebError> {
    if web.auth.credential(request.headers()) != Credential::Bearer {
        return Err(WebError::api(
            StatusCode::UNAUTHORIZED,
            "this needs the admin token (Authorization: Bearer …)",
        ));
    }
    Ok(next.run(request).await)
}

/// A form field every form our pages render for an admin carries.
#[derive(serde::Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

/// A browser's form that changes something: the admin (bearer, or a session
/// whose request is same-origin and carries our CSRF field), and the
/// form's fields as `T`. Refused with 403 and a page that says why.
pub(crate) struct AdminForm<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<Web> for AdminForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, web: &Web) -> Result<Self, WebError> {
        let not_allowed = |why: &str| WebError::page(StatusCode::FORBIDDEN, "Not allowed", why);
        let headers = req.headers().clone();
        let body = axum::body::to_bytes(req.into_body(), crate::MAX_BODY_BYTES)
            .await
            .map_err(|_| not_allowed("the form is too large"))?;
        let csrf: Option<CsrfField> = serde_urlencoded::from_bytes(&body).ok();
        let csrf = csrf.and_then(|f| f.csrf);
        web.auth
            .may_act(&headers, csrf.as_deref())
            .map_err(not_allowed)?;
        let fields: T = serde_urlencoded::from_bytes(&body).map_err(|e| {
            WebError::text(
                StatusCode::BAD_REQUEST,
                format!("the form is not understood: {e}"),
            )
        })?;
        Ok(AdminForm(fields))
    }
}
