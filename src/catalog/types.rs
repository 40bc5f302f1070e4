//! The catalog's value types, shared with the parser: table types, flush policies, SQL column
//! types and DEFAULT values of SPEC section 2, and their Arrow mapping.
//!
//! Part of the ground floor (`sql/` builds these values while parsing). May import: the rest
//! of the ground floor (`functions` for the DEFAULT functions). Never `storage/` or anything
//! above.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::logical_expr::{Expr, lit};
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A column type as declared in CREATE TABLE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlType {
    /// BOOLEAN
    Boolean,
    /// TINYINT (8-bit)
    TinyInt,
    /// SMALLINT (16-bit)
    SmallInt,
    /// INT / INTEGER (32-bit)
    Int,
    /// BIGINT (64-bit)
    BigInt,
    /// FLOAT / REAL (32-bit)
    Float,
    /// DOUBLE (64-bit)
    Double,
    /// DECIMAL(precision, scale), precision 1..=38
    Decimal(u8, i8),
    /// TEXT / VARCHAR / STRING / CHAR
    Text,
    /// BYTEA / BINARY / BLOB
    Bytes,
    /// DATE
    Date,
    /// TIMESTAMP (microseconds, no time zone; shown as ISO-8601 UTC)
    Timestamp,
    /// JSON, stored as validated text
    Json,
}

impl SqlType {
    /// Parses a type name (case-insensitive) with optional `(args)` already split off.
    ///
    /// # Errors
    /// [`Error::InvalidSql`] `unsupported data type: X` for any other name.
    pub fn parse(name: &str, args: &[u64]) -> Result<SqlType> {
        let upper = name.to_ascii_uppercase();
        Ok(match upper.as_str() {
            "BOOLEAN" | "BOOL" => SqlType::Boolean,
            "TINYINT" => SqlType::TinyInt,
            "SMALLINT" => SqlType::SmallInt,
            "INT" | "INTEGER" => SqlType::Int,
            "BIGINT" => SqlType::BigInt,
            "FLOAT" | "REAL" => SqlType::Float,
            "DOUBLE" => SqlType::Double,
            "DECIMAL" | "NUMERIC" => {
                let p = args.first().copied().unwrap_or(38);
                let s = args.get(1).copied().unwrap_or(0);
                match (u8::try_from(p), i8::try_from(s)) {
                    (Ok(p8 @ 1..=38), Ok(s8)) if s <= p => SqlType::Decimal(p8, s8),
                    _ => {
                        return Err(Error::InvalidSql(format!(
                            "invalid DECIMAL({p},{s}): precision must be 1..=38 and scale <= precision"
                        )));
                    }
                }
            }
            "TEXT" | "VARCHAR" | "STRING" | "CHAR" => SqlType::Text,
            "BYTEA" | "BINARY" | "BLOB" => SqlType::Bytes,
            "DATE" => SqlType::Date,
            "TIMESTAMP" => SqlType::Timestamp,
            "JSON" => SqlType::Json,
            _ => return Err(Error::InvalidSql(format!("unsupported data type: {name}"))),
        })
    }

    /// The Arrow type rows of this column are read as.
    pub fn arrow_type(&self) -> DataType {
        match self {
            SqlType::Boolean => DataType::Boolean,
            SqlType::TinyInt => DataType::Int8,
            SqlType::SmallInt => DataType::Int16,
            SqlType::Int => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Float => DataType::Float32,
            SqlType::Double => DataType::Float64,
            SqlType::Decimal(p, s) => DataType::Decimal128(*p, *s),
            SqlType::Text | SqlType::Json => DataType::Utf8,
            SqlType::Bytes => DataType::Binary,
            SqlType::Date => DataType::Date32,
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }

    /// The canonical SQL name (DESCRIBE TABLE's `data_type`).
    pub fn sql_name(&self) -> String {
        match self {
            SqlType::Boolean => "BOOLEAN".into(),
            SqlType::TinyInt => "TINYINT".into(),
            SqlType::SmallInt => "SMALLINT".into(),
            SqlType::Int => "INT".into(),
            SqlType::BigInt => "BIGINT".into(),
            SqlType::Float => "FLOAT".into(),
            SqlType::Double => "DOUBLE".into(),
            SqlType::Decimal(p, s) => format!("DECIMAL({p},{s})"),
            SqlType::Text => "TEXT".into(),
            SqlType::Bytes => "BYTEA".into(),
            SqlType::Date => "DATE".into(),
            SqlType::Timestamp => "TIMESTAMP".into(),
            SqlType::Json => "JSON".into(),
        }
    }
}

/// A literal DEFAULT value, stored in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Literal {
    /// NULL
    Null,
    /// TRUE / FALSE
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A non-integer number, kept as its text so decimals stay exact.
    Number(String),
    /// A quoted string (cast to the column type on insert).
    Text(String),
}

/// A column DEFAULT (SPEC section 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum DefaultValue {
    /// A constant.
    Literal(Literal),
    /// `NOW()` / `CURRENT_TIMESTAMP`: the insert time.
    Now,
    /// `SNOWFLAKE_ID()` (also `AUTO_INCREMENT`): a unique, increasing BIGINT.
    SnowflakeId,
    /// `UUID_V7()`: a time-ordered UUID as text.
    UuidV7,
    /// `ULID()`: a ULID as text.
    Ulid,
    /// `CURRENT_USER()`: the effective user id.
    CurrentUser,
}

impl DefaultValue {
    /// The SQL text shown by DESCRIBE TABLE.
    pub fn to_sql(&self) -> String {
        match self {
            DefaultValue::Literal(Literal::Null) => "NULL".into(),
            DefaultValue::Literal(Literal::Bool(b)) => b.to_string().to_uppercase(),
            DefaultValue::Literal(Literal::Int(i)) => i.to_string(),
            DefaultValue::Literal(Literal::Number(n)) => n.clone(),
            DefaultValue::Literal(Literal::Text(s)) => format!("'{}'", s.replace('\'', "''")),
            DefaultValue::Now => "NOW()".into(),
            DefaultValue::SnowflakeId => "SNOWFLAKE_ID()".into(),
            DefaultValue::UuidV7 => "UUID_V7()".into(),
            DefaultValue::Ulid => "ULID()".into(),
            DefaultValue::CurrentUser => "CURRENT_USER()".into(),
        }
    }

    /// The literal as a scalar cast to `dt`, or None for the function defaults.
    ///
    /// # Errors
    /// [`Error::InvalidSql`] when the literal cannot be cast to the column type.
    pub fn literal_scalar(&self, dt: &DataType) -> Result<Option<ScalarValue>> {
        let DefaultValue::Literal(l) = self else {
            return Ok(None);
        };
        let raw = match l {
            Literal::Null => ScalarValue::Null,
            Literal::Bool(b) => ScalarValue::Boolean(Some(*b)),
            Literal::Int(i) => ScalarValue::Int64(Some(*i)),
            Literal::Number(n) => ScalarValue::Utf8(Some(n.clone())),
            Literal::Text(s) => ScalarValue::Utf8(Some(s.clone())),
        };
        raw.cast_to(dt).map(Some).map_err(|e| {
            Error::InvalidSql(format!(
                "DEFAULT {} does not fit type {dt}: {e}",
                self.to_sql()
            ))
        })
    }

    /// The DataFusion expression DataFusion plans for an omitted column.
    pub fn to_expr(&self, dt: &DataType, user_id: &str) -> Result<Expr> {
        if let Some(s) = self.literal_scalar(dt)? {
            return Ok(lit(s));
        }
        Ok(match self {
            DefaultValue::Now => datafusion::functions::expr_fn::now(),
            DefaultValue::CurrentUser => lit(user_id.to_string()),
            DefaultValue::SnowflakeId => call_udf("snowflake_id"),
            DefaultValue::UuidV7 => call_udf("uuid_v7"),
            DefaultValue::Ulid => call_udf("ulid"),
            DefaultValue::Literal(_) => lit(ScalarValue::Null),
        })
    }
}

fn call_udf(name: &str) -> Expr {
    let udf = match name {
        "snowflake_id" => crate::functions::snowflake_id_udf(),
        "uuid_v7" => crate::functions::uuid_v7_udf(),
        _ => crate::functions::ulid_udf(),
    };
    udf.call(vec![])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_parse_and_reject_unknown() {
        assert_eq!(SqlType::parse("integer", &[]).unwrap(), SqlType::Int);
        assert_eq!(
            SqlType::parse("DECIMAL", &[10, 2]).unwrap(),
            SqlType::Decimal(10, 2)
        );
        let e = SqlType::parse("GEOMETRY", &[]).unwrap_err();
        assert_eq!(e.message(), "unsupported data type: GEOMETRY");
        assert!(SqlType::parse("DECIMAL", &[50, 2]).is_err());
    }

    #[test]
    fn literal_defaults_cast_or_fail() {
        let d = DefaultValue::Literal(Literal::Text("abc".into()));
        assert!(d.literal_scalar(&DataType::Int64).is_err());
        let d = DefaultValue::Literal(Literal::Int(5));
        assert_eq!(
            d.literal_scalar(&DataType::Int32).unwrap(),
            Some(ScalarValue::Int32(Some(5)))
        );
    }
}

/// USER, SHARED or STREAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TableType {
    /// Partitioned by user; each caller sees only its own rows.
    User,
    /// One global dataset.
    Shared,
    /// Hot-only, TTL-bounded events, partitioned by user.
    Stream,
}

impl TableType {
    /// `USER`, `SHARED` or `STREAM`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TableType::User => "USER",
            TableType::Shared => "SHARED",
            TableType::Stream => "STREAM",
        }
    }

    /// True for the per-user partitioned types (USER, STREAM).
    pub fn is_partitioned(&self) -> bool {
        !matches!(self, TableType::Shared)
    }
}

/// When a table's hot rows are flushed to Parquet (SPEC section 2; enforced by the flush issue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushPolicy {
    /// Flush a partition once it holds this many hot rows (1..=1,000,000).
    pub rows: Option<u64>,
    /// Flush rows older than this many seconds (1..=86,400).
    pub interval_secs: Option<u64>,
}

impl Default for FlushPolicy {
    /// `ROWS 10000` (SPEC section 2).
    fn default() -> Self {
        FlushPolicy {
            rows: Some(10_000),
            interval_secs: None,
        }
    }
}

impl FlushPolicy {
    /// Checks the SPEC bounds.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when rows ∉ 1..=1,000,000 or seconds ∉ 1..=86,400, or both are absent.
    pub fn validate(&self) -> Result<()> {
        if let Some(r) = self.rows
            && !(1..=1_000_000).contains(&r)
        {
            return Err(Error::InvalidParameter(format!(
                "flush policy rows must be between 1 and 1000000, got {r}"
            )));
        }
        if let Some(s) = self.interval_secs
            && !(1..=86_400).contains(&s)
        {
            return Err(Error::InvalidParameter(format!(
                "flush policy interval must be between 1 and 86400 seconds, got {s}"
            )));
        }
        if self.rows.is_none() && self.interval_secs.is_none() {
            return Err(Error::InvalidParameter("empty flush policy".into()));
        }
        Ok(())
    }

    /// The seed-era spelling: `ROWS n`, `TIME s` or `ROWS n OR TIME s`.
    pub fn to_sql(&self) -> String {
        match (self.rows, self.interval_secs) {
            (Some(r), Some(s)) => format!("ROWS {r} OR TIME {s}"),
            (Some(r), None) => format!("ROWS {r}"),
            (None, Some(s)) => format!("TIME {s}"),
            (None, None) => String::new(),
        }
    }
}
