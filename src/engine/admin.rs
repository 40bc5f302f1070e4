//! Administration: `FLUSH TABLE`, `FLUSH ALL TABLES`, `KILL JOB`, `KILL LIVE QUERY`,
//! `SHOW STATS FOR TABLE`, and the per-request limits (`SET`, `SHOW`; docs/limits.md).
//!
//! May import: the ground floor, `sql/`, `catalog/`, `storage/`, the shared state and the job
//! logic (`jobs/`). Never `engine/mod.rs`, `query/` or the front ends.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;

use crate::catalog::{TableDef, TableType};
use crate::config::Setting;
use crate::error::{Error, Result};
use crate::result::QueryResult;
use crate::session::{Role, Session};
use crate::sql::TableName;
use crate::state::Core;
use crate::storage::{CF_ROWS, codec, keys};

/// `FLUSH TABLE t`: queues a flush job, or names the one already queued or running.
///
/// # Errors
/// `PERMISSION_DENIED` below dba; `TABLE_NOT_FOUND`; STREAM tables cannot be flushed.
pub fn flush_table(core: &Arc<Core>, name: &TableName, session: &Session) -> Result<QueryResult> {
    session.require(Role::Dba, "FLUSH")?;
    let ns = session.namespace_of(name.namespace.as_deref(), &name.name)?;
    let t = core.catalog.require_table(&ns, &name.name)?;
    if t.table_type == TableType::Stream {
        return Err(Error::Execution(format!(
            "STREAM table '{}' cannot be flushed: its rows live only in the hot tier",
            t.qualified()
        )));
    }
    let q = t.qualified();
    let (id, existing) = crate::jobs::start_flush(core, t, None, &session.user_id)?;
    Ok(QueryResult::message(
        if existing {
            format!("Flush already in progress for table '{q}'. Job ID: {id}")
        } else {
            format!("Flush started for table '{q}'. Job ID: {id}")
        },
        0,
    ))
}

/// `FLUSH ALL TABLES [IN ns]`: a flush job per USER/SHARED table.
///
/// # Errors
/// `PERMISSION_DENIED` below dba; `NAMESPACE_NOT_FOUND`.
pub fn flush_all(core: &Arc<Core>, ns: Option<&str>, session: &Session) -> Result<QueryResult> {
    session.require(Role::Dba, "FLUSH")?;
    if let Some(ns) = ns {
        core.catalog.require_namespace(ns)?;
    }
    let mut ids = Vec::new();
    for t in core.catalog.tables(ns) {
        if t.table_type != TableType::Stream {
            ids.push(crate::jobs::start_flush(core, t, None, &session.user_id)?.0);
        }
    }
    Ok(QueryResult::message(
        format!(
            "Flush started for {} table(s). Job IDs: [{}]",
            ids.len(),
            ids.join(", ")
        ),
        ids.len(),
    ))
}

/// `KILL JOB 'id'`.
///
/// # Errors
/// `PERMISSION_DENIED` below dba; `INVALID_PARAMETER` for an unknown or finished job.
pub fn kill_job(core: &Core, id: &str, session: &Session) -> Result<QueryResult> {
    session.require(Role::Dba, "KILL JOB")?;
    Ok(QueryResult::message(core.jobs.kill(id)?, 0))
}

/// `KILL LIVE QUERY 'live_id'`: ends the subscription; its client gets an `error` with code
/// `LIVE_QUERY_KILLED`. A `user` may kill only its own; dba and system any.
///
/// # Errors
/// `INVALID_PARAMETER` when no such live query exists (or it is another user's).
pub fn kill_live_query(core: &Core, id: &str, session: &Session) -> Result<QueryResult> {
    core.live.kill(id, session)?;
    Ok(QueryResult::message(format!("Live query '{id}' killed"), 1))
}

/// `SHOW STATS FOR TABLE t`: hot and cold rows, files, bytes, last flush, schema version; the
/// caller's partition only below dba.
///
/// # Errors
/// `TABLE_NOT_FOUND`; storage failures.
pub fn show_stats(core: &Core, name: &TableName, session: &Session) -> Result<QueryResult> {
    let ns = session.namespace_of(name.namespace.as_deref(), &name.name)?;
    let t = core.catalog.require_table(&ns, &name.name)?;
    let hot_rows = count_hot_rows(core, &t, session)?;
    let own = (t.table_type.is_partitioned() && session.role < Role::Dba)
        .then_some(session.user_id.as_str());
    let (cold_rows, files, bytes, last) = crate::jobs::flush::cold_stats(core, &t, own)?;
    let last = last
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let stat =
        |k: &str, v: Option<String>| vec![ScalarValue::Utf8(Some(k.into())), ScalarValue::Utf8(v)];
    let rows = vec![
        stat("hot_rows", Some(hot_rows.to_string())),
        stat("cold_rows", Some(cold_rows.to_string())),
        stat("parquet_files", Some(files.to_string())),
        stat("storage_bytes", Some(bytes.to_string())),
        stat("last_flushed_at", last),
        stat("schema_version", Some(t.schema_version.to_string())),
    ];
    QueryResult::rows(
        &[("statistic", DataType::Utf8), ("value", DataType::Utf8)],
        rows,
    )
}

fn count_hot_rows(core: &Core, t: &TableDef, session: &Session) -> Result<u64> {
    let prefix = if t.table_type.is_partitioned() && session.role < Role::Dba {
        keys::partition_prefix(t.id, &session.user_id)
    } else {
        keys::table_range(t.id).0
    };
    live_hot_rows(core, &prefix)
}

/// Live (not deleted) hot rows under `prefix`.
fn live_hot_rows(core: &Core, prefix: &[u8]) -> Result<u64> {
    let mut n = 0u64;
    core.store.for_each_prefix(CF_ROWS, prefix, |_, v| {
        n = n.saturating_add(u64::from(!codec::decode_header(v)?.deleted));
        Ok(true)
    })?;
    Ok(n)
}

/// Every table's storage figures for `/metrics` (all partitions).
///
/// # Errors
/// Storage failures.
pub fn table_figures(core: &Core) -> Result<Vec<crate::telemetry::TableFigures>> {
    core.catalog
        .tables(None)
        .iter()
        .map(|t| {
            let (cold_rows, cold_files, cold_bytes, _) =
                crate::jobs::flush::cold_stats(core, t, None)?;
            Ok(crate::telemetry::TableFigures {
                namespace: t.namespace.clone(),
                table: t.name.clone(),
                hot_rows: live_hot_rows(core, &keys::table_range(t.id).0)?,
                cold_rows,
                cold_files,
                cold_bytes,
            })
        })
        .collect()
}

/// `SET name = value`: lowers a limit for the rest of the request.
///
/// # Errors
/// `INVALID_PARAMETER` for an unknown setting or a bad value; `PERMISSION_DENIED` for raising.
pub fn set(core: &Core, name: &str, value: &str, session: &mut Session) -> Result<QueryResult> {
    let setting = Setting::from_name(name).ok_or_else(|| {
        Error::InvalidParameter(format!(
            "unknown setting '{name}': SET accepts statement_timeout, \
             statement_memory_bytes, max_result_rows and max_result_bytes"
        ))
    })?;
    let v = setting.parse_value(value)?;
    let mut limits = session.limits_within(core.config.limits());
    setting.lower(&mut limits, v)?;
    session.limits = Some(limits);
    Ok(QueryResult::message(
        format!("SET {} = {v}", setting.key()),
        0,
    ))
}

/// `SHOW name` of a limit: one BIGINT column named after the config key.
///
/// # Errors
/// Arrow errors building the result (none expected).
pub fn show_setting(core: &Core, name: &str, session: &Session) -> Result<QueryResult> {
    let limits = session.limits_within(core.config.limits());
    let (key, v) = match Setting::from_name(name) {
        Some(s) => (s.key(), s.get(&limits)),
        None => ("max_expression_depth", core.config.max_expression_depth),
    };
    let v = i64::try_from(v).unwrap_or(i64::MAX);
    QueryResult::rows(
        &[(key, DataType::Int64)],
        vec![vec![ScalarValue::Int64(Some(v))]],
    )
}
