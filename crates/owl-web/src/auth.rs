//! Who may look and who may act.
//!
//! - Dashboards and `/metrics` are open to everyone only with
//!   `--public-dashboards`; otherwise they need the admin token.
//! - Acting (kill, upgrade, load changes) always needs the admin token. A
//!   script presents it as `Authorization: Bearer TOKEN`. A browser logs in
//!   once and carries a session cookie — a random value, not the token, that
//!   `/logout` revokes — and its every change must also pass CSRF checks: a
//!   same-origin `Origin` (when sent) and a form field only our pages carry.
//!   CSRF checks are skipped only when the bearer token itself
//!   authenticated the request, never because some `Authorization` header
//!   is present (browsers add Basic credentials on their own).
//! - Failed logins are limited per address (5 a minute) and for everyone
//!   together (100 a minute: many addresses cannot guess faster), and
//!   logged at most once per few seconds with a count. Under such an
//!   attack the admin still gets in: the bearer token is never rate
//!   limited, and `owl console login-link` (on the node's machine) gives a
//!   one-time link that skips the login form and its limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use owl_system::access::{AdminToken, LoginLinks, random_hex, same_secret};
use parking_lot::Mutex;

/// The cookie of a logged-in browser.
pub(crate) const SESSION_COOKIE: &str = "owl_admin";
/// Admin sessions kept at once (the oldest is dropped beyond).
const MAX_SESSIONS: usize = 1024;
/// How long an admin session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Failed logins an address may make per window before it must wait.
const LOGIN_FAILURES: u32 = 5;
const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered at once.
const LOGIN_ADDRESSES: usize = 10_000;
/// Failed logins from all addresses together per window: beyond, the form
/// refuses everyone until the window passes.
const GLOBAL_LOGIN_FAILURES: u32 = 100;

/// A logged-in browser's session.
struct Session {
    since: Instant,
    /// Names the session's live pages (never the cookie itself).
    tag: u64,
}

/// How a request proved it is the admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Credential {
    /// `Authorization: Bearer TOKEN` with the admin token.
    Bearer,
    /// A live session cookie from `/login`.
    Session,
    /// Neither.
    None,
}

/// Why a login did not succeed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LoginRefused {
    /// Not the admin token.
    Wrong,
    /// Too many failures from this address; try again after this long.
    TooMany(Duration),
    /// Too many failures from everyone together (an attack from many
    /// addresses); the form is closed for this long.
    Busy(Duration),
}

pub(crate) struct Auth {
    token: AdminToken,
    /// Put in every form our pages render for an admin; random per start.
    csrf: String,
    public_dashboards: bool,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// Failures from everyone in the current window: (its start, count).
    all_failures: Mutex<(Instant, u32)>,
}

impl Auth {
    pub(crate) fn new(token: AdminToken, public_dashboards: bool) -> Result<Auth, String> {
        Ok(Auth {
            token,
            csrf: random_hex(16)?,
            public_dashboards,
            sessions: Mutex::default(),
            failures: Mutex::default(),
            all_failures: Mutex::new((Instant::now(), 0)),
        })
    }

    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// How this request proves it is the admin, if it does.
    pub(crate) fn credential(&self, headers: &HeaderMap) -> Credential {
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("Bearer "))
            .any(|t| self.token.matches(t.trim()));
        if bearer {
            return Credential::Bearer;
        }
        if self.admin_session(headers).is_some() {
            Credential::Session
        } else {
            Credential::None
        }
    }

    /// The tag of the live admin session this request's cookie names.
    pub(crate) fn admin_session(&self, headers: &HeaderMap) -> Option<u64> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let mut sessions = self.sessions.lock();
        match sessions.get(id) {
            Some(s) if s.since.elapsed() < SESSION_LIFETIME => Some(s.tag),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    pub(crate) fn is_admin(&self, headers: &HeaderMap) -> bool {
        self.credential(headers) != Credential::None
    }

    /// Whether anyone may watch the dashboards.
    pub(crate) fn public_dashboards(&self) -> bool {
        self.public_dashboards
    }

    pub(crate) fn can_view(&self, headers: &HeaderMap) -> bool {
        self.public_dashboards || self.is_admin(headers)
    }

    /// Whether a change may go ahead: the bearer token, or a session whose
    /// request is same-origin and carries our CSRF field.
    pub(crate) fn may_act(
        &self,
        headers: &HeaderMap,
        csrf_field: Option<&str>,
    ) -> Result<(), &'static str> {
        match self.credential(headers) {
            Credential::None => Err("the admin token is needed for this"),
            Credential::Bearer => Ok(()),
            Credential::Session => {
                if !same_origin(headers) {
                    return Err("cross-site request refused");
                }
                match csrf_field {
                    Some(value) if same_secret(value, &self.csrf) => Ok(()),
                    _ => Err("the form is stale or forged (CSRF check failed); reload the page"),
                }
            }
        }
    }

    /// Checks a login attempt from `from`; on success, a new session id.
    pub(crate) fn login(&self, from: IpAddr, token: &str) -> Result<String, LoginRefused> {
        let now = Instant::now();
        {
            let all = self.all_failures.lock();
            if all.1 >= GLOBAL_LOGIN_FAILURES && now.duration_since(all.0) < LOGIN_WINDOW {
                return Err(LoginRefused::Busy(LOGIN_WINDOW - now.duration_since(all.0)));
            }
        }
        {
            let failures = self.failures.lock();
            if let Some((since, count)) = failures.get(&from)
                && *count >= LOGIN_FAILURES
                && now.duration_since(*since) < LOGIN_WINDOW
            {
                return Err(LoginRefused::TooMany(
                    LOGIN_WINDOW - now.duration_since(*since),
                ));
            }
        }
        if !self.token.matches(token.trim()) {
            let mut failures = self.failures.lock();
            if failures.len() >= LOGIN_ADDRESSES {
                failures.retain(|_, (since, _)| now.duration_since(*since) < LOGIN_WINDOW);
            }
            let entry = failures.entry(from).or_insert((now, 0));
            if now.duration_since(entry.0) >= LOGIN_WINDOW {
                *entry = (now, 0);
            }
            entry.1 += 1;
            drop(failures);
            let mut all = self.all_failures.lock();
            if now.duration_since(all.0) >= LOGIN_WINDOW {
                *all = (now, 0);
            }
            all.1 += 1;
            return Err(LoginRefused::Wrong);
        }
        self.failures.lock().remove(&from);
        self.new_session(now).ok_or(LoginRefused::Wrong)
    }

    /// Logs in with a one-time link from the console (`owl console
    /// login-link`): no token typed, no rate limit — the link itself came
    /// from someone on the node's machine.
    pub(crate) fn login_with_link(&self, links: &LoginLinks, link: &str) -> Option<String> {
        links
            .redeem(link)
            .then(|| self.new_session(Instant::now()))?
    }

    fn new_session(&self, now: Instant) -> Option<String> {
        let id = random_hex(24).ok()?;
        let tag = u64::from_str_radix(&random_hex(8).ok()?, 16).ok()?;
        let mut sessions = self.sessions.lock();
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| s.since.elapsed() < SESSION_LIFETIME);
            if sessions.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.since)
                    .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), Session { since: now, tag });
        Some(id)
    }

    /// Ends the session this request carries; its tag, if it was live
    /// (its live pages are to be told).
    pub(crate) fn logout(&self, headers: &HeaderMap) -> Option<u64> {
        let id = cookie(headers, SESSION_COOKIE)?;
        self.sessions.lock().remove(id).map(|s| s.tag)
    }
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

/// A cookie's value from the `Cookie` headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn auth() -> Auth {
        Auth::new(AdminToken::new("0123456789abcdef").unwrap(), false).unwrap()
    }

    #[test]
    fn sessions_act_only_with_origin_and_form_field_and_bearer_without() {
        let auth = auth();
        let csrf = auth.csrf().to_string();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(auth.credential(&headers(&[])), Credential::None);
        let id = auth.login(local, "0123456789abcdef").unwrap();
        assert_ne!(id, "0123456789abcdef", "the cookie is not the token");
        let browser = headers(&[("cookie", &format!("a=b; owl_admin={id}")), ("host", "h:1")]);
        assert_eq!(auth.credential(&browser), Credential::Session);
        assert!(auth.may_act(&browser, Some(&csrf)).is_ok());
        assert!(auth.may_act(&browser, None).is_err(), "no CSRF field");
        assert!(auth.may_act(&browser, Some("guess")).is_err());
        // Basic credentials (which browsers add by themselves) change nothing.
        let with_basic = headers(&[
            ("cookie", &format!("owl_admin={id}")),
            ("authorization", "Basic eDp5"),
            ("host", "h:1"),
            ("origin", "http://evil.example"),
        ]);
        assert_eq!(
            auth.may_act(&with_basic, Some(&csrf)),
            Err("cross-site request refused")
        );
        assert!(auth.may_act(&with_basic, None).is_err());
        let script = headers(&[("authorization", "Bearer 0123456789abcdef")]);
        assert!(auth.may_act(&script, None).is_ok());
        let wrong = headers(&[("authorization", "Bearer 0123456789abcdeX")]);
        assert_eq!(auth.credential(&wrong), Credential::None);
        // The token itself is no cookie.
        let token_cookie = headers(&[("cookie", "owl_admin=0123456789abcdef")]);
        assert_eq!(auth.credential(&token_cookie), Credential::None);
        auth.logout(&browser);
        assert_eq!(auth.credential(&browser), Credential::None, "revoked");
    }

    #[test]
    fn failed_logins_are_limited_per_address() {
        let auth = auth();
        let attacker: IpAddr = "10.0.0.9".parse().unwrap();
        for _ in 0..LOGIN_FAILURES {
            assert_eq!(auth.login(attacker, "guess"), Err(LoginRefused::Wrong));
        }
        assert!(matches!(
            auth.login(attacker, "0123456789abcdef"),
            Err(LoginRefused::TooMany(_))
        ));
        let admin: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(
            auth.login(admin, "0123456789abcdef").is_ok(),
            "others are not locked out"
        );
    }

    #[test]
    fn many_addresses_together_cannot_guess_faster_than_the_global_ceiling() {
        let auth = auth();
        for i in 0..GLOBAL_LOGIN_FAILURES {
            let from = IpAddr::from([127, 0, (i / 250) as u8, (i % 250) as u8 + 1]);
            assert_eq!(auth.login(from, "guess"), Err(LoginRefused::Wrong));
        }
        let fresh: IpAddr = "10.9.9.9".parse().unwrap();
        assert!(matches!(
            auth.login(fresh, "guess"),
            Err(LoginRefused::Busy(_))
        ));
        // The form is closed to everyone; a one-time link still lets the admin in.
        assert!(matches!(
            auth.login(fresh, "0123456789abcdef"),
            Err(LoginRefused::Busy(_))
        ));
        let links = LoginLinks::default();
        let link = links.issue().unwrap();
        let id = auth
            .login_with_link(&links, &link)
            .expect("the link logs in");
        let browser = headers(&[("cookie", &format!("owl_admin={id}"))]);
        assert_eq!(auth.credential(&browser), Credential::Session);
        assert!(auth.login_with_link(&links, &link).is_none(), "once only");
    }
}
