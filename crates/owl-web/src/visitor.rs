//! Who a request comes from: its address (the peer, or — behind a proxy
//! the operator trusts — the address that proxy saw), and the visitor its
//! signed cookie names.
//!
//! Pages hand out a visitor cookie signed by the node; only such a cookie
//! makes a request a visitor's (see `owl_system::visitors`). Anything
//! else — no cookie, an invented one — is known by its address.

use std::net::{IpAddr, Ipv4Addr};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use owl_system::visitors::Client;

use crate::Web;

/// The visitor cookie.
pub(crate) const VISITOR_COOKIE: &str = "owl_client";

/// A request's client address, set by the accept loop for every request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientIp(pub IpAddr);

/// The address a request comes from: the peer, or, when the peer is a
/// proxy the operator trusts (`--trusted-proxy`), the last address in
/// `X-Forwarded-For` that is not one of those proxies.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    // Proxies append; the rightmost entries are the ones we can believe,
    // up to the first that is not a trusted proxy.
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    forwarded
        .iter()
        .rev()
        .map(|a| a.parse::<IpAddr>())
        .take_while(Result::is_ok)
        .flatten()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// The client address of a request (unspecified if it has none, which only
/// requests made without the accept loop lack).
pub(crate) fn ip_of(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ClientIp>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0)
}

/// Who a request comes from: the visitor of a valid signed cookie, or the
/// client's address.
pub(crate) fn client_of(web: &Web, parts: &Parts) -> Client {
    let ip = ip_of(&parts.extensions);
    match crate::auth::cookie(&parts.headers, VISITOR_COOKIE)
        .and_then(|c| web.services.visitors.verify(c))
    {
        Some(id) => Client::visitor(id, ip),
        None => Client::address(ip),
    }
}

/// An extractor for [`client_of`].
pub(crate) struct Visitor(pub Client);

impl FromRequestParts<Web> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        Ok(Visitor(client_of(web, parts)))
    }
}

/// Gives a browser without a valid visitor cookie a new one, on a page it
/// loads.
pub(crate) fn give_cookie(web: &Web, headers: &HeaderMap, response: &mut Response) {
    let valid = crate::auth::cookie(headers, VISITOR_COOKIE)
        .and_then(|c| web.services.visitors.verify(c))
        .is_some();
    if valid {
        return;
    }
    let secure = if web.secure_cookies { "; Secure" } else { "" };
    if let Ok(value) = web.services.visitors.issue()
        && let Ok(cookie) = HeaderValue::from_str(&format!(
            "{VISITOR_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000{secure}"
        ))
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn forwarded_addresses_count_only_through_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let phone: IpAddr = "192.0.2.7".parse().unwrap();
        let spoofed = forwarded("203.0.113.9, 192.0.2.7");
        // From the trusted proxy: the address it saw (the spoofed entry
        // the phone itself wrote is further left, and ignored).
        assert_eq!(client_ip(proxy, &spoofed, &[proxy]), phone);
        // From anyone else, the header is theirs to invent: ignored.
        assert_eq!(client_ip(phone, &spoofed, &[proxy]), phone);
        assert_eq!(client_ip(proxy, &spoofed, &[]), proxy);
        // Two trusted proxies in a row.
        let inner: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            client_ip(inner, &forwarded("192.0.2.7, 10.0.0.1"), &[proxy, inner]),
            phone
        );
        // Junk: the proxy itself.
        assert_eq!(client_ip(proxy, &forwarded("junk"), &[proxy]), proxy);
    }
}
