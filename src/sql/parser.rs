//! Recursive-descent parser for KalamDB's own statements (SPEC section 2), both the seed-era
//! spellings and the `WITH (...)` options.

use crate::catalog::{DefaultValue, FlushPolicy, Literal, SqlType, TableType};
use crate::error::{Error, Result};
use crate::session::Role;

use super::lexer::{Tok, TokKind, tokenize};

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

struct P<'a> {
    sql: &'a str,
    toks: &'a [Tok],
    pos: usize,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidSql(msg.into())
}

impl<'a> P<'a> {
    fn skip(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n);
    }
    fn peek(&self) -> Option<&TokKind> {
        self.toks.get(self.pos).map(|t| &t.kind)
    }
    fn peek_word_at(&self, offset: usize) -> Option<String> {
        match self
            .toks
            .get(self.pos.saturating_add(offset))
            .map(|t| &t.kind)
        {
            Some(TokKind::Word(w)) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }
    fn is_word(&self, w: &str) -> bool {
        self.peek_word_at(0).as_deref() == Some(w)
    }
    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.skip(1);
            true
        } else {
            false
        }
    }
    fn eat_words(&mut self, ws: &[&str]) -> bool {
        if ws
            .iter()
            .enumerate()
            .all(|(i, w)| self.peek_word_at(i).as_deref() == Some(*w))
        {
            self.skip(ws.len());
            true
        } else {
            false
        }
    }
    fn expect_word(&mut self, w: &str) -> Result<()> {
        if self.eat_word(w) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected {w}")))
        }
    }
    fn eat_punct(&mut self, c: char) -> bool {
        if self.peek() == Some(&TokKind::Punct(c)) {
            self.skip(1);
            true
        } else {
            false
        }
    }
    fn expect_punct(&mut self, c: char) -> Result<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected '{c}'")))
        }
    }
    fn unexpected(&self, what: &str) -> Error {
        match self.toks.get(self.pos) {
            Some(t) => invalid(format!(
                "{what}, found '{}'",
                self.sql.get(t.start..t.end).unwrap_or("?")
            )),
            None => invalid(format!("{what}, found end of statement")),
        }
    }
    fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }
    fn expect_end(&self) -> Result<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.unexpected("unexpected trailing input"))
        }
    }
    /// An identifier: unquoted words are lower-cased, quoted ones kept.
    fn ident(&mut self) -> Result<String> {
        let r = match self.peek() {
            Some(TokKind::Word(w)) => w.to_ascii_lowercase(),
            Some(TokKind::QuotedIdent(w)) => w.clone(),
            _ => return Err(self.unexpected("expected a name")),
        };
        self.skip(1);
        Ok(r)
    }
    fn table_name(&mut self) -> Result<TableName> {
        let first = self.ident()?;
        if self.eat_punct('.') {
            Ok(TableName {
                namespace: Some(first),
                name: self.ident()?,
            })
        } else {
            Ok(TableName {
                namespace: None,
                name: first,
            })
        }
    }
    fn string(&mut self) -> Result<String> {
        match self.peek() {
            Some(TokKind::Str(s)) => {
                let s = s.clone();
                self.skip(1);
                Ok(s)
            }
            _ => Err(self.unexpected("expected a quoted string")),
        }
    }
    /// A user id: quoted string or bare word.
    fn user_id(&mut self) -> Result<String> {
        match self.peek() {
            Some(TokKind::Str(_)) => self.string(),
            _ => self.ident(),
        }
    }
    fn number(&mut self) -> Result<u64> {
        match self.peek() {
            Some(TokKind::Num(n)) => {
                let v = n.parse::<u64>().map_err(|_| {
                    if n.bytes().all(|b| b.is_ascii_digit()) {
                        Error::InvalidParameter(format!("number {n} is out of range"))
                    } else {
                        self.unexpected("expected a whole number")
                    }
                })?;
                self.skip(1);
                Ok(v)
            }
            Some(TokKind::Str(s)) if s.parse::<u64>().is_ok() => {
                let v = s.parse::<u64>().unwrap_or_default();
                self.skip(1);
                Ok(v)
            }
            _ => Err(self.unexpected("expected a whole number")),
        }
    }
}

/// Parses one statement; `Ok(None)` means "not ours, give it to DataFusion".
///
/// # Errors
/// [`Error::InvalidSql`] (or `INVALID_PARAMETER` for out-of-range options) when the statement is
/// one of ours but malformed.
pub fn parse(sql: &str) -> Result<Option<KalamStatement>> {
    parse_tokens(sql, &tokenize(sql)?)
}

/// [`parse`] over tokens already produced by [`tokenize`] for `sql` (the engine lexes each
/// statement once and reuses the tokens).
///
/// # Errors
/// As [`parse`].
pub fn parse_tokens(sql: &str, toks: &[Tok]) -> Result<Option<KalamStatement>> {
    let mut p = P { sql, toks, pos: 0 };
    let first = p.peek_word_at(0).unwrap_or_default();
    let second = p.peek_word_at(1).unwrap_or_default();
    let third = p.peek_word_at(2).unwrap_or_default();
    let stmt = match (first.as_str(), second.as_str()) {
        ("CREATE", "NAMESPACE") | ("CREATE", "SCHEMA") => {
            p.skip(2);
            let if_not_exists = p.eat_words(&["IF", "NOT", "EXISTS"]);
            KalamStatement::CreateNamespace {
                name: p.ident()?,
                if_not_exists,
            }
        }
        ("ALTER", "NAMESPACE") => {
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
            KalamStatement::AlterNamespace { name, options }
        }
        ("DROP", "NAMESPACE") | ("DROP", "SCHEMA") => {
            p.skip(2);
            let if_exists = p.eat_words(&["IF", "EXISTS"]);
            let name = p.ident()?;
            let cascade = p.eat_word("CASCADE");
            KalamStatement::DropNamespace {
                name,
                if_exists,
                cascade,
            }
        }
        ("SHOW", "NAMESPACES") | ("SHOW", "SCHEMAS") => {
            p.skip(2);
            KalamStatement::ShowNamespaces
        }
        ("USE", _) => {
            p.skip(1);
            p.eat_word("NAMESPACE");
            KalamStatement::Use(p.ident()?)
        }
        ("CREATE", "TABLE") => create_table(&mut p, None)?,
        ("CREATE", "USER" | "SHARED" | "STREAM") if third == "TABLE" => {
            let t = match second.as_str() {
                "USER" => TableType::User,
                "SHARED" => TableType::Shared,
                _ => TableType::Stream,
            };
            create_table(&mut p, Some(t))?
        }
        ("DROP", "TABLE") | ("DROP", "USER" | "SHARED" | "STREAM")
            if second == "TABLE" || third == "TABLE" =>
        {
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
            KalamStatement::DropTable {
                name: p.table_name()?,
                if_exists,
                table_type,
            }
        }
        ("ALTER", "TABLE") => {
            p.skip(2);
            let name = p.table_name()?;
            let op = if p.eat_word("ADD") {
                p.eat_word("COLUMN");
                AlterTableOp::AddColumn(column_spec(&mut p)?)
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
            KalamStatement::AlterTable { name, op }
        }
        ("SHOW", "TABLES") => {
            p.skip(2);
            let ns = if p.eat_word("IN") || p.eat_word("FROM") {
                Some(p.ident()?)
            } else {
                None
            };
            KalamStatement::ShowTables(ns)
        }
        ("SHOW", "STATS") => {
            p.skip(2);
            p.expect_word("FOR")?;
            p.eat_word("TABLE");
            KalamStatement::ShowStats(p.table_name()?)
        }
        ("DESCRIBE" | "DESC", _) => {
            p.skip(1);
            p.eat_word("TABLE");
            KalamStatement::Describe(p.table_name()?)
        }
        ("CREATE", "USER") => {
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
            KalamStatement::CreateUser {
                user_id,
                password,
                role,
                email,
            }
        }
        ("ALTER", "USER") => {
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
            KalamStatement::AlterUser {
                user_id,
                password,
                role,
                email,
            }
        }
        ("DROP", "USER") => {
            p.skip(2);
            let if_exists = p.eat_words(&["IF", "EXISTS"]);
            KalamStatement::DropUser {
                user_id: p.user_id()?,
                if_exists,
            }
        }
        ("EXECUTE", "AS") => {
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
            let inner = sql
                .get(start..last.start)
                .unwrap_or("")
                .trim()
                .trim_end_matches(';')
                .trim()
                .to_string();
            if inner.is_empty() {
                return Err(invalid("EXECUTE AS USER expects ( <one statement> )"));
            }
            return Ok(Some(KalamStatement::ExecuteAs {
                user_id,
                sql: inner,
            }));
        }
        ("FLUSH", "TABLE") | ("STORAGE", "FLUSH") if first == "FLUSH" || third == "TABLE" => {
            p.skip(if first == "FLUSH" { 2 } else { 3 });
            KalamStatement::FlushTable(p.table_name()?)
        }
        ("FLUSH", "ALL") | ("STORAGE", "FLUSH") => {
            p.skip(if first == "FLUSH" { 2 } else { 3 });
            p.eat_word("TABLES");
            let ns = if p.eat_word("IN") {
                Some(p.ident()?)
            } else {
                None
            };
            KalamStatement::FlushAll(ns)
        }
        ("KILL", "JOB") => {
            p.skip(2);
            KalamStatement::KillJob(p.string()?)
        }
        ("SET", _) => {
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
            KalamStatement::Set { name, value }
        }
        ("SHOW", name) if is_limit_name(name) => {
            p.skip(2);
            KalamStatement::ShowSetting(name.to_ascii_lowercase())
        }
        ("KILL", "LIVE") => {
            p.skip(2);
            p.expect_word("QUERY")?;
            KalamStatement::KillLiveQuery(p.string()?)
        }
        _ => return Ok(None),
    };
    p.expect_end()?;
    Ok(Some(stmt))
}

/// True for the names `SHOW` reports as KalamDB limits (upper-case input).
fn is_limit_name(name: &str) -> bool {
    crate::config::Setting::from_name(name).is_some() || name == "MAX_EXPRESSION_DEPTH"
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

fn column_spec(p: &mut P<'_>) -> Result<ColumnSpec> {
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

fn default_expr(p: &mut P<'_>) -> Result<DefaultValue> {
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
        let n: u64 = n.trim().parse().map_err(|_| {
            Error::InvalidParameter(format!(
                "invalid FLUSH_POLICY '{v}': '{n}' is not a whole number"
            ))
        })?;

        match k.trim().to_ascii_lowercase().as_str() {
            "rows" => policy.rows = Some(n),
            "interval" | "time" | "seconds" => policy.interval_secs = Some(n),
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
fn duration(p: &mut P<'_>, what: &str, bare_unit_secs: u64) -> Result<u64> {
    let raw = match p.peek() {
        Some(TokKind::Num(n) | TokKind::Str(n)) => n.clone(),
        _ => {
            return Err(p.unexpected(&format!(
                "expected a duration for {what} such as 30s, 15m, 12h or 7d"
            )));
        }
    };
    p.skip(1);
    let text = raw.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let mut unit = suffix.trim().to_ascii_lowercase();
    if unit.is_empty()
        && let Some(TokKind::Word(w)) = p.peek()
        && duration_unit(&w.to_ascii_lowercase()).is_some()
    {
        unit = w.to_ascii_lowercase();
        p.skip(1);
    }
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
fn parse_retention(p: &mut P<'_>) -> Result<Option<u64>> {
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

fn create_table(p: &mut P<'_>, explicit: Option<TableType>) -> Result<KalamStatement> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
