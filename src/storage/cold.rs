//! The cold tier: Parquet files through `object_store`, the manifest that makes a file live,
//! the primary-key index and per-file deletion vectors (SPEC section 5, DESIGN.md performance notes).
//!
//! Invariant: every row identity (the row key) lives in exactly one place — the hot tier, or
//! one live row of one cold file. A flush moves rows hot → cold and records each in the
//! primary-key index (`pkidx`); any later write of that key adds the cold row to its file's
//! deletion vector (`dv`) and drops the index entry, in the same `WriteBatch` as the hot write.
//! Scans therefore read hot rows plus cold rows minus deletion vectors, with no dedup.
//!
//! `meta` column family records (binary keys):
//! - `manifest/<table_id BE><partition>\0<file_id BE>` → [`FileEntry`] (JSON): the file is live.
//! - `pkidx/<full row key>` → [`ColdLoc`] (21 bytes): where the key's cold version is.
//! - `dv/<table_id BE><file_id BE>` → sorted `u32` LE row numbers that are superseded.
//!
//! File layout per file: user columns named `c<column id>` (so renames need no rewrite),
//! then `_seq` (Int64), `_deleted` (Boolean), `_key` (Binary: the row key after the partition).
//! zstd compression, page statistics on.
//!
//! May import: the ground floor and `storage/mod.rs`. Never `catalog/` or anything above.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, PagePruningAccessPlanFilter, ParquetAccessPlan,
    ParquetFileMetrics, ParquetFileReaderFactory, RowGroupAccess,
};
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderBuilder, ArrowReaderOptions, RowSelection, RowSelector,
};
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::PageIndexPolicy;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod read;
use crate::storage::{Batch, CF_META, Store, View};
pub use read::{ColdStream, RowChoice};

/// Column name of the row key in cold files.
pub const KEY_COLUMN: &str = "_key";

/// One live Parquet file of a table partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Unique id (a `_seq` value), also the file name.
    pub file_id: u64,
    /// The partition (user id, or empty for SHARED tables).
    pub partition: String,
    /// Object path relative to the storage base.
    pub path: String,
    /// Rows in the file (tombstones included).
    pub rows: u64,
    /// Tombstone rows in the file.
    pub tombstones: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Smallest `_seq` in the file.
    pub min_seq: u64,
    /// Largest `_seq` in the file.
    pub max_seq: u64,
    /// Table schema version at flush time.
    pub schema_version: u32,
    /// When the flush committed, ms since the Unix epoch.
    pub created_at: i64,
    /// Per user column id: `(min, max)` as text (for pruning; absent when all NULL).
    #[serde(default)]
    pub column_stats: std::collections::BTreeMap<u32, (String, String)>,
}

/// A column's running `(min, max)` over the batches of one file, for
/// [`FileEntry::column_stats`].
pub struct MinMax {
    min: datafusion::functions_aggregate::min_max::MinAccumulator,
    max: datafusion::functions_aggregate::min_max::MaxAccumulator,
}

impl std::fmt::Debug for MinMax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MinMax").finish_non_exhaustive()
    }
}

impl MinMax {
    /// A tracker for values of `dt`; None for types without an ordering worth recording
    /// (binary).
    pub fn new(dt: &datafusion::arrow::datatypes::DataType) -> Option<MinMax> {
        use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
        if matches!(dt, datafusion::arrow::datatypes::DataType::Binary) {
            return None;
        }
        Some(MinMax {
            min: MinAccumulator::try_new(dt).ok()?,
            max: MaxAccumulator::try_new(dt).ok()?,
        })
    }

    /// Takes the values of `array` into account.
    ///
    /// # Errors
    /// DataFusion errors when `array` is not of the tracker's type.
    pub fn update(&mut self, array: &datafusion::arrow::array::ArrayRef) -> Result<()> {
        use datafusion::logical_expr::Accumulator;
        self.min.update_batch(std::slice::from_ref(array))?;
        self.max.update_batch(std::slice::from_ref(array))?;
        Ok(())
    }

    /// `(min, max)` as text, or None if every value seen was NULL.
    pub fn text(&mut self) -> Option<(String, String)> {
        use datafusion::logical_expr::Accumulator;
        let (lo, hi) = (self.min.evaluate().ok()?, self.max.evaluate().ok()?);
        if lo.is_null() || hi.is_null() {
            return None;
        }
        Some((lo.to_string(), hi.to_string()))
    }
}

/// Where the cold version of a row key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdLoc {
    /// File id.
    pub file_id: u64,
    /// Row number in the file.
    pub row: u32,
    /// True if that version is a tombstone.
    pub deleted: bool,
    /// Its `_seq`.
    pub seq: u64,
}

impl ColdLoc {
    /// 21-byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(21);
        v.extend_from_slice(&self.file_id.to_le_bytes());
        v.extend_from_slice(&self.row.to_le_bytes());
        v.push(u8::from(self.deleted));
        v.extend_from_slice(&self.seq.to_le_bytes());
        v
    }

    /// Decodes [`ColdLoc::encode`].
    ///
    /// # Errors
    /// [`Error::Internal`] for a malformed value.
    pub fn decode(v: &[u8]) -> Result<ColdLoc> {
        let bad = || Error::Internal("corrupt primary-key index entry".into());
        let field = |r: std::ops::Range<usize>| v.get(r).ok_or_else(bad);
        if v.len() != 21 {
            return Err(bad());
        }
        Ok(ColdLoc {
            file_id: u64::from_le_bytes(field(0..8)?.try_into().map_err(|_| bad())?),
            row: u32::from_le_bytes(field(8..12)?.try_into().map_err(|_| bad())?),
            deleted: field(12..13)? == [1],
            seq: u64::from_le_bytes(field(13..21)?.try_into().map_err(|_| bad())?),
        })
    }
}

fn tid_key(prefix: &[u8], table_id: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&table_id.to_be_bytes());
    k
}

/// `manifest/<table_id>` (whole table) or `manifest/<table_id><partition>\0` (one partition):
/// a scan lists only its own partition's files.
pub fn manifest_prefix(table_id: u64, partition: Option<&str>) -> Vec<u8> {
    let mut k = tid_key(b"manifest/", table_id);
    if let Some(p) = partition {
        k.extend_from_slice(p.as_bytes());
        k.push(0);
    }
    k
}

/// `manifest/<table_id><partition>\0<file_id>`.
pub fn manifest_key(table_id: u64, partition: &str, file_id: u64) -> Vec<u8> {
    let mut k = manifest_prefix(table_id, Some(partition));
    k.extend_from_slice(&file_id.to_be_bytes());
    k
}

/// `pkidx/<row key>`.
pub fn pkidx_key(row_key: &[u8]) -> Vec<u8> {
    let mut k = b"pkidx/".to_vec();
    k.extend_from_slice(row_key);
    k
}

/// `dv/<table_id><file_id>`.
pub fn dv_key(table_id: u64, file_id: u64) -> Vec<u8> {
    let mut k = tid_key(b"dv/", table_id);
    k.extend_from_slice(&file_id.to_be_bytes());
    k
}

/// Adds every cold record of `table_id` (manifest, index, deletion vectors) to a range delete.
pub fn delete_table_records(b: &mut Batch, store: &Store, table_id: u64) {
    for p in [&b"manifest/"[..], b"pkidx/", b"dv/"] {
        b.delete_range(
            store,
            CF_META,
            &tid_key(p, table_id),
            &tid_key(p, table_id.saturating_add(1)),
        );
    }
}

/// The live files of a table (all partitions, or one), as of `view`.
pub fn manifest(view: &View<'_>, table_id: u64, partition: Option<&str>) -> Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    view.for_each_prefix(CF_META, &manifest_prefix(table_id, partition), |_, v| {
        out.push(serde_json::from_slice(v)?);
        Ok(true)
    })?;
    Ok(out)
}

/// The deletion vector of one file, sorted.
pub fn deletion_vector(view: &View<'_>, table_id: u64, file_id: u64) -> Result<Vec<u32>> {
    Ok(view
        .get(CF_META, &dv_key(table_id, file_id))?
        .map(|v| decode_dv(&v))
        .unwrap_or_default())
}

fn decode_dv(v: &[u8]) -> Vec<u32> {
    v.chunks_exact(4)
        .filter_map(|c| c.try_into().ok().map(u32::from_le_bytes))
        .collect()
}

/// Merges `rows` into a file's deletion vector (read from `store`, written into `b`).
pub fn extend_deletion_vector(
    b: &mut Batch,
    store: &Store,
    table_id: u64,
    file_id: u64,
    rows: &[u32],
) -> Result<()> {
    let key = dv_key(table_id, file_id);
    let mut dv = store
        .get(CF_META, &key)?
        .map(|v| decode_dv(&v))
        .unwrap_or_default();
    dv.extend_from_slice(rows);
    dv.sort_unstable();
    dv.dedup();
    let bytes: Vec<u8> = dv.iter().flat_map(|r| r.to_le_bytes()).collect();
    b.put(store, CF_META, &key, &bytes);
    Ok(())
}

/// Crash-test hook: when `KALAMDB_FAILPOINT` equals `name`, the process aborts right here
/// (as a `kill -9` would stop it). Used by `tests/flush_crash.rs`.
pub fn failpoint(name: &str) {
    if std::env::var("KALAMDB_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Parquet files under the storage base, through `object_store`.
#[derive(Clone)]
pub struct ColdStore {
    store: Arc<dyn ObjectStore>,
    base: PathBuf,
    /// Parsed footers (with page indexes) of recently read files, by path; files never change
    /// under a path (names are unique `_seq` values), so an entry never goes stale.
    footers: Arc<FileMetadataCache>,
}

impl std::fmt::Debug for ColdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdStore")
            .field("base", &self.base)
            .finish()
    }
}

/// Memory for cached Parquet footers, in bytes.
pub const FOOTER_CACHE_BYTES: usize = 64 << 20;

fn os_err(e: object_store::Error) -> Error {
    Error::Internal(format!("object store error: {e}"))
}

/// Name prefix of files being written; never live, removed at start-up.
pub const TEMP_PREFIX: &str = ".tmp-";

impl ColdStore {
    /// A local filesystem store rooted at `base` (created if missing).
    pub fn local(base: &Path) -> Result<ColdStore> {
        std::fs::create_dir_all(base)?;
        let store = LocalFileSystem::new_with_prefix(base).map_err(os_err)?;
        Ok(ColdStore {
            store: Arc::new(store),
            base: base.to_path_buf(),
            footers: Arc::new(DefaultCache::new(FOOTER_CACHE_BYTES).with_name("ColdFooters")),
        })
    }

    /// The storage base directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Starts the Parquet file `dir/<file_id>.parquet` of `schema` (zstd, page statistics,
    /// row groups of at most [`ROW_GROUP_ROWS`] rows and about [`ROW_GROUP_BYTES`] bytes). It is written under a temporary name
    /// and streamed to the object store as it grows (multipart upload): memory holds one row
    /// group being encoded, not the file. [`ColdFileWriter::finish`] makes it durable and
    /// renames it into place.
    ///
    /// # Errors
    /// Parquet failures (a schema Parquet cannot store).
    pub fn create_file(
        &self,
        dir: &str,
        file_id: u64,
        schema: SchemaRef,
    ) -> Result<ColdFileWriter> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
            .build();
        let dir = dir.trim_matches('/');
        let tmp = format!("{dir}/{TEMP_PREFIX}{file_id}.parquet");
        let fin = format!("{dir}/{file_id}.parquet");
        let upload = BufWriter::new(self.store.clone(), ObjPath::from(tmp.as_str()));
        let writer = AsyncArrowWriter::try_new(upload, schema, Some(props))
            .map_err(|e| Error::Internal(format!("parquet writer: {e}")))?;
        Ok(ColdFileWriter {
            cold: self.clone(),
            writer,
            tmp,
            fin,
        })
    }

    /// Deletes a file (missing files are not an error).
    pub async fn delete(&self, path: &str) -> Result<()> {
        match self.store.delete(&ObjPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(os_err(e)),
        }
    }

    /// Deletes the parts of uploads a crash interrupted (the local backend stages a multipart
    /// upload as `<path>#<n>`, which listings do not show). Returns how many were removed.
    ///
    /// # Errors
    /// File-system failures.
    pub fn remove_partial_uploads(&self) -> Result<usize> {
        let mut removed = 0usize;
        let mut dirs = vec![self.base.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    dirs.push(path);
                } else if entry.file_name().to_string_lossy().contains('#') {
                    std::fs::remove_file(&path)?;
                    removed = removed.saturating_add(1);
                }
            }
        }
        Ok(removed)
    }

    /// Every object under the base: `(path, size)`.
    pub async fn list(&self) -> Result<Vec<(String, u64)>> {
        let metas: Vec<_> = self.store.list(None).try_collect().await.map_err(os_err)?;
        Ok(metas
            .into_iter()
            .map(|m| (m.location.to_string(), m.size))
            .collect())
    }
}

/// Rows per Parquet row group of a flushed file (the parquet crate's default). Smaller groups
/// cost space: each starts a new dictionary, which high-cardinality columns fill and abandon
/// (128K-row groups made a 1M-row file 2.3× larger). Memory is bounded by [`ROW_GROUP_BYTES`].
pub const ROW_GROUP_ROWS: usize = 1 << 20;

/// Bytes (estimated, encoded) after which a row group is closed even with fewer rows.
pub const ROW_GROUP_BYTES: usize = 64 << 20;

/// A Parquet file being written by a flush ([`ColdStore::create_file`]).
pub struct ColdFileWriter {
    cold: ColdStore,
    writer: AsyncArrowWriter<BufWriter>,
    tmp: String,
    fin: String,
}

impl std::fmt::Debug for ColdFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdFileWriter")
            .field("path", &self.fin)
            .finish_non_exhaustive()
    }
}

impl ColdFileWriter {
    /// Appends `batch` (of the file's schema).
    ///
    /// # Errors
    /// Parquet or storage failures.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .write(batch)
            .await
            .map_err(|e| Error::Internal(format!("parquet write: {e}")))
    }

    /// Bytes so far: written out plus the encoded row group in progress.
    pub fn bytes(&self) -> u64 {
        let total = self
            .writer
            .bytes_written()
            .saturating_add(self.writer.in_progress_size());
        u64::try_from(total).unwrap_or(u64::MAX)
    }

    /// Completes the file: uploads the rest and the footer, fsyncs it, renames it to its final
    /// name (`flush:after_write`, `flush:after_rename` failpoints between the steps) and
    /// fsyncs the directory. Returns the object path and size in bytes.
    ///
    /// # Errors
    /// Parquet or storage failures; the temporary file is left for start-up clean-up then.
    pub async fn finish(mut self) -> Result<(String, u64)> {
        self.writer
            .finish()
            .await
            .map_err(|e| Error::Internal(format!("parquet close: {e}")))?;
        let bytes = u64::try_from(self.writer.bytes_written()).unwrap_or(u64::MAX);
        let base = &self.cold.base;
        // object_store does not fsync; on the local backend make the bytes durable ourselves.
        std::fs::File::open(base.join(&self.tmp))?.sync_all()?;
        failpoint("flush:after_write");
        self.cold
            .store
            .rename(
                &ObjPath::from(self.tmp.as_str()),
                &ObjPath::from(self.fin.as_str()),
            )
            .await
            .map_err(os_err)?;
        if let Some(parent) = base.join(&self.fin).parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        failpoint("flush:after_rename");
        Ok((self.fin, bytes))
    }

    /// Abandons the file: the upload is aborted and nothing stays behind.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn abort(self) -> Result<()> {
        let cold = self.cold.clone();
        let tmp = self.tmp.clone();
        let mut upload = self.writer.into_inner();
        upload.abort().await.map_err(os_err)?;
        cold.delete(&tmp).await
    }
}

#[cfg(test)]
mod tests {
    use super::read::tests::only;
    use super::*;

    #[test]
    fn cold_locations_round_trip() {
        let l = ColdLoc {
            file_id: 7,
            row: 3,
            deleted: true,
            seq: 99,
        };
        assert_eq!(ColdLoc::decode(&l.encode()).unwrap(), l);
        assert!(ColdLoc::decode(&[1, 2]).is_err());
    }

    #[tokio::test]
    async fn files_are_renamed_into_place_and_decode_by_name() {
        use datafusion::arrow::array::{AsArray, Int64Array, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
        let dir = tempfile::tempdir().unwrap();
        let cold = ColdStore::local(dir.path()).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("c1", DataType::Int64, true),
            Field::new("c2", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["a", "b"])),
            ],
        )
        .unwrap();
        let mut file = cold.create_file("ns/t/u1/", 42, batch.schema()).unwrap();
        file.write(&batch).await.unwrap();
        let (path, bytes) = file.finish().await.unwrap();
        assert_eq!(path, "ns/t/u1/42.parquet");
        let listed = cold.list().await.unwrap();
        assert_eq!(listed, vec![(path.clone(), bytes)]);
        let (rows, pos) = cold
            .open(&path, bytes, &["c2", "c9"], RowChoice::default(), 1024)
            .await
            .unwrap();
        let batches: Vec<RecordBatch> = rows.try_collect().await.unwrap();
        assert_eq!(pos, vec![Some(0), None]);
        assert_eq!(batches[0].num_rows(), 2);
        assert_eq!(batches[0].num_columns(), 1);
        // Only row 1, read through the page index; and again from the cached footer.
        for _ in 0..2 {
            let (rows, _) = cold
                .open(&path, bytes, &["c1"], only(&[1]), 1024)
                .await
                .unwrap();
            let batches: Vec<RecordBatch> = rows.try_collect().await.unwrap();
            let values: Vec<i64> = batches
                .iter()
                .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
                .collect();
            assert_eq!(values, vec![2]);
        }
        let err = cold.open(&path, bytes, &["c1"], only(&[2]), 1024).await;
        assert!(err.is_err_and(|e| {
            e.to_string()
                .contains("row 2 asked of a Parquet file of 2 rows")
        }));
    }
}
