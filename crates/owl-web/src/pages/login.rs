//! `/login` and `/logout`: a browser presents the admin token once and gets
//! a session cookie (`HttpOnly`, `SameSite=Strict`; a random value, not the
//! token), which `/logout` revokes.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::auth::{LoginRefused, SESSION_COOKIE};
use crate::throttle::{Target, Throttled};
use crate::{Web, layout, live, visitor};

#[derive(serde::Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
    /// A one-time link's secret (`owl console login-link`).
    once: Option<String>,
}

/// Failed logins, logged at most once per few seconds (an attacker must
/// not be able to fill the disk with our log).
static FAILED: Throttled = Throttled::new(Target::Auth, "failed admin logins");
static REFUSED: Throttled = Throttled::new(Target::Auth, "admin logins refused by the rate limit");

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
        // Sessions are kept in the node's memory only, so that a stolen
        // cookie dies with the process; say so, or a restart looks like a bug.
        p.hint { "A login lasts until you log out, for at most 12 hours — and ends when the node restarts: sessions live in its memory only, never on disk." }
    };
    layout::page("Admin login", "", main)
}

/// What a protected page answers without the token.
pub(crate) fn required(next: &str) -> Response {
    (StatusCode::UNAUTHORIZED, form(safe_next(Some(next)), None)).into_response()
}

/// `GET /login`: the form, or — with a one-time link — logged in at once.
pub(crate) async fn page(State(web): State<Web>, Query(q): Query<Next>) -> Response {
    let next = safe_next(q.next.as_deref());
    let Some(once) = q.once else {
        return form(next, None).into_response();
    };
    match web.auth.login_with_link(&web.services.login_links, &once) {
        Some(session) => {
            tracing::info!(target: "owl::auth", "admin logged in with a one-time link");
            logged_in(&web, session, next)
        }
        None => (
            StatusCode::UNAUTHORIZED,
            form(
                next,
                Some("That link is used up or too old; ask the console for a new one."),
            ),
        )
            .into_response(),
    }
}

/// `POST /login`.
pub(crate) async fn submit(
    State(web): State<Web>,
    extensions: axum::http::Extensions,
    Form(f): Form<LoginForm>,
) -> Response {
    let from = visitor::ip_of(&extensions);
    let next = safe_next(f.next.as_deref()).to_string();
    let refused = |wait: std::time::Duration, text: String| {
        let mut response =
            (StatusCode::TOO_MANY_REQUESTS, form(&next, Some(&text))).into_response();
        if let Ok(v) = HeaderValue::from_str(&(wait.as_secs() + 1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    };
    let session = match web.auth.login(from, &f.token) {
        Ok(session) => session,
        Err(LoginRefused::Wrong) => {
            FAILED.hit(&format_args!("latest from {from}"));
            return (
                StatusCode::UNAUTHORIZED,
                form(&next, Some("That is not the admin token.")),
            )
                .into_response();
        }
        Err(LoginRefused::TooMany(wait)) => {
            REFUSED.hit(&format_args!(
                "latest from {from} (too many failures from it)"
            ));
            let text = format!(
                "Too many wrong tokens from your address; try again in {} s.",
                wait.as_secs() + 1
            );
            return refused(wait, text);
        }
        Err(LoginRefused::Busy(wait)) => {
            REFUSED.hit(&format_args!(
                "latest from {from} (too many failures from everyone)"
            ));
            let text = format!(
                "Too many wrong tokens from many addresses: the login form is closed for {} s. \
                 On the node's machine, `owl console login-link` gives a link that logs you in.",
                wait.as_secs() + 1
            );
            return refused(wait, text);
        }
    };
    tracing::info!(target: "owl::auth", client = %from, "admin logged in");
    logged_in(&web, session, &next)
}

/// The answer that logs a browser in: the session cookie, then `next`.
fn logged_in(web: &Web, session: String, next: &str) -> Response {
    let secure = if web.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict{secure}");
    let mut response = Redirect::to(next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /logout`: revokes the session, tells the live pages it opened
/// (they lose its rights at once), and forgets the cookie.
pub(crate) async fn logout(State(web): State<Web>, headers: HeaderMap) -> Response {
    if let Some(tag) = web.auth.logout(&headers) {
        // Past any bound on their mailboxes: a revocation must not be lost.
        for page in web.services.node.members(&live::rights_group(tag)) {
            let _ = page.send_reply(live::Revoked);
        }
    }
    let mut response = Redirect::to("/").into_response();
    let secure = if web.secure_cookies { "; Secure" } else { "" };
    let gone = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
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
