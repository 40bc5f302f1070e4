//! Planning a live query's SELECT: which table, which columns, which WHERE.
//!
//! A subscription is `SELECT columns FROM ns.t [WHERE …]` over one USER, SHARED or STREAM
//! table. Its WHERE is evaluated on each changed row by itself, so only what can be decided
//! row by row is admitted: the analyzed plan must be `Projection(columns) → [Filter]* →
//! [SubqueryAlias] → TableScan`. Joins, aggregates, DISTINCT, ORDER BY/LIMIT, window
//! functions, computed columns, subqueries and volatile functions (`random()`) are refused with
//! an error that names them. Time functions (`now()`) are evaluated once, at subscribe time.
//!
//! May import: the ground floor, `catalog/`, `tables/` and the rest of `query/`. Never
//! `engine/` or the front ends.

use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast;

use super::bridge::{Bridge, mentions_system_columns, normalize_current_user};
use super::{dml, guard};
use crate::control::StatementControl;
use crate::error::{Error, Result};
use crate::session::Session;
use crate::sql::lexer::Tok;
use crate::tables::KalamTable;

/// A subscription's SELECT, planned.
#[derive(Debug)]
pub struct PlannedSubscription {
    /// The table as the subscriber's session sees it (its partition).
    pub table: KalamTable,
    /// The selected columns, in order.
    pub columns: Vec<String>,
    /// The WHERE clause over unqualified column names, simplified, time functions folded.
    pub predicate: Option<Expr>,
}

fn refuse(what: &str) -> Error {
    Error::InvalidSql(format!(
        "a live query is SELECT columns FROM ns.table [WHERE …]; {what} is not supported"
    ))
}

/// What a plan node that a subscription cannot have is called in the error.
fn node_name(plan: &LogicalPlan) -> &'static str {
    match plan {
        LogicalPlan::Aggregate(_) => "an aggregate (GROUP BY, COUNT, SUM, …)",
        LogicalPlan::Join(_) => "a join",
        LogicalPlan::Sort(_) => "ORDER BY (use options.last_rows for the newest rows)",
        LogicalPlan::Limit(_) => "LIMIT/OFFSET (use options.last_rows for the newest rows)",
        LogicalPlan::Distinct(_) => "DISTINCT",
        LogicalPlan::Window(_) => "a window function",
        LogicalPlan::Union(_) => "UNION",
        LogicalPlan::Subquery(_) => "a subquery",
        LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => "a SELECT without a table",
        _ => "this query shape",
    }
}

impl Bridge {
    /// Plans `sql` (tokens `toks`) as a subscription of `session` (see the module docs).
    ///
    /// # Errors
    /// [`Error::InvalidSql`] for anything but one SELECT of the admitted shape; the usual
    /// planning errors (`TABLE_NOT_FOUND`, unknown columns, `PERMISSION_DENIED`).
    pub async fn plan_subscription(
        &self,
        sql: &str,
        toks: &[Tok],
        session: &Session,
    ) -> Result<PlannedSubscription> {
        let state = self.state(
            session,
            mentions_system_columns(toks),
            Arc::new(StatementControl::default()),
        )?;
        let sql = &normalize_current_user(sql, toks);
        let statement = state.sql_to_statement(sql, &datafusion::config::Dialect::Generic)?;
        let is_query = matches!(&statement, DfStatement::Statement(s) if matches!(s.as_ref(), ast::Statement::Query(_)));
        if !is_query {
            return Err(refuse("a statement other than SELECT"));
        }
        guard::check_ast(&statement)?;
        let plan = state.statement_to_plan(statement).await?;
        guard::classify(&plan)?;
        let plan = state
            .analyzer()
            .execute_and_check(plan, state.config_options(), |_, _| {})?;
        let mut refused = None;
        plan.apply(|n| {
            Ok(match n {
                LogicalPlan::Projection(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::TableScan(_) => TreeNodeRecursion::Continue,
                other => {
                    refused = Some(node_name(other));
                    TreeNodeRecursion::Stop
                }
            })
        })?;
        if let Some(what) = refused {
            return Err(refuse(what));
        }
        let mut node = &plan;
        let mut columns = None;
        if let LogicalPlan::Projection(p) = node {
            let mut names = Vec::with_capacity(p.expr.len());
            for e in &p.expr {
                match e {
                    Expr::Column(c) => names.push(c.name.clone()),
                    _ => return Err(refuse("a computed or renamed column")),
                }
            }
            columns = Some(names);
            node = p.input.as_ref();
        }
        let (mut predicates, node) = dml::filters_above_scan(node);
        let LogicalPlan::TableScan(scan) = node else {
            return Err(refuse(node_name(node)));
        };
        if scan.fetch.is_some() {
            return Err(refuse("LIMIT"));
        }
        predicates.extend(scan.filters.iter().cloned());
        let table = source_as_provider(&scan.source)?
            .downcast_ref::<KalamTable>()
            .cloned()
            .ok_or_else(|| {
                Error::InvalidSql(format!(
                    "live queries are available on USER, SHARED and STREAM tables, not on '{}'",
                    scan.table_name
                ))
            })?;
        let columns = columns.unwrap_or_else(|| {
            scan.projected_schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        });
        let predicate = match conjunction(predicates) {
            None => None,
            Some(p) => Some(row_predicate(p, &table)?),
        };
        Ok(PlannedSubscription {
            table,
            columns,
            predicate,
        })
    }
}

/// `p` as a per-row predicate over the table's full schema: unqualified, no subqueries, no
/// volatile functions, time functions folded to their value now.
fn row_predicate(p: Expr, table: &KalamTable) -> Result<Expr> {
    let mut bad = None;
    p.apply(|n| {
        if matches!(
            n,
            Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
        ) {
            bad = Some("a subquery");
        } else if matches!(n, Expr::ScalarFunction(f) if f.func.signature().volatility == datafusion::logical_expr::Volatility::Volatile)
        {
            bad = Some("a volatile function (random(), …) in WHERE");
        } else if matches!(n, Expr::AggregateFunction(_) | Expr::WindowFunction(_)) {
            bad = Some("an aggregate or window function in WHERE");
        }
        Ok(if bad.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    if let Some(what) = bad {
        return Err(refuse(what));
    }
    let p = crate::tables::strip_qualifiers(p)?;
    let full = table.def().arrow_schema(true);
    let schema = Arc::new(DFSchema::try_from(full.as_ref().clone())?);
    let context = SimplifyContext::builder()
        .with_schema(schema)
        .with_current_time()
        .build();
    Ok(ExprSimplifier::new(context).simplify(p)?)
}
