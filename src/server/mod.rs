//! The HTTP front end (SPEC section 7): `GET /v1/api/healthcheck`, `POST /v1/api/auth/login`,
//! `POST /v1/api/sql`, the live-query WebSocket `GET /v1/ws` (`ws.rs`), and the web console at
//! `/` (`console.rs`).
//! A thin adapter over [`Engine::execute_with_params`] and the engine's live-query calls: it
//! authenticates (Basic or Bearer), decodes the request, and shapes the JSON. Every error
//! leaves as `{"status":"error", ...}` with the SPEC status.
//!
//! May import: the engine's public surface and the ground floor. Nothing imports it but the binary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::Engine;
use crate::error::{Error, Result};

pub mod api;
mod auth;
mod console;
mod ws;

/// Largest `POST /v1/api/auth/login` body, in bytes.
const LOGIN_BODY_BYTES: usize = 16 * 1024;

/// The API version reported by the healthcheck.
pub const API_VERSION: &str = "v1";

/// The body of `POST /v1/api/sql`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One or more `;`-separated statements.
    pub sql: String,
    /// Values for `$1, $2, ...`: JSON scalars (integers beyond 64 bits as strings).
    #[serde(default)]
    pub params: Vec<Value>,
    /// Default namespace for unqualified table names.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// [`SqlRequest`] as received: parameters kept as their raw JSON text until checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSqlRequest<'a> {
    sql: String,
    #[serde(default, borrow)]
    params: Vec<&'a serde_json::value::RawValue>,
    #[serde(default)]
    namespace: Option<String>,
}

/// Decodes a request body. A parameter written as an integer outside the 64-bit range is an
/// error: JSON parsers would silently round it to the nearest double (`-9223372036854775809`
/// becoming `i64::MIN`); such values must be sent as strings.
///
/// # Errors
/// [`Error::InvalidParameter`] for malformed JSON, unknown fields, or such a parameter.
pub fn decode_request(body: &[u8]) -> Result<SqlRequest> {
    let raw: RawSqlRequest<'_> = decode_object(body)
        .map_err(|e| Error::InvalidParameter(format!("invalid request JSON: {e}")))?;
    let mut params = Vec::with_capacity(raw.params.len());
    for (i, p) in raw.params.iter().enumerate() {
        let text = p.get().trim();
        let digits = text.strip_prefix('-').unwrap_or(text);
        if !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && text.parse::<i64>().is_err()
            && text.parse::<u64>().is_err()
        {
            return Err(Error::InvalidParameter(format!(
                "parameter ${}: the integer {text} is outside the 64-bit range; send it as a string",
                i.saturating_add(1)
            )));
        }
        params.push(serde_json::from_str(text).map_err(|e| {
            Error::InvalidParameter(format!("invalid parameter ${}: {e}", i.saturating_add(1)))
        })?);
    }
    Ok(SqlRequest {
        sql: raw.sql,
        params,
        namespace: raw.namespace,
    })
}

/// Decodes a JSON object body into `T`. Only an object: serde would also accept a struct
/// written as an array of its fields (`["alice", "pw"]`), which the API does not document.
///
/// # Errors
/// The parser's message, or that the body is not an object.
fn decode_object<'a, T: Deserialize<'a>>(body: &'a [u8]) -> std::result::Result<T, String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err("the body must be a JSON object".into());
    }
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

fn error_response(e: &Error, started: Instant) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = api::ErrorResponse::of(e, took_ms(started));
    (status, axum::Json(body)).into_response()
}

fn took_ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// Per-user token buckets (SPEC section 7, 429 `RATE_LIMIT_EXCEEDED`).
#[derive(Debug, Default)]
struct RateLimiter {
    buckets: std::sync::Mutex<std::collections::HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one token for `user`.
    fn check(&self, user: &str, per_sec: f64, burst: u32) -> Result<()> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, last) = buckets
            .entry(user.to_string())
            .or_insert((f64::from(burst), now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * per_sec).min(f64::from(burst));
        *last = now;
        if *tokens < 1.0 {
            return Err(Error::RateLimited(format!(
                "too many requests from '{user}': the limit is {per_sec} per second (burst {burst})"
            )));
        }
        *tokens -= 1.0;
        Ok(())
    }
}

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
struct AppState {
    engine: Arc<Engine>,
    limiter: Arc<RateLimiter>,
    passwords: Arc<auth::PasswordGate>,
}

impl axum::extract::FromRef<AppState> for Arc<auth::PasswordGate> {
    fn from_ref(state: &AppState) -> Arc<auth::PasswordGate> {
        state.passwords.clone()
    }
}

impl axum::extract::FromRef<AppState> for Arc<Engine> {
    fn from_ref(state: &AppState) -> Arc<Engine> {
        state.engine.clone()
    }
}

/// The OpenAPI document of the HTTP API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "KalamDB HTTP API",
        description = "SQL over HTTP, login, live queries over a WebSocket, metrics."
    ),
    paths(
        healthcheck,
        sql,
        login,
        metrics,
        openapi,
        ws::upgrade
    ),
    components(schemas(
        SqlRequest,
        api::SqlResponse,
        api::StatementResult,
        api::ErrorResponse,
        api::ErrorBody,
        api::LoginRequest,
        crate::auth::token::IssuedToken,
        api::Healthcheck,
        crate::result::ColumnInfo
    )),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// Declares the two ways to authenticate (SPEC section 7).
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Builds the router for `engine`.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/v1/api/healthcheck", get(healthcheck))
        .route("/v1/api/sql", post(sql))
        .route(
            "/v1/api/auth/login",
            post(login).layer(DefaultBodyLimit::max(LOGIN_BODY_BYTES)),
        )
        .route("/v1/ws", get(ws::upgrade))
        .route("/metrics", get(metrics))
        .route("/v1/api/openapi.json", get(openapi))
        .merge(console::routes())
        .route_layer(axum::middleware::from_fn(count_request))
        .layer(DefaultBodyLimit::disable())
        .with_state(AppState {
            engine,
            limiter: Arc::default(),
            passwords: Arc::default(),
        })
}

/// Records every request to a route in `kalamdb_http_requests_total` and its duration
/// (labelled by the route's template, so no request can create a series of its own).
async fn count_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(req).await;
    crate::telemetry::http_request(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`: the Prometheus text format (`Engine::metrics_text`), for role dba or
/// system (root from loopback while root has no password, like `/v1/api/sql`).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    description = "Prometheus text format 0.0.4 (docs/metrics.md); roles dba and system.",
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String),
        (status = "4XX", description = "Not authenticated, or not dba/system", body = api::ErrorResponse)
    ),
    security((), ("basic" = []), ("bearer" = []))
)]
async fn metrics(
    State(AppState {
        engine, passwords, ..
    }): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let allowed = auth::authenticate(&engine, &passwords, &headers, peer)
        .await
        .and_then(|s| s.require(crate::session::Role::Dba, "reading /metrics"));
    if let Err(e) = allowed {
        return error_response(&e, started);
    }
    match engine.metrics_text().await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error_response(&e, started),
    }
}

/// `GET /v1/api/openapi.json`: this API's OpenAPI 3.1 description ([`ApiDoc`]).
#[utoipa::path(
    get,
    path = "/v1/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
async fn openapi() -> impl IntoResponse {
    use utoipa::OpenApi as _;
    axum::Json(ApiDoc::openapi())
}

/// `GET /v1/api/healthcheck`: no authentication, no statement.
#[utoipa::path(
    get,
    path = "/v1/api/healthcheck",
    tag = "operations",
    responses((status = 200, description = "The server is up", body = api::Healthcheck))
)]
async fn healthcheck() -> impl IntoResponse {
    axum::Json(api::Healthcheck {
        status: "healthy".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: API_VERSION.into(),
    })
}

/// `POST /v1/api/auth/login`: `{"username","password"}` → `{"access_token","token_type",
/// "expires_in"}`, or 401 `UNAUTHORIZED`.
#[utoipa::path(
    post,
    path = "/v1/api/auth/login",
    tag = "auth",
    request_body = api::LoginRequest,
    responses(
        (status = 200, description = "A token for Bearer auth and the WebSocket", body = crate::auth::token::IssuedToken),
        (status = "4XX", description = "Bad credentials (401), a malformed body (400), too many attempts", body = api::ErrorResponse)
    )
)]
async fn login(
    State(AppState {
        engine, passwords, ..
    }): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let req: api::LoginRequest = match decode_object(&body) {
        Ok(r) => r,
        Err(e) => {
            let e = Error::InvalidParameter(format!(
                "invalid login request: {e} (expected {{\"username\": …, \"password\": …}})"
            ));
            return error_response(&e, started);
        }
    };
    // Password verification is deliberately slow (argon2): keep it off the I/O threads.
    let local = auth::local_request(&headers, peer);
    let issued = passwords
        .run(move || engine.login(&req.username, &req.password, local))
        .await;
    match issued {
        Ok(t) => axum::Json(t).into_response(),
        Err(e) => error_response(&e, started),
    }
}

/// `POST /v1/api/sql`: runs one or more statements (SPEC section 7).
#[utoipa::path(
    post,
    path = "/v1/api/sql",
    tag = "sql",
    request_body = SqlRequest,
    responses(
        (status = 200, description = "Every statement ran", body = api::SqlResponse),
        (status = "4XX", description = "The request or a statement was refused or failed: \
            401 not authenticated, 403 not allowed, 413 too large, 429 rate limited, 400 \
            everything else (`error.code` tells which: SPEC section 7)", body = api::ErrorResponse),
        (status = "5XX", description = "An internal error", body = api::ErrorResponse)
    ),
    security((), ("basic" = []), ("bearer" = []))
)]
async fn sql(
    State(AppState {
        engine,
        limiter,
        passwords,
    }): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let limit = engine.config().max_sql_bytes;
    // The body may carry params and JSON escaping around the SQL; allow some headroom.
    let max_body = limit.saturating_mul(2).saturating_add(64 * 1024);
    let too_large = || {
        Error::PayloadTooLarge(format!(
            "request body exceeds the {max_body}-byte limit (max_sql_bytes is {limit})"
        ))
    };
    // Refuse an announced oversize body at once instead of waiting for bytes never sent.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > max_body as u64) {
        return error_response(&too_large(), started);
    }
    let timeout_secs = engine.config().request_body_timeout_secs;
    let read = axum::body::to_bytes(body, max_body);
    let bytes: Bytes =
        match tokio::time::timeout(std::time::Duration::from_secs(timeout_secs), read).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => return error_response(&too_large(), started),
            Err(_) => {
                return error_response(
                    &Error::LimitExceeded(format!(
                        "request_body_timeout_secs: the request body did not arrive within \
                         {timeout_secs} s"
                    )),
                    started,
                );
            }
        };
    let session = match auth::authenticate(&engine, &passwords, &headers, peer).await {
        Ok(s) => s,
        Err(e) => return error_response(&e, started),
    };
    if let Some(per_sec) = engine.config().rate_limit_per_sec
        && let Err(e) = limiter.check(&session.user_id, per_sec, engine.config().rate_limit_burst)
    {
        return error_response(&e, started);
    }
    let req = match decode_request(&bytes) {
        Ok(r) => r,
        Err(e) => return error_response(&e, started),
    };
    let mut session = session;
    if let Some(ns) = req.namespace {
        session.namespace = Some(ns);
    }
    match engine
        .execute_with_params(&req.sql, &session, &req.params)
        .await
    {
        Ok(results) => axum::Json(api::SqlResponse {
            status: api::Success::Success,
            results: results.iter().map(api::StatementResult::from).collect(),
            took: took_ms(started),
        })
        .into_response(),
        Err(e) => {
            if e.http_status() >= 500 {
                tracing::error!(error = %e, "statement failed");
            }
            error_response(&e, started)
        }
    }
}

/// Background maintenance (flush policies, STREAM TTL, tombstone retention), every
/// `maintenance_interval_secs`.
async fn maintain_periodically(engine: Arc<Engine>) {
    let secs = engine.config().maintenance_interval_secs.max(1);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(secs));
    loop {
        tick.tick().await;
        if let Err(e) = engine.run_maintenance(crate::ids::now_millis()).await {
            tracing::warn!(error = %e, "maintenance pass failed");
        }
    }
}

/// Serves `engine` on `bind` until `shutdown` resolves, then flushes the WAL. Connections are
/// served on the engine's query runtime ([`Engine::host`]): a request's statements run on the
/// thread that received it.
///
/// # Errors
/// [`Error::Internal`] when the address cannot be bound.
pub async fn serve(
    engine: Arc<Engine>,
    bind: &str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = std::net::TcpListener::bind(bind)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| Error::Internal(format!("cannot bind {bind}: {e}")))?;
    let served = engine
        .clone()
        .host(serve_here(engine.clone(), listener, shutdown))
        .await;
    // WebSocket connections still running on the query runtime hold the engine, which owns
    // that runtime: stop it, then wait (bounded) for them to let go, so the engine and RocksDB
    // close here rather than racing the process exit.
    engine.stop_runtime();
    let deadline = crate::ids::deadline(std::time::Duration::from_secs(5));
    while Arc::strong_count(&engine) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    served?
}

/// The body of [`serve`], on the engine's query runtime (connections, and so statements, are
/// served on its threads).
async fn serve_here(
    engine: Arc<Engine>,
    listener: std::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tracing::info!("KalamDB listening on http://{}", listener.local_addr()?);
    let app = router(engine.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let orphans = engine.remove_orphan_files().await?;
    if orphans > 0 {
        tracing::info!(
            files = orphans,
            "removed orphan Parquet files left by a crash"
        );
    }
    let evictor = tokio::spawn(maintain_periodically(engine.clone()));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    evictor.abort();
    // Let running flushes finish (a job cut off here would be marked failed at the next start).
    if engine
        .wait_for_jobs(std::time::Duration::from_secs(30))
        .await
        .is_err()
    {
        tracing::warn!("stopping with flush jobs still running; they will be marked failed");
    }
    engine.shutdown()?;
    tracing::info!("KalamDB stopped");
    Ok(())
}
