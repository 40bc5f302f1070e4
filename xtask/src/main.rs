//! `cargo xtask slt|bench|torture|fuzz|layers|clients|ci`: the project's task runner.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Parser, Subcommand};
use kalamdb::slt::{self, Mode};

mod bench;
mod layers;

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the sqllogictest files.
    Slt {
        /// inproc | server | restart | crash | all
        #[arg(long, default_value = "inproc")]
        mode: String,
        /// Rewrite expected output instead of checking it (review the diff!).
        #[arg(long)]
        complete: bool,
        /// Only files whose path contains this text.
        filter: Option<String>,
    },
    /// Builds the release binary, starts it, and measures it over HTTP and the WebSocket next
    /// to the physical baselines (docs/performance.md); writes target/bench/results.json and
    /// results.svg.
    Bench {
        /// Smaller tables and fewer samples (under 3 minutes once the binary is built).
        #[arg(long)]
        quick: bool,
        /// Also run the small-statement scenarios through pgbench on a throwaway local
        /// PostgreSQL cluster (needs initdb, pg_ctl, pgbench and a `postgres` system user).
        #[arg(long)]
        postgres: bool,
    },
    /// Concurrent writers against the real binary, SIGKILLed at random moments; every
    /// acknowledged write must survive.
    Torture {
        /// How many times the server is killed and restarted.
        #[arg(long, default_value_t = 20)]
        kills: u32,
        /// Concurrent writers.
        #[arg(long, default_value_t = 4)]
        writers: u32,
        /// Seed of the random choices (default: from the clock).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Property-based hostile input (tests/fuzz.rs) with fresh seeds for N minutes.
    Fuzz {
        /// Minutes to run.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
    },
    /// Structural checks of src/: no import cycle between files, no file over 800 lines.
    Layers,
    /// The TypeScript client's tests and the web console's browser test (clients/typescript:
    /// `npm ci`, `npm test`) against the debug server binary; needs Node.js 20 or later and, for the
    /// console, Chromium at `$CHROMIUM` (default /usr/bin/chromium). Screenshots go to
    /// `<target dir>/e2e/`.
    Clients,
    /// fmt check, clippy, rustdoc (broken doc links fail), the layer checks, cargo test, every
    /// slt file in every mode, and the clients' tests.
    Ci,
}

/// The workspace root, resolved at run time: `cargo run` sets `CARGO_MANIFEST_DIR` (xtask's own
/// directory). A compile-time `env!` would point at another checkout when checkouts share a
/// target directory (cargo then reuses this binary).
fn root() -> PathBuf {
    let xtask_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let dir = xtask_dir
        .or_else(|| std::env::current_dir().ok().map(|d| d.join("xtask")))
        .unwrap_or_default();
    dir.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn cargo(args: &[&str]) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(args)
        .current_dir(root())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A cargo build profile of the server binary.
#[derive(Clone, Copy, PartialEq)]
enum Profile {
    Debug,
    Release,
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `target/` in the workspace).
fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"))
}

/// Builds the server binary and returns its path.
fn build_binary(profile: Profile) -> Option<PathBuf> {
    let mut args = vec!["build", "--quiet", "--bin", "kalamdb"];
    if profile == Profile::Release {
        args.push("--release");
    }
    if !cargo(&args) {
        return None;
    }
    let dir = if profile == Profile::Release {
        "release"
    } else {
        "debug"
    };
    Some(target_dir().join(dir).join("kalamdb"))
}

/// `cargo xtask bench`: the load generator and the raw baselines must not be slowed by a debug
/// build, so a debug xtask builds the release server and a release xtask, and hands over to
/// the latter; a release xtask runs the bench.
async fn bench_release(options: bench::Options) -> bool {
    let Some(server) = build_binary(Profile::Release) else {
        return false;
    };
    if cfg!(debug_assertions) {
        if !cargo(&["build", "--quiet", "--release", "--package", "xtask"]) {
            return false;
        }
        let mut release = Command::new(target_dir().join("release").join("xtask"));
        release.arg("bench").current_dir(root());
        if options.quick {
            release.arg("--quick");
        }
        if options.postgres {
            release.arg("--postgres");
        }
        return release.status().map(|s| s.success()).unwrap_or(false);
    }
    bench::run(&root(), &target_dir(), &server, options).await
}

async fn run_slt(mode: &str, complete: bool, filter: Option<&str>) -> bool {
    let modes: Vec<Mode> = if mode == "all" {
        Mode::ALL.to_vec()
    } else {
        match Mode::parse(mode) {
            Some(m) => vec![m],
            None => {
                eprintln!("unknown mode '{mode}': use inproc, server, restart, crash or all");
                return false;
            }
        }
    };
    let binary = if modes.iter().any(Mode::needs_binary) {
        match build_binary(Profile::Debug) {
            Some(b) => Some(b),
            None => return false,
        }
    } else {
        None
    };
    let files = slt::find_files(&root().join("slt"), filter);
    if files.is_empty() {
        eprintln!("no slt files match");
        return false;
    }
    slt::run_all(&files, &modes, binary.as_deref(), complete).await == 0
}

async fn torture(kills: u32, writers: u32, seed: Option<u64>) -> bool {
    let Some(binary) = build_binary(Profile::Debug) else {
        return false;
    };
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    println!("torture: {kills} kill(s), {writers} writer(s), seed {seed}");
    let options = kalamdb::torture::Options {
        kills,
        writers,
        seed,
    };
    match kalamdb::torture::run(&binary, options).await {
        Ok(r) => {
            println!(
                "torture: ok: {} acknowledged writes, {} unanswered, {} rows verified; \
                 flushes: {} completed, {} interrupted by a kill",
                r.acknowledged,
                r.uncertain,
                r.rows_checked,
                r.flushes_completed,
                r.flushes_interrupted
            );
            true
        }
        Err(e) => {
            eprintln!("torture: FAILED (seed {seed}): {e}");
            false
        }
    }
}

/// `cargo xtask clients`: see [`Cmd::Clients`].
fn clients() -> bool {
    let Some(binary) = build_binary(Profile::Debug) else {
        return false;
    };
    let package = root().join("clients").join("typescript");
    let artifacts = target_dir().join("e2e");
    let npm = |args: &[&str]| {
        Command::new("npm")
            .args(args)
            .current_dir(&package)
            .env("KALAMDB_BIN", &binary)
            .env("KALAMDB_ARTIFACTS", &artifacts)
            .status()
            .map(|s| s.success())
            .unwrap_or_else(|e| {
                eprintln!("cannot run npm ({e}): install Node.js 20 or later");
                false
            })
    };
    let ok = npm(&["ci", "--no-audit", "--no-fund"]) && npm(&["test"]);
    println!("clients: screenshots in {}", artifacts.display());
    ok
}

fn fuzz(minutes: u64) -> bool {
    let seconds = minutes.saturating_mul(60).to_string();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(["test", "--test", "fuzz", "--", "--nocapture"])
        .env("KALAMDB_FUZZ_SECONDS", seconds)
        .current_dir(root())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let ok = match Cli::parse().command {
        Cmd::Slt {
            mode,
            complete,
            filter,
        } => run_slt(&mode, complete, filter.as_deref()).await,
        Cmd::Bench { quick, postgres } => bench_release(bench::Options { quick, postgres }).await,
        Cmd::Torture {
            kills,
            writers,
            seed,
        } => torture(kills, writers, seed).await,
        Cmd::Fuzz { minutes } => fuzz(minutes),
        Cmd::Layers => layers::check(&root()),
        Cmd::Clients => clients(),
        Cmd::Ci => {
            cargo(&["fmt", "--all", "--", "--check"])
                && cargo(&[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ])
                && cargo(&["rustdoc", "--lib", "--quiet", "--", "-D", "warnings"])
                && layers::check(&root())
                && cargo(&["test", "--workspace"])
                && run_slt("all", false, None).await
                && clients()
        }
    };
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
