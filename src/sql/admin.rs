//! Parsing the administration statements: `FLUSH TABLE` / `STORAGE FLUSH TABLE`, `FLUSH ALL
//! TABLES` / `STORAGE FLUSH ALL`, `KILL JOB`, `KILL LIVE QUERY`, `SHOW STATS FOR TABLE`, and
//! the limits' `SET` and `SHOW` (SPEC section 2, docs/limits.md).
//!
//! May import: the ground floor and `sql::{ast, cursor, lexer}`. Never `sql::parser` (which
//! dispatches here) or anything above `sql/`.

use super::ast::KalamStatement;
use super::cursor::Cursor;
use super::lexer::TokKind;
use crate::error::Result;

/// `FLUSH TABLE t` (after `skip` leading words).
pub fn flush_table(p: &mut Cursor<'_>, skip: usize) -> Result<KalamStatement> {
    p.skip(skip);
    Ok(KalamStatement::FlushTable(p.table_name()?))
}

/// `FLUSH ALL [TABLES] [IN ns]` (after `skip` leading words).
pub fn flush_all(p: &mut Cursor<'_>, skip: usize) -> Result<KalamStatement> {
    p.skip(skip);
    p.eat_word("TABLES");
    let ns = if p.eat_word("IN") {
        Some(p.ident()?)
    } else {
        None
    };
    Ok(KalamStatement::FlushAll(ns))
}

/// `KILL JOB 'id'`.
pub fn kill_job(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(2);
    Ok(KalamStatement::KillJob(p.string()?))
}

/// `KILL LIVE QUERY 'id'`.
pub fn kill_live_query(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(2);
    p.expect_word("QUERY")?;
    Ok(KalamStatement::KillLiveQuery(p.string()?))
}

/// `SHOW STATS FOR [TABLE] t`.
pub fn show_stats(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(2);
    p.expect_word("FOR")?;
    p.eat_word("TABLE");
    Ok(KalamStatement::ShowStats(p.table_name()?))
}

/// `SET [SESSION|LOCAL] name {=|TO} value`.
pub fn set(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(1);
    let _ = p.eat_word("SESSION") || p.eat_word("LOCAL");
    let mut name = p.ident()?;
    while p.eat_punct('.') {
        name.push('.');
        name.push_str(&p.ident()?);
    }
    if !p.eat_punct('=') {
        p.expect_word("TO")?;
    }
    let value = match p.peek() {
        Some(TokKind::Num(v) | TokKind::Str(v) | TokKind::Word(v)) => v.clone(),
        _ => return Err(p.unexpected("expected a value")),
    };
    p.skip(1);
    Ok(KalamStatement::Set { name, value })
}

/// True for the names `SHOW` reports as KalamDB limits (upper-case input).
pub fn is_limit_name(name: &str) -> bool {
    crate::config::Setting::from_name(name).is_some() || name == "MAX_EXPRESSION_DEPTH"
}

/// `SHOW <limit>`.
pub fn show_setting(p: &mut Cursor<'_>, name: &str) -> Result<KalamStatement> {
    p.skip(2);
    Ok(KalamStatement::ShowSetting(name.to_ascii_lowercase()))
}
