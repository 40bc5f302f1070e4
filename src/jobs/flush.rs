//! Flush: move a table's hot rows to Parquet, one file per partition.
//!
//! Per partition:
//! 1. decode the partition's hot rows (tombstones included) from a snapshot into one Arrow batch;
//! 2. write it under a temporary name, fsync, rename (`flush:after_write`, `flush:after_rename`);
//!    writers are not blocked meanwhile;
//! 3. under the table's write lock, commit ONE RocksDB batch: the manifest entry, a primary-key
//!    index entry per row still unchanged since step 1, and the deletion of exactly those hot
//!    rows; rows rewritten meanwhile stay hot and enter the new file's deletion vector
//!    (`flush:after_commit`).
//!
//! A crash before 3 leaves a file no manifest names: never read, deleted at start-up by
//! [`remove_orphan_files`]. A crash after 3 leaves a complete flush. Readers use one RocksDB
//! snapshot for hot rows + manifest, so they see each partition before or after, never both.
//!
//! May import: the ground floor, `catalog/`, `storage/` and the shared state. Never `tables/`, `query/`, `engine/` or the front ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::{ArrayRef, BinaryArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Field, Schema};

use crate::catalog::{DELETED, SEQ, TableDef};
use crate::error::{Error, Result};
use crate::state::Core;
use crate::storage::cold::{self, ColdLoc, FileEntry};
use crate::storage::hot::decode_hot;
use crate::storage::{Batch, CF_META, CF_ROWS, codec, keys};

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
/// # Errors
/// Storage or Parquet failures; partitions committed before the failure stay flushed.
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
        return Err(Error::Execution(format!(
            "table '{}' was dropped",
            def.qualified()
        )));
    };
    let full = def.arrow_schema(true);
    let ncols = def.columns.len();
    // user columns, _seq, _deleted
    let mut columns: Vec<usize> = (0..ncols).collect();
    columns.push(full.index_of(SEQ)?);
    columns.push(full.index_of(DELETED)?);
    let scan_prefix = match only {
        Some(p) => keys::partition_prefix(def.id, p),
        None => keys::table_range(def.id).0,
    };
    let hot = {
        let view = core.store.view();
        decode_hot(
            &def.hot_layout(&columns, crate::ids::now_millis())?,
            &view,
            &scan_prefix,
            true,
        )?
    };
    let mut stats = FlushStats::default();
    if hot.keys.is_empty() {
        return Ok(stats);
    }
    let projected = Arc::new(full.project(&columns)?);
    let all = concat_batches(&projected, &hot.batches)?;
    let mut file_fields: Vec<Field> = def
        .columns
        .iter()
        .map(|c| Field::new(format!("c{}", c.id), c.sql_type.arrow_type(), true))
        .collect();
    file_fields.push(Field::new(
        SEQ,
        datafusion::arrow::datatypes::DataType::Int64,
        false,
    ));
    file_fields.push(Field::new(
        DELETED,
        datafusion::arrow::datatypes::DataType::Boolean,
        false,
    ));
    file_fields.push(Field::new(
        cold::KEY_COLUMN,
        datafusion::arrow::datatypes::DataType::Binary,
        false,
    ));
    let file_schema = Arc::new(Schema::new(file_fields));

    let mut start = 0usize;
    while let Some(first) = hot.keys.get(start) {
        if cancel.load(Ordering::SeqCst) {
            stats.cancelled = true;
            break;
        }
        let (partition, _) = keys::split_partition(first)
            .ok_or_else(|| Error::Internal("malformed row key".into()))?;
        let partition = partition.to_string();
        let prefix = keys::partition_prefix(def.id, &partition);
        let rest = hot.keys.get(start..).unwrap_or_default();
        let count = rest.iter().take_while(|k| k.starts_with(&prefix)).count();
        let part_keys = rest.get(..count).unwrap_or_default();
        let end = start.saturating_add(count);
        let slice = all.slice(start, count);
        let suffixes: BinaryArray = part_keys.iter().map(|k| k.get(prefix.len()..)).collect();
        let mut arrays: Vec<ArrayRef> = slice.columns().to_vec();
        arrays.push(Arc::new(suffixes));
        let batch = RecordBatch::try_new(file_schema.clone(), arrays)?;
        let column = |i: usize| {
            slice
                .columns()
                .get(i)
                .cloned()
                .ok_or_else(|| Error::Internal("flush batch lacks a system column".into()))
        };
        let seqs = column(ncols)?
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .ok_or_else(|| Error::Internal("bad _seq column".into()))?
            .clone();
        let dels = column(ncols.saturating_add(1))?
            .as_any()
            .downcast_ref::<datafusion::arrow::array::BooleanArray>()
            .ok_or_else(|| Error::Internal("bad _deleted column".into()))?
            .clone();

        let file_id = crate::ids::next_seq();
        let (path, bytes) = core
            .cold
            .write_file(&partition_dir(&def, &partition), file_id, &batch)
            .await?;
        let entry = FileEntry {
            file_id,
            partition: partition.clone(),
            path,
            rows: count as u64,
            tombstones: dels.true_count() as u64,
            bytes,
            min_seq: crate::ids::from_i64(seqs.values().iter().copied().min().unwrap_or(0)),
            max_seq: crate::ids::from_i64(seqs.values().iter().copied().max().unwrap_or(0)),
            schema_version: def.schema_version,
            created_at: crate::ids::seq_millis(file_id),
            column_stats: def
                .columns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let column = slice.columns().get(i)?;
                    cold::min_max_text(column).map(|mm| (c.id, mm))
                })
                .collect(),
        };
        // Commit under the table lock. Writers were free while the file was written, so a row
        // may have a newer hot version by now: such rows stay hot and their copy in this file is
        // born superseded (deletion vector). The table may even have been dropped meanwhile.
        let lock = core.table_lock(def.id);
        let _guard = lock.lock().await;
        if cancel.load(Ordering::SeqCst) {
            // Killed while writing: this partition commits nothing; its file is discarded.
            drop(_guard);
            core.cold.delete(&entry.path).await?;
            stats.cancelled = true;
            break;
        }
        if core
            .catalog
            .table(&def.namespace, &def.name)
            .is_none_or(|t| t.id != def.id)
        {
            core.cold.delete(&entry.path).await?;
            return Err(Error::Execution(format!(
                "table '{}' was dropped",
                def.qualified()
            )));
        }
        let mut b = Batch::default();
        b.put(
            &core.store,
            CF_META,
            &cold::manifest_key(def.id, &partition, file_id),
            &serde_json::to_vec(&entry)?,
        );
        let mut superseded = Vec::new();
        for (row, key) in part_keys.iter().enumerate() {
            let seq = crate::ids::from_i64(seqs.value(row));
            let row_number = u32::try_from(row)
                .map_err(|_| Error::Internal("a flushed file holds too many rows".into()))?;
            let current = core.store.get(CF_ROWS, key)?;
            let unchanged = match current {
                Some(v) => codec::decode_header(&v)?.seq == seq,
                None => false,
            };
            if unchanged {
                let deleted = dels.value(row);
                let loc = ColdLoc {
                    file_id,
                    row: row_number,
                    deleted,
                    seq,
                };
                b.put(&core.store, CF_META, &cold::pkidx_key(key), &loc.encode());
                b.delete(&core.store, CF_ROWS, key);
            } else {
                superseded.push(row_number);
            }
        }
        if !superseded.is_empty() {
            cold::extend_deletion_vector(&mut b, &core.store, def.id, file_id, &superseded)?;
        }
        core.record_seq(&mut b, file_id);
        core.store.write(b)?;
        drop(_guard);
        core.hot_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(def.id, partition.clone()));
        cold::failpoint("flush:after_commit");
        stats.rows = stats.rows.saturating_add(entry.rows);
        stats.files = stats.files.saturating_add(1);
        stats.bytes = stats.bytes.saturating_add(bytes);
        start = end;
    }
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

/// Deletes files under the storage base that no manifest names (left by a crash mid-flush or
/// mid-DROP). Returns how many were removed. Runs at server start-up.
pub async fn remove_orphan_files(core: &Core) -> Result<usize> {
    let mut live = std::collections::HashSet::new();
    for t in core.catalog.tables(None) {
        let view = core.store.view();
        for f in cold::manifest(&view, t.id, None)? {
            live.insert(f.path);
        }
    }
    let mut removed = 0usize;
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
    let lock = core.table_lock(def.id);
    let _guard = lock.lock().await;
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
