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

pub mod exec;
pub mod system;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::array::{TimestampMillisecondArray, new_null_array};
use datafusion::arrow::compute::{cast, filter};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::catalog::Session as DfSession;
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType as DfTableType};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use futures::future::BoxFuture;

use crate::catalog::{ColumnDef, DELETED, SEQ, SqlType, TableDef, TableType, UPDATED};
use crate::error::{Error, Result};
use crate::query::runtime::StatementControl;
use crate::session::{Role, Session};
use crate::state::Core;
use crate::storage::codec::{self, RowHeader};
use crate::storage::hot::{PartitionRows, batch_of, decode_hot, key_at};
use crate::storage::{Batch, CF_META, CF_ROWS, cold, keys};

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

    fn partition(&self) -> &str {
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

    /// Reads the partition's live rows (and tombstones if `include_deleted`), with columns
    /// `columns` (indices into the full user+system schema): hot rows, then every live cold
    /// file of the partition minus its deletion vector. Hot rows, manifest and deletion vectors
    /// come from one RocksDB snapshot, so a concurrent flush is seen entirely or not at all.
    async fn read(
        &self,
        columns: &[usize],
        include_deleted: bool,
        pruning: Option<&PruningPredicate>,
    ) -> Result<PartitionRows> {
        let prefix = self.prefix();
        let (mut out, files) = {
            let view = self.core.store.view();
            let layout = self.def.hot_layout(columns, crate::ids::now_millis())?;
            let hot = decode_hot(&layout, &view, &prefix, include_deleted)?;
            let mut files = Vec::new();
            if self.def.table_type != TableType::Stream {
                let mut entries = cold::manifest(&view, self.def.id, Some(self.partition()))?;
                if let Some(p) = pruning {
                    let keep = p.prune(&FileStatistics {
                        def: &self.def,
                        files: &entries,
                    })?;
                    let mut keep = keep.into_iter();
                    entries.retain(|_| keep.next().unwrap_or(true));
                }
                for f in entries {
                    let dv = cold::deletion_vector(&view, self.def.id, f.file_id)?;
                    files.push((f, dv));
                }
            }
            (hot, files)
        };
        for (f, dv) in files {
            let bytes = self.core.cold.read(&f.path).await?;
            self.decode_cold(bytes, &dv, columns, include_deleted, &prefix, &mut out)?;
        }
        Ok(out)
    }

    /// Appends the live rows of one cold file to `out`.
    fn decode_cold(
        &self,
        bytes: bytes::Bytes,
        dv: &[u32],
        columns: &[usize],
        include_deleted: bool,
        prefix: &[u8],
        out: &mut PartitionRows,
    ) -> Result<()> {
        let full = self.def.arrow_schema(true);
        let mut names: Vec<String> = columns
            .iter()
            .map(|&i| match self.def.columns.get(i) {
                Some(c) => format!("c{}", c.id),
                None => String::new(),
            })
            .collect();
        names.extend([
            SEQ.to_string(),
            DELETED.to_string(),
            cold::KEY_COLUMN.to_string(),
        ]);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (batches, pos) = cold::decode(bytes, &refs)?;
        let n = columns.len();
        let (Some(seq_pos), Some(del_pos), Some(key_pos)) = (
            pos.get(n).copied().flatten(),
            pos.get(n.saturating_add(1)).copied().flatten(),
            pos.get(n.saturating_add(2)).copied().flatten(),
        ) else {
            return Err(Error::Internal("cold file lacks system columns".into()));
        };
        let schema = Arc::new(full.project(columns)?);
        // Row numbers within the file, as the deletion vector counts them.
        let mut file_row = 0u64;
        for b in batches {
            let rows = b.num_rows();
            let seq = b.column(seq_pos).as_primitive::<Int64Type>().clone();
            let del = b.column(del_pos).as_boolean().clone();
            let keys_col = b.column(key_pos).as_binary::<i32>().clone();
            let mask: BooleanArray = (file_row..)
                .zip(0..rows)
                .map(|(number, i)| {
                    let superseded =
                        u32::try_from(number).is_ok_and(|number| dv.binary_search(&number).is_ok());
                    Some(!superseded && (include_deleted || !del.value(i)))
                })
                .collect();
            file_row = file_row.saturating_add(rows as u64);
            let kept = mask.true_count();
            if kept == 0 {
                continue;
            }
            let mut arrays = Vec::with_capacity(n);
            for (j, &i) in columns.iter().enumerate() {
                let a: ArrayRef = if let Some(c) = self.def.columns.get(i) {
                    let dt = c.sql_type.arrow_type();
                    match pos.get(j).copied().flatten() {
                        Some(p) => cast(b.column(p), &dt)?,
                        None => match c
                            .default
                            .as_ref()
                            .map(|d| d.literal_scalar(&dt))
                            .transpose()?
                        {
                            Some(Some(s)) => s.to_array_of_size(rows)?,
                            _ => new_null_array(&dt, rows),
                        },
                    }
                } else {
                    match full.field(i).name().as_str() {
                        SEQ => Arc::new(seq.clone()),
                        UPDATED => Arc::new(TimestampMillisecondArray::from_iter_values(
                            seq.values()
                                .iter()
                                .map(|s| crate::ids::seq_millis(crate::ids::from_i64(*s))),
                        )),
                        _ => Arc::new(del.clone()),
                    }
                };
                arrays.push(filter(&a, &mask)?);
            }
            out.batches.push(batch_of(&schema, arrays, kept)?);
            for i in (0..rows).filter(|&i| mask.value(i)) {
                let mut k = prefix.to_vec();
                k.extend_from_slice(keys_col.value(i));
                out.keys.push(k.into());
            }
        }
        Ok(())
    }

    /// A predicate over file statistics built from the scan's pushed-down filters (None when
    /// no filter can prune). Files it proves cannot match are never fetched.
    fn pruning_predicate(
        &self,
        state: &dyn DfSession,
        filters: &[Expr],
    ) -> Option<Arc<PruningPredicate>> {
        let full = self.def.arrow_schema(true);
        let df_schema = DFSchema::try_from(full.as_ref().clone()).ok()?;
        let usable: Vec<Expr> = filters
            .iter()
            .filter(|f| reject_subqueries(f).is_ok())
            .filter_map(|f| strip_qualifiers(f.clone()).ok())
            .collect();
        let expr = state
            .create_physical_expr(conjunction(usable)?, &df_schema)
            .ok()?;
        PruningPredicateBuilder::new()
            .with_file_schema(full)
            .build(expr)
    }

    /// Where `key`'s current version is: `(live, cold location)`. The hot tier is checked first;
    /// a key with a hot version has no cold index entry (the one-place invariant, see
    /// [`cold`]), so the index is only read for keys absent from the hot tier.
    fn lookup(&self, key: &[u8]) -> Result<(bool, Option<cold::ColdLoc>)> {
        if let Some(v) = self.core.store.get(CF_ROWS, key)? {
            return Ok((!codec::decode_header(&v)?.deleted, None));
        }
        if self.def.table_type == TableType::Stream {
            return Ok((false, None));
        }
        match self.core.store.get(CF_META, &cold::pkidx_key(key))? {
            Some(v) => {
                let loc = cold::ColdLoc::decode(&v)?;
                Ok((!loc.deleted, Some(loc)))
            }
            None => Ok((false, None)),
        }
    }

    /// Before a hot write of `key` whose current version is the cold row `cold` (from
    /// [`KalamTable::lookup`]): mark that row superseded (deletion vector, collected in `dv`) and
    /// drop its index entry, in the same batch.
    fn supersede(
        &self,
        wb: &mut Batch,
        key: &[u8],
        cold: Option<cold::ColdLoc>,
        dv: &mut HashMap<u64, Vec<u32>>,
    ) {
        if let Some(loc) = cold {
            dv.entry(loc.file_id).or_default().push(loc.row);
            wb.delete(&self.core.store, CF_META, &cold::pkidx_key(key));
        }
    }

    /// Writes a statement's batch: collected deletion vectors, the `_seq` mark, then the rows.
    /// From here on the statement is past its point of no return (its deadline no longer
    /// cancels it), so a timeout never reports failure for a committed write.
    fn commit(
        &self,
        mut wb: Batch,
        dv: HashMap<u64, Vec<u32>>,
        last_seq: u64,
        control: &StatementControl,
    ) -> Result<()> {
        control.enter_commit();
        for (file_id, rows) in dv {
            cold::extend_deletion_vector(&mut wb, &self.core.store, self.def.id, file_id, &rows)?;
        }
        if last_seq > 0 {
            self.core.record_seq(&mut wb, last_seq);
        }
        self.core.store.write(wb)
    }

    /// The storage key suffix of a row: encoded PRIMARY KEY, or None (identity/stream tables).
    fn pk_key(&self, pk: &ColumnDef, array: &dyn Array, row: usize) -> Result<Vec<u8>> {
        let mut key = self.prefix();
        if array.is_null(row) {
            return Err(Error::Execution(format!(
                "NOT NULL constraint violated: primary key column '{}' of table '{}' cannot be NULL",
                pk.name,
                self.def.qualified()
            )));
        }
        match array.data_type() {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                let v = cast(&array.slice(row, 1), &DataType::Int64)?;
                keys::push_i64(
                    &mut key,
                    v.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                        .value(0),
                );
            }
            _ => {
                codec::push_payload(&mut key, array, row)?;
            }
        }
        Ok(key)
    }

    /// Checks NOT NULL and JSON validity of `arrays` (aligned with the user columns) at `row`.
    fn check_row(&self, arrays: &[ArrayRef], row: usize) -> Result<()> {
        for (c, a) in self.def.columns.iter().zip(arrays) {
            if a.is_null(row) {
                if !c.nullable {
                    return Err(Error::Execution(format!(
                        "NOT NULL constraint violated: column '{}' of table '{}' cannot be NULL",
                        c.name,
                        self.def.qualified()
                    )));
                }
            } else if c.sql_type == SqlType::Json {
                let text = a.as_string::<i32>().value(row);
                if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
                    return Err(Error::Execution(format!(
                        "invalid JSON for column '{}': {text}",
                        c.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The leading user columns of a full-schema `batch`.
    fn user_columns<'b>(&self, batch: &'b RecordBatch) -> Result<&'b [ArrayRef]> {
        batch
            .columns()
            .get(..self.def.columns.len())
            .ok_or_else(|| Error::Internal("batch lacks user columns".into()))
    }

    /// The user-column arrays of `batch` (by name), cast to the declared types.
    fn user_arrays(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.def
            .columns
            .iter()
            .map(|c| {
                let a = batch.column_by_name(&c.name).ok_or_else(|| {
                    Error::Internal(format!("insert input lacks column {}", c.name))
                })?;
                Ok(cast(a, &c.sql_type.arrow_type())?)
            })
            .collect()
    }

    fn encode(
        &self,
        buf: &mut Vec<u8>,
        seq: u64,
        deleted: bool,
        arrays: &[ArrayRef],
        row: usize,
    ) -> Result<()> {
        codec::encode_header(
            buf,
            RowHeader {
                seq,
                deleted,
                schema_version: self.def.schema_version,
            },
        );
        for (c, a) in self.def.columns.iter().zip(arrays) {
            codec::push_cell(buf, c.id, a.as_ref(), row)?;
        }
        Ok(())
    }

    /// Inserts every row of `batches` as one atomic write; returns the row count.
    async fn insert_batches(
        &self,
        batches: &[RecordBatch],
        control: &StatementControl,
    ) -> Result<u64> {
        let lock = self.core.table_lock(self.def.id);
        let _guard = lock.lock().await;
        let pk = self.def.primary_key();
        let mut wb = Batch::default();
        let mut dv = HashMap::new();
        let mut in_statement: HashSet<Vec<u8>> = HashSet::new();
        let mut buf = Vec::new();
        let mut count = 0u64;
        let mut last_seq = 0;
        for batch in batches {
            let arrays = self.user_arrays(batch)?;
            for row in 0..batch.num_rows() {
                self.check_row(&arrays, row)?;
                let seq = crate::ids::next_seq();
                last_seq = seq;
                let key = match pk {
                    Some(pk) => {
                        let pk_array = self
                            .def
                            .columns
                            .iter()
                            .position(|c| c.id == pk.id)
                            .and_then(|pos| arrays.get(pos))
                            .ok_or_else(|| Error::Internal("primary key column missing".into()))?
                            .as_ref();
                        let key = self.pk_key(pk, pk_array, row)?;
                        let (live, cold_version) = self.lookup(&key)?;
                        let exists = in_statement.contains(&key) || live;
                        if exists {
                            return Err(Error::Execution(format!(
                                "duplicate primary key: {} = {} already exists in table '{}'",
                                pk.name,
                                array_value_to_string(pk_array, row)?,
                                self.def.qualified()
                            )));
                        }
                        in_statement.insert(key.clone());
                        self.supersede(&mut wb, &key, cold_version, &mut dv);
                        key
                    }
                    None => {
                        let mut key = self.prefix();
                        keys::push_u64(&mut key, seq);
                        key
                    }
                };
                self.encode(&mut buf, seq, false, &arrays, row)?;
                wb.put(&self.core.store, CF_ROWS, &key, &buf);
                count = count.saturating_add(1);
            }
        }
        if count > 0 {
            self.commit(wb, dv, last_seq, control)?;
            self.note_inserted(count)?;
            if self.def.table_type == TableType::Stream {
                self.enforce_buffer_size()?;
            }
        }
        Ok(count)
    }

    /// The ROWS flush policy on the write path: once this partition holds `rows` hot rows,
    /// queue a flush (the maintenance pass also checks, e.g. after a restart).
    fn note_inserted(&self, count: u64) -> Result<()> {
        let Some(limit) = self
            .def
            .flush_policy
            .rows
            .filter(|_| self.def.table_type != TableType::Stream)
        else {
            return Ok(());
        };
        let key = (self.def.id, self.partition().to_string());
        let mut counts = self
            .core
            .hot_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = match counts.get_mut(&key) {
            Some(n) => {
                *n = n.saturating_add(count);
                *n
            }
            None => {
                let mut n = 0u64;
                self.core
                    .store
                    .for_each_prefix(CF_ROWS, &self.prefix(), |_, _| {
                        n = n.saturating_add(1);
                        Ok(true)
                    })?;
                counts.insert(key.clone(), n);
                n
            }
        };
        if n >= limit {
            counts.insert(key, 0);
            drop(counts);
            let partition = Some(self.partition().to_string());
            crate::jobs::start_flush(
                &self.core,
                self.def.clone(),
                partition,
                &self.session.user_id,
            )?;
        }
        Ok(())
    }

    /// STREAM: evicts the oldest rows of this partition beyond BUFFER_SIZE.
    fn enforce_buffer_size(&self) -> Result<()> {
        let Some(limit) = self.def.buffer_size else {
            return Ok(());
        };
        let rows = self.core.store.scan_prefix(CF_ROWS, &self.prefix())?;
        let excess = rows
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(usize::MAX));
        if excess > 0 {
            let mut wb = Batch::default();
            for (k, _) in rows.iter().take(excess) {
                wb.delete(&self.core.store, CF_ROWS, k);
            }
            self.core.store.write(wb)?;
        }
        Ok(())
    }

    /// Indices of the rows of `batch` matching every filter.
    fn matching_rows(
        batch: &RecordBatch,
        filter: &Option<Arc<dyn PhysicalExpr>>,
    ) -> Result<Vec<usize>> {
        let Some(f) = filter else {
            return Ok((0..batch.num_rows()).collect());
        };
        let mask = f.evaluate(batch)?.into_array(batch.num_rows())?;
        let mask: &BooleanArray = mask
            .as_boolean_opt()
            .ok_or_else(|| Error::Execution("WHERE clause must be a boolean expression".into()))?;
        Ok((0..batch.num_rows())
            .filter(|&i| mask.is_valid(i) && mask.value(i))
            .collect())
    }

    /// UPDATE: applies `assignments` (user column position → value expr) to matching rows.
    async fn update_rows(
        &self,
        assignments: &[(usize, Arc<dyn PhysicalExpr>)],
        filter: &Option<Arc<dyn PhysicalExpr>>,
        control: &StatementControl,
    ) -> Result<u64> {
        let lock = self.core.table_lock(self.def.id);
        let _guard = lock.lock().await;
        let all: Vec<usize> = (0..self.def.arrow_schema(true).fields().len()).collect();
        let rows = self.read(&all, false, None).await?;
        let pk_pos = self.def.columns.iter().position(|c| c.primary_key);
        let mut wb = Batch::default();
        let mut dv = HashMap::new();
        let mut buf = Vec::new();
        let mut old_buf = Vec::new();
        let mut new_keys: HashSet<Vec<u8>> = HashSet::new();
        let mut count = 0u64;
        let mut last_seq = 0;
        for batch_and_keys in rows.with_keys() {
            let (batch, batch_keys) = batch_and_keys?;
            let matching = Self::matching_rows(batch, filter)?;
            if matching.is_empty() {
                continue;
            }
            let old = self.user_columns(batch)?;
            let mut arrays: Vec<ArrayRef> = old.to_vec();
            for (pos, expr) in assignments {
                let (Some(slot), Some(c)) = (arrays.get_mut(*pos), self.def.columns.get(*pos))
                else {
                    return Err(Error::Internal("UPDATE of an unknown column".into()));
                };
                let v = expr.evaluate(batch)?.into_array(batch.num_rows())?;
                *slot = cast(&v, &c.sql_type.arrow_type())?;
            }
            for row in matching {
                self.check_row(&arrays, row)?;
                self.encode(&mut old_buf, 0, false, old, row)?;
                self.encode(&mut buf, 0, false, &arrays, row)?;
                if old_buf.get(codec::HEADER_LEN..) == buf.get(codec::HEADER_LEN..) {
                    continue; // changes nothing: not counted, not rewritten
                }
                let seq = crate::ids::next_seq();
                last_seq = seq;
                let old_key = key_at(batch_keys, row)?;
                let old_cold = self.lookup(old_key)?.1;
                let pk = pk_pos.and_then(|p| Some((self.def.columns.get(p)?, arrays.get(p)?)));
                let new_key = match pk {
                    Some((c, a)) => Some(self.pk_key(c, a.as_ref(), row)?)
                        .filter(|k| k.as_slice() != old_key)
                        .map(|k| (c, a, k)),
                    None => None,
                };
                let (key, key_cold) = match new_key {
                    // The PRIMARY KEY changed: the row moves; its old key gets a tombstone.
                    Some((c, a, new_key)) => {
                        let (live, new_cold) = self.lookup(&new_key)?;
                        if new_keys.contains(&new_key) || live {
                            return Err(Error::Execution(format!(
                                "duplicate primary key: {} = {} already exists in table '{}'",
                                c.name,
                                array_value_to_string(a.as_ref(), row)?,
                                self.def.qualified()
                            )));
                        }
                        self.encode(&mut old_buf, seq, true, old, row)?;
                        self.supersede(&mut wb, old_key, old_cold, &mut dv);
                        wb.put(&self.core.store, CF_ROWS, old_key, &old_buf);
                        (new_key, new_cold)
                    }
                    None => (old_key.to_vec(), old_cold),
                };
                new_keys.insert(key.clone());
                self.supersede(&mut wb, &key, key_cold, &mut dv);
                self.encode(&mut buf, seq, false, &arrays, row)?;
                wb.put(&self.core.store, CF_ROWS, &key, &buf);
                count = count.saturating_add(1);
            }
        }
        if count > 0 {
            self.commit(wb, dv, last_seq, control)?;
        }
        Ok(count)
    }

    /// DELETE: tombstones (USER/SHARED) or removes (STREAM) matching rows.
    async fn delete_rows(
        &self,
        filter: &Option<Arc<dyn PhysicalExpr>>,
        control: &StatementControl,
    ) -> Result<u64> {
        let lock = self.core.table_lock(self.def.id);
        let _guard = lock.lock().await;
        let all: Vec<usize> = (0..self.def.arrow_schema(true).fields().len()).collect();
        let rows = self.read(&all, false, None).await?;
        let mut wb = Batch::default();
        let mut dv = HashMap::new();
        let mut buf = Vec::new();
        let mut count = 0u64;
        let mut last_seq = 0;
        for batch_and_keys in rows.with_keys() {
            let (batch, batch_keys) = batch_and_keys?;
            let old = self.user_columns(batch)?;
            for row in Self::matching_rows(batch, filter)? {
                let key = key_at(batch_keys, row)?;
                if self.def.table_type == TableType::Stream {
                    wb.delete(&self.core.store, CF_ROWS, key);
                } else {
                    let seq = crate::ids::next_seq();
                    last_seq = seq;
                    self.encode(&mut buf, seq, true, old, row)?;
                    let cold_version = self.lookup(key)?.1;
                    self.supersede(&mut wb, key, cold_version, &mut dv);
                    wb.put(&self.core.store, CF_ROWS, key, &buf);
                }
                count = count.saturating_add(1);
            }
        }
        if count > 0 {
            self.commit(wb, dv, last_seq, control)?;
        }
        Ok(count)
    }

    /// Compiles a DML predicate against the full schema; rejects subqueries.
    fn compile_filter(
        &self,
        state: &dyn DfSession,
        predicate: Option<Expr>,
    ) -> Result<Option<Arc<dyn PhysicalExpr>>> {
        let Some(predicate) = predicate else {
            return Ok(None);
        };
        let full = self.def.arrow_schema(true);
        let df_schema = DFSchema::try_from(full.as_ref().clone())?;
        reject_subqueries(&predicate)?;
        let predicate = strip_qualifiers(predicate)?;
        Ok(Some(state.create_physical_expr(predicate, &df_schema)?))
    }
}

/// Per-file min/max for [`PruningPredicate`]: `_seq` from the manifest's seq range, user
/// columns from the manifest's column statistics (one "container" per file).
struct FileStatistics<'a> {
    def: &'a TableDef,
    files: &'a [cold::FileEntry],
}

impl FileStatistics<'_> {
    fn values(&self, column: &datafusion::common::Column, max: bool) -> Option<ArrayRef> {
        if column.name == SEQ {
            let v = self
                .files
                .iter()
                .map(|f| crate::ids::as_i64(if max { f.max_seq } else { f.min_seq }));
            return Some(Arc::new(
                datafusion::arrow::array::Int64Array::from_iter_values(v),
            ));
        }
        let c = self.def.column(&column.name)?;
        let dt = c.sql_type.arrow_type();
        let scalars = self.files.iter().map(|f| {
            f.column_stats
                .get(&c.id)
                .and_then(|(lo, hi)| {
                    ScalarValue::try_from_string(if max { hi } else { lo }.clone(), &dt).ok()
                })
                .unwrap_or(ScalarValue::try_from(&dt).unwrap_or(ScalarValue::Null))
        });
        ScalarValue::iter_to_array(scalars).ok()
    }
}

impl PruningStatistics for FileStatistics<'_> {
    fn min_values(&self, column: &datafusion::common::Column) -> Option<ArrayRef> {
        self.values(column, false)
    }

    fn max_values(&self, column: &datafusion::common::Column) -> Option<ArrayRef> {
        self.values(column, true)
    }

    fn num_containers(&self) -> usize {
        self.files.len()
    }

    fn null_counts(&self, _column: &datafusion::common::Column) -> Option<ArrayRef> {
        None
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        None
    }

    fn contained(
        &self,
        _column: &datafusion::common::Column,
        _values: &std::collections::HashSet<ScalarValue>,
    ) -> Option<BooleanArray> {
        None
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

fn strip_qualifiers(e: Expr) -> Result<Expr> {
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
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let include_deleted = self.with_system && mentions_deleted(filters);
        let pruning = self.pruning_predicate(state, filters);
        let rows = self
            .read(&columns, include_deleted, pruning.as_deref())
            .await
            .map_err(df_err)?;
        let schema = Arc::new(self.schema.project(&columns)?);
        let exec = MemorySourceConfig::try_new_exec(&[rows.batches], schema, None)?;
        Ok(exec)
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
    /// UPDATE: sets `assignments` (column name → value, qualifiers allowed) on every row of the
    /// caller's partition where `predicate` is TRUE (every row when None). The engine calls this
    /// with the statement's exact WHERE clause (see [`crate::query::dml`]). Returns the number
    /// of rows whose stored values changed.
    ///
    /// # Errors
    /// `UPDATE` on a STREAM table, a role that may not write, a subquery, a constraint
    /// violation, or storage failures; nothing is written then.
    pub async fn update_where(
        &self,
        state: &dyn DfSession,
        assignments: Vec<(String, Expr)>,
        predicate: Option<Expr>,
        control: &StatementControl,
    ) -> Result<u64> {
        if self.def.table_type == TableType::Stream {
            return Err(Error::Execution(format!(
                "UPDATE is not supported on STREAM table '{}'",
                self.def.qualified()
            )));
        }
        self.check_write_allowed()?;
        let filter = self.compile_filter(state, predicate)?;
        let full = self.def.arrow_schema(true);
        let df_schema = DFSchema::try_from(full.as_ref().clone())?;
        let mut compiled = Vec::new();
        for (name, expr) in assignments {
            let pos = self
                .def
                .columns
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| {
                    Error::Execution(format!("cannot update column '{name}': not a user column"))
                })?;
            reject_subqueries(&expr)?;
            let expr = strip_qualifiers(expr)?;
            compiled.push((pos, state.create_physical_expr(expr, &df_schema)?));
        }
        self.update_rows(&compiled, &filter, control).await
    }

    /// DELETE: tombstones (USER/SHARED) or removes (STREAM) every row of the caller's partition
    /// where `predicate` is TRUE (every row when None); see [`KalamTable::update_where`].
    ///
    /// # Errors
    /// A role that may not write, a subquery, or storage failures; nothing is written then.
    pub async fn delete_where(
        &self,
        state: &dyn DfSession,
        predicate: Option<Expr>,
        control: &StatementControl,
    ) -> Result<u64> {
        self.check_write_allowed()?;
        let filter = self.compile_filter(state, predicate)?;
        self.delete_rows(&filter, control).await
    }

    /// A [`exec::WriteExec`] that, when executed, collects `input` (if any) and runs `write`
    /// with this table on the blocking pool.
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
