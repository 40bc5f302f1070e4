//! Tables: `CREATE TABLE` (every SPEC clause), `ALTER TABLE` (ADD/DROP/RENAME COLUMN),
//! `DROP TABLE`, `SHOW TABLES`, `DESCRIBE TABLE`.
//!
//! May import: the ground floor, `sql/` (the parsed statements), `catalog/`, `storage/` (a DROP
//! deletes rows and files) and the shared state. Never `engine/mod.rs`, `query/` or the front
//! ends.

use datafusion::arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;

use crate::catalog::{
    ColumnDef, FlushPolicy, MAX_BUFFER_SIZE, MAX_COLUMNS, MAX_DURATION_SECS, SqlType, TableDef,
    TableType, is_system_column, validate_identifier,
};
use crate::error::{Error, Result};
use crate::result::{QueryResult, TIMESTAMP_MS, timestamp_ms};
use crate::session::{Role, Session};
use crate::sql::{AlterTableOp, ColumnSpec, CreateTable, TableName};
use crate::state::Core;
use crate::storage::{Batch, CF_ROWS, cold, keys};

/// `CREATE [USER|SHARED|STREAM] TABLE ...` after parsing: checks every clause against the SPEC
/// bounds (`docs/limits.md`) and writes the definition.
///
/// # Errors
/// `PERMISSION_DENIED` below dba; `NAMESPACE_NOT_FOUND`; `INVALID_SQL`/`INVALID_PARAMETER` for
/// a bad clause; `ALREADY_EXISTS`.
pub fn create(core: &Core, ct: CreateTable, session: &Session) -> Result<QueryResult> {
    session.require(Role::Dba, "CREATE TABLE")?;
    let ns = session.namespace_of(ct.name.namespace.as_deref(), &ct.name.name)?;
    core.catalog.require_namespace(&ns)?;
    validate_identifier("table", &ct.name.name)?;
    if ct.columns.is_empty() {
        return Err(Error::InvalidSql(
            "a table needs at least one column".into(),
        ));
    }
    if ct.columns.len() > MAX_COLUMNS {
        return Err(Error::InvalidSql(format!(
            "a table can have at most {MAX_COLUMNS} columns"
        )));
    }
    let mut columns = Vec::with_capacity(ct.columns.len());
    let mut names = std::collections::HashSet::new();
    for (id, spec) in (1u32..).zip(&ct.columns) {
        if !names.insert(spec.name.as_str()) {
            return Err(Error::InvalidSql(format!(
                "column '{}' is declared twice",
                spec.name
            )));
        }
        columns.push(column_def(spec, id, 1)?);
    }
    if columns.iter().filter(|c| c.primary_key).count() > 1 {
        return Err(Error::InvalidSql(
            "a table can have only one PRIMARY KEY column".into(),
        ));
    }
    let is_stream = ct.table_type == TableType::Stream;
    if !is_stream && (ct.ttl_seconds.is_some() || ct.buffer_size.is_some()) {
        return Err(Error::InvalidSql(
            "TTL and BUFFER_SIZE apply to STREAM tables only".into(),
        ));
    }
    if is_stream && ct.flush_policy.is_some() {
        return Err(Error::InvalidSql(
            "STREAM tables are never flushed: remove the FLUSH POLICY".into(),
        ));
    }
    check_range("TTL", "seconds", ct.ttl_seconds, 1, MAX_DURATION_SECS)?;
    check_range("BUFFER_SIZE", "rows", ct.buffer_size, 1, MAX_BUFFER_SIZE)?;
    check_range(
        "DELETED_RETENTION",
        "seconds",
        ct.deleted_retention_secs,
        0,
        MAX_DURATION_SECS,
    )?;

    let flush_policy = ct.flush_policy.unwrap_or_default();
    flush_policy.validate()?;
    if let Some(l) = &ct.location {
        crate::catalog::validate_location(l, ct.table_type)?;
    }
    let storage_id = ct.storage_id.unwrap_or_else(|| "local".into());
    if storage_id != "local" {
        return Err(Error::InvalidParameter(format!(
            "unknown storage '{storage_id}': only 'local' exists"
        )));
    }
    let _g = core.catalog.ddl_lock();
    if core.catalog.table(&ns, &ct.name.name).is_some() {
        if ct.if_not_exists {
            return Ok(QueryResult::message(
                format!("Table '{ns}.{}' already exists", ct.name.name),
                0,
            ));
        }
        return Err(Error::AlreadyExists(format!(
            "table '{ns}.{}' already exists",
            ct.name.name
        )));
    }
    let now = crate::ids::now_millis();
    let next_column_id = u32::try_from(columns.len())
        .ok()
        .and_then(|n| n.checked_add(1))
        .ok_or_else(|| Error::InvalidSql("too many columns".into()))?;
    let def = TableDef {
        id: core.catalog.next_table_id()?,
        namespace: ns.clone(),
        name: ct.name.name.clone(),
        table_type: ct.table_type,
        columns,
        next_column_id,
        schema_version: 1,
        location: ct.location,
        flush_policy: if is_stream {
            FlushPolicy {
                rows: None,
                interval_secs: None,
            }
        } else {
            flush_policy
        },
        ttl_seconds: ct.ttl_seconds,
        buffer_size: ct.buffer_size,
        deleted_retention_secs: if is_stream {
            None
        } else {
            ct.deleted_retention_secs
        },
        storage_id,
        created_at: now,
        updated_at: now,
    };
    core.catalog.put_table(def)?;
    Ok(QueryResult::message(
        format!("Table '{ns}.{}' created", ct.name.name),
        0,
    ))
}

/// `ALTER TABLE t ADD COLUMN | DROP COLUMN | RENAME COLUMN`: bumps the schema version.
///
/// # Errors
/// `PERMISSION_DENIED` below dba; `TABLE_NOT_FOUND`; a clear error for each impossible change.
pub fn alter(
    core: &Core,
    name: &TableName,
    op: AlterTableOp,
    session: &Session,
) -> Result<QueryResult> {
    session.require(Role::Dba, "ALTER TABLE")?;
    let ns = session.namespace_of(name.namespace.as_deref(), &name.name)?;
    let _g = core.catalog.ddl_lock();
    let mut t = (*core.catalog.require_table(&ns, &name.name)?).clone();
    let version = t
        .schema_version
        .checked_add(1)
        .ok_or_else(|| Error::InvalidSql("too many schema versions".into()))?;
    match op {
        AlterTableOp::AddColumn(spec) => {
            if t.column(&spec.name).is_some() {
                return Err(Error::AlreadyExists(format!(
                    "column '{}' already exists in '{}'",
                    spec.name,
                    t.qualified()
                )));
            }
            if spec.primary_key {
                return Err(Error::InvalidSql(
                    "ADD COLUMN cannot add a PRIMARY KEY".into(),
                ));
            }
            if !spec.nullable && spec.default.is_none() {
                return Err(Error::InvalidSql(format!(
                    "ADD COLUMN '{}' NOT NULL needs a DEFAULT for existing rows",
                    spec.name
                )));
            }
            if t.columns.len() >= MAX_COLUMNS {
                return Err(Error::InvalidSql(format!(
                    "a table can have at most {MAX_COLUMNS} columns"
                )));
            }
            let c = column_def(&spec, t.next_column_id, version)?;
            t.next_column_id = t
                .next_column_id
                .checked_add(1)
                .ok_or_else(|| Error::InvalidSql("too many columns".into()))?;
            t.columns.push(c);
        }
        AlterTableOp::DropColumn(c) => {
            let pos = t.columns.iter().position(|x| x.name == c).ok_or_else(|| {
                Error::Execution(format!(
                    "column '{c}' does not exist in '{}'",
                    t.qualified()
                ))
            })?;
            if t.columns.get(pos).is_some_and(|col| col.primary_key) {
                return Err(Error::Execution(format!(
                    "cannot drop PRIMARY KEY column '{c}'"
                )));
            }
            if t.columns.len() == 1 {
                return Err(Error::Execution(
                    "cannot drop the only column of a table".into(),
                ));
            }
            t.columns.remove(pos);
        }
        AlterTableOp::RenameColumn(from, to) => {
            validate_identifier("column", &to)?;
            if is_system_column(&to) {
                return Err(Error::InvalidSql(format!(
                    "column name '{to}' is reserved for system columns"
                )));
            }
            if t.column(&to).is_some() {
                return Err(Error::AlreadyExists(format!(
                    "column '{to}' already exists in '{}'",
                    t.qualified()
                )));
            }
            let c = t
                .columns
                .iter_mut()
                .find(|x| x.name == from)
                .ok_or_else(|| {
                    Error::Execution(format!(
                        "column '{from}' does not exist in '{ns}.{}'",
                        name.name
                    ))
                })?;
            c.name = to;
        }
    }
    t.schema_version = version;
    t.updated_at = crate::ids::now_millis();
    let q = t.qualified();
    let (ns, table) = (t.namespace.clone(), t.name.clone());
    core.catalog.put_table(t)?;
    if let Some(def) = core.catalog.table(&ns, &table) {
        core.live.table_altered(&def);
    }
    Ok(QueryResult::message(
        format!("Table '{q}' altered (schema version {version})"),
        0,
    ))
}

/// `SHOW TABLES [IN ns]`: namespace, table_name, table_type, created_at.
///
/// # Errors
/// `NAMESPACE_NOT_FOUND`.
pub fn show(core: &Core, ns: Option<String>) -> Result<QueryResult> {
    if let Some(ns) = &ns {
        core.catalog.require_namespace(ns)?;
    }
    let rows = core
        .catalog
        .tables(ns.as_deref())
        .iter()
        .map(|t| {
            vec![
                ScalarValue::Utf8(Some(t.namespace.clone())),
                ScalarValue::Utf8(Some(t.name.clone())),
                ScalarValue::Utf8(Some(t.table_type.as_str().into())),
                timestamp_ms(t.created_at),
            ]
        })
        .collect();
    QueryResult::rows(
        &[
            ("namespace", DataType::Utf8),
            ("table_name", DataType::Utf8),
            ("table_type", DataType::Utf8),
            ("created_at", TIMESTAMP_MS),
        ],
        rows,
    )
}

/// `DESCRIBE TABLE t`: column_name, data_type, is_nullable, is_primary_key, default.
///
/// # Errors
/// `TABLE_NOT_FOUND` / `NAMESPACE_NOT_FOUND`; `INVALID_SQL` for an unqualified name.
pub fn describe(core: &Core, name: &TableName, session: &Session) -> Result<QueryResult> {
    let ns = session.namespace_of(name.namespace.as_deref(), &name.name)?;
    let t = core.catalog.require_table(&ns, &name.name)?;
    let rows = t
        .columns
        .iter()
        .map(|c| {
            vec![
                ScalarValue::Utf8(Some(c.name.clone())),
                ScalarValue::Utf8(Some(c.sql_type.sql_name())),
                ScalarValue::Boolean(Some(c.nullable)),
                ScalarValue::Boolean(Some(c.primary_key)),
                ScalarValue::Utf8(c.default.as_ref().map(|d| d.to_sql())),
            ]
        })
        .collect();
    QueryResult::rows(
        &[
            ("column_name", DataType::Utf8),
            ("data_type", DataType::Utf8),
            ("is_nullable", DataType::Boolean),
            ("is_primary_key", DataType::Boolean),
            ("default", DataType::Utf8),
        ],
        rows,
    )
}

/// `DROP [USER|SHARED|STREAM] TABLE [IF EXISTS] t`: rows, files and metadata.
///
/// # Errors
/// `PERMISSION_DENIED` below dba; `TABLE_NOT_FOUND`; a table of another type than named.
pub async fn drop(
    core: &Core,
    name: &TableName,
    if_exists: bool,
    table_type: Option<TableType>,
    session: &Session,
) -> Result<QueryResult> {
    session.require(Role::Dba, "DROP TABLE")?;
    let ns = session.namespace_of(name.namespace.as_deref(), &name.name)?;
    let Some(t) = core.catalog.table(&ns, &name.name) else {
        if if_exists {
            return Ok(QueryResult::message(
                format!("Table '{ns}.{}' does not exist", name.name),
                0,
            ));
        }
        return Err(core
            .catalog
            .require_table(&ns, &name.name)
            .err()
            .unwrap_or_else(|| {
                Error::TableNotFound(format!("table '{ns}.{}' does not exist", name.name))
            }));
    };
    if let Some(tt) = table_type
        && tt != t.table_type
    {
        return Err(Error::Execution(format!(
            "table '{}' is a {} table, not {}",
            t.qualified(),
            t.table_type.as_str(),
            tt.as_str()
        )));
    }
    let (files, bytes) = drop_data(core, &t).await?;
    Ok(QueryResult::message(
        format!(
            "Table '{}' dropped ({files} file(s) deleted, {bytes} bytes freed)",
            t.qualified()
        ),
        0,
    ))
}

/// Deletes a table: rows, definition, manifest, index and deletion vectors in one atomic
/// batch (holding the table lock exclusively, so no write or flush commit is mid-way), then its Parquet files.
/// Returns `(files deleted, bytes freed)`.
pub async fn drop_data(core: &Core, t: &TableDef) -> Result<(u64, u64)> {
    let _guard = core.locks.table(t.id).await;
    let files = {
        let view = core.store.view();
        cold::manifest(&view, t.id, None)?
    };
    {
        let _g = core.catalog.ddl_lock();
        if core
            .catalog
            .table(&t.namespace, &t.name)
            .is_none_or(|c| c.id != t.id)
        {
            return Err(Error::TableNotFound(format!(
                "table '{}' does not exist",
                t.qualified()
            )));
        }
        let (from, to) = keys::table_range(t.id);
        let mut b = Batch::default();
        b.delete_range(&core.store, CF_ROWS, &from, &to);
        core.catalog.delete_table_in(&mut b, t);
        cold::delete_table_records(&mut b, &core.store, t.id);
        core.store.write(b)?;
        core.catalog.forget_table(&t.namespace, &t.name);
        core.live.table_dropped(t);
    }
    // A crash here leaves files no manifest names; start-up removes them.
    for f in &files {
        core.cold.delete(&f.path).await?;
    }
    Ok((files.len() as u64, files.iter().map(|f| f.bytes).sum()))
}

/// Fails unless `value` (when given) lies in `min..=max`.
fn check_range(what: &str, unit: &str, value: Option<u64>, min: u64, max: u64) -> Result<()> {
    match value {
        Some(v) if !(min..=max).contains(&v) => Err(Error::InvalidParameter(format!(
            "{what} must be between {min} and {max} {unit}, got {v}"
        ))),
        _ => Ok(()),
    }
}

fn column_def(spec: &ColumnSpec, id: u32, added_in: u32) -> Result<ColumnDef> {
    if is_system_column(&spec.name) {
        return Err(Error::InvalidSql(format!(
            "column name '{}' is reserved for system columns",
            spec.name
        )));
    }
    validate_identifier("column", &spec.name)?;
    if spec.primary_key
        && matches!(
            spec.sql_type,
            SqlType::Json | SqlType::Bytes | SqlType::Float | SqlType::Double
        )
    {
        return Err(Error::InvalidSql(format!(
            "type {} cannot be a PRIMARY KEY",
            spec.sql_type.sql_name()
        )));
    }
    if let Some(d) = &spec.default {
        let literal = d.literal_scalar(&spec.sql_type.arrow_type())?;
        if spec.sql_type == SqlType::Json {
            // JSON columns are validated on write; their DEFAULT must pass the same check.
            let valid = match &literal {
                Some(ScalarValue::Utf8(Some(text))) => {
                    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
                }
                Some(v) => v.is_null(),
                None => false,
            };
            if !valid {
                return Err(Error::InvalidSql(format!(
                    "DEFAULT {} of JSON column '{}' is not valid JSON",
                    d.to_sql(),
                    spec.name
                )));
            }
        }
        if matches!(d, crate::catalog::DefaultValue::SnowflakeId)
            && spec.sql_type != SqlType::BigInt
        {
            return Err(Error::InvalidSql(format!(
                "SNOWFLAKE_ID() default needs a BIGINT column, '{}' is {}",
                spec.name,
                spec.sql_type.sql_name()
            )));
        }
    }
    Ok(ColumnDef {
        id,
        name: spec.name.clone(),
        sql_type: spec.sql_type,
        nullable: spec.nullable,
        default: spec.default.clone(),
        primary_key: spec.primary_key,
        added_in,
    })
}
