//! Timing helpers of `cargo xtask bench`: an HTTP client of the server, sequential latency
//! runs (mean, p50, p99) and concurrent throughput runs. Nothing here asserts a time.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A result of the bench, or what went wrong.
pub type Res<T> = Result<T, String>;

/// The server's HTTP API, one keep-alive connection pool; requests as root from loopback.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    url: String,
}

impl Http {
    /// A client of the server at `url` (`http://127.0.0.1:port`).
    pub fn new(url: &str) -> Http {
        Http {
            client: reqwest::Client::new(),
            url: url.to_string(),
        }
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `sql`; the response body, or the server's error.
    pub async fn sql(&self, sql: &str) -> Res<Value> {
        self.sql_with(sql, &[]).await
    }

    /// Runs `sql` with `params` bound to `$1, $2, …`; the response body, or the server's error.
    pub async fn sql_with(&self, sql: &str, params: &[Value]) -> Res<Value> {
        let resp = self
            .client
            .post(format!("{}/v1/api/sql", self.url))
            .json(&serde_json::json!({ "sql": sql, "params": params }))
            .send()
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| format!("{sql}: {e}"))?;
        if !status.is_success() || body["status"] != "success" {
            return Err(format!("{sql}: {status} {body}"));
        }
        Ok(body)
    }

    /// The rows of the first result of `sql`.
    pub async fn rows(&self, sql: &str) -> Res<Vec<Vec<Value>>> {
        let body = self.sql(sql).await?;
        serde_json::from_value(body["results"][0]["rows"].clone()).map_err(|e| e.to_string())
    }

    /// `GET /v1/api/healthcheck` (the HTTP floor: routing, no statement).
    pub async fn health(&self) -> Res<()> {
        let resp = self
            .client
            .get(format!("{}/v1/api/healthcheck", self.url))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        resp.bytes().await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Logs in as root (loopback, no password) for a WebSocket token.
    pub async fn root_token(&self) -> Res<String> {
        let resp = self
            .client
            .post(format!("{}/v1/api/auth/login", self.url))
            .json(&serde_json::json!({"username": "root", "password": ""}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = resp.json().await.map_err(|e| e.to_string())?;
        body["access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("login failed: {body}"))
    }
}

/// Latency of a sequential run: mean, median and 99th percentile.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Latency {
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

impl Latency {
    /// The latency of `samples` (any order; at least one).
    pub fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples.get(i).copied().map(ms).unwrap_or(f64::NAN)
        };
        let total: Duration = samples.iter().sum();
        Latency {
            mean_ms: ms(total) / samples.len().max(1) as f64,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
        }
    }
}

/// Runs `op(i)` for `i` in `0..n` one after another (after `n / 10` untimed warm-up calls
/// with the indices that follow) and returns their latency.
pub async fn latency<F, Fut>(n: usize, mut op: F) -> Res<Latency>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Res<()>>,
{
    for i in n..n + n / 10 {
        op(i).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        op(i).await?;
        samples.push(started.elapsed());
    }
    Ok(Latency::of(samples))
}

/// Runs `op(client, i)` for `i` in `0..per_client` on `clients` concurrent tasks; returns
/// operations per second over the whole run.
pub async fn throughput<F, Fut>(clients: usize, per_client: usize, op: F) -> Res<f64>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Res<()>> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                op(c, i).await?;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok((clients * per_client) as f64 / started.elapsed().as_secs_f64())
}

/// Times one call of `op`.
pub async fn once<T>(op: impl Future<Output = Res<T>>) -> Res<(T, Duration)> {
    let started = Instant::now();
    let out = op.await?;
    Ok((out, started.elapsed()))
}

/// A memory figure of process `pid` from `/proc/<pid>/status` in MiB: `VmRSS` (now) or
/// `VmHWM` (peak); None where `/proc` is unavailable.
pub fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the peak RSS (`VmHWM`) of process `pid` to its current RSS (Linux `clear_refs` 5),
/// so the next [`memory_mib`]`(pid, "VmHWM")` is the peak since now. False if refused.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}
