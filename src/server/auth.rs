//! Who a request is: `Authorization: Basic` (argon2-verified, then cached briefly) or `Bearer`
//! (a login token), and for plain HTTP requests without the header, root on loopback while root
//! has no password — but only for a [`local_request`]: a web page of another site open in a
//! browser on the same machine must not borrow that (cross-site request forgery, DNS rebinding).
//!
//! May import: the engine's public surface and the ground floor.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, header};
use base64::Engine as _;

use crate::auth::Authenticated;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::session::Session;

/// The caller named by the `Authorization` header (`Basic` or `Bearer`); None without one.
pub(super) fn authenticate_header(
    engine: &Engine,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Option<Result<Authenticated>> {
    let value = headers.get(header::AUTHORIZATION)?;
    Some(authenticate_value(
        engine,
        value,
        local_request(headers, peer),
    ))
}

/// Whether a request may use root's missing password (what the engine calls "loopback"): it
/// comes from a loopback address, names this machine in `Host` (`localhost` or a loopback IP,
/// so a site whose name an attacker re-pointed at 127.0.0.1 gets nothing: DNS rebinding), and,
/// when a browser sent `Origin`, the page is this server's own (`Origin` names the `Host`), so
/// another site's page cannot post SQL to it (cross-site request forgery). The console, curl,
/// `kalamdb sql` and the clients pass; a browser tab of another site does not.
pub(super) fn local_request(headers: &HeaderMap, peer: SocketAddr) -> bool {
    if !peer.ip().is_loopback() {
        return false;
    }
    let Some(host) = headers.get(header::HOST) else {
        return true; // HTTP/1.0 without Host: no browser sends that
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    if !is_loopback_host(host) {
        return false;
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
    }
}

/// Whether `host` (`name[:port]`, IPv6 in brackets) is `localhost` or a loopback IP.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn authenticate_value(
    engine: &Engine,
    value: &header::HeaderValue,
    loopback: bool,
) -> Result<Authenticated> {
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthorized("malformed Authorization header".into()))?;
    if let Some(b64) = value.strip_prefix("Basic ") {
        let malformed = || Error::Unauthorized("malformed Basic credentials".into());
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| malformed())?;
        let text = String::from_utf8(raw).map_err(|_| malformed())?;
        let (user, pass) = text.split_once(':').ok_or_else(malformed)?;
        return Ok(Authenticated {
            session: engine.users().authenticate(user, pass, loopback)?,
            expires_at: None,
        });
    }
    if let Some(token) = value.strip_prefix("Bearer ") {
        return engine.authenticate_token(token.trim());
    }
    Err(Error::Unauthorized(
        "unsupported Authorization scheme: use Basic or Bearer".into(),
    ))
}

/// The session of an HTTP request: its `Authorization` header, else root for a
/// [`local_request`] while root has no password.
pub(super) fn authenticate(
    engine: &Engine,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Session> {
    match authenticate_header(engine, headers, peer) {
        Some(auth) => auth.map(|a| a.session),
        None => engine.users().anonymous_root(local_request(headers, peer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, pairs: &[(&str, &str)]) -> bool {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        local_request(&headers, peer.parse().unwrap())
    }

    #[test]
    fn only_this_machines_own_requests_are_local() {
        let lo = "127.0.0.1:5000";
        assert!(request(lo, &[]));
        assert!(request(lo, &[("host", "127.0.0.1:8080")]));
        assert!(request(lo, &[("host", "localhost:8080")]));
        assert!(request("[::1]:5000", &[("host", "[::1]:8080")]));
        assert!(request(
            lo,
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080")
            ]
        ));
        assert!(request(
            lo,
            &[("host", "LOCALHOST"), ("origin", "http://localhost")]
        ));
        // Another site's page, a rebound name, an opaque origin, another port's page, a remote peer.
        assert!(!request(
            lo,
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example")
            ]
        ));
        assert!(!request(lo, &[("host", "evil.example:8080")]));
        assert!(!request(lo, &[("host", "127.0.0.1.evil.example")]));
        assert!(!request(
            lo,
            &[("host", "127.0.0.1:8080"), ("origin", "null")]
        ));
        assert!(!request(
            lo,
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:3000")
            ]
        ));
        assert!(!request("10.0.0.5:5000", &[("host", "127.0.0.1:8080")]));
    }
}
