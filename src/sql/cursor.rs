//! The token cursor shared by every statement family's parser: peeking and eating words,
//! punctuation, identifiers, strings and numbers, with errors naming what was found.
//!
//! May import: the ground floor and `sql::lexer`. Never the statement families or anything
//! above `sql/`.

use super::ast::TableName;
use super::lexer::{Tok, TokKind};
use crate::error::{Error, Result};

/// A position in a statement's tokens, with the helpers every statement family parses with.
pub struct Cursor<'a> {
    /// The statement text (token spans index into it).
    pub sql: &'a str,
    /// The statement's tokens.
    pub toks: &'a [Tok],
    /// The next token to read.
    pub pos: usize,
}

/// An `INVALID_SQL` error.
pub fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidSql(msg.into())
}

impl<'a> Cursor<'a> {
    /// A cursor at the first token of `toks`, the tokens of `sql`.
    pub fn new(sql: &'a str, toks: &'a [Tok]) -> Cursor<'a> {
        Cursor { sql, toks, pos: 0 }
    }

    /// Moves past `n` tokens.
    pub fn skip(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n);
    }
    /// The next token.
    pub fn peek(&self) -> Option<&TokKind> {
        self.toks.get(self.pos).map(|t| &t.kind)
    }
    /// The unquoted word `offset` tokens ahead, upper-cased.
    pub fn peek_word_at(&self, offset: usize) -> Option<String> {
        match self
            .toks
            .get(self.pos.saturating_add(offset))
            .map(|t| &t.kind)
        {
            Some(TokKind::Word(w)) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }
    /// True if the next token is the word `w` (upper-case).
    pub fn is_word(&self, w: &str) -> bool {
        self.peek_word_at(0).as_deref() == Some(w)
    }
    /// Moves past the word `w` if it is next.
    pub fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.skip(1);
            true
        } else {
            false
        }
    }
    /// Moves past the words `ws` if they are next, in order.
    pub fn eat_words(&mut self, ws: &[&str]) -> bool {
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
    /// Moves past the word `w`, or fails naming what was found.
    pub fn expect_word(&mut self, w: &str) -> Result<()> {
        if self.eat_word(w) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected {w}")))
        }
    }
    /// Moves past the character `c` if it is next.
    pub fn eat_punct(&mut self, c: char) -> bool {
        if self.peek() == Some(&TokKind::Punct(c)) {
            self.skip(1);
            true
        } else {
            false
        }
    }
    /// Moves past the character `c`, or fails naming what was found.
    pub fn expect_punct(&mut self, c: char) -> Result<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected '{c}'")))
        }
    }
    /// An `INVALID_SQL` error: `what` was expected, the next token was found.
    pub fn unexpected(&self, what: &str) -> Error {
        match self.toks.get(self.pos) {
            Some(t) => invalid(format!(
                "{what}, found '{}'",
                self.sql.get(t.start..t.end).unwrap_or("?")
            )),
            None => invalid(format!("{what}, found end of statement")),
        }
    }
    /// True when every token was read.
    pub fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }
    /// Fails unless every token was read.
    pub fn expect_end(&self) -> Result<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.unexpected("unexpected trailing input"))
        }
    }
    /// An identifier: unquoted words are lower-cased, quoted ones kept.
    pub fn ident(&mut self) -> Result<String> {
        let r = match self.peek() {
            Some(TokKind::Word(w)) => w.to_ascii_lowercase(),
            Some(TokKind::QuotedIdent(w)) => w.clone(),
            _ => return Err(self.unexpected("expected a name")),
        };
        self.skip(1);
        Ok(r)
    }
    /// `[ns.]table`.
    pub fn table_name(&mut self) -> Result<TableName> {
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
    /// A quoted string.
    pub fn string(&mut self) -> Result<String> {
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
    pub fn user_id(&mut self) -> Result<String> {
        match self.peek() {
            Some(TokKind::Str(_)) => self.string(),
            _ => self.ident(),
        }
    }
    /// A whole number (or a quoted one); out of range is `INVALID_PARAMETER`.
    pub fn number(&mut self) -> Result<u64> {
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
