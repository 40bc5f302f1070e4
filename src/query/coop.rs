//! [`YieldEverywhere`]: a physical optimizer rule that makes every operator give its thread back.
//!
//! A deadline, a cancelled request or another user's statement can only get a query thread
//! when the running statement's future returns `Pending`. DataFusion's own `EnsureCooperative`
//! rule wraps data sources in a `CooperativeExec`, which spends tokio's per-task budget on each
//! batch. That is not enough for operators that generate unbounded output from data they have
//! already buffered: a `CROSS JOIN` under `COUNT(*)` produces billions of rows without touching
//! a source again, and the aggregate above it keeps polling without ever yielding (measured: a
//! 300 ms timeout fired after 72 s). This rule, run after DataFusion's, wraps every operator
//! that is not cooperative itself, so every batch anywhere in the plan spends budget.
//!
//! May import: nothing of the crate beyond DataFusion. Never `engine/` or the front ends.

use std::sync::Arc;

use datafusion::common::Result as DfResult;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::SchedulingType;

/// Wraps every non-cooperative operator in a [`CooperativeExec`] (see the module docs).
#[derive(Debug, Default)]
pub struct YieldEverywhere;

impl PhysicalOptimizerRule for YieldEverywhere {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            // A CooperativeExec reports itself cooperative, so nothing is wrapped twice.
            if node.properties().scheduling_type == SchedulingType::Cooperative {
                Ok(Transformed::no(node))
            } else {
                Ok(Transformed::yes(Arc::new(CooperativeExec::new(node))))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "YieldEverywhere"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
