//! The catalog: namespaces, table definitions and their schema versions, persisted in the
//! RocksDB `meta` column family (JSON records; metadata only, never rows) and cached in memory.
//!
//! DDL goes through [`Catalog`] methods that write RocksDB first and update the cache after, under
//! one DDL lock, so a crash leaves either the old or the new definition. The DataFusion catalog
//! (`query/catalog.rs`) answers from this cache on every lookup, so a restart needs no
//! re-registration.
//!
//! May import: the ground floor and `storage/`. Never `auth/`, the shared state or anything above.

pub mod types;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::hot::{HotColumn, HotLayout, scalar_payload};
use crate::storage::{Batch, CF_META, Store};
pub use types::{DefaultValue, FlushPolicy, Literal, SqlType, TableType};

/// Names no namespace may take (SPEC section 1).
pub const RESERVED_NAMESPACES: [&str; 4] = ["system", "information_schema", "kalam", "root"];
/// System column: id of the write that produced the version.
pub const SEQ: &str = "_seq";
/// System column: commit time of the version.
pub const UPDATED: &str = "_updated";
/// System column: soft-delete flag.
pub const DELETED: &str = "_deleted";

/// True for `_seq`, `_updated`, `_deleted`.
pub fn is_system_column(name: &str) -> bool {
    matches!(name, SEQ | UPDATED | DELETED)
}

/// Checks a namespace, table or column name against `^[a-z][a-z0-9_]*$`, at most 64 chars.
///
/// # Errors
/// [`Error::InvalidSql`] naming `what` and the rule.
pub fn validate_identifier(what: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSql(format!(
            "invalid {what} name '{name}': must match ^[a-z][a-z0-9_]*$ and be at most 64 characters"
        )))
    }
}

/// The placeholder a USER table's LOCATION may contain (SPEC section 5).
pub const USER_ID_PLACEHOLDER: &str = "${user_id}";

/// Longest LOCATION, in bytes.
pub const MAX_LOCATION_BYTES: usize = 255;

/// Checks a table's LOCATION (SPEC section 5): relative to the storage base (a leading `/`
/// means the base), `/`-separated segments of `A-Z a-z 0-9 _ - .`, where no segment is empty,
/// `.` or `..` or starts with `.`; `${user_id}` (exactly so spelled) may appear in USER tables.
/// User ids substituted for it are `[a-z0-9_-]`, so every resolved path is inside the base and
/// a valid object-store path; anything else is refused here rather than failing every flush.
///
/// # Errors
/// [`Error::InvalidSql`] for a STREAM table; [`Error::InvalidParameter`] naming the rule broken.
pub fn validate_location(l: &str, tt: TableType) -> Result<()> {
    if tt == TableType::Stream {
        return Err(Error::InvalidSql(
            "STREAM tables are never flushed: LOCATION is not allowed".into(),
        ));
    }
    let bad = |why: &str| Err(Error::InvalidParameter(format!("LOCATION '{l}' {why}")));
    if l.split(['/', '\\']).any(|part| part == "..") {
        return bad("must not contain '..'");
    }
    if tt == TableType::Shared && l.contains(USER_ID_PLACEHOLDER) {
        return bad("cannot contain ${user_id}: SHARED tables have no user partitions");
    }
    if l.len() > MAX_LOCATION_BYTES {
        return bad(&format!("is longer than {MAX_LOCATION_BYTES} bytes"));
    }
    let plain = l.replace(USER_ID_PLACEHOLDER, "u");
    let relative = plain.strip_prefix('/').unwrap_or(&plain);
    let relative = relative.strip_suffix('/').unwrap_or(relative);
    if relative.is_empty() {
        return bad("must name a directory inside the storage base");
    }
    for segment in relative.split('/') {
        if segment.is_empty() || segment.starts_with('.') {
            return bad("must not contain empty segments or segments starting with '.'");
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return bad(&format!(
                "contains '{c}': use letters, digits, '_', '-', '.', '/' and ${{user_id}}"
            ));
        }
    }
    Ok(())
}

/// One column of a table definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Stable id used in the row encoding; never reused within a table.
    pub id: u32,
    /// Column name.
    pub name: String,
    /// Declared type.
    pub sql_type: SqlType,
    /// False when declared NOT NULL (or PRIMARY KEY).
    pub nullable: bool,
    /// DEFAULT, if any.
    pub default: Option<DefaultValue>,
    /// True for the PRIMARY KEY column.
    pub primary_key: bool,
    /// Schema version that added the column (rows written before it read its DEFAULT).
    #[serde(default = "first_version")]
    pub added_in: u32,
}

fn first_version() -> u32 {
    1
}

/// Longest STREAM `TTL` and `DELETED_RETENTION`: ten years, in seconds. Longer values are
/// rejected at CREATE TABLE rather than overflowing the millisecond arithmetic of cut-offs.
pub const MAX_DURATION_SECS: u64 = 10 * 365 * 86_400;

/// Largest STREAM `BUFFER_SIZE` (rows per partition), the same bound as `FLUSH ROWS`.
pub const MAX_BUFFER_SIZE: u64 = 1_000_000;

/// Most columns a table may have, PostgreSQL's limit (1,600).
pub const MAX_COLUMNS: usize = 1600;

/// A table definition (the current schema version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    /// Internal id, unique forever; prefixes the table's row keys.
    pub id: u64,
    /// Namespace name.
    pub namespace: String,
    /// Table name.
    pub name: String,
    /// USER, SHARED or STREAM.
    pub table_type: TableType,
    /// Columns in creation order (dropped ones removed).
    pub columns: Vec<ColumnDef>,
    /// Next column id to hand out.
    pub next_column_id: u32,
    /// Bumped by every ALTER TABLE; starts at 1.
    pub schema_version: u32,
    /// `LOCATION` (may contain `${user_id}`), relative to the storage base.
    pub location: Option<String>,
    /// Flush policy (ignored for STREAM tables).
    pub flush_policy: FlushPolicy,
    /// STREAM: rows older than this many seconds are never returned.
    pub ttl_seconds: Option<u64>,
    /// STREAM: at most this many rows are kept per partition.
    pub buffer_size: Option<u64>,
    /// Tombstones older than this many seconds are purged; None = never.
    pub deleted_retention_secs: Option<u64>,
    /// Storage id (`local`).
    pub storage_id: String,
    /// Creation time, ms since the Unix epoch.
    pub created_at: i64,
    /// Last DDL time, ms since the Unix epoch.
    pub updated_at: i64,
}

impl TableDef {
    /// `ns:t`, the id shown in system tables.
    pub fn table_id(&self) -> String {
        format!("{}:{}", self.namespace, self.name)
    }

    /// `ns.t`, as users write it.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    /// Where the table's Parquet files go, relative to the storage base (SPEC section 5): the
    /// LOCATION as written, else `<ns>/<table>/${user_id}/` (USER/STREAM) or `<ns>/<table>/`.
    pub fn storage_location(&self) -> String {
        match &self.location {
            Some(l) => l.clone(),
            None if self.table_type.is_partitioned() => {
                format!("{}/{}/${{user_id}}/", self.namespace, self.name)
            }
            None => format!("{}/{}/", self.namespace, self.name),
        }
    }

    /// The PRIMARY KEY column, if declared.
    pub fn primary_key(&self) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.primary_key)
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The Arrow schema of the user's columns (all nullable in Arrow; NOT NULL is enforced on
    /// write, so rows written before an ADD COLUMN still read).
    pub fn user_schema(&self) -> Schema {
        Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.sql_type.arrow_type(), true))
                .collect::<Vec<_>>(),
        )
    }

    /// The system columns of this table type: `_seq, _updated, _deleted` (STREAM: `_seq`).
    pub fn system_fields(&self) -> Vec<Field> {
        let mut f = vec![Field::new(SEQ, DataType::Int64, false)];
        if self.table_type != TableType::Stream {
            f.push(Field::new(
                UPDATED,
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ));
            f.push(Field::new(DELETED, DataType::Boolean, false));
        }
        f
    }

    /// How to decode the hot tier into the columns `columns` (indices into
    /// `arrow_schema(true)`) as of `now_ms`: expired STREAM rows are skipped.
    ///
    /// # Errors
    /// [`Error::Internal`] for an index outside the schema; [`Error::InvalidSql`] if a stored
    /// DEFAULT no longer fits its column.
    pub fn hot_layout(&self, columns: &[usize], now_ms: i64) -> Result<HotLayout> {
        let full = self.arrow_schema(true);
        let mut sources = Vec::with_capacity(columns.len());
        for &i in columns {
            let field = full.fields().get(i).ok_or_else(|| {
                Error::Internal(format!("column {i} is outside the table's schema"))
            })?;
            sources.push(match self.columns.get(i) {
                Some(c) => HotColumn::Cell {
                    id: c.id,
                    added_in: c.added_in,
                    default: match &c.default {
                        Some(d) => match d.literal_scalar(&c.sql_type.arrow_type())? {
                            Some(s) if !s.is_null() => Some(scalar_payload(&s)?),
                            _ => None,
                        },
                        None => None,
                    },
                },
                None => match field.name().as_str() {
                    SEQ => HotColumn::Seq,
                    UPDATED => HotColumn::Updated,
                    _ => HotColumn::Deleted,
                },
            });
        }
        let min_seq = match (self.table_type, self.ttl_seconds) {
            (TableType::Stream, Some(ttl)) => crate::ids::cutoff_seq(now_ms, ttl),
            _ => 0,
        };
        Ok(HotLayout {
            schema: Arc::new(full.project(columns)?),
            columns: sources,
            min_seq,
        })
    }

    /// User columns, then (if `with_system`) the system columns.
    pub fn arrow_schema(&self, with_system: bool) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .user_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        if with_system {
            fields.extend(self.system_fields());
        }
        Arc::new(Schema::new(fields))
    }
}

/// A namespace record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceDef {
    /// Name.
    pub name: String,
    /// Options JSON object (e.g. `{"description": "..."}`).
    pub options: serde_json::Map<String, serde_json::Value>,
    /// Creation time, ms since the Unix epoch.
    pub created_at: i64,
}

/// One entry of `system.table_schemas`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaVersion {
    /// `ns:t`.
    pub table_id: String,
    /// Namespace.
    pub namespace: String,
    /// Table name.
    pub table_name: String,
    /// Version number (1 at CREATE).
    pub version: u32,
    /// The user columns as `[{"name","data_type","nullable"}]`.
    pub arrow_schema: serde_json::Value,
    /// When this version was created, ms since the Unix epoch.
    pub created_at: i64,
}

#[derive(Default)]
struct State {
    namespaces: BTreeMap<String, NamespaceDef>,
    tables: BTreeMap<(String, String), Arc<TableDef>>,
}

/// The catalog cache over the `meta` column family.
pub struct Catalog {
    store: Arc<Store>,
    state: RwLock<State>,
    /// Serialises DDL so check-then-write is atomic.
    ddl: Mutex<()>,
}

fn ns_key(ns: &str) -> Vec<u8> {
    format!("ns/{ns}").into_bytes()
}
fn table_key(ns: &str, t: &str) -> Vec<u8> {
    format!("tbl/{ns}/{t}").into_bytes()
}
fn schema_key(table_id: u64, version: u32) -> Vec<u8> {
    let mut k = b"schema/".to_vec();
    k.extend_from_slice(&table_id.to_be_bytes());
    k.extend_from_slice(&version.to_be_bytes());
    k
}
const TABLE_ID_COUNTER: &[u8] = b"ctr/table_id";

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}
fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Catalog {
    /// Loads every namespace and table record from `store`.
    ///
    /// # Errors
    /// [`Error::Internal`] on storage failure or an unreadable record.
    pub fn load(store: Arc<Store>) -> Result<Catalog> {
        let mut state = State::default();
        for (_, v) in store.scan_prefix(CF_META, b"ns/")? {
            let ns: NamespaceDef = serde_json::from_slice(&v)?;
            state.namespaces.insert(ns.name.clone(), ns);
        }
        for (_, v) in store.scan_prefix(CF_META, b"tbl/")? {
            let t: TableDef = serde_json::from_slice(&v)?;
            state
                .tables
                .insert((t.namespace.clone(), t.name.clone()), Arc::new(t));
        }
        Ok(Catalog {
            store,
            state: RwLock::new(state),
            ddl: Mutex::new(()),
        })
    }

    /// Takes the DDL lock (held for a whole check-then-write DDL statement).
    pub fn ddl_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.ddl.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// All namespaces, by name.
    pub fn namespaces(&self) -> Vec<NamespaceDef> {
        read_lock(&self.state)
            .namespaces
            .values()
            .cloned()
            .collect()
    }

    /// One namespace.
    pub fn namespace(&self, name: &str) -> Option<NamespaceDef> {
        read_lock(&self.state).namespaces.get(name).cloned()
    }

    /// Fails with NAMESPACE_NOT_FOUND unless `ns` exists.
    pub fn require_namespace(&self, ns: &str) -> Result<()> {
        if self.namespace(ns).is_some() {
            Ok(())
        } else {
            Err(Error::NamespaceNotFound(format!(
                "namespace '{ns}' does not exist: run CREATE NAMESPACE {ns} first"
            )))
        }
    }

    /// All tables, optionally of one namespace, ordered by (namespace, name).
    pub fn tables(&self, ns: Option<&str>) -> Vec<Arc<TableDef>> {
        read_lock(&self.state)
            .tables
            .values()
            .filter(|t| ns.is_none_or(|n| t.namespace == n))
            .cloned()
            .collect()
    }

    /// One table.
    pub fn table(&self, ns: &str, name: &str) -> Option<Arc<TableDef>> {
        read_lock(&self.state)
            .tables
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// One table, or TABLE_NOT_FOUND (NAMESPACE_NOT_FOUND if the namespace is missing too).
    pub fn require_table(&self, ns: &str, name: &str) -> Result<Arc<TableDef>> {
        if let Some(t) = self.table(ns, name) {
            return Ok(t);
        }
        self.require_namespace(ns)?;
        Err(Error::TableNotFound(format!(
            "table '{ns}.{name}' does not exist"
        )))
    }

    /// Writes a namespace record.
    pub fn put_namespace(&self, ns: NamespaceDef) -> Result<()> {
        self.store.put_meta(&ns_key(&ns.name), &ns)?;
        write_lock(&self.state)
            .namespaces
            .insert(ns.name.clone(), ns);
        Ok(())
    }

    /// Removes a namespace record (its tables must already be gone).
    pub fn delete_namespace(&self, name: &str) -> Result<()> {
        let mut b = Batch::default();
        b.delete(&self.store, CF_META, &ns_key(name));
        self.store.write(b)?;
        write_lock(&self.state).namespaces.remove(name);
        Ok(())
    }

    /// Hands out a new table id (persisted).
    pub fn next_table_id(&self) -> Result<u64> {
        let cur = match self.store.get(CF_META, TABLE_ID_COUNTER)? {
            Some(v) => u64::from_le_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| Error::Internal("bad table id counter".into()))?,
            ),
            None => 0,
        };
        let next = cur
            .checked_add(1)
            .ok_or_else(|| Error::Internal("table id counter exhausted".into()))?;
        let mut b = Batch::default();
        b.put(&self.store, CF_META, TABLE_ID_COUNTER, &next.to_le_bytes());
        self.store.write(b)?;
        Ok(next)
    }

    /// Writes a table definition and a new `system.table_schemas` entry for its version.
    pub fn put_table(&self, t: TableDef) -> Result<()> {
        let version = SchemaVersion {
            table_id: t.table_id(),
            namespace: t.namespace.clone(),
            table_name: t.name.clone(),
            version: t.schema_version,
            arrow_schema: serde_json::Value::Array(
                t.columns
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "name": c.name,
                            "data_type": c.sql_type.sql_name(),
                            "nullable": c.nullable,
                        })
                    })
                    .collect(),
            ),
            created_at: t.updated_at,
        };
        let mut b = Batch::default();
        b.put(
            &self.store,
            CF_META,
            &table_key(&t.namespace, &t.name),
            &serde_json::to_vec(&t)?,
        );
        b.put(
            &self.store,
            CF_META,
            &schema_key(t.id, t.schema_version),
            &serde_json::to_vec(&version)?,
        );
        self.store.write(b)?;
        write_lock(&self.state)
            .tables
            .insert((t.namespace.clone(), t.name.clone()), Arc::new(t));
        Ok(())
    }

    /// Removes a table definition and its schema history in `batch` (committed by the caller
    /// together with the row deletion), and from the cache once `commit` is called.
    pub fn delete_table_in(&self, b: &mut Batch, t: &TableDef) {
        b.delete(&self.store, CF_META, &table_key(&t.namespace, &t.name));
        let from = schema_key(t.id, 0);
        let to = schema_key(t.id.saturating_add(1), 0);
        b.delete_range(&self.store, CF_META, &from, &to);
    }

    /// Drops a table from the cache (after its batch committed).
    pub fn forget_table(&self, ns: &str, name: &str) {
        write_lock(&self.state)
            .tables
            .remove(&(ns.to_string(), name.to_string()));
    }

    /// Every schema version of every table, ordered by table then version.
    pub fn schema_versions(&self) -> Result<Vec<SchemaVersion>> {
        let mut out = Vec::new();
        for (_, v) in self.store.scan_prefix(CF_META, b"schema/")? {
            out.push(serde_json::from_slice(&v)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_the_naming_rule() {
        assert!(validate_identifier("namespace", "app_1").is_ok());
        for bad in ["", "1app", "App", "a-b", &"a".repeat(65)] {
            assert_eq!(
                validate_identifier("namespace", bad).unwrap_err().code(),
                "INVALID_SQL"
            );
        }
    }

    #[test]
    fn locations_are_safe_relative_paths() {
        for ok in [
            "a",
            "/a/b/",
            "chat/${user_id}/msgs",
            "x/v1.2/user_${user_id}",
            "A-b_c",
        ] {
            assert!(validate_location(ok, TableType::User).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/",
            "..",
            "a/../b",
            "${USER_ID}/x",
            "~/x",
            "x/./y",
            "a#b",
            "q?x=1",
            "a//b",
            "ä/x",
            "a b",
            "a\\b",
            ".hidden",
            "$x",
            "%2e%2e",
            "a:b",
        ] {
            let e = validate_location(bad, TableType::User).unwrap_err();
            assert_eq!(e.code(), "INVALID_PARAMETER", "{bad}");
        }
        assert!(validate_location("x/${user_id}", TableType::Shared).is_err());
        assert!(validate_location(&"a".repeat(256), TableType::Shared).is_err());
    }

    #[test]
    fn flush_policy_bounds() {
        assert!(
            FlushPolicy {
                rows: Some(1_000_000),
                interval_secs: Some(86_400)
            }
            .validate()
            .is_ok()
        );
        assert!(
            FlushPolicy {
                rows: Some(0),
                interval_secs: None
            }
            .validate()
            .is_err()
        );
        assert!(
            FlushPolicy {
                rows: None,
                interval_secs: Some(86_401)
            }
            .validate()
            .is_err()
        );
    }
}
