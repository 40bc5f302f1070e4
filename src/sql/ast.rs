//! The statements KalamDB parses itself ([`KalamStatement`]) and their parts.
//!
//! May import: the ground floor and `catalog/` (types, defaults, flush policies). Never the
//! rest of `sql/` or anything above.

use crate::catalog::types::{DefaultValue, FlushPolicy, SqlType, TableType};
use crate::session::Role;

/// `[ns.]table` as written; `namespace` is None when unqualified.
#[derive(Debug, Clone, PartialEq)]
pub struct TableName {
    /// Namespace, if qualified.
    pub namespace: Option<String>,
    /// Table name.
    pub name: String,
}

/// One column of CREATE TABLE / ALTER TABLE ADD COLUMN.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    /// Name (unquoted names are lower-cased).
    pub name: String,
    /// Type.
    pub sql_type: SqlType,
    /// False if NOT NULL or PRIMARY KEY.
    pub nullable: bool,
    /// DEFAULT (AUTO_INCREMENT gives SNOWFLAKE_ID()).
    pub default: Option<DefaultValue>,
    /// PRIMARY KEY.
    pub primary_key: bool,
}

/// A parsed CREATE TABLE.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    /// Table name.
    pub name: TableName,
    /// Resolved type (explicit keyword, `TYPE=`, or inferred per SPEC section 2).
    pub table_type: TableType,
    /// IF NOT EXISTS.
    pub if_not_exists: bool,
    /// Columns in order.
    pub columns: Vec<ColumnSpec>,
    /// LOCATION.
    pub location: Option<String>,
    /// Flush policy (None = default).
    pub flush_policy: Option<FlushPolicy>,
    /// TTL in seconds (STREAM).
    pub ttl_seconds: Option<u64>,
    /// BUFFER_SIZE (STREAM).
    pub buffer_size: Option<u64>,
    /// DELETED_RETENTION in seconds; None = keep forever (`off`).
    pub deleted_retention_secs: Option<u64>,
    /// STORAGE_ID.
    pub storage_id: Option<String>,
}

/// ALTER TABLE operations.
#[derive(Debug, Clone, PartialEq)]
pub enum AlterTableOp {
    /// ADD COLUMN.
    AddColumn(ColumnSpec),
    /// DROP COLUMN.
    DropColumn(String),
    /// RENAME COLUMN a TO b.
    RenameColumn(String, String),
}

/// A KalamDB statement.
#[derive(Debug, Clone, PartialEq)]
pub enum KalamStatement {
    /// CREATE NAMESPACE.
    CreateNamespace {
        /// Namespace name.
        name: String,
        /// IF NOT EXISTS given.
        if_not_exists: bool,
    },
    /// ALTER NAMESPACE ... SET OPTIONS / SET DESCRIPTION.
    AlterNamespace {
        /// Namespace name.
        name: String,
        /// `(key, value)` options to set.
        options: Vec<(String, String)>,
    },
    /// DROP NAMESPACE.
    DropNamespace {
        /// Namespace name.
        name: String,
        /// IF EXISTS given.
        if_exists: bool,
        /// CASCADE given (drop its tables too).
        cascade: bool,
    },
    /// SHOW NAMESPACES.
    ShowNamespaces,
    /// USE ns.
    Use(String),
    /// CREATE TABLE.
    CreateTable(Box<CreateTable>),
    /// DROP TABLE.
    DropTable {
        /// Table name.
        name: TableName,
        /// IF EXISTS given.
        if_exists: bool,
        /// `DROP USER|SHARED|STREAM TABLE`: the type the table must have.
        table_type: Option<TableType>,
    },
    /// ALTER TABLE.
    AlterTable {
        /// Table name.
        name: TableName,
        /// The change.
        op: AlterTableOp,
    },
    /// SHOW TABLES [IN ns].
    ShowTables(Option<String>),
    /// DESCRIBE TABLE.
    Describe(TableName),
    /// SHOW STATS FOR TABLE.
    ShowStats(TableName),
    /// CREATE USER.
    CreateUser {
        /// The user id (the quoted name).
        user_id: String,
        /// Plain-text password (hashed before storage).
        password: String,
        /// Role (default `user`).
        role: Role,
        /// E-mail.
        email: Option<String>,
    },
    /// ALTER USER ... SET PASSWORD|ROLE|EMAIL.
    AlterUser {
        /// The user id.
        user_id: String,
        /// New password.
        password: Option<String>,
        /// New role.
        role: Option<Role>,
        /// New e-mail.
        email: Option<String>,
    },
    /// DROP USER.
    DropUser {
        /// The user id.
        user_id: String,
        /// IF EXISTS given.
        if_exists: bool,
    },
    /// EXECUTE AS USER 'u' ( statement ).
    ExecuteAs {
        /// The user to act as.
        user_id: String,
        /// The inner statement's text.
        sql: String,
    },
    /// FLUSH TABLE / STORAGE FLUSH TABLE.
    FlushTable(TableName),
    /// FLUSH ALL TABLES [IN ns] / STORAGE FLUSH ALL [IN ns].
    FlushAll(Option<String>),
    /// KILL JOB 'id'.
    KillJob(String),
    /// KILL LIVE QUERY 'id'.
    KillLiveQuery(String),
    /// `SET [SESSION|LOCAL] name {=|TO} value`: lowers a limit for the rest of the request.
    Set {
        /// The setting's name as written (lower-cased).
        name: String,
        /// The value's text (number, word or string contents).
        value: String,
    },
    /// `SHOW name` for a limit of `docs/limits.md`.
    ShowSetting(String),
}
