//! Parsing `CREATE | ALTER | DROP NAMESPACE`, `SHOW NAMESPACES` and `USE` (SPEC section 2;
//! `SCHEMA` is accepted for `NAMESPACE`).
//!
//! May import: the ground floor and `sql::{ast, cursor, lexer}`. Never `sql::parser` (which
//! dispatches here) or anything above `sql/`.

use super::ast::KalamStatement;
use super::cursor::Cursor;
use super::lexer::TokKind;
use crate::error::Result;

/// `CREATE NAMESPACE [IF NOT EXISTS] ns`.
pub fn create(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(2);
    let if_not_exists = p.eat_words(&["IF", "NOT", "EXISTS"]);
    Ok(KalamStatement::CreateNamespace {
        name: p.ident()?,
        if_not_exists,
    })
}

/// `ALTER NAMESPACE ns SET OPTIONS (k = v, ...)` or `SET DESCRIPTION '...'`.
pub fn alter(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(2);
    let name = p.ident()?;
    p.expect_word("SET")?;
    let mut options = Vec::new();
    if p.eat_word("DESCRIPTION") {
        options.push(("description".to_string(), p.string()?));
    } else {
        p.expect_word("OPTIONS")?;
        p.expect_punct('(')?;
        loop {
            let k = p.ident()?;
            p.expect_punct('=')?;
            let v = match p.peek() {
                Some(TokKind::Num(n)) => {
                    let n = n.clone();
                    p.skip(1);
                    n
                }
                _ => p.string()?,
            };
            options.push((k, v));
            if !p.eat_punct(',') {
                break;
            }
        }
        p.expect_punct(')')?;
    }
    Ok(KalamStatement::AlterNamespace { name, options })
}

/// `DROP NAMESPACE [IF EXISTS] ns [CASCADE]`.
pub fn drop(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(2);
    let if_exists = p.eat_words(&["IF", "EXISTS"]);
    let name = p.ident()?;
    let cascade = p.eat_word("CASCADE");
    Ok(KalamStatement::DropNamespace {
        name,
        if_exists,
        cascade,
    })
}

/// `USE [NAMESPACE] ns`.
pub fn use_namespace(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(1);
    p.eat_word("NAMESPACE");
    Ok(KalamStatement::Use(p.ident()?))
}
