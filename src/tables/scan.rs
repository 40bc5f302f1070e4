//! The reads of [`KalamTable`]: one partition's hot rows and live cold rows (minus deletion
//! vectors) from one RocksDB snapshot, so a concurrent flush is seen entirely or not at all,
//! and the pruning of cold files by `_seq` and column min/max.
//!
//! May import: the ground floor, `catalog/`, `storage/`, the shared state and the parent
//! provider. Never `query/`, `engine/` or the front ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::array::{TimestampMillisecondArray, new_null_array};
use datafusion::arrow::compute::{cast, filter};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::catalog::Session as DfSession;
use datafusion::common::DFSchema;
use datafusion::common::pruning::PruningStatistics;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use datafusion::scalar::ScalarValue;

use crate::catalog::{DELETED, SEQ, TableDef, TableType, UPDATED};
use crate::error::{Error, Result};
use crate::storage::CF_META;
use crate::storage::cold;
use crate::storage::hot::{PartitionRows, batch_of, decode_hot, decode_hot_keys};

use super::{KalamTable, reject_subqueries, strip_qualifiers};

/// Which rows of a cold file a read keeps, by row number in the file.
#[derive(Debug, Clone, Copy)]
struct RowSelection<'a> {
    /// The file's deletion vector: rows superseded by a newer version (sorted).
    superseded: &'a [u32],
    /// For a read by key, the only rows wanted (sorted); None keeps every live row.
    only: Option<&'a [u32]>,
}

impl RowSelection<'_> {
    /// The row number in the file of the `decoded`-th row decoded (the file decodes only the
    /// `only` rows when given, every row otherwise); None when out of range.
    fn number(&self, decoded: u64) -> Option<u32> {
        match self.only {
            Some(only) => usize::try_from(decoded)
                .ok()
                .and_then(|i| only.get(i).copied()),
            None => u32::try_from(decoded).ok(),
        }
    }

    /// True if row `number` (None: beyond `u32`, never indexed) is kept: not superseded (the
    /// decoder already decoded only the `only` rows).
    fn keeps(&self, number: Option<u32>) -> bool {
        number.is_none_or(|n| self.superseded.binary_search(&n).is_err())
    }
}

/// Cold files to read: each with its deletion vector and, for a read by key, the only rows
/// wanted (both sorted row numbers).
type ColdFiles = Vec<(cold::FileEntry, Vec<u32>, Option<Vec<u32>>)>;

impl KalamTable {
    /// Reads the partition's live rows (and tombstones if `include_deleted`), with columns
    /// `columns` (indices into the full user+system schema): hot rows, then every live cold
    /// file of the partition minus its deletion vector. Hot rows, manifest and deletion vectors
    /// come from one RocksDB snapshot, so a concurrent flush is seen entirely or not at all.
    /// With `limit`, it stops once that many rows are read (any rows: there is no order), so
    /// `SELECT … LIMIT n` without a WHERE reads about `n` rows, not the partition.
    pub(super) async fn read(
        &self,
        columns: &[usize],
        include_deleted: bool,
        pruning: Option<&PruningPredicate>,
        limit: Option<usize>,
    ) -> Result<PartitionRows> {
        let (hot, files) = self.read_snapshot(columns, include_deleted, pruning, limit)?;
        self.read_cold(hot, files, columns, include_deleted, limit)
            .await
    }

    /// Reads the rows of the partition stored under `keys` (full row keys, sorted), as
    /// [`KalamTable::read`] does for the whole partition: each key's hot version, else its
    /// cold version found through the primary-key index. Only the files holding those rows are
    /// fetched.
    pub(super) async fn read_keys(
        &self,
        columns: &[usize],
        keys: &[Vec<u8>],
        include_deleted: bool,
    ) -> Result<PartitionRows> {
        let (hot, files) = {
            let view = self.core.store.view();
            let layout = self.def.hot_layout(columns, crate::ids::now_millis())?;
            let (hot, absent) = decode_hot_keys(&layout, &view, keys, include_deleted)?;
            let mut wanted: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
            if self.def.table_type != TableType::Stream {
                for k in &absent {
                    if let Some(v) = view.get(CF_META, &cold::pkidx_key(k))? {
                        let loc = cold::ColdLoc::decode(&v)?;
                        if include_deleted || !loc.deleted {
                            wanted.entry(loc.file_id).or_default().push(loc.row);
                        }
                    }
                }
            }
            let mut files = Vec::new();
            if !wanted.is_empty() {
                for f in cold::manifest(&view, self.def.id, Some(self.partition()))? {
                    if let Some(mut rows) = wanted.remove(&f.file_id) {
                        rows.sort_unstable();
                        let dv = cold::deletion_vector(&view, self.def.id, f.file_id)?;
                        files.push((f, dv, Some(rows)));
                    }
                }
            }
            (hot, files)
        };
        self.read_cold(hot, files, columns, include_deleted, None)
            .await
    }

    /// A live query's initial data: takes the table's write lock, runs `register` (which adds
    /// the subscription to the live routes) and opens the snapshot in the same hold, then reads
    /// every column of the partition. Every write committed before the snapshot is in the rows;
    /// every later one reaches the registered subscription as a change: none is missed or seen
    /// twice. `include_deleted` adds tombstones (a resume needs them). Returns what `register`
    /// returned and the rows.
    ///
    /// # Errors
    /// `register`'s error (nothing is read then), storage and decoding errors.
    pub async fn read_subscribed<R>(
        &self,
        include_deleted: bool,
        register: impl FnOnce(&TableDef) -> Result<R>,
    ) -> Result<(R, PartitionRows)> {
        let all: Vec<usize> = (0..self.def.arrow_schema(true).fields().len()).collect();
        let (registered, (hot, files)) = {
            let _guard = self.core.table_lock(self.def.id).lock_owned().await;
            let registered = register(&self.def)?;
            (
                registered,
                self.read_snapshot(&all, include_deleted, None, None)?,
            )
        };
        Ok((
            registered,
            self.read_cold(hot, files, &all, include_deleted, None)
                .await?,
        ))
    }

    /// The hot rows and the live cold files (with their deletion vectors) of the partition,
    /// from one RocksDB snapshot.
    fn read_snapshot(
        &self,
        columns: &[usize],
        include_deleted: bool,
        pruning: Option<&PruningPredicate>,
        limit: Option<usize>,
    ) -> Result<(PartitionRows, ColdFiles)> {
        let view = self.core.store.view();
        let layout = self.def.hot_layout(columns, crate::ids::now_millis())?;
        let hot = decode_hot(&layout, &view, &self.prefix(), include_deleted, limit)?;
        let enough = limit.is_some_and(|n| hot.keys.len() >= n);
        let mut files = Vec::new();
        if self.def.table_type != TableType::Stream && !enough {
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
                files.push((f, dv, None));
            }
        }
        Ok((hot, files))
    }

    /// Appends the live rows of `files` (from [`KalamTable::read_snapshot`]) to `out`.
    async fn read_cold(
        &self,
        mut out: PartitionRows,
        files: ColdFiles,
        columns: &[usize],
        include_deleted: bool,
        limit: Option<usize>,
    ) -> Result<PartitionRows> {
        let prefix = self.prefix();
        for (f, dv, only) in files {
            if limit.is_some_and(|n| out.keys.len() >= n) {
                break;
            }
            let bytes = self.core.cold.read(&f.path).await?;
            let rows = RowSelection {
                superseded: &dv,
                only: only.as_deref(),
            };
            self.decode_cold(bytes, rows, columns, include_deleted, &prefix, &mut out)?;
        }
        Ok(out)
    }

    /// Appends the live rows of one cold file to `out`.
    fn decode_cold(
        &self,
        bytes: bytes::Bytes,
        rows: RowSelection<'_>,
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
        let (batches, pos) = cold::decode(bytes, &refs, rows.only)?;
        let n = columns.len();
        let (Some(seq_pos), Some(del_pos), Some(key_pos)) = (
            pos.get(n).copied().flatten(),
            pos.get(n.saturating_add(1)).copied().flatten(),
            pos.get(n.saturating_add(2)).copied().flatten(),
        ) else {
            return Err(Error::Internal("cold file lacks system columns".into()));
        };
        let schema = Arc::new(full.project(columns)?);
        // Rows decoded so far; `RowSelection::number` maps them to row numbers in the file.
        let mut file_row = 0u64;
        for b in batches {
            let n_rows = b.num_rows();
            let seq = b.column(seq_pos).as_primitive::<Int64Type>().clone();
            let del = b.column(del_pos).as_boolean().clone();
            let keys_col = b.column(key_pos).as_binary::<i32>().clone();
            let mask: BooleanArray = (file_row..)
                .zip(0..n_rows)
                .map(|(decoded, i)| {
                    let number = rows.number(decoded);
                    Some(rows.keeps(number) && (include_deleted || !del.value(i)))
                })
                .collect();
            file_row = file_row.saturating_add(n_rows as u64);
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
                            Some(Some(s)) => s.to_array_of_size(n_rows)?,
                            _ => new_null_array(&dt, n_rows),
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
            for i in (0..n_rows).filter(|&i| mask.value(i)) {
                let mut k = prefix.to_vec();
                k.extend_from_slice(keys_col.value(i));
                out.keys.push(k.into());
            }
        }
        Ok(())
    }

    /// A predicate over file statistics built from the scan's pushed-down filters (None when
    /// no filter can prune). Files it proves cannot match are never fetched.
    pub(super) fn pruning_predicate(
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
