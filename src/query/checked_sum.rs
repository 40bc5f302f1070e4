//! `SUM` over integers that fails on overflow, as in PostgreSQL.
//!
//! DataFusion's `sum` adds integers with wrapping arithmetic: the sum of `9223372036854775807`
//! and `1` comes out as `-9223372036854775808`. [`CHECKED_SUM`] replaces it for `BIGINT` and
//! `BIGINT UNSIGNED` arguments (type coercion has already widened the smaller integer types)
//! — in aggregates with or without GROUP BY and in window frames — while keeping its name, so
//! result columns are still called `sum(t.x)`. It adds in 128 bits, so no intermediate value
//! (a partial sum of one partition, a sliding frame between an added and a retracted row) can
//! overflow, and fails only when the sum it returns does not fit its 64-bit type: PostgreSQL
//! returns a `numeric` there; we keep SUM's type, as the checked operators do
//! ([`super::checked`]), and refuse the value instead of returning a wrong one.
//!
//! `SUM(DISTINCT …)` keeps DataFusion's accumulator (it still wraps).
//!
//! May import: the ground floor. Never `engine/` or the front ends.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int64Array, UInt64Array,
};
use datafusion::arrow::datatypes::{
    DECIMAL128_MAX_PRECISION, DataType, Decimal128Type, Field, FieldRef, Int64Type, UInt64Type,
};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, ReversedUDAF,
    Signature, TypeSignature, Volatility,
};

/// The checked `sum` (see the module docs).
pub static CHECKED_SUM: LazyLock<Arc<AggregateUDF>> = LazyLock::new(|| {
    Arc::new(AggregateUDF::new_from_impl(CheckedSum {
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Int64]),
                TypeSignature::Exact(vec![DataType::UInt64]),
            ],
            Volatility::Immutable,
        ),
    }))
});

/// Whether `sum` over `t` is replaced by [`CHECKED_SUM`].
pub fn covers(t: &DataType) -> bool {
    matches!(t, DataType::Int64 | DataType::UInt64)
}

/// The partial state: a 128-bit integer.
const STATE_TYPE: DataType = DataType::Decimal128(DECIMAL128_MAX_PRECISION, 0);

#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedSum {
    signature: Signature,
}

impl AggregateUDFImpl for CheckedSum {
    fn name(&self) -> &str {
        "sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        match arg_types {
            [t] if covers(t) => Ok(t.clone()),
            _ => plan_err!("the checked sum takes one BIGINT or BIGINT UNSIGNED argument"),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(SumAccumulator {
            output: Output::of(args.return_field.data_type())?,
            sum: 0,
            count: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "sum"),
            STATE_TYPE,
            true,
        ))])
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(SumGroups {
            output: Output::of(args.return_field.data_type())?,
            sums: Vec::new(),
            seen: Vec::new(),
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        self.accumulator(args)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }
}

/// The 64-bit type a sum is returned as.
#[derive(Debug, Clone, Copy)]
enum Output {
    Signed,
    Unsigned,
}

impl Output {
    fn of(t: &DataType) -> DfResult<Output> {
        match t {
            DataType::Int64 => Ok(Output::Signed),
            DataType::UInt64 => Ok(Output::Unsigned),
            other => plan_err!("the checked sum cannot return {other}"),
        }
    }

    /// `sum` as a value of the output type, or the overflow error.
    fn scalar(self, sum: Option<i128>) -> DfResult<ScalarValue> {
        Ok(match self {
            Output::Signed => ScalarValue::Int64(sum.map(|s| self.fit_i64(s)).transpose()?),
            Output::Unsigned => ScalarValue::UInt64(sum.map(|s| self.fit_u64(s)).transpose()?),
        })
    }

    fn fit_i64(self, sum: i128) -> DfResult<i64> {
        i64::try_from(sum).or_else(|_| overflow(sum, "BIGINT"))
    }

    fn fit_u64(self, sum: i128) -> DfResult<u64> {
        u64::try_from(sum).or_else(|_| overflow(sum, "BIGINT UNSIGNED"))
    }

    /// `sums` (None: no non-NULL value) as an array of the output type.
    fn array(self, sums: Vec<Option<i128>>) -> DfResult<ArrayRef> {
        Ok(match self {
            Output::Signed => Arc::new(
                sums.into_iter()
                    .map(|s| s.map(|s| self.fit_i64(s)).transpose())
                    .collect::<DfResult<Int64Array>>()?,
            ),
            Output::Unsigned => Arc::new(
                sums.into_iter()
                    .map(|s| s.map(|s| self.fit_u64(s)).transpose())
                    .collect::<DfResult<UInt64Array>>()?,
            ),
        })
    }
}

fn overflow<T>(sum: i128, type_name: &str) -> DfResult<T> {
    exec_err!("{type_name} out of range: SUM is {sum}")
}

/// Adds `b` to `a`, failing past 128 bits (2^64 maximal 64-bit values).
fn add(a: i128, b: i128) -> DfResult<i128> {
    a.checked_add(b)
        .map_or_else(|| exec_err!("SUM out of range (beyond 128 bits)"), Ok)
}

/// The values of an argument or state column as 128-bit integers (None for NULL).
fn values(array: &ArrayRef) -> DfResult<Box<dyn Iterator<Item = Option<i128>> + '_>> {
    Ok(match array.data_type() {
        DataType::Int64 => Box::new(
            array
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(i128::from)),
        ),
        DataType::UInt64 => Box::new(
            array
                .as_primitive::<UInt64Type>()
                .iter()
                .map(|v| v.map(i128::from)),
        ),
        DataType::Decimal128(_, 0) => Box::new(array.as_primitive::<Decimal128Type>().iter()),
        other => return exec_err!("the checked sum cannot add {other}"),
    })
}

fn first(arrays: &[ArrayRef]) -> DfResult<&ArrayRef> {
    match arrays.first() {
        Some(a) => Ok(a),
        None => exec_err!("the checked sum got no column"),
    }
}

/// One sum (no GROUP BY, or one window frame: rows leave it through `retract_batch`).
#[derive(Debug)]
struct SumAccumulator {
    output: Output,
    sum: i128,
    /// Non-NULL values in the sum: none means the sum is NULL.
    count: u64,
}

impl SumAccumulator {
    fn add_all(&mut self, array: &ArrayRef, sign: i128) -> DfResult<()> {
        for v in values(array)?.flatten() {
            self.sum = add(self.sum, v.saturating_mul(sign))?;
            self.count = if sign > 0 {
                self.count.saturating_add(1)
            } else {
                self.count.saturating_sub(1)
            };
        }
        Ok(())
    }

    fn current(&self) -> Option<i128> {
        (self.count > 0).then_some(self.sum)
    }
}

impl Accumulator for SumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.add_all(first(values)?, 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.add_all(first(values)?, -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.add_all(first(states)?, 1)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Decimal128(
            self.current(),
            DECIMAL128_MAX_PRECISION,
            0,
        )])
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        self.output.scalar(self.current())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// Whether the aggregate's FILTER admits `row`.
fn admitted(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

/// `sums` as the partial state column.
fn state_array(sums: impl IntoIterator<Item = Option<i128>>) -> DfResult<ArrayRef> {
    let state = sums
        .into_iter()
        .collect::<Decimal128Array>()
        .with_precision_and_scale(DECIMAL128_MAX_PRECISION, 0)?;
    Ok(Arc::new(state))
}

/// Sums per group (GROUP BY).
#[derive(Debug)]
struct SumGroups {
    output: Output,
    sums: Vec<i128>,
    /// Whether each group has seen a non-NULL value.
    seen: Vec<bool>,
}

impl SumGroups {
    fn add_rows(
        &mut self,
        array: &ArrayRef,
        groups: &[usize],
        filter: Option<&BooleanArray>,
        total: usize,
    ) -> DfResult<()> {
        self.sums.resize(total, 0);
        self.seen.resize(total, false);
        for (row, (v, &g)) in values(array)?.zip(groups).enumerate() {
            let Some(v) = v.filter(|_| admitted(filter, row)) else {
                continue;
            };
            match (self.sums.get_mut(g), self.seen.get_mut(g)) {
                (Some(sum), Some(seen)) => {
                    *sum = add(*sum, v)?;
                    *seen = true;
                }
                _ => return exec_err!("group {g} beyond the {total} groups"),
            }
        }
        Ok(())
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<Option<i128>> {
        let sums = emit_to.take_needed(&mut self.sums);
        let seen = emit_to.take_needed(&mut self.seen);
        sums.into_iter()
            .zip(seen)
            .map(|(s, seen)| seen.then_some(s))
            .collect()
    }
}

impl GroupsAccumulator for SumGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.add_rows(first(values)?, group_indices, opt_filter, total_num_groups)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.add_rows(first(values)?, group_indices, None, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let sums = self.take(emit_to);
        self.output.array(sums)
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        Ok(vec![state_array(self.take(emit_to))?])
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let admitted_values = self::values(first(values)?)?
            .enumerate()
            .map(|(row, v)| v.filter(|_| admitted(opt_filter, row)));
        Ok(vec![state_array(admitted_values)?])
    }

    fn size(&self) -> usize {
        self.sums
            .capacity()
            .saturating_mul(std::mem::size_of::<i128>())
            .saturating_add(self.seen.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int64(values: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    fn decimals(array: &ArrayRef) -> Vec<Option<i128>> {
        array.as_primitive::<Decimal128Type>().iter().collect()
    }

    #[test]
    fn groups_pass_exact_partial_state_and_refuse_an_overflowing_result() {
        let groups = || SumGroups {
            output: Output::Signed,
            sums: Vec::new(),
            seen: Vec::new(),
        };
        let mut partial = groups();
        let input = int64(&[Some(i64::MAX), Some(1), Some(-5), None]);
        partial
            .update_batch(std::slice::from_ref(&input), &[0, 0, 1, 2], None, 3)
            .unwrap();
        let state = partial.state(EmitTo::All).unwrap();
        let max = i128::from(i64::MAX);
        assert_eq!(
            decimals(&state[0]),
            vec![Some(max + 1), Some(-5), None],
            "a partial sum beyond 64 bits is kept exactly"
        );
        // Rows passed straight on as state honour the FILTER.
        let filter = BooleanArray::from(vec![true, false, true, true]);
        let direct = groups().convert_to_state(&[input], Some(&filter)).unwrap();
        assert_eq!(decimals(&direct[0]), vec![Some(max), None, Some(-5), None]);
        // Final: group 0 comes back into range, group 1 overflows.
        let mut last = groups();
        last.merge_batch(&state, &[0, 1, 2], 3).unwrap();
        last.merge_batch(
            &[state_array([Some(-2), None, None]).unwrap()],
            &[0, 1, 2],
            3,
        )
        .unwrap();
        let sums = last.evaluate(EmitTo::All).unwrap();
        assert_eq!(
            sums.as_primitive::<Int64Type>().iter().collect::<Vec<_>>(),
            vec![Some(i64::MAX - 1), Some(-5), None]
        );
        let mut over = groups();
        over.merge_batch(&state, &[0, 1, 2], 3).unwrap();
        let err = over.evaluate(EmitTo::All).unwrap_err().to_string();
        assert!(
            err.contains("BIGINT out of range: SUM is 9223372036854775808"),
            "{err}"
        );
    }

    #[test]
    fn a_sliding_sum_retracts_and_an_unsigned_sum_stays_unsigned() {
        let mut frame = SumAccumulator {
            output: Output::Signed,
            sum: 0,
            count: 0,
        };
        frame
            .update_batch(&[int64(&[Some(i64::MAX), Some(i64::MAX)])])
            .unwrap();
        assert!(frame.evaluate().is_err());
        frame.retract_batch(&[int64(&[Some(i64::MAX)])]).unwrap();
        assert_eq!(
            frame.evaluate().unwrap(),
            ScalarValue::Int64(Some(i64::MAX))
        );
        frame.retract_batch(&[int64(&[Some(i64::MAX)])]).unwrap();
        assert_eq!(
            frame.evaluate().unwrap(),
            ScalarValue::Int64(None),
            "empty frame"
        );

        let mut unsigned = SumAccumulator {
            output: Output::Unsigned,
            sum: 0,
            count: 0,
        };
        let big: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX - 1, 1]));
        unsigned.update_batch(std::slice::from_ref(&big)).unwrap();
        assert_eq!(
            unsigned.evaluate().unwrap(),
            ScalarValue::UInt64(Some(u64::MAX))
        );
        unsigned.update_batch(&[big]).unwrap();
        let err = unsigned.evaluate().unwrap_err().to_string();
        assert!(err.contains("BIGINT UNSIGNED out of range"), "{err}");
    }
}
