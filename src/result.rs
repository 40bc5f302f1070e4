//! Statement results and their JSON form (SPEC section 7).
//!
//! Values: integers are JSON numbers except Int64/UInt64 outside ±2^53 (strings); timestamps
//! ISO-8601 UTC; dates `YYYY-MM-DD`; binary base64; decimals strings (exact); NULL `null`.
//!
//! May import: `error` only (a ground-floor module).

use std::sync::Arc;

use base64::Engine as _;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    Schema, SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::scalar::ScalarValue;
use serde::Serialize;
use serde_json::{Number, Value};

use crate::error::Result;

/// The SQL name of an Arrow type in result schemas (SPEC section 7 `data_type`).
pub fn arrow_sql_name(dt: &DataType) -> String {
    match dt {
        DataType::Null => "NULL".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => "INT".into(),
        DataType::UInt64 => "BIGINT".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "TEXT".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTEA".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        other => other.to_string().to_uppercase(),
    }
}

/// The outcome of one statement.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Result columns (empty for DDL/DML).
    pub schema: SchemaRef,
    /// Result rows (empty for DDL/DML).
    pub batches: Vec<RecordBatch>,
    /// Rows returned (queries) or affected (DML).
    pub row_count: usize,
    /// Human-readable outcome for DDL/DML, e.g. `Inserted 2 row(s)`.
    pub message: Option<String>,
}

/// One column of a result schema in JSON.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// SQL type name (`BIGINT`, `TEXT`, ...).
    pub data_type: String,
    /// 0-based position.
    pub index: usize,
}

const MAX_SAFE_INT: i64 = (1 << 53) - 1;

/// The type of timestamp columns in metadata results (`created_at`, ...): milliseconds, UTC.
pub const TIMESTAMP_MS: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

/// A metadata timestamp (ms since the Unix epoch; None is NULL) as a [`TIMESTAMP_MS`] value.
pub fn timestamp_ms(ms: impl Into<Option<i64>>) -> ScalarValue {
    ScalarValue::TimestampMillisecond(ms.into(), None)
}

impl QueryResult {
    /// A DDL/DML result carrying only a message and a count.
    pub fn message(message: impl Into<String>, row_count: usize) -> QueryResult {
        QueryResult {
            schema: Arc::new(Schema::empty()),
            batches: vec![],
            row_count,
            message: Some(message.into()),
        }
    }

    /// A row result built from column specs and rows of scalars.
    ///
    /// # Errors
    /// Arrow errors if a row does not match the column types.
    pub fn rows(columns: &[(&str, DataType)], rows: Vec<Vec<ScalarValue>>) -> Result<QueryResult> {
        let batch = build_batch(columns, rows)?;
        Ok(QueryResult {
            schema: batch.schema(),
            row_count: batch.num_rows(),
            batches: vec![batch],
            message: None,
        })
    }

    /// True for DDL/DML results.
    pub fn is_message(&self) -> bool {
        self.message.is_some()
    }

    /// The schema as SPEC section 7 `schema` entries.
    pub fn columns(&self) -> Vec<ColumnInfo> {
        self.schema
            .fields()
            .iter()
            .enumerate()
            .map(|(index, f)| ColumnInfo {
                name: f.name().clone(),
                data_type: arrow_sql_name(f.data_type()),
                index,
            })
            .collect()
    }

    /// All rows as JSON arrays.
    pub fn json_rows(&self) -> Vec<Vec<Value>> {
        let mut out = Vec::with_capacity(self.row_count);
        for b in &self.batches {
            for r in 0..b.num_rows() {
                out.push(
                    b.columns()
                        .iter()
                        .map(|c| json_value(c.as_ref(), r))
                        .collect(),
                );
            }
        }
        out
    }
}

/// Builds one batch from column specs and rows of scalars (all columns nullable).
///
/// # Errors
/// Arrow errors if a row does not match the column types.
pub fn build_batch(
    columns: &[(&str, DataType)],
    rows: Vec<Vec<ScalarValue>>,
) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, t)| datafusion::arrow::datatypes::Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let mut arrays = Vec::with_capacity(columns.len());
    for (i, (_, t)) in columns.iter().enumerate() {
        arrays.push(if rows.is_empty() {
            datafusion::arrow::array::new_empty_array(t)
        } else {
            ScalarValue::iter_to_array(
                rows.iter()
                    .map(|r| r.get(i).cloned().unwrap_or(ScalarValue::Null)),
            )?
        });
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// A 64-bit integer as JSON: a number within ±(2^53 - 1), else a string of its digits, so no
/// client parses it into a different value (SPEC section 7).
pub fn json_int(v: i64) -> Value {
    if (-MAX_SAFE_INT..=MAX_SAFE_INT).contains(&v) {
        Value::from(v)
    } else {
        Value::String(v.to_string())
    }
}

fn float(v: f64) -> Value {
    Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(v.to_string()))
}

fn iso(ts: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    ts.map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
        .unwrap_or(Value::Null)
}

/// One cell as JSON per the rules in the module docs.
pub fn json_value(a: &dyn Array, r: usize) -> Value {
    if a.is_null(r) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Boolean => Value::Bool(a.as_boolean().value(r)),
        DataType::Int8 => json_int(a.as_primitive::<Int8Type>().value(r).into()),
        DataType::Int16 => json_int(a.as_primitive::<Int16Type>().value(r).into()),
        DataType::Int32 => json_int(a.as_primitive::<Int32Type>().value(r).into()),
        DataType::Int64 => json_int(a.as_primitive::<Int64Type>().value(r)),
        DataType::UInt8 => json_int(a.as_primitive::<UInt8Type>().value(r).into()),
        DataType::UInt16 => json_int(a.as_primitive::<UInt16Type>().value(r).into()),
        DataType::UInt32 => json_int(a.as_primitive::<UInt32Type>().value(r).into()),
        DataType::UInt64 => {
            let v = a.as_primitive::<UInt64Type>().value(r);
            if v <= MAX_SAFE_INT as u64 {
                Value::from(v)
            } else {
                Value::String(v.to_string())
            }
        }
        DataType::Float32 => float(a.as_primitive::<Float32Type>().value(r).into()),
        DataType::Float64 => float(a.as_primitive::<Float64Type>().value(r)),
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(r).to_string()),
        DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(r).to_string()),
        DataType::Utf8View => Value::String(a.as_string_view().value(r).to_string()),
        DataType::Binary => Value::String(
            base64::engine::general_purpose::STANDARD.encode(a.as_binary::<i32>().value(r)),
        ),
        DataType::LargeBinary => Value::String(
            base64::engine::general_purpose::STANDARD.encode(a.as_binary::<i64>().value(r)),
        ),
        DataType::BinaryView => Value::String(
            base64::engine::general_purpose::STANDARD.encode(a.as_binary_view().value(r)),
        ),
        DataType::Date32 => {
            let d = a.as_primitive::<Date32Type>().value(r);
            chrono::DateTime::from_timestamp(i64::from(d).saturating_mul(86_400), 0)
                .map(|t| Value::String(t.format("%Y-%m-%d").to_string()))
                .unwrap_or(Value::Null)
        }
        DataType::Timestamp(unit, _) => {
            let t = match unit {
                TimeUnit::Second => chrono::DateTime::from_timestamp(
                    a.as_primitive::<TimestampSecondType>().value(r),
                    0,
                ),
                TimeUnit::Millisecond => chrono::DateTime::from_timestamp_millis(
                    a.as_primitive::<TimestampMillisecondType>().value(r),
                ),
                TimeUnit::Microsecond => chrono::DateTime::from_timestamp_micros(
                    a.as_primitive::<TimestampMicrosecondType>().value(r),
                ),
                TimeUnit::Nanosecond => Some(chrono::DateTime::from_timestamp_nanos(
                    a.as_primitive::<TimestampNanosecondType>().value(r),
                )),
            };
            iso(t)
        }
        _ => array_value_to_string(a, r)
            .map(Value::String)
            .unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};

    #[test]
    fn big_integers_become_strings() {
        let a = Int64Array::from(vec![1, 1 << 53, -(1 << 53)]);
        assert_eq!(json_value(&a, 0), Value::from(1));
        assert_eq!(json_value(&a, 1), Value::String("9007199254740992".into()));
        assert_eq!(json_value(&a, 2), Value::String("-9007199254740992".into()));
    }

    #[test]
    fn timestamps_are_iso_utc() {
        let a = TimestampMillisecondArray::from(vec![1_700_000_000_123]);
        assert_eq!(
            json_value(&a, 0),
            Value::String("2023-11-14T22:13:20.123Z".into())
        );
    }
}
