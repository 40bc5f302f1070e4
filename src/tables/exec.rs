//! The physical plan nodes of KalamDB tables:
//! - [`WriteExec`]: behind INSERT, UPDATE and DELETE. It runs one write future when executed
//!   (never at planning time, so `EXPLAIN` changes nothing) and yields the single
//!   `count: UInt64` row DataFusion expects from DML.
//! - [`ScanExec`]: a table scan whose batches come from a stream opened only when executed;
//!   its `output_rows` metric (shown by `EXPLAIN ANALYZE`) counts the rows it produced.
//!
//! May import: nothing of the crate beyond DataFusion. Never `query/`, `engine/` or the front ends.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result as DfResult;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

/// The write a [`WriteExec`] performs: given the task context, returns the affected row count.
pub type WriteFn = Arc<dyn Fn(Arc<TaskContext>) -> BoxFuture<'static, DfResult<u64>> + Send + Sync>;

/// A leaf plan that performs one write and reports its row count.
pub struct WriteExec {
    name: &'static str,
    children: Vec<Arc<dyn ExecutionPlan>>,
    write: WriteFn,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for WriteExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl DisplayAs for WriteExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The `count` schema of DML results.
pub fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

impl WriteExec {
    /// A node named `name` (shown by EXPLAIN) over optional `children` (the INSERT input) that
    /// runs `write`.
    pub fn new(name: &'static str, children: Vec<Arc<dyn ExecutionPlan>>, write: WriteFn) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        WriteExec {
            name,
            children,
            write,
            properties,
        }
    }
}

impl ExecutionPlan for WriteExec {
    fn name(&self) -> &str {
        self.name
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.children.iter().collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(WriteExec::new(
            self.name,
            children,
            self.write.clone(),
        )))
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn execute(
        &self,
        _partition: usize,
        ctx: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let fut = (self.write)(ctx);
        let stream = futures::stream::once(async move {
            let n = fut.await?;
            Ok(RecordBatch::try_new(
                count_schema(),
                vec![Arc::new(UInt64Array::from(vec![n]))],
            )?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            stream,
        )))
    }
}

/// Opens the batches of a [`ScanExec`]; called once per execution.
pub type ScanFn = Arc<dyn Fn() -> BoxStream<'static, DfResult<RecordBatch>> + Send + Sync>;

/// A leaf plan streaming one table's rows (a single partition of output, no order).
pub struct ScanExec {
    label: String,
    scan: ScanFn,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl fmt::Debug for ScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

impl DisplayAs for ScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KalamScanExec: {}", self.label)
    }
}

impl ScanExec {
    /// A scan shown by EXPLAIN as `KalamScanExec: <label>`, producing batches of `schema`
    /// from `scan`.
    pub fn new(label: String, schema: SchemaRef, scan: ScanFn) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        ScanExec {
            label,
            scan,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl ExecutionPlan for ScanExec {
    fn name(&self) -> &str {
        "KalamScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        _ctx: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let produced = MetricBuilder::new(&self.metrics).output_rows(partition);
        let rows = (self.scan)().inspect_ok(move |b| produced.add(b.num_rows()));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.properties.eq_properties.schema().clone(),
            rows,
        )))
    }
}
