//! `kalamdb sql` driven in a pseudo-terminal as a person would: multi-line statements, grids,
//! `\dt`, `\d`, `\dn`, `\timing`, errors with their code, history recalled with the up arrow
//! and kept in the history file.

mod common;

use common::live::start_server;

#[tokio::test]
async fn kalamdb_sql_in_a_terminal() {
    let live = start_server(&[]).await;
    let url = live.server.url.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history");
    let history_file = history.clone();
    tokio::task::spawn_blocking(move || -> Result<(), rexpect::error::Error> {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kalamdb"));
        cmd.args(["sql", "--url", &url])
            .env("KALAMDB_HISTORY", &history)
            .env("TERM", "xterm");
        let mut p = rexpect::session::spawn_command(cmd, Some(30_000))?;
        p.exp_string("kalamdb> ")?;
        p.send_line("CREATE NAMESPACE app;")?;
        p.exp_string("app")?;
        // A statement over two lines: the prompt shows it continues.
        p.send_line("CREATE SHARED TABLE app.notes (id INT PRIMARY KEY,")?;
        p.exp_string("kalamdb-> ")?;
        p.send_line("  body TEXT);")?;
        p.exp_string("notes")?;
        p.send_line("INSERT INTO app.notes VALUES (1, 'first'), (2, 'second');")?;
        p.exp_string("Inserted 2 row(s)")?;
        p.send_line("SELECT id, body FROM app.notes ORDER BY id;")?;
        // An aligned grid, numbers to the right: header and both rows between box-drawing
        // borders (the session reads bytes as Latin-1, so a border is a few non-space
        // characters here).
        p.exp_regex(r"id +\S+ body +\S")?;
        p.exp_regex(r"1 \S+ first +\S")?;
        p.exp_regex(r"2 \S+ second +\S")?;
        p.exp_string("(2 rows)")?;
        p.send_line("\\dt")?;
        p.exp_regex(r"app +\S+ notes +\S+ (?i:shared)")?;
        p.send_line("\\d app.notes")?;
        p.exp_regex(r"app +\S+ body +\S")?;
        p.send_line("\\dn")?;
        p.exp_regex(r"app +\S+ +1 \S")?;
        p.send_line("\\timing")?;
        p.exp_string("Timing is on.")?;
        p.send_line("SELECT 41 + 1 AS answer;")?;
        p.exp_regex(r" 42 \S")?;
        p.exp_string("(1 row)")?;
        p.exp_string("Time: ")?;
        p.send_line("SELEC 1;")?;
        p.exp_string("ERROR: INVALID_SQL")?;
        p.send_line("\\d x'; DROP TABLE app.notes; --")?;
        p.exp_string("ERROR: INVALID_PARAMETER")?;
        // The up arrow recalls the last entry (the refused meta-command), twice the one before.
        p.send("\x1b[A\x1b[A")?;
        p.send_line("")?;
        p.exp_string("ERROR: INVALID_SQL")?;
        p.send_line("SELECT COUNT(*) AS n FROM app.notes;")?;
        p.exp_regex(r" 2 \S")?;
        p.send_line("\\q")?;
        p.exp_eof()?;
        Ok(())
    })
    .await
    .expect("the terminal session ran")
    .expect("the terminal showed what was expected");
    let kept = std::fs::read_to_string(&history_file).expect("history file");
    assert!(
        kept.contains("SELECT id, body FROM app.notes ORDER BY id;"),
        "{kept}"
    );
    assert!(
        kept.contains("CREATE SHARED TABLE app.notes (id INT PRIMARY KEY,"),
        "multi-line statements are kept whole: {kept}"
    );
}
