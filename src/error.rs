//! The one error type of KalamDB.
//!
//! Every failure that reaches a client is an [`Error`]; its [`Error::code`] is one of the
//! machine-readable codes of SPEC section 7 and [`Error::http_status`] the HTTP status that goes
//! with it. The HTTP adapter and the slt runner both print errors as `CODE: message`, so one
//! `statement error <regex>` matches in every mode.
//!
//! May import: nothing of the crate (a ground-floor module).

use std::fmt;

use datafusion::error::DataFusionError;

/// A KalamDB failure. The payload is the human-readable message (no stack traces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The SQL could not be parsed, or names something that cannot exist (bad identifier, type).
    InvalidSql(String),
    /// A table named by the statement does not exist.
    TableNotFound(String),
    /// A namespace named by the statement does not exist.
    NamespaceNotFound(String),
    /// A namespace, table or user of that name already exists.
    AlreadyExists(String),
    /// A request field or statement option is malformed or out of bounds.
    InvalidParameter(String),
    /// The request carried no statement.
    EmptySql,
    /// The statement was valid but failed while running (constraint violations, casts, ...).
    Execution(String),
    /// No or wrong credentials.
    Unauthorized(String),
    /// The caller's role does not allow the action (SPEC section 6).
    PermissionDenied(String),
    /// The request body exceeds the configured limit.
    PayloadTooLarge(String),
    /// The caller sent more requests than the configured rate limit allows.
    RateLimited(String),
    /// The statement hit one of the limits of `docs/limits.md` (time, memory, result size,
    /// nesting depth). The message names the limit and its config key; nothing was changed.
    /// Modelled on PostgreSQL's SQLSTATE class 54 "program limit exceeded" and 57014
    /// "statement timeout".
    LimitExceeded(String),
    /// A bug or an I/O failure on our side.
    Internal(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The SPEC section 7 error code, e.g. `"TABLE_NOT_FOUND"`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidSql(_) => "INVALID_SQL",
            Error::TableNotFound(_) => "TABLE_NOT_FOUND",
            Error::NamespaceNotFound(_) => "NAMESPACE_NOT_FOUND",
            Error::AlreadyExists(_) => "ALREADY_EXISTS",
            Error::InvalidParameter(_) => "INVALID_PARAMETER",
            Error::EmptySql => "EMPTY_SQL",
            Error::Execution(_) => "SQL_EXECUTION_ERROR",
            Error::Unauthorized(_) => "UNAUTHORIZED",
            Error::PermissionDenied(_) => "PERMISSION_DENIED",
            Error::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Error::RateLimited(_) => "RATE_LIMIT_EXCEEDED",
            Error::LimitExceeded(_) => "LIMIT_EXCEEDED",
            Error::Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status for this error (400, 401, 403, 413, 429 or 500; `LIMIT_EXCEEDED` is 400).
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Unauthorized(_) => 401,
            Error::PermissionDenied(_) => 403,
            Error::PayloadTooLarge(_) => 413,
            Error::RateLimited(_) => 429,
            Error::Internal(_) => 500,
            _ => 400,
        }
    }

    /// The message without the code.
    pub fn message(&self) -> String {
        match self {
            Error::EmptySql => "empty SQL: the request carries no statement".to_string(),
            Error::InvalidSql(m)
            | Error::TableNotFound(m)
            | Error::NamespaceNotFound(m)
            | Error::AlreadyExists(m)
            | Error::InvalidParameter(m)
            | Error::Execution(m)
            | Error::Unauthorized(m)
            | Error::PermissionDenied(m)
            | Error::PayloadTooLarge(m)
            | Error::RateLimited(m)
            | Error::LimitExceeded(m)
            | Error::Internal(m) => m.clone(),
        }
    }

    /// Rebuilds an error from a code and message (the inverse of `code()`/`message()`), used by
    /// the HTTP client so server-mode tests see the same error as in-process ones.
    pub fn from_code(code: &str, message: String) -> Error {
        match code {
            "INVALID_SQL" => Error::InvalidSql(message),
            "TABLE_NOT_FOUND" => Error::TableNotFound(message),
            "NAMESPACE_NOT_FOUND" => Error::NamespaceNotFound(message),
            "ALREADY_EXISTS" => Error::AlreadyExists(message),
            "INVALID_PARAMETER" => Error::InvalidParameter(message),
            "EMPTY_SQL" => Error::EmptySql,
            "SQL_EXECUTION_ERROR" => Error::Execution(message),
            "UNAUTHORIZED" => Error::Unauthorized(message),
            "PERMISSION_DENIED" => Error::PermissionDenied(message),
            "PAYLOAD_TOO_LARGE" => Error::PayloadTooLarge(message),
            "RATE_LIMIT_EXCEEDED" => Error::RateLimited(message),
            "LIMIT_EXCEEDED" => Error::LimitExceeded(message),
            _ => Error::Internal(message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for Error {}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Internal(format!("storage error: {e}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(format!("I/O error: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("metadata encoding error: {e}"))
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Error::Execution(e.to_string())
    }
}

impl From<DataFusionError> for Error {
    /// Maps DataFusion failures onto SPEC codes; an [`Error`] we wrapped ourselves (via
    /// [`Error::into_datafusion`]) comes back out unchanged.
    fn from(e: DataFusionError) -> Self {
        if let Some(ours) = find_kalam_error(&e) {
            return ours;
        }
        let root = e.find_root();
        match root {
            DataFusionError::SQL(p, _) => Error::InvalidSql(p.to_string()),
            DataFusionError::SchemaError(s, _) => Error::Execution(s.to_string()),
            DataFusionError::Plan(m) => {
                let lower = m.to_lowercase();
                if lower.contains("table") && lower.contains("not found") {
                    // DataFusion names tables with our internal catalog prefix; users never write it.
                    Error::TableNotFound(m.replace("'kalam.", "'"))
                } else {
                    Error::Execution(m.clone())
                }
            }
            DataFusionError::NotImplemented(m) => Error::Execution(format!("not supported: {m}")),
            DataFusionError::ResourcesExhausted(m) => Error::LimitExceeded(format!(
                "statement_memory_bytes: the statement needs more memory than its limit allows \
                 ({m})"
            )),
            DataFusionError::IoError(io) => Error::Internal(format!("I/O error: {io}")),
            // DataFusion reports some invalid SQL as "internal" (e.g. `0 BETWEEN TRUE AND 0`
            // fails type coercion with an Internal error). It is still the statement that
            // cannot run, not our server failing: 400, logged for the bug report it may be.
            DataFusionError::Internal(m) => {
                tracing::warn!(error = %m, "DataFusion internal error");
                Error::Execution(m.clone())
            }
            other => Error::Execution(strip_df_prefix(&other.to_string())),
        }
    }
}

fn find_kalam_error(e: &DataFusionError) -> Option<Error> {
    let mut cur: &dyn std::error::Error = e;
    loop {
        if let Some(k) = cur.downcast_ref::<Error>() {
            return Some(k.clone());
        }
        if let Some(DataFusionError::External(inner)) = cur.downcast_ref::<DataFusionError>()
            && let Some(k) = inner.downcast_ref::<Error>()
        {
            return Some(k.clone());
        }
        if let Some(DataFusionError::Context(_, inner)) = cur.downcast_ref::<DataFusionError>() {
            cur = inner.as_ref();
            continue;
        }
        if let Some(DataFusionError::Shared(inner)) = cur.downcast_ref::<DataFusionError>() {
            cur = inner.as_ref();
            continue;
        }
        if let Some(DataFusionError::ArrowError(inner, _)) = cur.downcast_ref::<DataFusionError>()
            && let datafusion::arrow::error::ArrowError::ExternalError(ext) = inner.as_ref()
        {
            cur = ext.as_ref();
            continue;
        }
        match cur.source() {
            Some(s) => cur = s,
            None => return None,
        }
    }
}

fn strip_df_prefix(s: &str) -> String {
    for p in [
        "Execution error: ",
        "Arrow error: ",
        "Error during planning: ",
    ] {
        if let Some(rest) = s.strip_prefix(p) {
            return rest.to_string();
        }
    }
    s.to_string()
}

impl Error {
    /// Wraps this error for return through a DataFusion trait method; `From<DataFusionError>`
    /// unwraps it again.
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}
