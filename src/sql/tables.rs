//! Parsing table statements: `CREATE TABLE` (columns, DEFAULTs, LOCATION, flush policies,
//! durations, `WITH (...)` options), `ALTER TABLE`, `DROP TABLE`, `SHOW TABLES`, `DESCRIBE`
//! (SPEC section 2).
//!
//! May import: the ground floor, `catalog/` (types and defaults) and `sql::{ast, cursor,
//! lexer}`. Never `sql::parser` (which dispatches here) or anything above `sql/`.

use super::ast::{AlterTableOp, ColumnSpec, CreateTable, KalamStatement};
use super::cursor::{Cursor, invalid};
use super::lexer::{Tok, TokKind};
use crate::catalog::types::{DefaultValue, FlushPolicy, Literal, SqlType, TableType};
use crate::error::{Error, Result};

/// `DROP [USER|SHARED|STREAM] TABLE [IF EXISTS] t`.
pub fn drop(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(1);
    let table_type = match p.peek_word_at(0).as_deref() {
        Some("USER") => Some(TableType::User),
        Some("SHARED") => Some(TableType::Shared),
        Some("STREAM") => Some(TableType::Stream),
        _ => None,
    };
    if table_type.is_some() {
        p.skip(1);
    }
    p.expect_word("TABLE")?;
    let if_exists = p.eat_words(&["IF", "EXISTS"]);
    Ok(KalamStatement::DropTable {
        name: p.table_name()?,
        if_exists,
        table_type,
    })
}

/// `ALTER TABLE t ADD [COLUMN] spec | DROP [COLUMN] c | RENAME COLUMN a TO b`.
pub fn alter(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(2);
    let name = p.table_name()?;
    let op = if p.eat_word("ADD") {
        p.eat_word("COLUMN");
        AlterTableOp::AddColumn(column_spec(p)?)
    } else if p.eat_word("DROP") {
        p.eat_word("COLUMN");
        AlterTableOp::DropColumn(p.ident()?)
    } else if p.eat_words(&["RENAME", "COLUMN"]) {
        let from = p.ident()?;
        p.expect_word("TO")?;
        AlterTableOp::RenameColumn(from, p.ident()?)
    } else {
        return Err(p.unexpected("expected ADD COLUMN, DROP COLUMN or RENAME COLUMN"));
    };
    Ok(KalamStatement::AlterTable { name, op })
}

/// `SHOW TABLES [IN|FROM ns]`.
pub fn show(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(2);
    let ns = if p.eat_word("IN") || p.eat_word("FROM") {
        Some(p.ident()?)
    } else {
        None
    };
    Ok(KalamStatement::ShowTables(ns))
}

/// `DESCRIBE | DESC [TABLE] t`.
pub fn describe(p: &mut Cursor<'_>) -> Result<KalamStatement> {
    p.skip(1);
    p.eat_word("TABLE");
    Ok(KalamStatement::Describe(p.table_name()?))
}

/// Words that end a DEFAULT expression at depth 0.
const CONSTRAINT_WORDS: [&str; 6] = [
    "NOT",
    "NULL",
    "PRIMARY",
    "AUTO_INCREMENT",
    "UNIQUE",
    "DEFAULT",
];

fn column_spec(p: &mut Cursor<'_>) -> Result<ColumnSpec> {
    let name = p.ident()?;
    let type_name = match p.peek() {
        Some(TokKind::Word(w)) => w.clone(),
        _ => return Err(p.unexpected(&format!("expected a type for column '{name}'"))),
    };
    p.skip(1);
    if type_name.eq_ignore_ascii_case("DOUBLE") {
        p.eat_word("PRECISION");
    }
    let mut args = Vec::new();
    if p.eat_punct('(') {
        loop {
            args.push(p.number()?);
            if !p.eat_punct(',') {
                break;
            }
        }
        p.expect_punct(')')?;
    }
    let sql_type = SqlType::parse(&type_name, &args)?;
    let mut spec = ColumnSpec {
        name,
        sql_type,
        nullable: true,
        default: None,
        primary_key: false,
    };
    loop {
        if p.eat_words(&["NOT", "NULL"]) {
            spec.nullable = false;
        } else if p.eat_word("NULL") {
            spec.nullable = true;
        } else if p.eat_words(&["PRIMARY", "KEY"]) {
            spec.primary_key = true;
        } else if p.eat_word("UNIQUE") {
            // accepted; uniqueness is enforced for the PRIMARY KEY only
        } else if p.eat_word("AUTO_INCREMENT") || p.eat_word("AUTOINCREMENT") {
            if sql_type != SqlType::BigInt {
                return Err(invalid(format!(
                    "AUTO_INCREMENT requires a BIGINT column, '{}' is {}",
                    spec.name,
                    sql_type.sql_name()
                )));
            }
            spec.default = Some(DefaultValue::SnowflakeId);
        } else if p.eat_word("DEFAULT") {
            spec.default = Some(default_expr(p)?);
        } else {
            break;
        }
    }
    if spec.primary_key {
        spec.nullable = false;
    }
    Ok(spec)
}

fn default_expr(p: &mut Cursor<'_>) -> Result<DefaultValue> {
    let start = p.pos;
    let mut depth = 0i32;
    while let Some(t) = p.peek() {
        match t {
            TokKind::Punct('(') => depth = depth.saturating_add(1),
            TokKind::Punct(')') if depth == 0 => break,
            TokKind::Punct(')') => depth = depth.saturating_sub(1),
            TokKind::Punct(',') if depth == 0 => break,
            TokKind::Word(w)
                if depth == 0
                    && p.pos > start
                    && CONSTRAINT_WORDS.contains(&w.to_ascii_uppercase().as_str()) =>
            {
                break;
            }
            _ => {}
        }
        p.skip(1);
    }
    let toks = p.toks.get(start..p.pos).unwrap_or_default();
    let (Some(first), Some(last)) = (toks.first(), toks.last()) else {
        return Err(p.unexpected("expected a DEFAULT value"));
    };
    let text = p.sql.get(first.start..last.end).unwrap_or("");
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    Ok(match (compact.as_str(), toks) {
        ("NOW()" | "CURRENT_TIMESTAMP" | "CURRENT_TIMESTAMP()", _) => DefaultValue::Now,
        ("SNOWFLAKE_ID()", _) => DefaultValue::SnowflakeId,
        ("UUID_V7()", _) => DefaultValue::UuidV7,
        ("ULID()", _) => DefaultValue::Ulid,
        ("CURRENT_USER()" | "CURRENT_USER", _) => DefaultValue::CurrentUser,
        ("NULL", _) => DefaultValue::Literal(Literal::Null),
        ("TRUE", _) => DefaultValue::Literal(Literal::Bool(true)),
        ("FALSE", _) => DefaultValue::Literal(Literal::Bool(false)),
        (
            _,
            [
                Tok {
                    kind: TokKind::Str(s),
                    ..
                },
            ],
        ) => DefaultValue::Literal(Literal::Text(s.clone())),
        (
            _,
            [
                Tok {
                    kind: TokKind::Num(n),
                    ..
                },
            ],
        )
        | (
            _,
            [
                Tok {
                    kind: TokKind::Punct('-'),
                    ..
                },
                Tok {
                    kind: TokKind::Num(n),
                    ..
                },
            ],
        ) => {
            let n = if toks.len() == 2 {
                format!("-{n}")
            } else {
                n.clone()
            };
            match n.parse::<i64>() {
                Ok(i) => DefaultValue::Literal(Literal::Int(i)),
                Err(_) if n.parse::<f64>().is_ok() => DefaultValue::Literal(Literal::Number(n)),
                Err(_) => return Err(invalid(format!("invalid number in DEFAULT: {n}"))),
            }
        }
        _ => {
            return Err(invalid(format!(
                "unsupported DEFAULT expression: {text} (use a literal, NOW(), SNOWFLAKE_ID(), UUID_V7(), ULID() or CURRENT_USER())"
            )));
        }
    })
}

fn parse_flush_option(v: &str) -> Result<FlushPolicy> {
    let mut policy = FlushPolicy {
        rows: None,
        interval_secs: None,
    };
    for part in v.split(',') {
        let (k, n) = part.split_once(':').ok_or_else(|| {
            Error::InvalidParameter(format!(
                "invalid FLUSH_POLICY '{v}': expected 'rows:N,interval:S'"
            ))
        })?;
        match k.trim().to_ascii_lowercase().as_str() {
            "rows" => {
                policy.rows = Some(n.trim().parse().map_err(|_| {
                    Error::InvalidParameter(format!(
                        "invalid FLUSH_POLICY '{v}': '{n}' is not a whole number"
                    ))
                })?)
            }
            "interval" | "time" | "seconds" => {
                policy.interval_secs = Some(duration_text(n, "FLUSH_POLICY interval", 1)?)
            }
            other => {
                return Err(Error::InvalidParameter(format!(
                    "unknown FLUSH_POLICY key '{other}'"
                )));
            }
        }
    }
    Ok(policy)
}

/// Parses a duration in `n[s|m|h|d]` form (`3600s`, `7d`), `n UNIT` with UNIT one of
/// `SECOND(S)`, `MINUTE(S)`, `HOUR(S)`, `DAY(S)`, or a quoted `'7d'`, into seconds. A bare
/// number is `bare_unit_secs` seconds each (1 for TTL and TIME, 3600 for DELETED_RETENTION).
/// Every step is checked: a value that overflows is an error, never a wrapped number.
fn duration(p: &mut Cursor<'_>, what: &str, bare_unit_secs: u64) -> Result<u64> {
    let raw = match p.peek() {
        Some(TokKind::Num(n) | TokKind::Str(n)) => n.clone(),
        _ => {
            return Err(p.unexpected(&format!(
                "expected a duration for {what} such as 30s, 15m, 12h or 7d"
            )));
        }
    };
    p.skip(1);
    if raw.trim().bytes().all(|b| b.is_ascii_digit())
        && let Some(TokKind::Word(w)) = p.peek()
        && duration_unit(&w.to_ascii_lowercase()).is_some()
    {
        let spelled = format!("{raw}{}", w.to_ascii_lowercase());
        p.skip(1);
        return duration_text(&spelled, what, bare_unit_secs);
    }
    duration_text(&raw, what, bare_unit_secs)
}

/// Converts one duration's text (`3600`, `3600s`, `15m`, `2hours`) into seconds; the
/// rules of [`duration`] without the token stream, so quoted option values (`'interval:30s'`)
/// take the same spellings. Errors: `INVALID_PARAMETER` naming `what` on a malformed or
/// overflowing value.
fn duration_text(raw: &str, what: &str, bare_unit_secs: u64) -> Result<u64> {
    let text = raw.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let unit = suffix.trim().to_ascii_lowercase();
    let bad = || {
        Error::InvalidParameter(format!(
            "invalid {what} '{raw}': expected a whole number with an optional unit s, m, h or d"
        ))
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult = if unit.is_empty() {
        bare_unit_secs
    } else {
        duration_unit(&unit).ok_or_else(bad)?
    };
    n.checked_mul(mult)
        .ok_or_else(|| Error::InvalidParameter(format!("{what} '{raw}' is too large")))
}

/// Seconds per duration unit.
fn duration_unit(unit: &str) -> Option<u64> {
    Some(match unit {
        "s" | "sec" | "second" | "seconds" => 1,
        "m" | "min" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return None,
    })
}

/// `DELETED_RETENTION 7d | 12h | 30m | 45s | n (hours) | off`; `off` → None.
fn parse_retention(p: &mut Cursor<'_>) -> Result<Option<u64>> {
    match p.peek() {
        Some(TokKind::Word(w)) if w.eq_ignore_ascii_case("off") => {
            p.skip(1);
            Ok(None)
        }
        Some(TokKind::Str(w)) if w.eq_ignore_ascii_case("off") => {
            p.skip(1);
            Ok(None)
        }
        _ => duration(p, "DELETED_RETENTION", 3600).map(Some),
    }
}

/// `CREATE [USER|SHARED|STREAM] TABLE ...` with every SPEC clause, seed-era and `WITH (...)`.
pub fn create(p: &mut Cursor<'_>, explicit: Option<TableType>) -> Result<KalamStatement> {
    p.expect_word("CREATE")?;
    if explicit.is_some() {
        p.skip(1); // USER | SHARED | STREAM, already classified
    }
    p.expect_word("TABLE")?;
    let if_not_exists = p.eat_words(&["IF", "NOT", "EXISTS"]);
    let name = p.table_name()?;
    p.expect_punct('(')?;
    let mut columns = Vec::new();
    let mut table_pk: Option<String> = None;
    loop {
        if p.eat_words(&["PRIMARY", "KEY"]) {
            p.expect_punct('(')?;
            table_pk = Some(p.ident()?);
            if p.eat_punct(',') {
                return Err(invalid("composite PRIMARY KEYs are not supported"));
            }
            p.expect_punct(')')?;
        } else {
            columns.push(column_spec(p)?);
        }
        if !p.eat_punct(',') {
            break;
        }
    }
    p.expect_punct(')')?;
    if let Some(pk) = table_pk {
        let col = columns.iter_mut().find(|c| c.name == pk).ok_or_else(|| {
            invalid(format!(
                "PRIMARY KEY column '{pk}' is not a column of the table"
            ))
        })?;
        col.primary_key = true;
        col.nullable = false;
    }
    let mut ct = CreateTable {
        name,
        table_type: TableType::Shared,
        if_not_exists,
        columns,
        location: None,
        flush_policy: None,
        ttl_seconds: None,
        buffer_size: None,
        deleted_retention_secs: Some(7 * 86_400),
        storage_id: None,
    };
    let mut with_type: Option<TableType> = None;
    while !p.at_end() {
        if p.eat_word("LOCATION") {
            ct.location = Some(p.string()?);
        } else if p.eat_words(&["FLUSH", "POLICY"]) {
            let mut fp = FlushPolicy {
                rows: None,
                interval_secs: None,
            };
            loop {
                if p.eat_word("ROWS") {
                    fp.rows = Some(p.number()?);
                } else if p.eat_word("TIME") || p.eat_word("INTERVAL") || p.eat_word("SECONDS") {
                    fp.interval_secs = Some(duration(p, "flush TIME", 1)?);
                } else {
                    return Err(p.unexpected("expected ROWS n or TIME s"));
                }
                if !p.eat_word("OR") && !p.eat_word("AND") {
                    break;
                }
            }
            ct.flush_policy = Some(fp);
        } else if p.eat_words(&["FLUSH", "ROWS"]) {
            let fp = ct.flush_policy.get_or_insert(FlushPolicy {
                rows: None,
                interval_secs: None,
            });
            fp.rows = Some(p.number()?);
        } else if p.eat_words(&["FLUSH", "SECONDS"]) || p.eat_words(&["FLUSH", "INTERVAL"]) {
            let fp = ct.flush_policy.get_or_insert(FlushPolicy {
                rows: None,
                interval_secs: None,
            });
            fp.interval_secs = Some(duration(p, "flush TIME", 1)?);
        } else if p.eat_word("DELETED_RETENTION") {
            ct.deleted_retention_secs = parse_retention(p)?;
        } else if p.eat_word("TTL") {
            ct.ttl_seconds = Some(duration(p, "TTL", 1)?);
        } else if p.eat_word("BUFFER_SIZE") {
            ct.buffer_size = Some(p.number()?);
        } else if p.eat_word("WITH") {
            p.expect_punct('(')?;
            loop {
                let key = p.ident()?.to_ascii_uppercase();
                p.expect_punct('=')?;
                match key.as_str() {
                    "TYPE" => {
                        with_type = Some(match p.string()?.to_ascii_uppercase().as_str() {
                            "USER" => TableType::User,
                            "SHARED" => TableType::Shared,
                            "STREAM" => TableType::Stream,
                            other => {
                                return Err(Error::InvalidParameter(format!(
                                    "unknown table TYPE '{other}'"
                                )));
                            }
                        })
                    }
                    "FLUSH_POLICY" => ct.flush_policy = Some(parse_flush_option(&p.string()?)?),
                    "TTL_SECONDS" => ct.ttl_seconds = Some(duration(p, "TTL_SECONDS", 1)?),
                    "BUFFER_SIZE" => ct.buffer_size = Some(p.number()?),
                    "DELETED_RETENTION_HOURS" => {
                        ct.deleted_retention_secs =
                            Some(duration(p, "DELETED_RETENTION_HOURS", 3600)?)
                    }
                    "STORAGE_ID" => ct.storage_id = Some(p.string()?),
                    other => {
                        return Err(Error::InvalidParameter(format!(
                            "unknown table option '{other}'"
                        )));
                    }
                }
                if !p.eat_punct(',') {
                    break;
                }
            }
            p.expect_punct(')')?;
        } else {
            return Err(p.unexpected("expected a table clause (LOCATION, FLUSH POLICY, DELETED_RETENTION, TTL, BUFFER_SIZE, WITH)"));
        }
    }
    if let (Some(a), Some(b)) = (explicit, with_type)
        && a != b
    {
        return Err(invalid(format!(
            "CREATE {} TABLE conflicts with TYPE='{}'",
            a.as_str(),
            b.as_str()
        )));
    }
    ct.table_type =
        explicit
            .or(with_type)
            .unwrap_or(if ct.ttl_seconds.is_some() || ct.buffer_size.is_some() {
                TableType::Stream
            } else if ct
                .location
                .as_deref()
                .is_some_and(|l| l.contains("${user_id}"))
            {
                TableType::User
            } else {
                TableType::Shared
            });
    Ok(KalamStatement::CreateTable(Box::new(ct)))
}
