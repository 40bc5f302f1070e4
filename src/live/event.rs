//! Change events: what the write path hands to the live-query registry once a statement's
//! RocksDB batch has committed, still under the partition's write lock (so events of one partition
//! arrive in `_seq` order). One event per statement and kind: an INSERT of 500 rows is one
//! insert event of 500 rows.
//!
//! May import: the ground floor and `catalog/`. Never the shared state or anything above.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::compute::{concat_batches, take};

use crate::catalog::{DELETED, SEQ, TableDef, UPDATED};
use crate::error::{Error, Result};

/// What a write did to the rows of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// New rows (INSERT, INSERT … SELECT).
    Insert,
    /// Changed rows, the primary key possibly among the changes (UPDATE).
    Update,
    /// Removed rows (DELETE).
    Delete,
}

impl ChangeKind {
    /// `insert`, `update` or `delete` (SPEC section 7 `change_type`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
        }
    }
}

/// The rows one committed statement changed in one partition of one table.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    /// The table definition the write used.
    pub table: Arc<TableDef>,
    /// The partition: the writer's effective user for USER/STREAM tables, `""` for SHARED.
    pub partition: String,
    /// What happened.
    pub kind: ChangeKind,
    /// Rows after the write (insert, update), in the table's full schema (user columns then
    /// system columns); `_seq` is the write's.
    pub new: Option<RecordBatch>,
    /// Rows before the write (update, delete), aligned row by row with `new` for an update.
    /// An update's rows keep the previous version's `_seq`; a delete's carry the delete's own
    /// `_seq`, the one a client resumes from.
    pub old: Option<RecordBatch>,
}

/// Collects the rows of one statement into a [`ChangeEvent`], a batch at a time.
#[derive(Debug)]
pub struct ChangeBuilder {
    table: Arc<TableDef>,
    partition: String,
    kind: ChangeKind,
    new: Vec<RecordBatch>,
    old: Vec<RecordBatch>,
}

impl ChangeBuilder {
    /// An empty event of `kind` for `partition` of `table`.
    pub fn new(kind: ChangeKind, table: Arc<TableDef>, partition: &str) -> ChangeBuilder {
        ChangeBuilder {
            table,
            partition: partition.to_string(),
            kind,
            new: Vec::new(),
            old: Vec::new(),
        }
    }

    /// Adds rows `rows` of the user-column arrays `user` (aligned with the table's columns) as
    /// new values written with `seqs` (one per row).
    ///
    /// # Errors
    /// Arrow errors when the arrays do not fit the table.
    pub fn add_new(&mut self, user: &[ArrayRef], rows: &[usize], seqs: &[u64]) -> Result<()> {
        if !rows.is_empty() {
            self.new.push(change_batch(&self.table, user, rows, seqs)?);
        }
        Ok(())
    }

    /// Adds rows `rows` of `user` as values before the write, with `_seq` `seqs`.
    ///
    /// # Errors
    /// Arrow errors when the arrays do not fit the table.
    pub fn add_old(&mut self, user: &[ArrayRef], rows: &[usize], seqs: &[u64]) -> Result<()> {
        if !rows.is_empty() {
            self.old.push(change_batch(&self.table, user, rows, seqs)?);
        }
        Ok(())
    }

    /// The event, or None when no row was added.
    ///
    /// # Errors
    /// Arrow errors concatenating the parts.
    pub fn finish(self) -> Result<Option<ChangeEvent>> {
        let schema = self.table.arrow_schema(true);
        let join = |parts: Vec<RecordBatch>| -> Result<Option<RecordBatch>> {
            if parts.is_empty() {
                return Ok(None);
            }
            Ok(Some(concat_batches(&schema, &parts)?))
        };
        let (new, old) = (join(self.new)?, join(self.old)?);
        if new.is_none() && old.is_none() {
            return Ok(None);
        }
        Ok(Some(ChangeEvent {
            table: self.table,
            partition: self.partition,
            kind: self.kind,
            new,
            old,
        }))
    }
}

/// A batch of `def`'s full schema: rows `rows` of the user columns `user`, then the system
/// columns derived from `seqs` (`_updated` is the commit time inside `_seq`; `_deleted` is
/// false: these are the values of live row versions, before or after the write).
fn change_batch(
    def: &TableDef,
    user: &[ArrayRef],
    rows: &[usize],
    seqs: &[u64],
) -> Result<RecordBatch> {
    if rows.len() != seqs.len() {
        return Err(Error::Internal(
            "change rows out of step with their _seq".into(),
        ));
    }
    let idx: Vec<u32> = rows
        .iter()
        .map(|&r| u32::try_from(r).map_err(|_| Error::Internal("change row out of range".into())))
        .collect::<Result<_>>()?;
    let idx = UInt32Array::from(idx);
    let mut arrays = Vec::with_capacity(user.len().saturating_add(3));
    for a in user {
        arrays.push(take(a.as_ref(), &idx, None)?);
    }
    for f in def.system_fields() {
        let a: ArrayRef = match f.name().as_str() {
            SEQ => Arc::new(Int64Array::from_iter_values(
                seqs.iter().map(|s| crate::ids::as_i64(*s)),
            )),
            UPDATED => Arc::new(TimestampMillisecondArray::from_iter_values(
                seqs.iter().map(|s| crate::ids::seq_millis(*s)),
            )),
            DELETED => Arc::new(BooleanArray::from(vec![false; rows.len()])),
            other => return Err(Error::Internal(format!("unknown system column {other}"))),
        };
        arrays.push(a);
    }
    Ok(RecordBatch::try_new(def.arrow_schema(true), arrays)?)
}
