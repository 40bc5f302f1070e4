//! `GET /v1/ws`: the live-query WebSocket (SPEC section 7).
//!
//! Authentication comes from the `Authorization` header (Bearer or Basic), a `?token=` query
//! parameter, or an `authenticate` message within [`AUTH_TIMEOUT`]; the answer is
//! `auth_success` or `auth_error` (then the socket closes). After that, each connection runs
//! two tasks: the reader parses client messages (an unknown or malformed one gets an `error`
//! and the connection stays usable; each `subscribe` runs as its own task, so a large initial
//! load does not hold up `ping` or `unsubscribe`), and the writer drains the connection's
//! bounded queue into the socket. When the registry fails the connection (the client fell
//! behind, its user was dropped or changed its password) the writer sends the last message
//! and closes, even if a send is stuck on a client that stopped reading. A token-authenticated
//! connection closes with `auth_error` when its token expires.
//!
//! May import: the engine's public surface, `live/` (messages and connection handles) and
//! the ground floor.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use tokio::task::JoinSet;

use super::auth::authenticate_header;
use crate::auth::Authenticated;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::live::protocol::{self, ClientMessage, codes};
use crate::live::{Connection, Outbox, Outgoing};

/// How long a connection without header or `?token=` credentials has to send `authenticate`.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(3);

/// Largest client message, in bytes, beyond the configured `max_sql_bytes`.
const MESSAGE_HEADROOM_BYTES: usize = 64 * 1024;

/// Subscribes one connection may have in progress at once; a client sending more waits (its
/// further messages are not read meanwhile), so a flood of subscribes cannot take the server's
/// planning capacity from other clients.
const MAX_PENDING_SUBSCRIBES: usize = 64;

/// How long the last message (an error) may take to send before the socket is dropped.
const LAST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(1);

/// The upgrade handler of `GET /v1/ws`.
#[utoipa::path(
    get,
    path = "/v1/ws",
    tag = "live",
    description = "Live queries (SPEC section 7): authenticate by the Authorization header, \
        `?token=`, or a first message `{\"type\":\"authenticate\",\"token\":\"…\"}` within 3 s; \
        then `subscribe` / `unsubscribe` messages, answered by `subscription_ack`, \
        `initial_data_batch` and `change` messages (docs/live-queries.md).",
    params(("token" = Option<String>, Query, description = "A login token, instead of the header")),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = "4XX", description = "Not a WebSocket request", body = super::api::ErrorResponse)
    ),
    security((), ("bearer" = []), ("basic" = []))
)]
pub(super) async fn upgrade(
    State(engine): State<Arc<Engine>>,
    State(passwords): State<Arc<super::auth::PasswordGate>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let early = match (
        authenticate_header(&engine, &passwords, &headers, peer).await,
        query.get("token"),
    ) {
        (Some(auth), _) => Some(auth),
        (None, Some(token)) => Some(engine.authenticate_token(token)),
        (None, None) => None,
    };
    let max = engine
        .config()
        .max_sql_bytes
        .saturating_add(MESSAGE_HEADROOM_BYTES);
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(engine, socket, early))
}

type Sink = SplitSink<WebSocket, Message>;

/// Sends `text`, giving up after [`LAST_MESSAGE_TIMEOUT`], then closes.
async fn send_last(sink: &mut Sink, text: String) {
    let _ = tokio::time::timeout(LAST_MESSAGE_TIMEOUT, async {
        sink.send(Message::Text(text.into())).await?;
        sink.send(Message::Close(None)).await
    })
    .await;
}

/// One connection, from the upgrade to the close.
async fn serve(engine: Arc<Engine>, socket: WebSocket, early: Option<Result<Authenticated>>) {
    let (mut sink, mut stream) = socket.split();
    let auth = match early {
        Some(a) => a,
        None => match tokio::time::timeout(AUTH_TIMEOUT, stream.next()).await {
            Err(_) => Err(Error::Unauthorized(format!(
                "authentication timed out: send {{\"type\":\"authenticate\",\"token\":…}} within {} s",
                AUTH_TIMEOUT.as_secs()
            ))),
            Ok(Some(Ok(Message::Text(t)))) => match ClientMessage::parse(&t) {
                Ok(ClientMessage::Authenticate { token }) => engine.authenticate_token(&token),
                _ => Err(Error::Unauthorized(
                    "the first message must be {\"type\":\"authenticate\",\"token\":…}".into(),
                )),
            },
            Ok(_) => return,
        },
    };
    let connected = auth.and_then(|a| Ok((engine.live_connect(&a.session)?, a)));
    let ((live, outbox), auth) = match connected {
        Ok(c) => c,
        Err(e) => return send_last(&mut sink, protocol::auth_error(&e.message())).await,
    };
    let welcome = protocol::auth_success(&auth.session.user_id, auth.session.role.as_str());
    if sink.send(Message::Text(welcome.into())).await.is_err() {
        return;
    }
    let connection = live.connection.clone();
    let mut writer = tokio::spawn(write_loop(sink, outbox, auth.expires_at));
    let mut subscribes = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut writer => break,
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    on_message(&engine, &connection, &auth, &t, &mut subscribes).await;
                }
                Some(Ok(Message::Binary(_))) => {
                    connection.offer(protocol::error(
                        None,
                        codes::BAD_MESSAGE,
                        "binary frames are not supported: send JSON text",
                    ));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            Some(_) = subscribes.join_next(), if !subscribes.is_empty() => {}
        }
    }
    // Dropping the handle unregisters the connection and its subscriptions; pending
    // subscribes are cancelled with the JoinSet; the writer ends with the queue.
    subscribes.abort_all();
    drop(live);
    connection.close();
    writer.abort();
}

/// Handles one text message of an authenticated connection.
async fn on_message(
    engine: &Arc<Engine>,
    connection: &Arc<Connection>,
    auth: &Authenticated,
    text: &str,
    subscribes: &mut JoinSet<()>,
) {
    match ClientMessage::parse(text) {
        Err(e) => {
            let id = protocol::subscription_id_of(text);
            connection.offer(protocol::error(id.as_deref(), e.code(), &e.message()));
        }
        Ok(ClientMessage::Ping) => {
            connection.offer(protocol::pong());
        }
        Ok(ClientMessage::Authenticate { .. }) => {
            connection.offer(protocol::error(
                None,
                codes::BAD_MESSAGE,
                "this connection is already authenticated",
            ));
        }
        Ok(ClientMessage::Unsubscribe { subscription_id }) => {
            if !engine.unsubscribe(connection, &subscription_id) {
                connection.offer(protocol::error(
                    Some(&subscription_id),
                    codes::BAD_MESSAGE,
                    &format!("no subscription '{subscription_id}' on this connection"),
                ));
            }
        }
        Ok(ClientMessage::Subscribe { subscription }) => {
            while subscribes.len() >= MAX_PENDING_SUBSCRIBES {
                if subscribes.join_next().await.is_none() {
                    break;
                }
            }
            let (engine, connection) = (engine.clone(), connection.clone());
            let session = auth.session.clone();
            subscribes.spawn(async move {
                let id = subscription.id.clone();
                if let Err(e) = engine.subscribe(&connection, &session, subscription).await {
                    connection.offer(protocol::error(Some(&id), e.code(), &e.message()));
                }
            });
        }
    }
}

/// Drains `outbox` into `sink` until the connection ends, fails, or its token expires.
async fn write_loop(mut sink: Sink, mut outbox: Outbox, expires_at: Option<u64>) {
    let expiry = async move {
        match expires_at {
            Some(exp) => {
                let left = exp.saturating_sub(crate::auth::token::now_secs());
                tokio::time::sleep(Duration::from_secs(left)).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(expiry);
    loop {
        let next = tokio::select! {
            next = outbox.next() => next,
            _ = &mut expiry => {
                return send_last(&mut sink, protocol::auth_error("token expired: log in again")).await;
            }
        };
        match next {
            Outgoing::Message(m) => {
                tokio::select! {
                    sent = sink.send(Message::Text(m.into())) => if sent.is_err() { return },
                    // The client stopped reading and the connection was failed meanwhile:
                    // the socket is dropped without the last message (it could not be sent).
                    _ = outbox.failed() => return,
                }
            }
            Outgoing::Last(m) => return send_last(&mut sink, m).await,
            Outgoing::Done => {
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
        }
    }
}
