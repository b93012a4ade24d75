//! Access checks as axum extractors, so that a handler's signature says who
//! may call it: [`Viewer`] (dashboards) and [`AdminForm`] (a browser form
//! that changes something: admin, same origin, our CSRF field).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::de::DeserializeOwned;

use crate::{Web, layout, pages};

/// Whoever may look at dashboards: the admin, or anyone with public
/// dashboards. A page refused asks for the login; other paths answer 401.
pub(crate) struct Viewer;

impl FromRequestParts<Web> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        if web.auth.can_view(&parts.headers) {
            return Ok(Viewer);
        }
        Err(refused(parts.uri.path()))
    }
}

fn refused(path: &str) -> Response {
    let is_page = !["/api/", "/metrics", "/live/"]
        .iter()
        .any(|p| path.starts_with(p));
    if is_page {
        return pages::login::required(path);
    }
    (
        StatusCode::UNAUTHORIZED,
        "this needs the admin token (Authorization: Bearer …)\n",
    )
        .into_response()
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
    type Rejection = Response;

    async fn from_request(req: Request, web: &Web) -> Result<Self, Self::Rejection> {
        let headers: HeaderMap = req.headers().clone();
        let body = axum::body::to_bytes(req.into_body(), crate::api::MAX_BODY_BYTES)
            .await
            .map_err(|_| not_allowed("the form is too large"))?;
        let csrf: Option<CsrfField> = serde_urlencoded::from_bytes(&body).ok();
        let csrf = csrf.and_then(|f| f.csrf);
        web.auth
            .may_act(&headers, csrf.as_deref())
            .map_err(not_allowed)?;
        let fields: T = serde_urlencoded::from_bytes(&body).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("the form is not understood: {e}"),
            )
                .into_response()
        })?;
        Ok(AdminForm(fields))
    }
}

fn not_allowed(why: &str) -> Response {
    let main = html! { h1 { "Not allowed" } p { (why) } };
    (StatusCode::FORBIDDEN, layout::page("Not allowed", "", main)).into_response()
}
