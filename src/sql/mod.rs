//! The life of a statement, part one: parsing.
//!
//! A request is split into statements ([`lexer::split_statements`]); each is checked against
//! the shape limits ([`complexity`]) and offered to [`parse`], which recognises KalamDB's own
//! statements (namespaces, table DDL, users, SHOW, DESCRIBE, EXECUTE AS, USE, FLUSH, KILL, SET)
//! and returns `None` for everything else, which the engine hands to DataFusion (SELECT, INSERT,
//! UPDATE, DELETE, EXPLAIN, ...). The parser is one file per statement family over a shared
//! token cursor (`cursor.rs`), producing the types of [`ast`].
//!
//! May import: the ground floor, which includes the catalog's value types (`catalog/types.rs`:
//! table types, flush policies, column types, defaults). Never `storage/`, the rest of
//! `catalog/`, `auth/`, the shared state or anything above.

mod admin;
pub mod ast;
pub mod complexity;
mod cursor;
pub mod lexer;
mod namespaces;
pub mod parser;
mod tables;
mod users;

pub use ast::{AlterTableOp, ColumnSpec, CreateTable, KalamStatement, TableName};
pub use lexer::split_statements;
pub use parser::{parse, parse_tokens};
