//! [`Engine`]: open a data directory and run SQL. `Engine::execute` is the single path every
//! front end (HTTP, the slt runner in every mode, the CLI) goes through.
//!
//! The life of a statement: the request is split at top-level `;` ([`crate::sql`]); each
//! statement runs on the query runtime ([`crate::query::runtime`]) under its deadline, after the
//! shape limits ([`crate::sql::complexity`]); KalamDB's own statements are parsed
//! ([`crate::sql::parse_tokens`]) and dispatched here to one file per statement family —
//! `namespaces.rs`, `tables.rs`, `users.rs`, `admin.rs` — and everything else goes to the DataFusion
//! bridge ([`crate::query::bridge`]). Statements run in order and stop at the first error;
//! earlier ones stay committed. `maintenance.rs` is the background pass.
//!
//! May import everything below it: the ground floor, `sql/`, `catalog/`, `auth/`, `storage/`,
//! the shared state, `jobs/`, `live/` and `query/`. Never `server/`, `client`, `slt` or the binaries.

mod admin;
#[cfg(test)]
mod cold_read_tests;
mod live;
mod maintenance;
mod namespaces;
#[cfg(test)]
mod plan_reuse_tests;
mod tables;
#[cfg(test)]
mod tests;
mod users;
#[cfg(test)]
mod write_lock_tests;

use std::sync::Arc;

use datafusion::scalar::ScalarValue;

use crate::auth::token::IssuedToken;
use crate::auth::{Authenticated, Users};
use crate::config::Config;
use crate::control::StatementControl;
use crate::error::{Error, Result};
use crate::live::protocol::SubscribeRequest;
use crate::live::{Connection, LiveConnection, Outbox};
use crate::query::bridge::Bridge;
use crate::query::runtime::{QueryRuntime, run_with_deadline};
use crate::result::QueryResult;
use crate::session::Session;
use crate::sql::{self, KalamStatement};
use crate::state::Core;

/// An open KalamDB instance.
pub struct Engine {
    exec: Arc<Executor>,
    runtime: QueryRuntime,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("core", &self.exec.core)
            .field("runtime", &self.runtime)
            .finish()
    }
}

/// What runs statements: the shared state and the DataFusion bridge. Lives on the query
/// runtime's threads (the [`Engine`] only hands work to it).
struct Executor {
    core: Arc<Core>,
    bridge: Bridge,
}

fn json_to_scalar(v: &serde_json::Value) -> Result<ScalarValue> {
    Ok(match v {
        serde_json::Value::Null => ScalarValue::Null,
        serde_json::Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => ScalarValue::Int64(Some(i)),
            (None, Some(u)) => ScalarValue::UInt64(Some(u)),
            _ => ScalarValue::Float64(n.as_f64()),
        },
        serde_json::Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        other => {
            return Err(Error::InvalidParameter(format!(
                "unsupported parameter value {other}: use null, a boolean, a number or a string"
            )));
        }
    })
}

impl Engine {
    /// Opens (or creates) the instance in `config.data_dir`: the shared state (RocksDB, the
    /// catalog, the users with `root` bootstrapped, the job registry), the DataFusion session
    /// template and the query runtime.
    ///
    /// # Errors
    /// [`Error::Internal`] when the directory cannot be opened (e.g. locked by another process);
    /// [`Error::InvalidParameter`] for a limit of 0.
    pub fn open(config: Config) -> Result<Engine> {
        config.validate()?;
        crate::telemetry::install();
        let core = Arc::new(Core::open(config)?);
        let bridge = Bridge::new(core.clone())?;
        Ok(Engine {
            exec: Arc::new(Executor { core, bridge }),
            runtime: QueryRuntime::new()?,
        })
    }

    /// The user directory (for authentication by the server).
    pub fn users(&self) -> &Users {
        &self.exec.core.users
    }

    /// The configuration the engine was opened with.
    pub fn config(&self) -> &Config {
        &self.exec.core.config
    }

    /// The Prometheus text of `GET /metrics` (see [`crate::telemetry`]): every recorded series,
    /// then gauges computed now — live connections and subscriptions, running statements, and
    /// per table its live hot rows (a walk of its hot rows, on a blocking thread), live cold
    /// rows, files and bytes (from the manifest).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn metrics_text(&self) -> Result<String> {
        let core = self.exec.core.clone();
        let (connections, subscriptions) = core.live.counts();
        let running = self.running_statements();
        let tables = tokio::task::spawn_blocking(move || admin::table_figures(&core))
            .await
            .map_err(|e| Error::Internal(format!("metrics: {e}")))??;
        Ok(crate::telemetry::render(&crate::telemetry::Snapshot {
            connections: connections as u64,
            subscriptions: subscriptions as u64,
            running_statements: running as u64,
            tables,
        }))
    }

    /// Statements running right now (a statement whose client went away stops counting once
    /// it has been cancelled).
    pub fn running_statements(&self) -> usize {
        self.runtime.running()
    }

    /// Removes STREAM rows older than their table's TTL as of `now_ms` (ms since the Unix
    /// epoch), across all partitions; returns how many were removed. Reads already hide expired
    /// rows; this reclaims their space (the maintenance pass runs it).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn evict_expired_stream_rows(&self, now_ms: i64) -> Result<u64> {
        maintenance::evict_expired_stream_rows(&self.exec.core, now_ms).await
    }

    /// Flushes the WAL; call before exit (graceful shutdown).
    ///
    /// # Errors
    /// Storage failures.
    pub fn shutdown(&self) -> Result<()> {
        self.exec.core.store.flush_wal()
    }

    /// Runs every statement of `sql` as `session`; see [`Engine::execute_with_params`].
    ///
    /// # Errors
    /// As [`Engine::execute_with_params`].
    pub async fn execute(&self, sql: &str, session: &Session) -> Result<Vec<QueryResult>> {
        self.execute_with_params(sql, session, &[]).await
    }

    /// Runs every statement of `sql` in order as `session`, binding `$1, $2, ...` to `params`,
    /// on the query runtime. Returns one result per statement; the first failing statement's
    /// error ends the request (statements before it stay committed). Each statement runs under
    /// the limits of `docs/limits.md`; dropping the returned future cancels the work.
    ///
    /// # Errors
    /// `EMPTY_SQL` for a request without statements, `PAYLOAD_TOO_LARGE` over `max_sql_bytes`,
    /// `LIMIT_EXCEEDED` when a statement hits a limit; otherwise the failing statement's error.
    pub async fn execute_with_params(
        &self,
        sql: &str,
        session: &Session,
        params: &[serde_json::Value],
    ) -> Result<Vec<QueryResult>> {
        let exec = self.exec.clone();
        let (sql, session, params) = (sql.to_owned(), session.clone(), params.to_vec());
        self.runtime
            .run(async move { exec.execute_request(&sql, session, &params).await })
            .await
    }

    /// Runs `service` (a front end's serving loop, e.g. the HTTP server) on the query runtime,
    /// so the statements of its requests run on the thread that received them instead of
    /// being handed over ([`crate::query::runtime`]). Dropping the returned future stops it.
    ///
    /// # Errors
    /// [`Error::Internal`] when `service` panicked or the runtime is gone.
    pub async fn host<T: Send + 'static>(
        &self,
        service: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        self.runtime.host(service).await
    }

    /// Stops the query runtime: every task on it — statements, a hosted server, its WebSocket
    /// connections — is dropped, with the handles on this engine they held. A server calls it
    /// after shutting down, so the engine (and RocksDB) closes before the process exits.
    pub fn stop_runtime(&self) {
        self.runtime.stop();
    }

    /// Waits until no flush job is queued or running, polling until `timeout`.
    ///
    /// # Errors
    /// [`Error::Internal`] if jobs are still busy at the deadline.
    pub async fn wait_for_jobs(&self, timeout: std::time::Duration) -> Result<()> {
        let deadline = crate::ids::deadline(timeout);
        while self.exec.core.jobs.busy() {
            if std::time::Instant::now() > deadline {
                return Err(Error::Internal("jobs still running at the deadline".into()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// One maintenance pass as of `now_ms`: STREAM TTL eviction, flushes whose policy is due,
    /// and purging tombstones past DELETED_RETENTION (recorded as `cleanup` jobs). Runs on the
    /// query runtime (flush jobs it starts live there too).
    ///
    /// # Errors
    /// The first failure; every table is still visited.
    pub async fn run_maintenance(&self, now_ms: i64) -> Result<()> {
        let core = self.exec.core.clone();
        self.runtime
            .run(async move { maintenance::run(&core, now_ms).await })
            .await
    }

    /// `POST /v1/api/auth/login`: a token for `username` if `password` is right (root without
    /// a password set: only from `loopback`).
    ///
    /// # Errors
    /// [`Error::Unauthorized`] for wrong credentials (one message for every cause).
    pub fn login(&self, username: &str, password: &str, loopback: bool) -> Result<IssuedToken> {
        live::login(&self.exec.core, username, password, loopback)
    }

    /// The caller a `Bearer` token stands for.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] for a malformed, tampered, wrongly signed, `alg: none`, expired
    /// or revoked token.
    pub fn authenticate_token(&self, jwt: &str) -> Result<Authenticated> {
        live::authenticate_token(&self.exec.core, jwt)
    }

    /// Registers a WebSocket connection of `session`'s user; the connection and its
    /// subscriptions are removed when the returned handle drops.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] when the user no longer exists.
    pub fn live_connect(&self, session: &Session) -> Result<(LiveConnection, Outbox)> {
        live::connect(&self.exec.core, session)
    }

    /// Runs a `subscribe` of `session` on `connection`, on the query runtime: sends
    /// `subscription_ack`, the initial data and then the changes (docs/live-queries.md).
    /// Returns once the subscription is live.
    ///
    /// # Errors
    /// The planning error of its SELECT, `INVALID_PARAMETER` for bad options or a taken id,
    /// `LIMIT_EXCEEDED` over `max_subscriptions_per_connection`, `max_result_rows` or the
    /// statement timeout; nothing stays registered then.
    pub async fn subscribe(
        &self,
        connection: &Arc<Connection>,
        session: &Session,
        request: SubscribeRequest,
    ) -> Result<()> {
        let exec = self.exec.clone();
        let (connection, session) = (connection.clone(), session.clone());
        self.runtime
            .run(async move {
                live::subscribe(&exec.core, &exec.bridge, &connection, &session, request).await
            })
            .await
    }

    /// An `unsubscribe`: false when the connection has no such subscription.
    pub fn unsubscribe(&self, connection: &Connection, id: &str) -> bool {
        self.exec.core.live.unsubscribe(connection, id)
    }

    /// Removes Parquet files that no manifest names (start-up recovery after a crash).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn remove_orphan_files(&self) -> Result<usize> {
        crate::jobs::flush::remove_orphan_files(&self.exec.core).await
    }
}

impl Executor {
    /// The body of [`Engine::execute_with_params`], on the query runtime.
    async fn execute_request(
        &self,
        sql: &str,
        session: Session,
        params: &[serde_json::Value],
    ) -> Result<Vec<QueryResult>> {
        self.core.config.check_sql_bytes(sql)?;
        let statements = sql::split_statements(sql);
        if statements.is_empty() {
            return Err(Error::EmptySql);
        }
        let params = params
            .iter()
            .map(json_to_scalar)
            .collect::<Result<Vec<_>>>()?;
        let mut session = session;
        let mut out = Vec::with_capacity(statements.len());
        for stmt in statements {
            let limits = session.limits_within(self.core.config.limits());
            let control = Arc::new(StatementControl::default());
            let started = std::time::Instant::now();
            let run = self.execute_one(stmt, &mut session, &params, &control);
            let result = run_with_deadline(run, limits.statement_timeout_ms, &control).await;
            let rows = result.as_ref().ok().map(|r| r.row_count as u64);
            crate::telemetry::statement(
                crate::telemetry::statement_kind(stmt),
                result.is_ok(),
                started.elapsed().as_secs_f64(),
                rows,
            );
            out.push(result?);
        }
        Ok(out)
    }

    /// One statement: the shape limits, then KalamDB's own statements by family, or the
    /// DataFusion bridge.
    async fn execute_one(
        &self,
        sql: &str,
        session: &mut Session,
        params: &[ScalarValue],
        control: &Arc<StatementControl>,
    ) -> Result<QueryResult> {
        let core = &self.core;
        sql::complexity::check(sql, core.config.max_expression_depth)?;
        let toks = sql::lexer::tokenize(sql)?;
        let Some(stmt) = sql::parse_tokens(sql, &toks)? else {
            let limits = session.limits_within(core.config.limits());
            return self
                .bridge
                .execute(sql, &toks, session, params, &limits, control)
                .await;
        };
        match stmt {
            KalamStatement::ExecuteAs {
                user_id,
                sql: inner,
            } => {
                let mut as_user = users::impersonate(core, &user_id, session)?;
                let inner_statements = sql::split_statements(&inner);
                let [inner] = inner_statements.as_slice() else {
                    return Err(Error::InvalidSql(
                        "EXECUTE AS USER takes exactly one statement".into(),
                    ));
                };
                Box::pin(self.execute_one(inner, &mut as_user, params, control)).await
            }
            KalamStatement::CreateNamespace {
                name,
                if_not_exists,
            } => namespaces::create(core, &name, if_not_exists, session),
            KalamStatement::AlterNamespace { name, options } => {
                namespaces::alter(core, &name, options, session)
            }
            KalamStatement::DropNamespace {
                name,
                if_exists,
                cascade,
            } => namespaces::drop(core, &name, if_exists, cascade, session).await,
            KalamStatement::ShowNamespaces => namespaces::show(core),
            KalamStatement::Use(ns) => namespaces::use_namespace(core, ns, session),
            KalamStatement::CreateTable(ct) => tables::create(core, *ct, session),
            KalamStatement::AlterTable { name, op } => tables::alter(core, &name, op, session),
            KalamStatement::DropTable {
                name,
                if_exists,
                table_type,
            } => tables::drop(core, &name, if_exists, table_type, session).await,
            KalamStatement::ShowTables(ns) => tables::show(core, ns),
            KalamStatement::Describe(name) => tables::describe(core, &name, session),
            KalamStatement::CreateUser {
                user_id,
                password,
                role,
                email,
            } => users::create(core, &user_id, &password, role, email, session),
            KalamStatement::AlterUser {
                user_id,
                password,
                role,
                email,
            } => users::alter(core, &user_id, password, role, email, session),
            KalamStatement::DropUser { user_id, if_exists } => {
                users::drop(core, &user_id, if_exists, session)
            }
            KalamStatement::FlushTable(name) => admin::flush_table(core, &name, session),
            KalamStatement::FlushAll(ns) => admin::flush_all(core, ns.as_deref(), session),
            KalamStatement::KillJob(id) => admin::kill_job(core, &id, session),
            KalamStatement::KillLiveQuery(id) => admin::kill_live_query(core, &id, session),
            KalamStatement::ShowStats(name) => admin::show_stats(core, &name, session),
            KalamStatement::Set { name, value } => admin::set(core, &name, &value, session),
            KalamStatement::ShowSetting(name) => admin::show_setting(core, &name, session),
        }
    }
}
