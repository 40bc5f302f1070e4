//! The write path of [`KalamTable`]: INSERT, UPDATE and DELETE as one atomic RocksDB batch under
//! the partition's write lock, with primary-key uniqueness over hot and cold rows, the primary-key
//! index and the deletion vectors kept in the same batch (see `storage::cold` for the
//! one-place invariant), NOT NULL and JSON checks, the ROWS flush policy and STREAM
//! BUFFER_SIZE eviction.
//!
//! May import: the ground floor, `catalog/`, `storage/`, the shared state, the job logic and
//! the parent provider. Never `query/`, `engine/` or the front ends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::locks::PartitionGuard;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{CastOptions, cast, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::catalog::Session as DfSession;
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::physical_expr::PhysicalExpr;

use crate::catalog::{ColumnDef, SEQ, SqlType, TableType};
use crate::control::StatementControl;
use crate::error::{Error, Result};
use crate::live::{ChangeBuilder, ChangeKind};
use crate::storage::codec::{self, RowHeader};
use crate::storage::hot::{KeyedBatch, key_at};
use crate::storage::{Batch, CF_META, CF_ROWS, cold, keys};

use super::scan::Pruning;
use super::{KalamTable, point_keys, reject_subqueries, strip_qualifiers};

/// Which rows an UPDATE or DELETE reads: those under `keys` when its WHERE pins the primary
/// key, else the partition less what `pruning` rules out.
struct Read<'a> {
    keys: Option<&'a [Vec<u8>]>,
    pruning: Option<Arc<Pruning>>,
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
        let keys = self.predicate_keys(predicate.as_ref())?;
        let pruning = self.write_pruning(state, predicate.as_ref(), keys.is_some());
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
        let read = Read {
            keys: keys.as_deref(),
            pruning,
        };
        self.update_rows(&compiled, &filter, read, control).await
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
        let keys = self.predicate_keys(predicate.as_ref())?;
        let pruning = self.write_pruning(state, predicate.as_ref(), keys.is_some());
        let filter = self.compile_filter(state, predicate)?;
        let read = Read {
            keys: keys.as_deref(),
            pruning,
        };
        self.delete_rows(&filter, read, control).await
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

    /// Writes a statement's batch: collected deletion vectors, the `_seq` mark, then the rows;
    /// then hands the statement's change event to the live queries (still under the table's
    /// write lock, so events reach subscribers in `_seq` order, and only once committed).
    /// From here on the statement is past its point of no return (its deadline no longer
    /// cancels it), so a timeout never reports failure for a committed write.
    fn commit(
        &self,
        mut wb: Batch,
        dv: HashMap<u64, Vec<u32>>,
        last_seq: u64,
        change: Option<ChangeBuilder>,
        control: &StatementControl,
    ) -> Result<()> {
        let event = change.map(ChangeBuilder::finish).transpose()?.flatten();
        control.enter_commit();
        for (file_id, rows) in dv {
            cold::extend_deletion_vector(&mut wb, &self.core.store, self.def.id, file_id, &rows)?;
        }
        if last_seq > 0 {
            self.core.record_seq(&mut wb, last_seq);
        }
        self.core.store.write(wb)?;
        if let Some(ev) = event {
            self.core.live.publish(&ev);
        }
        Ok(())
    }

    /// A [`ChangeBuilder`] of `kind` when a live query listens to this partition (checked
    /// under the partition's write lock, which subscribing also takes), else None.
    fn change(&self, kind: ChangeKind) -> Option<ChangeBuilder> {
        self.core
            .live
            .wants(self.def.id, self.partition())
            .then(|| ChangeBuilder::new(kind, self.def.clone(), self.partition()))
    }

    /// The `_seq` column of a full-schema `batch`.
    fn seqs(batch: &RecordBatch) -> Result<&datafusion::arrow::array::Int64Array> {
        batch
            .column_by_name(SEQ)
            .and_then(|a| a.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| Error::Internal("row snapshot lacks _seq".into()))
    }

    /// The storage key suffix of a row: encoded PRIMARY KEY, or None (identity/stream tables).
    pub(super) fn pk_key(&self, pk: &ColumnDef, array: &dyn Array, row: usize) -> Result<Vec<u8>> {
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
                strict_cast(a, &c.sql_type.arrow_type())
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
    pub(super) async fn insert_batches(
        &self,
        batches: &[RecordBatch],
        control: &StatementControl,
    ) -> Result<u64> {
        let _guard = self
            .core
            .locks
            .partition(self.def.id, self.partition())
            .await;
        let pk = self.def.primary_key();
        let mut wb = Batch::default();
        let mut dv = HashMap::new();
        let mut in_statement: HashSet<Vec<u8>> = HashSet::new();
        let mut buf = Vec::new();
        let mut count = 0u64;
        let mut last_seq = 0;
        let mut change = self.change(ChangeKind::Insert);
        for batch in batches {
            let arrays = self.user_arrays(batch)?;
            let mut seqs = Vec::new();
            for row in 0..batch.num_rows() {
                self.check_row(&arrays, row)?;
                let seq = crate::ids::next_seq();
                last_seq = seq;
                seqs.push(seq);
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
            if let Some(c) = change.as_mut() {
                let rows: Vec<usize> = (0..batch.num_rows()).collect();
                c.add_new(&arrays, &rows, &seqs)?;
            }
        }
        if count > 0 {
            self.commit(wb, dv, last_seq, change, control)?;
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

    /// The row keys a DML predicate pins the primary key to (see `point_keys`), or None.
    fn predicate_keys(&self, predicate: Option<&Expr>) -> Result<Option<Vec<Vec<u8>>>> {
        let Some(p) = predicate else {
            return Ok(None);
        };
        let p = strip_qualifiers(p.clone())?;
        point_keys(self, &split_conjunction(&p))
    }

    /// What the WHERE of an UPDATE or DELETE lets it skip of the cold files and their pages
    /// (a row there cannot make the WHERE TRUE); None when nothing can be pruned, or when the
    /// WHERE pins the primary key (`by_key`: those rows are read by key, no file is scanned).
    fn write_pruning(
        &self,
        state: &dyn DfSession,
        predicate: Option<&Expr>,
        by_key: bool,
    ) -> Option<Arc<Pruning>> {
        if by_key {
            return None;
        }
        self.pruning(state, std::slice::from_ref(predicate?))
    }

    /// Takes the partition's write lock, then reads the live rows of the partition with every
    /// column (user and system) and their keys: the snapshot an UPDATE or DELETE rewrites —
    /// only those under `read.keys` when the WHERE pins the primary key (read at once), else
    /// all of them but what `read.pruning` rules out, as a stream of batches (a few in memory at
    /// a time, not the partition). The lock is held until the returned guard drops, so no
    /// other write lands between the read and the commit.
    async fn lock_and_read(
        &self,
        read: Read<'_>,
    ) -> Result<(PartitionGuard, BoxStream<'static, Result<KeyedBatch>>)> {
        let guard = self
            .core
            .locks
            .partition(self.def.id, self.partition())
            .await;
        let all: Vec<usize> = (0..self.def.arrow_schema(true).fields().len()).collect();
        let rows = match read.keys {
            Some(keys) => {
                let rows = self.read_keys(&all, keys, false).await?.into_keyed()?;
                Box::pin(futures::stream::iter(rows.into_iter().map(Ok))) as BoxStream<'_, _>
            }
            None => self.stream_keyed(all.into(), false, true, read.pruning, None),
        };
        Ok((guard, rows))
    }

    /// UPDATE: applies `assignments` (user column position → value expr) to matching rows.
    async fn update_rows(
        &self,
        assignments: &[(usize, Arc<dyn PhysicalExpr>)],
        filter: &Option<Arc<dyn PhysicalExpr>>,
        read: Read<'_>,
        control: &StatementControl,
    ) -> Result<u64> {
        let (_guard, mut rows) = self.lock_and_read(read).await?;
        let pk_pos = self.def.columns.iter().position(|c| c.primary_key);
        let mut wb = Batch::default();
        let mut dv = HashMap::new();
        let mut buf = Vec::new();
        let mut old_buf = Vec::new();
        let mut new_keys: HashSet<Vec<u8>> = HashSet::new();
        let mut count = 0u64;
        let mut last_seq = 0;
        let mut change = self.change(ChangeKind::Update);
        while let Some(keyed) = rows.next().await {
            let (batch, batch_keys) = keyed?;
            let (batch, batch_keys) = (&batch, batch_keys.as_slice());
            let matching = Self::matching_rows(batch, filter)?;
            if matching.is_empty() {
                continue;
            }
            let old = self.user_columns(batch)?;
            let old_seqs = Self::seqs(batch)?;
            let (mut changed, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
            let mut arrays: Vec<ArrayRef> = old.to_vec();
            for (pos, expr) in assignments {
                let (Some(slot), Some(c)) = (arrays.get_mut(*pos), self.def.columns.get(*pos))
                else {
                    return Err(Error::Internal("UPDATE of an unknown column".into()));
                };
                let v = expr.evaluate(batch)?.into_array(batch.num_rows())?;
                *slot = strict_cast(&v, &c.sql_type.arrow_type())?;
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
                changed.push(row);
                before.push(crate::ids::from_i64(old_seqs.value(row)));
                after.push(seq);
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
            if let Some(c) = change.as_mut() {
                c.add_old(old, &changed, &before)?;
                c.add_new(&arrays, &changed, &after)?;
            }
        }
        if count > 0 {
            self.commit(wb, dv, last_seq, change, control)?;
        }
        Ok(count)
    }

    /// DELETE: tombstones (USER/SHARED) or removes (STREAM) matching rows.
    async fn delete_rows(
        &self,
        filter: &Option<Arc<dyn PhysicalExpr>>,
        read: Read<'_>,
        control: &StatementControl,
    ) -> Result<u64> {
        let (_guard, mut rows) = self.lock_and_read(read).await?;
        let mut wb = Batch::default();
        let mut dv = HashMap::new();
        let mut buf = Vec::new();
        let mut count = 0u64;
        let mut last_seq = 0;
        let mut change = self.change(ChangeKind::Delete);
        while let Some(keyed) = rows.next().await {
            let (batch, batch_keys) = keyed?;
            let (batch, batch_keys) = (&batch, batch_keys.as_slice());
            let old = self.user_columns(batch)?;
            let matching = Self::matching_rows(batch, filter)?;
            let mut seqs = Vec::with_capacity(matching.len());
            for &row in &matching {
                let key = key_at(batch_keys, row)?;
                // A STREAM row is removed outright, but its delete still gets a `_seq`: the
                // one its subscribers see on the `delete` change.
                let seq = crate::ids::next_seq();
                last_seq = seq;
                seqs.push(seq);
                if self.def.table_type == TableType::Stream {
                    wb.delete(&self.core.store, CF_ROWS, key);
                } else {
                    self.encode(&mut buf, seq, true, old, row)?;
                    let cold_version = self.lookup(key)?.1;
                    self.supersede(&mut wb, key, cold_version, &mut dv);
                    wb.put(&self.core.store, CF_ROWS, key, &buf);
                }
                count = count.saturating_add(1);
            }
            if let Some(c) = change.as_mut() {
                c.add_old(old, &matching, &seqs)?;
            }
        }
        if count > 0 {
            self.commit(wb, dv, last_seq, change, control)?;
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

/// Converts written values to their column's type, failing on a value that does not convert
/// (`'text'` or `300` for a SMALLINT column) instead of storing NULL, as PostgreSQL does. Arrow's
/// plain `cast` turns such values into NULL; a parameter bound to an untyped placeholder
/// (`VALUES ($1)`) reaches the write path with its JSON type, so this is where it is checked.
fn strict_cast(array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    Ok(cast_with_options(array, to, &options)?)
}
