//! Shared helpers of the HTTP integration tests: an in-process server on a free port.

#![allow(dead_code)] // each test binary uses its own subset

pub mod live;

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use kalamdb::{Config, Engine};
use serde_json::{Value, json};

/// A server on `127.0.0.1:<free port>` over a fresh data directory.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The listening address.
    pub addr: SocketAddr,
    /// A plain HTTP client.
    pub http: reqwest::Client,
    /// The engine behind the server.
    pub engine: Arc<Engine>,
    _dir: tempfile::TempDir,
}

/// Starts a server whose config `config` may adjust.
pub async fn start(config: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config::with_data_dir(dir.path());
    config(&mut cfg);
    let engine = Arc::new(Engine::open(cfg).expect("open"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let app =
        kalamdb::server::router(engine.clone()).into_make_service_with_connect_info::<SocketAddr>();
    // Served on the engine's query runtime, as `kalamdb serve` does.
    let host = engine.clone();
    tokio::spawn(async move {
        let serving = async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await
        };
        let _ = host.host(serving).await;
    });
    TestServer {
        url: format!("http://{addr}"),
        addr,
        http: reqwest::Client::new(),
        engine,
        _dir: dir,
    }
}

impl TestServer {
    /// POSTs `body` to `/v1/api/sql`, optionally with Basic credentials.
    pub async fn post_raw(&self, body: &str, auth: Option<(&str, &str)>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/v1/api/sql", self.url))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some((u, p)) = auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req = req.header("Authorization", format!("Basic {token}"));
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }

    /// Runs `sql` as root.
    pub async fn sql(&self, sql: &str) -> (u16, Value) {
        self.post_raw(&json!({ "sql": sql }).to_string(), None)
            .await
    }

    /// Runs `sql` as `user`.
    pub async fn sql_as(&self, sql: &str, user: &str, password: &str) -> (u16, Value) {
        self.post_raw(&json!({ "sql": sql }).to_string(), Some((user, password)))
            .await
    }

    /// GETs the healthcheck; true when it answers `healthy`.
    pub async fn healthy(&self) -> bool {
        kalamdb::client::Client::new(&self.url, None)
            .healthy()
            .await
    }

    /// POSTs to `/v1/api/sql` announcing a body of `content_length` bytes but sending only its
    /// first 7, and returns the first answer read within 20 s on that connection.
    pub async fn partial_body(&self, content_length: u64) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let head = format!(
            "POST /v1/api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {content_length}\r\n\r\n{{\"sql\":"
        );
        let mut conn = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let read = conn.read(&mut buf);
        let n = tokio::time::timeout(std::time::Duration::from_secs(20), read)
            .await
            .expect("no answer within 20 s")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}
