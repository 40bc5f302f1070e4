//! The `kalamdb` binary: `serve` (the database server) and `sql` (a client).
//!
//! May import: the library's public surface.

// The same no-panic rules as the library (see `src/lib.rs`).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use kalamdb::client::Client;
use kalamdb::{Config, Engine};

#[derive(Parser)]
#[command(name = "kalamdb", version, about = "SQL-first realtime database")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the server (defaults: data in ./data, listening on 127.0.0.1:8080).
    Serve {
        /// TOML config file (optional).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides config and KALAMDB_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Bind address (overrides config and KALAMDB_BIND).
        #[arg(long)]
        bind: Option<String>,
    },
    /// Run SQL against a server: one-shot with -c, else read statements from stdin.
    Sql {
        /// Server URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// User name for Basic auth (password from KALAMDB_PASSWORD).
        #[arg(short = 'u', long)]
        user: Option<String>,
        /// SQL to run.
        #[arg(short = 'c', long)]
        command: Option<String>,
    },
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn print_results(results: &[kalamdb::client::RemoteResult]) {
    for r in results {
        match (&r.message, &r.rows) {
            (Some(m), _) => println!("{m}"),
            (None, Some(rows)) => {
                println!(
                    "{}",
                    r.schema
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
                for row in rows {
                    println!(
                        "{}",
                        row.iter()
                            .map(kalamdb::slt::render)
                            .collect::<Vec<_>>()
                            .join(" | ")
                    );
                }
                println!("({} row(s))", r.row_count);
            }
            (None, None) => println!("OK"),
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result: kalamdb::Result<()> = async {
        match cli.command.unwrap_or(Cmd::Serve {
            config: None,
            data_dir: None,
            bind: None,
        }) {
            Cmd::Serve {
                config,
                data_dir,
                bind,
            } => {
                let mut cfg = Config::load(config.as_deref())?;
                if let Some(d) = data_dir {
                    cfg.data_dir = d;
                }
                if let Some(b) = bind {
                    cfg.bind = b;
                }
                let bind = cfg.bind.clone();
                let engine = Arc::new(Engine::open(cfg)?);
                kalamdb::server::serve(engine, &bind, shutdown_signal()).await
            }
            Cmd::Sql { url, user, command } => {
                let creds =
                    user.map(|u| (u, std::env::var("KALAMDB_PASSWORD").unwrap_or_default()));
                let client = Client::new(&url, creds);
                if let Some(sql) = command {
                    print_results(&client.sql(&sql).await?);
                    return Ok(());
                }
                let stdin = std::io::stdin();
                let mut buf = String::new();
                print!("kalamdb> ");
                let _ = std::io::stdout().flush();
                for line in stdin.lock().lines() {
                    let line = line?;
                    buf.push_str(&line);
                    buf.push('\n');
                    if line.trim_end().ends_with(';') {
                        match client.sql(&buf).await {
                            Ok(r) => print_results(&r),
                            Err(e) => eprintln!("{e}"),
                        }
                        buf.clear();
                    }
                    print!("kalamdb> ");
                    let _ = std::io::stdout().flush();
                }
                Ok(())
            }
        }
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
