//! Namespaces: `CREATE NAMESPACE`, `ALTER NAMESPACE`, `DROP NAMESPACE`, `SHOW NAMESPACES`, `USE`
//! (SPEC section 2).
//!
//! May import: the ground floor, `catalog/`, the shared state and the sibling `tables` family
//! (a CASCADE drop drops tables). Never `engine/mod.rs`, `query/` or the front ends.

use datafusion::arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;

use super::tables;
use crate::catalog::{NamespaceDef, RESERVED_NAMESPACES, validate_identifier};
use crate::error::{Error, Result};
use crate::result::{QueryResult, TIMESTAMP_MS, timestamp_ms};
use crate::session::{Role, Session};
use crate::state::Core;

/// `CREATE NAMESPACE [IF NOT EXISTS] name`.
///
/// # Errors
/// `PERMISSION_DENIED` below dba; `INVALID_SQL` for a bad or reserved name; `ALREADY_EXISTS`.
pub fn create(
    core: &Core,
    name: &str,
    if_not_exists: bool,
    session: &Session,
) -> Result<QueryResult> {
    session.require(Role::Dba, "CREATE NAMESPACE")?;
    validate_identifier("namespace", name)?;
    if RESERVED_NAMESPACES.contains(&name) {
        return Err(Error::InvalidSql(format!(
            "namespace name '{name}' is reserved"
        )));
    }
    let _g = core.catalog.ddl_lock();
    if core.catalog.namespace(name).is_some() {
        if if_not_exists {
            return Ok(QueryResult::message(
                format!("Namespace '{name}' already exists"),
                0,
            ));
        }
        return Err(Error::AlreadyExists(format!(
            "namespace '{name}' already exists"
        )));
    }
    core.catalog.put_namespace(NamespaceDef {
        name: name.to_string(),
        options: Default::default(),
        created_at: crate::ids::now_millis(),
    })?;
    Ok(QueryResult::message(
        format!("Namespace '{name}' created"),
        0,
    ))
}

/// `ALTER NAMESPACE name SET OPTIONS (k = v, ...)` / `SET DESCRIPTION '...'`.
///
/// # Errors
/// `PERMISSION_DENIED` below dba; `NAMESPACE_NOT_FOUND`.
pub fn alter(
    core: &Core,
    name: &str,
    options: Vec<(String, String)>,
    session: &Session,
) -> Result<QueryResult> {
    session.require(Role::Dba, "ALTER NAMESPACE")?;
    let _g = core.catalog.ddl_lock();
    core.catalog.require_namespace(name)?;
    let mut ns = core
        .catalog
        .namespace(name)
        .ok_or_else(|| Error::NamespaceNotFound(name.to_string()))?;
    for (k, v) in options {
        ns.options.insert(k, serde_json::Value::String(v));
    }
    core.catalog.put_namespace(ns)?;
    Ok(QueryResult::message(
        format!("Namespace '{name}' altered"),
        0,
    ))
}

/// `SHOW NAMESPACES`: name, table_count, created_at.
///
/// # Errors
/// Arrow errors building the result (none expected).
pub fn show(core: &Core) -> Result<QueryResult> {
    let tables = core.catalog.tables(None);
    let rows = core
        .catalog
        .namespaces()
        .into_iter()
        .map(|n| {
            let count =
                crate::ids::count_i64(tables.iter().filter(|t| t.namespace == n.name).count());
            vec![
                ScalarValue::Utf8(Some(n.name)),
                ScalarValue::Int64(Some(count)),
                timestamp_ms(n.created_at),
            ]
        })
        .collect();
    QueryResult::rows(
        &[
            ("name", DataType::Utf8),
            ("table_count", DataType::Int64),
            ("created_at", TIMESTAMP_MS),
        ],
        rows,
    )
}

/// `USE ns`: the default namespace for the rest of the request.
///
/// # Errors
/// `NAMESPACE_NOT_FOUND`.
pub fn use_namespace(core: &Core, ns: String, session: &mut Session) -> Result<QueryResult> {
    core.catalog.require_namespace(&ns)?;
    let message = format!("Using namespace '{ns}'");
    session.namespace = Some(ns);
    Ok(QueryResult::message(message, 0))
}

/// `DROP NAMESPACE [IF EXISTS] name [CASCADE]`: without CASCADE a namespace with tables is an
/// error naming how many; with it, every table is dropped first.
///
/// # Errors
/// `PERMISSION_DENIED` below dba; `NAMESPACE_NOT_FOUND`; `SQL_EXECUTION_ERROR` when not empty.
pub async fn drop(
    core: &Core,
    name: &str,
    if_exists: bool,
    cascade: bool,
    session: &Session,
) -> Result<QueryResult> {
    session.require(Role::Dba, "DROP NAMESPACE")?;
    if core.catalog.namespace(name).is_none() {
        if if_exists {
            return Ok(QueryResult::message(
                format!("Namespace '{name}' does not exist"),
                0,
            ));
        }
        return Err(Error::NamespaceNotFound(format!(
            "namespace '{name}' does not exist"
        )));
    }
    let all = core.catalog.tables(Some(name));
    if !all.is_empty() && !cascade {
        return Err(Error::Execution(format!(
            "namespace '{name}' is not empty: it contains {} table(s); drop them first or use DROP NAMESPACE {name} CASCADE",
            all.len()
        )));
    }
    for t in &all {
        tables::drop_data(core, t).await?;
    }
    let _g = core.catalog.ddl_lock();
    core.catalog.delete_namespace(name)?;
    Ok(QueryResult::message(
        format!("Namespace '{name}' dropped"),
        0,
    ))
}
