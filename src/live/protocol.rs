//! The WebSocket messages of SPEC section 7, both directions, as JSON text.
//!
//! Client → server: `authenticate`, `subscribe`, `unsubscribe`, `ping` ([`ClientMessage`]).
//! Server → client: `auth_success`, `auth_error`, `subscription_ack`, `initial_data_batch`,
//! `change`, `error`, `pong` (the builders below). Rows are JSON objects keyed by column name,
//! values encoded as in HTTP results ([`crate::result::json_value`]), `_seq` always included;
//! `_seq` and `last_seq` are strings once they exceed 2^53, as every BIGINT does.
//!
//! May import: the ground floor. Never the shared state or anything above.

use datafusion::arrow::array::RecordBatch;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::result::{ColumnInfo, json_int, json_value};

/// Codes of the `error` messages that end a subscription or a connection, beside the SQL error
/// codes a failed `subscribe` reports (docs/live-queries.md).
pub mod codes {
    /// The table was dropped (DROP TABLE, DROP NAMESPACE … CASCADE).
    pub const TABLE_DROPPED: &str = "TABLE_NOT_FOUND";
    /// ALTER TABLE removed or renamed a column the subscription selects or filters on.
    pub const SCHEMA_CHANGED: &str = "SCHEMA_CHANGED";
    /// `KILL LIVE QUERY` ended it.
    pub const KILLED: &str = "LIVE_QUERY_KILLED";
    /// The client fell behind its send queue (`live_queue_messages`), or another limit.
    pub const LIMIT_EXCEEDED: &str = "LIMIT_EXCEEDED";
    /// A message the server does not understand.
    pub const BAD_MESSAGE: &str = "INVALID_PARAMETER";
    /// Authentication failed, expired or was revoked.
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
}

/// Largest subscription id, in bytes.
pub const MAX_SUBSCRIPTION_ID_BYTES: usize = 128;

/// Largest `batch_size` of initial data.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// `batch_size` when the client does not set one.
pub const DEFAULT_BATCH_SIZE: usize = 1_000;

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// In-band authentication, the first message when neither header nor `?token=` was used.
    Authenticate {
        /// A login token.
        token: String,
    },
    /// Start a subscription.
    Subscribe {
        /// What to subscribe to.
        subscription: SubscribeRequest,
    },
    /// End a subscription of this connection.
    Unsubscribe {
        /// Its id.
        subscription_id: String,
    },
    /// Answered with `pong`.
    Ping,
}

impl ClientMessage {
    /// Parses one text frame.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming what is wrong.
    pub fn parse(text: &str) -> Result<ClientMessage> {
        serde_json::from_str(text).map_err(|e| {
            Error::InvalidParameter(format!(
                "bad message: {e} (expected {{\"type\": \"subscribe\" | \"unsubscribe\" | \"ping\" | \"authenticate\", ...}})"
            ))
        })
    }
}

/// The subscription a message that failed to parse is about: `subscription.id` of a
/// `subscribe` (its options may be what is wrong) or `subscription_id` of an `unsubscribe`,
/// when the message is JSON and the id a string of 1 to [`MAX_SUBSCRIPTION_ID_BYTES`] bytes.
/// Its `error` then names it, so the client can tell which subscribe was refused.
pub fn subscription_id_of(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    let id = match v.get("type")?.as_str()? {
        "subscribe" => v.get("subscription")?.get("id")?,
        "unsubscribe" => v.get("subscription_id")?,
        _ => return None,
    };
    id.as_str()
        .filter(|id| (1..=MAX_SUBSCRIPTION_ID_BYTES).contains(&id.len()))
        .map(str::to_string)
}

/// `subscription` of a `subscribe` message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    /// The client's id for it, unique on the connection (1 to 128 bytes).
    pub id: String,
    /// `SELECT columns FROM ns.t [WHERE …]`.
    pub sql: String,
    /// Options.
    #[serde(default)]
    pub options: SubscribeOptions,
}

/// `options` of a subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeOptions {
    /// Initial data: only the newest `last_rows` matching rows (by `_seq`).
    pub last_rows: Option<u64>,
    /// Rows per `initial_data_batch` (1 to 10,000; default 1,000).
    pub batch_size: Option<u64>,
    /// Resume: deliver every row version with `_seq > from_seq` instead of the current rows
    /// (a number or a string of digits).
    #[serde(
        default,
        deserialize_with = "seq_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub from_seq: Option<u64>,
}

impl SubscribeOptions {
    /// The batch size in force.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] outside 1..=[`MAX_BATCH_SIZE`].
    pub fn batch_size(&self) -> Result<usize> {
        match self.batch_size {
            None => Ok(DEFAULT_BATCH_SIZE),
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_BATCH_SIZE).contains(n))
                .ok_or_else(|| {
                    Error::InvalidParameter(format!(
                        "batch_size must be between 1 and {MAX_BATCH_SIZE}, got {n}"
                    ))
                }),
        }
    }
}

/// `from_seq` as a JSON number or a string of digits (`_seq` values above 2^53 arrive as strings).
fn seq_number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seq {
        N(u64),
        S(String),
    }
    match Option::<Seq>::deserialize(d)? {
        None => Ok(None),
        Some(Seq::N(n)) => Ok(Some(n)),
        Some(Seq::S(s)) => s.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!(
                "from_seq must be a whole number from 0 to 18446744073709551615, got '{s}'"
            ))
        }),
    }
}

/// `_seq` (or `last_seq`) as JSON: a number, or a string beyond 2^53.
pub fn seq_json(seq: u64) -> Value {
    json_int(crate::ids::as_i64(seq))
}

/// `{"type":"auth_success","user_id":…,"role":…}`.
pub fn auth_success(user_id: &str, role: &str) -> String {
    json!({"type": "auth_success", "user_id": user_id, "role": role}).to_string()
}

/// `{"type":"auth_error","code":"UNAUTHORIZED","message":…}`.
pub fn auth_error(message: &str) -> String {
    json!({"type": "auth_error", "code": codes::UNAUTHORIZED, "message": message}).to_string()
}

/// `{"type":"error","subscription_id"?:…,"code":…,"message":…}`.
pub fn error(subscription_id: Option<&str>, code: &str, message: &str) -> String {
    let mut m = Map::new();
    m.insert("type".into(), json!("error"));
    if let Some(id) = subscription_id {
        m.insert("subscription_id".into(), json!(id));
    }
    m.insert("code".into(), json!(code));
    m.insert("message".into(), json!(message));
    Value::Object(m).to_string()
}

/// `{"type":"pong"}`.
pub fn pong() -> String {
    json!({"type": "pong"}).to_string()
}

/// `{"type":"subscription_ack","subscription_id":…,"total_rows":…,"schema":[…]}`.
pub fn subscription_ack(id: &str, total_rows: usize, schema: &[ColumnInfo]) -> String {
    json!({"type": "subscription_ack", "subscription_id": id, "total_rows": total_rows, "schema": schema})
        .to_string()
}

/// `{"type":"initial_data_batch", …, "batch_control":{batch_num, has_more, status, last_seq}}`;
/// `rows` are already-encoded row objects.
pub fn initial_data_batch(
    id: &str,
    rows: &[Value],
    batch_num: usize,
    has_more: bool,
    last_seq: u64,
) -> String {
    json!({
        "type": "initial_data_batch",
        "subscription_id": id,
        "rows": rows,
        "batch_control": {
            "batch_num": batch_num,
            "has_more": has_more,
            "status": if has_more { "loading" } else { "ready" },
            "last_seq": seq_json(last_seq),
        },
    })
    .to_string()
}

/// The start of subscription `id`'s `change` messages, up to the comma before the tail.
pub fn change_head(id: &str) -> String {
    let id = Value::String(id.to_string()).to_string();
    format!("{{\"type\":\"change\",\"subscription_id\":{id},")
}

/// A message waiting in a connection's queue: text, or a `change` kept as its subscription's
/// head and a tail shared with every other subscriber of the same rows, joined only when the
/// connection's writer sends it (so a write publishing to many subscribers copies no payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole message.
    Text(String),
    /// `head` (from [`change_head`]) followed by `tail` (from [`change_tail`]).
    Change {
        /// The subscription's head.
        head: std::sync::Arc<str>,
        /// The shared rest of the message.
        tail: std::sync::Arc<str>,
    },
}

impl Frame {
    /// The message text.
    pub fn into_text(self) -> String {
        match self {
            Frame::Text(t) => t,
            Frame::Change { head, tail } => {
                let mut out = String::with_capacity(head.len().saturating_add(tail.len()));
                out.push_str(&head);
                out.push_str(&tail);
                out
            }
        }
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Frame {
        Frame::Text(text)
    }
}

/// The part of a `change` message after the subscription id, ending with `}`:
/// `"change_type":…` then `"rows":[…]` (insert, update) and `"old_values":[…]` (update, delete).
pub fn change_tail(
    change_type: &str,
    rows: Option<&[Value]>,
    old_values: Option<&[Value]>,
) -> String {
    let mut m = Map::new();
    m.insert("change_type".into(), json!(change_type));
    if let Some(r) = rows {
        m.insert("rows".into(), Value::Array(r.to_vec()));
    }
    if let Some(o) = old_values {
        m.insert("old_values".into(), Value::Array(o.to_vec()));
    }
    let whole = Value::Object(m).to_string();
    // Drop the opening brace: `change` supplies the start of the object.
    whole.get(1..).unwrap_or("}").to_string()
}

/// Row `row` of `batch` as an object of the columns `columns` (name, position in `batch`).
pub fn row_object(batch: &RecordBatch, columns: &[(String, usize)], row: usize) -> Value {
    let mut m = Map::with_capacity(columns.len());
    for (name, pos) in columns {
        let v = batch
            .columns()
            .get(*pos)
            .map(|a| json_value(a.as_ref(), row))
            .unwrap_or(Value::Null);
        m.insert(name.clone(), v);
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_and_bad_ones_say_why() {
        let m = ClientMessage::parse(
            r#"{"type":"subscribe","subscription":{"id":"s1","sql":"SELECT * FROM a.b","options":{"from_seq":"123456789012345678901","last_rows":5}}}"#,
        );
        assert!(
            m.unwrap_err()
                .message()
                .contains("from_seq must be a whole number")
        );
        let m = ClientMessage::parse(
            r#"{"type":"subscribe","subscription":{"id":"s1","sql":"SELECT 1","options":{"from_seq":"7205759403792793601"}}}"#,
        )
        .unwrap();
        let ClientMessage::Subscribe { subscription } = m else {
            panic!("not a subscribe")
        };
        assert_eq!(
            subscription.options.from_seq,
            Some(7_205_759_403_792_793_601)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"ping"}"#).unwrap(),
            ClientMessage::Ping
        );
        assert!(ClientMessage::parse(r#"{"type":"dance"}"#).is_err());
        assert!(ClientMessage::parse("not json").is_err());
        let typo = ClientMessage::parse(
            r#"{"type":"subscribe","subscription":{"id":"s","sql":"x","options":{"from_sq":1}}}"#,
        );
        assert!(typo.unwrap_err().message().contains("from_sq"));
        // The refused message's subscription is named in its error.
        let bad_options = r#"{"type":"subscribe","subscription":{"id":"s9","sql":"x","options":{"batch_size":-1}}}"#;
        assert!(ClientMessage::parse(bad_options).is_err());
        assert_eq!(subscription_id_of(bad_options).as_deref(), Some("s9"));
        assert_eq!(
            subscription_id_of(r#"{"type":"unsubscribe","subscription_id":7}"#),
            None
        );
        assert_eq!(
            subscription_id_of(r#"{"type":"ping","subscription_id":"x"}"#),
            None
        );
        assert_eq!(subscription_id_of("not json"), None);
        let long = format!(
            r#"{{"type":"subscribe","subscription":{{"id":"{}"}}}}"#,
            "x".repeat(129)
        );
        assert_eq!(subscription_id_of(&long), None);
    }

    #[test]
    fn a_change_is_one_json_object() {
        let tail = change_tail("delete", None, Some(&[json!({"id": 1})]));
        let frame = Frame::Change {
            head: change_head("s\"1").into(),
            tail: tail.into(),
        };
        let v: Value = serde_json::from_str(&frame.into_text()).unwrap();
        assert_eq!(
            v,
            json!({"type": "change", "subscription_id": "s\"1", "change_type": "delete", "old_values": [{"id": 1}]})
        );
        assert_eq!(seq_json(7), json!(7));
        assert_eq!(seq_json(1 << 60), json!((1u64 << 60).to_string()));
    }
}
