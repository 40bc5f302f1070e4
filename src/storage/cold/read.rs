//! Reading one cold file ([`ColdStore::open`]): ranged reads of the pages of the needed
//! columns, with a row selection from the primary-key index, the deletion vector and the page
//! index (DataFusion's page pruning).

use super::*;

/// Which rows of a cold file a read decodes; the reader skips the pages that hold none of them.
#[derive(Debug, Default, Clone, Copy)]
pub struct RowChoice<'a> {
    /// Only these rows (sorted row numbers, e.g. from the primary-key index); None: every row.
    pub only: Option<&'a [u32]>,
    /// Never these rows (sorted row numbers): the file's deletion vector.
    pub skip: &'a [u32],
    /// A filter over the file's columns; pages its page-index statistics prove hold no
    /// matching row are skipped (the rows read still need the filter applied).
    pub pages: Option<&'a PagePruningAccessPlanFilter>,
}

/// Points `builder` at the named columns that exist in the file and at the rows `choice`
/// keeps. Returns the builder and, per requested name, its index in the batches it will
/// produce (None if the file lacks the column).
fn select<T>(
    builder: ArrowReaderBuilder<T>,
    path: &str,
    names: &[&str],
    choice: RowChoice<'_>,
) -> Result<(ArrowReaderBuilder<T>, Vec<Option<usize>>)> {
    let file_schema = builder.schema().clone();
    let mut roots: Vec<usize> = names
        .iter()
        .filter_map(|n| file_schema.index_of(n).ok())
        .collect();
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.clone());
    let total = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mut selection: Option<RowSelection> = None;
    let mut narrow = |s: RowSelection| {
        selection = Some(match selection.take() {
            Some(current) => current.intersection(&s),
            None => s,
        });
    };
    if let Some(rows) = choice.only {
        if let Some(r) = rows
            .iter()
            .find(|&&r| usize::try_from(r).map_or(true, |r| r >= total))
        {
            return Err(Error::Internal(format!(
                "row {r} asked of a Parquet file of {total} rows"
            )));
        }
        let ranges = rows
            .iter()
            .filter_map(|&r| usize::try_from(r).ok())
            .map(|r| r..r.saturating_add(1));
        narrow(RowSelection::from_consecutive_ranges(ranges, total));
    }
    if !choice.skip.is_empty() {
        narrow(all_but(choice.skip, total));
    }
    if let Some(filter) = choice.pages
        && let Some(pages) = page_selection(&builder, path, filter)
    {
        narrow(pages);
    }
    let mut builder = builder.with_projection(mask);
    if let Some(selection) = selection {
        builder = builder.with_row_selection(selection);
    }
    let positions = names
        .iter()
        .map(|n| {
            file_schema
                .index_of(n)
                .ok()
                .and_then(|i| roots.iter().position(|r| *r == i))
        })
        .collect();
    Ok((builder, positions))
}

/// Every row of a `total`-row file but the sorted row numbers `skip`.
fn all_but(skip: &[u32], total: usize) -> RowSelection {
    let mut ranges = Vec::new();
    let mut from = 0usize;
    for &r in skip {
        let Ok(r) = usize::try_from(r) else { break };
        if r >= total {
            break;
        }
        if r > from {
            ranges.push(from..r);
        }
        from = from.max(r.saturating_add(1));
    }
    if from < total {
        ranges.push(from..total);
    }
    RowSelection::from_consecutive_ranges(ranges.into_iter(), total)
}

/// The rows of the pages `filter` does not rule out, by the file's page index (DataFusion's own
/// page pruning); None when it rules out nothing (or the file has no page index).
fn page_selection<T>(
    builder: &ArrowReaderBuilder<T>,
    path: &str,
    filter: &PagePruningAccessPlanFilter,
) -> Option<RowSelection> {
    let meta = builder.metadata();
    let metrics = ParquetFileMetrics::new(0, path, &ExecutionPlanMetricsSet::new());
    let plan = filter.prune_plan_with_page_index(
        ParquetAccessPlan::new_all(meta.num_row_groups()),
        builder.schema(),
        builder.parquet_schema(),
        meta,
        &metrics,
    );
    if plan
        .inner()
        .iter()
        .all(|a| matches!(a, RowGroupAccess::Scan))
    {
        return None;
    }
    let mut selectors = Vec::new();
    for (access, group) in plan.inner().iter().zip(meta.row_groups()) {
        let rows = usize::try_from(group.num_rows()).unwrap_or(0);
        match access {
            RowGroupAccess::Skip => selectors.push(RowSelector::skip(rows)),
            RowGroupAccess::Scan => selectors.push(RowSelector::select(rows)),
            RowGroupAccess::Selection(s) => selectors.extend(s.iter().copied()),
        }
    }
    Some(RowSelection::from(selectors))
}

fn parquet_err(e: datafusion::parquet::errors::ParquetError) -> Error {
    Error::Internal(format!("parquet read: {e}"))
}

/// The batches of one cold file, decoded as they are read.
pub type ColdStream = futures::stream::BoxStream<'static, Result<RecordBatch>>;

impl ColdStore {
    /// Streams the file at `path` (`size` bytes) without fetching it whole: the footer and
    /// page index (cached per path), then only the byte ranges of the pages of the named
    /// columns that exist in the file (ranged reads through `object_store`), in batches of at
    /// most `batch_rows` rows. Only the rows `choice` keeps are decoded, and only the pages
    /// holding one are fetched.
    ///
    /// Returns the stream and, per requested name, its index in the batches (None if absent).
    ///
    /// # Errors
    /// Storage failures, corrupt files (at open, or as an item of the stream), and a row number
    /// past the file's end.
    pub async fn open(
        &self,
        path: &str,
        size: u64,
        names: &[&str],
        choice: RowChoice<'_>,
        batch_rows: usize,
    ) -> Result<(ColdStream, Vec<Option<usize>>)> {
        let factory = CachedParquetFileReaderFactory::new(self.store.clone(), self.footers.clone());
        let reader: Box<dyn AsyncFileReader> = factory.create_reader(
            0,
            PartitionedFile::new(path, size),
            None,
            &ExecutionPlanMetricsSet::new(),
        )?;
        // The page index lets a row selection skip pages; it is cached with the footer.
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let builder = ParquetRecordBatchStreamBuilder::new_with_options(reader, options)
            .await
            .map_err(parquet_err)?;
        let (builder, positions) = select(builder, path, names, choice)?;
        let stream = builder
            .with_batch_size(batch_rows)
            .build()
            .map_err(parquet_err)?
            .map_err(parquet_err);
        Ok((Box::pin(stream), positions))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A choice of just `rows`.
    pub(in crate::storage) fn only(rows: &[u32]) -> RowChoice<'_> {
        RowChoice {
            only: Some(rows),
            ..RowChoice::default()
        }
    }

    /// The `c1` values `choice` decodes from `path`.
    async fn decoded(cold: &ColdStore, path: &str, bytes: u64, choice: RowChoice<'_>) -> Vec<i64> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Int64Type;
        let (rows, _) = cold.open(path, bytes, &["c1"], choice, 8192).await.unwrap();
        let batches: Vec<RecordBatch> = rows.try_collect().await.unwrap();
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[tokio::test]
    async fn deletion_vectors_and_page_statistics_select_the_rows_decoded() {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::prelude::{SessionContext, col, lit};
        let dir = tempfile::tempdir().unwrap();
        let cold = ColdStore::local(dir.path()).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("c1", DataType::Int64, true)]));
        let n = 100_000i64;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..n))],
        )
        .unwrap();
        let mut file = cold.create_file("ns/t/", 1, schema.clone()).unwrap();
        file.write(&batch).await.unwrap();
        let (path, bytes) = file.finish().await.unwrap();

        // The deletion vector is skipped, alone and with a key read's rows.
        let skip = [0, 1, 5, 99_999, 200_000];
        let all = decoded(
            &cold,
            &path,
            bytes,
            RowChoice {
                skip: &skip,
                ..RowChoice::default()
            },
        )
        .await;
        let expected: Vec<i64> = (0..n).filter(|v| ![0, 1, 5, 99_999].contains(v)).collect();
        assert_eq!(all, expected);
        let both = RowChoice {
            only: Some(&[1, 2, 3, 99_999]),
            skip: &skip,
            pages: None,
        };
        assert_eq!(decoded(&cold, &path, bytes, both).await, vec![2, 3]);

        // A page filter of `filter` over a file of `schema`.
        let page_filter = |filter: datafusion::prelude::Expr, schema: SchemaRef| {
            let df_schema =
                datafusion::common::DFSchema::try_from(schema.as_ref().clone()).unwrap();
            let filter = SessionContext::new()
                .create_physical_expr(filter, &df_schema)
                .unwrap();
            PagePruningAccessPlanFilter::new(&filter, schema)
        };
        let by_pages = |pages| RowChoice {
            pages: Some(pages),
            ..RowChoice::default()
        };
        // A range filter: only the pages whose statistics overlap it are decoded (pages hold
        // at most 20,000 rows), and they hold every matching row.
        let pages = page_filter(
            col("c1")
                .gt_eq(lit(50_000i64))
                .and(col("c1").lt(lit(50_010i64))),
            schema.clone(),
        );
        let choice = RowChoice {
            pages: Some(&pages),
            skip: &[50_003],
            only: None,
        };
        let read = decoded(&cold, &path, bytes, choice).await;
        assert!(read.len() < 25_000, "{} rows decoded", read.len());
        let matching: Vec<i64> = read
            .into_iter()
            .filter(|v| (50_000..50_010).contains(v))
            .collect();
        assert_eq!(
            matching,
            vec![
                50_000, 50_001, 50_002, 50_004, 50_005, 50_006, 50_007, 50_008, 50_009
            ]
        );
        // A filter no row matches decodes nothing; one on a column the file lacks, everything.
        let pages = page_filter(col("c1").gt(lit(n)), schema.clone());
        assert!(
            decoded(&cold, &path, bytes, by_pages(&pages))
                .await
                .is_empty()
        );
        let other = Arc::new(Schema::new(vec![Field::new("c7", DataType::Int64, true)]));
        let pages = page_filter(col("c7").eq(lit(1i64)), other);
        let read = decoded(&cold, &path, bytes, by_pages(&pages)).await;
        assert_eq!(read.len(), 100_000);
    }
}
