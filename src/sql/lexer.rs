//! Statement splitting and a small SQL lexer for KalamDB's own statements.
//!
//! The lexer keeps byte spans so a statement's sub-parts (the body of `EXECUTE AS USER`, a
//! DEFAULT expression) can be cut out of the original text verbatim.

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

/// Splits a request into statements at top-level `;`, honouring quotes and comments.
/// Empty statements are dropped; each statement is trimmed.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut start, mut depth) = (0usize, 0usize, 0i32);
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'(' => depth += 1,
            b')' => depth -= 1,
            b';' if depth <= 0 => {
                push_trimmed(&mut out, &sql[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    push_trimmed(&mut out, &sql[start.min(sql.len())..]);
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
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
            continue;
        }
        let kind = if c == b'\'' || c == b'"' || c == b'`' {
            let mut s = String::new();
            i += 1;
            let mut closed = false;
            while i < b.len() {
                if b[i] == c {
                    if b.get(i + 1) == Some(&c) {
                        s.push(c as char);
                        i += 2;
                        continue;
                    }
                    closed = true;
                    i += 1;
                    break;
                }
                let ch = sql[i..].chars().next().unwrap_or('\u{fffd}');
                s.push(ch);
                i += ch.len_utf8();
            }
            if !closed {
                return Err(Error::InvalidSql(format!(
                    "unterminated quote starting at byte {start}"
                )));
            }
            if c == b'\'' {
                TokKind::Str(s)
            } else {
                TokKind::QuotedIdent(s)
            }
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                i += 1;
            }
            TokKind::Num(sql[start..i].to_string())
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$') {
                i += 1;
            }
            TokKind::Word(sql[start..i].to_string())
        } else {
            let ch = sql[i..].chars().next().unwrap_or('\u{fffd}');
            i += ch.len_utf8();
            TokKind::Punct(ch)
        };
        out.push(Tok {
            kind,
            start,
            end: i,
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
    fn lexes_strings_numbers_and_spans() {
        let t = tokenize("DEFAULT 'it''s' 7d x.y").unwrap();
        assert_eq!(t[1].kind, TokKind::Str("it's".into()));
        assert_eq!(t[2].kind, TokKind::Num("7d".into()));
        assert_eq!(t[4].kind, TokKind::Punct('.'));
        assert_eq!(&"DEFAULT 'it''s' 7d x.y"[t[1].start..t[1].end], "'it''s'");
        assert!(tokenize("'open").is_err());
    }
}
