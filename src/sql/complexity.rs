//! The shape limits of a statement (docs/limits.md), checked on its tokens before anything
//! recursive or super-linear (parser, planner, optimizer, evaluator) sees it: the nesting depth
//! (`max_expression_depth`), the tables joined ([`MAX_JOINED_TABLES`]) and the width of a
//! select list ([`MAX_SELECT_ITEMS`]). Planning is not cancellable, so these bounds are what
//! keeps it short.
//!
//! Parsers and planners recurse once per level of an expression tree, so a statement like a
//! 20 KB `SELECT 1+1+…+1`, a long `AND` chain, thousands of `UNION ALL`s or chained CTEs builds a
//! tree deep enough to overflow a thread's stack, which aborts the whole process. SQLite bounds
//! the same thing with `SQLITE_MAX_EXPR_DEPTH` (1000) and `SQLITE_MAX_COMPOUND_SELECT` (500).
//!
//! The estimate walks sqlparser's own tokens (so it reads strings, comments and quoting exactly
//! as the parser will) with an explicit stack, never by recursion, and over-approximates the
//! depth of the tree the parser would build:
//! - every `(`, `[`, `{` and `CASE` opens a level one deeper than the point where it appears;
//! - within a level, each binary or unary operator adds one (left-deep chains nest once per
//!   operator); logical operators (`AND`/`OR`) count separately from the operators between
//!   them, and both restart at list separators and clause keywords;
//! - set operations (`UNION`, `INTERSECT`, `EXCEPT`), `JOIN`s and comma joins in `FROM` add one
//!   each for the rest of their level (they build left-deep plan trees);
//! - every common table expression (`name AS (`) adds one for the whole statement (a chain of
//!   CTEs nests each definition inside the next).
//!
//! Breadth is bounded by `max_sql_bytes`, except where DataFusion's planning cost grows faster
//! than linearly with it: joins (measured: about cubic in the number of tables) and select
//! lists (quadratic in the number of output columns). Those two have fixed caps taken from
//! established databases: SQLite's 64 tables per join and PostgreSQL's 1,664 target-list entries.
//!
//! May import: the ground floor. Never anything above `sql/`.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, Result};

/// Most tables one statement may join (explicit `JOIN`s plus comma joins), as SQLite allows.
pub const MAX_JOINED_TABLES: u64 = 64;

/// Most items in one select list, PostgreSQL's limit on target-list entries.
pub const MAX_SELECT_ITEMS: u64 = 1664;

/// One open level: a parenthesis, bracket, brace or `CASE`.
#[derive(Debug, Clone, Copy, Default)]
struct Level {
    /// Depth of the level itself.
    base: u64,
    /// Operators since the last separator or logical operator.
    ops: u64,
    /// Logical operators (`AND`, `OR`, `XOR`) since the last separator.
    logical: u64,
    /// Set operations and joins in this level.
    chain: u64,
    /// The clause the level is in (commas are joins in `FROM`, items in `SELECT`).
    clause: Clause,
    /// Items of the current select list.
    items: u64,
    /// Opened by `CASE` (closed by `END`), not by a bracket.
    case: bool,
}

impl Level {
    fn depth(&self) -> u64 {
        self.base
            .saturating_add(self.ops)
            .saturating_add(self.logical)
            .saturating_add(self.chain)
    }

    /// Ends the current operator chains, adding their planning cost to `shape`.
    fn restart(&mut self, shape: &mut Shape) {
        shape.end_operator_chain(self.ops);
        shape.cost = shape.cost.saturating_add(triangle(self.logical));
        self.ops = 0;
        self.logical = 0;
    }

    /// Ends the level (a closing bracket or the end of the statement).
    fn close(&mut self, shape: &mut Shape) {
        self.restart(shape);
        shape.cost = shape.cost.saturating_add(triangle(self.chain));
    }
}

/// `n (n - 1) / 2`: the planning cost of a chain of `n` logical operators, set operations or
/// joins. DataFusion's planning does work proportional to the depth below every node of a
/// left-deep chain (measured: quadratic).
fn triangle(n: u64) -> u64 {
    n.saturating_mul(n.saturating_sub(1)) / 2
}

/// `n³`: the planning cost of a chain of `n` value operators (`+ - * ||`, comparisons). Those
/// become checked functions (`query::checked`, `query::bounded`) whose names nest, and naming
/// every sub-expression of a chain costs its length squared (measured: cubic; a chain of 250
/// plans in 1.2 s in a release build, one of 125 in 0.15 s).
fn cube(n: u64) -> u64 {
    n.saturating_mul(n).saturating_mul(n)
}

/// The clause a level is in, for what its commas mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Clause {
    #[default]
    Other,
    Select,
    From,
}

/// What a token does to the estimate.
enum Effect {
    Open { case: bool },
    Close { case: bool },
    Separator,
    Clause(Option<Clause>),
    Chain,
    Join,
    Logical,
    Operator,
    Neutral,
}

fn effect(t: &Token) -> Effect {
    match t {
        Token::LParen | Token::LBracket | Token::LBrace => Effect::Open { case: false },
        Token::RParen | Token::RBracket | Token::RBrace => Effect::Close { case: false },
        Token::Comma => Effect::Separator,
        Token::Word(w) if w.quote_style.is_none() => match w.keyword {
            Keyword::CASE => Effect::Open { case: true },
            Keyword::END => Effect::Close { case: true },
            Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::MINUS => Effect::Chain,
            Keyword::JOIN => Effect::Join,
            Keyword::FROM => Effect::Clause(Some(Clause::From)),
            Keyword::ON | Keyword::USING => Effect::Clause(None),
            Keyword::SELECT => Effect::Clause(Some(Clause::Select)),
            Keyword::WHERE
            | Keyword::GROUP
            | Keyword::HAVING
            | Keyword::ORDER
            | Keyword::LIMIT
            | Keyword::OFFSET
            | Keyword::SET
            | Keyword::VALUES
            | Keyword::WINDOW
            | Keyword::QUALIFY
            | Keyword::RETURNING
            | Keyword::WHEN
            | Keyword::THEN
            | Keyword::ELSE => Effect::Clause(Some(Clause::Other)),
            Keyword::AND | Keyword::OR | Keyword::XOR => Effect::Logical,
            Keyword::NOT
            | Keyword::LIKE
            | Keyword::ILIKE
            | Keyword::IS
            | Keyword::IN
            | Keyword::BETWEEN
            | Keyword::SIMILAR
            | Keyword::REGEXP
            | Keyword::RLIKE
            | Keyword::DIV
            | Keyword::COLLATE
            | Keyword::AT
            | Keyword::OVERLAPS => Effect::Operator,
            _ => Effect::Neutral,
        },
        Token::EOF
        | Token::Word(_)
        | Token::Number(..)
        | Token::Whitespace(_)
        | Token::Period
        | Token::SemiColon
        | Token::Colon
        | Token::Placeholder(_)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::QuoteDelimitedStringLiteral(_)
        | Token::NationalQuoteDelimitedStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_) => Effect::Neutral,
        // Every other token is an operator of some dialect.
        _ => Effect::Operator,
    }
}

/// What [`shape`] measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Estimated nesting depth (see the module docs).
    pub depth: u64,
    /// Tables joined: `JOIN`s plus commas in `FROM` lists, over the whole statement.
    pub joins: u64,
    /// Items of the widest select list.
    pub select_items: u64,
    /// Planning cost of logical, set-operation and join chains: `n (n - 1) / 2` summed over
    /// every chain of length `n`. One chain of the maximum depth `d` costs about `d² / 2`; the
    /// whole statement may cost no more, so many long chains cannot add up to a planning stall.
    pub cost: u64,
    /// Planning cost of value-operator chains: `n³` summed over every chain of length `n`. The
    /// statement may cost no more than one chain of half the maximum depth.
    pub operator_cost: u64,
}

impl Shape {
    fn end_operator_chain(&mut self, n: u64) {
        self.cost = self.cost.saturating_add(triangle(n));
        self.operator_cost = self.operator_cost.saturating_add(cube(n));
    }
}

/// Measures `sql` (see the module docs). A statement sqlparser cannot tokenize measures all
/// zeros: the parser rejects it before building any tree.
pub fn shape(sql: &str) -> Shape {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Shape::default();
    };
    let mut stack: Vec<Level> = vec![Level::default()];
    let mut ctes = 0u64;
    let mut out = Shape::default();
    let mut previous_was_as = false;
    for t in &tokens {
        if matches!(t, Token::Whitespace(_)) {
            continue;
        }
        let top_depth = stack.last().map_or(0, Level::depth);
        let effect = effect(t);
        if let Effect::Open { case } = effect {
            if previous_was_as && !case {
                ctes = ctes.saturating_add(1);
            }
            stack.push(Level {
                base: top_depth.saturating_add(1),
                case,
                ..Level::default()
            });
        } else if let Effect::Close { case } = effect {
            if stack.len() > 1
                && stack.last().is_some_and(|l| l.case == case)
                && let Some(mut l) = stack.pop()
            {
                l.close(&mut out);
            }
        } else if let Some(l) = stack.last_mut() {
            match effect {
                Effect::Separator => {
                    match l.clause {
                        Clause::From => {
                            l.chain = l.chain.saturating_add(1);
                            out.joins = out.joins.saturating_add(1);
                        }
                        Clause::Select => {
                            l.items = l.items.saturating_add(1);
                            out.select_items = out.select_items.max(l.items.saturating_add(1));
                        }
                        Clause::Other => {}
                    }
                    l.restart(&mut out);
                }
                Effect::Clause(clause) => {
                    if let Some(c) = clause {
                        l.clause = c;
                        l.items = 0;
                        if c == Clause::Select {
                            out.select_items = out.select_items.max(1);
                        }
                    }
                    l.restart(&mut out);
                }
                Effect::Join => {
                    l.chain = l.chain.saturating_add(1);
                    out.joins = out.joins.saturating_add(1);
                    l.restart(&mut out);
                }
                Effect::Chain => {
                    l.chain = l.chain.saturating_add(1);
                    l.restart(&mut out);
                }
                Effect::Logical => {
                    out.end_operator_chain(l.ops);
                    l.logical = l.logical.saturating_add(1);
                    l.ops = 0;
                }
                Effect::Operator => l.ops = l.ops.saturating_add(1),
                Effect::Open { .. } | Effect::Close { .. } | Effect::Neutral => {}
            }
        }
        previous_was_as =
            matches!(t, Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::AS);
        let now = stack.last().map_or(0, Level::depth).saturating_add(ctes);
        out.depth = out.depth.max(now);
    }
    while let Some(mut l) = stack.pop() {
        l.close(&mut out);
    }
    out
}

/// Fails when `sql` nests deeper than `max_depth` (`max_expression_depth`), joins more than
/// [`MAX_JOINED_TABLES`] tables, or has a select list wider than [`MAX_SELECT_ITEMS`].
///
/// # Errors
/// [`Error::LimitExceeded`] naming the limit.
pub fn check(sql: &str, max_depth: u64) -> Result<()> {
    let s = shape(sql);
    let budget = triangle(max_depth.saturating_add(1));
    let operator_budget = cube(max_depth / 2);
    if s.depth > max_depth || s.cost > budget || s.operator_cost > operator_budget {
        return Err(Error::LimitExceeded(format!(
            "max_expression_depth: the statement nests deeper than {max_depth} levels, or its \
             chains together cost more to plan than one chain that deep (value operators such \
             as + and || count half as deep); split it or simplify it"
        )));
    }
    if s.joins >= MAX_JOINED_TABLES {
        return Err(Error::LimitExceeded(format!(
            "the statement joins more than {MAX_JOINED_TABLES} tables (the limit per statement)"
        )));
    }
    if s.select_items > MAX_SELECT_ITEMS {
        return Err(Error::LimitExceeded(format!(
            "a select list has more than {MAX_SELECT_ITEMS} items (the limit per select list)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(sql: &str) -> u64 {
        shape(sql).depth
    }

    #[test]
    fn chains_count_once_per_operator() {
        assert_eq!(depth("SELECT 1"), 0);
        assert_eq!(depth("SELECT 1+1+1+1"), 3);
        assert_eq!(depth("SELECT a FROM t WHERE x = 1 AND y = 2 AND z = 3"), 3);
        assert_eq!(depth("SELECT 'a' || 'b' || 'c'"), 2);
        assert_eq!(depth("SELECT ((((1))))"), 4);
        assert_eq!(depth("SELECT - - - 1"), 3);
    }

    #[test]
    fn breadth_is_free() {
        let values: Vec<String> = (0..5000).map(|i| format!("({i}, -{i}, 'x')")).collect();
        let insert = format!("INSERT INTO t VALUES {}", values.join(", "));
        assert_eq!(depth(&insert), 2);
        let list: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
        assert_eq!(
            depth(&format!("SELECT 1 WHERE x IN ({})", list.join(","))),
            2
        );
    }

    #[test]
    fn set_operations_joins_and_ctes_nest() {
        let unions = ["SELECT 1"; 11].join(" UNION ALL ");
        assert_eq!(depth(&unions), 10);
        assert_eq!(
            depth("SELECT * FROM a JOIN b ON a.x = b.x JOIN c ON c.y = b.y"),
            3
        );
        assert_eq!(depth("SELECT * FROM a, b, c"), 2);
        let ctes =
            "WITH a AS (SELECT 1), b AS (SELECT * FROM a), c AS (SELECT * FROM b) SELECT * FROM c";
        assert_eq!(depth(ctes), 5); // `*` counts as an operator: over-estimates are fine
    }

    #[test]
    fn strings_and_comments_do_not_count() {
        assert_eq!(depth("SELECT '((((((((' -- ((((((\n"), 0);
        assert_eq!(depth("SELECT E'\\'' , 1"), 0);
        assert_eq!(
            depth("SELECT CASE WHEN a THEN CASE WHEN b THEN 1 END END"),
            2
        );
    }

    #[test]
    fn the_limit_is_an_error_naming_it() {
        let sql = format!("SELECT {}", vec!["1"; 2000].join("+"));
        let e = check(&sql, 500).unwrap_err();
        assert_eq!(e.code(), "LIMIT_EXCEEDED");
        assert!(e.message().contains("max_expression_depth"));
        assert!(check("SELECT 1+1", 500).is_ok());
    }

    #[test]
    fn many_long_chains_add_up() {
        let chain = vec!["1"; 101].join("+");
        assert_eq!(shape(&format!("SELECT {chain}")).cost, triangle(100));
        let half = vec!["1"; 51].join("+");
        let ten: Vec<String> = (0..10).map(|i| format!("{half} AS c{i}")).collect();
        let s = shape(&format!("SELECT {}", ten.join(", ")));
        assert_eq!((s.depth, s.cost), (50, 10 * triangle(50)));
        assert!(check(&format!("SELECT {}", ten.join(", ")), 256).is_ok());
        let forty: Vec<String> = (0..40).map(|i| format!("{chain} AS c{i}")).collect();
        let e = check(&format!("SELECT {}", forty.join(", ")), 256).unwrap_err();
        assert!(e.message().contains("max_expression_depth"));
        // Value-operator chains may be half as long as the depth limit.
        let at = |n: usize| format!("SELECT {}", vec!["1"; n + 1].join("+"));
        assert_eq!(shape(&at(128)).operator_cost, cube(128));
        assert!(check(&at(128), 256).is_ok());
        assert!(check(&at(129), 256).is_err());
        // Short chains are free however many there are.
        let rows: Vec<String> = (0..20_000)
            .map(|i| format!("({i}, -1, 'a' || 'b')"))
            .collect();
        assert_eq!(
            shape(&format!("INSERT INTO t VALUES {}", rows.join(","))).cost,
            0
        );
    }

    #[test]
    fn joins_and_select_lists_are_capped() {
        let tables: Vec<String> = (0..64).map(|i| format!("t{i}")).collect();
        let s = shape(&format!("SELECT 1 FROM {}", tables.join(", ")));
        assert_eq!(s.joins, 63);
        assert!(check(&format!("SELECT 1 FROM {}", tables.join(", ")), 500).is_ok());
        assert_eq!(s.cost, triangle(63));
        let more = format!("SELECT 1 FROM {} JOIN u ON true", tables.join(", "));
        assert!(
            check(&more, 500)
                .unwrap_err()
                .message()
                .contains("joins more than 64")
        );
        let cols: Vec<String> = (0..1665).map(|i| format!("{i} AS c{i}")).collect();
        let wide = format!("SELECT {} FROM t", cols.join(", "));
        assert_eq!(shape(&wide).select_items, 1665);
        assert!(check(&wide, 500).unwrap_err().message().contains("1664"));
        // Commas elsewhere are not select items.
        let args: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
        let call = format!(
            "SELECT concat({}) FROM t WHERE x IN ({})",
            args.join(","),
            args.join(",")
        );
        assert_eq!(shape(&call).select_items, 1);
    }
}
