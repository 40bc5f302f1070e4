//! Who a request is: `Authorization: Basic` (argon2-verified, then cached briefly) or `Bearer`
//! (a login token), and for plain HTTP requests without the header, root on loopback while root
//! has no password — but only for a [`local_request`]: a web page of another site open in a
//! browser on the same machine must not borrow that (cross-site request forgery, DNS rebinding).
//! Password checks that need argon2 run on blocking threads behind a [`PasswordGate`], so wrong
//! passwords, however many, never occupy the async workers that serve everyone else.
//!
//! May import: the engine's public surface and the ground floor.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use tokio::sync::Semaphore;

use crate::auth::Authenticated;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::session::Session;

/// Password checks waiting for a turn beyond which more are refused (429).
pub const MAX_WAITING_PASSWORD_CHECKS: usize = 64;

/// Where argon2 password verifications run (about 19 MiB and tens of milliseconds of CPU each):
/// on blocking threads, at most half the CPUs at once (at least one), with at most
/// [`MAX_WAITING_PASSWORD_CHECKS`] waiting; a check beyond that is `RATE_LIMIT_EXCEEDED`. So a
/// flood of wrong passwords costs bounded memory and CPU, and statements keep their workers.
#[derive(Debug)]
pub(super) struct PasswordGate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl Default for PasswordGate {
    fn default() -> PasswordGate {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordGate {
            permits: Arc::new(Semaphore::new((cpus / 2).max(1))),
            waiting: AtomicUsize::new(0),
        }
    }
}

impl PasswordGate {
    /// Runs `check` on a blocking thread when its turn comes.
    ///
    /// # Errors
    /// `check`'s error; [`Error::RateLimited`] when too many checks wait already.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        check: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        /// Counts a waiting check until dropped.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let ahead = self.waiting.fetch_add(1, Ordering::Relaxed);
        let waiting = Waiting(&self.waiting);
        if ahead >= MAX_WAITING_PASSWORD_CHECKS {
            return Err(Error::RateLimited(format!(
                "too many password checks at once (over {MAX_WAITING_PASSWORD_CHECKS} waiting): \
                 retry shortly, or log in once and send the token"
            )));
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("password checks are closed".into()))?;
        drop(waiting);
        // The permit goes with the work: a caller who leaves does not free its turn early.
        tokio::task::spawn_blocking(move || {
            let _turn = permit;
            check()
        })
        .await
        .unwrap_or_else(|_| Err(Error::Internal("password check failed unexpectedly".into())))
    }
}

/// The caller named by the `Authorization` header (`Basic` or `Bearer`); None without one.
pub(super) async fn authenticate_header(
    engine: &Arc<Engine>,
    gate: &PasswordGate,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Option<Result<Authenticated>> {
    let value = headers.get(header::AUTHORIZATION)?;
    Some(authenticate_value(engine, gate, value, local_request(headers, peer)).await)
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

async fn authenticate_value(
    engine: &Arc<Engine>,
    gate: &PasswordGate,
    value: &header::HeaderValue,
    local: bool,
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
        let session = match engine.users().authenticate_cached(user, pass, local) {
            Some(decided) => decided?,
            None => {
                let (engine, user, pass) = (engine.clone(), user.to_string(), pass.to_string());
                gate.run(move || engine.users().authenticate(&user, &pass, local))
                    .await?
            }
        };
        return Ok(Authenticated {
            session,
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
pub(super) async fn authenticate(
    engine: &Arc<Engine>,
    gate: &PasswordGate,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Session> {
    match authenticate_header(engine, gate, headers, peer).await {
        Some(auth) => auth.map(|a| a.session),
        None => engine.users().anonymous_root(local_request(headers, peer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machines_own_requests_are_local() {
        let lo = "127.0.0.1:5000";
        // (peer, Host, Origin, local?)
        let cases = [
            (lo, None, None, true),
            (lo, Some("127.0.0.1:8080"), None, true),
            (lo, Some("localhost:8080"), None, true),
            ("[::1]:5000", Some("[::1]:8080"), None, true),
            (
                lo,
                Some("127.0.0.1:8080"),
                Some("http://127.0.0.1:8080"),
                true,
            ),
            (lo, Some("LOCALHOST"), Some("http://localhost"), true),
            // Another site's page, a rebound name, an opaque origin, another port's page, a
            // remote peer.
            (
                lo,
                Some("127.0.0.1:8080"),
                Some("http://evil.example"),
                false,
            ),
            (lo, Some("evil.example:8080"), None, false),
            (lo, Some("127.0.0.1.evil.example"), None, false),
            (lo, Some("127.0.0.1:8080"), Some("null"), false),
            (
                lo,
                Some("127.0.0.1:8080"),
                Some("http://127.0.0.1:3000"),
                false,
            ),
            ("10.0.0.5:5000", Some("127.0.0.1:8080"), None, false),
        ];
        for (peer, host, origin, local) in cases {
            let mut headers = HeaderMap::new();
            if let Some(h) = host {
                headers.insert(header::HOST, h.parse().unwrap());
            }
            if let Some(o) = origin {
                headers.insert(header::ORIGIN, o.parse().unwrap());
            }
            assert_eq!(
                local_request(&headers, peer.parse().unwrap()),
                local,
                "{peer} {host:?} {origin:?}"
            );
        }
    }
}
