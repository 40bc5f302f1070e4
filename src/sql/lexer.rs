//! Statement splitting and a small SQL lexer for KalamDB's own statements.
//!
//! The lexer keeps byte spans so a statement's sub-parts (the body of `EXECUTE AS USER`, a
//! DEFAULT expression) can be cut out of the original text verbatim.
//!
//! May import: the ground floor. Never anything above `sql/`.

use crate::error::{Error, Result};

/// A token with its byte span in the statement text.
#[derive(Debug, Clone, PartialEq)]
pub struct Tok {
    /// What it is.
    pub kind: TokKind,
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset one past the last character.
    pub end: usize,
}

/// Token kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum TokKind {
    /// An unquoted word (keyword or identifier), as written.
    Word(String),
    /// A `"quoted"` or `` `quoted` `` identifier, unescaped.
    QuotedIdent(String),
    /// A `'string'`, unescaped (`''` → `'`).
    Str(String),
    /// A number, possibly with a unit suffix (`7d`).
    Num(String),
    /// Any other single character (`(`, `)`, `,`, `.`, `=`, `;`, `-`, ...).
    Punct(char),
}

/// A byte cursor over SQL text; every access is bounds-checked.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn at(&self, offset: usize) -> Option<u8> {
        self.b.get(self.i.checked_add(offset)?).copied()
    }
    fn bump(&mut self, n: usize) {
        self.i = self.i.saturating_add(n).min(self.b.len());
    }
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
    /// Skips a `-- line comment` or `/* block comment */` starting here; false if none.
    fn skip_comment(&mut self) -> bool {
        match (self.at(0), self.at(1)) {
            (Some(b'-'), Some(b'-')) => {
                while self.at(0).is_some_and(|c| c != b'\n') {
                    self.bump(1);
                }
                true
            }
            (Some(b'/'), Some(b'*')) => {
                self.bump(2);
                while !self.done() && (self.at(0), self.at(1)) != (Some(b'*'), Some(b'/')) {
                    self.bump(1);
                }
                self.bump(2);
                true
            }
            _ => false,
        }
    }
    /// Skips a quoted run starting at the opening quote `q` (doubled quotes escape); returns
    /// whether it was closed.
    fn skip_quoted(&mut self, q: u8) -> bool {
        self.bump(1);
        while let Some(c) = self.at(0) {
            if c == q {
                if self.at(1) == Some(q) {
                    self.bump(2);
                    continue;
                }
                self.bump(1);
                return true;
            }
            self.bump(1);
        }
        false
    }
}

/// Splits a request into statements at top-level `;`, honouring quotes and comments.
/// Empty statements are dropped; each statement is trimmed.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let mut c = Cursor {
        b: sql.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    let (mut start, mut depth) = (0usize, 0i64);
    while let Some(ch) = c.at(0) {
        if c.skip_comment() {
            continue;
        }
        match ch {
            b'\'' | b'"' | b'`' => {
                c.skip_quoted(ch);
                continue;
            }
            b'(' => depth = depth.saturating_add(1),
            b')' => depth = depth.saturating_sub(1),
            b';' if depth <= 0 => {
                push_trimmed(&mut out, sql.get(start..c.i).unwrap_or(""));
                start = c.i.saturating_add(1);
            }
            _ => {}
        }
        c.bump(1);
    }
    push_trimmed(&mut out, sql.get(start.min(sql.len())..).unwrap_or(""));
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    let t = s.trim();
    if !strip_comments(t).trim().is_empty() {
        out.push(t);
    }
}

fn strip_comments(s: &str) -> String {
    s.lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Tokenizes one statement. Whitespace and comments are skipped.
///
/// # Errors
/// [`Error::InvalidSql`] for an unterminated string or quoted identifier.
pub fn tokenize(sql: &str) -> Result<Vec<Tok>> {
    let mut c = Cursor {
        b: sql.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    while let Some(ch) = c.at(0) {
        let start = c.i;
        if ch.is_ascii_whitespace() {
            c.bump(1);
            continue;
        }
        if c.skip_comment() {
            continue;
        }
        let kind = if matches!(ch, b'\'' | b'"' | b'`') {
            if !c.skip_quoted(ch) {
                return Err(Error::InvalidSql(format!(
                    "unterminated quote starting at byte {start}"
                )));
            }
            let q = char::from(ch);
            let inner = sql
                .get(start.saturating_add(1)..c.i.saturating_sub(1))
                .unwrap_or("");
            let doubled = format!("{q}{q}");
            let text = inner.replace(&doubled, &q.to_string());
            if ch == b'\'' {
                TokKind::Str(text)
            } else {
                TokKind::QuotedIdent(text)
            }
        } else if ch.is_ascii_digit() {
            while c
                .at(0)
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
            {
                c.bump(1);
            }
            TokKind::Num(sql.get(start..c.i).unwrap_or("").to_string())
        } else if ch.is_ascii_alphabetic() || ch == b'_' || ch == b'$' {
            while c
                .at(0)
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
            {
                c.bump(1);
            }
            TokKind::Word(sql.get(start..c.i).unwrap_or("").to_string())
        } else {
            let ch = sql
                .get(start..)
                .and_then(|r| r.chars().next())
                .unwrap_or('\u{fffd}');
            c.bump(ch.len_utf8().max(1));
            TokKind::Punct(ch)
        };
        out.push(Tok {
            kind,
            start,
            end: c.i,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let s = split_statements("INSERT INTO t VALUES ('a;b'); -- c;\n SELECT 1;; ");
        assert_eq!(s, vec!["INSERT INTO t VALUES ('a;b')", "-- c;\n SELECT 1"]);
        assert!(split_statements(" ; -- x\n ;").is_empty());
    }

    #[test]
    fn hostile_text_never_panics() {
        for sql in [
            "'", "/*", "--", "é'", "'é", "x /* é", "\"é\"\"", "`", "(((", ")))", ";;", "'';'",
        ] {
            let _ = tokenize(sql);
            let _ = split_statements(sql);
        }
        assert_eq!(
            tokenize("'a''é'").unwrap()[0].kind,
            TokKind::Str("a'é".into())
        );
        assert_eq!(split_statements("a; /* ; */ b"), vec!["a", "/* ; */ b"]);
    }

    #[test]
    fn lexes_strings_numbers_and_spans() {
        let t = tokenize("DEFAULT 'it''s' 7d x.y").unwrap();
        assert_eq!(t[1].kind, TokKind::Str("it's".into()));
        assert_eq!(t[2].kind, TokKind::Num("7d".into()));
        assert_eq!(t[4].kind, TokKind::Punct('.'));
        assert_eq!(&"DEFAULT 'it''s' 7d x.y"[t[1].start..t[1].end], "'it''s'");
        assert!(tokenize("'open").is_err());
    }
}
