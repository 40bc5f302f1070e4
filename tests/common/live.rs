//! Helpers of the live-query and token tests: the real `kalamdb` binary on a free port, a
//! login, and a WebSocket client that reads JSON messages with a deadline.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use kalamdb::process::ServerProcess;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected message before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// A `kalamdb serve` process over a fresh data directory.
pub struct Live {
    /// The process (killed on drop).
    pub server: ServerProcess,
    /// A plain HTTP client.
    pub http: reqwest::Client,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

/// Starts the binary with extra `KALAMDB_*` environment variables.
pub async fn start_server(env: &[(&str, &str)]) -> Live {
    let dir = tempfile::tempdir().expect("tempdir");
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Live {
        server: launch(dir.path(), &env).await,
        http: reqwest::Client::new(),
        env,
        dir,
    }
}

async fn launch(dir: &std::path::Path, env: &[(String, String)]) -> ServerProcess {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_kalamdb"));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ServerProcess::start_with_env(binary, dir, &env)
        .await
        .expect("server starts")
}

impl Live {
    /// Kills the server (SIGKILL) and starts it again on the same data directory.
    pub async fn restart(&mut self) {
        self.server.kill();
        self.server = launch(self.dir.path(), &self.env).await;
    }

    /// `ws://…/v1/ws`.
    pub fn ws_url(&self) -> String {
        format!("{}/v1/ws", self.server.url.replacen("http://", "ws://", 1))
    }

    /// Runs `sql` as root (loopback, no password); panics unless it succeeds.
    pub async fn root(&self, sql: &str) -> Value {
        let (status, body) = self.sql(sql, None).await;
        assert_eq!(status, 200, "{sql}: {body}");
        body
    }

    /// POSTs `sql` with an optional `Authorization` header value.
    pub async fn sql(&self, sql: &str, authorization: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/v1/api/sql", self.server.url))
            .json(&json!({ "sql": sql }));
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.expect("send");
        (resp.status().as_u16(), resp.json().await.expect("json"))
    }

    /// POSTs a login; the status and the body.
    pub async fn login_raw(&self, user: &str, password: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/api/auth/login", self.server.url))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .expect("send");
        (resp.status().as_u16(), resp.json().await.expect("json"))
    }

    /// Logs in; panics unless it succeeds; the token.
    pub async fn login(&self, user: &str, password: &str) -> String {
        let (status, body) = self.login_raw(user, password).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().expect("token").to_string()
    }

    /// Creates user `id` (password `pw`, role `role`) and returns its token.
    pub async fn user(&self, id: &str, pw: &str, role: &str) -> String {
        self.root(&format!(
            "CREATE USER '{id}' WITH PASSWORD '{pw}' ROLE {role}"
        ))
        .await;
        self.login(id, pw).await
    }

    /// Opens a WebSocket with `Authorization: Bearer token` and reads `auth_success`.
    pub async fn ws(&self, token: &str) -> Ws {
        let mut ws = self.ws_with(Some(&format!("Bearer {token}")), "").await;
        let hello = ws.recv().await;
        assert_eq!(hello["type"], "auth_success", "{hello}");
        ws
    }

    /// Opens a WebSocket with an optional `Authorization` header and a query string.
    pub async fn ws_with(&self, authorization: Option<&str>, query: &str) -> Ws {
        let mut req = format!("{}{query}", self.ws_url())
            .into_client_request()
            .expect("request");
        if let Some(a) = authorization {
            req.headers_mut()
                .insert("Authorization", a.parse().expect("header"));
        }
        let (stream, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("connect");
        Ws { stream }
    }
}

/// A WebSocket client.
pub struct Ws {
    /// The socket.
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Sends a JSON message.
    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::text(text.to_string()))
            .await
            .expect("send");
    }

    /// The next JSON message, or None when the server closed the connection; panics after
    /// [`WAIT`].
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a message within the deadline");
            match frame {
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str(&t).expect("JSON message"));
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next JSON message; panics if the connection closed.
    pub async fn recv(&mut self) -> Value {
        self.next().await.expect("connection open")
    }

    /// Subscribes and reads the `subscription_ack` and every `initial_data_batch`; returns
    /// them in order (or the `error` answering the subscribe).
    pub async fn subscribe(&mut self, id: &str, sql: &str, options: Value) -> Vec<Value> {
        self.send(json!({"type": "subscribe", "subscription": {"id": id, "sql": sql, "options": options}}))
            .await;
        let mut out = Vec::new();
        loop {
            let m = self.recv().await;
            let done = m["type"] == "error"
                || (m["type"] == "initial_data_batch" && m["batch_control"]["has_more"] == false);
            out.push(m);
            if done {
                return out;
            }
        }
    }

    /// Sends `ping` and returns every message that arrived before its `pong`: proves that
    /// nothing else is on its way (messages are sent in order).
    pub async fn drain(&mut self) -> Vec<Value> {
        self.send(json!({"type": "ping"})).await;
        let mut out = Vec::new();
        loop {
            let m = self.recv().await;
            if m["type"] == "pong" {
                return out;
            }
            out.push(m);
        }
    }
}

/// `v` with volatile values replaced: `_seq`/`last_seq` by `[seq]`, timestamps by
/// `[timestamp]`, so message sequences can be pinned as snapshots.
pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "_seq" | "last_seq" => json!("[seq]"),
                        _ => redact(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        Value::String(s) if s.len() >= 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T' => {
            json!("[timestamp]")
        }
        other => other.clone(),
    }
}

/// The `_seq` of a row object, as a number.
pub fn seq(row: &Value) -> u64 {
    match &row["_seq"] {
        Value::String(s) => s.parse().expect("numeric _seq"),
        v => v.as_u64().expect("_seq"),
    }
}
