//! KalamDB's SQL functions on top of DataFusion's: `SNOWFLAKE_ID()`, `UUID_V7()`, `ULID()` and
//! `CURRENT_USER()` (SPEC section 2). All are volatile: evaluated once per row.
//!
//! May import: `ids` only (a ground-floor module).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;

/// Which generator a [`Generator`] UDF runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Snowflake,
    UuidV7,
    Ulid,
}

/// A zero-argument, per-row id generator.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Generator {
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for Generator {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Snowflake => "snowflake_id",
            Kind::UuidV7 => "uuid_v7",
            Kind::Ulid => "ulid",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind {
            Kind::Snowflake => DataType::Int64,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows.max(1);
        let array: ArrayRef = match self.kind {
            Kind::Snowflake => Arc::new(
                (0..n)
                    .map(|_| crate::ids::as_i64(crate::ids::next_seq()))
                    .collect::<Int64Array>(),
            ),
            Kind::UuidV7 => Arc::new(
                (0..n)
                    .map(|_| Some(uuid::Uuid::now_v7().to_string()))
                    .collect::<StringArray>(),
            ),
            Kind::Ulid => Arc::new(
                (0..n)
                    .map(|_| Some(ulid::Ulid::new().to_string()))
                    .collect::<StringArray>(),
            ),
        };
        Ok(ColumnarValue::Array(array))
    }
}

fn generator(kind: Kind) -> ScalarUDF {
    ScalarUDF::new_from_impl(Generator {
        kind,
        signature: Signature::nullary(Volatility::Volatile),
    })
}

/// `SNOWFLAKE_ID()` → BIGINT, unique and increasing (the `_seq` generator).
pub fn snowflake_id_udf() -> ScalarUDF {
    generator(Kind::Snowflake)
}

/// `UUID_V7()` → TEXT, a time-ordered UUID (RFC 9562 version 7).
pub fn uuid_v7_udf() -> ScalarUDF {
    generator(Kind::UuidV7)
}

/// `ULID()` → TEXT, a 26-character ULID.
pub fn ulid_udf() -> ScalarUDF {
    generator(Kind::Ulid)
}

/// `CURRENT_USER()` bound to one session's effective user id.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentUser {
    user_id: String,
    signature: Signature,
}

impl ScalarUDFImpl for CurrentUser {
    fn name(&self) -> &str {
        "current_user"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            self.user_id.clone(),
        ))))
    }
}

/// `CURRENT_USER()` → TEXT: the effective user id of the session it is registered for.
pub fn current_user_udf(user_id: &str) -> ScalarUDF {
    ScalarUDF::new_from_impl(CurrentUser {
        user_id: user_id.to_string(),
        signature: Signature::nullary(Volatility::Stable),
    })
}
