//! String functions that cannot build unbounded values.
//!
//! A few functions turn small inputs into large outputs: `repeat('x', 2000000000)`,
//! `lpad('x', 2000000000)`, `replace`, `regexp_replace`, `concat`, `concat_ws` and the `||`
//! operator (chained). DataFusion evaluates a function over a whole batch in one step, outside
//! the memory pool and without yielding, so one such call can allocate gigabytes, hold a query
//! thread past every deadline, or overflow Arrow's 32-bit offsets and panic (measured:
//! `string_agg(repeat('x', 100000000), ',')`). Here each of them first computes, from its
//! arguments, an upper bound of the bytes it would produce for the batch, and refuses with
//! `LIMIT_EXCEEDED` above [`MAX_BUILT_BYTES`].
//!
//! [`bound_string_functions`] replaces the registered functions with bounded wrappers (same
//! names, same behaviour otherwise); [`CONCAT_OP`] is the bounded `||` that
//! [`super::checked::CheckedArithmetic`] substitutes for the operator.
//!
//! May import: the ground floor. Never `engine/` or the front ends.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::concat_elements::concat_elements_utf8;
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue, exec_err, plan_err};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::udf_eq::UdfEq;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

use crate::error::Result;

/// Most bytes one call of a string-building function may produce for one batch of rows.
pub const MAX_BUILT_BYTES: u64 = 64 << 20;

/// How a function's output size is bounded by its arguments, per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: `len(s) * n`.
    Repeat,
    /// `lpad/rpad(s, n [, fill])`: `4 * n` (n characters of at most 4 bytes).
    Pad,
    /// `replace(s, from, to)`: `(len(s) + 1) * len(to) + len(s)`.
    Replace,
    /// `regexp_replace(s, pattern, replacement [, flags])`: every match (at most
    /// `len(s) + 1`) becomes the replacement, whose group references (at most half its
    /// length) together repeat at most `len(s)` bytes each.
    RegexpReplace,
    /// `concat(...)`, `||`: the sum of the arguments.
    Sum,
    /// `concat_ws(sep, ...)`: the sum of the arguments plus the separator once per argument.
    SumWithSeparator,
}

/// The functions [`bound_string_functions`] wraps.
const BOUNDED: [(&str, Growth); 7] = [
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("replace", Growth::Replace),
    ("regexp_replace", Growth::RegexpReplace),
    ("concat", Growth::Sum),
    ("concat_ws", Growth::SumWithSeparator),
];

/// Per-row sizes of one argument: its byte length (strings) and its value clamped at 0
/// (integers); NULL and other types count 0.
enum Sizes {
    /// A scalar: the same for every row.
    Const { len: u64, n: u64 },
    /// An array: one entry per row.
    PerRow { len: Vec<u64>, n: Vec<u64> },
}

impl Sizes {
    fn of(arg: &ColumnarValue) -> Sizes {
        match arg {
            ColumnarValue::Scalar(s) => {
                let len = match s {
                    ScalarValue::Utf8(Some(v))
                    | ScalarValue::LargeUtf8(Some(v))
                    | ScalarValue::Utf8View(Some(v)) => v.len() as u64,
                    _ => 0,
                };
                let n = match s.cast_to(&DataType::Int64) {
                    Ok(ScalarValue::Int64(Some(v))) => u64::try_from(v).unwrap_or(0),
                    _ => 0,
                };
                Sizes::Const { len, n }
            }
            ColumnarValue::Array(a) => {
                let rows = a.len();
                let len: Vec<u64> = match a.data_type() {
                    DataType::Utf8 => a.as_string::<i32>().iter().map(opt_len).collect(),
                    DataType::LargeUtf8 => a.as_string::<i64>().iter().map(opt_len).collect(),
                    DataType::Utf8View => a.as_string_view().iter().map(opt_len).collect(),
                    _ => vec![0; rows],
                };
                let n: Vec<u64> = match cast(a, &DataType::Int64) {
                    Ok(c) if a.data_type().is_integer() => c
                        .as_primitive::<Int64Type>()
                        .iter()
                        .map(|v| v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
                        .collect(),
                    _ => vec![0; rows],
                };
                Sizes::PerRow { len, n }
            }
        }
    }

    fn len(&self, row: usize) -> u64 {
        match self {
            Sizes::Const { len, .. } => *len,
            Sizes::PerRow { len, .. } => len.get(row).copied().unwrap_or(0),
        }
    }

    fn n(&self, row: usize) -> u64 {
        match self {
            Sizes::Const { n, .. } => *n,
            Sizes::PerRow { n, .. } => n.get(row).copied().unwrap_or(0),
        }
    }
}

fn opt_len(v: Option<&str>) -> u64 {
    v.map_or(0, |v| v.len() as u64)
}

impl Growth {
    /// Upper bound of the bytes produced for all `rows` rows (saturating).
    fn bound(self, args: &[ColumnarValue], rows: usize) -> u64 {
        let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { rows.max(1) };
        let sizes: Vec<Sizes> = args.iter().map(Sizes::of).collect();
        let mut total = 0u64;
        for row in 0..rows {
            let len = |i: usize| sizes.get(i).map_or(0, |s| s.len(row));
            let n = |i: usize| sizes.get(i).map_or(0, |s| s.n(row));
            let one = match self {
                Growth::Repeat => len(0).saturating_mul(n(1)),
                Growth::Pad => n(1).saturating_mul(4),
                Growth::Replace => len(0)
                    .saturating_add(1)
                    .saturating_mul(len(2))
                    .saturating_add(len(0)),
                Growth::RegexpReplace => {
                    let (s, repl) = (len(0), len(2));
                    s.saturating_add(1)
                        .saturating_mul(repl)
                        .saturating_add((repl / 2).saturating_add(1).saturating_mul(s))
                }
                Growth::Sum => (0..sizes.len()).map(len).fold(0u64, u64::saturating_add),
                Growth::SumWithSeparator => {
                    let parts = (0..sizes.len()).map(len).fold(0u64, u64::saturating_add);
                    parts.saturating_add(len(0).saturating_mul(sizes.len() as u64))
                }
            };
            total = total.saturating_add(one);
            if total > MAX_BUILT_BYTES {
                break;
            }
        }
        total
    }

    /// Fails when the bound exceeds [`MAX_BUILT_BYTES`].
    fn check(self, name: &str, args: &[ColumnarValue], rows: usize) -> DfResult<()> {
        let bound = self.bound(args, rows);
        if bound > MAX_BUILT_BYTES {
            return Err(DataFusionError::External(Box::new(
                crate::error::Error::LimitExceeded(format!(
                    "{name} would build more than {MAX_BUILT_BYTES} bytes in one step (the \
                     limit on values built by string functions)"
                )),
            )));
        }
        Ok(())
    }
}

/// A registered function with its output bounded (see the module docs); otherwise it behaves
/// exactly like the function it wraps.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: UdfEq<Arc<dyn ScalarUDFImpl>>,
    growth: Growth,
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        self.inner.schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        self.growth
            .check(self.inner.name(), &args.args, args.number_rows)?;
        self.inner.invoke_with_args(args)
    }
}

/// Replaces the string-building functions of `state` with bounded ones (see the module docs).
///
/// # Errors
/// Registration failures.
pub fn bound_string_functions(state: &mut SessionState) -> Result<()> {
    for (name, growth) in BOUNDED {
        let Some(inner) = state.scalar_functions().get(name).cloned() else {
            continue;
        };
        state.register_udf(Arc::new(ScalarUDF::new_from_impl(Bounded {
            inner: UdfEq::from(inner.inner().clone()),
            growth,
        })))?;
    }
    Ok(())
}

/// `a || b` on strings with the `||` semantics (NULL if either side is NULL) and its output
/// bounded like `concat`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConcatOp {
    signature: Signature,
}

/// The bounded `||` operator as a function.
pub static CONCAT_OP: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
    Arc::new(ScalarUDF::new_from_impl(ConcatOp {
        signature: Signature::any(2, Volatility::Immutable),
    }))
});

impl ScalarUDFImpl for ConcatOp {
    fn name(&self) -> &str {
        "kalam_concat_op"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        match arg_types {
            [a, b] if a == b => Ok(a.clone()),
            _ => plan_err!("|| needs two strings of one type"),
        }
    }

    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        Ok(match args {
            [a, b] => format!("{} || {}", a.schema_name(), b.schema_name()),
            _ => self.name().to_string(),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Growth::Sum.check("||", &args.args, args.number_rows)?;
        let rows = args.number_rows;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let [a, b] = args.args.as_slice() else {
            return exec_err!("|| takes two arguments");
        };
        // All-scalar calls evaluate one row (a batch may have none: `number_rows` can be 0).
        let rows = if all_scalar { 1 } else { rows };
        let output_type = args.return_type().clone();
        let as_utf8 = |v: &ColumnarValue| -> DfResult<ArrayRef> {
            Ok(cast(&v.to_array(rows)?, &DataType::Utf8)?)
        };
        let (a, b) = (as_utf8(a)?, as_utf8(b)?);
        let joined = concat_elements_utf8(a.as_string::<i32>(), b.as_string::<i32>())?;
        let out = cast(&joined, &output_type)?;
        if all_scalar && !out.is_empty() {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.into())))
    }

    fn int(n: i64) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(n)))
    }

    #[test]
    fn bounds_follow_the_arguments() {
        assert_eq!(Growth::Repeat.bound(&[text("ab"), int(5)], 1), 10);
        assert_eq!(Growth::Repeat.bound(&[text("ab"), int(-5)], 1), 0);
        assert_eq!(Growth::Pad.bound(&[text("x"), int(10)], 1), 40);
        assert_eq!(Growth::Sum.bound(&[text("ab"), text("cde")], 1), 5);
        let ws = [text(","), text("ab"), text("cde")];
        assert_eq!(Growth::SumWithSeparator.bound(&ws, 1), 9);
        assert_eq!(
            Growth::Replace.bound(&[text("aaa"), text("a"), text("bb")], 1),
            11
        );
        let huge = [text("ab"), int(i64::MAX)];
        assert!(Growth::Repeat.bound(&huge, 1) > MAX_BUILT_BYTES);
        assert!(Growth::Repeat.check("repeat", &huge, 1).is_err());
        // Per batch: a modest value on many rows adds up.
        let col = ColumnarValue::Array(Arc::new(datafusion::arrow::array::StringArray::from(
            vec!["x"; 10],
        )));
        assert_eq!(Growth::Repeat.bound(&[col, int(7)], 10), 70);
    }
}
