//! `/login` and `/logout`: a browser presents the admin token once and gets
//! a session cookie (`HttpOnly`, `SameSite=Strict`; a random value, not the
//! token), which `/logout` revokes.

use std::net::{IpAddr, Ipv4Addr};

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::auth::{LoginRefused, SESSION_COOKIE};
use crate::{Web, layout, server};

#[derive(serde::Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Where a login may send the browser back to: our own pages only. Anything
/// else (another site, `/\evil.example`, encoded tricks) goes to the
/// process dashboard.
fn safe_next(next: Option<&str>) -> &str {
    const DEFAULT: &str = "/dashboard/processes";
    const PAGES: &[&str] = &["/", "/load", "/dashboard/processes", "/dashboard/system"];
    let Some(next) = next else { return DEFAULT };
    let plain = next
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_'));
    if !plain || next.contains("//") {
        return DEFAULT;
    }
    let is_page = PAGES.contains(&next)
        || next
            .strip_prefix("/dashboard/processes/")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || owl_system::board::TOPICS
            .iter()
            .any(|t| next == format!("/board/{}/admin", t.slug));
    if is_page { next } else { DEFAULT }
}

fn form(next: &str, error: Option<&str>) -> Markup {
    let main = html! {
        h1 { "Admin login" }
        p { "Dashboards and actions need the admin token: it is in "
            code { "admin-token" } " in the node's data directory (or was given with "
            code { "--admin-token-file" } ")." }
        @if let Some(e) = error { p.live-notice role="alert" { (e) } }
        form.inline method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            input name="token" type="password" placeholder="admin token" aria-label="admin token" autocomplete="current-password" required;
            button type="submit" { "Log in" }
        }
    };
    layout::page("Admin login", "", main)
}

/// What a protected page answers without the token.
pub(crate) fn required(next: &str) -> Response {
    (StatusCode::UNAUTHORIZED, form(safe_next(Some(next)), None)).into_response()
}

/// `GET /login`.
pub(crate) async fn page(Query(q): Query<Next>) -> Markup {
    form(safe_next(q.next.as_deref()), None)
}

/// `POST /login`.
pub(crate) async fn submit(
    State(web): State<Web>,
    extensions: axum::http::Extensions,
    Form(f): Form<LoginForm>,
) -> Response {
    let from = server::peer(&extensions).map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let next = safe_next(f.next.as_deref()).to_string();
    let session = match web.auth.login(from, &f.token) {
        Ok(session) => session,
        Err(LoginRefused::Wrong) => {
            tracing::warn!(target: "owl::auth", client = %from, "failed admin login");
            return (
                StatusCode::UNAUTHORIZED,
                form(&next, Some("That is not the admin token.")),
            )
                .into_response();
        }
        Err(LoginRefused::TooMany(wait)) => {
            tracing::warn!(target: "owl::auth", client = %from, "admin login refused: too many failures");
            let text = format!(
                "Too many wrong tokens from your address; try again in {} s.",
                wait.as_secs() + 1
            );
            let mut response =
                (StatusCode::TOO_MANY_REQUESTS, form(&next, Some(&text))).into_response();
            if let Ok(v) = HeaderValue::from_str(&(wait.as_secs() + 1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
    };
    tracing::info!(target: "owl::auth", client = %from, "admin logged in");
    let cookie = format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict");
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /logout`: revokes the session and forgets the cookie.
pub(crate) async fn logout(State(web): State<Web>, headers: HeaderMap) -> Response {
    web.auth.logout(&headers);
    let mut response = Redirect::to("/").into_response();
    let gone = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&gone) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_our_pages_are_places_to_go_back_to() {
        for good in ["/", "/dashboard/system", "/dashboard/processes/42"] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/%09/evil.example",
            "/\t/evil.example",
            "https://evil.example",
            "/dashboard/processes/42/../../x",
            "/login",
            "/dashboard/processes/abc",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/dashboard/processes", "{bad:?}");
        }
    }
}
