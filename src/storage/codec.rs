//! Compact binary row encoding for the `rows` column family (not JSON: SPEC section 5).
//!
//! ```text
//! value  = seq: u64 LE | flags: u8 (bit 0 = deleted) | schema_version: u32 LE | cell*
//! cell   = column_id: varint | len: varint | payload (len bytes)
//! ```
//! NULL cells are simply absent. Payloads are little-endian fixed width for numbers
//! (bool 1, i8 1, i16 2, i32/f32/date 4, i64/f64/timestamp 8, decimal128 16) and raw bytes for
//! text and binary. Cells are keyed by the column's stable id, so a renamed column keeps its data,
//! a dropped one is skipped and an added one reads as NULL or its DEFAULT.
//!
//! May import: the ground floor. Never anything above `storage/`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType,
};

use crate::error::{Error, Result};

/// Fixed part of every stored row version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowHeader {
    /// The `_seq` of the write that produced this version.
    pub seq: u64,
    /// True for a tombstone (soft delete).
    pub deleted: bool,
    /// The table schema version the row was written with.
    pub schema_version: u32,
}

/// Bytes of [`RowHeader`] on disk.
pub const HEADER_LEN: usize = 13;

fn corrupt() -> Error {
    Error::Internal("corrupt row encoding".to_string())
}

/// Writes the header of a row version into `buf` (which is cleared first).
pub fn encode_header(buf: &mut Vec<u8>, h: RowHeader) {
    buf.clear();
    buf.extend_from_slice(&h.seq.to_le_bytes());
    buf.push(u8::from(h.deleted));
    buf.extend_from_slice(&h.schema_version.to_le_bytes());
}

/// Reads the header of a stored row.
///
/// # Errors
/// [`Error::Internal`] if `v` is shorter than [`HEADER_LEN`].
pub fn decode_header(v: &[u8]) -> Result<RowHeader> {
    let (Some(seq), Some(&flags), Some(version)) = (v.get(0..8), v.get(8), v.get(9..13)) else {
        return Err(corrupt());
    };
    Ok(RowHeader {
        seq: u64::from_le_bytes(seq.try_into().map_err(|_| corrupt())?),
        deleted: flags & 1 == 1,
        schema_version: u32::from_le_bytes(version.try_into().map_err(|_| corrupt())?),
    })
}

/// The low 7 bits of `v`.
fn low7(v: u64) -> u8 {
    v.to_le_bytes()[0] & 0x7f
}

fn push_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(low7(v) | 0x80);
        v >>= 7;
    }
    buf.push(low7(v));
}

fn read_varint(v: &[u8], pos: &mut usize) -> Result<u64> {
    let mut out = 0u64;
    let mut shift = 0u32;
    loop {
        let b = *v.get(*pos).ok_or_else(corrupt)?;
        *pos = pos.checked_add(1).ok_or_else(corrupt)?;
        out |= u64::from(b & 0x7f).checked_shl(shift).ok_or_else(corrupt)?;
        if b & 0x80 == 0 {
            return Ok(out);
        }
        shift = shift.saturating_add(7);
        if shift > 63 {
            return Err(corrupt());
        }
    }
}

/// Appends the payload of `array[row]` (fixed-width little-endian or raw bytes, no column id
/// and no length) to `buf`. Returns false, appending nothing, for NULL.
///
/// # Errors
/// [`Error::Internal`] for an Arrow type KalamDB never stores.
pub fn push_payload(buf: &mut Vec<u8>, array: &dyn Array, row: usize) -> Result<bool> {
    if array.is_null(row) {
        return Ok(false);
    }
    match array.data_type() {
        DataType::Boolean => buf.push(u8::from(array.as_boolean().value(row))),
        DataType::Int8 => {
            buf.extend_from_slice(&array.as_primitive::<Int8Type>().value(row).to_le_bytes())
        }
        DataType::Int16 => {
            buf.extend_from_slice(&array.as_primitive::<Int16Type>().value(row).to_le_bytes())
        }
        DataType::Int32 => {
            buf.extend_from_slice(&array.as_primitive::<Int32Type>().value(row).to_le_bytes())
        }
        DataType::Int64 => {
            buf.extend_from_slice(&array.as_primitive::<Int64Type>().value(row).to_le_bytes())
        }
        DataType::Float32 => {
            buf.extend_from_slice(&array.as_primitive::<Float32Type>().value(row).to_le_bytes())
        }
        DataType::Float64 => {
            buf.extend_from_slice(&array.as_primitive::<Float64Type>().value(row).to_le_bytes())
        }
        DataType::Decimal128(_, _) => buf.extend_from_slice(
            &array
                .as_primitive::<Decimal128Type>()
                .value(row)
                .to_le_bytes(),
        ),
        DataType::Date32 => {
            buf.extend_from_slice(&array.as_primitive::<Date32Type>().value(row).to_le_bytes())
        }
        DataType::Timestamp(TimeUnit::Microsecond, None) => buf.extend_from_slice(
            &array
                .as_primitive::<TimestampMicrosecondType>()
                .value(row)
                .to_le_bytes(),
        ),
        DataType::Utf8 => buf.extend_from_slice(array.as_string::<i32>().value(row).as_bytes()),
        DataType::Binary => buf.extend_from_slice(array.as_binary::<i32>().value(row)),
        other => return Err(Error::Internal(format!("cannot store Arrow type {other}"))),
    }
    Ok(true)
}

/// Appends one cell (`column_id`, value of `array[row]`) unless the value is NULL.
///
/// # Errors
/// [`Error::Internal`] for an Arrow type KalamDB never stores.
pub fn push_cell(buf: &mut Vec<u8>, column_id: u32, array: &dyn Array, row: usize) -> Result<()> {
    if array.is_null(row) {
        return Ok(());
    }
    push_varint(buf, u64::from(column_id));
    let start = buf.len();
    buf.push(0); // one-byte length placeholder, fixed up below
    push_payload(buf, array, row)?;
    let payload_start = start.saturating_add(1);
    let len = buf.len().saturating_sub(payload_start);
    match (u8::try_from(len), buf.get_mut(start)) {
        (Ok(short), Some(slot)) if short < 0x80 => *slot = short,
        _ => {
            // Rare (long text/binary): re-encode the length as a multi-byte varint.
            let payload = buf.split_off(payload_start);
            buf.truncate(start);
            push_varint(buf, u64::try_from(len).map_err(|_| corrupt())?);
            buf.extend_from_slice(&payload);
        }
    }
    Ok(())
}

/// Calls `f(column_id, payload)` for every non-NULL cell of an encoded row.
///
/// # Errors
/// [`Error::Internal`] on a truncated or malformed encoding.
pub fn for_each_cell(v: &[u8], mut f: impl FnMut(u32, &[u8]) -> Result<()>) -> Result<()> {
    let mut pos = HEADER_LEN;
    while pos < v.len() {
        let id = read_varint(v, &mut pos)?;
        let len = usize::try_from(read_varint(v, &mut pos)?).map_err(|_| corrupt())?;
        let end = pos.checked_add(len).ok_or_else(corrupt)?;
        let payload = v.get(pos..end).ok_or_else(corrupt)?;
        f(u32::try_from(id).map_err(|_| corrupt())?, payload)?;
        pos = end;
    }
    Ok(())
}

/// An Arrow builder for one stored column type, fed with cell payloads.
#[derive(Debug)]
pub enum ColumnBuilder {
    /// BOOLEAN
    Bool(BooleanBuilder),
    /// TINYINT
    I8(Int8Builder),
    /// SMALLINT
    I16(Int16Builder),
    /// INT
    I32(Int32Builder),
    /// BIGINT
    I64(Int64Builder),
    /// FLOAT
    F32(Float32Builder),
    /// DOUBLE
    F64(Float64Builder),
    /// DECIMAL(p, s)
    Decimal(Decimal128Builder, u8, i8),
    /// DATE
    Date(Date32Builder),
    /// TIMESTAMP (microseconds, no zone)
    Timestamp(TimestampMicrosecondBuilder),
    /// TEXT, JSON
    Text(StringBuilder),
    /// BYTEA
    Binary(BinaryBuilder),
    /// `_updated` (milliseconds)
    TimestampMs(TimestampMillisecondBuilder),
}

fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N]> {
    b.try_into().map_err(|_| corrupt())
}

impl ColumnBuilder {
    /// A builder for Arrow type `dt`.
    ///
    /// # Errors
    /// [`Error::Internal`] for a type KalamDB never stores.
    pub fn new(dt: &DataType) -> Result<ColumnBuilder> {
        Ok(match dt {
            DataType::Boolean => ColumnBuilder::Bool(BooleanBuilder::new()),
            DataType::Int8 => ColumnBuilder::I8(Int8Builder::new()),
            DataType::Int16 => ColumnBuilder::I16(Int16Builder::new()),
            DataType::Int32 => ColumnBuilder::I32(Int32Builder::new()),
            DataType::Int64 => ColumnBuilder::I64(Int64Builder::new()),
            DataType::Float32 => ColumnBuilder::F32(Float32Builder::new()),
            DataType::Float64 => ColumnBuilder::F64(Float64Builder::new()),
            DataType::Decimal128(p, s) => ColumnBuilder::Decimal(Decimal128Builder::new(), *p, *s),
            DataType::Date32 => ColumnBuilder::Date(Date32Builder::new()),
            DataType::Timestamp(TimeUnit::Microsecond, None) => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new())
            }
            DataType::Timestamp(TimeUnit::Millisecond, None) => {
                ColumnBuilder::TimestampMs(TimestampMillisecondBuilder::new())
            }
            DataType::Utf8 => ColumnBuilder::Text(StringBuilder::new()),
            DataType::Binary => ColumnBuilder::Binary(BinaryBuilder::new()),
            other => return Err(Error::Internal(format!("cannot store Arrow type {other}"))),
        })
    }

    /// Appends one cell payload as written by [`push_cell`].
    ///
    /// # Errors
    /// [`Error::Internal`] when the payload does not fit the type.
    pub fn append_payload(&mut self, b: &[u8]) -> Result<()> {
        match self {
            ColumnBuilder::Bool(x) => x.append_value(b.first().copied().ok_or_else(corrupt)? != 0),
            ColumnBuilder::I8(x) => x.append_value(i8::from_le_bytes(fixed(b)?)),
            ColumnBuilder::I16(x) => x.append_value(i16::from_le_bytes(fixed(b)?)),
            ColumnBuilder::I32(x) => x.append_value(i32::from_le_bytes(fixed(b)?)),
            ColumnBuilder::I64(x) => x.append_value(i64::from_le_bytes(fixed(b)?)),
            ColumnBuilder::F32(x) => x.append_value(f32::from_le_bytes(fixed(b)?)),
            ColumnBuilder::F64(x) => x.append_value(f64::from_le_bytes(fixed(b)?)),
            ColumnBuilder::Decimal(x, _, _) => x.append_value(i128::from_le_bytes(fixed(b)?)),
            ColumnBuilder::Date(x) => x.append_value(i32::from_le_bytes(fixed(b)?)),
            ColumnBuilder::Timestamp(x) => x.append_value(i64::from_le_bytes(fixed(b)?)),
            ColumnBuilder::TimestampMs(x) => x.append_value(i64::from_le_bytes(fixed(b)?)),
            ColumnBuilder::Text(x) => {
                x.append_value(std::str::from_utf8(b).map_err(|_| corrupt())?)
            }
            ColumnBuilder::Binary(x) => x.append_value(b),
        }
        Ok(())
    }

    /// Appends an `i64` to an integer or timestamp builder (system columns).
    pub fn append_i64(&mut self, v: i64) {
        match self {
            ColumnBuilder::I64(x) => x.append_value(v),
            ColumnBuilder::TimestampMs(x) => x.append_value(v),
            ColumnBuilder::Timestamp(x) => x.append_value(v),
            _ => self.append_null(),
        }
    }

    /// Appends a boolean to a boolean builder (system column `_deleted`).
    pub fn append_bool(&mut self, v: bool) {
        match self {
            ColumnBuilder::Bool(x) => x.append_value(v),
            _ => self.append_null(),
        }
    }

    /// Appends a NULL.
    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(x) => x.append_null(),
            ColumnBuilder::I8(x) => x.append_null(),
            ColumnBuilder::I16(x) => x.append_null(),
            ColumnBuilder::I32(x) => x.append_null(),
            ColumnBuilder::I64(x) => x.append_null(),
            ColumnBuilder::F32(x) => x.append_null(),
            ColumnBuilder::F64(x) => x.append_null(),
            ColumnBuilder::Decimal(x, _, _) => x.append_null(),
            ColumnBuilder::Date(x) => x.append_null(),
            ColumnBuilder::Timestamp(x) => x.append_null(),
            ColumnBuilder::TimestampMs(x) => x.append_null(),
            ColumnBuilder::Text(x) => x.append_null(),
            ColumnBuilder::Binary(x) => x.append_null(),
        }
    }

    /// Finishes the column, leaving the builder empty for reuse.
    ///
    /// # Errors
    /// [`Error::Internal`] if a decimal's precision/scale is invalid.
    pub fn finish(&mut self) -> Result<ArrayRef> {
        Ok(match self {
            ColumnBuilder::Bool(x) => Arc::new(x.finish()),
            ColumnBuilder::I8(x) => Arc::new(x.finish()),
            ColumnBuilder::I16(x) => Arc::new(x.finish()),
            ColumnBuilder::I32(x) => Arc::new(x.finish()),
            ColumnBuilder::I64(x) => Arc::new(x.finish()),
            ColumnBuilder::F32(x) => Arc::new(x.finish()),
            ColumnBuilder::F64(x) => Arc::new(x.finish()),
            ColumnBuilder::Decimal(x, p, s) => Arc::new(
                x.finish()
                    .with_precision_and_scale(*p, *s)
                    .map_err(Error::from)?,
            ),
            ColumnBuilder::Date(x) => Arc::new(x.finish()),
            ColumnBuilder::Timestamp(x) => Arc::new(x.finish()),
            ColumnBuilder::TimestampMs(x) => Arc::new(x.finish()),
            ColumnBuilder::Text(x) => Arc::new(x.finish()),
            ColumnBuilder::Binary(x) => Arc::new(x.finish()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    #[test]
    fn row_round_trips_and_skips_nulls() {
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![Some(-42), None]));
        let long = "x".repeat(300);
        let names: ArrayRef = Arc::new(StringArray::from(vec![Some(long.as_str()), Some("b")]));
        let mut buf = Vec::new();
        encode_header(
            &mut buf,
            RowHeader {
                seq: 99,
                deleted: true,
                schema_version: 3,
            },
        );
        push_cell(&mut buf, 1, ids.as_ref(), 0).unwrap();
        push_cell(&mut buf, 7, names.as_ref(), 0).unwrap();
        push_cell(&mut buf, 1, ids.as_ref(), 1).unwrap(); // NULL: no cell
        let h = decode_header(&buf).unwrap();
        assert_eq!(
            h,
            RowHeader {
                seq: 99,
                deleted: true,
                schema_version: 3
            }
        );
        let mut seen = Vec::new();
        let mut ib = ColumnBuilder::new(&DataType::Int64).unwrap();
        let mut sb = ColumnBuilder::new(&DataType::Utf8).unwrap();
        for_each_cell(&buf, |id, p| {
            seen.push(id);
            if id == 1 {
                ib.append_payload(p)
            } else {
                sb.append_payload(p)
            }
        })
        .unwrap();
        assert_eq!(seen, vec![1, 7]);
        let ints = ib.finish().unwrap();
        assert_eq!(ints.as_primitive::<Int64Type>().value(0), -42);
        assert_eq!(sb.finish().unwrap().as_string::<i32>().value(0), long);
    }

    #[test]
    fn truncated_rows_are_errors_not_panics() {
        assert!(decode_header(&[1, 2, 3]).is_err());
        let mut buf = Vec::new();
        encode_header(
            &mut buf,
            RowHeader {
                seq: 1,
                deleted: false,
                schema_version: 1,
            },
        );
        buf.extend_from_slice(&[1, 50, 1]);
        assert!(for_each_cell(&buf, |_, _| Ok(())).is_err());
    }
}
