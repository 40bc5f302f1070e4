//! The read-only system tables of SPEC section 4, materialised from the catalog on each lookup.
//!
//! Role rules: `user` may read `system.tables`, `system.namespaces` and its own rows of
//! `system.jobs` / `system.live_queries`; the others need `dba` or `system`. A denied read is
//! `PERMISSION_DENIED`, never an empty result. `system.users` has no password column at all.
//!
//! May import: the ground floor, `catalog/` and the shared state. Never `query/`, `engine/` or the front ends.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::scalar::ScalarValue;

use crate::error::Result;
use crate::result::{TIMESTAMP_MS, timestamp_ms};
use crate::session::{Role, Session};
use crate::state::Core;

/// One system table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemTable {
    /// `system.namespaces`
    Namespaces,
    /// `system.tables`
    Tables,
    /// `system.table_schemas`
    TableSchemas,
    /// `system.users`
    Users,
    /// `system.storages`
    Storages,
    /// `system.jobs`
    Jobs,
    /// `system.live_queries`
    LiveQueries,
}

impl SystemTable {
    /// Every system table.
    pub const ALL: [SystemTable; 7] = [
        SystemTable::Namespaces,
        SystemTable::Tables,
        SystemTable::TableSchemas,
        SystemTable::Users,
        SystemTable::Storages,
        SystemTable::Jobs,
        SystemTable::LiveQueries,
    ];

    /// The table name inside `system`.
    pub fn name(&self) -> &'static str {
        match self {
            SystemTable::Namespaces => "namespaces",
            SystemTable::Tables => "tables",
            SystemTable::TableSchemas => "table_schemas",
            SystemTable::Users => "users",
            SystemTable::Storages => "storages",
            SystemTable::Jobs => "jobs",
            SystemTable::LiveQueries => "live_queries",
        }
    }

    /// Looks a system table up by name.
    pub fn from_name(name: &str) -> Option<SystemTable> {
        SystemTable::ALL.into_iter().find(|t| t.name() == name)
    }

    /// True if `role` may read this table at all.
    pub fn readable_by(&self, role: Role) -> bool {
        match self {
            SystemTable::Namespaces
            | SystemTable::Tables
            | SystemTable::Jobs
            | SystemTable::LiveQueries => true,
            _ => role >= Role::Dba,
        }
    }
}

fn text(s: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(s.into()))
}
fn text_opt(s: Option<String>) -> ScalarValue {
    ScalarValue::Utf8(s)
}

/// Builds a `MemTable` from column specs and rows of scalars.
fn table(
    columns: &[(&str, DataType)],
    rows: Vec<Vec<ScalarValue>>,
) -> Result<Arc<dyn TableProvider>> {
    let batch = crate::result::build_batch(columns, rows)?;
    Ok(Arc::new(MemTable::try_new(
        batch.schema(),
        vec![vec![batch]],
    )?))
}

/// The provider for system table `t` as `session` may see it.
///
/// # Errors
/// `PERMISSION_DENIED` when the role may not read it.
pub fn provider(core: &Core, session: &Session, t: SystemTable) -> Result<Arc<dyn TableProvider>> {
    if !t.readable_by(session.role) {
        session.require(Role::Dba, &format!("reading system.{}", t.name()))?;
    }
    let cat = &core.catalog;
    match t {
        SystemTable::Namespaces => {
            let tables = cat.tables(None);
            let rows = cat
                .namespaces()
                .into_iter()
                .map(|n| {
                    let count = crate::ids::count_i64(
                        tables.iter().filter(|t| t.namespace == n.name).count(),
                    );
                    vec![
                        text(&n.name),
                        text(&n.name),
                        text(serde_json::Value::Object(n.options).to_string()),
                        ScalarValue::Int64(Some(count)),
                        timestamp_ms(n.created_at),
                    ]
                })
                .collect();
            table(
                &[
                    ("namespace_id", DataType::Utf8),
                    ("name", DataType::Utf8),
                    ("options", DataType::Utf8),
                    ("table_count", DataType::Int64),
                    ("created_at", TIMESTAMP_MS),
                ],
                rows,
            )
        }
        SystemTable::Tables => {
            let rows = cat
                .tables(None)
                .iter()
                .map(|t| {
                    let stream = t.table_type == crate::catalog::TableType::Stream;
                    vec![
                        text(t.table_id()),
                        text(&t.namespace),
                        text(&t.name),
                        text(t.table_type.as_str()),
                        text(t.storage_location()),
                        text_opt((!stream).then(|| t.flush_policy.to_sql())),
                        ScalarValue::Int64(t.ttl_seconds.map(crate::ids::as_i64)),
                        ScalarValue::Int32(i32::try_from(t.schema_version).ok()),
                        timestamp_ms(t.created_at),
                        timestamp_ms(t.updated_at),
                    ]
                })
                .collect();
            table(
                &[
                    ("table_id", DataType::Utf8),
                    ("namespace_id", DataType::Utf8),
                    ("table_name", DataType::Utf8),
                    ("table_type", DataType::Utf8),
                    ("storage_location", DataType::Utf8),
                    ("flush_policy", DataType::Utf8),
                    ("ttl_seconds", DataType::Int64),
                    ("schema_version", DataType::Int32),
                    ("created_at", TIMESTAMP_MS),
                    ("updated_at", TIMESTAMP_MS),
                ],
                rows,
            )
        }
        SystemTable::TableSchemas => {
            let rows = cat
                .schema_versions()?
                .into_iter()
                .map(|v| {
                    vec![
                        text(v.table_id),
                        text(v.namespace),
                        text(v.table_name),
                        ScalarValue::Int32(i32::try_from(v.version).ok()),
                        text(v.arrow_schema.to_string()),
                        timestamp_ms(v.created_at),
                    ]
                })
                .collect();
            table(
                &[
                    ("table_id", DataType::Utf8),
                    ("namespace_id", DataType::Utf8),
                    ("table_name", DataType::Utf8),
                    ("version", DataType::Int32),
                    ("arrow_schema", DataType::Utf8),
                    ("created_at", TIMESTAMP_MS),
                ],
                rows,
            )
        }
        SystemTable::Users => {
            let rows = core
                .users
                .list()?
                .into_iter()
                .map(|u| {
                    vec![
                        text(&u.user_id),
                        text(u.username),
                        text(u.role.as_str()),
                        text_opt(u.email),
                        timestamp_ms(u.created_at),
                        timestamp_ms(u.updated_at),
                        timestamp_ms(u.deleted_at),
                    ]
                })
                .collect();
            table(
                &[
                    ("user_id", DataType::Utf8),
                    ("username", DataType::Utf8),
                    ("role", DataType::Utf8),
                    ("email", DataType::Utf8),
                    ("created_at", TIMESTAMP_MS),
                    ("updated_at", TIMESTAMP_MS),
                    ("deleted_at", TIMESTAMP_MS),
                ],
                rows,
            )
        }
        SystemTable::Storages => table(
            &[
                ("storage_id", DataType::Utf8),
                ("storage_type", DataType::Utf8),
                ("base_path", DataType::Utf8),
                ("user_path_template", DataType::Utf8),
                ("shared_path_template", DataType::Utf8),
                ("created_at", TIMESTAMP_MS),
            ],
            vec![vec![
                text("local"),
                text("filesystem"),
                text(core.storage_base().display().to_string()),
                text("{namespace}/{table}/{user_id}/"),
                text("{namespace}/{table}/"),
                timestamp_ms(core.created_at),
            ]],
        ),
        SystemTable::Jobs => {
            let rows = core
                .jobs
                .list()?
                .into_iter()
                .filter(|j| session.role >= Role::Dba || j.user_id == session.user_id)
                .map(|j| {
                    vec![
                        text(j.job_id),
                        text(j.job_type),
                        text(j.namespace_id),
                        text(j.table_name),
                        text(j.status),
                        timestamp_ms(j.created_at),
                        timestamp_ms(j.started_at),
                        timestamp_ms(j.finished_at),
                        text_opt(j.result.map(|r| r.to_string())),
                        text_opt(j.error_message),
                    ]
                })
                .collect();
            table(
                &[
                    ("job_id", DataType::Utf8),
                    ("job_type", DataType::Utf8),
                    ("namespace_id", DataType::Utf8),
                    ("table_name", DataType::Utf8),
                    ("status", DataType::Utf8),
                    ("created_at", TIMESTAMP_MS),
                    ("started_at", TIMESTAMP_MS),
                    ("finished_at", TIMESTAMP_MS),
                    ("result", DataType::Utf8),
                    ("error_message", DataType::Utf8),
                ],
                rows,
            )
        }
        SystemTable::LiveQueries => {
            let rows = core
                .live
                .list()
                .into_iter()
                .filter(|q| session.role >= Role::Dba || q.user_id == session.user_id)
                .map(|q| {
                    vec![
                        text(q.live_id),
                        text(q.connection_id),
                        text(q.user_id),
                        text(q.namespace_id),
                        text(q.table_name),
                        text(q.query),
                        text(q.options),
                        ScalarValue::Int64(Some(i64::try_from(q.changes).unwrap_or(i64::MAX))),
                        timestamp_ms(Some(q.created_at)),
                        timestamp_ms(Some(q.updated_at)),
                    ]
                })
                .collect();
            table(
                &[
                    ("live_id", DataType::Utf8),
                    ("connection_id", DataType::Utf8),
                    ("user_id", DataType::Utf8),
                    ("namespace_id", DataType::Utf8),
                    ("table_name", DataType::Utf8),
                    ("query", DataType::Utf8),
                    ("options", DataType::Utf8),
                    ("changes", DataType::Int64),
                    ("created_at", TIMESTAMP_MS),
                    ("updated_at", TIMESTAMP_MS),
                ],
                rows,
            )
        }
    }
}
