//! A small client of the HTTP API and the live-query WebSocket, used by `kalamdb sql` and the
//! slt `server` and `crash` modes: login, `POST /v1/api/sql`, one subscription. Errors come back as the same [`Error`] the engine raised, so one expected
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
    token: Option<String>,
}

impl Client {
    /// A client for `base_url` (e.g. `http://127.0.0.1:8080`); `credentials` for Basic auth.
    pub fn new(base_url: &str, credentials: Option<(String, String)>) -> Client {
        Client {
            base_url: base_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            credentials,
            token: None,
        }
    }

    /// Logs in (`POST /v1/api/auth/login`) with the credentials (`root` and an empty password
    /// when none: accepted from loopback while root has no password) and sends the token as
    /// `Bearer` from then on. Returns the token's lifetime in seconds.
    ///
    /// # Errors
    /// The server's error (401 `UNAUTHORIZED` for wrong credentials), or [`Error::Internal`]
    /// if unreachable.
    pub async fn login(&mut self) -> Result<u64> {
        let (user, password) = self
            .credentials
            .clone()
            .unwrap_or_else(|| ("root".to_string(), String::new()));
        let req = self
            .http
            .post(format!("{}/v1/api/auth/login", self.base_url))
            .json(&serde_json::json!({"username": user, "password": password}));
        let body = Self::send(req).await?;
        let token = body.get("access_token").and_then(Value::as_str);
        let expires_in = body.get("expires_in").and_then(Value::as_u64);
        match (token, expires_in) {
            (Some(t), Some(e)) => {
                self.token = Some(t.to_string());
                Ok(e)
            }
            _ => Err(Error::Internal(format!("bad login response: {body}"))),
        }
    }

    /// The `Authorization` header value: the token after [`Client::login`], else Basic
    /// credentials, else none.
    fn authorization(&self) -> Option<String> {
        if let Some(t) = &self.token {
            return Some(format!("Bearer {t}"));
        }
        self.credentials.as_ref().map(|(u, p)| {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Basic {basic}")
        })
    }

    /// Sends `req`; the JSON body on success, the server's error otherwise.
    async fn send(req: reqwest::RequestBuilder) -> Result<Value> {
        let resp = req
            .send()
            .await
            .map_err(|e| Error::Internal(format!("request failed: {e}")))?;
        let ok = resp.status().is_success();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| Error::Internal(format!("bad response: {e}")))?;
        if ok && body.get("status").and_then(Value::as_str) != Some("error") {
            return Ok(body);
        }
        let field = |path: &str| body.pointer(path).and_then(Value::as_str);
        let code = field("/error/code").unwrap_or("INTERNAL_ERROR");
        let message = field("/error/message").unwrap_or("").to_string();
        Err(Error::from_code(code, message))
    }

    /// Subscribes to `sql` over `GET /v1/ws` (with the login token or Basic credentials) and
    /// calls `on_message` with every server message until it returns false or the server
    /// closes the connection.
    ///
    /// # Errors
    /// Connection failures and the server's `auth_error` as [`Error::Unauthorized`].
    pub async fn subscribe(
        &self,
        sql: &str,
        mut on_message: impl FnMut(&Value) -> bool,
    ) -> Result<()> {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
        let ws_url = format!(
            "{}/v1/ws",
            self.base_url
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1)
        );
        let failed = |e: tokio_tungstenite::tungstenite::Error| {
            Error::Internal(format!("WebSocket failed: {e}"))
        };
        let mut request = ws_url.into_client_request().map_err(failed)?;
        if let Some(a) = self.authorization() {
            let value = a.parse().map_err(|_| {
                Error::InvalidParameter("credentials are not a valid header".into())
            })?;
            request.headers_mut().insert("Authorization", value);
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(failed)?;
        let subscribe = serde_json::json!({
            "type": "subscribe",
            "subscription": {"id": "cli", "sql": sql},
        });
        ws.send(Message::text(subscribe.to_string()))
            .await
            .map_err(failed)?;
        while let Some(frame) = ws.next().await {
            let Message::Text(text) = frame.map_err(failed)? else {
                continue;
            };
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| Error::Internal(format!("bad message from the server: {e}")))?;
            if v.get("type").and_then(Value::as_str) == Some("auth_error") {
                let m = v.get("message").and_then(Value::as_str).unwrap_or_default();
                return Err(Error::Unauthorized(m.to_string()));
            }
            if !on_message(&v) {
                break;
            }
        }
        Ok(())
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
        if let Some(a) = self.authorization() {
            req = req.header("Authorization", a);
        }
        let body = Self::send(req).await?;
        let results = body.get("results").cloned().unwrap_or_default();
        serde_json::from_value(results).map_err(|e| Error::Internal(format!("bad response: {e}")))
    }
}
