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
    /// Ends a hosted server's serving loop ([`start_hosted`]).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The task waiting for a hosted server's loop.
    served: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// Starts a server whose config `config` may adjust, served on the test's runtime.
pub async fn start(config: impl FnOnce(&mut Config)) -> TestServer {
    start_with(config, false).await
}

/// As [`start`], but served on the engine's query runtime as `kalamdb serve` does (statements
/// run on the thread that received them). End the test with [`TestServer::stop`]: the hosted
/// loop holds the engine, which owns that runtime, so nothing else ever stops it.
pub async fn start_hosted(config: impl FnOnce(&mut Config)) -> TestServer {
    start_with(config, true).await
}

async fn start_with(config: impl FnOnce(&mut Config), hosted: bool) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config::with_data_dir(dir.path());
    config(&mut cfg);
    let engine = Arc::new(Engine::open(cfg).expect("open"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let app =
        kalamdb::server::router(engine.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    };
    let served = if hosted {
        let host = engine.clone();
        tokio::spawn(async move {
            let _ = host.host(serving).await;
        })
    } else {
        tokio::spawn(serving)
    };
    TestServer {
        url: format!("http://{addr}"),
        addr,
        http: reqwest::Client::new(),
        engine,
        stop: Some(stop),
        served: Some(served),
        _dir: dir,
    }
}

impl TestServer {
    /// Stops the server and waits until its serving loop has ended (and with it every hold
    /// it had on the engine).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = served.await;
        }
        // Connection tasks end with the loop; then this handle is the engine's last, so it
        // closes (RocksDB included) when the test drops it, not at process exit.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&self.engine) > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the server still holds the engine after stopping"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

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
