//! `cargo xtask slt|bench|torture|fuzz|ci`: the project's task runner.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::{Parser, Subcommand};
use kalamdb::slt::{self, Mode};

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
    /// Insert/select throughput of the in-process engine.
    Bench {
        /// Rows to insert.
        #[arg(long, default_value_t = 20_000)]
        rows: usize,
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
    /// fmt check, clippy, rustdoc (broken doc links fail), the layer checks, cargo test, and every
    /// slt file in every mode.
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

/// Builds the server binary and returns its path.
fn build_binary() -> Option<PathBuf> {
    if !cargo(&["build", "--quiet", "--bin", "kalamdb"]) {
        return None;
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    Some(target.join("debug").join("kalamdb"))
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
        match build_binary() {
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

async fn bench(rows: usize) -> bool {
    let dir = std::env::temp_dir().join(format!("kalamdb-bench-{}", std::process::id()));
    let engine = match kalamdb::Engine::open(kalamdb::Config::with_data_dir(&dir)) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return false;
        }
    };
    let root = kalamdb::Session::root();
    // A flush policy above the row count: the "hot tier" numbers are of hot rows.
    let setup = "CREATE NAMESPACE bench; CREATE USER TABLE bench.t (id BIGINT PRIMARY KEY, v TEXT) FLUSH POLICY ROWS 1000000";
    if let Err(e) = engine.execute(setup, &root).await {
        eprintln!("{e}");
        return false;
    }
    let started = Instant::now();
    for chunk in (0..rows).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| format!("({i}, 'value {i}')"))
            .collect();
        if let Err(e) = engine
            .execute(
                &format!("INSERT INTO bench.t VALUES {}", values.join(",")),
                &root,
            )
            .await
        {
            eprintln!("{e}");
            return false;
        }
    }
    let insert = started.elapsed();
    let count = "SELECT COUNT(*), MAX(id) FROM bench.t";
    let started = Instant::now();
    let hot = engine.execute(count, &root).await;
    let select_hot = started.elapsed();
    let hot_lookup = lookups(&engine, &root, rows, "id = ").await;
    let hot_scan = lookups(&engine, &root, rows, "id + 0 = ").await;
    let started = Instant::now();
    for _ in 0..20 {
        if let Err(e) = engine
            .execute("SELECT * FROM bench.t LIMIT 10", &root)
            .await
        {
            eprintln!("{e}");
        }
    }
    let limit10 = started.elapsed() / 20;
    let started = Instant::now();
    let flushed = engine.execute("FLUSH TABLE bench.t", &root).await;
    let waited = engine
        .wait_for_jobs(std::time::Duration::from_secs(600))
        .await;
    let flush = started.elapsed();
    let started = Instant::now();
    let cold = engine.execute(count, &root).await;
    let select_cold = started.elapsed();
    let cold_lookup = lookups(&engine, &root, rows, "id = ").await;
    let cold_scan = lookups(&engine, &root, rows, "id + 0 = ").await;
    let mut fanouts = Vec::new();
    for (n, filtered) in [
        (0, false),
        (1_000, true),
        (1_000, false),
        (10_000, true),
        (10_000, false),
    ] {
        match fanout(&engine, &root, n, filtered).await {
            Ok(t) => fanouts.push((n, filtered, t)),
            Err(e) => eprintln!("fan-out to {n}: {e}"),
        }
    }
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    match hot.and(flushed).and(waited).and(cold) {
        Ok(_) => {
            let rate = rows as f64 / insert.as_secs_f64();
            println!(
                "insert: {rows} rows in {:.1} ms ({rate:.0} rows/s)",
                ms(insert)
            );
            println!("select count, hot tier:  {:.1} ms", ms(select_hot));
            println!("select * limit 10, hot tier: {:.3} ms", ms(limit10));
            println!("flush {rows} rows to Parquet: {:.1} ms", ms(flush));
            println!("select count, cold tier: {:.1} ms", ms(select_cold));
            for (what, lookup, scan) in [
                ("hot", hot_lookup, hot_scan),
                ("cold", cold_lookup, cold_scan),
            ] {
                println!(
                    "primary-key lookup, {what} tier: {:.3} ms by key, {:.3} ms by full scan (`id + 0 = v`)",
                    ms(lookup),
                    ms(scan)
                );
            }
            for (n, filtered, t) in fanouts {
                let which = match (n, filtered) {
                    (0, _) => "the baseline",
                    (_, true) => "each with WHERE id = its own number, one matches",
                    (_, false) => "no WHERE, all receive it",
                };
                println!(
                    "single-row INSERT with {n} live subscribers ({which}): {:.3} ms",
                    ms(t)
                );
            }
            true
        }
        Err(e) => {
            eprintln!("{e}");
            false
        }
    }
}

/// Mean time of a single-row INSERT into a fresh SHARED table with `n` live subscriptions (in
/// process, their connections drained by background tasks): `filtered` gives each its own
/// `WHERE id = i`, so one of them matches an insert; otherwise every one receives it.
async fn fanout(
    engine: &kalamdb::Engine,
    root: &kalamdb::Session,
    n: usize,
    filtered: bool,
) -> kalamdb::Result<std::time::Duration> {
    use kalamdb::live::protocol::SubscribeRequest;
    let table = format!("bench.fan_{n}_{filtered}");
    engine
        .execute(
            &format!("CREATE SHARED TABLE {table} (id BIGINT PRIMARY KEY, v TEXT)"),
            root,
        )
        .await?;
    let per_connection = engine.config().max_subscriptions_per_connection.max(1);
    let mut connections = Vec::new();
    for i in 0..n {
        if i % per_connection == 0 {
            let (live, mut outbox) = engine.live_connect(root)?;
            tokio::spawn(async move {
                while let kalamdb::live::Outgoing::Message(_) = outbox.next().await {}
            });
            connections.push(live);
        }
        let Some(live) = connections.last() else {
            break;
        };
        let sql = if filtered {
            format!("SELECT * FROM {table} WHERE id = {i}")
        } else {
            format!("SELECT * FROM {table}")
        };
        let request = SubscribeRequest {
            id: format!("s{i}"),
            sql,
            options: Default::default(),
        };
        engine.subscribe(&live.connection, root, request).await?;
    }
    let inserts = 100usize;
    let started = Instant::now();
    for i in 0..inserts {
        let id = i.saturating_mul((n / inserts).max(1));
        engine
            .execute(&format!("INSERT INTO {table} VALUES ({id}, 'v')"), root)
            .await?;
    }
    Ok(started.elapsed() / inserts as u32)
}

/// Mean time of 50 single-row SELECTs `WHERE {predicate}<id>` over ids spread across `rows`
/// (in-process, so without HTTP).
async fn lookups(
    engine: &kalamdb::Engine,
    root: &kalamdb::Session,
    rows: usize,
    predicate: &str,
) -> std::time::Duration {
    let n = 50usize;
    let started = Instant::now();
    for i in 0..n {
        let id = i.saturating_mul(rows / n).min(rows.saturating_sub(1));
        let sql = format!("SELECT v FROM bench.t WHERE {predicate}{id}");
        if let Err(e) = engine.execute(&sql, root).await {
            eprintln!("{sql}: {e}");
        }
    }
    started.elapsed() / n as u32
}

async fn torture(kills: u32, writers: u32, seed: Option<u64>) -> bool {
    let Some(binary) = build_binary() else {
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
        Cmd::Bench { rows } => bench(rows).await,
        Cmd::Torture {
            kills,
            writers,
            seed,
        } => torture(kills, writers, seed).await,
        Cmd::Fuzz { minutes } => fuzz(minutes),
        Cmd::Layers => layers::check(&root()),
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
        }
    };
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
