//! The life of a statement, part one: parsing.
//!
//! A request is split into statements ([`lexer::split_statements`]); each is offered to
//! [`parse`], which recognises KalamDB's own statements (namespaces, table DDL, users, SHOW,
//! DESCRIBE, EXECUTE AS, USE, FLUSH, KILL) and returns `None` for everything else, which the
//! engine hands to DataFusion (SELECT, INSERT, UPDATE, DELETE, EXPLAIN, ...).

pub mod complexity;
pub mod lexer;
pub mod parser;

pub use lexer::split_statements;
pub use parser::{
    AlterTableOp, ColumnSpec, CreateTable, KalamStatement, TableName, parse, parse_tokens,
};
