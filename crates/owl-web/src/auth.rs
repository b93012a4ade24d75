//! Who may look and who may act.
//!
//! - Dashboards and `/metrics` are open to everyone only with
//!   `--public-dashboards`; otherwise they need the admin token.
//! - Killing from the browser (and any later change) always needs the admin
//!   token *and* passes CSRF checks: a same-origin `Origin` (when the browser
//!   sends one) and a form field only our own pages carry.
//!
//! A browser presents the token as the `owl_admin` cookie (set by `/login`,
//! `HttpOnly`, `SameSite=Strict`); scripts send `Authorization: Bearer TOKEN`.

use std::io::Read;
use std::path::Path;

use axum::http::{HeaderMap, header};

/// The cookie a logged-in browser carries.
pub const COOKIE: &str = "owl_admin";

/// The node's access rules. Cheap to share (in an `Arc` in [`App`](crate::App)).
#[derive(Debug)]
pub struct Auth {
    token: String,
    /// Put in every form our pages render for an admin; checked on every
    /// mutating request. Random per node start.
    csrf: String,
    public_dashboards: bool,
}

/// What a request may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Nothing beyond the public pages.
    None,
    /// Look at dashboards (public dashboards, no token).
    View,
    /// Look and act (the admin token was presented).
    Admin,
}

impl Access {
    pub fn can_view(self) -> bool {
        self != Access::None
    }
}

/// 128 random bits as hex, from the kernel.
pub fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Auth {
    /// Rules with a known token (from `--admin-token`, or tests).
    pub fn new(token: impl Into<String>, public_dashboards: bool) -> std::io::Result<Auth> {
        Ok(Auth {
            token: token.into(),
            csrf: random_hex()?,
            public_dashboards,
        })
    }

    /// Reads the admin token from `path`, creating it (mode 0600) with a
    /// fresh random token at first start.
    pub fn load_or_create(path: &Path, public_dashboards: bool) -> Result<Auth, String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let token = match std::fs::read_to_string(path) {
            Ok(text) => text.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let token = random_hex().map_err(|e| format!("no randomness for a token: {e}"))?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                writeln!(file, "{token}")
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                token
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        if token.len() < 16 {
            return Err(format!(
                "the admin token in {} is shorter than 16 characters",
                path.display()
            ));
        }
        Auth::new(token, public_dashboards).map_err(|e| e.to_string())
    }

    /// The CSRF value our forms carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether `candidate` is the admin token (compared in constant time).
    pub fn is_token(&self, candidate: &str) -> bool {
        constant_time_eq(candidate.as_bytes(), self.token.as_bytes())
    }

    /// What a request with these headers may do.
    pub fn access(&self, headers: &HeaderMap) -> Access {
        if self
            .presented_token(headers)
            .is_some_and(|t| self.is_token(t))
        {
            Access::Admin
        } else if self.public_dashboards {
            Access::View
        } else {
            Access::None
        }
    }

    fn presented_token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        bearer.or_else(|| cookie(headers, COOKIE))
    }

    /// Whether a mutating request may go ahead: admin, and for cookie-carrying
    /// browsers a same-origin request with our CSRF field.
    pub fn may_act(
        &self,
        headers: &HeaderMap,
        csrf_field: Option<&str>,
    ) -> Result<(), &'static str> {
        if self.access(headers) != Access::Admin {
            return Err("the admin token is needed for this");
        }
        let by_bearer = headers.contains_key(header::AUTHORIZATION);
        if by_bearer {
            return Ok(());
        }
        if !crate::endpoint::same_origin(headers) {
            return Err("cross-site request refused");
        }
        match csrf_field {
            Some(value) if constant_time_eq(value.as_bytes(), self.csrf.as_bytes()) => Ok(()),
            _ => Err("the form is stale or forged (CSRF check failed); reload the page"),
        }
    }
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

    #[test]
    fn only_the_token_acts_and_browsers_also_need_the_form_field() {
        let auth = Auth::new("0123456789abcdef", false).unwrap();
        let csrf = auth.csrf().to_string();
        assert_eq!(auth.access(&headers(&[])), Access::None);
        let admin = headers(&[
            ("cookie", "a=b; owl_admin=0123456789abcdef"),
            ("host", "h:1"),
        ]);
        assert_eq!(auth.access(&admin), Access::Admin);
        assert!(auth.may_act(&admin, Some(&csrf)).is_ok());
        assert!(auth.may_act(&admin, None).is_err(), "no CSRF field");
        assert!(auth.may_act(&admin, Some("guess")).is_err());
        let cross = headers(&[
            ("cookie", "owl_admin=0123456789abcdef"),
            ("host", "h:1"),
            ("origin", "http://evil.example"),
        ]);
        assert!(auth.may_act(&cross, Some(&csrf)).is_err());
        let script = headers(&[("authorization", "Bearer 0123456789abcdef")]);
        assert!(auth.may_act(&script, None).is_ok());
        let wrong = headers(&[("authorization", "Bearer 0123456789abcdeX")]);
        assert_eq!(auth.access(&wrong), Access::None);
        let public = Auth::new("0123456789abcdef", true).unwrap();
        assert_eq!(public.access(&headers(&[])), Access::View);
        assert!(public.may_act(&headers(&[]), Some(public.csrf())).is_err());
    }
}
