//! Integer arithmetic that fails on overflow, as in PostgreSQL (`bigint out of range`).
//!
//! DataFusion evaluates `+`, `-`, `*` and unary `-` on integers with wrapping arithmetic:
//! `UPDATE t SET balance = balance - 1` on `-9223372036854775808` silently stores
//! `9223372036854775807`. [`CheckedArithmetic`], an analyzer rule run after type coercion,
//! replaces every such integer operation with `checked`, a function evaluated by Arrow's
//! checked kernels, so an overflow is an error and the statement changes nothing. Results keep
//! the column names the operators would have had (`b - Int64(1)`).
//!
//! The same rule replaces `||` on strings with the bounded concatenation of
//! [`super::bounded`].
//!
//! Integer *literals* too large for 64 bits would be read as approximate doubles
//! (`-9223372036854775809` becoming exactly `i64::MIN` once stored); [`exact_integer_literals`]
//! turns them into exact `DECIMAL(38,0)` values first, so storing one in a BIGINT is an error.
//!
//! `SUM` over integers, which wraps inside DataFusion's accumulator, becomes the checked sum of
//! [`super::checked_sum`] (aggregates and window frames alike).
//!
//! May import: the ground floor, `query::bounded` and `query::checked_sum`. Never `engine/` or
//! the front ends.

use std::ops::ControlFlow;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, Datum, Scalar};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ExprSchema, Result as DfResult, exec_err, plan_err};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility, WindowFunctionDefinition,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, Result};

/// One checked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Sub,
    Mul,
    Neg,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Neg => "-",
        }
    }
}

/// The function behind one [`Op`] (one argument for `Neg`, two otherwise).
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedOp {
    op: Op,
    name: &'static str,
    signature: Signature,
}

static ADD: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| udf(Op::Add, "kalam_checked_add"));
static SUB: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| udf(Op::Sub, "kalam_checked_sub"));
static MUL: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| udf(Op::Mul, "kalam_checked_mul"));
static NEG: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| udf(Op::Neg, "kalam_checked_neg"));

fn udf(op: Op, name: &'static str) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(CheckedOp {
        op,
        name,
        signature: Signature::any(if op == Op::Neg { 1 } else { 2 }, Volatility::Immutable),
    }))
}

/// The checked function for `op` (see the module docs).
fn checked(op: Op) -> Arc<ScalarUDF> {
    match op {
        Op::Add => ADD.clone(),
        Op::Sub => SUB.clone(),
        Op::Mul => MUL.clone(),
        Op::Neg => NEG.clone(),
    }
}

impl ScalarUDFImpl for CheckedOp {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        match arg_types.first() {
            Some(t) if arg_types.iter().all(|a| a == t) => Ok(t.clone()),
            _ => plan_err!("{} needs arguments of one integer type", self.name),
        }
    }

    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        Ok(match args {
            [a] => format!("(- {})", a.schema_name()),
            [a, b] => format!(
                "{} {} {}",
                a.schema_name(),
                self.op.symbol(),
                b.schema_name()
            ),
            _ => self.name.to_string(),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let all_scalars = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let datum = |v: &ColumnarValue| -> DfResult<Box<dyn Datum>> {
            Ok(match v {
                ColumnarValue::Array(a) => Box::new(a.clone()),
                ColumnarValue::Scalar(s) => Box::new(Scalar::new(s.to_array_of_size(1)?)),
            })
        };
        // All-scalar calls evaluate one row (a batch may have none: `number_rows` can be 0).
        let rows = if all_scalars { 1 } else { rows };
        let out: ArrayRef = match (self.op, args.args.as_slice()) {
            (Op::Neg, [a]) => numeric::neg(a.to_array(rows)?.as_ref())?,
            (op, [a, b]) => {
                let (a, b) = (datum(a)?, datum(b)?);
                match op {
                    Op::Add => numeric::add(a.as_ref(), b.as_ref())?,
                    Op::Sub => numeric::sub(a.as_ref(), b.as_ref())?,
                    _ => numeric::mul(a.as_ref(), b.as_ref())?,
                }
            }
            _ => return exec_err!("{} called with the wrong number of arguments", self.name),
        };
        if all_scalars && !out.is_empty() {
            Ok(ColumnarValue::Scalar(
                datafusion::scalar::ScalarValue::try_from_array(&out, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// Rewrites integer literals that fit neither `i64` nor `u64` (with their sign) into exact
/// `DECIMAL(38,0)` casts, before planning (see the module docs).
///
/// # Errors
/// [`Error::InvalidSql`] for an integer literal of more than 38 digits.
pub fn exact_integer_literals(stmt: &mut DfStatement) -> Result<()> {
    let DfStatement::Statement(s) = stmt else {
        return Ok(());
    };
    let mut failure = None;
    let _ = ast::visit_expressions_mut(s.as_mut(), |e| {
        let text = match &*e {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::Number(n, false) => n.clone(),
                _ => return ControlFlow::Continue(()),
            },
            ast::Expr::UnaryOp {
                op: ast::UnaryOperator::Minus,
                expr,
            } => match expr.as_ref() {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, false) => format!("-{n}"),
                    _ => return ControlFlow::Continue(()),
                },
                _ => return ControlFlow::Continue(()),
            },
            _ => return ControlFlow::Continue(()),
        };
        let digits = text.strip_prefix('-').unwrap_or(&text);
        let integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        if !integer || text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok() {
            return ControlFlow::Continue(());
        }
        if digits.trim_start_matches('0').len() > 38 {
            failure = Some(Error::InvalidSql(format!(
                "integer literal {text} is out of range (more than 38 digits)"
            )));
            return ControlFlow::Break(());
        }
        let cast = format!("CAST('{text}' AS DECIMAL(38,0))");
        match Parser::new(&GenericDialect {})
            .try_with_sql(&cast)
            .and_then(|mut p| p.parse_expr())
        {
            Ok(exact) => *e = exact,
            Err(err) => failure = Some(Error::Internal(format!("cannot plan {cast}: {err}"))),
        }
        ControlFlow::Continue(())
    });
    failure.map_or(Ok(()), Err)
}

/// The analyzer rule of this module (see the module docs).
#[derive(Debug, Default)]
pub struct CheckedArithmetic;

fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Rewrites one expression tree against `schema` (the node's input columns).
fn rewrite(expr: Expr, schema: &dyn ExprSchema) -> DfResult<Transformed<Expr>> {
    expr.transform_up(|e| {
        if let Expr::BinaryExpr(BinaryExpr {
            op: Operator::StringConcat,
            ..
        }) = &e
        {
            return bounded_concat(e, schema);
        }
        if matches!(e, Expr::AggregateFunction(_) | Expr::WindowFunction(_)) {
            return Ok(checked_sum(e, schema));
        }
        let op = match &e {
            Expr::BinaryExpr(BinaryExpr { op, .. }) => match op {
                Operator::Plus => Op::Add,
                Operator::Minus => Op::Sub,
                Operator::Multiply => Op::Mul,
                _ => return Ok(Transformed::no(e)),
            },
            Expr::Negative(_) => Op::Neg,
            _ => return Ok(Transformed::no(e)),
        };
        let Ok(result_type) = e.get_type(schema) else {
            return Ok(Transformed::no(e));
        };
        if !is_integer(&result_type) {
            return Ok(Transformed::no(e));
        }
        let args = match e {
            Expr::BinaryExpr(BinaryExpr { left, right, .. }) => vec![*left, *right],
            Expr::Negative(inner) => vec![*inner],
            other => return Ok(Transformed::no(other)),
        };
        // Type coercion made both operands the result type already; anything else stays as is.
        if args
            .iter()
            .any(|a| a.get_type(schema).ok().as_ref() != Some(&result_type))
        {
            let mut args = args.into_iter();
            let rebuilt = match (op, args.next(), args.next()) {
                (Op::Neg, Some(a), _) => Expr::Negative(Box::new(a)),
                (_, Some(l), Some(r)) => Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(l),
                    match op {
                        Op::Add => Operator::Plus,
                        Op::Sub => Operator::Minus,
                        _ => Operator::Multiply,
                    },
                    Box::new(r),
                )),
                _ => return plan_err!("malformed arithmetic expression"),
            };
            return Ok(Transformed::no(rebuilt));
        }
        Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(checked(op), args),
        )))
    })
}

/// `sum(x)` (not DISTINCT) over a `BIGINT` or `BIGINT UNSIGNED` becomes
/// [`super::checked_sum::CHECKED_SUM`], as an aggregate or a window function.
fn checked_sum(e: Expr, schema: &dyn ExprSchema) -> Transformed<Expr> {
    use super::checked_sum::{CHECKED_SUM, covers};
    let replaced = |f: &Arc<datafusion::logical_expr::AggregateUDF>, args: &[Expr]| {
        f.name() == "sum"
            && !Arc::ptr_eq(f, &CHECKED_SUM)
            && matches!(args, [a] if a.get_type(schema).is_ok_and(|t| covers(&t)))
    };
    match e {
        Expr::AggregateFunction(mut f)
            if !f.params.distinct && replaced(&f.func, &f.params.args) =>
        {
            f.func = CHECKED_SUM.clone();
            Transformed::yes(Expr::AggregateFunction(f))
        }
        Expr::WindowFunction(mut w)
            if !w.params.distinct
                && matches!(&w.fun, WindowFunctionDefinition::AggregateUDF(f) if replaced(f, &w.params.args)) =>
        {
            w.fun = WindowFunctionDefinition::AggregateUDF(CHECKED_SUM.clone());
            Transformed::yes(Expr::WindowFunction(w))
        }
        other => Transformed::no(other),
    }
}

/// `a || b` on two strings of one type becomes [`super::bounded::CONCAT_OP`].
fn bounded_concat(e: Expr, schema: &dyn ExprSchema) -> DfResult<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return Ok(Transformed::no(e));
    };
    let is_string =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    match (left.get_type(schema), right.get_type(schema)) {
        (Ok(l), Ok(r)) if l == r && is_string(&l) => Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(super::bounded::CONCAT_OP.clone(), vec![*left, *right]),
        ))),
        _ => Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr::new(
            left, op, right,
        )))),
    }
}

impl AnalyzerRule for CheckedArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = merge_schema(&node.inputs());
            node.map_expressions(|e| rewrite(e, &schema))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "checked_arithmetic"
    }
}
