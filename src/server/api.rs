//! The HTTP API's bodies: the JSON the handlers receive and send, as types whose schemas the
//! OpenAPI document (`ApiDoc` in the parent module, served at `GET /v1/api/openapi.json`) is
//! generated from. `tests/openapi.rs` checks real responses against it.
//!
//! May import: the engine's public surface and the ground floor.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::Error;
use crate::result::{ColumnInfo, QueryResult};

/// `"success"`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Success {
    /// Every statement ran.
    Success,
}

/// `"error"`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Failure {
    /// A statement failed, or the request was refused.
    Error,
}

/// The answer to `POST /v1/api/sql` when every statement ran: one result per statement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlResponse {
    /// Always `success`.
    pub status: Success,
    /// One per statement, in order.
    pub results: Vec<StatementResult>,
    /// Milliseconds from the request's arrival to the response.
    pub took: f64,
}

/// One statement's result: rows with their columns, or a message (DDL, writes).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatementResult {
    /// The columns, for statements that return rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Vec<ColumnInfo>>,
    /// The rows, each an array in `schema` order; integers beyond 2^53 and decimals are
    /// strings, timestamps ISO-8601 UTC strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<Vec<Value>>>,
    /// Rows returned, or rows written for INSERT/UPDATE/DELETE.
    pub row_count: u64,
    /// What a statement without rows did (`Inserted 2 row(s)`); null for rows.
    #[schema(required = true)]
    pub message: Option<String>,
}

impl From<&QueryResult> for StatementResult {
    fn from(r: &QueryResult) -> StatementResult {
        let row_count = r.row_count as u64;
        if r.is_message() {
            StatementResult {
                schema: None,
                rows: None,
                row_count,
                message: r.message.clone(),
            }
        } else {
            StatementResult {
                schema: Some(r.columns()),
                rows: Some(r.json_rows()),
                row_count,
                message: None,
            }
        }
    }
}

/// Every error answer (any 4xx/5xx of the API).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorResponse {
    /// Always `error`.
    pub status: Failure,
    /// Always empty: statements before a failing one are not reported.
    pub results: Vec<StatementResult>,
    /// Milliseconds from the request's arrival to the response.
    pub took: f64,
    /// What went wrong.
    pub error: ErrorBody,
}

/// The error of an [`ErrorResponse`].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// One of SPEC section 7's codes (`SQL_EXECUTION_ERROR`, `PERMISSION_DENIED`, …).
    pub code: String,
    /// For people.
    pub message: String,
    /// `code: message`.
    pub details: String,
}

impl ErrorResponse {
    /// The answer for `e`, `took` ms after the request arrived.
    pub fn of(e: &Error, took: f64) -> ErrorResponse {
        ErrorResponse {
            status: Failure::Error,
            results: Vec::new(),
            took,
            error: ErrorBody {
                code: e.code().to_string(),
                message: e.message(),
                details: e.to_string(),
            },
        }
    }
}

/// The body of `POST /v1/api/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// A user id.
    pub username: String,
    /// Its password (empty for root from loopback while root has none).
    pub password: String,
}

/// The answer to `GET /v1/api/healthcheck`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// Always `healthy`.
    pub status: String,
    /// The server's version.
    pub version: String,
    /// The API version (`v1`).
    pub api_version: String,
}
