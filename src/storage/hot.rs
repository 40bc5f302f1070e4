//! Hot-tier decoding: the stored rows of one partition (or a whole table) into Arrow batches.
//!
//! The caller says what to produce with a [`HotLayout`] (built from a table definition by
//! `catalog::TableDef::hot_layout`): one [`HotColumn`] per output column — a stored cell, or a
//! system column derived from the row header — and the oldest `_seq` still visible (STREAM TTL).
//!
//! May import: the ground floor and the rest of `storage/`. Never `catalog/` or anything above:
//! the layout carries everything a table definition contributes.

use std::collections::HashMap;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};
use crate::storage::codec::{self, ColumnBuilder};
use crate::storage::{CF_ROWS, View};

/// Rows per Arrow batch produced by a hot-tier scan.
pub const BATCH_ROWS: usize = 8192;

/// Where one output column's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum HotColumn {
    /// The stored cell of column `id`. Rows written before schema version `added_in` (the
    /// column did not exist yet) read `default`, an encoded payload, or NULL without one.
    Cell {
        /// Column id in the row encoding.
        id: u32,
        /// Schema version that added the column.
        added_in: u32,
        /// Payload of the column's literal DEFAULT.
        default: Option<Vec<u8>>,
    },
    /// `_seq` (BIGINT).
    Seq,
    /// `_updated` (TIMESTAMP(ms), from `_seq`).
    Updated,
    /// `_deleted` (BOOLEAN).
    Deleted,
}

/// What [`decode_hot`] produces.
#[derive(Debug, Clone)]
pub struct HotLayout {
    /// The output schema, one field per entry of `columns`.
    pub schema: SchemaRef,
    /// The source of each output column.
    pub columns: Vec<HotColumn>,
    /// Rows with a smaller `_seq` are expired (STREAM TTL) and skipped; 0 keeps all.
    pub min_seq: u64,
}

/// Rows read from one partition, with their storage keys.
#[derive(Debug, Default)]
pub struct PartitionRows {
    /// Row batches.
    pub batches: Vec<RecordBatch>,
    /// Full row keys, aligned with the batches' rows.
    pub keys: Vec<Box<[u8]>>,
}

impl PartitionRows {
    /// Each batch with the keys of its rows.
    pub fn with_keys(&self) -> impl Iterator<Item = Result<(&RecordBatch, &[Box<[u8]>])>> {
        let mut start = 0usize;
        self.batches.iter().map(move |b| {
            let end = start.saturating_add(b.num_rows());
            let keys = self
                .keys
                .get(start..end)
                .ok_or_else(|| Error::Internal("row keys out of step with rows".into()))?;
            start = end;
            Ok((b, keys))
        })
    }
}

/// A batch of `rows` rows (explicit, so a projection of no columns keeps its row count).
///
/// # Errors
/// Arrow errors when `arrays` do not match `schema`.
pub fn batch_of(schema: &SchemaRef, arrays: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    let opts = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &opts,
    )?)
}

/// The key of row `row` of a batch.
///
/// # Errors
/// [`Error::Internal`] when `keys` has no entry `row`.
pub fn key_at(keys: &[Box<[u8]>], row: usize) -> Result<&[u8]> {
    keys.get(row)
        .map(AsRef::as_ref)
        .ok_or_else(|| Error::Internal("row key missing".into()))
}

/// Encodes a scalar as a cell payload (for DEFAULTs of columns added after a row was written).
///
/// # Errors
/// [`Error::Internal`] for a type KalamDB never stores.
pub fn scalar_payload(s: &datafusion::scalar::ScalarValue) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    codec::push_payload(&mut out, s.to_array()?.as_ref(), 0)?;
    Ok(out)
}

/// Decodes stored rows one at a time into batches of a [`HotLayout`], with their keys.
struct HotDecoder<'l> {
    layout: &'l HotLayout,
    include_deleted: bool,
    /// One output slot per column: its builder, its source, and whether the current row set it.
    slots: Vec<(ColumnBuilder, &'l HotColumn, bool)>,
    by_id: HashMap<u32, usize>,
    rows_in_batch: usize,
    out: PartitionRows,
}

impl<'l> HotDecoder<'l> {
    fn new(layout: &'l HotLayout, include_deleted: bool) -> Result<HotDecoder<'l>> {
        let mut slots = Vec::with_capacity(layout.columns.len());
        let mut by_id = HashMap::new();
        for (pos, (field, source)) in layout
            .schema
            .fields()
            .iter()
            .zip(&layout.columns)
            .enumerate()
        {
            if let HotColumn::Cell { id, .. } = source {
                by_id.insert(*id, pos);
            }
            slots.push((ColumnBuilder::new(field.data_type())?, source, false));
        }
        Ok(HotDecoder {
            layout,
            include_deleted,
            slots,
            by_id,
            rows_in_batch: 0,
            out: PartitionRows::default(),
        })
    }

    fn finish_batch(&mut self) -> Result<()> {
        let arrays = self
            .slots
            .iter_mut()
            .map(|(b, _, _)| b.finish())
            .collect::<Result<Vec<_>>>()?;
        self.out
            .batches
            .push(batch_of(&self.layout.schema, arrays, self.rows_in_batch)?);
        self.rows_in_batch = 0;
        Ok(())
    }

    /// Appends the row stored under `key` as `value`, unless it is a tombstone (and tombstones
    /// are not wanted) or expired.
    fn push(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let h = codec::decode_header(value)?;
        if (h.deleted && !self.include_deleted) || h.seq < self.layout.min_seq {
            return Ok(());
        }
        let (slots, by_id) = (&mut self.slots, &self.by_id);
        slots.iter_mut().for_each(|(_, _, seen)| *seen = false);
        codec::for_each_cell(value, |id, payload| {
            if let Some((builder, _, seen)) = by_id.get(&id).and_then(|&pos| slots.get_mut(pos)) {
                builder.append_payload(payload)?;
                *seen = true;
            }
            Ok(())
        })?;
        for (builder, source, _) in slots.iter_mut().filter(|(_, _, seen)| !*seen) {
            match source {
                HotColumn::Cell {
                    added_in,
                    default: Some(default),
                    ..
                } if *added_in > h.schema_version => builder.append_payload(default)?,
                HotColumn::Cell { .. } => builder.append_null(),
                HotColumn::Seq => builder.append_i64(crate::ids::as_i64(h.seq)),
                HotColumn::Updated => builder.append_i64(crate::ids::seq_millis(h.seq)),
                HotColumn::Deleted => builder.append_bool(h.deleted),
            }
        }
        self.out.keys.push(key.into());
        self.rows_in_batch = self.rows_in_batch.saturating_add(1);
        if self.rows_in_batch == BATCH_ROWS {
            self.finish_batch()?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<PartitionRows> {
        if self.rows_in_batch > 0 || self.out.batches.is_empty() {
            self.finish_batch()?;
        }
        Ok(self.out)
    }
}

/// Decodes the rows under `prefix` as of `view` into batches of `layout.schema`, with their
/// keys, in key order, stopping after `limit` rows when given. Tombstones are skipped unless
/// `include_deleted`; expired rows always.
///
/// # Errors
/// Storage failures and corrupt rows.
pub fn decode_hot(
    layout: &HotLayout,
    view: &View<'_>,
    prefix: &[u8],
    include_deleted: bool,
    limit: Option<usize>,
) -> Result<PartitionRows> {
    let mut decoder = HotDecoder::new(layout, include_deleted)?;
    let limit = limit.unwrap_or(usize::MAX);
    if limit > 0 {
        view.for_each_prefix(CF_ROWS, prefix, |k, v| {
            decoder.push(k, v)?;
            Ok(decoder.out.keys.len() < limit)
        })?;
    }
    decoder.finish()
}

/// Decodes the rows stored under `keys` (full row keys) as of `view`, as [`decode_hot`] does,
/// in the order of `keys`. Also returns the keys with no hot version at all (neither a row nor
/// a tombstone): only those can have a cold version.
///
/// # Errors
/// Storage failures and corrupt rows.
pub fn decode_hot_keys(
    layout: &HotLayout,
    view: &View<'_>,
    keys: &[Vec<u8>],
    include_deleted: bool,
) -> Result<(PartitionRows, Vec<Vec<u8>>)> {
    let mut decoder = HotDecoder::new(layout, include_deleted)?;
    let mut absent = Vec::new();
    for k in keys {
        match view.get(CF_ROWS, k)? {
            Some(v) => decoder.push(k, &v)?,
            None => absent.push(k.clone()),
        }
    }
    Ok((decoder.finish()?, absent))
}
