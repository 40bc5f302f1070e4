//! A small HTTP client for `POST /v1/api/sql`, used by `kalamdb sql` and the slt `server` and
//! `crash` modes. Errors come back as the same [`Error`] the engine raised, so one expected
//! error matches in every mode.
//!
//! May import: the ground floor (`error`, `result`). It speaks HTTP to a server; it never opens an engine.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::result::ColumnInfo;

/// One statement's result as decoded from JSON.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RemoteResult {
    /// Columns (absent for DDL/DML).
    #[serde(default)]
    pub schema: Vec<RemoteColumn>,
    /// Rows (absent for DDL/DML).
    #[serde(default)]
    pub rows: Option<Vec<Vec<Value>>>,
    /// Rows returned or affected.
    pub row_count: usize,
    /// DDL/DML message.
    pub message: Option<String>,
}

/// A result column as decoded from JSON.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RemoteColumn {
    /// Name.
    pub name: String,
    /// SQL type name.
    pub data_type: String,
}

impl From<ColumnInfo> for RemoteColumn {
    fn from(c: ColumnInfo) -> Self {
        RemoteColumn {
            name: c.name,
            data_type: c.data_type,
        }
    }
}

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Client {
    base_url: String,
    http: reqwest::Client,
    credentials: Option<(String, String)>,
}

impl Client {
    /// A client for `base_url` (e.g. `http://127.0.0.1:8080`); `credentials` for Basic auth.
    pub fn new(base_url: &str, credentials: Option<(String, String)>) -> Client {
        Client {
            base_url: base_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            credentials,
        }
    }

    /// True if the healthcheck answers `healthy`.
    pub async fn healthy(&self) -> bool {
        match self
            .http
            .get(format!("{}/v1/api/healthcheck", self.base_url))
            .send()
            .await
        {
            Ok(r) => r
                .json::<Value>()
                .await
                .map(|v| v.get("status").and_then(Value::as_str) == Some("healthy"))
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Runs `sql`; returns one result per statement.
    ///
    /// # Errors
    /// The server's error (same code and message), or [`Error::Internal`] if unreachable.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RemoteResult>> {
        let mut req = self
            .http
            .post(format!("{}/v1/api/sql", self.base_url))
            .json(&serde_json::json!({"sql": sql}));
        if let Some((u, p)) = &self.credentials {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req = req.header("Authorization", format!("Basic {token}"));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Error::Internal(format!("request failed: {e}")))?;
        let body: Value = resp
            .json()
            .await
            .map_err(|e| Error::Internal(format!("bad response: {e}")))?;
        let field = |path: &str| body.pointer(path).and_then(Value::as_str);
        if field("/status") == Some("success") {
            let results = body.get("results").cloned().unwrap_or_default();
            return serde_json::from_value(results)
                .map_err(|e| Error::Internal(format!("bad response: {e}")));
        }
        let code = field("/error/code").unwrap_or("INTERNAL_ERROR");
        let message = field("/error/message").unwrap_or("").to_string();
        Err(Error::from_code(code, message))
    }
}
