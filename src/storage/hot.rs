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

/// What the hot-tier decoders ([`stream_hot`], [`decode_hot_keys`]) produce.
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

/// A batch of rows and their full row keys (empty when the reader did not ask for keys).
pub type KeyedBatch = (RecordBatch, Vec<Box<[u8]>>);

impl PartitionRows {
    /// Each batch with the keys of its rows, owned.
    ///
    /// # Errors
    /// [`Error::Internal`] when the keys are out of step with the rows.
    pub fn into_keyed(self) -> Result<Vec<KeyedBatch>> {
        let mut keys = self.keys.into_iter();
        self.batches
            .into_iter()
            .map(|b| {
                let batch_keys: Vec<Box<[u8]>> = keys.by_ref().take(b.num_rows()).collect();
                if batch_keys.len() == b.num_rows() {
                    Ok((b, batch_keys))
                } else {
                    Err(Error::Internal("row keys out of step with rows".into()))
                }
            })
            .collect()
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

/// Decodes stored rows one at a time into batches of a [`HotLayout`], with their keys when
/// asked for, handing each full batch to `emit`.
struct HotDecoder<'l, E> {
    layout: &'l HotLayout,
    include_deleted: bool,
    with_keys: bool,
    /// One output slot per column: its builder, its source, and whether the current row set it.
    slots: Vec<(ColumnBuilder, &'l HotColumn, bool)>,
    by_id: HashMap<u32, usize>,
    rows_in_batch: usize,
    /// Rows appended so far, over all batches.
    rows: usize,
    keys: Vec<Box<[u8]>>,
    emit: E,
}

impl<'l, E> HotDecoder<'l, E>
where
    E: FnMut(RecordBatch, Vec<Box<[u8]>>) -> Result<bool>,
{
    fn new(
        layout: &'l HotLayout,
        include_deleted: bool,
        with_keys: bool,
        emit: E,
    ) -> Result<HotDecoder<'l, E>> {
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
            with_keys,
            slots,
            by_id,
            rows_in_batch: 0,
            rows: 0,
            keys: Vec::new(),
            emit,
        })
    }

    /// Hands the current batch to `emit`; returns what `emit` returned (false: stop).
    fn finish_batch(&mut self) -> Result<bool> {
        let arrays = self
            .slots
            .iter_mut()
            .map(|(b, _, _)| b.finish())
            .collect::<Result<Vec<_>>>()?;
        let batch = batch_of(&self.layout.schema, arrays, self.rows_in_batch)?;
        self.rows_in_batch = 0;
        (self.emit)(batch, std::mem::take(&mut self.keys))
    }

    /// Appends the row stored under `key` as `value`, unless it is a tombstone (and tombstones
    /// are not wanted) or expired. Returns false when `emit` asked to stop.
    fn push(&mut self, key: &[u8], value: &[u8]) -> Result<bool> {
        let h = codec::decode_header(value)?;
        if (h.deleted && !self.include_deleted) || h.seq < self.layout.min_seq {
            return Ok(true);
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
        if self.with_keys {
            self.keys.push(key.into());
        }
        self.rows_in_batch = self.rows_in_batch.saturating_add(1);
        self.rows = self.rows.saturating_add(1);
        if self.rows_in_batch == BATCH_ROWS {
            return self.finish_batch();
        }
        Ok(true)
    }

    /// Emits the last, partial batch (or an empty one when nothing was decoded at all, so a
    /// reader always gets the schema).
    fn finish(mut self) -> Result<()> {
        if self.rows_in_batch > 0 || self.rows == 0 {
            self.finish_batch()?;
        }
        Ok(())
    }
}

/// What [`stream_hot`] reads.
pub struct HotScan<'a> {
    /// The key prefix of the rows (a partition, or a whole table).
    pub prefix: &'a [u8],
    /// Also decode tombstones.
    pub include_deleted: bool,
    /// Stop after this many decoded rows.
    pub limit: Option<usize>,
    /// Hand each batch's row keys to the caller too.
    pub with_keys: bool,
    /// Polled every [`STOP_CHECK_KEYS`] keys visited: true ends the scan (a reader that went
    /// away while the scan skips a long run of tombstones or expired rows).
    pub stopped: &'a (dyn Fn() -> bool + Sync),
}

/// How many stored keys [`stream_hot`] visits between two polls of [`HotScan::stopped`].
pub const STOP_CHECK_KEYS: usize = 4096;

/// Decodes the rows `scan` describes, as of `view`, one batch (at most [`BATCH_ROWS`] rows)
/// at a time, in key order: `emit` gets each batch and its rows' keys (empty unless
/// `scan.with_keys`), and returns false to stop. Memory is bounded by one batch, not by the
/// partition.
///
/// # Errors
/// Storage failures, corrupt rows, and `emit`'s first error (which stops the scan).
pub fn stream_hot(
    layout: &HotLayout,
    view: &View<'_>,
    scan: &HotScan<'_>,
    emit: impl FnMut(RecordBatch, Vec<Box<[u8]>>) -> Result<bool>,
) -> Result<()> {
    let mut decoder = HotDecoder::new(layout, scan.include_deleted, scan.with_keys, emit)?;
    let limit = scan.limit.unwrap_or(usize::MAX);
    let mut go_on = true;
    let mut visited = 0usize;
    if limit > 0 {
        view.for_each_prefix(CF_ROWS, scan.prefix, |k, v| {
            visited = visited.wrapping_add(1);
            go_on = decoder.push(k, v)?
                && !(visited.is_multiple_of(STOP_CHECK_KEYS) && (scan.stopped)());
            Ok(go_on && decoder.rows < limit)
        })?;
    }
    if go_on {
        decoder.finish()?;
    }
    Ok(())
}

/// What a producer task sends: `Ok(Some(item))` per item, then exactly one `Ok(None)` ("done")
/// or an error.
pub type Produced<T> = tokio::sync::mpsc::Receiver<Result<Option<T>>>;

/// The items a producer sends on the other side of `rx`, until it says it is done; a producer
/// that ends without saying so (it panicked) ends the stream with an error naming `what`.
/// Dropping the stream closes `rx`, which a producer sees as its cue to stop.
pub fn until_done<T: Send + 'static>(
    rx: Produced<T>,
    what: &'static str,
) -> futures::stream::BoxStream<'static, Result<T>> {
    Box::pin(futures::stream::unfold(Some(rx), move |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Ok(Some(b))) => Some((Ok(b), Some(rx))),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some((Err(e), None)),
            None => Some((
                Err(Error::Internal(format!("{what} stopped unexpectedly"))),
                None,
            )),
        }
    }))
}

/// Decodes the rows stored under `keys` (full row keys) as of `view`, as [`stream_hot`] does,
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
    let mut out = PartitionRows::default();
    let mut decoder = HotDecoder::new(layout, include_deleted, true, |b, k| {
        out.batches.push(b);
        out.keys.extend(k);
        Ok(true)
    })?;
    let mut absent = Vec::new();
    for k in keys {
        match view.get(CF_ROWS, k)? {
            Some(v) => {
                decoder.push(k, &v)?;
            }
            None => absent.push(k.clone()),
        }
    }
    decoder.finish()?;
    Ok((out, absent))
}
