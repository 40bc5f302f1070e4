//! The web console: `console/` at the repository root (an HTML page, a script, a style sheet),
//! compiled into the binary and served at `/` and `/console/…`, so a running server is all a
//! browser needs (no CDN, no second server). The page talks to the public API only.
//!
//! Every answer forbids framing and sniffing, and its Content-Security-Policy admits scripts,
//! styles and connections (HTTP and the WebSocket) from this server alone.
//!
//! May import: nothing of the crate (static files).

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page's Content-Security-Policy: own origin only; no inline script or style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file: its media type and its text.
struct Asset {
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_str!("../../console/index.html"),
};

const SCRIPT: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../../console/console.js"),
};

const STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_str!("../../console/console.css"),
};

/// The console's routes: `GET /` (the page), `GET /console/console.js`, `GET /console/console.css`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { serve(&INDEX) }))
        .route("/console/console.js", get(|| async { serve(&SCRIPT) }))
        .route("/console/console.css", get(|| async { serve(&STYLE) }))
}

fn serve(asset: &'static Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        ],
        asset.body,
    )
        .into_response()
}
