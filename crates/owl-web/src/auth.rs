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
//! - Failed logins are limited per address and logged with it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use owl_system::access::{AdminToken, random_hex, same_secret};
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
}

pub(crate) struct Auth {
    token: AdminToken,
    /// Put in every form our pages render for an admin; random per start.
    csrf: String,
    public_dashboards: bool,
    sessions: Mutex<HashMap<String, Instant>>,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Auth {
    pub(crate) fn new(token: AdminToken, public_dashboards: bool) -> Result<Auth, String> {
        Ok(Auth {
            token,
            csrf: random_hex(16)?,
            public_dashboards,
            sessions: Mutex::default(),
            failures: Mutex::default(),
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
        let session = cookie(headers, SESSION_COOKIE).is_some_and(|id| {
            let mut sessions = self.sessions.lock();
            match sessions.get(id) {
                Some(at) if at.elapsed() < SESSION_LIFETIME => true,
                Some(_) => {
                    sessions.remove(id);
                    false
                }
                None => false,
            }
        });
        if session {
            Credential::Session
        } else {
            Credential::None
        }
    }

    pub(crate) fn is_admin(&self, headers: &HeaderMap) -> bool {
        self.credential(headers) != Credential::None
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
                if !crate::endpoint::same_origin(headers) {
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
            return Err(LoginRefused::Wrong);
        }
        self.failures.lock().remove(&from);
        let id = random_hex(24).map_err(|_| LoginRefused::Wrong)?;
        let mut sessions = self.sessions.lock();
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, at| at.elapsed() < SESSION_LIFETIME);
            if sessions.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), now);
        Ok(id)
    }

    /// Ends the session this request carries.
    pub(crate) fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            self.sessions.lock().remove(id);
        }
    }
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
}
