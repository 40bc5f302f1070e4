//! The DataFusion bridge: runs a statement KalamDB does not parse itself. [`Bridge`] holds the
//! session template built once per engine (functions, the analyzer and optimizer rules of this
//! module's siblings, the shared runtime environment); each statement plans with a clone of
//! it (nothing rebuilt) whose `kalam` catalog ([`super::catalog`]) is bound to the statement's
//! session and which carries the statement's [`StatementControl`], and executes in a task
//! context with a memory pool of its own. The statement is parsed, checked by
//! [`guard`], rewritten (exact big-integer literals, `INSERT … DEFAULT`), planned, and run:
//! reads and INSERT through DataFusion with results streamed under the result-size limits,
//! UPDATE and DELETE through [`dml`] with their exact predicate.
//!
//! May import: the ground floor, `sql/` (tokens), the shared state, `catalog/`, `tables/` and
//! the rest of `query/`. Never `engine/` or the front ends.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use datafusion::common::ParamValues;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionState;
use datafusion::execution::disk_manager::{DiskManager, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{FunctionRegistry, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::SessionConfig;
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast;
use futures::StreamExt;

use super::catalog::{CATALOG_NAME, RequestCatalog};
use super::guard::{self, PlanKind};
use super::plans::{PlanCache, PlanKey};

use super::{bounded, checked, coop, dml};
use crate::catalog::{ColumnDef, is_system_column};
use crate::config::Limits;
use crate::control::StatementControl;
use crate::error::{Error, Result};
use crate::result::QueryResult;
use crate::session::Session;
use crate::sql::lexer::{Tok, TokKind};
use crate::state::Core;

/// What runs DataFusion statements for one engine (see the module docs).
pub struct Bridge {
    core: Arc<Core>,
    base_state: SessionState,
    /// Disk manager, caches and object stores shared by every statement; each statement gets
    /// its own memory pool on top (`statement_memory_bytes`).
    base_runtime_env: Arc<RuntimeEnv>,
    /// Plans of parameterised statements, reused across runs ([`plans`]).
    plans: PlanCache,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bridge")
    }
}

impl Bridge {
    /// Builds the session template for `core`.
    ///
    /// # Errors
    /// DataFusion failures registering functions or building the runtime environment.
    pub fn new(core: Arc<Core>) -> Result<Bridge> {
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
            .with_analyzer_rule(Arc::new(checked::CheckedArithmetic))
            .with_physical_optimizer_rule(Arc::new(coop::YieldEverywhere))
            .build();
        for udf in [
            crate::functions::snowflake_id_udf(),
            crate::functions::uuid_v7_udf(),
            crate::functions::ulid_udf(),
        ] {
            base_state.register_udf(Arc::new(udf))?;
        }
        bounded::bound_string_functions(&mut base_state)?;
        Ok(Bridge {
            core,
            base_state,
            base_runtime_env,
            plans: PlanCache::default(),
        })
    }

    /// The session state one statement plans with: a clone of the template (no rebuild: the
    /// template's functions and rules are reused as they are) with the `kalam` catalog bound
    /// to `session`, its default schema, its `current_user()`, and `control` for the write path.
    pub(super) fn state(
        &self,
        session: &Session,
        with_system_columns: bool,
        control: Arc<StatementControl>,
    ) -> Result<SessionState> {
        let catalogs: Arc<dyn CatalogProviderList> = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog(
            CATALOG_NAME.to_string(),
            Arc::new(RequestCatalog::new(
                self.core.clone(),
                session.clone(),
                with_system_columns,
            )),
        );
        let mut state = self.base_state.clone();
        state.register_catalog_list(catalogs);
        let config = state.config_mut();
        config.options_mut().catalog.default_schema = session
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        config.set_extension(control);
        state.register_udf(Arc::new(crate::functions::current_user_udf(
            &session.user_id,
        )))?;
        // The statement's start time: `now()` and friends are folded to it while planning.
        state.mark_start_execution();
        Ok(state)
    }

    /// The task context one statement executes in: `state`'s functions and configuration,
    /// and a memory pool of its own of `limits.statement_memory_bytes` over the engine's
    /// shared disk manager, caches and object stores.
    fn task_context(&self, state: &SessionState, limits: &Limits) -> Arc<TaskContext> {
        let pool_bytes = usize::try_from(limits.statement_memory_bytes).unwrap_or(usize::MAX);
        let base = &self.base_runtime_env;
        let runtime_env = Arc::new(RuntimeEnv {
            memory_pool: Arc::new(GreedyMemoryPool::new(pool_bytes)),
            disk_manager: base.disk_manager.clone(),
            cache_manager: base.cache_manager.clone(),
            object_store_registry: base.object_store_registry.clone(),
        });
        Arc::new(TaskContext::from(state).with_runtime(runtime_env))
    }

    /// Plans a statement KalamDB does not parse itself with DataFusion, checks what it does
    /// ([`guard`]), and runs it: reads and INSERT through DataFusion, UPDATE and DELETE through
    /// [`dml`] with their exact predicate. Results are streamed under the result-size limits.
    ///
    /// # Errors
    /// The statement's planning or execution error, `LIMIT_EXCEEDED` for a limit hit, and the
    /// guards' refusals.
    pub async fn execute(
        &self,
        sql: &str,
        toks: &[Tok],
        session: &Session,
        params: &[ScalarValue],
        limits: &Limits,
        control: &Arc<StatementControl>,
    ) -> Result<QueryResult> {
        let with_system_columns = mentions_system_columns(toks);
        let state = self.state(session, with_system_columns, control.clone())?;
        let key = PlanKey::new(sql, session, !params.is_empty(), with_system_columns);
        let kept = key
            .as_ref()
            .and_then(|k| self.plans.get(k, &self.core.catalog));
        let (plan, keep) = match kept {
            Some(plan) => (plan, None),
            None => (self.plan(&state, sql, toks, session).await?, key),
        };
        let unbound = keep.is_some().then(|| plan.clone());
        let plan = if params.is_empty() {
            plan
        } else {
            plan.with_param_values(ParamValues::from(params.to_vec()))?
        };
        let kind = guard::classify(&plan)?;
        if let (Some(key), Some(unbound)) = (keep, unbound) {
            self.plans.insert(key, &unbound);
        }
        match kind {
            PlanKind::Update | PlanKind::Delete => self.execute_dml(&state, plan, control).await,
            PlanKind::Query | PlanKind::Insert => {
                let schema = Arc::new(plan.schema().as_arrow().clone());
                let physical = state.create_physical_plan(&plan).await?;
                let stream = execute_stream(physical, self.task_context(&state, limits))?;
                let (batches, row_count) = collect_limited(stream, limits).await?;
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

    /// Parses, checks ([`guard::check_ast`]), rewrites and plans `sql` (placeholders unbound).
    async fn plan(
        &self,
        state: &SessionState,
        sql: &str,
        toks: &[Tok],
        session: &Session,
    ) -> Result<LogicalPlan> {
        let sql = &normalize_current_user(sql, toks);
        let mut statement = state.sql_to_statement(sql, &datafusion::config::Dialect::Generic)?;
        guard::check_ast(&statement)?;
        super::checked::exact_integer_literals(&mut statement)?;
        self.rewrite_insert_defaults(&mut statement, session)?;
        Ok(state.statement_to_plan(statement).await?)
    }

    /// How often a parameterised statement's plan was reused: `(hits, misses)`.
    pub fn plan_cache_stats(&self) -> (u64, u64) {
        self.plans.stats()
    }

    /// How many plans are kept now.
    pub fn plans_kept(&self) -> usize {
        self.plans.len()
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
}

/// Whether a statement's tokens mention `_seq`, `_updated` or `_deleted` anywhere.
pub(super) fn mentions_system_columns(toks: &[Tok]) -> bool {
    toks.iter().any(|t| match &t.kind {
        TokKind::Word(w) | TokKind::QuotedIdent(w) => is_system_column(&w.to_ascii_lowercase()),
        _ => false,
    })
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
pub(super) fn normalize_current_user<'a>(sql: &'a str, toks: &[Tok]) -> std::borrow::Cow<'a, str> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_user_call_form_is_rewritten() {
        let rewrite = |sql: &str| {
            normalize_current_user(sql, &crate::sql::lexer::tokenize(sql).unwrap()).into_owned()
        };
        assert_eq!(
            rewrite("SELECT CURRENT_USER(), 'CURRENT_USER()'"),
            "SELECT CURRENT_USER, 'CURRENT_USER()'"
        );
        assert_eq!(rewrite("SELECT 1"), "SELECT 1");
    }
}
