//! Flush: move a table's hot rows to Parquet, streaming, file by file.
//!
//! Per file (a partition's hot rows fill one or more, cut at `flush_file_rows` rows or
//! `flush_file_bytes` bytes):
//! 1. stream the partition's hot rows (tombstones included) from one snapshot into the file,
//!    written under a temporary name, fsynced, renamed (`flush:after_write`,
//!    `flush:after_rename`); writers are not blocked meanwhile;
//! 2. under the partition's write lock, commit ONE RocksDB batch: the manifest entry, a primary-key
//!    index entry per row still unchanged since the snapshot, and the deletion of exactly those
//!    hot rows; rows rewritten meanwhile stay hot and enter the new file's deletion vector
//!    (`flush:after_commit`).
//!
//! A crash before 2 leaves a file no manifest names: never read, deleted at start-up by
//! [`remove_orphan_files`]. A crash after 2 leaves complete files (a partly flushed partition is
//! consistent: each row is hot or in exactly one committed file). Readers use one RocksDB
//! snapshot for hot rows + manifest, so they see each file's rows either hot or cold, never
//! both.
//!
//! May import: the ground floor, `catalog/`, `storage/` and the shared state. Never `tables/`, `query/`, `engine/` or the front ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::{ArrayRef, AsArray, BinaryArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::catalog::{DELETED, SEQ, TableDef};
use crate::error::{Error, Result};
use crate::state::Core;
use crate::storage::cold::{self, ColdFileWriter, ColdLoc, FileEntry, MinMax};
use crate::storage::hot::{HotLayout, HotScan, stream_hot, until_done};
use crate::storage::{Batch, CF_META, CF_ROWS, Store, codec, keys};

/// What one flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushStats {
    /// Rows written to Parquet (tombstones included).
    pub rows: u64,
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// True if `KILL JOB` stopped it between partitions.
    pub cancelled: bool,
}

/// The directory (relative to the storage base) of one partition's files (SPEC section 5):
/// `LOCATION` with `${user_id}` substituted, else `<ns>/<table>/<user_id>/` or `<ns>/<table>/`.
pub fn partition_dir(def: &TableDef, partition: &str) -> String {
    def.storage_location()
        .replace("${user_id}", partition)
        .trim_start_matches('/')
        .to_string()
}

/// Flushes every partition of `def` with hot rows (or just `only`).
///
/// Streams: a blocking task walks the hot rows of one RocksDB snapshot in key order and hands
/// over batches of [`crate::storage::hot::BATCH_ROWS`] rows; each is appended to the current
/// partition's file, which is committed and replaced once it holds `flush_file_rows` rows or
/// `flush_file_bytes` bytes (configuration) or the next partition begins. Memory holds a few
/// batches, one row group being encoded and the keys of one file — not the table.
///
/// # Errors
/// Storage or Parquet failures; files committed before the failure stay flushed.
pub async fn flush_table(
    core: &Arc<Core>,
    def: &TableDef,
    only: Option<&str>,
    cancel: &AtomicBool,
) -> Result<FlushStats> {
    // The definition may have changed (ALTER) or vanished (DROP) while the job was queued.
    let Some(def) = core
        .catalog
        .table(&def.namespace, &def.name)
        .filter(|t| t.id == def.id)
    else {
        return Err(dropped(def));
    };
    let full = def.arrow_schema(true);
    // user columns, _seq, _deleted
    let mut columns: Vec<usize> = (0..def.columns.len()).collect();
    columns.push(full.index_of(SEQ)?);
    columns.push(full.index_of(DELETED)?);
    let layout = def.hot_layout(&columns, crate::ids::now_millis())?;
    let prefix = match only {
        Some(p) => keys::partition_prefix(def.id, p),
        None => keys::table_range(def.id).0,
    };
    let mut flush = Flush {
        core,
        def: &def,
        cancel,
        file_schema: file_schema(&def),
        stats: FlushStats::default(),
        pending: None,
    };
    let written = flush
        .write_all(hot_rows(core.clone(), layout, prefix))
        .await;
    if let Some(file) = flush.pending.take() {
        // Failed or cancelled half-way: the file in progress is never committed.
        file.writer.abort().await?;
    }
    written?;
    let stats = flush.stats;
    // The flushed rows' hot versions were deleted one by one: until RocksDB compacts them,
    // every scan of the partition steps over each delete (20 ms per 200K flushed rows).
    if stats.files > 0 {
        let (from, to) = match only {
            Some(p) => keys::partition_range(def.id, p),
            None => keys::table_range(def.id),
        };
        let core = core.clone();
        tokio::task::spawn_blocking(move || core.store.compact_range(CF_ROWS, &from, &to))
            .await
            .map_err(|e| Error::Internal(format!("compaction task failed: {e}")))??;
    }
    Ok(stats)
}

fn dropped(def: &TableDef) -> Error {
    Error::Execution(format!("table '{}' was dropped", def.qualified()))
}

/// The schema of a flushed file (see `storage::cold`): user columns as `c<id>`, `_seq`,
/// `_deleted`, `_key`.
fn file_schema(def: &TableDef) -> SchemaRef {
    let mut fields: Vec<Field> = def
        .columns
        .iter()
        .map(|c| Field::new(format!("c{}", c.id), c.sql_type.arrow_type(), true))
        .collect();
    fields.push(Field::new(SEQ, DataType::Int64, false));
    fields.push(Field::new(DELETED, DataType::Boolean, false));
    fields.push(Field::new(cold::KEY_COLUMN, DataType::Binary, false));
    Arc::new(Schema::new(fields))
}

/// Hot rows under `prefix` (tombstones included) with their keys, decoded on a blocking
/// task from one snapshot; dropping the stream stops the task at its next batch.
fn hot_rows(
    core: Arc<Core>,
    layout: HotLayout,
    prefix: Vec<u8>,
) -> BoxStream<'static, Result<Rows>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let view = core.store.view();
        let scan = HotScan {
            prefix: &prefix,
            include_deleted: true,
            limit: None,
            with_keys: true,
            stopped: &|| tx.is_closed(),
        };
        let sent = stream_hot(&layout, &view, &scan, |batch, keys| {
            Ok(tx.blocking_send(Ok(Some((batch, keys)))).is_ok())
        });
        // The flush may be gone already; then nobody needs the outcome.
        let _ = tx.blocking_send(sent.map(|()| None));
    });
    until_done(rx, "the flush's hot scan")
}

/// A batch of hot rows and their full row keys.
type Rows = (RecordBatch, Vec<Box<[u8]>>);

/// One flush in progress.
struct Flush<'a> {
    core: &'a Arc<Core>,
    def: &'a TableDef,
    cancel: &'a AtomicBool,
    file_schema: SchemaRef,
    stats: FlushStats,
    /// The file being written, if any.
    pending: Option<PendingFile>,
}

/// A file being written for one partition, with what its commit needs.
struct PendingFile {
    partition: String,
    /// The partition's key prefix.
    prefix: Vec<u8>,
    file_id: u64,
    writer: ColdFileWriter,
    /// Full row key, `_seq` and `_deleted` of each row, in file order.
    keys: Vec<Box<[u8]>>,
    seqs: Vec<i64>,
    deleted: Vec<bool>,
    /// Per user column id, its running `(min, max)`.
    column_stats: Vec<(u32, Option<MinMax>)>,
}

impl Flush<'_> {
    /// Writes every batch of `rows` into files, committing each file as it completes. Stops
    /// early (with `stats.cancelled`) when the job is killed.
    async fn write_all(&mut self, mut rows: BoxStream<'static, Result<Rows>>) -> Result<()> {
        let config = &self.core.config;
        let max_rows = usize::try_from(config.flush_file_rows).unwrap_or(usize::MAX);
        while let Some(item) = rows.next().await {
            let (batch, keys) = item?;
            let mut start = 0usize;
            while let Some(key) = keys.get(start) {
                let (partition, _) = keys::split_partition(key)
                    .ok_or_else(|| Error::Internal("malformed row key".into()))?;
                let full = self.pending.as_ref().is_some_and(|f| {
                    !key.starts_with(&f.prefix)
                        || f.keys.len() >= max_rows
                        || f.writer.bytes() >= config.flush_file_bytes
                });
                if full && let Some(file) = self.pending.take() {
                    self.commit(file).await?;
                }
                if self.cancel.load(Ordering::SeqCst) {
                    self.stats.cancelled = true;
                    return Ok(());
                }
                let file = match self.pending.take() {
                    Some(file) => file,
                    None => self.create(partition)?,
                };
                let file = self.pending.insert(file);
                let room = max_rows.saturating_sub(file.keys.len()).max(1);
                let run = keys
                    .get(start..)
                    .unwrap_or_default()
                    .iter()
                    .take(room)
                    .take_while(|k| k.starts_with(&file.prefix))
                    .count();
                let end = start.saturating_add(run);
                let run_keys = keys.get(start..end).unwrap_or_default();
                file.append(&self.file_schema, &batch.slice(start, run), run_keys)
                    .await?;
                start = end;
            }
        }
        if let Some(file) = self.pending.take() {
            self.commit(file).await?;
        }
        Ok(())
    }

    /// Starts a file for `partition`.
    fn create(&self, partition: &str) -> Result<PendingFile> {
        let file_id = crate::ids::next_seq();
        let writer = self.core.cold.create_file(
            &partition_dir(self.def, partition),
            file_id,
            self.file_schema.clone(),
        )?;
        Ok(PendingFile {
            partition: partition.to_string(),
            prefix: keys::partition_prefix(self.def.id, partition),
            file_id,
            writer,
            keys: Vec::new(),
            seqs: Vec::new(),
            deleted: Vec::new(),
            column_stats: self
                .def
                .columns
                .iter()
                .map(|c| (c.id, MinMax::new(&c.sql_type.arrow_type())))
                .collect(),
        })
    }

    /// Completes `file` and commits it: under the partition's write lock, ONE RocksDB batch with
    /// the manifest entry, a primary-key index entry per row still unchanged since the
    /// snapshot, and the deletion of exactly those hot rows. Writers were free while the file
    /// was written, so a row may have a newer hot version by now: such rows stay hot and
    /// their copy in the file is born superseded (deletion vector). The table may even have
    /// been dropped meanwhile.
    async fn commit(&mut self, mut file: PendingFile) -> Result<()> {
        let core = self.core;
        let def = self.def;
        let (path, bytes) = file.writer.finish().await?;
        let seqs = &file.seqs;
        let entry = FileEntry {
            file_id: file.file_id,
            partition: file.partition.clone(),
            path,
            rows: file.keys.len() as u64,
            tombstones: file.deleted.iter().filter(|d| **d).count() as u64,
            bytes,
            min_seq: crate::ids::from_i64(seqs.iter().copied().min().unwrap_or(0)),
            max_seq: crate::ids::from_i64(seqs.iter().copied().max().unwrap_or(0)),
            schema_version: def.schema_version,
            created_at: crate::ids::seq_millis(file.file_id),
            column_stats: file
                .column_stats
                .iter_mut()
                .filter_map(|(id, mm)| Some((*id, mm.as_mut()?.text()?)))
                .collect(),
        };
        let guard = core.locks.partition(def.id, &file.partition).await;
        if self.cancel.load(Ordering::SeqCst) {
            // Killed while writing: this file commits nothing and is discarded.
            drop(guard);
            core.cold.delete(&entry.path).await?;
            self.stats.cancelled = true;
            return Ok(());
        }
        if core
            .catalog
            .table(&def.namespace, &def.name)
            .is_none_or(|t| t.id != def.id)
        {
            core.cold.delete(&entry.path).await?;
            return Err(dropped(def));
        }
        let mut b = Batch::default();
        b.put(
            &core.store,
            CF_META,
            &cold::manifest_key(def.id, &file.partition, file.file_id),
            &serde_json::to_vec(&entry)?,
        );
        let mut superseded = Vec::new();
        let current = current_seqs(&core.store, &file.keys)?;
        for (row, (((key, seq), deleted), now)) in file
            .keys
            .iter()
            .zip(seqs)
            .zip(&file.deleted)
            .zip(current)
            .enumerate()
        {
            let seq = crate::ids::from_i64(*seq);
            let row_number = u32::try_from(row)
                .map_err(|_| Error::Internal("a flushed file holds too many rows".into()))?;
            let unchanged = now == Some(seq);
            if unchanged {
                let loc = ColdLoc {
                    file_id: file.file_id,
                    row: row_number,
                    deleted: *deleted,
                    seq,
                };
                b.put(&core.store, CF_META, &cold::pkidx_key(key), &loc.encode());
                b.delete(&core.store, CF_ROWS, key);
            } else {
                superseded.push(row_number);
            }
        }
        if !superseded.is_empty() {
            cold::extend_deletion_vector(&mut b, &core.store, def.id, file.file_id, &superseded)?;
        }
        core.record_seq(&mut b, file.file_id);
        core.store.write(b)?;
        drop(guard);
        core.hot_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(def.id, file.partition.clone()));
        cold::failpoint("flush:after_commit");
        self.stats.rows = self.stats.rows.saturating_add(entry.rows);
        self.stats.files = self.stats.files.saturating_add(1);
        self.stats.bytes = self.stats.bytes.saturating_add(entry.bytes);
        Ok(())
    }
}

/// The current `_seq` of the hot version of each of `keys` (sorted, distinct: one file's keys),
/// None where there is none: one walk over the keys' range instead of a lookup per key, so the
/// partition's write lock is held for less time (writers wait on it during the commit).
fn current_seqs(store: &Store, keys: &[Box<[u8]>]) -> Result<Vec<Option<u64>>> {
    let mut out = vec![None; keys.len()];
    let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
        return Ok(out);
    };
    let mut i = 0usize;
    store.for_each_between(CF_ROWS, first, last, |k, v| {
        while keys.get(i).is_some_and(|key| key.as_ref() < k) {
            i = i.saturating_add(1);
        }
        if keys.get(i).is_some_and(|key| key.as_ref() == k) {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(codec::decode_header(v)?.seq);
            }
            i = i.saturating_add(1);
        }
        Ok(i < keys.len())
    })?;
    Ok(out)
}

impl PendingFile {
    /// Appends `rows` (user columns, `_seq`, `_deleted`) stored under `keys` (all of this
    /// file's partition).
    async fn append(
        &mut self,
        schema: &SchemaRef,
        rows: &RecordBatch,
        keys: &[Box<[u8]>],
    ) -> Result<()> {
        let ncols = self.column_stats.len();
        let column = |i: usize| {
            rows.columns()
                .get(i)
                .ok_or_else(|| Error::Internal("a flush batch lacks a column".into()))
        };
        let seqs = column(ncols)?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| Error::Internal("bad _seq column".into()))?;
        let deleted = column(ncols.saturating_add(1))?
            .as_boolean_opt()
            .ok_or_else(|| Error::Internal("bad _deleted column".into()))?;
        for (i, (_, mm)) in self.column_stats.iter_mut().enumerate() {
            if let Some(mm) = mm {
                mm.update(column(i)?)?;
            }
        }
        self.seqs.extend(seqs.values().iter().copied());
        self.deleted.extend(deleted.values().iter());
        let suffixes: BinaryArray = keys.iter().map(|k| k.get(self.prefix.len()..)).collect();
        self.keys.extend(keys.iter().cloned());
        let mut arrays: Vec<ArrayRef> = rows.columns().to_vec();
        arrays.push(Arc::new(suffixes));
        self.writer
            .write(&RecordBatch::try_new(schema.clone(), arrays)?)
            .await
    }
}

/// Deletes files under the storage base that no manifest names (left by a crash mid-flush or
/// mid-DROP), and parts of interrupted uploads. Returns how many were removed. Runs at server start-up.
pub async fn remove_orphan_files(core: &Core) -> Result<usize> {
    let mut live = std::collections::HashSet::new();
    for t in core.catalog.tables(None) {
        let view = core.store.view();
        for f in cold::manifest(&view, t.id, None)? {
            live.insert(f.path);
        }
    }
    let mut removed = core.cold.remove_partial_uploads()?;
    for (path, _) in core.cold.list().await? {
        if !live.contains(&path) {
            core.cold.delete(&path).await?;
            removed = removed.saturating_add(1);
        }
    }
    Ok(removed)
}

/// Cold-tier statistics of a table (or one partition): `(live cold rows, files, bytes, last flush ms)`.
pub fn cold_stats(
    core: &Core,
    def: &TableDef,
    partition: Option<&str>,
) -> Result<(u64, u64, u64, Option<i64>)> {
    let view = core.store.view();
    let files = cold::manifest(&view, def.id, partition)?;
    let prefix = match partition {
        Some(p) => cold::pkidx_key(&keys::partition_prefix(def.id, p)),
        None => cold::pkidx_key(&keys::table_range(def.id).0),
    };
    let mut live = 0u64;
    view.for_each_prefix(CF_META, &prefix, |_, v| {
        live = live.saturating_add(u64::from(!ColdLoc::decode(v)?.deleted));
        Ok(true)
    })?;
    let bytes = files.iter().map(|f| f.bytes).sum();
    let last = files.iter().map(|f| f.created_at).max();
    Ok((live, files.len() as u64, bytes, last))
}

/// True when a flush policy of `def` is due as of `now_ms`: some partition holds at least
/// `rows` hot rows, or a hot row is older than `interval_secs`.
pub fn flush_due(core: &Core, def: &TableDef, now_ms: i64) -> Result<bool> {
    let (prefix, _) = keys::table_range(def.id);
    let cutoff = def
        .flush_policy
        .interval_secs
        .map(|s| crate::ids::cutoff_seq(now_ms, s));
    let limit = def.flush_policy.rows;
    let mut due = false;
    let mut current: Vec<u8> = Vec::new();
    let mut count = 0u64;
    core.store.for_each_prefix(CF_ROWS, &prefix, |k, v| {
        if let Some((p, _)) = keys::split_partition(k)
            && p.as_bytes() != current.as_slice()
        {
            current = p.as_bytes().to_vec();
            count = 0;
        }
        count = count.saturating_add(1);
        let old = cutoff.map(|c| codec::decode_header(v).map(|h| h.seq < c));
        due = limit.is_some_and(|n| count >= n) || old.transpose()?.unwrap_or(false);
        Ok(!due)
    })?;
    Ok(due)
}

/// Purges tombstones older than the table's DELETED_RETENTION as of `now_ms`, hot and cold.
/// Returns how many were purged.
pub async fn purge_tombstones(core: &Core, def: &TableDef, now_ms: i64) -> Result<u64> {
    let Some(retention) = def.deleted_retention_secs else {
        return Ok(0);
    };
    let cutoff = crate::ids::cutoff_seq(now_ms, retention);
    let _guard = core.locks.table(def.id).await;
    let mut b = Batch::default();
    let mut purged = 0u64;
    let (prefix, _) = keys::table_range(def.id);
    core.store.for_each_prefix(CF_ROWS, &prefix, |k, v| {
        let h = codec::decode_header(v)?;
        if h.deleted && h.seq < cutoff {
            b.delete(&core.store, CF_ROWS, k);
            purged = purged.saturating_add(1);
        }
        Ok(true)
    })?;
    let mut dv: std::collections::HashMap<u64, Vec<u32>> = std::collections::HashMap::new();
    core.store
        .for_each_prefix(CF_META, &cold::pkidx_key(&prefix), |k, v| {
            let l = ColdLoc::decode(v)?;
            if l.deleted && l.seq < cutoff {
                dv.entry(l.file_id).or_default().push(l.row);
                b.delete(&core.store, CF_META, k);
                purged = purged.saturating_add(1);
            }
            Ok(true)
        })?;
    for (file_id, rows) in dv {
        cold::extend_deletion_vector(&mut b, &core.store, def.id, file_id, &rows)?;
    }
    core.store.write(b)?;
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_seqs_walks_the_range_once_and_aligns_with_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let mut b = Batch::default();
        // Stored: a, bb (not a flushed key), c, e — b and d are gone (deleted meanwhile).
        for (key, seq) in [("a", 1u64), ("bb", 9), ("c", 3), ("e", 5), ("f", 6)] {
            let mut v = Vec::new();
            codec::encode_header(
                &mut v,
                codec::RowHeader {
                    seq,
                    deleted: false,
                    schema_version: 1,
                },
            );
            b.put(&store, CF_ROWS, key.as_bytes(), &v);
        }
        store.write(b).unwrap();
        let keys: Vec<Box<[u8]>> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|k| k.as_bytes().into())
            .collect();
        assert_eq!(
            current_seqs(&store, &keys).unwrap(),
            vec![Some(1), None, Some(3), None, Some(5)]
        );
        assert!(current_seqs(&store, &[]).unwrap().is_empty());
    }
}
