//! [`ServerProcess`]: a `kalamdb serve` child process on a free loopback port, for the tools that
//! test the real binary (the slt `server` and `crash` modes, `cargo xtask torture|bench`), and
//! [`files_under`], how those tools find files (slt files, a data directory's Parquet files).
//!
//! May import: the ground floor and `client`. A tool module: nothing in the server imports it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::client::Client;
use crate::error::{Error, Result};

/// A running `kalamdb serve` child process and a root client of it.
pub struct ServerProcess {
    child: Child,
    /// A root client (loopback, no password).
    pub client: Client,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl ServerProcess {
    /// Starts `binary serve` on `data_dir` and a free port, and waits (60 s at most) until its
    /// healthcheck answers.
    ///
    /// # Errors
    /// [`Error::Internal`] when the process cannot start, exits, or never becomes healthy.
    pub async fn start(binary: &Path, data_dir: &Path) -> Result<ServerProcess> {
        ServerProcess::start_with_env(binary, data_dir, &[]).await
    }

    /// [`ServerProcess::start`] with extra environment variables (`KALAMDB_*` settings).
    ///
    /// # Errors
    /// As [`ServerProcess::start`].
    pub async fn start_with_env(
        binary: &Path,
        data_dir: &Path,
        env: &[(&str, &str)],
    ) -> Result<ServerProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let bind = format!("127.0.0.1:{port}");
        let child = Command::new(binary)
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--bind", &bind])
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::Internal(format!("cannot start {}: {e}", binary.display())))?;
        let url = format!("http://{bind}");
        let client = Client::new(&url, None);
        let mut server = ServerProcess { child, client, url };
        let deadline = crate::ids::deadline(Duration::from_secs(60));
        while !server.client.healthy().await {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(Error::Internal(format!(
                    "server exited during start-up: {status}"
                )));
            }
            if std::time::Instant::now() > deadline {
                server.kill();
                return Err(Error::Internal(
                    "server did not become healthy within 60 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(server)
    }

    /// The server's process id (for reading its memory use from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (std's `Child::kill` sends SIGKILL on Unix) and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every file under `dir` (recursively) with extension `extension` whose path contains
/// `contains` (any path when None), sorted. Unreadable directories are skipped.
pub fn files_under(dir: &Path, extension: &str, contains: Option<&str>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == extension)
                && contains.is_none_or(|f| p.to_string_lossy().contains(f))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
