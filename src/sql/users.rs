//! Parsing `CREATE | ALTER | DROP USER` and `EXECUTE AS USER 'u' ( statement )` (SPEC
//! section 2).
//!
//! May import: the ground floor and `sql::{ast, cursor, lexer}`. Never `sql::parser` (which
//! dispatches here) or anything above `sql/`.

use super::ast::KalamStatement;
use super::cursor::{Cursor, invalid};
use super::lexer::TokKind;
use crate::error::Result;
use crate::session::Role;

/// `CREATE USER 'id' WITH PASSWORD '...' [ROLE r] [EMAIL '...']`.
pub fn create(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(2);
    let user_id = p.user_id()?;
    p.expect_word("WITH")?;
    p.expect_word("PASSWORD")?;
    let password = p.string()?;
    let (mut role, mut email) = (Role::User, None);
    loop {
        if p.eat_word("ROLE") {
            role = Role::parse(&p.ident()?)?;
        } else if p.eat_word("EMAIL") {
            email = Some(p.string()?);
        } else {
            break;
        }
    }
    Ok(KalamStatement::CreateUser {
        user_id,
        password,
        role,
        email,
    })
}

/// `ALTER USER 'id' SET PASSWORD '...' | SET ROLE r | SET EMAIL '...'`.
pub fn alter(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(2);
    let user_id = p.user_id()?;
    p.expect_word("SET")?;
    let (mut password, mut role, mut email) = (None, None, None);
    if p.eat_word("PASSWORD") {
        password = Some(p.string()?);
    } else if p.eat_word("ROLE") {
        role = Some(Role::parse(&p.ident()?)?);
    } else if p.eat_word("EMAIL") {
        email = Some(p.string()?);
    } else {
        return Err(p.unexpected("expected SET PASSWORD, SET ROLE or SET EMAIL"));
    }
    Ok(KalamStatement::AlterUser {
        user_id,
        password,
        role,
        email,
    })
}

/// `DROP USER [IF EXISTS] 'id'`.
pub fn drop(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(2);
    let if_exists = p.eat_words(&["IF", "EXISTS"]);
    Ok(KalamStatement::DropUser {
        user_id: p.user_id()?,
        if_exists,
    })
}

/// `EXECUTE AS USER 'id' ( statement )`: the inner statement is kept as text, verbatim.
pub fn execute_as(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(2);
    p.expect_word("USER")?;
    let user_id = p.user_id()?;
    let open = p.toks.get(p.pos).cloned();
    p.expect_punct('(')?;
    let Some(last) = p.toks.last().cloned() else {
        return Err(p.unexpected("expected ')'"));
    };
    if last.kind != TokKind::Punct(')') || p.toks.len() <= p.pos {
        return Err(invalid("EXECUTE AS USER expects ( <one statement> )"));
    }
    let start = open.map(|t| t.end).unwrap_or(0);
    let inner = p
        .sql
        .get(start..last.start)
        .unwrap_or("")
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string();
    if inner.is_empty() {
        return Err(invalid("EXECUTE AS USER expects ( <one statement> )"));
    }
    // The inner statement's tokens belong to it, not to this statement.
    p.pos = p.toks.len();
    Ok(KalamStatement::ExecuteAs {
        user_id,
        sql: inner,
    })
}
