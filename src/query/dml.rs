//! UPDATE and DELETE with exactly the statement's predicate.
//!
//! DataFusion hands a table provider's `update`/`delete_from` the filters it can still find in
//! the *optimized* plan. When the optimizer proves a WHERE clause can never be true
//! (`WHERE false`, `id = NULL`, `x = $1` bound to NULL, `id = 5 AND id = 6`) it replaces the
//! filtered scan with an empty relation, no filter is left, and the provider sees "no WHERE":
//! every row. So KalamDB never lets DataFusion run a write it cannot bound: the engine takes the
//! *analyzed* (type-coerced, not optimized) plan, reads the predicate and the assignments off
//! it, and calls the table's write path, which keeps a row only where the predicate is TRUE
//! (SQL three-valued logic: NULL and FALSE both skip the row).
//!
//! The admitted shapes are DataFusion 55's own (`delete_to_plan`, `update_to_plan`):
//! `Dml(Delete, [Filter]* → [SubqueryAlias] → TableScan)` and
//! `Dml(Update, Projection(one aliased expression per column) → [Filter]* → [SubqueryAlias] →
//! TableScan)`. Anything else is refused rather than guessed at.
//!
//! May import: the ground floor and `tables/`. Never `engine/` or the front ends.

use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan, WriteOp};

use crate::error::{Error, Result};
use crate::tables::KalamTable;

/// An UPDATE or DELETE ready for [`KalamTable`]'s write path.
#[derive(Debug)]
pub struct DmlWrite {
    /// The target table, as the statement's session sees it.
    pub table: KalamTable,
    /// True for DELETE, false for UPDATE.
    pub delete: bool,
    /// The WHERE clause (None: every row of the caller's partition), qualifiers included.
    pub predicate: Option<Expr>,
    /// UPDATE: `(column name, new value)` for each assigned column.
    pub assignments: Vec<(String, Expr)>,
}

fn unsupported(what: &str) -> Error {
    Error::InvalidSql(format!("this {what} form is not supported"))
}

/// Walks `[Filter]* → [SubqueryAlias]` down from `plan`: the filters' predicates, top first,
/// and the node below them (a `TableScan` in the shapes UPDATE, DELETE and live queries admit).
pub fn filters_above_scan(plan: &LogicalPlan) -> (Vec<Expr>, &LogicalPlan) {
    let mut node = plan;
    let mut predicates = Vec::new();
    while let LogicalPlan::Filter(f) = node {
        predicates.push(f.predicate.clone());
        node = f.input.as_ref();
    }
    if let LogicalPlan::SubqueryAlias(a) = node {
        node = a.input.as_ref();
    }
    (predicates, node)
}

/// Reads the write off an analyzed `Dml` plan (see the module docs).
///
/// # Errors
/// [`Error::InvalidSql`] for plan shapes other than the admitted ones;
/// [`Error::PermissionDenied`] when the target is not a KalamDB table.
pub fn extract(plan: &LogicalPlan) -> Result<DmlWrite> {
    let LogicalPlan::Dml(dml) = plan else {
        return Err(unsupported("statement"));
    };
    let delete = match dml.op {
        WriteOp::Delete => true,
        WriteOp::Update => false,
        _ => return Err(unsupported("write")),
    };
    let what = if delete { "DELETE" } else { "UPDATE" };
    let provider = source_as_provider(&dml.target)?;
    let table = provider
        .downcast_ref::<KalamTable>()
        .cloned()
        .ok_or_else(|| {
            Error::PermissionDenied(format!("table '{}' is read-only", dml.table_name))
        })?;
    let mut input: &LogicalPlan = dml.input.as_ref();
    let mut projection: Option<&[Expr]> = None;
    if !delete {
        let LogicalPlan::Projection(p) = input else {
            return Err(unsupported(what));
        };
        projection = Some(&p.expr);
        input = p.input.as_ref();
    }
    let (predicates, input) = filters_above_scan(input);
    let LogicalPlan::TableScan(scan) = input else {
        return Err(unsupported(what));
    };
    if !scan.filters.is_empty() || scan.fetch.is_some() {
        return Err(unsupported(what));
    }
    let mut assignments = Vec::new();
    if let Some(exprs) = projection {
        let schema = datafusion::datasource::TableProvider::schema(&table);
        if exprs.len() != schema.fields().len() {
            return Err(unsupported(what));
        }
        for (field, expr) in schema.fields().iter().zip(exprs) {
            let value = expr.clone().unalias();
            let unchanged = matches!(&value, Expr::Column(c) if c.name == *field.name());
            if !unchanged {
                assignments.push((field.name().clone(), value));
            }
        }
    }
    Ok(DmlWrite {
        table,
        delete,
        predicate: conjunction(predicates),
        assignments,
    })
}
