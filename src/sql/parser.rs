//! Recursive-descent parser for KalamDB's own statements (SPEC section 2), both the seed-era
//! spellings and the `WITH (...)` options: [`parse_tokens`] reads the first words and hands the
//! statement to its family's parser — `namespaces.rs`, `tables.rs`, `users.rs`,
//! `admin.rs` — or returns `None` for DataFusion.
//!
//! May import: the ground floor (with `catalog/types.rs`) and the rest of `sql/`. Never
//! anything above `sql/`.

use super::admin;
use super::ast::KalamStatement;
use super::cursor::Cursor;
use super::lexer::{Tok, tokenize};
use super::namespaces;
use super::tables;
use super::users;
use crate::catalog::types::TableType;
use crate::error::Result;

/// Parses one statement; `Ok(None)` means "not ours, give it to DataFusion".
///
/// # Errors
/// [`crate::error::Error::InvalidSql`] (or `INVALID_PARAMETER` for out-of-range options) when
/// the statement is one of ours but malformed.
pub fn parse(sql: &str) -> Result<Option<KalamStatement>> {
    parse_tokens(sql, &tokenize(sql)?)
}

/// [`parse`] over tokens already produced by [`tokenize`] for `sql` (the engine lexes each
/// statement once and reuses the tokens).
///
/// # Errors
/// As [`parse`].
pub fn parse_tokens(sql: &str, toks: &[Tok]) -> Result<Option<KalamStatement>> {
    let mut p = Cursor::new(sql, toks);
    let first = p.peek_word_at(0).unwrap_or_default();
    let second = p.peek_word_at(1).unwrap_or_default();
    let third = p.peek_word_at(2).unwrap_or_default();
    let p = &mut p;
    let stmt = match (first.as_str(), second.as_str()) {
        ("CREATE", "NAMESPACE" | "SCHEMA") => namespaces::create(p)?,
        ("ALTER", "NAMESPACE") => namespaces::alter(p)?,
        ("DROP", "NAMESPACE" | "SCHEMA") => namespaces::drop(p)?,
        ("SHOW", "NAMESPACES" | "SCHEMAS") => {
            p.skip(2);
            KalamStatement::ShowNamespaces
        }
        ("USE", _) => namespaces::use_namespace(p)?,
        ("CREATE", "TABLE") => tables::create(p, None)?,
        ("CREATE", "USER" | "SHARED" | "STREAM") if third == "TABLE" => {
            let t = match second.as_str() {
                "USER" => TableType::User,
                "SHARED" => TableType::Shared,
                _ => TableType::Stream,
            };
            tables::create(p, Some(t))?
        }
        ("DROP", "TABLE") | ("DROP", "USER" | "SHARED" | "STREAM")
            if second == "TABLE" || third == "TABLE" =>
        {
            tables::drop(p)?
        }
        ("ALTER", "TABLE") => tables::alter(p)?,
        ("SHOW", "TABLES") => tables::show(p)?,
        ("DESCRIBE" | "DESC", _) => tables::describe(p)?,
        ("CREATE", "USER") => users::create(p)?,
        ("ALTER", "USER") => users::alter(p)?,
        ("DROP", "USER") => users::drop(p)?,
        ("EXECUTE", "AS") => users::execute_as(p)?,
        ("SHOW", "STATS") => admin::show_stats(p)?,
        ("FLUSH", "TABLE") => admin::flush_table(p, 2)?,
        ("STORAGE", "FLUSH") if third == "TABLE" => admin::flush_table(p, 3)?,
        ("FLUSH", "ALL") => admin::flush_all(p, 2)?,
        ("STORAGE", "FLUSH") => admin::flush_all(p, 3)?,
        ("KILL", "JOB") => admin::kill_job(p)?,
        ("KILL", "LIVE") => admin::kill_live_query(p)?,
        ("SET", _) => admin::set(p)?,
        ("SHOW", name) if admin::is_limit_name(name) => admin::show_setting(p, name)?,
        _ => return Ok(None),
    };
    p.expect_end()?;
    Ok(Some(stmt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::types::{DefaultValue, FlushPolicy, Literal};
    use crate::sql::ast::CreateTable;

    fn create(sql: &str) -> CreateTable {
        match parse(sql).unwrap() {
            Some(KalamStatement::CreateTable(c)) => *c,
            other => panic!("not a create table: {other:?}"),
        }
    }

    #[test]
    fn table_type_inference_follows_spec() {
        assert_eq!(
            create("CREATE TABLE a.t (id INT) TTL 10").table_type,
            TableType::Stream
        );
        assert_eq!(
            create("CREATE TABLE a.t (id INT) LOCATION '/x/${user_id}'").table_type,
            TableType::User
        );
        assert_eq!(
            create("CREATE TABLE a.t (id INT)").table_type,
            TableType::Shared
        );
        assert_eq!(
            create("CREATE TABLE a.t (id INT) WITH (TYPE='USER')").table_type,
            TableType::User
        );
        assert!(parse("CREATE SHARED TABLE a.t (id INT) WITH (TYPE='USER')").is_err());
    }

    #[test]
    fn flush_policy_spellings_agree() {
        let want = Some(FlushPolicy {
            rows: Some(100),
            interval_secs: Some(60),
        });
        assert_eq!(
            create("CREATE TABLE a.t (id INT) FLUSH POLICY ROWS 100 OR TIME 60").flush_policy,
            want
        );
        assert_eq!(
            create("CREATE TABLE a.t (id INT) FLUSH ROWS 100 FLUSH SECONDS 60").flush_policy,
            want
        );
        assert_eq!(
            create("CREATE TABLE a.t (id INT) WITH (FLUSH_POLICY='rows:100,interval:60')")
                .flush_policy,
            want
        );
    }

    #[test]
    fn columns_defaults_and_keys() {
        let c = create(
            "CREATE USER TABLE app.m (id BIGINT AUTO_INCREMENT PRIMARY KEY, who TEXT DEFAULT CURRENT_USER(), n INT NOT NULL DEFAULT -3, s TEXT DEFAULT 'a''b')",
        );
        assert_eq!(c.columns[0].default, Some(DefaultValue::SnowflakeId));
        assert!(c.columns[0].primary_key && !c.columns[0].nullable);
        assert_eq!(c.columns[1].default, Some(DefaultValue::CurrentUser));
        assert_eq!(
            c.columns[2].default,
            Some(DefaultValue::Literal(Literal::Int(-3)))
        );
        assert!(!c.columns[2].nullable);
        assert_eq!(
            c.columns[3].default,
            Some(DefaultValue::Literal(Literal::Text("a'b".into())))
        );
    }

    #[test]
    fn execute_as_keeps_inner_text() {
        let s = parse("EXECUTE AS USER 'alice' (SELECT * FROM t WHERE x = ')')").unwrap();
        assert_eq!(
            s,
            Some(KalamStatement::ExecuteAs {
                user_id: "alice".into(),
                sql: "SELECT * FROM t WHERE x = ')'".into()
            })
        );
    }

    #[test]
    fn other_statements_go_to_datafusion() {
        assert_eq!(parse("SELECT 1").unwrap(), None);
        assert_eq!(parse("INSERT INTO t VALUES (1)").unwrap(), None);
        assert!(parse("CREATE NAMESPACE").is_err());
    }
}
