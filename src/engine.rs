//! [`Engine`]: open a data directory and run SQL. `Engine::execute` is the single path every
//! front end (HTTP, the slt runner in every mode, the CLI) goes through.
//!
//! The life of a statement: the request is split at top-level `;`; each statement is offered to
//! [`crate::sql::parse`]; KalamDB's own statements run here; everything else is planned by
//! DataFusion in a per-statement `SessionContext` whose `kalam` catalog is bound to the
//! statement's [`Session`], and executed through our table providers. Statements run in order and
//! stop at the first error; earlier ones stay committed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, TimeUnit, UInt64Type};
use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use datafusion::common::ParamValues;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::execution::disk_manager::{DiskManager, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast;
use futures::StreamExt;

use crate::auth::{self, ROOT_USER, UserRecord, Users};
use crate::catalog::provider::{CATALOG_NAME, RequestCatalog};
use crate::catalog::{
    Catalog, ColumnDef, FlushPolicy, MAX_BUFFER_SIZE, MAX_COLUMNS, MAX_DURATION_SECS, NamespaceDef,
    RESERVED_NAMESPACES, SqlType, TableDef, TableType, is_system_column, validate_identifier,
};
use crate::config::{Config, Limits, Setting};
use crate::error::{Error, Result};
use crate::jobs::Jobs;
use crate::query::dml;
use crate::query::guard::{self, PlanKind};
use crate::query::runtime::{QueryRuntime, StatementControl, run_with_deadline};
use crate::result::QueryResult;
use crate::session::{Role, Session};
use crate::sql::lexer::{Tok, TokKind};
use crate::sql::{self, AlterTableOp, ColumnSpec, CreateTable, KalamStatement, TableName};
use crate::storage::cold::{self, ColdStore};
use crate::storage::{Batch, CF_META, CF_ROWS, Store, codec, keys};

const SEQ_HWM_KEY: &[u8] = b"ctr/seq_hwm";

/// State shared by the engine, its table providers and background tasks.
pub struct Core {
    /// RocksDB.
    pub(crate) store: Arc<Store>,
    /// Namespaces and tables.
    pub(crate) catalog: Catalog,
    /// Users.
    pub(crate) users: Users,
    /// The configuration the engine was opened with.
    pub(crate) config: Config,
    /// When this data directory was first opened (ms since the Unix epoch).
    pub(crate) created_at: i64,
    /// The cold tier (Parquet files under `<data_dir>/storage`).
    pub(crate) cold: ColdStore,
    /// Background jobs (`system.jobs`).
    pub(crate) jobs: Jobs,
    /// Hot rows inserted per (table id, partition) since its last flush, for the ROWS policy;
    /// counted from storage on first use after start-up.
    pub(crate) hot_counts: Mutex<HashMap<(u64, String), u64>>,
    locks: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("data_dir", &self.config.data_dir)
            .finish()
    }
}

impl Core {
    /// The write lock of one table, held across a write's read-check-write and a whole flush
    /// (an async lock: it is held across cold-file reads).
    pub(crate) fn table_lock(&self, table_id: u64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(table_id).or_default().clone()
    }

    /// Adds the `_seq` high-water mark to a write batch (monotonicity across restarts).
    pub(crate) fn record_seq(&self, b: &mut Batch, seq: u64) {
        b.put(&self.store, CF_META, SEQ_HWM_KEY, &seq.to_le_bytes());
    }

    /// The base directory of the `local` storage (`<data_dir>/storage`).
    pub(crate) fn storage_base(&self) -> PathBuf {
        self.config.data_dir.join("storage")
    }
}

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

/// What runs statements: the shared state plus the DataFusion templates. Lives on the query
/// runtime's threads (the [`Engine`] only hands work to it).
struct Executor {
    core: Arc<Core>,
    base_state: SessionState,
    /// Disk manager, caches and object stores shared by every statement; each statement gets
    /// its own memory pool on top (`statement_memory_bytes`).
    base_runtime_env: Arc<RuntimeEnv>,
}

fn io_millis() -> i64 {
    crate::ids::now_millis()
}

/// Whether a statement's tokens mention `_seq`, `_updated` or `_deleted` anywhere.
fn mentions_system_columns(toks: &[Tok]) -> bool {
    toks.iter().any(|t| match &t.kind {
        TokKind::Word(w) | TokKind::QuotedIdent(w) => is_system_column(&w.to_ascii_lowercase()),
        _ => false,
    })
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
    /// Opens (or creates) the instance in `config.data_dir`: RocksDB, the catalog, the users
    /// (bootstrapping `root`), the DataFusion session template and the query runtime.
    ///
    /// # Errors
    /// [`Error::Internal`] when the directory cannot be opened (e.g. locked by another process);
    /// [`Error::InvalidParameter`] for a limit of 0.
    pub fn open(config: Config) -> Result<Engine> {
        config.validate()?;
        let store = Arc::new(Store::open(
            &config.data_dir.join("rocksdb"),
            config.sync_writes,
        )?);
        if let Some(v) = store.get(CF_META, SEQ_HWM_KEY)? {
            let hwm = u64::from_le_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| Error::Internal("bad _seq high-water mark".into()))?,
            );
            crate::ids::observe(hwm);
        }
        let created_at = match store.get(CF_META, b"ctr/created_at")? {
            Some(v) => i64::from_le_bytes(v.as_slice().try_into().unwrap_or([0; 8])),
            None => {
                let now = io_millis();
                let mut b = Batch::default();
                b.put(&store, CF_META, b"ctr/created_at", &now.to_le_bytes());
                store.write(b)?;
                now
            }
        };
        let catalog = Catalog::load(store.clone())?;
        let users = Users::open(store.clone(), config.root_password.as_deref())?;
        let cold = ColdStore::local(&config.data_dir.join("storage"))?;
        let jobs = Jobs::open(store.clone())?;
        let core = Arc::new(Core {
            store,
            catalog,
            users,
            config,
            created_at,
            cold,
            jobs,
            hot_counts: Mutex::default(),
            locks: Mutex::default(),
        });
        let session_config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG_NAME, "default")
            .with_create_default_catalog_and_schema(false);
        // Nothing spills to disk: a statement over its memory limit fails with LIMIT_EXCEEDED.
        let base_runtime_env = RuntimeEnvBuilder::new()
            .with_disk_manager_builder(DiskManager::builder().with_mode(DiskManagerMode::Disabled))
            .build_arc()?;
        let mut base_state = SessionStateBuilder::new()
            .with_config(session_config)
            .with_runtime_env(base_runtime_env.clone())
            .with_default_features()
            .with_analyzer_rule(Arc::new(crate::query::checked::CheckedArithmetic))
            .with_physical_optimizer_rule(Arc::new(crate::query::coop::YieldEverywhere))
            .build();
        for udf in [
            crate::functions::snowflake_id_udf(),
            crate::functions::uuid_v7_udf(),
            crate::functions::ulid_udf(),
        ] {
            base_state.register_udf(Arc::new(udf))?;
        }
        crate::query::bounded::bound_string_functions(&mut base_state)?;
        Ok(Engine {
            exec: Arc::new(Executor {
                core,
                base_state,
                base_runtime_env,
            }),
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
        self.exec.evict_expired_stream_rows(now_ms).await
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
        let exec = self.exec.clone();
        self.runtime
            .run(async move { exec.run_maintenance(now_ms).await })
            .await
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
    /// See [`Engine::evict_expired_stream_rows`].
    async fn evict_expired_stream_rows(&self, now_ms: i64) -> Result<u64> {
        let mut removed = 0u64;
        for t in self.core.catalog.tables(None) {
            let (TableType::Stream, Some(ttl)) = (t.table_type, t.ttl_seconds) else {
                continue;
            };
            let cutoff = crate::ids::cutoff_seq(now_ms, ttl);
            let lock = self.core.table_lock(t.id);
            let _guard = lock.lock().await;
            let mut b = Batch::default();
            self.core
                .store
                .for_each_prefix(CF_ROWS, &keys::table_range(t.id).0, |k, v| {
                    if codec::decode_header(v)?.seq < cutoff {
                        b.delete(&self.core.store, CF_ROWS, k);
                    }
                    Ok(true)
                })?;
            removed = removed.saturating_add(b.len() as u64);
            self.core.store.write(b)?;
        }
        Ok(removed)
    }

    /// The body of [`Engine::execute_with_params`], on the query runtime.
    async fn execute_request(
        &self,
        sql: &str,
        session: Session,
        params: &[serde_json::Value],
    ) -> Result<Vec<QueryResult>> {
        if sql.len() > self.core.config.max_sql_bytes {
            return Err(Error::PayloadTooLarge(format!(
                "SQL is {} bytes; the limit is {} bytes",
                sql.len(),
                self.core.config.max_sql_bytes
            )));
        }
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
            let limits = self.limits(&session);
            let control = Arc::new(StatementControl::default());
            let run = self.execute_one(stmt, &mut session, &params, &control);
            out.push(run_with_deadline(run, limits.statement_timeout_ms, &control).await?);
        }
        Ok(out)
    }

    /// The limits in force for `session`: the configuration, lowered by the session's `SET`s.
    fn limits(&self, session: &Session) -> Limits {
        let config = self.core.config.limits();
        match &session.limits {
            Some(s) => config.narrowed_by(s),
            None => config,
        }
    }

    async fn execute_one(
        &self,
        sql: &str,
        session: &mut Session,
        params: &[ScalarValue],
        control: &Arc<StatementControl>,
    ) -> Result<QueryResult> {
        sql::complexity::check(sql, self.core.config.max_expression_depth)?;
        let toks = sql::lexer::tokenize(sql)?;
        match sql::parse_tokens(sql, &toks)? {
            Some(KalamStatement::ExecuteAs {
                user_id,
                sql: inner,
            }) => {
                session.require(Role::Service, "EXECUTE AS USER")?;
                let target = self.core.users.require_live(&user_id)?;
                if target.role > session.role {
                    return Err(Error::PermissionDenied(format!(
                        "user '{}' (role {}) cannot act as '{}' (role {})",
                        session.user_id, session.role, target.user_id, target.role
                    )));
                }
                let inner_statements = sql::split_statements(&inner);
                let [inner] = inner_statements.as_slice() else {
                    return Err(Error::InvalidSql(
                        "EXECUTE AS USER takes exactly one statement".into(),
                    ));
                };
                let mut as_user = Session {
                    user_id: target.user_id,
                    role: target.role,
                    namespace: session.namespace.clone(),
                    limits: session.limits,
                };
                Box::pin(self.execute_one(inner, &mut as_user, params, control)).await
            }
            Some(KalamStatement::DropTable {
                name,
                if_exists,
                table_type,
            }) => self.drop_table(&name, if_exists, table_type, session).await,
            Some(KalamStatement::DropNamespace {
                name,
                if_exists,
                cascade,
            }) => {
                self.drop_namespace(&name, if_exists, cascade, session)
                    .await
            }
            Some(stmt) => self.execute_kalam(stmt, session),
            None => {
                self.execute_datafusion(sql, &toks, session, params, control)
                    .await
            }
        }
    }

    /// A `SessionContext` for one statement, with the `kalam` catalog bound to `session`, a
    /// memory pool of `limits.statement_memory_bytes`, and `control` for the write path.
    fn context(
        &self,
        session: &Session,
        with_system_columns: bool,
        limits: &Limits,
        control: Arc<StatementControl>,
    ) -> Result<SessionContext> {
        let catalogs: Arc<dyn CatalogProviderList> = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog(
            CATALOG_NAME.to_string(),
            Arc::new(RequestCatalog::new(
                self.core.clone(),
                session.clone(),
                with_system_columns,
            )),
        );
        let pool_bytes = usize::try_from(limits.statement_memory_bytes).unwrap_or(usize::MAX);
        let base = &self.base_runtime_env;
        let runtime_env = Arc::new(RuntimeEnv {
            memory_pool: Arc::new(GreedyMemoryPool::new(pool_bytes)),
            disk_manager: base.disk_manager.clone(),
            cache_manager: base.cache_manager.clone(),
            object_store_registry: base.object_store_registry.clone(),
        });
        let mut state = SessionStateBuilder::new_from_existing(self.base_state.clone())
            .with_catalog_list(catalogs)
            .with_runtime_env(runtime_env)
            .build();
        let config = state.config_mut();
        config.options_mut().catalog.default_schema = session
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        config.set_extension(control);
        state.register_udf(Arc::new(crate::functions::current_user_udf(
            &session.user_id,
        )))?;
        Ok(SessionContext::new_with_state(state))
    }

    /// Plans a statement KalamDB does not parse itself with DataFusion, checks what it does
    /// ([`guard`]), and runs it: reads and INSERT through DataFusion, UPDATE and DELETE through
    /// [`dml`] with their exact predicate. Results are streamed under the result-size limits.
    async fn execute_datafusion(
        &self,
        sql: &str,
        toks: &[Tok],
        session: &Session,
        params: &[ScalarValue],
        control: &Arc<StatementControl>,
    ) -> Result<QueryResult> {
        let limits = self.limits(session);
        let ctx = self.context(
            session,
            mentions_system_columns(toks),
            &limits,
            control.clone(),
        )?;
        let sql = &normalize_current_user(sql, toks);
        let state = ctx.state();
        let mut statement = state.sql_to_statement(sql, &datafusion::config::Dialect::Generic)?;
        guard::check_ast(&statement)?;
        crate::query::checked::exact_integer_literals(&mut statement)?;
        self.rewrite_insert_defaults(&mut statement, session)?;
        let plan = state.statement_to_plan(statement).await?;
        let plan = if params.is_empty() {
            plan
        } else {
            plan.with_param_values(ParamValues::from(params.to_vec()))?
        };
        let kind = guard::classify(&plan)?;
        match kind {
            PlanKind::Update | PlanKind::Delete => self.execute_dml(&state, plan, control).await,
            PlanKind::Query | PlanKind::Insert => {
                let df = ctx.execute_logical_plan(plan).await?;
                let schema = Arc::new(df.schema().as_arrow().clone());
                let stream = df.execute_stream().await?;
                let (batches, row_count) = collect_limited(stream, &limits).await?;
                if kind == PlanKind::Query {
                    Ok(QueryResult {
                        schema,
                        batches,
                        row_count,
                        message: None,
                    })
                } else {
                    let n = first_count(&batches);
                    Ok(QueryResult::message(format!("Inserted {n} row(s)"), n))
                }
            }
        }
    }

    /// UPDATE/DELETE: analyze (type coercion, no optimization), take the exact predicate and
    /// assignments off the plan, and run the table's write path.
    async fn execute_dml(
        &self,
        state: &SessionState,
        plan: LogicalPlan,
        control: &StatementControl,
    ) -> Result<QueryResult> {
        let plan = state
            .analyzer()
            .execute_and_check(plan, state.config_options(), |_, _| {})?;
        let write = dml::extract(&plan)?;
        let n = if write.delete {
            write
                .table
                .delete_where(state, write.predicate, control)
                .await?
        } else {
            write
                .table
                .update_where(state, write.assignments, write.predicate, control)
                .await?
        };
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let verb = if write.delete { "Deleted" } else { "Updated" };
        Ok(QueryResult::message(format!("{verb} {n} row(s)"), n))
    }

    /// `INSERT ... VALUES (DEFAULT, ...)` (PostgreSQL): DataFusion 55 plans `DEFAULT` as a column
    /// name, so each bare `DEFAULT` in VALUES is replaced by its column's default expression
    /// (or NULL) before planning. Statements naming unknown tables are left for DataFusion to reject.
    fn rewrite_insert_defaults(&self, stmt: &mut DfStatement, session: &Session) -> Result<()> {
        use datafusion::sql::sqlparser::{dialect::GenericDialect, parser::Parser};
        let is_default = |e: &ast::Expr| matches!(e, ast::Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"));
        let DfStatement::Statement(s) = stmt else {
            return Ok(());
        };
        let ast::Statement::Insert(ins) = s.as_mut() else {
            return Ok(());
        };
        let Some(source) = ins.source.as_mut() else {
            return Ok(());
        };
        let ast::SetExpr::Values(values) = source.body.as_mut() else {
            return Ok(());
        };
        if !values.rows.iter().any(|r| r.content.iter().any(is_default)) {
            return Ok(());
        }
        let ident = |i: &ast::Ident| {
            if i.quote_style.is_some() {
                i.value.clone()
            } else {
                i.value.to_lowercase()
            }
        };
        let ast::TableObject::TableName(name) = &ins.table else {
            return Ok(());
        };
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident())
            .map(ident)
            .collect();
        let (ns, table) = match parts.as_slice() {
            [t] => (session.namespace.clone().unwrap_or_default(), t.clone()),
            [ns, t] | [_, ns, t] => (ns.clone(), t.clone()),
            _ => return Ok(()),
        };
        let Some(def) = self.core.catalog.table(&ns, &table) else {
            return Ok(());
        };
        let columns: Option<Vec<&ColumnDef>> = if ins.columns.is_empty() {
            Some(def.columns.iter().collect())
        } else {
            ins.columns
                .iter()
                .map(|c| {
                    c.0.last()
                        .and_then(|p| p.as_ident())
                        .and_then(|i| def.column(&ident(i)))
                })
                .collect()
        };
        let Some(columns) = columns else {
            return Ok(());
        };
        for row in values.rows.iter_mut() {
            for (e, c) in row.content.iter_mut().zip(&columns) {
                if !is_default(e) {
                    continue;
                }
                let sql = match &c.default {
                    // sqlparser reads CURRENT_USER as a keyword without parentheses.
                    Some(crate::catalog::DefaultValue::CurrentUser) => "CURRENT_USER".to_string(),
                    Some(d) => d.to_sql(),
                    None => "NULL".to_string(),
                };
                *e = Parser::new(&GenericDialect {})
                    .try_with_sql(&sql)
                    .and_then(|mut p| p.parse_expr())
                    .map_err(|err| Error::Internal(format!("cannot plan DEFAULT {sql}: {err}")))?;
            }
        }
        Ok(())
    }

    fn execute_kalam(&self, stmt: KalamStatement, session: &mut Session) -> Result<QueryResult> {
        let core = &self.core;
        match stmt {
            KalamStatement::CreateNamespace {
                name,
                if_not_exists,
            } => {
                session.require(Role::Dba, "CREATE NAMESPACE")?;
                validate_namespace_name(&name)?;
                let _g = core.catalog.ddl_lock();
                if core.catalog.namespace(&name).is_some() {
                    if if_not_exists {
                        return Ok(QueryResult::message(
                            format!("Namespace '{name}' already exists"),
                            0,
                        ));
                    }
                    return Err(Error::AlreadyExists(format!(
                        "namespace '{name}' already exists"
                    )));
                }
                core.catalog.put_namespace(NamespaceDef {
                    name: name.clone(),
                    options: Default::default(),
                    created_at: io_millis(),
                })?;
                Ok(QueryResult::message(
                    format!("Namespace '{name}' created"),
                    0,
                ))
            }
            KalamStatement::AlterNamespace { name, options } => {
                session.require(Role::Dba, "ALTER NAMESPACE")?;
                let _g = core.catalog.ddl_lock();
                core.catalog.require_namespace(&name)?;
                let mut ns = core
                    .catalog
                    .namespace(&name)
                    .ok_or_else(|| Error::NamespaceNotFound(name.clone()))?;
                for (k, v) in options {
                    ns.options.insert(k, serde_json::Value::String(v));
                }
                core.catalog.put_namespace(ns)?;
                Ok(QueryResult::message(
                    format!("Namespace '{name}' altered"),
                    0,
                ))
            }
            KalamStatement::ShowNamespaces => {
                let tables = core.catalog.tables(None);
                let rows = core
                    .catalog
                    .namespaces()
                    .into_iter()
                    .map(|n| {
                        let count = crate::ids::count_i64(
                            tables.iter().filter(|t| t.namespace == n.name).count(),
                        );
                        vec![
                            ScalarValue::Utf8(Some(n.name)),
                            ScalarValue::Int64(Some(count)),
                            ts(n.created_at),
                        ]
                    })
                    .collect();
                QueryResult::rows(
                    &[
                        ("name", DataType::Utf8),
                        ("table_count", DataType::Int64),
                        ("created_at", ts_type()),
                    ],
                    rows,
                )
            }
            KalamStatement::Use(ns) => {
                core.catalog.require_namespace(&ns)?;
                session.namespace = Some(ns.clone());
                Ok(QueryResult::message(format!("Using namespace '{ns}'"), 0))
            }
            KalamStatement::CreateTable(ct) => self.create_table(*ct, session),
            KalamStatement::AlterTable { name, op } => self.alter_table(&name, op, session),
            KalamStatement::ShowTables(ns) => {
                if let Some(ns) = &ns {
                    core.catalog.require_namespace(ns)?;
                }
                let rows = core
                    .catalog
                    .tables(ns.as_deref())
                    .iter()
                    .map(|t| {
                        vec![
                            ScalarValue::Utf8(Some(t.namespace.clone())),
                            ScalarValue::Utf8(Some(t.name.clone())),
                            ScalarValue::Utf8(Some(t.table_type.as_str().into())),
                            ts(t.created_at),
                        ]
                    })
                    .collect();
                QueryResult::rows(
                    &[
                        ("namespace", DataType::Utf8),
                        ("table_name", DataType::Utf8),
                        ("table_type", DataType::Utf8),
                        ("created_at", ts_type()),
                    ],
                    rows,
                )
            }
            KalamStatement::Describe(name) => {
                let ns = resolve_namespace(&name, session)?;
                let t = core.catalog.require_table(&ns, &name.name)?;
                let rows = t
                    .columns
                    .iter()
                    .map(|c| {
                        vec![
                            ScalarValue::Utf8(Some(c.name.clone())),
                            ScalarValue::Utf8(Some(c.sql_type.sql_name())),
                            ScalarValue::Boolean(Some(c.nullable)),
                            ScalarValue::Boolean(Some(c.primary_key)),
                            ScalarValue::Utf8(c.default.as_ref().map(|d| d.to_sql())),
                        ]
                    })
                    .collect();
                QueryResult::rows(
                    &[
                        ("column_name", DataType::Utf8),
                        ("data_type", DataType::Utf8),
                        ("is_nullable", DataType::Boolean),
                        ("is_primary_key", DataType::Boolean),
                        ("default", DataType::Utf8),
                    ],
                    rows,
                )
            }
            KalamStatement::ShowStats(name) => {
                let ns = resolve_namespace(&name, session)?;
                let t = core.catalog.require_table(&ns, &name.name)?;
                let hot_rows = self.count_hot_rows(&t, session)?;
                let own = (t.table_type.is_partitioned() && session.role < Role::Dba)
                    .then_some(session.user_id.as_str());
                let (cold_rows, files, bytes, last) =
                    crate::jobs::flush::cold_stats(core, &t, own)?;
                let last = last
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
                let stat = |k: &str, v: Option<String>| {
                    vec![ScalarValue::Utf8(Some(k.into())), ScalarValue::Utf8(v)]
                };
                let rows = vec![
                    stat("hot_rows", Some(hot_rows.to_string())),
                    stat("cold_rows", Some(cold_rows.to_string())),
                    stat("parquet_files", Some(files.to_string())),
                    stat("storage_bytes", Some(bytes.to_string())),
                    stat("last_flushed_at", last),
                    stat("schema_version", Some(t.schema_version.to_string())),
                ];
                QueryResult::rows(
                    &[("statistic", DataType::Utf8), ("value", DataType::Utf8)],
                    rows,
                )
            }
            KalamStatement::CreateUser {
                user_id,
                password,
                role,
                email,
            } => {
                session.require(Role::Dba, "CREATE USER")?;
                auth::validate_user_id(&user_id)?;
                if role == Role::System {
                    session.require(Role::System, "creating a system user")?;
                }
                let _g = core.catalog.ddl_lock();
                if let Some(u) = core.users.get(&user_id)? {
                    return Err(Error::AlreadyExists(match u.deleted_at {
                        None => format!("user '{user_id}' already exists"),
                        // Partitions are keyed by user id: a new 'carol' would inherit the
                        // dropped one's rows. Ids are never reused (docs/decisions.md).
                        Some(_) => format!(
                            "user id '{user_id}' belonged to a dropped user whose rows are kept \
                             under that id; user ids are never reused, choose another"
                        ),
                    }));
                }
                let now = io_millis();
                core.users.put(&UserRecord {
                    user_id: user_id.clone(),
                    username: user_id.clone(),
                    password_hash: Some(auth::hash_password(&password)?),
                    role,
                    email,
                    created_at: now,
                    updated_at: now,
                    deleted_at: None,
                })?;
                Ok(QueryResult::message(format!("User '{user_id}' created"), 0))
            }
            KalamStatement::AlterUser {
                user_id,
                password,
                role,
                email,
            } => {
                let own_password = user_id == session.user_id && role.is_none() && email.is_none();
                if !own_password {
                    session.require(Role::Dba, "ALTER USER")?;
                }
                let _g = core.catalog.ddl_lock();
                let mut u = core.users.require_live(&user_id)?;
                if (u.role == Role::System || role == Some(Role::System)) && !own_password {
                    session.require(Role::System, "managing a system user")?;
                }
                if let Some(p) = password {
                    u.password_hash = Some(auth::hash_password(&p)?);
                }
                if let Some(r) = role {
                    u.role = r;
                }
                if email.is_some() {
                    u.email = email;
                }
                u.updated_at = io_millis();
                core.users.put(&u)?;
                Ok(QueryResult::message(format!("User '{user_id}' altered"), 0))
            }
            KalamStatement::DropUser { user_id, if_exists } => {
                session.require(Role::Dba, "DROP USER")?;
                let _g = core.catalog.ddl_lock();
                let Ok(mut u) = core.users.require_live(&user_id) else {
                    if if_exists {
                        return Ok(QueryResult::message(
                            format!("User '{user_id}' does not exist"),
                            0,
                        ));
                    }
                    return Err(Error::InvalidParameter(format!(
                        "user '{user_id}' does not exist"
                    )));
                };
                if u.user_id == ROOT_USER {
                    return Err(Error::PermissionDenied(
                        "the root user cannot be dropped".into(),
                    ));
                }
                if u.role == Role::System {
                    session.require(Role::System, "dropping a system user")?;
                }
                u.deleted_at = Some(io_millis());
                core.users.put(&u)?;
                Ok(QueryResult::message(format!("User '{user_id}' dropped"), 0))
            }
            KalamStatement::ExecuteAs { .. }
            | KalamStatement::DropTable { .. }
            | KalamStatement::DropNamespace { .. } => Err(Error::Internal(
                "nested EXECUTE AS reached the wrong path".into(),
            )),
            KalamStatement::FlushTable(name) => {
                session.require(Role::Dba, "FLUSH")?;
                let ns = resolve_namespace(&name, session)?;
                let t = core.catalog.require_table(&ns, &name.name)?;
                if t.table_type == TableType::Stream {
                    return Err(Error::Execution(format!(
                        "STREAM table '{}' cannot be flushed: its rows live only in the hot tier",
                        t.qualified()
                    )));
                }
                let q = t.qualified();
                let (id, existing) =
                    crate::jobs::start_flush(&self.core, t, None, &session.user_id)?;
                Ok(QueryResult::message(
                    if existing {
                        format!("Flush already in progress for table '{q}'. Job ID: {id}")
                    } else {
                        format!("Flush started for table '{q}'. Job ID: {id}")
                    },
                    0,
                ))
            }
            KalamStatement::FlushAll(ns) => {
                session.require(Role::Dba, "FLUSH")?;
                if let Some(ns) = &ns {
                    core.catalog.require_namespace(ns)?;
                }
                let mut ids = Vec::new();
                for t in core.catalog.tables(ns.as_deref()) {
                    if t.table_type != TableType::Stream {
                        ids.push(
                            crate::jobs::start_flush(&self.core, t, None, &session.user_id)?.0,
                        );
                    }
                }
                Ok(QueryResult::message(
                    format!(
                        "Flush started for {} table(s). Job IDs: [{}]",
                        ids.len(),
                        ids.join(", ")
                    ),
                    ids.len(),
                ))
            }
            KalamStatement::KillJob(id) => {
                session.require(Role::Dba, "KILL JOB")?;
                Ok(QueryResult::message(core.jobs.kill(&id)?, 0))
            }
            KalamStatement::KillLiveQuery(id) => Err(Error::InvalidParameter(format!(
                "live query '{id}' does not exist"
            ))),
            KalamStatement::Set { name, value } => {
                let setting = Setting::from_name(&name).ok_or_else(|| {
                    Error::InvalidParameter(format!(
                        "unknown setting '{name}': SET accepts statement_timeout, \
                         statement_memory_bytes, max_result_rows and max_result_bytes"
                    ))
                })?;
                let v = setting.parse_value(&value)?;
                let mut limits = self.limits(session);
                setting.lower(&mut limits, v)?;
                session.limits = Some(limits);
                Ok(QueryResult::message(
                    format!("SET {} = {v}", setting.key()),
                    0,
                ))
            }
            KalamStatement::ShowSetting(name) => {
                let limits = self.limits(session);
                let (key, v) = match Setting::from_name(&name) {
                    Some(s) => (s.key(), s.get(&limits)),
                    None => ("max_expression_depth", core.config.max_expression_depth),
                };
                let v = i64::try_from(v).unwrap_or(i64::MAX);
                QueryResult::rows(
                    &[(key, DataType::Int64)],
                    vec![vec![ScalarValue::Int64(Some(v))]],
                )
            }
        }
    }

    fn count_hot_rows(&self, t: &TableDef, session: &Session) -> Result<u64> {
        let prefix = if t.table_type.is_partitioned() && session.role < Role::Dba {
            keys::partition_prefix(t.id, &session.user_id)
        } else {
            keys::table_range(t.id).0
        };
        let mut n = 0u64;
        self.core.store.for_each_prefix(CF_ROWS, &prefix, |_, v| {
            n = n.saturating_add(u64::from(!codec::decode_header(v)?.deleted));
            Ok(true)
        })?;
        Ok(n)
    }

    /// Deletes a table: rows, definition, manifest, index and deletion vectors in one atomic
    /// batch (under the table lock, so no flush is mid-way), then its Parquet files.
    /// Returns `(files deleted, bytes freed)`.
    async fn drop_table_data(&self, t: &TableDef) -> Result<(u64, u64)> {
        let lock = self.core.table_lock(t.id);
        let _guard = lock.lock().await;
        let files = {
            let view = self.core.store.view();
            cold::manifest(&view, t.id, None)?
        };
        {
            let _g = self.core.catalog.ddl_lock();
            if self
                .core
                .catalog
                .table(&t.namespace, &t.name)
                .is_none_or(|c| c.id != t.id)
            {
                return Err(Error::TableNotFound(format!(
                    "table '{}' does not exist",
                    t.qualified()
                )));
            }
            let (from, to) = keys::table_range(t.id);
            let mut b = Batch::default();
            b.delete_range(&self.core.store, CF_ROWS, &from, &to);
            self.core.catalog.delete_table_in(&mut b, t);
            cold::delete_table_records(&mut b, &self.core.store, t.id);
            self.core.store.write(b)?;
            self.core.catalog.forget_table(&t.namespace, &t.name);
        }
        // A crash here leaves files no manifest names; start-up removes them.
        for f in &files {
            self.core.cold.delete(&f.path).await?;
        }
        Ok((files.len() as u64, files.iter().map(|f| f.bytes).sum()))
    }

    async fn drop_table(
        &self,
        name: &TableName,
        if_exists: bool,
        table_type: Option<TableType>,
        session: &Session,
    ) -> Result<QueryResult> {
        session.require(Role::Dba, "DROP TABLE")?;
        let ns = resolve_namespace(name, session)?;
        let Some(t) = self.core.catalog.table(&ns, &name.name) else {
            if if_exists {
                return Ok(QueryResult::message(
                    format!("Table '{ns}.{}' does not exist", name.name),
                    0,
                ));
            }
            return Err(self
                .core
                .catalog
                .require_table(&ns, &name.name)
                .err()
                .unwrap_or_else(|| {
                    Error::TableNotFound(format!("table '{ns}.{}' does not exist", name.name))
                }));
        };
        if let Some(tt) = table_type
            && tt != t.table_type
        {
            return Err(Error::Execution(format!(
                "table '{}' is a {} table, not {}",
                t.qualified(),
                t.table_type.as_str(),
                tt.as_str()
            )));
        }
        let (files, bytes) = self.drop_table_data(&t).await?;
        Ok(QueryResult::message(
            format!(
                "Table '{}' dropped ({files} file(s) deleted, {bytes} bytes freed)",
                t.qualified()
            ),
            0,
        ))
    }

    async fn drop_namespace(
        &self,
        name: &str,
        if_exists: bool,
        cascade: bool,
        session: &Session,
    ) -> Result<QueryResult> {
        session.require(Role::Dba, "DROP NAMESPACE")?;
        if self.core.catalog.namespace(name).is_none() {
            if if_exists {
                return Ok(QueryResult::message(
                    format!("Namespace '{name}' does not exist"),
                    0,
                ));
            }
            return Err(Error::NamespaceNotFound(format!(
                "namespace '{name}' does not exist"
            )));
        }
        let tables = self.core.catalog.tables(Some(name));
        if !tables.is_empty() && !cascade {
            return Err(Error::Execution(format!(
                "namespace '{name}' is not empty: it contains {} table(s); drop them first or use DROP NAMESPACE {name} CASCADE",
                tables.len()
            )));
        }
        for t in &tables {
            self.drop_table_data(t).await?;
        }
        let _g = self.core.catalog.ddl_lock();
        self.core.catalog.delete_namespace(name)?;
        Ok(QueryResult::message(
            format!("Namespace '{name}' dropped"),
            0,
        ))
    }

    /// One maintenance pass as of `now_ms`: STREAM TTL eviction, flushes whose policy is due,
    /// and purging tombstones past DELETED_RETENTION (recorded as `cleanup` jobs). A table that
    /// fails does not stop the pass: every table is visited, failures are logged, and the first
    /// one is returned.
    ///
    /// # Errors
    /// The first failure.
    async fn run_maintenance(&self, now_ms: i64) -> Result<()> {
        let mut first_error = self.evict_expired_stream_rows(now_ms).await.err();
        for t in self.core.catalog.tables(None) {
            if t.table_type == TableType::Stream {
                continue;
            }
            if let Err(e) = self.maintain_table(&t, now_ms).await {
                tracing::warn!(table = %t.qualified(), error = %e, "maintenance failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn maintain_table(&self, t: &Arc<TableDef>, now_ms: i64) -> Result<()> {
        if crate::jobs::flush::flush_due(&self.core, t, now_ms)? {
            crate::jobs::start_flush(&self.core, t.clone(), None, crate::auth::ROOT_USER)?;
        }
        let purged = crate::jobs::flush::purge_tombstones(&self.core, t, now_ms).await?;
        if purged > 0 {
            crate::jobs::record_maintenance(&self.core, "cleanup", t, purged)?;
        }
        Ok(())
    }

    fn create_table(&self, ct: CreateTable, session: &Session) -> Result<QueryResult> {
        let core = &self.core;
        session.require(Role::Dba, "CREATE TABLE")?;
        let ns = resolve_namespace(&ct.name, session)?;
        core.catalog.require_namespace(&ns)?;
        validate_identifier("table", &ct.name.name)?;
        if ct.columns.is_empty() {
            return Err(Error::InvalidSql(
                "a table needs at least one column".into(),
            ));
        }
        if ct.columns.len() > MAX_COLUMNS {
            return Err(Error::InvalidSql(format!(
                "a table can have at most {MAX_COLUMNS} columns"
            )));
        }
        let mut columns = Vec::with_capacity(ct.columns.len());
        let mut names = std::collections::HashSet::new();
        for (id, spec) in (1u32..).zip(&ct.columns) {
            if !names.insert(spec.name.as_str()) {
                return Err(Error::InvalidSql(format!(
                    "column '{}' is declared twice",
                    spec.name
                )));
            }
            columns.push(column_def(spec, id, 1)?);
        }
        if columns.iter().filter(|c| c.primary_key).count() > 1 {
            return Err(Error::InvalidSql(
                "a table can have only one PRIMARY KEY column".into(),
            ));
        }
        let is_stream = ct.table_type == TableType::Stream;
        if !is_stream && (ct.ttl_seconds.is_some() || ct.buffer_size.is_some()) {
            return Err(Error::InvalidSql(
                "TTL and BUFFER_SIZE apply to STREAM tables only".into(),
            ));
        }
        if is_stream && ct.flush_policy.is_some() {
            return Err(Error::InvalidSql(
                "STREAM tables are never flushed: remove the FLUSH POLICY".into(),
            ));
        }
        check_range("TTL", "seconds", ct.ttl_seconds, 1, MAX_DURATION_SECS)?;
        check_range("BUFFER_SIZE", "rows", ct.buffer_size, 1, MAX_BUFFER_SIZE)?;
        check_range(
            "DELETED_RETENTION",
            "seconds",
            ct.deleted_retention_secs,
            0,
            MAX_DURATION_SECS,
        )?;

        let flush_policy = ct.flush_policy.unwrap_or_default();
        flush_policy.validate()?;
        if let Some(l) = &ct.location {
            crate::catalog::validate_location(l, ct.table_type)?;
        }
        let storage_id = ct.storage_id.unwrap_or_else(|| "local".into());
        if storage_id != "local" {
            return Err(Error::InvalidParameter(format!(
                "unknown storage '{storage_id}': only 'local' exists"
            )));
        }
        let _g = core.catalog.ddl_lock();
        if core.catalog.table(&ns, &ct.name.name).is_some() {
            if ct.if_not_exists {
                return Ok(QueryResult::message(
                    format!("Table '{ns}.{}' already exists", ct.name.name),
                    0,
                ));
            }
            return Err(Error::AlreadyExists(format!(
                "table '{ns}.{}' already exists",
                ct.name.name
            )));
        }
        let now = io_millis();
        let next_column_id = u32::try_from(columns.len())
            .ok()
            .and_then(|n| n.checked_add(1))
            .ok_or_else(|| Error::InvalidSql("too many columns".into()))?;
        let def = TableDef {
            id: core.catalog.next_table_id()?,
            namespace: ns.clone(),
            name: ct.name.name.clone(),
            table_type: ct.table_type,
            columns,
            next_column_id,
            schema_version: 1,
            location: ct.location,
            flush_policy: if is_stream {
                FlushPolicy {
                    rows: None,
                    interval_secs: None,
                }
            } else {
                flush_policy
            },
            ttl_seconds: ct.ttl_seconds,
            buffer_size: ct.buffer_size,
            deleted_retention_secs: if is_stream {
                None
            } else {
                ct.deleted_retention_secs
            },
            storage_id,
            created_at: now,
            updated_at: now,
        };
        core.catalog.put_table(def)?;
        Ok(QueryResult::message(
            format!("Table '{ns}.{}' created", ct.name.name),
            0,
        ))
    }

    fn alter_table(
        &self,
        name: &TableName,
        op: AlterTableOp,
        session: &Session,
    ) -> Result<QueryResult> {
        let core = &self.core;
        session.require(Role::Dba, "ALTER TABLE")?;
        let ns = resolve_namespace(name, session)?;
        let _g = core.catalog.ddl_lock();
        let mut t = (*core.catalog.require_table(&ns, &name.name)?).clone();
        let version = t
            .schema_version
            .checked_add(1)
            .ok_or_else(|| Error::InvalidSql("too many schema versions".into()))?;
        match op {
            AlterTableOp::AddColumn(spec) => {
                if t.column(&spec.name).is_some() {
                    return Err(Error::AlreadyExists(format!(
                        "column '{}' already exists in '{}'",
                        spec.name,
                        t.qualified()
                    )));
                }
                if spec.primary_key {
                    return Err(Error::InvalidSql(
                        "ADD COLUMN cannot add a PRIMARY KEY".into(),
                    ));
                }
                if !spec.nullable && spec.default.is_none() {
                    return Err(Error::InvalidSql(format!(
                        "ADD COLUMN '{}' NOT NULL needs a DEFAULT for existing rows",
                        spec.name
                    )));
                }
                if t.columns.len() >= MAX_COLUMNS {
                    return Err(Error::InvalidSql(format!(
                        "a table can have at most {MAX_COLUMNS} columns"
                    )));
                }
                let c = column_def(&spec, t.next_column_id, version)?;
                t.next_column_id = t
                    .next_column_id
                    .checked_add(1)
                    .ok_or_else(|| Error::InvalidSql("too many columns".into()))?;
                t.columns.push(c);
            }
            AlterTableOp::DropColumn(c) => {
                let pos = t.columns.iter().position(|x| x.name == c).ok_or_else(|| {
                    Error::Execution(format!(
                        "column '{c}' does not exist in '{}'",
                        t.qualified()
                    ))
                })?;
                if t.columns.get(pos).is_some_and(|col| col.primary_key) {
                    return Err(Error::Execution(format!(
                        "cannot drop PRIMARY KEY column '{c}'"
                    )));
                }
                if t.columns.len() == 1 {
                    return Err(Error::Execution(
                        "cannot drop the only column of a table".into(),
                    ));
                }
                t.columns.remove(pos);
            }
            AlterTableOp::RenameColumn(from, to) => {
                validate_identifier("column", &to)?;
                if is_system_column(&to) {
                    return Err(Error::InvalidSql(format!(
                        "column name '{to}' is reserved for system columns"
                    )));
                }
                if t.column(&to).is_some() {
                    return Err(Error::AlreadyExists(format!(
                        "column '{to}' already exists in '{}'",
                        t.qualified()
                    )));
                }
                let c = t
                    .columns
                    .iter_mut()
                    .find(|x| x.name == from)
                    .ok_or_else(|| {
                        Error::Execution(format!(
                            "column '{from}' does not exist in '{ns}.{}'",
                            name.name
                        ))
                    })?;
                c.name = to;
            }
        }
        t.schema_version = version;
        t.updated_at = io_millis();
        let q = t.qualified();
        core.catalog.put_table(t)?;
        Ok(QueryResult::message(
            format!("Table '{q}' altered (schema version {version})"),
            0,
        ))
    }
}

/// Drains a result stream, failing as soon as it exceeds `max_result_rows` or
/// `max_result_bytes` (Arrow bytes of the rows kept, slices counted by their own size).
/// Returns the batches and the row count.
async fn collect_limited(
    mut stream: datafusion::execution::SendableRecordBatchStream,
    limits: &Limits,
) -> Result<(Vec<RecordBatch>, usize)> {
    let (mut batches, mut rows, mut bytes) = (Vec::new(), 0u64, 0u64);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows = rows.saturating_add(batch.num_rows() as u64);
        if rows > limits.max_result_rows {
            return Err(Error::LimitExceeded(format!(
                "max_result_rows: the result has more than {} rows; add a LIMIT or a narrower WHERE",
                limits.max_result_rows
            )));
        }
        for column in batch.columns() {
            let size = column.to_data().get_slice_memory_size()?;
            bytes = bytes.saturating_add(size as u64);
        }
        if bytes > limits.max_result_bytes {
            return Err(Error::LimitExceeded(format!(
                "max_result_bytes: the result is larger than {} bytes; select fewer rows or columns",
                limits.max_result_bytes
            )));
        }
        batches.push(batch);
    }
    Ok((batches, usize::try_from(rows).unwrap_or(usize::MAX)))
}

/// The `count` a DataFusion DML plan returns (its first row, first column).
fn first_count(batches: &[RecordBatch]) -> usize {
    batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .and_then(|b| b.columns().first())
        .and_then(|c| c.as_primitive_opt::<UInt64Type>().map(|a| a.value(0)))
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
}

/// sqlparser reads `CURRENT_USER` as a parameterless keyword and rejects `CURRENT_USER()`, the
/// SPEC's spelling; rewrite the call form to the keyword form (same function).
fn normalize_current_user<'a>(sql: &'a str, toks: &[Tok]) -> std::borrow::Cow<'a, str> {
    let mut cuts = Vec::new();
    for w in toks.windows(3) {
        if let [name, open, close] = w
            && let (TokKind::Word(word), TokKind::Punct('('), TokKind::Punct(')')) =
                (&name.kind, &open.kind, &close.kind)
            && word.eq_ignore_ascii_case("current_user")
        {
            cuts.push((name.end, close.end));
        }
    }
    if cuts.is_empty() {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for (from, to) in cuts {
        out.push_str(sql.get(last..from).unwrap_or(""));
        last = to;
    }
    out.push_str(sql.get(last..).unwrap_or(""));
    out.into()
}

fn ts(ms: i64) -> ScalarValue {
    ScalarValue::TimestampMillisecond(Some(ms), None)
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn validate_namespace_name(name: &str) -> Result<()> {
    validate_identifier("namespace", name)?;
    if RESERVED_NAMESPACES.contains(&name) {
        return Err(Error::InvalidSql(format!(
            "namespace name '{name}' is reserved"
        )));
    }
    Ok(())
}

fn resolve_namespace(name: &TableName, session: &Session) -> Result<String> {
    name.namespace
        .clone()
        .or_else(|| session.namespace.clone())
        .ok_or_else(|| {
            Error::InvalidSql(format!(
                "table '{}' has no namespace: write ns.{} or USE ns first",
                name.name, name.name
            ))
        })
}

/// Fails unless `value` (when given) lies in `min..=max`.
fn check_range(what: &str, unit: &str, value: Option<u64>, min: u64, max: u64) -> Result<()> {
    match value {
        Some(v) if !(min..=max).contains(&v) => Err(Error::InvalidParameter(format!(
            "{what} must be between {min} and {max} {unit}, got {v}"
        ))),
        _ => Ok(()),
    }
}

fn column_def(spec: &ColumnSpec, id: u32, added_in: u32) -> Result<ColumnDef> {
    if is_system_column(&spec.name) {
        return Err(Error::InvalidSql(format!(
            "column name '{}' is reserved for system columns",
            spec.name
        )));
    }
    validate_identifier("column", &spec.name)?;
    if spec.primary_key
        && matches!(
            spec.sql_type,
            SqlType::Json | SqlType::Bytes | SqlType::Float | SqlType::Double
        )
    {
        return Err(Error::InvalidSql(format!(
            "type {} cannot be a PRIMARY KEY",
            spec.sql_type.sql_name()
        )));
    }
    if let Some(d) = &spec.default {
        let literal = d.literal_scalar(&spec.sql_type.arrow_type())?;
        if spec.sql_type == SqlType::Json {
            // JSON columns are validated on write; their DEFAULT must pass the same check.
            let valid = match &literal {
                Some(ScalarValue::Utf8(Some(text))) => {
                    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
                }
                Some(v) => v.is_null(),
                None => false,
            };
            if !valid {
                return Err(Error::InvalidSql(format!(
                    "DEFAULT {} of JSON column '{}' is not valid JSON",
                    d.to_sql(),
                    spec.name
                )));
            }
        }
        if matches!(d, crate::catalog::DefaultValue::SnowflakeId)
            && spec.sql_type != SqlType::BigInt
        {
            return Err(Error::InvalidSql(format!(
                "SNOWFLAKE_ID() default needs a BIGINT column, '{}' is {}",
                spec.name,
                spec.sql_type.sql_name()
            )));
        }
    }
    Ok(ColumnDef {
        id,
        name: spec.name.clone(),
        sql_type: spec.sql_type,
        nullable: spec.nullable,
        default: spec.default.clone(),
        primary_key: spec.primary_key,
        added_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ttl_eviction_removes_only_expired_stream_rows() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(Config::with_data_dir(dir.path())).unwrap();
        let root = Session::root();
        engine
            .execute("CREATE NAMESPACE n; CREATE STREAM TABLE n.e (v TEXT) TTL 60; CREATE SHARED TABLE n.s (v TEXT)", &root)
            .await
            .unwrap();
        engine
            .execute(
                "INSERT INTO n.e VALUES ('a'), ('b'); INSERT INTO n.s VALUES ('keep')",
                &root,
            )
            .await
            .unwrap();
        let now = crate::ids::now_millis();
        assert_eq!(engine.evict_expired_stream_rows(now).await.unwrap(), 0);
        assert_eq!(
            engine
                .evict_expired_stream_rows(now + 61_000)
                .await
                .unwrap(),
            2
        );
        let r = engine
            .execute("SELECT COUNT(*) FROM n.e; SELECT COUNT(*) FROM n.s", &root)
            .await
            .unwrap();
        assert_eq!(r[0].json_rows(), vec![vec![serde_json::json!(0)]]);
        assert_eq!(r[1].json_rows(), vec![vec![serde_json::json!(1)]]);
    }

    /// Definitions stored before options were range-checked may hold any number: reads and the
    /// maintenance pass must neither panic nor wrap on them (issue #6: a huge TTL killed the
    /// maintenance loop and every SELECT of the table).
    #[tokio::test]
    async fn extreme_stored_options_neither_panic_nor_wrap() {
        let (_d, e) = open_with(
            "CREATE NAMESPACE x; CREATE STREAM TABLE x.e (v TEXT) TTL 60; \
             CREATE SHARED TABLE x.s (id INT PRIMARY KEY) FLUSH POLICY TIME 60; \
             INSERT INTO x.e VALUES ('kept'); INSERT INTO x.s VALUES (1); DELETE FROM x.s WHERE id = 1",
        )
        .await;
        let catalog = &e.exec.core.catalog;
        for (table, ttl, retention, interval) in [
            ("e", Some(u64::MAX), None, None),
            ("s", None, Some(u64::MAX), Some(u64::MAX)),
        ] {
            let mut def = (*catalog.table("x", table).unwrap()).clone();
            def.ttl_seconds = ttl.or(def.ttl_seconds);
            def.deleted_retention_secs = retention.or(def.deleted_retention_secs);
            def.flush_policy.interval_secs = interval.or(def.flush_policy.interval_secs);
            catalog.put_table(def).unwrap();
        }
        for now in [0, crate::ids::now_millis(), i64::MAX] {
            e.run_maintenance(now).await.unwrap();
        }
        assert_eq!(
            rows(&e, "SELECT v FROM x.e").await,
            vec![vec![serde_json::json!("kept")]]
        );
        assert_eq!(
            rows(&e, "SELECT COUNT(*) FROM x.s").await,
            vec![vec![serde_json::json!(0)]]
        );
    }

    async fn open_with(sql: &str) -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(Config::with_data_dir(dir.path())).unwrap();
        engine.execute(sql, &Session::root()).await.unwrap();
        (dir, engine)
    }

    async fn rows(engine: &Engine, sql: &str) -> Vec<Vec<serde_json::Value>> {
        engine
            .execute(sql, &Session::root())
            .await
            .unwrap()
            .pop()
            .unwrap()
            .json_rows()
    }

    async fn message(engine: &Engine, sql: &str) -> String {
        let mut r = engine.execute(sql, &Session::root()).await.unwrap();
        r.pop().and_then(|r| r.message).unwrap()
    }

    async fn stat(engine: &Engine, table: &str, name: &str) -> serde_json::Value {
        let all = rows(engine, &format!("SHOW STATS FOR TABLE {table}")).await;
        all.into_iter().find(|r| r[0] == name).unwrap()[1].clone()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn flush_policies_fire_when_due() {
        let (_d, e) = open_with(
            "CREATE NAMESPACE p; \
             CREATE SHARED TABLE p.by_rows (id INT) FLUSH POLICY ROWS 3; \
             CREATE SHARED TABLE p.by_time (id INT) FLUSH POLICY TIME 60; \
             CREATE SHARED TABLE p.both (id INT) FLUSH POLICY ROWS 100 OR TIME 60; \
             CREATE SHARED TABLE p.dflt (id INT)",
        )
        .await;
        e.execute(
            "INSERT INTO p.by_rows VALUES (1), (2); INSERT INTO p.by_time VALUES (1); \
             INSERT INTO p.both VALUES (1); INSERT INTO p.dflt VALUES (1)",
            &Session::root(),
        )
        .await
        .unwrap();
        let now = crate::ids::now_millis();
        e.run_maintenance(now).await.unwrap();
        e.wait_for_jobs(std::time::Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(
            rows(&e, "SELECT COUNT(*) FROM system.jobs").await,
            vec![vec![serde_json::json!(0)]]
        );
        // ROWS 3 reached; time not yet.
        e.execute("INSERT INTO p.by_rows VALUES (3)", &Session::root())
            .await
            .unwrap();
        e.run_maintenance(now).await.unwrap();
        e.wait_for_jobs(std::time::Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(stat(&e, "p.by_rows", "cold_rows").await, "3");
        assert_eq!(stat(&e, "p.by_time", "cold_rows").await, "0");
        // 61 s later the TIME policies are due; the default ROWS 10000 policy is not.
        e.run_maintenance(now + 61_000).await.unwrap();
        e.wait_for_jobs(std::time::Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(stat(&e, "p.by_time", "cold_rows").await, "1");
        assert_eq!(stat(&e, "p.both", "cold_rows").await, "1");
        assert_eq!(stat(&e, "p.dflt", "hot_rows").await, "1");
        assert_eq!(stat(&e, "p.dflt", "parquet_files").await, "0");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tombstones_are_purged_after_retention_hot_and_cold() {
        let (_d, e) = open_with(
            "CREATE NAMESPACE r; CREATE SHARED TABLE r.t (id INT PRIMARY KEY) DELETED_RETENTION 1h; \
             INSERT INTO r.t VALUES (1), (2), (3); DELETE FROM r.t WHERE id = 1; FLUSH TABLE r.t",
        )
        .await;
        e.wait_for_jobs(std::time::Duration::from_secs(30))
            .await
            .unwrap();
        e.execute("DELETE FROM r.t WHERE id = 2", &Session::root())
            .await
            .unwrap();
        let deleted = "SELECT id FROM r.t WHERE _deleted = true ORDER BY id";
        assert_eq!(
            rows(&e, deleted).await,
            vec![vec![serde_json::json!(1)], vec![serde_json::json!(2)]]
        );
        let now = crate::ids::now_millis();
        e.run_maintenance(now).await.unwrap();
        assert_eq!(
            rows(&e, deleted).await.len(),
            2,
            "within retention nothing is purged"
        );
        e.run_maintenance(now + 3_601_000).await.unwrap();
        assert!(rows(&e, deleted).await.is_empty());
        assert_eq!(
            rows(&e, "SELECT id FROM r.t").await,
            vec![vec![serde_json::json!(3)]]
        );
        let cleanup = "SELECT job_type, status FROM system.jobs WHERE job_type = 'cleanup'";
        assert_eq!(
            rows(&e, cleanup).await,
            vec![vec![
                serde_json::json!("cleanup"),
                serde_json::json!("completed")
            ]]
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn second_flush_names_the_running_job_and_kill_cancels_it() {
        let (_d, e) = open_with(
            "CREATE NAMESPACE k; CREATE SHARED TABLE k.t (id INT); INSERT INTO k.t VALUES (1)",
        )
        .await;
        let def = e.exec.core.catalog.table("k", "t").unwrap();
        let lock = e.exec.core.table_lock(def.id);
        let guard = lock.lock().await; // the job starts but cannot flush yet
        let first = message(&e, "FLUSH TABLE k.t").await;
        let id = first.rsplit(' ').next().unwrap().to_string();
        let second = message(&e, "STORAGE FLUSH TABLE k.t").await;
        assert_eq!(
            second,
            format!("Flush already in progress for table 'k.t'. Job ID: {id}")
        );
        e.execute(&format!("KILL JOB '{id}'"), &Session::root())
            .await
            .unwrap();
        drop(guard);
        e.wait_for_jobs(std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let status = rows(&e, "SELECT job_id, status FROM system.jobs").await;
        assert_eq!(
            status,
            vec![vec![serde_json::json!(id), serde_json::json!("cancelled")]]
        );
        assert_eq!(stat(&e, "k.t", "hot_rows").await, "1");
        assert!(
            e.exec.core.cold.list().await.unwrap().is_empty(),
            "the killed flush's file is discarded"
        );
        let again = e
            .execute(&format!("KILL JOB '{id}'"), &Session::root())
            .await
            .unwrap_err();
        assert_eq!(again.code(), "INVALID_PARAMETER");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn reads_during_flushes_see_every_row_exactly_once() {
        let (_d, e) =
            open_with("CREATE NAMESPACE q; CREATE SHARED TABLE q.t (id INT PRIMARY KEY, v TEXT)")
                .await;
        let e = std::sync::Arc::new(e);
        let mut expected = 0i64;
        for round in 0..15 {
            let values: Vec<String> = (0..20)
                .map(|i| format!("({}, 'v')", round * 20 + i))
                .collect();
            e.execute(
                &format!("INSERT INTO q.t VALUES {}", values.join(",")),
                &Session::root(),
            )
            .await
            .unwrap();
            expected += 20;
            e.execute("FLUSH TABLE q.t", &Session::root())
                .await
                .unwrap();
            // Read while the flush runs (or has just finished): always the exact set.
            for _ in 0..3 {
                let r = rows(&e, "SELECT COUNT(*), COUNT(DISTINCT id), SUM(id) FROM q.t").await;
                let sum: i64 = (0..expected).sum();
                assert_eq!(
                    r,
                    vec![vec![
                        serde_json::json!(expected),
                        serde_json::json!(expected),
                        serde_json::json!(sum)
                    ]]
                );
            }
            e.wait_for_jobs(std::time::Duration::from_secs(30))
                .await
                .unwrap();
        }
        assert_eq!(stat(&e, "q.t", "parquet_files").await, "15");
        assert_eq!(stat(&e, "q.t", "cold_rows").await, "300");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn cold_files_are_pruned_by_min_max_and_seq() {
        let (dir, e) = open_with(
            "CREATE NAMESPACE pr; CREATE SHARED TABLE pr.t (id INT PRIMARY KEY, name TEXT); \
             INSERT INTO pr.t VALUES (1, 'a'), (2, 'b'); FLUSH TABLE pr.t",
        )
        .await;
        e.wait_for_jobs(std::time::Duration::from_secs(30))
            .await
            .unwrap();
        // `_seq` is beyond 2^53, so JSON carries it as a string (SPEC section 7).
        let boundary: i64 = rows(&e, "SELECT MAX(_seq) FROM pr.t").await[0][0]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        e.execute(
            "INSERT INTO pr.t VALUES (10, 'x'), (11, 'y'); FLUSH TABLE pr.t",
            &Session::root(),
        )
        .await
        .unwrap();
        e.wait_for_jobs(std::time::Duration::from_secs(30))
            .await
            .unwrap();
        // Remove the first file from disk: only queries that must read it can fail.
        let first = {
            let view = e.exec.core.store.view();
            let def = e.exec.core.catalog.table("pr", "t").unwrap();
            let mut files = cold::manifest(&view, def.id, None).unwrap();
            files.sort_by_key(|f| f.file_id);
            files[0].path.clone()
        };
        std::fs::remove_file(dir.path().join("storage").join(&first)).unwrap();
        let q = |sql: &'static str| {
            let e = &e;
            async move { e.execute(sql, &Session::root()).await }
        };
        assert_eq!(
            q("SELECT id FROM pr.t WHERE id >= 10 ORDER BY id")
                .await
                .unwrap()[0]
                .json_rows()
                .len(),
            2
        );
        assert_eq!(
            q("SELECT name FROM pr.t WHERE name > 'c'").await.unwrap()[0]
                .json_rows()
                .len(),
            2
        );
        let by_seq = format!("SELECT COUNT(*) FROM pr.t WHERE _seq > {boundary}");
        assert_eq!(rows(&e, &by_seq).await, vec![vec![serde_json::json!(2)]]);
        assert!(
            q("SELECT id FROM pr.t WHERE id < 5").await.is_err(),
            "the missing file is needed here"
        );
        assert!(q("SELECT COUNT(*) FROM pr.t").await.is_err());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn drop_table_deletes_files_and_reports_them() {
        let (dir, e) = open_with(
            "CREATE NAMESPACE dr; CREATE USER TABLE dr.t (id INT); CREATE USER 'u' WITH PASSWORD 'p'; \
             INSERT INTO dr.t VALUES (1); EXECUTE AS USER 'u' (INSERT INTO dr.t VALUES (2)); FLUSH TABLE dr.t",
        )
        .await;
        e.wait_for_jobs(std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let bytes: u64 = stat(&e, "dr.t", "storage_bytes")
            .await
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(bytes > 0);
        assert_eq!(stat(&e, "dr.t", "parquet_files").await, "2");
        assert!(
            dir.path().join("storage/dr/t/u").is_dir(),
            "USER partitions get their own directory"
        );
        let msg = message(&e, "DROP TABLE dr.t").await;
        assert_eq!(
            msg,
            format!("Table 'dr.t' dropped (2 file(s) deleted, {bytes} bytes freed)")
        );
        assert!(e.exec.core.cold.list().await.unwrap().is_empty());
        e.execute("CREATE USER TABLE dr.t (id INT)", &Session::root())
            .await
            .unwrap();
        assert!(
            rows(&e, "SELECT * FROM dr.t").await.is_empty(),
            "a new table of the same name starts empty"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn location_templates_place_files_inside_the_storage_base() {
        let (dir, e) = open_with(
            "CREATE NAMESPACE lo; CREATE USER 'ann' WITH PASSWORD 'p'; \
             CREATE TABLE lo.u (id INT) LOCATION '/tenants/${user_id}/u'; \
             CREATE SHARED TABLE lo.s (id INT) LOCATION 'shared/s'; \
             EXECUTE AS USER 'ann' (INSERT INTO lo.u VALUES (1)); INSERT INTO lo.s VALUES (1); \
             FLUSH ALL TABLES IN lo",
        )
        .await;
        e.wait_for_jobs(std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let mut paths: Vec<String> = e
            .exec
            .core
            .cold
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        paths.sort();
        assert_eq!(paths.len(), 2);
        assert!(
            paths[0].starts_with("shared/s/") && paths[0].ends_with(".parquet"),
            "{paths:?}"
        );
        assert!(paths[1].starts_with("tenants/ann/u/"), "{paths:?}");
        assert!(dir.path().join("storage").join(&paths[1]).is_file());
        let r = e
            .execute(
                "EXECUTE AS USER 'ann' (SELECT id FROM lo.u)",
                &Session::root(),
            )
            .await
            .unwrap();
        assert_eq!(r[0].json_rows(), vec![vec![serde_json::json!(1)]]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn rows_rewritten_during_a_flush_stay_hot_and_win() {
        use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray};
        let (_d, e) = open_with(
            "CREATE NAMESPACE w; CREATE SHARED TABLE w.t (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO w.t VALUES (1, 'old'), (2, 'two')",
        )
        .await;
        let def = e.exec.core.catalog.table("w", "t").unwrap();
        let lock = e.exec.core.table_lock(def.id);
        let guard = lock.lock().await;
        e.execute("FLUSH TABLE w.t", &Session::root())
            .await
            .unwrap();
        // The job snapshots and writes its file without the lock, then waits for it to commit.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while e
            .exec
            .core
            .cold
            .list()
            .await
            .unwrap()
            .iter()
            .all(|(p, _)| !p.ends_with(".parquet"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "flush did not write its file"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // A writer (holding the table lock, as writers do) replaces row 1 meanwhile.
        let mut key = keys::partition_prefix(def.id, "");
        keys::push_i64(&mut key, 1);
        let mut value = Vec::new();
        let header = codec::RowHeader {
            seq: crate::ids::next_seq(),
            deleted: false,
            schema_version: 1,
        };
        codec::encode_header(&mut value, header);
        let id: ArrayRef = std::sync::Arc::new(Int32Array::from(vec![1]));
        let v: ArrayRef = std::sync::Arc::new(StringArray::from(vec!["new"]));
        codec::push_cell(&mut value, def.columns[0].id, id.as_ref(), 0).unwrap();
        codec::push_cell(&mut value, def.columns[1].id, v.as_ref(), 0).unwrap();
        let mut b = Batch::default();
        b.put(&e.exec.core.store, CF_ROWS, &key, &value);
        e.exec.core.store.write(b).unwrap();
        drop(guard);
        e.wait_for_jobs(std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let all = "SELECT id, v FROM w.t ORDER BY id";
        let want = vec![
            vec![serde_json::json!(1), serde_json::json!("new")],
            vec![serde_json::json!(2), serde_json::json!("two")],
        ];
        assert_eq!(rows(&e, all).await, want);
        assert_eq!(stat(&e, "w.t", "hot_rows").await, "1");
        assert_eq!(stat(&e, "w.t", "cold_rows").await, "1");
        e.execute("FLUSH TABLE w.t", &Session::root())
            .await
            .unwrap();
        e.wait_for_jobs(std::time::Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(rows(&e, all).await, want);
        assert_eq!(stat(&e, "w.t", "cold_rows").await, "2");
    }

    #[test]
    fn current_user_call_form_is_rewritten() {
        let rewrite = |sql: &str| {
            normalize_current_user(sql, &sql::lexer::tokenize(sql).unwrap()).into_owned()
        };
        assert_eq!(
            rewrite("SELECT CURRENT_USER(), 'CURRENT_USER()'"),
            "SELECT CURRENT_USER, 'CURRENT_USER()'"
        );
        assert_eq!(rewrite("SELECT 1"), "SELECT 1");
    }
}
