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
    /// Run SQL against a server: one-shot with -c, else an interactive prompt with history
    /// (`\?` lists `\dt`, `\d`, `\dn`, `\timing`, `\subscribe`). Logs in for a token first.
    Sql {
        /// Server URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// User name (password from KALAMDB_PASSWORD); root on loopback needs none.
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

/// Prints one live-query message; false once the subscription has ended.
fn print_live(v: &serde_json::Value) -> bool {
    let text = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    };
    let rows = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match text("type") {
        "auth_success" => println!("-- connected as {}", text("user_id")),
        "subscription_ack" => println!(
            "-- subscribed: {} row(s); waiting for changes (Ctrl-C to stop)",
            v.get("total_rows").unwrap_or(&serde_json::Value::Null)
        ),
        "initial_data_batch" => rows("rows").iter().for_each(|r| println!("[row]    {r}")),
        "change" => {
            let kind = text("change_type");
            for (i, r) in rows("rows").iter().enumerate() {
                match rows("old_values").get(i) {
                    Some(old) => println!("[{kind}] {r} (was {old})"),
                    None => println!("[{kind}] {r}"),
                }
            }
            if kind == "delete" {
                rows("old_values")
                    .iter()
                    .for_each(|r| println!("[delete] {r}"));
            }
        }
        "error" => {
            eprintln!("error: {} {}", text("code"), text("message"));
            return false;
        }
        _ => {}
    }
    true
}

/// Runs `-c`'s text: a meta-command (`\\dt`, `\\subscribe SELECT …`, …) or SQL statements.
async fn run_command(client: &Client, text: &str) -> kalamdb::Result<()> {
    use kalamdb::cli::{Input, meta, render};
    let input = if text.trim_start().starts_with('\\') {
        meta(text)?
    } else {
        Input::Sql(text.to_string())
    };
    match input {
        Input::Sql(sql) => print!("{}", render(&client.sql(&sql).await?)),
        Input::Subscribe(select) => client.subscribe(&select, print_live).await?,
        Input::Help => println!("{}", kalamdb::cli::HELP),
        Input::ToggleTiming | Input::Quit => {}
    }
    Ok(())
}

/// mimalloc instead of the system allocator (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
                let mut client = Client::new(&url, creds);
                client.login().await?;
                if let Some(sql) = command {
                    return run_command(&client, &sql).await;
                }
                kalamdb::cli::repl(&client, print_live).await
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
