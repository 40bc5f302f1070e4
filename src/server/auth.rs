//! Who a request is: `Authorization: Basic` (argon2-verified, then cached briefly) or `Bearer`
//! (a login token), and for plain HTTP requests without the header, root on loopback while root
//! has no password.
//!
//! May import: the engine's public surface and the ground floor.

use std::net::SocketAddr;

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
    Some(authenticate_value(engine, value, peer.ip().is_loopback()))
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

/// The session of an HTTP request: its `Authorization` header, else root on loopback while
/// root has no password.
pub(super) fn authenticate(
    engine: &Engine,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Session> {
    match authenticate_header(engine, headers, peer) {
        Some(auth) => auth.map(|a| a.session),
        None => engine.users().anonymous_root(peer.ip().is_loopback()),
    }
}
