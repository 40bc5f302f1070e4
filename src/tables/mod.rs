//! USER, SHARED and STREAM tables as DataFusion [`TableProvider`]s over the hot tier.
//!
//! One [`KalamTable`] is built per statement for the session running it, so it knows the
//! partition (the effective user for USER/STREAM tables, the single shared partition otherwise)
//! and can never read or write another user's rows: isolation is a property of the key prefix,
//! not of a filter a query could bypass.
//!
//! - `scan`: reads the partition (one version per row identity: the hot tier keeps only the
//!   newest), hides tombstones unless a pushed-down filter names `_deleted`, hides expired STREAM
//!   rows, and exposes `_seq/_updated/_deleted` only when the statement names them.
//! - `insert_into`: plans a [`exec::WriteExec`]; the write runs at execution, under the table's
//!   write lock, as one atomic `WriteBatch` (its input counts against the statement's memory).
//! - [`KalamTable::update_where`] / [`KalamTable::delete_where`]: called by the engine with the
//!   statement's exact WHERE clause (see `query::dml`), never through DataFusion's
//!   `update`/`delete_from`, whose filter extraction can drop a predicate; same lock, one batch.
//!
//! This file is the provider surface; the reads are in `scan.rs` (hot ∪ cold, pruning) and the
//! write path in `write.rs` (insert/update/delete, primary-key index, deletion vectors).
//!
//! May import: the ground floor, `catalog/`, `storage/`, the shared state and the job logic
//! (a ROWS flush policy starts a flush on the write path). Never `query/`, `engine/` or the
//! front ends.

pub mod exec;
mod scan;
pub mod system;
mod write;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session as DfSession;
use datafusion::common::DFSchema;
use datafusion::common::Result as DfResult;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType as DfTableType};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::scalar::ScalarValue;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};

use crate::catalog::{DELETED, TableDef, TableType};
use crate::control::StatementControl;
use crate::error::{Error, Result};
use crate::session::{Role, Session};
use crate::state::Core;
use crate::storage::keys;

/// One table as seen by one session.
#[derive(Debug, Clone)]
pub struct KalamTable {
    core: Arc<Core>,
    def: Arc<TableDef>,
    session: Session,
    with_system: bool,
    schema: SchemaRef,
    defaults: HashMap<String, Expr>,
}

fn df_err(e: Error) -> datafusion::error::DataFusionError {
    e.into_datafusion()
}

impl KalamTable {
    /// The provider of `def` for `session`; `with_system` adds the system columns to the schema.
    ///
    /// # Errors
    /// [`Error::InvalidSql`] if a stored DEFAULT no longer fits its column (cannot happen for
    /// definitions created through DDL).
    pub fn new(
        core: Arc<Core>,
        def: Arc<TableDef>,
        session: Session,
        with_system: bool,
    ) -> Result<Self> {
        let schema = def.arrow_schema(with_system);
        let mut defaults = HashMap::new();
        for c in &def.columns {
            if let Some(d) = &c.default {
                defaults.insert(
                    c.name.clone(),
                    d.to_expr(&c.sql_type.arrow_type(), &session.user_id)?,
                );
            }
        }
        Ok(KalamTable {
            core,
            def,
            session,
            with_system,
            schema,
            defaults,
        })
    }

    /// The table's definition.
    pub fn def(&self) -> &Arc<TableDef> {
        &self.def
    }

    /// The partition this provider reads and writes: the session's effective user for
    /// USER/STREAM tables, `""` for SHARED.
    pub fn partition(&self) -> &str {
        if self.def.table_type.is_partitioned() {
            &self.session.user_id
        } else {
            ""
        }
    }

    fn prefix(&self) -> Vec<u8> {
        keys::partition_prefix(self.def.id, self.partition())
    }

    fn check_write_allowed(&self) -> Result<()> {
        if self.def.table_type == TableType::Shared {
            self.session.require(
                Role::Service,
                &format!("writing SHARED table '{}'", self.def.qualified()),
            )?;
        }
        Ok(())
    }
}

fn reject_subqueries(e: &Expr) -> Result<()> {
    let mut found = false;
    e.apply(|n| {
        if matches!(
            n,
            Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
        ) {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if found {
        return Err(Error::Execution(
            "UPDATE/DELETE with a subquery in WHERE is not supported; select the keys first".into(),
        ));
    }
    Ok(())
}

/// `e` with every column reference unqualified (`t.a` → `a`).
///
/// # Errors
/// None in practice (the rewrite cannot fail).
pub(crate) fn strip_qualifiers(e: Expr) -> Result<Expr> {
    Ok(e.transform(|n| {
        Ok(match n {
            Expr::Column(c) if c.relation.is_some() => Transformed::yes(Expr::Column(
                datafusion::common::Column::new_unqualified(c.name),
            )),
            other => Transformed::no(other),
        })
    })?
    .data)
}

/// The full row keys `filters` (conjuncts) pin the primary key to — every `pk = literal` or
/// `pk IN (literal, …)` among them (literals of the column's own type), intersected — sorted
/// and without duplicates; None when no filter does. A row the filters select has one of
/// these keys, and every row read under them passes those filters, so reading just them (hot
/// by key, cold through the primary-key index) loses nothing and those filters are `Exact`.
fn point_keys(table: &KalamTable, filters: &[&Expr]) -> Result<Option<Vec<Vec<u8>>>> {
    let per_filter = filters
        .iter()
        .map(|f| pk_filter_keys(table, f))
        .collect::<Result<Vec<_>>>()?;
    Ok(intersect_keys(per_filter.into_iter().flatten()))
}

/// The keys in every one of `sets`, sorted; None when there is no set.
fn intersect_keys(sets: impl Iterator<Item = BTreeSet<Vec<u8>>>) -> Option<Vec<Vec<u8>>> {
    sets.reduce(|a, b| a.intersection(&b).cloned().collect())
        .map(|k| k.into_iter().collect())
}

/// The full row keys one filter pins the primary key to (see [`point_keys`]): `pk = literal`,
/// `pk IN (literal, …)`, a NULL or FALSE literal (no key), or an OR of such filters (the
/// optimizer writes a short IN list as one); None when it is not of that form.
fn pk_filter_keys(table: &KalamTable, f: &Expr) -> Result<Option<BTreeSet<Vec<u8>>>> {
    let Some(pk) = table.def.primary_key() else {
        return Ok(None);
    };
    // The optimizer folds `pk = NULL` into a bare NULL: never true, so it selects no key.
    if let Expr::Literal(v, _) = f
        && (v.is_null() || *v == ScalarValue::Boolean(Some(false)))
    {
        return Ok(Some(BTreeSet::new()));
    }
    if let Expr::BinaryExpr(b) = f
        && b.op == Operator::Or
    {
        let (Some(mut left), Some(right)) = (
            pk_filter_keys(table, &b.left)?,
            pk_filter_keys(table, &b.right)?,
        ) else {
            return Ok(None);
        };
        left.extend(right);
        return Ok(Some(left));
    }
    let data_type = pk.sql_type.arrow_type();
    let is_pk = |e: &Expr| matches!(e, Expr::Column(c) if c.name == pk.name);
    let literal = |e: &Expr| match e {
        Expr::Literal(v, _) if v.data_type() == data_type => Some(v.clone()),
        _ => None,
    };
    let values: Option<Vec<ScalarValue>> = match f {
        Expr::BinaryExpr(b) if b.op == Operator::Eq => match (b.left.as_ref(), b.right.as_ref()) {
            (l, r) if is_pk(l) => literal(r).map(|v| vec![v]),
            (l, r) if is_pk(r) => literal(l).map(|v| vec![v]),
            _ => None,
        },
        Expr::InList(l) if !l.negated && is_pk(&l.expr) => l.list.iter().map(literal).collect(),
        _ => None,
    };
    let Some(values) = values else {
        return Ok(None);
    };
    let mut keys = BTreeSet::new();
    // `pk = NULL` is never true: a NULL literal selects no key.
    for v in values.iter().filter(|v| !v.is_null()) {
        keys.insert(table.pk_key(pk, v.to_array()?.as_ref(), 0)?);
    }
    Ok(Some(keys))
}

fn mentions_deleted(filters: &[Expr]) -> bool {
    filters
        .iter()
        .any(|f| f.column_refs().iter().any(|c| c.name == DELETED))
}

#[async_trait]
impl TableProvider for KalamTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> DfTableType {
        DfTableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Primary-key point filters are applied by the scan itself (it reads only their keys);
        // everything else is re-checked above the scan.
        Ok(filters
            .iter()
            .map(|f| match pk_filter_keys(self, f) {
                Ok(Some(_)) => TableProviderFilterPushDown::Exact,
                _ => TableProviderFilterPushDown::Inexact,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        // A filter was reported `Exact` if it was a key filter when DataFusion asked; the
        // optimizer may have rewritten it since into a form `point_keys` does not read. Such a
        // filter (it names no column but the key) is applied right here, over the key column.
        // Each filter's keys are computed once, for both uses.
        let pk = self.def.primary_key().map(|c| c.name.clone());
        let mut recheck = Vec::new();
        let mut key_sets = Vec::new();
        for f in filters {
            match pk_filter_keys(self, f).map_err(df_err)? {
                Some(keys) => key_sets.push(keys),
                None if f.column_refs().iter().all(|c| Some(&c.name) == pk.as_ref()) => {
                    recheck.push(strip_qualifiers(f.clone()).map_err(df_err)?);
                }
                None => {}
            }
        }
        let keys = intersect_keys(key_sets.into_iter());
        let (Some(pk), false) = (pk, recheck.is_empty()) else {
            return self.plan_read(state, columns, filters, keys, limit).await;
        };
        let pk_index = self.schema.index_of(&pk)?;
        let mut wide = columns.clone();
        if !wide.contains(&pk_index) {
            wide.push(pk_index);
        }
        let wide_schema = DFSchema::try_from(self.schema.project(&wide)?)?;
        let read = self.plan_read(state, wide, filters, keys, None).await?;
        let predicate = state.create_physical_expr(
            conjunction(recheck).unwrap_or(Expr::Literal(ScalarValue::Boolean(Some(true)), None)),
            &wide_schema,
        )?;
        let filtered = FilterExecBuilder::new(predicate, read)
            .apply_projection(Some((0..columns.len()).collect()))?
            .with_fetch(limit)
            .build()?;
        Ok(Arc::new(filtered))
    }

    async fn insert_into(
        &self,
        _state: &dyn DfSession,
        input: Arc<dyn ExecutionPlan>,
        op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.check_write_allowed().map_err(df_err)?;
        if op != InsertOp::Append {
            return Err(df_err(Error::Execution(format!(
                "{op} is not supported; use INSERT INTO"
            ))));
        }
        Ok(
            self.write_exec("InsertExec", Some(input), |t, batches, control| {
                Box::pin(async move { t.insert_batches(&batches, &control).await })
            }),
        )
    }
}

impl KalamTable {
    /// The plan reading `columns` under the pushed-down `filters`: by `keys` when the key
    /// filters among them pin the primary key (see [`point_keys`]), else a streaming scan of
    /// the partition; `limit` as DataFusion handed it down.
    async fn plan_read(
        &self,
        state: &dyn DfSession,
        columns: Vec<usize>,
        filters: &[Expr],
        keys: Option<Vec<Vec<u8>>>,
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let include_deleted = self.with_system && mentions_deleted(filters);
        let schema = Arc::new(self.schema.project(&columns)?);
        if let Some(keys) = keys {
            let rows = self
                .read_keys(&columns, &keys, include_deleted)
                .await
                .map_err(df_err)?;
            // The key filters are `Exact`, so DataFusion may hand down a LIMIT with them.
            let mut batches = rows.batches;
            if let Some(n) = limit {
                let mut left = n;
                for b in &mut batches {
                    *b = b.slice(0, b.num_rows().min(left));
                    left = left.saturating_sub(b.num_rows());
                }
            }
            return MemorySourceConfig::try_new_exec(&[batches], schema, None)
                .map(|e| e as Arc<dyn ExecutionPlan>);
        }
        let pruning = self.pruning(state, filters);
        // Without key filters every filter is `Inexact`, re-applied above the scan: a limit
        // only holds without filters.
        let limit = limit.filter(|_| filters.is_empty());
        let label = match limit {
            Some(n) => format!("{}, limit={n}", self.def.qualified()),
            None => self.def.qualified(),
        };
        let table = self.clone();
        let columns: Arc<[usize]> = columns.into();
        Ok(Arc::new(exec::ScanExec::new(
            label,
            schema,
            Arc::new(move || {
                table
                    .stream(columns.clone(), include_deleted, pruning.clone(), limit)
                    .map_err(df_err)
                    .boxed()
            }),
        )))
    }

    /// A [`exec::WriteExec`] that, when executed, collects `input` (if any) and runs `write`
    /// with this table, on the statement's own task (a RocksDB write without fsync takes
    /// microseconds; no hop to another thread).
    fn write_exec<F>(
        &self,
        name: &'static str,
        input: Option<Arc<dyn ExecutionPlan>>,
        write: F,
    ) -> Arc<dyn ExecutionPlan>
    where
        F: Fn(
                KalamTable,
                Vec<RecordBatch>,
                Arc<StatementControl>,
            ) -> BoxFuture<'static, Result<u64>>
            + Send
            + Sync
            + 'static,
    {
        let table = Arc::new(self.clone());
        let write = Arc::new(write);
        let child = input.clone();
        Arc::new(exec::WriteExec::new(
            name,
            input.into_iter().collect(),
            Arc::new(move |ctx| {
                let (table, write, child) = (table.clone(), write.clone(), child.clone());
                Box::pin(async move {
                    let control = ctx
                        .session_config()
                        .get_extension::<StatementControl>()
                        .unwrap_or_default();
                    // The rows to write are held in memory until they commit as one batch:
                    // they count against the statement's memory pool.
                    let reservation = MemoryConsumer::new(name).register(ctx.memory_pool());
                    let mut batches = Vec::new();
                    if let Some(c) = child {
                        let mut stream = execute_stream(c, ctx)?;
                        while let Some(batch) = stream.next().await {
                            let batch = batch?;
                            reservation.try_grow(batch.get_array_memory_size())?;
                            batches.push(batch);
                        }
                    }
                    let written = write((*table).clone(), batches, control).await;
                    reservation.free();
                    written.map_err(df_err)
                })
            }),
        ))
    }
}
