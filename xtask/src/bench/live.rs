//! Live-query scenarios of `cargo xtask bench` over the real WebSocket: change latency (INSERT
//! sent → `change` frame received) and fan-out of one INSERT to many subscribers.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::measure::{Http, Latency, Res};

/// How long a bench waits for any one expected frame before giving up.
const FRAME_DEADLINE: Duration = Duration::from_secs(60);

/// One WebSocket connection: a sink for requests, and the server's messages stamped with
/// their arrival time by a reader task.
struct Socket {
    sink: futures::stream::SplitSink<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        Message,
    >,
    frames: mpsc::UnboundedReceiver<(Instant, Value)>,
}

impl Socket {
    async fn open(http: &Http, token: &str) -> Res<Socket> {
        let url = format!("{}/v1/ws", http.url().replacen("http://", "ws://", 1));
        let mut req = url.into_client_request().map_err(|e| e.to_string())?;
        let bearer = format!("Bearer {token}").parse().map_err(|_| "bad token")?;
        req.headers_mut().insert("Authorization", bearer);
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .map_err(|e| e.to_string())?;
        let (sink, mut stream) = ws.split();
        let (tx, frames) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                if let Message::Text(text) = frame {
                    let at = Instant::now();
                    let Ok(v) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    if tx.send((at, v)).is_err() {
                        break;
                    }
                }
            }
        });
        let mut socket = Socket { sink, frames };
        socket.expect(|v| v["type"] == "auth_success").await?;
        Ok(socket)
    }

    /// The next message satisfying `want` (others are skipped), with its arrival time.
    async fn expect(&mut self, want: impl Fn(&Value) -> bool) -> Res<(Instant, Value)> {
        let deadline = tokio::time::Instant::now() + FRAME_DEADLINE;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.frames.recv())
                .await
                .map_err(|_| "no expected frame within 60 s".to_string())?
                .ok_or("the server closed the socket")?;
            if frame.1["type"] == "error" {
                return Err(format!("server error: {}", frame.1));
            }
            if want(&frame.1) {
                return Ok(frame);
            }
        }
    }

    /// Subscribes `id` to `sql` and waits until its initial data is complete.
    async fn subscribe(&mut self, id: &str, sql: &str) -> Res<()> {
        let msg = json!({"type": "subscribe", "subscription": {"id": id, "sql": sql}});
        self.sink
            .send(Message::text(msg.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        self.expect(|v| {
            v["type"] == "initial_data_batch"
                && v["subscription_id"] == id
                && v["batch_control"]["status"] == "ready"
        })
        .await?;
        Ok(())
    }
}

/// Change latency: one subscriber of `table`; `n` single-row INSERTs, each timed from the
/// moment the request is sent to the arrival of its `change` frame (stamped by the reader).
pub async fn change_latency(http: &Http, table: &str, n: usize) -> Res<Latency> {
    let token = http.root_token().await?;
    let mut socket = Socket::open(http, &token).await?;
    socket
        .subscribe("lat", &format!("SELECT * FROM {table}"))
        .await?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let sent = Instant::now();
        http.sql(&format!("INSERT INTO {table} VALUES ({i}, 'v{i}')"))
            .await?;
        let (at, _) = socket.expect(|v| v["type"] == "change").await?;
        samples.push(at.saturating_duration_since(sent));
    }
    Ok(Latency::of(samples))
}

/// What one INSERT costs with `subscribers` subscriptions of `table`, all receiving it.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FanOut {
    /// The INSERT's own response time, ms (mean).
    pub insert_ms: f64,
    /// INSERT sent → the last subscriber's `change` frame received, ms (mean).
    pub delivered_ms: f64,
}

/// Fan-out: `subscribers` subscriptions of `table` over connections of at most 1,000 each,
/// then `inserts` single-row INSERTs, each timed to its response and to the arrival of the
/// last of its `subscribers` change frames.
pub async fn fan_out(http: &Http, table: &str, subscribers: usize, inserts: usize) -> Res<FanOut> {
    let token = http.root_token().await?;
    let per_socket = 1000usize;
    let mut sockets = Vec::new();
    let mut opened = Vec::new();
    for s in 0..subscribers.div_ceil(per_socket) {
        let (http, token, table) = (http.clone(), token.clone(), table.to_string());
        let count = per_socket.min(subscribers - s * per_socket);
        opened.push(tokio::spawn(async move {
            let mut socket = Socket::open(&http, &token).await?;
            for i in 0..count {
                socket
                    .subscribe(&format!("f{i}"), &format!("SELECT * FROM {table}"))
                    .await?;
            }
            Ok::<(Socket, usize), String>((socket, count))
        }));
    }
    for o in opened {
        sockets.push(o.await.map_err(|e| e.to_string())??);
    }
    let (mut insert_total, mut delivered_total) = (Duration::ZERO, Duration::ZERO);
    for i in 0..inserts {
        let sent = Instant::now();
        http.sql(&format!("INSERT INTO {table} VALUES ({i}, 'v{i}')"))
            .await?;
        insert_total += sent.elapsed();
        let mut last = sent;
        for (socket, count) in &mut sockets {
            for _ in 0..*count {
                let (at, _) = socket.expect(|v| v["type"] == "change").await?;
                last = last.max(at);
            }
        }
        delivered_total += last.saturating_duration_since(sent);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / inserts.max(1) as f64;
    Ok(FanOut {
        insert_ms: ms(insert_total),
        delivered_ms: ms(delivered_total),
    })
}
