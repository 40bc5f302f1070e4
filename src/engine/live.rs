//! Live queries and login tokens on the engine: what the WebSocket and the login route call.
//!
//! A `subscribe` is planned like any SELECT (through the bridge, as the subscriber's session,
//! so it reads only that user's partition of a USER/STREAM table), registered under the
//! partition's write lock in the same hold that opens its initial-data snapshot, answered with
//! `subscription_ack` and the `initial_data_batch` messages, and then switched live
//! (docs/live-queries.md gives the guarantees this order buys).
//!
//! May import what `engine/mod.rs` may; never `engine/mod.rs` (it calls these functions).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::auth::Authenticated;
use crate::auth::token::{self, IssuedToken};
use crate::catalog::DELETED;
use crate::control::StatementControl;
use crate::error::{Error, Result};
use crate::live::protocol::{self, SubscribeRequest};
use crate::live::subscription::Compiled;
use crate::live::{Connection, LiveConnection, Outbox, Subscription, SubscriptionSpec};
use crate::query::bridge::Bridge;
use crate::query::runtime::run_with_deadline;
use crate::result::ColumnInfo;
use crate::session::Session;
use crate::sql;
use crate::state::Core;

/// `POST /v1/api/auth/login`: a token for `username` if `password` is right (root without a
/// password set: only from `loopback`).
///
/// # Errors
/// [`Error::Unauthorized`] for wrong credentials (one message for every cause).
pub(super) fn login(
    core: &Core,
    username: &str,
    password: &str,
    loopback: bool,
) -> Result<IssuedToken> {
    let u = core
        .users
        .verify_credentials(username, password, loopback)?;
    core.tokens
        .issue(&u.user_id, u.role, u.auth_version, token::now_secs())
}

/// The caller a `Bearer` token stands for.
///
/// # Errors
/// [`Error::Unauthorized`] for a malformed, tampered, wrongly signed, `alg: none`, expired or
/// revoked token.
pub(super) fn authenticate_token(core: &Core, jwt: &str) -> Result<Authenticated> {
    let (session, exp) = core.users.authenticate_token(&core.tokens, jwt)?;
    Ok(Authenticated {
        session,
        expires_at: Some(exp),
    })
}

/// Registers a WebSocket connection of `session`'s user at its current credential version.
///
/// # Errors
/// [`Error::Unauthorized`] when the user no longer exists.
pub(super) fn connect(core: &Core, session: &Session) -> Result<(LiveConnection, Outbox)> {
    let version = core
        .users
        .auth_version(&session.user_id)?
        .ok_or_else(|| Error::Unauthorized("the user no longer exists".into()))?;
    Ok(core.live.connect(&session.user_id, version))
}

/// The initial data of a subscription, split from the snapshot it read.
struct InitialRows {
    /// Rows to send as `initial_data_batch`, by `_seq`.
    rows: Vec<Value>,
    /// Resume only: rows gone or no longer matching since `from_seq`, sent as `delete`
    /// changes, by `_seq`.
    gone: Vec<Value>,
}

/// Splits `batches` (every column of the partition, tombstones included when resuming, as a
/// stream) into what the subscriber is sent first. Only the rows it is sent are kept (as JSON),
/// so memory follows the answer, not the partition: with `last_rows`, the newest `n` seen so
/// far; otherwise the read stops at the first row past `max_rows`.
async fn initial_rows(
    c: &Compiled,
    mut batches: BoxStream<'_, Result<RecordBatch>>,
    from_seq: Option<u64>,
    last_rows: Option<u64>,
    max_rows: u64,
) -> Result<InitialRows> {
    let newest = last_rows
        .filter(|_| from_seq.is_none())
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let max = usize::try_from(max_rows).unwrap_or(usize::MAX);
    let mut rows: Vec<(u64, Value)> = Vec::new();
    let mut gone: Vec<(u64, Value)> = Vec::new();
    let keep_newest = |rows: &mut Vec<(u64, Value)>, n: usize| {
        rows.sort_by_key(|r| r.0);
        rows.drain(..rows.len().saturating_sub(n));
    };
    while let Some(b) = batches.next().await {
        let b = b?;
        let matches = c.matches(&b)?;
        let deleted = b.column_by_name(DELETED).and_then(|a| a.as_boolean_opt());
        for (i, m) in matches.into_iter().enumerate() {
            let seq = c.seq_of(&b, i);
            if from_seq.is_some_and(|f| seq <= f) {
                continue;
            }
            let is_deleted = deleted.is_some_and(|d| d.is_valid(i) && d.value(i));
            if m && !is_deleted {
                rows.push((seq, c.row(&b, i)));
            } else if from_seq.is_some() {
                gone.push((seq, c.deleted_row(&b, i)));
            }
        }
        // Past `max_rows` already, and it can only grow (or, with `last_rows` above the
        // limit, shrink to no fewer rows than the limit).
        let over = rows.len().saturating_add(gone.len()) > max && newest.is_none_or(|n| n > max);
        if over {
            return Err(Error::LimitExceeded(format!(
                "max_result_rows: the initial data has more than {max_rows} rows; \
                 use options.last_rows or a narrower WHERE"
            )));
        }
        // With `last_rows`, trimmed now and then: at most about twice the kept rows are held.
        if let Some(n) = newest.filter(|n| rows.len() > n.saturating_mul(2).max(4096)) {
            keep_newest(&mut rows, n);
        }
    }
    if let Some(n) = newest {
        keep_newest(&mut rows, n);
    }
    rows.sort_by_key(|r| r.0);
    gone.sort_by_key(|r| r.0);
    let total = rows.len().saturating_add(gone.len());
    if total > max {
        return Err(Error::LimitExceeded(format!(
            "max_result_rows: the initial data has {total} rows and the limit is {max_rows}; \
             use options.last_rows or a narrower WHERE"
        )));
    }
    Ok(InitialRows {
        rows: rows.into_iter().map(|(_, v)| v).collect(),
        gone: gone.into_iter().map(|(_, v)| v).collect(),
    })
}

/// A `subscribe` of `session` on `connection` (the body of `Engine::subscribe`, on the query
/// runtime): plans it, registers it with its initial-data snapshot, sends the initial data and
/// switches it live. Nothing stays registered when it fails.
///
/// # Errors
/// As `Engine::subscribe`.
pub(super) async fn subscribe(
    core: &Core,
    bridge: &Bridge,
    connection: &Arc<Connection>,
    session: &Session,
    request: SubscribeRequest,
) -> Result<()> {
    core.live.check_new(connection, &request.id)?;
    let batch_size = request.options.batch_size()?;
    let limits = session.limits_within(core.config.limits());
    core.config.check_sql_bytes(&request.sql)?;
    let statements = sql::split_statements(&request.sql);
    let [statement] = statements.as_slice() else {
        return Err(Error::InvalidSql(
            "a subscription takes exactly one SELECT statement".into(),
        ));
    };
    sql::complexity::check(statement, core.config.max_expression_depth)?;
    let toks = sql::lexer::tokenize(statement)?;
    if sql::parse_tokens(statement, &toks)?.is_some() {
        return Err(Error::InvalidSql(
            "a live query is SELECT columns FROM ns.table [WHERE …]".into(),
        ));
    }
    let planned = bridge.plan_subscription(statement, &toks, session).await?;
    let spec = SubscriptionSpec {
        id: request.id.clone(),
        sql: request.sql.clone(),
        options: request.options.clone(),
        partition: planned.table.partition().to_string(),
        table: planned.table.def().clone(),
        columns: planned.columns,
        predicate: planned.predicate,
    };
    let sub = Arc::new(Subscription::new(spec, connection.clone())?);
    let from_seq = request.options.from_seq;
    let registry = core.live.clone();
    let control = StatementControl::default();
    let read = planned
        .table
        .read_subscribed(from_seq.is_some(), |current| {
            match core.catalog.table(&current.namespace, &current.name) {
                Some(t) if t.id == current.id && t.schema_version == current.schema_version => {}
                Some(t) if t.id == current.id => {
                    return Err(Error::Execution(format!(
                        "table '{}' was altered while subscribing; subscribe again",
                        current.qualified()
                    )));
                }
                _ => {
                    return Err(Error::TableNotFound(format!(
                        "table '{}' does not exist",
                        current.qualified()
                    )));
                }
            }
            registry.register(sub.clone())?;
            Ok(crate::ids::last_seq())
        });
    let result = async {
        // Compiled against the definition the rows are read with (a concurrent ALTER may
        // recompile the subscription itself for the changes to come).
        let c = Compiled::new(&sub.spec.table, &sub.spec)?;
        let options = &sub.spec.options;
        let initial = async {
            let (watermark, rows) = read.await?;
            let initial = initial_rows(
                &c,
                rows,
                options.from_seq,
                options.last_rows,
                limits.max_result_rows,
            )
            .await?;
            Ok((watermark, initial))
        };
        let (watermark, initial) =
            run_with_deadline(initial, limits.statement_timeout_ms, &control).await?;
        send_initial(&sub, &c, initial, watermark, batch_size).await?;
        sub.go_live().await
    }
    .await;
    if result.is_err() {
        core.live.abandon(&sub);
    }
    result
}

/// Sends `subscription_ack`, the `initial_data_batch` messages (at least one, the last
/// with status `ready`) and, when resuming, the `delete` changes of rows gone since.
async fn send_initial(
    sub: &Subscription,
    c: &Compiled,
    initial: InitialRows,
    watermark: u64,
    batch_size: usize,
) -> Result<()> {
    let full = sub.spec.table.arrow_schema(true);
    let schema: Vec<ColumnInfo> = c
        .columns
        .iter()
        .enumerate()
        .map(|(index, (name, pos))| ColumnInfo {
            name: name.clone(),
            data_type: full
                .fields()
                .get(*pos)
                .map(|f| crate::result::arrow_sql_name(f.data_type()))
                .unwrap_or_default(),
            index,
        })
        .collect();
    let id = &sub.spec.id;
    let conn = &sub.connection;
    conn.send(protocol::subscription_ack(id, initial.rows.len(), &schema))
        .await?;
    let chunks: Vec<&[Value]> = if initial.rows.is_empty() {
        vec![&[]]
    } else {
        initial.rows.chunks(batch_size).collect()
    };
    let last = chunks.len().saturating_sub(1);
    for (n, chunk) in chunks.into_iter().enumerate() {
        conn.send(protocol::initial_data_batch(
            id,
            chunk,
            n,
            n < last,
            watermark,
        ))
        .await?;
    }
    for chunk in initial.gone.chunks(batch_size) {
        let tail = protocol::change_tail("delete", None, Some(chunk));
        conn.send(sub.change_frame(tail.into())).await?;
    }
    Ok(())
}
