//! The sqllogictest runner behind `cargo xtask slt` and `cargo test` (DESIGN.md "Tests").
//!
//! One file, every mode, same expected output:
//! - `inproc`: an [`Engine`] in this process.
//! - `server`: the real `kalamdb` binary on a free port, over HTTP.
//! - `restart`: the engine is closed and reopened on the same data dir before every record.
//! - `crash`: the server is killed with SIGKILL and restarted before every record.
//!
//! Results are rendered from their JSON form in every mode, so values print identically.
//! Statements run as `root`; files act as other users with `EXECUTE AS USER`.
//!
//! May import: the engine's public surface, `client`, `process` and the ground floor. A tool module: nothing in the server imports it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};

use crate::client::{RemoteColumn, RemoteResult};
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::process::ServerProcess;
use crate::session::Session;

/// A statement's outcome as the runner sees it: columns, JSON rows, row count.
type SltRows = (Vec<RemoteColumn>, Vec<Vec<serde_json::Value>>, usize);

/// How the runner reaches KalamDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Engine in-process.
    InProc,
    /// Live server over HTTP.
    Server,
    /// Engine reopened before every record.
    Restart,
    /// Server SIGKILLed and restarted before every record.
    Crash,
}

impl Mode {
    /// Every mode, in the order `--mode all` runs them.
    pub const ALL: [Mode; 4] = [Mode::InProc, Mode::Server, Mode::Restart, Mode::Crash];

    /// Parses `inproc|server|restart|crash`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "inproc" => Some(Mode::InProc),
            "server" => Some(Mode::Server),
            "restart" => Some(Mode::Restart),
            "crash" => Some(Mode::Crash),
            _ => None,
        }
    }

    /// The mode's name.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::InProc => "inproc",
            Mode::Server => "server",
            Mode::Restart => "restart",
            Mode::Crash => "crash",
        }
    }

    /// True if the mode needs the `kalamdb` binary.
    pub fn needs_binary(&self) -> bool {
        matches!(self, Mode::Server | Mode::Crash)
    }
}

enum Backend {
    InProc(Engine),
    Restart(Option<Engine>),
    Server(ServerProcess),
    Crash(ServerProcess),
}

/// One connection of the runner: a backend on its own data directory.
pub struct KalamSlt {
    backend: Backend,
    data_dir: PathBuf,
    binary: Option<PathBuf>,
    _tmp: tempfile::TempDir,
}

impl KalamSlt {
    /// A fresh data directory with a backend of `mode`; `binary` is required for server modes.
    ///
    /// # Errors
    /// When the engine cannot open or the server does not start.
    pub async fn connect(mode: Mode, binary: Option<&Path>) -> Result<KalamSlt> {
        let tmp = tempfile::Builder::new().prefix("kalamdb-slt").tempdir()?;
        let data_dir = tmp.path().to_path_buf();
        let need_bin = || {
            binary.ok_or_else(|| {
                Error::Internal(format!("mode {} needs the kalamdb binary", mode.name()))
            })
        };
        let backend = match mode {
            Mode::InProc => Backend::InProc(Engine::open(Config::with_data_dir(&data_dir))?),
            Mode::Restart => Backend::Restart(None),
            Mode::Server => Backend::Server(ServerProcess::start(need_bin()?, &data_dir).await?),
            Mode::Crash => Backend::Crash(ServerProcess::start(need_bin()?, &data_dir).await?),
        };
        Ok(KalamSlt {
            backend,
            data_dir,
            binary: binary.map(Path::to_path_buf),
            _tmp: tmp,
        })
    }

    /// After each statement, waits (polling, 30 s deadline) until no job is queued or running,
    /// so the next record sees a flush's outcome in every mode.
    async fn wait_for_jobs(&mut self) -> Result<()> {
        let timeout = Duration::from_secs(30);
        match &mut self.backend {
            Backend::InProc(engine) | Backend::Restart(Some(engine)) => {
                engine.wait_for_jobs(timeout).await
            }
            Backend::Restart(None) => Ok(()),
            Backend::Server(server) | Backend::Crash(server) => {
                let deadline = crate::ids::deadline(timeout);
                let busy = "SELECT COUNT(*) FROM system.jobs WHERE status IN ('queued', 'running')";
                loop {
                    let r = server.client.sql(busy).await?;
                    let n = r
                        .first()
                        .and_then(|r| r.rows.as_ref())
                        .and_then(|rows| rows.first())
                        .and_then(|row| row.first())
                        .and_then(|v| v.as_i64());
                    if n == Some(0) {
                        return Ok(());
                    }
                    if Instant::now() > deadline {
                        return Err(Error::Internal("jobs still running after 30 s".into()));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    async fn run_sql(&mut self, sql: &str) -> Result<Option<SltRows>> {
        let result = self.run_sql_once(sql).await;
        if result.is_ok() {
            // Statements may queue flushes (FLUSH, or an INSERT reaching a ROWS policy).
            self.wait_for_jobs().await?;
        }
        result
    }

    async fn run_sql_once(&mut self, sql: &str) -> Result<Option<SltRows>> {
        let last = match &mut self.backend {
            Backend::InProc(engine) => local_last(engine.execute(sql, &Session::root()).await?),
            Backend::Restart(slot) => {
                slot.take(); // close before reopening: RocksDB allows one opener
                let engine = reopen(&self.data_dir).await?;
                let r = engine.execute(sql, &Session::root()).await;
                *slot = Some(engine);
                local_last(r?)
            }
            Backend::Server(server) => server.client.sql(sql).await?.pop(),
            Backend::Crash(server) => {
                server.kill();
                let binary = self
                    .binary
                    .clone()
                    .ok_or_else(|| Error::Internal("no binary".into()))?;
                *server = ServerProcess::start(&binary, &self.data_dir).await?;
                server.client.sql(sql).await?.pop()
            }
        };
        Ok(last.map(|r| {
            if r.message.is_some() || r.rows.is_none() {
                (Vec::new(), Vec::new(), r.row_count)
            } else {
                (r.schema, r.rows.unwrap_or_default(), r.row_count)
            }
        }))
    }
}

/// Opens the engine, retrying for up to 10 s while a just-finished background job still holds
/// the previous instance's RocksDB lock.
async fn reopen(dir: &Path) -> Result<Engine> {
    let deadline = crate::ids::deadline(Duration::from_secs(10));
    loop {
        match Engine::open(Config::with_data_dir(dir)) {
            Ok(e) => return Ok(e),
            Err(e) if Instant::now() < deadline && e.message().contains("lock") => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn local_last(results: Vec<crate::result::QueryResult>) -> Option<RemoteResult> {
    results.last().map(|r| RemoteResult {
        schema: r.columns().into_iter().map(RemoteColumn::from).collect(),
        rows: (!r.is_message()).then(|| r.json_rows()),
        row_count: r.row_count,
        message: r.message.clone(),
    })
}

/// Renders one JSON value the way slt files expect it.
pub fn render(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::String(s) if s.is_empty() => "(empty)".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn column_type(sql_type: &str) -> DefaultColumnType {
    match sql_type {
        "TINYINT" | "SMALLINT" | "INT" | "BIGINT" => DefaultColumnType::Integer,
        t if t == "FLOAT" || t == "DOUBLE" || t.starts_with("DECIMAL") => {
            DefaultColumnType::FloatingPoint
        }
        _ => DefaultColumnType::Text,
    }
}

#[async_trait]
impl AsyncDB for KalamSlt {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>> {
        match self.run_sql(sql).await? {
            Some((schema, rows, _)) if !schema.is_empty() => Ok(DBOutput::Rows {
                types: schema.iter().map(|c| column_type(&c.data_type)).collect(),
                rows: rows
                    .iter()
                    .map(|r| r.iter().map(render).collect())
                    .collect(),
            }),
            Some((_, _, n)) => Ok(DBOutput::StatementComplete(n as u64)),
            None => Ok(DBOutput::StatementComplete(0)),
        }
    }

    async fn shutdown(&mut self) {
        match &mut self.backend {
            Backend::Server(s) | Backend::Crash(s) => s.kill(),
            Backend::InProc(_) | Backend::Restart(_) => {}
        }
    }

    fn engine_name(&self) -> &str {
        "kalamdb"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await
    }
}

/// Every `.slt` file under `dir` whose path contains `filter`, sorted.
pub fn find_files(dir: &Path, filter: Option<&str>) -> Vec<PathBuf> {
    crate::process::files_under(dir, "slt", filter)
}

/// Runs (or, with `complete`, rewrites) one file in one mode.
///
/// # Errors
/// The first failing record, formatted by sqllogictest.
pub async fn run_file(
    path: &Path,
    mode: Mode,
    binary: Option<&Path>,
    complete: bool,
) -> std::result::Result<(), String> {
    let binary = binary.map(Path::to_path_buf);
    let mut runner = Runner::new(move || {
        let binary = binary.clone();
        async move { KalamSlt::connect(mode, binary.as_deref()).await }
    });
    runner.with_column_validator(sqllogictest::default_column_validator);
    let r = if complete {
        runner
            .update_test_file(
                path,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            )
            .await
            .map_err(|e| e.to_string())
    } else {
        runner
            .run_file_async(path)
            .await
            .map_err(|e| e.display(false).to_string())
    };
    runner.shutdown_async().await;
    r
}

/// Runs `files` in `modes`, printing one line per file and mode and a final
/// `N passed, M failed` summary. Returns the number of failures.
pub async fn run_all(
    files: &[PathBuf],
    modes: &[Mode],
    binary: Option<&Path>,
    complete: bool,
) -> usize {
    let (mut passed, mut failed) = (0usize, 0usize);
    for mode in modes {
        for f in files {
            let started = Instant::now();
            match run_file(f, *mode, binary, complete).await {
                Ok(()) => {
                    passed = passed.saturating_add(1);
                    println!(
                        "ok     [{}] {} ({:.1}s)",
                        mode.name(),
                        f.display(),
                        started.elapsed().as_secs_f64()
                    );
                }
                Err(e) => {
                    failed = failed.saturating_add(1);
                    println!("FAILED [{}] {}\n{e}", mode.name(), f.display());
                }
            }
        }
    }
    println!("slt: {passed} passed, {failed} failed");
    failed
}
