//! `kalamdb sql`, the terminal client: line editing and persistent history (`rustyline`),
//! statements that may span lines and end at `;`, results as aligned grids (`comfy-table`)
//! with their row counts, errors with their code, and psql's meta-commands:
//!
//! | command | does |
//! |---|---|
//! | `\dn` | lists namespaces |
//! | `\dt [ns]` | lists tables (of `ns`) |
//! | `\d [ns.]table` | describes a table's columns |
//! | `\timing` | toggles printing each request's time |
//! | `\subscribe SELECT …` | prints the rows, then every change (Ctrl-C ends it) |
//! | `\?` | lists these; `\q` quits |
//!
//! May import: the library's public surface (`client`, `error`, `slt::render`).

use std::path::PathBuf;
use std::time::Instant;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use rustyline::error::ReadlineError;

use crate::client::{Client, RemoteResult};
use crate::error::{Error, Result};

/// What one line of input asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// SQL to send (one or more statements).
    Sql(String),
    /// `\subscribe SELECT …`.
    Subscribe(String),
    /// `\timing`.
    ToggleTiming,
    /// `\?`.
    Help,
    /// `\q`.
    Quit,
}

/// The help text of `\?`.
pub const HELP: &str = "\\dn              list namespaces
\\dt [ns]         list tables
\\d [ns.]table    describe a table
\\timing          toggle request times
\\subscribe SQL   print rows, then changes as they happen (Ctrl-C ends)
\\q               quit
Statements end at ';' and may span lines.";

/// Reads a meta-command (a line starting with `\`) into what it asks for; meta-commands that
/// list or describe become the SQL that does it.
///
/// # Errors
/// [`Error::InvalidParameter`] for an unknown command or a malformed name.
pub fn meta(line: &str) -> Result<Input> {
    let line = line.trim().trim_end_matches(';').trim();
    let (cmd, arg) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let arg = arg.trim();
    Ok(match cmd {
        "\\q" | "\\quit" => Input::Quit,
        "\\?" | "\\help" => Input::Help,
        "\\timing" => Input::ToggleTiming,
        "\\subscribe" => Input::Subscribe(arg.to_string()),
        "\\dn" => Input::Sql(
            "SELECT name, table_count, created_at FROM system.namespaces ORDER BY name".into(),
        ),
        "\\dt" => {
            let filter = if arg.is_empty() {
                String::new()
            } else {
                format!(" WHERE namespace_id = '{}'", name(arg)?)
            };
            Input::Sql(format!(
                "SELECT namespace_id AS namespace, table_name, table_type, schema_version \
                 FROM system.tables{filter} ORDER BY namespace_id, table_name"
            ))
        }
        "\\d" if !arg.is_empty() => {
            let filter = match arg.split_once('.') {
                Some((ns, t)) => format!(
                    "table_schema = '{}' AND table_name = '{}'",
                    name(ns)?,
                    name(t)?
                ),
                None => format!("table_name = '{}'", name(arg)?),
            };
            Input::Sql(format!(
                "SELECT table_schema AS namespace, column_name, data_type, is_nullable \
                 FROM information_schema.columns WHERE {filter} \
                 ORDER BY table_schema, ordinal_position"
            ))
        }
        _ => {
            return Err(Error::InvalidParameter(format!(
                "unknown command {line:?}; \\? lists the commands"
            )));
        }
    })
}

/// A namespace or table name as the meta-commands accept it (the catalog's naming rule,
/// SPEC section 1), so it can be written into their SQL as a literal.
fn name(s: &str) -> Result<&str> {
    crate::catalog::validate_identifier("namespace or table", s)
        .map(|()| s)
        .map_err(|e| Error::InvalidParameter(e.message()))
}

/// The results of one request as text: an aligned grid and `(n rows)` per statement with
/// rows, the message of the others.
pub fn render(results: &[RemoteResult]) -> String {
    let mut out = String::new();
    for r in results {
        match (&r.message, &r.rows) {
            (Some(m), _) => out.push_str(m),
            (None, Some(rows)) => {
                let mut table = Table::new();
                table.load_preset(UTF8_FULL_CONDENSED);
                table.set_header(r.schema.iter().map(|c| c.name.as_str()));
                for row in rows {
                    table.add_row(row.iter().map(crate::slt::render));
                }
                // Numbers align right, as in psql.
                for (i, c) in r.schema.iter().enumerate() {
                    if is_numeric(&c.data_type)
                        && let Some(column) = table.column_mut(i)
                    {
                        column.set_cell_alignment(comfy_table::CellAlignment::Right);
                    }
                }
                let n = r.row_count;
                out.push_str(&format!(
                    "{table}\n({n} row{})",
                    if n == 1 { "" } else { "s" }
                ));
            }
            (None, None) => out.push_str("OK"),
        }
        out.push('\n');
    }
    out
}

/// True for the SQL type names of numbers (`BIGINT`, `DOUBLE`, `DECIMAL(10,2)`, …).
fn is_numeric(data_type: &str) -> bool {
    let t = data_type.to_ascii_uppercase();
    matches!(
        t.as_str(),
        "TINYINT" | "SMALLINT" | "INT" | "BIGINT" | "FLOAT" | "DOUBLE" | "REAL"
    ) || t.starts_with("DECIMAL(")
}

/// Where history is kept: `$KALAMDB_HISTORY`, else `~/.kalamdb_history`.
fn history_path() -> Option<PathBuf> {
    std::env::var_os("KALAMDB_HISTORY")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kalamdb_history")))
}

/// The interactive loop: reads statements until `\q` or end of input, printing results and
/// errors; history is loaded at start and saved after each entry.
///
/// # Errors
/// Terminal failures (not statement errors: those are printed and the loop goes on).
pub async fn repl(client: &Client, print_live: fn(&serde_json::Value) -> bool) -> Result<()> {
    let mut editor =
        rustyline::DefaultEditor::new().map_err(|e| Error::Internal(format!("terminal: {e}")))?;
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let mut timing = false;
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() {
            "kalamdb> "
        } else {
            "kalamdb-> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buf.clear();
                continue;
            }
            Err(ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(Error::Internal(format!("terminal: {e}"))),
        };
        let input = if buf.is_empty() && line.trim_start().starts_with('\\') {
            meta(&line)
        } else {
            buf.push_str(&line);
            buf.push('\n');
            if !line.trim_end().ends_with(';') {
                continue;
            }
            Ok(Input::Sql(std::mem::take(&mut buf)))
        };
        let entry = match &input {
            Ok(Input::Sql(sql)) => sql.trim().to_string(),
            _ => line.trim().to_string(),
        };
        if !entry.is_empty() {
            let _ = editor.add_history_entry(entry.as_str());
            if let Some(h) = &history {
                let _ = editor.save_history(h);
            }
        }
        let started = Instant::now();
        let outcome = match input {
            Ok(Input::Quit) => return Ok(()),
            Ok(Input::Help) => {
                println!("{HELP}");
                Ok(())
            }
            Ok(Input::ToggleTiming) => {
                timing = !timing;
                println!("Timing is {}.", if timing { "on" } else { "off" });
                continue;
            }
            Ok(Input::Subscribe(select)) => client.subscribe(&select, print_live).await,
            Ok(Input::Sql(sql)) => client.sql(&sql).await.map(|r| print!("{}", render(&r))),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            eprintln!("ERROR: {}: {}", e.code(), e.message());
        }
        if timing {
            println!("Time: {:.3} ms", started.elapsed().as_secs_f64() * 1e3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_recognised_by_type_name() {
        for t in ["BIGINT", "INT", "DOUBLE", "DECIMAL(10,2)", "smallint"] {
            assert!(is_numeric(t), "{t}");
        }
        for t in ["TEXT", "BOOLEAN", "TIMESTAMP", "INTERVAL", "JSON"] {
            assert!(!is_numeric(t), "{t}");
        }
    }

    #[test]
    fn meta_commands_become_sql_over_checked_names() {
        assert_eq!(meta("\\q").unwrap(), Input::Quit);
        assert_eq!(meta("  \\timing ").unwrap(), Input::ToggleTiming);
        assert_eq!(
            meta("\\subscribe SELECT * FROM a.b;").unwrap(),
            Input::Subscribe("SELECT * FROM a.b".into())
        );
        let Input::Sql(sql) = meta("\\d app.notes").unwrap() else {
            panic!()
        };
        assert!(
            sql.contains("table_schema = 'app' AND table_name = 'notes'"),
            "{sql}"
        );
        let Input::Sql(sql) = meta("\\dt app").unwrap() else {
            panic!()
        };
        assert!(sql.contains("WHERE namespace_id = 'app'"), "{sql}");
        for bad in [
            "\\d x'; DROP TABLE t; --",
            "\\dt A",
            "\\d a.b.c",
            "\\zz",
            "\\d",
        ] {
            assert!(meta(bad).is_err(), "{bad}");
        }
    }
}
