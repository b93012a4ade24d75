//! `/login`: a browser presents the admin token once and gets it back as
//! an `HttpOnly`, `SameSite=Strict` cookie.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;

use crate::{App, auth, layout};

#[derive(serde::Deserialize)]
pub struct Next {
    next: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Only local paths, so a login link cannot send the visitor elsewhere.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") => n,
        _ => "/dashboard/processes",
    }
}

fn form(next: &str, error: Option<&str>) -> String {
    let main = html! {
        h1 { "Admin login" }
        p { "Dashboards and actions need the admin token: it is in "
            code { "admin-token" } " in the node's data directory (or was given with "
            code { "--admin-token" } ")." }
        @if let Some(e) = error { p.live-notice role="alert" { (e) } }
        form.inline method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            input name="token" type="password" placeholder="admin token" aria-label="admin token" autocomplete="current-password" required;
            button type="submit" { "Log in" }
        }
    };
    layout::page("Admin login", "", main).into_string()
}

/// What a protected page answers without the token.
pub fn required(next: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Html(form(next, None))).into_response()
}

pub async fn page(Query(q): Query<Next>) -> Html<String> {
    Html(form(safe_next(q.next.as_deref()), None))
}

pub async fn submit(State(app): State<App>, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref()).to_string();
    if !app.auth.is_token(f.token.trim()) {
        tracing::warn!(target: "owl::auth", "failed admin login");
        return (
            StatusCode::UNAUTHORIZED,
            Html(form(&next, Some("That is not the admin token."))),
        )
            .into_response();
    }
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict",
        auth::COOKIE,
        f.token.trim()
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
