//! The reads of [`KalamTable`]: one partition's hot rows and live cold rows (minus deletion
//! vectors) from one RocksDB snapshot, so a concurrent flush is seen entirely or not at all,
//! and the pruning of cold files by `_seq` and column min/max (whole files, from the manifest)
//! and by the page index (pages within the files read).
//!
//! May import: the ground floor, `catalog/`, `storage/`, the shared state and the parent
//! provider. Never `query/`, `engine/` or the front ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::array::{TimestampMillisecondArray, new_null_array};
use datafusion::arrow::compute::{cast, filter};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session as DfSession;
use datafusion::common::DFSchema;
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::datasource::physical_plan::parquet::PagePruningAccessPlanFilter;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use datafusion::scalar::ScalarValue;

use crate::catalog::{DELETED, SEQ, TableDef, TableType, UPDATED};
use crate::error::{Error, Result};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::storage::cold;
use crate::storage::hot::{
    BATCH_ROWS, HotScan, KeyedBatch, PartitionRows, batch_of, decode_hot_keys, stream_hot,
    until_done,
};
use crate::storage::{CF_META, View};

use super::{KalamTable, reject_subqueries, strip_qualifiers};

/// One cold file a read visits, with the rows it keeps (by row number in the file).
#[derive(Debug, Clone)]
struct ColdFile {
    entry: cold::FileEntry,
    /// The file's deletion vector: rows superseded by a newer version (sorted).
    superseded: Vec<u32>,
    /// For a read by key, the only rows wanted (sorted); None keeps every live row.
    only: Option<Vec<u32>>,
    /// The scan's filters over the file's columns: pages they rule out are not read.
    pages: Option<Arc<PagePruningAccessPlanFilter>>,
}

/// What a scan's pushed-down filters prune before DataFusion re-applies them: whole cold files,
/// by the manifest's statistics, and pages of the files read, by their page index. Both
/// predicates are built on first use, so a scan that finds no cold file builds neither.
#[derive(Debug)]
pub(super) struct Pruning {
    /// The filters over the table's user and system columns, and that schema.
    expr: Arc<dyn PhysicalExpr>,
    schema: SchemaRef,
    /// The same filters over the files' column names (`c<id>`), and that schema.
    file_expr: Arc<dyn PhysicalExpr>,
    file_schema: SchemaRef,
    files: std::sync::OnceLock<Option<Arc<PruningPredicate>>>,
    pages: std::sync::OnceLock<Arc<PagePruningAccessPlanFilter>>,
}

impl Pruning {
    /// The predicate over each file's manifest statistics (None when no filter can prune).
    fn files(&self) -> Option<&PruningPredicate> {
        self.files
            .get_or_init(|| {
                PruningPredicateBuilder::new()
                    .with_file_schema(self.schema.clone())
                    .build(self.expr.clone())
            })
            .as_deref()
    }

    /// The filter over a file's page index.
    fn pages(&self) -> Arc<PagePruningAccessPlanFilter> {
        self.pages
            .get_or_init(|| {
                Arc::new(PagePruningAccessPlanFilter::new(
                    &self.file_expr,
                    self.file_schema.clone(),
                ))
            })
            .clone()
    }
}

/// A producer's side of a streaming scan: batches, then `Ok(None)` once it is done (or its
/// error), so a producer that stops without saying so is an error, never a silent short read.
type Batches = tokio::sync::mpsc::Sender<Result<Option<KeyedBatch>>>;

/// What a streaming scan's hot walk decodes: tombstones too, row keys too, at most `limit` rows.
#[derive(Debug, Clone, Copy)]
struct HotChoice {
    include_deleted: bool,
    with_keys: bool,
    limit: Option<usize>,
}

/// Batches a streaming scan keeps in flight between each producer (the RocksDB walk, one cold
/// file's decoder) and the plan.
const BATCHES_IN_FLIGHT: usize = 2;
/// Cold files a streaming scan decodes ahead of the one it is handing on.
const COLD_FILES_AHEAD: usize = 2;

impl KalamTable {
    /// The rows of a query over the whole partition as a stream of batches of at most
    /// [`BATCH_ROWS`] rows: memory is bounded by a few batches, not by the table. A blocking
    /// task walks the hot rows of one RocksDB snapshot (which also fixes the list of live cold
    /// files and their deletion vectors) while cold files are read concurrently, each by
    /// ranged reads of just the needed columns. Files `pruning` proves cannot match are never
    /// opened. With `limit`, reading stops once that many rows were produced (any rows: there
    /// is no order); dropping the stream stops both sides.
    pub(super) fn stream(
        &self,
        columns: Arc<[usize]>,
        include_deleted: bool,
        pruning: Option<Arc<Pruning>>,
        limit: Option<usize>,
    ) -> BoxStream<'static, Result<RecordBatch>> {
        let rows = self
            .stream_keyed(columns, include_deleted, false, pruning, limit)
            .map_ok(|(batch, _)| batch);
        match limit {
            Some(n) => take_rows(rows, n),
            None => Box::pin(rows),
        }
    }

    /// [`KalamTable::stream`] with each batch's full row keys when `with_keys` (empty
    /// otherwise), and without cutting the last batch at `limit` (the hot walk still stops
    /// there). The write path's read: an UPDATE or DELETE holds a few batches, not the partition.
    pub(super) fn stream_keyed(
        &self,
        columns: Arc<[usize]>,
        include_deleted: bool,
        with_keys: bool,
        pruning: Option<Arc<Pruning>>,
        limit: Option<usize>,
    ) -> BoxStream<'static, Result<KeyedBatch>> {
        let table = self.clone();
        let rows = async move {
            let (files_tx, files_rx) = tokio::sync::oneshot::channel();
            let (tx, rx) = tokio::sync::mpsc::channel(BATCHES_IN_FLIGHT);
            let producer = table.clone();
            let hot_columns = columns.clone();
            tokio::task::spawn_blocking(move || {
                let sent = producer.send_snapshot(
                    files_tx,
                    &tx,
                    &hot_columns,
                    HotChoice {
                        include_deleted,
                        with_keys,
                        limit,
                    },
                    pruning,
                );
                // The reader may be gone already; then nobody needs the outcome.
                let _ = tx.blocking_send(sent.map(|()| None));
            });
            let files = files_rx
                .await
                .map_err(|_| Error::Internal("the hot scan stopped unexpectedly".into()))??;
            let hot = until_done(rx, "the hot scan");
            let cold = futures::stream::iter(files)
                .map(move |f| {
                    let reader =
                        table
                            .clone()
                            .read_ahead(f, columns.clone(), include_deleted, with_keys);
                    futures::future::ready(reader)
                })
                .buffered(COLD_FILES_AHEAD)
                .flatten();
            Ok::<_, Error>(futures::stream::select(hot, cold))
        };
        Box::pin(futures::stream::once(rows).try_flatten())
    }

    /// One cold file's live rows, decoded by a task of its own (so files decode in parallel
    /// with each other and with the hot walk) into a channel of [`BATCHES_IN_FLIGHT`]
    /// batches; dropping the returned stream ends the task at its next batch.
    fn read_ahead(
        self,
        file: ColdFile,
        columns: Arc<[usize]>,
        include_deleted: bool,
        with_keys: bool,
    ) -> BoxStream<'static, Result<KeyedBatch>> {
        let (tx, rx) = tokio::sync::mpsc::channel(BATCHES_IN_FLIGHT);
        tokio::spawn(async move {
            let outcome = match self
                .open_cold(file, columns, include_deleted, with_keys)
                .await
            {
                Ok(mut rows) => loop {
                    match rows.next().await {
                        Some(Ok(keyed)) => {
                            if tx.send(Ok(Some(keyed))).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(e)) => break Err(e),
                        None => break Ok(None),
                    }
                },
                Err(e) => Err(e),
            };
            // The reader may be gone already; then nobody needs the outcome.
            let _ = tx.send(outcome).await;
        });
        until_done(rx, "a cold file's reader")
    }

    /// The snapshot side of [`KalamTable::stream`], on a blocking thread: sends the live cold
    /// files on `files`, then the hot batches on `batches`, until done or the reader is gone.
    fn send_snapshot(
        &self,
        files: tokio::sync::oneshot::Sender<Result<Vec<ColdFile>>>,
        batches: &Batches,
        columns: &[usize],
        hot: HotChoice,
        pruning: Option<Arc<Pruning>>,
    ) -> Result<()> {
        let view = self.core.store.view();
        let live = self.live_files(&view, pruning.as_deref());
        let listed = live.is_ok();
        // A failed listing is the reader's error; it reads no batch then.
        if files.send(live).is_err() || !listed {
            return Ok(());
        }
        let layout = self.def.hot_layout(columns, crate::ids::now_millis())?;
        let scan = HotScan {
            prefix: &self.prefix(),
            include_deleted: hot.include_deleted,
            limit: hot.limit,
            with_keys: hot.with_keys,
            stopped: &|| batches.is_closed(),
        };
        stream_hot(&layout, &view, &scan, |b, keys| {
            Ok(batches.blocking_send(Ok(Some((b, keys)))).is_ok())
        })
    }

    /// Reads the rows of the partition stored under `keys` (full row keys, sorted), as
    /// [`KalamTable::read`] does for the whole partition: each key's hot version, else its
    /// cold version found through the primary-key index. Only the files holding those rows are
    /// opened, and only the pages holding them are read.
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
                for entry in cold::manifest(&view, self.def.id, Some(self.partition()))? {
                    if let Some(mut rows) = wanted.remove(&entry.file_id) {
                        rows.sort_unstable();
                        let superseded = cold::deletion_vector(&view, self.def.id, entry.file_id)?;
                        files.push(ColdFile {
                            entry,
                            superseded,
                            only: Some(rows),
                            pages: None,
                        });
                    }
                }
            }
            (hot, files)
        };
        self.read_cold(hot, files, columns, include_deleted).await
    }

    /// A live query's initial data: takes the partition's write lock, runs `register` (which adds
    /// the subscription to the live routes) and opens the snapshot in the same hold, then streams
    /// every column of the partition from it (as a query's scan does). Every write committed
    /// before the snapshot is in the rows; every later one reaches the registered subscription
    /// as a change: none is missed or seen twice. `include_deleted` adds tombstones (a resume
    /// needs them). Returns what `register` returned and the rows.
    ///
    /// # Errors
    /// `register`'s error (nothing is read then); storage and decoding errors, in the stream.
    pub async fn read_subscribed<R>(
        &self,
        include_deleted: bool,
        register: impl FnOnce(&TableDef) -> Result<R>,
    ) -> Result<(R, BoxStream<'static, Result<RecordBatch>>)> {
        let all: Arc<[usize]> = (0..self.def.arrow_schema(true).fields().len()).collect();
        let guard = self
            .core
            .locks
            .partition(self.def.id, self.partition())
            .await;
        let registered = register(&self.def)?;
        let mut rows = self.stream(all, include_deleted, None, None);
        // The stream takes its snapshot before it yields anything (its first batch or its end):
        // the lock is held until then, and no longer.
        let first = rows.next().await;
        drop(guard);
        Ok((
            registered,
            Box::pin(futures::stream::iter(first).chain(rows)),
        ))
    }

    /// The live cold files of the partition as of `view`, with their deletion vectors, minus
    /// those `pruning` proves hold no matching row. STREAM tables have none.
    fn live_files(&self, view: &View<'_>, pruning: Option<&Pruning>) -> Result<Vec<ColdFile>> {
        if self.def.table_type == TableType::Stream {
            return Ok(Vec::new());
        }
        let mut entries = cold::manifest(view, self.def.id, Some(self.partition()))?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(p) = pruning.and_then(Pruning::files) {
            let keep = p.prune(&FileStatistics {
                def: &self.def,
                files: &entries,
            })?;
            let mut keep = keep.into_iter();
            entries.retain(|_| keep.next().unwrap_or(true));
        }
        entries
            .into_iter()
            .map(|entry| {
                let superseded = cold::deletion_vector(view, self.def.id, entry.file_id)?;
                Ok(ColdFile {
                    entry,
                    superseded,
                    only: None,
                    pages: pruning.map(Pruning::pages),
                })
            })
            .collect()
    }

    /// Appends the live rows of `files`, with their keys, to `out`.
    async fn read_cold(
        &self,
        mut out: PartitionRows,
        files: Vec<ColdFile>,
        columns: &[usize],
        include_deleted: bool,
    ) -> Result<PartitionRows> {
        let columns: Arc<[usize]> = columns.into();
        for f in files {
            let mut rows = self
                .clone()
                .open_cold(f, columns.clone(), include_deleted, true)
                .await?;
            while let Some((batch, keys)) = rows.try_next().await? {
                out.batches.push(batch);
                out.keys.extend(keys);
            }
        }
        Ok(out)
    }

    /// Opens one cold file: its live rows (minus the deletion vector, minus tombstones unless
    /// `include_deleted`) as batches with `columns`, and their full keys when `with_keys`.
    async fn open_cold(
        self,
        file: ColdFile,
        columns: Arc<[usize]>,
        include_deleted: bool,
        with_keys: bool,
    ) -> Result<BoxStream<'static, Result<KeyedBatch>>> {
        let full = self.def.arrow_schema(true);
        let projects = |name: &str| columns.iter().any(|&i| full.field(i).name() == name);
        // System columns are read only when needed: `_seq` when projected (or `_updated`),
        // `_deleted` when projected or to drop the file's tombstones, `_key` for row keys.
        let seq = projects(SEQ) || projects(UPDATED);
        let deleted = projects(DELETED) || (!include_deleted && file.entry.tombstones > 0);
        let mut names: Vec<String> = columns
            .iter()
            .map(|&i| match self.def.columns.get(i) {
                Some(c) => format!("c{}", c.id),
                None => String::new(),
            })
            .collect();
        names.extend([
            if seq { SEQ } else { "" }.to_string(),
            if deleted { DELETED } else { "" }.to_string(),
            if with_keys { cold::KEY_COLUMN } else { "" }.to_string(),
        ]);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (batches, pos) = self
            .core
            .cold
            .open(
                &file.entry.path,
                file.entry.bytes,
                &refs,
                cold::RowChoice {
                    only: file.only.as_deref(),
                    skip: &file.superseded,
                    pages: file.pages.as_deref(),
                },
                BATCH_ROWS,
            )
            .await?;
        let n = columns.len();
        let system = |k: usize, wanted: bool| -> Result<Option<usize>> {
            match pos.get(n.saturating_add(k)).copied().flatten() {
                Some(p) => Ok(Some(p)),
                None if wanted => Err(Error::Internal("cold file lacks system columns".into())),
                None => Ok(None),
            }
        };
        let (seq_pos, del_pos, key_pos) =
            (system(0, seq)?, system(1, deleted)?, system(2, with_keys)?);
        let read = ColdRead {
            schema: Arc::new(full.project(&columns)?),
            full,
            columns,
            include_deleted,
            pos,
            seq_pos,
            del_pos,
            key_pos,
            prefix: with_keys.then(|| self.prefix()),
        };
        // The deletion vector was applied as the file's row selection: only tombstones remain.
        let live = batches.map(move |b| self.live_rows(&b?, &read));
        Ok(Box::pin(
            live.try_filter_map(|kept| async move { Ok(kept) }),
        ))
    }

    /// The rows of one decoded cold batch that are live (the decoder already skipped the
    /// deletion vector's rows), as a batch of `read.schema`. None when no row is kept.
    fn live_rows(&self, b: &RecordBatch, read: &ColdRead) -> Result<Option<KeyedBatch>> {
        let n_rows = b.num_rows();
        let seq = read
            .seq_pos
            .map(|p| b.column(p).as_primitive::<Int64Type>().clone());
        let del = read.del_pos.map(|p| b.column(p).as_boolean().clone());
        // Rows to drop: tombstones unless wanted; None keeps every row.
        let mask: Option<BooleanArray> = del
            .as_ref()
            .filter(|_| !read.include_deleted)
            .map(datafusion::arrow::compute::not)
            .transpose()?;
        let kept = mask.as_ref().map_or(n_rows, BooleanArray::true_count);
        if kept == 0 {
            return Ok(None);
        }
        let mut arrays = Vec::with_capacity(read.columns.len());
        for (j, &i) in read.columns.iter().enumerate() {
            let a: ArrayRef = if let Some(c) = self.def.columns.get(i) {
                let dt = c.sql_type.arrow_type();
                match read.pos.get(j).copied().flatten() {
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
                let missing = || Error::Internal("cold read lacks a system column".into());
                match read.full.field(i).name().as_str() {
                    SEQ => Arc::new(seq.clone().ok_or_else(missing)?),
                    UPDATED => Arc::new(TimestampMillisecondArray::from_iter_values(
                        seq.as_ref()
                            .ok_or_else(missing)?
                            .values()
                            .iter()
                            .map(|s| crate::ids::seq_millis(crate::ids::from_i64(*s))),
                    )),
                    _ => Arc::new(del.clone().ok_or_else(missing)?),
                }
            };
            arrays.push(match &mask {
                Some(m) => filter(&a, m)?,
                None => a,
            });
        }
        let mut keys = Vec::new();
        if let (Some(prefix), Some(key_pos)) = (&read.prefix, read.key_pos) {
            let keys_col = b.column(key_pos).as_binary::<i32>();
            for i in (0..n_rows).filter(|&i| mask.as_ref().is_none_or(|m| m.value(i))) {
                let mut k = prefix.clone();
                k.extend_from_slice(keys_col.value(i));
                keys.push(k.into());
            }
        }
        Ok(Some((batch_of(&read.schema, arrays, kept)?, keys)))
    }

    /// What the scan's pushed-down filters prune ([`Pruning`]; None when no filter can).
    pub(super) fn pruning(&self, state: &dyn DfSession, filters: &[Expr]) -> Option<Arc<Pruning>> {
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
        // Files name user columns `c<id>` (renames never touch them): the same filter over
        // those names, column positions unchanged, for the files' page indexes.
        let file_name = |name: &str| match self.def.column(name) {
            Some(c) => format!("c{}", c.id),
            None => name.to_string(),
        };
        let file_schema: SchemaRef = Arc::new(datafusion::arrow::datatypes::Schema::new(
            full.fields()
                .iter()
                .map(|f| f.as_ref().clone().with_name(file_name(f.name())))
                .collect::<Vec<_>>(),
        ));
        let file_expr = Arc::clone(&expr)
            .transform(|e| {
                let Some(c) = e.downcast_ref::<PhysicalColumn>() else {
                    return Ok(Transformed::no(e));
                };
                let renamed: Arc<dyn PhysicalExpr> =
                    Arc::new(PhysicalColumn::new(&file_name(c.name()), c.index()));
                Ok(Transformed::yes(renamed))
            })
            .data()
            .ok()?;
        Some(Arc::new(Pruning {
            expr,
            schema: full,
            file_expr,
            file_schema,
            files: std::sync::OnceLock::new(),
            pages: std::sync::OnceLock::new(),
        }))
    }
}

/// What a read of one cold file produces, and where the columns of its decoded batches are.
struct ColdRead {
    /// The table's full user+system schema.
    full: SchemaRef,
    /// The output schema: the `columns` of `full`.
    schema: SchemaRef,
    /// The output columns (indices into the full user+system schema).
    columns: Arc<[usize]>,
    /// Keep tombstones.
    include_deleted: bool,
    /// Per requested column, its index in the decoded batches (None: not in the file).
    pos: Vec<Option<usize>>,
    /// `_seq`, `_deleted` and `_key` in the decoded batches, when read.
    seq_pos: Option<usize>,
    del_pos: Option<usize>,
    key_pos: Option<usize>,
    /// The partition's key prefix, when the reader wants full row keys.
    prefix: Option<Vec<u8>>,
}

/// `rows` cut off after `limit` rows: the last batch is sliced, and `rows` is dropped (which
/// stops whatever feeds it) once the limit is reached.
fn take_rows(
    rows: impl futures::Stream<Item = Result<RecordBatch>> + Send + 'static,
    limit: usize,
) -> BoxStream<'static, Result<RecordBatch>> {
    let rows: BoxStream<'static, Result<RecordBatch>> = Box::pin(rows);
    Box::pin(futures::stream::unfold(
        (Some(rows), limit),
        |(rows, left)| async move {
            let mut rows = rows.filter(|_| left > 0)?;
            match rows.next().await? {
                Ok(b) => {
                    let b = if b.num_rows() > left {
                        b.slice(0, left)
                    } else {
                        b
                    };
                    let left = left.saturating_sub(b.num_rows());
                    Some((Ok(b), (Some(rows), left)))
                }
                Err(e) => Some((Err(e), (None, 0))),
            }
        },
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)])
            .unwrap()
    }

    /// A producer that says it is done ends the stream; one that stops without saying so (a
    /// panic drops its sender) ends it with an error, never with a silently short result.
    #[tokio::test]
    async fn producers_must_say_they_are_done() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(Ok(Some(batch()))).await.unwrap();
        tx.send(Ok(None)).await.unwrap();
        let got: Vec<Result<RecordBatch>> = until_done(rx, "test").collect().await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap().num_rows(), 2);

        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(Ok(Some(batch()))).await.unwrap();
        drop(tx);
        let got: Vec<Result<RecordBatch>> = until_done(rx, "the test producer").collect().await;
        assert_eq!(got.len(), 2);
        let err = got[1].as_ref().unwrap_err().to_string();
        assert!(
            err.contains("the test producer stopped unexpectedly"),
            "{err}"
        );
    }

    /// `take_rows` slices the batch that crosses the limit and stops reading after it.
    #[tokio::test]
    async fn take_rows_cuts_at_the_limit() {
        let polled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = polled.clone();
        let rows = futures::stream::iter(0..100).map(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(batch())
        });
        let got: Vec<RecordBatch> = take_rows(rows, 3).try_collect().await.unwrap();
        assert_eq!(
            got.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert_eq!(polled.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
