//! Guards on what a statement *does*, checked wherever it appears in the statement: at the top,
//! under `EXPLAIN [ANALYZE]`, in CTEs and in subqueries.
//!
//! Two passes, both before anything executes:
//! - [`check_ast`] walks the parsed statement and checks every INSERT, UPDATE and DELETE in it:
//!   no system column as a target, no subquery or `FROM`/`USING` in an UPDATE/DELETE (their
//!   predicates could not be applied exactly), no `LIMIT`/`ORDER BY` on a write, plain column
//!   names as targets; and rejects DataFusion's file statements (`COPY`, `CREATE EXTERNAL TABLE`).
//! - [`classify`] walks the logical plan, subqueries included, and admits only reads plus one
//!   write at the very top: file writes (`COPY`), DDL, `SET`/transactions/`PREPARE`, `TRUNCATE`,
//!   `MERGE`, `INSERT OVERWRITE`/`REPLACE`, writes to anything but a KalamDB table (the
//!   read-only `system` and `information_schema` tables) and writes nested under another node
//!   (`EXPLAIN ANALYZE DELETE …` would run DataFusion's own DML path, which may widen the write)
//!   are refused.
//!
//! May import: the ground floor, `catalog/` and `tables/`. Never `engine/` or the front ends.

use std::ops::ControlFlow;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{DmlStatement, LogicalPlan, WriteOp};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{self, Visit, Visitor};

use crate::catalog::is_system_column;
use crate::error::{Error, Result};
use crate::tables::KalamTable;

/// What an admitted plan does at its top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    /// Reads only (SELECT, EXPLAIN of a read, SHOW via information_schema, ...).
    Query,
    /// `INSERT INTO` (append).
    Insert,
    /// `UPDATE` (executed by the engine with the exact predicate, see [`super::dml`]).
    Update,
    /// `DELETE` (executed by the engine with the exact predicate, see [`super::dml`]).
    Delete,
}

/// Checks every write statement inside `stmt` (see the module docs).
///
/// # Errors
/// [`Error::InvalidSql`] or [`Error::PermissionDenied`] describing the first violation.
pub fn check_ast(stmt: &DfStatement) -> Result<()> {
    match stmt {
        DfStatement::Statement(s) => {
            let mut v = WriteChecker(None);
            let _ = s.visit(&mut v);
            v.0.map_or(Ok(()), Err)
        }
        DfStatement::Explain(e) => check_ast(&e.statement),
        DfStatement::CopyTo(_) | DfStatement::CreateExternalTable(_) => Err(files_denied()),
        DfStatement::Reset(_) => Err(Error::InvalidSql(
            "SET and RESET of DataFusion options are not supported".into(),
        )),
    }
}

fn files_denied() -> Error {
    Error::PermissionDenied(
        "COPY and external tables are not available: SQL cannot read or write files".into(),
    )
}

/// The first violation found, if any.
struct WriteChecker(Option<Error>);

impl Visitor for WriteChecker {
    type Break = ();

    fn pre_visit_statement(&mut self, s: &ast::Statement) -> ControlFlow<()> {
        match check_write(s) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                self.0 = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

fn invalid(msg: &str) -> Result<()> {
    Err(Error::InvalidSql(msg.into()))
}

fn plain_column(name: &ast::ObjectName) -> Result<String> {
    let mut last = None;
    for part in &name.0 {
        match part.as_ident() {
            Some(i) => last = Some(i.value.to_ascii_lowercase()),
            None => return Err(Error::InvalidSql(format!("'{name}' is not a column name"))),
        }
    }
    last.ok_or_else(|| Error::InvalidSql("empty column name".into()))
}

fn check_write(s: &ast::Statement) -> Result<()> {
    match s {
        ast::Statement::Insert(ins) => {
            for c in &ins.columns {
                let col = plain_column(c)?;
                if is_system_column(&col) {
                    return Err(Error::InvalidSql(format!(
                        "system column '{col}' cannot be inserted"
                    )));
                }
            }
            if ins.overwrite || ins.replace_into || ins.on.is_some() {
                return invalid(
                    "INSERT OVERWRITE, REPLACE INTO and ON CONFLICT are not supported; use INSERT INTO, UPDATE or DELETE",
                );
            }
            if !ins.assignments.is_empty() {
                return invalid("INSERT ... SET is not supported; use INSERT ... VALUES");
            }
            Ok(())
        }
        ast::Statement::Update(u) => {
            for a in &u.assignments {
                let ast::AssignmentTarget::ColumnName(name) = &a.target else {
                    return invalid("UPDATE of a column tuple is not supported");
                };
                let col = plain_column(name)?;
                if is_system_column(&col) {
                    return Err(Error::InvalidSql(format!(
                        "system column '{col}' cannot be updated"
                    )));
                }
                if has_subquery(&a.value) {
                    return invalid("UPDATE with a subquery is not supported");
                }
            }
            if u.from.is_some() {
                return invalid("UPDATE ... FROM is not supported");
            }
            if u.selection.as_ref().is_some_and(has_subquery) {
                return invalid("UPDATE/DELETE with a subquery in WHERE is not supported");
            }
            if u.limit.is_some() || !u.order_by.is_empty() {
                return invalid("UPDATE with ORDER BY or LIMIT is not supported");
            }
            Ok(())
        }
        ast::Statement::Delete(d) => {
            if d.selection.as_ref().is_some_and(has_subquery) {
                return invalid("UPDATE/DELETE with a subquery in WHERE is not supported");
            }
            if d.using.is_some() || d.tables.len() > 1 {
                return invalid("DELETE ... USING and multi-table DELETE are not supported");
            }
            if d.limit.is_some() || !d.order_by.is_empty() {
                return invalid("DELETE with ORDER BY or LIMIT is not supported");
            }
            Ok(())
        }
        ast::Statement::Merge { .. } => {
            invalid("MERGE is not supported; use INSERT, UPDATE or DELETE")
        }
        ast::Statement::Truncate { .. } => {
            invalid("TRUNCATE is not supported; use DELETE FROM t (it soft-deletes your rows)")
        }
        ast::Statement::Copy { .. } | ast::Statement::CopyIntoSnowflake { .. } => {
            Err(files_denied())
        }
        _ => Ok(()),
    }
}

/// Finds subqueries inside an expression.
struct SubqueryFinder(bool);

impl Visitor for SubqueryFinder {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &ast::Expr) -> ControlFlow<()> {
        if matches!(
            e,
            ast::Expr::Subquery(_) | ast::Expr::InSubquery { .. } | ast::Expr::Exists { .. }
        ) {
            self.0 = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

fn has_subquery(e: &ast::Expr) -> bool {
    let mut f = SubqueryFinder(false);
    let _ = e.visit(&mut f);
    f.0
}

/// Classifies `plan` (see the module docs).
///
/// # Errors
/// [`Error::PermissionDenied`] for file access and writes to read-only tables;
/// [`Error::InvalidSql`] for everything else that is refused.
pub fn classify(plan: &LogicalPlan) -> Result<PlanKind> {
    let mut verdict: Result<()> = Ok(());
    let mut nested_write = false;
    let root: *const LogicalPlan = plan;
    plan.apply_with_subqueries(|node| {
        let r = match node {
            LogicalPlan::Copy(_) => Err(files_denied()),
            LogicalPlan::Ddl(_) => Err(Error::InvalidSql(
                "this DDL is not supported: use KalamDB's CREATE/ALTER/DROP statements".into(),
            )),
            LogicalPlan::Statement(_) => Err(Error::InvalidSql(
                "transactions, SET of DataFusion options and PREPARE are not supported".into(),
            )),
            LogicalPlan::Extension(e) => Err(Error::InvalidSql(format!(
                "plan node '{}' is not supported",
                e.node.name()
            ))),
            LogicalPlan::Dml(d) => {
                if !std::ptr::eq(node, root) {
                    nested_write = true;
                }
                check_dml(d)
            }
            _ => Ok(()),
        };
        match r {
            Ok(()) => Ok(TreeNodeRecursion::Continue),
            Err(e) => {
                verdict = Err(e);
                Ok(TreeNodeRecursion::Stop)
            }
        }
    })?;
    verdict?;
    if nested_write {
        return Err(Error::InvalidSql(
            "EXPLAIN of INSERT, UPDATE or DELETE is not supported; EXPLAIN the SELECT instead"
                .into(),
        ));
    }
    Ok(match plan {
        LogicalPlan::Dml(d) => match d.op {
            WriteOp::Update => PlanKind::Update,
            WriteOp::Delete => PlanKind::Delete,
            _ => PlanKind::Insert,
        },
        _ => PlanKind::Query,
    })
}

fn check_dml(d: &DmlStatement) -> Result<()> {
    match &d.op {
        WriteOp::Insert(InsertOp::Append) | WriteOp::Update | WriteOp::Delete => {}
        WriteOp::Insert(op) => {
            return Err(Error::InvalidSql(format!(
                "{op} is not supported; use INSERT INTO"
            )));
        }
        other => {
            return Err(Error::InvalidSql(format!(
                "{} is not supported",
                other.name()
            )));
        }
    }
    let provider = source_as_provider(&d.target)?;
    if provider.downcast_ref::<KalamTable>().is_none() {
        return Err(Error::PermissionDenied(format!(
            "table '{}' is read-only",
            d.table_name
        )));
    }
    Ok(())
}
