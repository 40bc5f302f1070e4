//! `cargo xtask bench`: the release server binary, started for real on a temporary data
//! directory and driven over HTTP and the WebSocket, side by side with the physical baselines
//! measured in the same run (the HTTP floor, raw RocksDB, raw DataFusion). Prints a table and
//! writes `target/bench/results.json` and `target/bench/results.svg`. See
//! docs/performance.md for what each figure means.

mod baselines;
mod chart;
mod live;
mod measure;
mod postgres;
mod writers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kalamdb::process::ServerProcess;
use serde::Serialize;

use measure::{Http, Latency, Res, latency, memory_mib, once, reset_peak_rss, throughput};

/// What to run.
pub struct Options {
    /// Smaller tables and fewer samples: under 3 minutes once the binary is built.
    pub quick: bool,
    /// Also run the small-statement scenarios through `pgbench` on a local PostgreSQL.
    pub postgres: bool,
}

/// One measured figure, with its baseline when it has one.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What was measured.
    pub scenario: String,
    /// The figure, in `unit`.
    pub value: f64,
    /// `ms` (mean latency), `/s` (operations per second), `rows/s`, `MiB`.
    pub unit: &'static str,
    /// 99th-percentile latency, ms, for latency figures.
    pub p99_ms: Option<f64>,
    /// The baseline's name.
    pub baseline: Option<String>,
    /// The baseline's figure, in `unit`.
    pub baseline_value: Option<f64>,
    /// How many times the baseline's cost this costs (> 1: slower than the baseline).
    pub ratio: Option<f64>,
    /// The target for this figure, as text.
    pub target: Option<&'static str>,
    /// The same scenario through `pgbench` on a local PostgreSQL (`--postgres`), in `unit`.
    pub postgres: Option<f64>,
}

impl Figure {
    fn latency(scenario: impl Into<String>, l: Latency) -> Figure {
        Figure {
            scenario: scenario.into(),
            value: l.mean_ms,
            unit: "ms",
            p99_ms: Some(l.p99_ms),
            baseline: None,
            baseline_value: None,
            ratio: None,
            target: None,
            postgres: None,
        }
    }

    fn value(scenario: impl Into<String>, value: f64, unit: &'static str) -> Figure {
        Figure {
            scenario: scenario.into(),
            value,
            unit,
            p99_ms: None,
            baseline: None,
            baseline_value: None,
            ratio: None,
            target: None,
            postgres: None,
        }
    }

    /// Adds a baseline of the same unit; the ratio is cost over baseline cost (rates invert).
    fn against(mut self, name: &str, baseline: f64) -> Figure {
        let ratio = if self.unit == "ms" {
            self.value / baseline
        } else {
            baseline / self.value
        };
        self.baseline = Some(name.to_string());
        self.baseline_value = Some(baseline);
        self.ratio = Some(ratio);
        self
    }

    /// How many times PostgreSQL's cost this costs (> 1: slower than PostgreSQL).
    fn postgres_ratio(&self) -> Option<f64> {
        let pg = self.postgres?;
        Some(if self.unit == "ms" {
            self.value / pg
        } else {
            pg / self.value
        })
    }

    fn target(mut self, t: &'static str) -> Figure {
        self.target = Some(t);
        self
    }
}

/// Everything one run wrote to `results.json`.
#[derive(Serialize)]
struct Report {
    date: String,
    commit: String,
    machine: Machine,
    quick: bool,
    figures: Vec<Figure>,
}

#[derive(Serialize)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    memory_gib: f64,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        cpu_model,
        memory_gib: mem_kib / 1024.0 / 1024.0,
    }
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The checked-out commit, with `-dirty` when the work tree has uncommitted changes.
fn commit(root: &Path) -> String {
    let root = root.to_string_lossy();
    let head = command_output("git", &["-C", &root, "rev-parse", "HEAD"]);
    let dirty = !command_output("git", &["-C", &root, "status", "--porcelain"]).is_empty();
    if dirty { format!("{head}-dirty") } else { head }
}

/// Runs the bench; false when it could not (the error is printed).
pub async fn run(root: &Path, target: &Path, binary: &Path, options: Options) -> bool {
    let out_dir = target.join("bench");
    match measure_all(binary, &options).await {
        Ok(figures) => {
            print_table(&figures);
            let report = Report {
                date: command_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
                commit: commit(root),
                machine: machine(),
                quick: options.quick,
                figures,
            };
            let written = std::fs::create_dir_all(&out_dir)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
                    std::fs::write(out_dir.join("results.json"), json).map_err(|e| e.to_string())
                })
                .and_then(|()| chart::draw(&out_dir.join("results.svg"), &report.figures));
            match written {
                Ok(()) => {
                    println!("wrote {}/results.json and results.svg", out_dir.display());
                    true
                }
                Err(e) => {
                    eprintln!("bench: cannot write results: {e}");
                    false
                }
            }
        }
        Err(e) => {
            eprintln!("bench failed: {e}");
            false
        }
    }
}

fn print_table(figures: &[Figure]) {
    println!(
        "{:<58} {:>12} {:>9} {:>24} {:>8} {:>18}  target",
        "scenario", "value", "p99 ms", "baseline", "ratio", "pgbench (ratio)"
    );
    for f in figures {
        let value = format!("{:.3} {}", f.value, f.unit);
        let p99 = f.p99_ms.map(|p| format!("{p:.3}")).unwrap_or_default();
        let baseline = match (&f.baseline, f.baseline_value) {
            (Some(n), Some(v)) => format!("{n} {v:.3}"),
            _ => String::new(),
        };
        let ratio = f.ratio.map(|r| format!("{r:.2}x")).unwrap_or_default();
        let pg = match (f.postgres, f.postgres_ratio()) {
            (Some(v), Some(r)) => format!("{v:.3} ({r:.1}x)"),
            _ => String::new(),
        };
        println!(
            "{:<58} {:>12} {:>9} {:>24} {:>8} {:>18}  {}",
            f.scenario,
            value,
            p99,
            baseline,
            ratio,
            pg,
            f.target.unwrap_or("")
        );
    }
}

/// `SELECT 1` through `Engine::execute` in this process (an engine of its own on `dir`): the
/// statement path with the hop to the query runtime, without HTTP.
async fn in_process(dir: &Path, samples: usize) -> Res<Latency> {
    let engine =
        kalamdb::Engine::open(kalamdb::Config::with_data_dir(dir)).map_err(|e| e.to_string())?;
    let root = kalamdb::Session::root();
    let (e, r) = (&engine, &root);
    latency(samples, |_| async move {
        e.execute("SELECT 1", r)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
}

/// Loads `rows` rows `(id, 'value ' || id)` for ids `first..first + rows` into `table`.
async fn load(http: &Http, table: &str, first: usize, rows: usize) -> Res<()> {
    let chunk = 50_000usize;
    let mut start = first;
    while start < first + rows {
        let end = (start + chunk).min(first + rows) - 1;
        http.sql(&format!(
            "INSERT INTO {table} SELECT value, 'value ' || value FROM generate_series({start}, {end}) AS g(value)"
        ))
        .await?;
        start = end + 1;
    }
    Ok(())
}

/// Flushes `table` and waits until no flush job is unfinished.
async fn flush(http: &Http, table: &str) -> Res<()> {
    http.sql(&format!("FLUSH TABLE {table}")).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        let rows = http
            .rows("SELECT COUNT(*) FROM system.jobs WHERE finished_at IS NULL")
            .await?;
        if rows
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.as_u64())
            == Some(0)
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("the flush of {table} did not finish in 600 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A hot table: BIGINT key, TEXT value, never flushed by policy.
fn hot_table(name: &str) -> String {
    format!("CREATE USER TABLE {name} (id BIGINT PRIMARY KEY, v TEXT) FLUSH POLICY TIME 86400")
}

async fn measure_all(binary: &Path, options: &Options) -> Res<Vec<Figure>> {
    let quick = options.quick;
    let samples = if quick { 300 } else { 2000 };
    let per_client = if quick { 200 } else { 1000 };
    let sizes: &[usize] = if quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let dir = tempfile::Builder::new()
        .prefix("kalamdb-bench")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(binary, &data)
        .await
        .map_err(|e| e.to_string())?;
    let http = Http::new(&server.url);
    let mut figures = Vec::new();
    let h = &http;

    println!("bench: HTTP floor and SELECT 1");
    let floor = latency(samples, |_| h.health()).await?;
    figures.push(Figure::latency(
        "HTTP floor: GET /v1/api/healthcheck",
        floor,
    ));
    let select1 = latency(samples, |_| async { h.sql("SELECT 1").await.map(drop) }).await?;
    figures.push(
        Figure::latency("SELECT 1, 1 client", select1)
            .against("healthcheck", floor.mean_ms)
            .target("<= 2x the HTTP floor"),
    );
    let engine = in_process(&dir.path().join("inproc"), samples).await?;
    figures.push(
        Figure::latency("SELECT 1 in process (Engine::execute, no HTTP)", engine)
            .against("SELECT 1 over HTTP", select1.mean_ms),
    );

    println!("bench: INSERT");
    http.sql("CREATE NAMESPACE bench").await?;
    http.sql(&hot_table("bench.w")).await?;
    let insert1 = latency(samples, |i| async move {
        h.sql(&format!("INSERT INTO bench.w VALUES ({i}, 'value {i}')"))
            .await
            .map(drop)
    })
    .await?;
    figures.push(Figure::latency("single-row INSERT, 1 client", insert1).target("<= 0.15 ms"));
    let base = 10_000_000usize;
    let http10 = http.clone();
    let insert10 = throughput(10, per_client, move |c, i| {
        let http = http10.clone();
        async move {
            let id = base + c * 1_000_000 + i;
            http.sql(&format!("INSERT INTO bench.w VALUES ({id}, 'value {id}')"))
                .await
                .map(drop)
        }
    })
    .await?;
    figures.push(Figure::value("single-row INSERT, 10 clients", insert10, "/s").target(">= 20K/s"));
    // A USER table's writers are per user: ten users' partitions take ten write locks.
    writers::create_users(&http).await?;
    let insert10_users =
        writers::inserts_per_sec(&http, "bench.w", true, per_client, 30_000_000).await?;
    figures.push(
        Figure::value(
            "single-row INSERT, 10 clients as 10 users (EXECUTE AS USER)",
            insert10_users,
            "/s",
        )
        .against("one user", insert10),
    );
    let insert50 = latency(samples / 3, |i| async move {
        let first = 20_000_000 + i * 50;
        let values: Vec<String> = (first..first + 50)
            .map(|id| format!("({id}, 'value {id}')"))
            .collect();
        h.sql(&format!("INSERT INTO bench.w VALUES {}", values.join(",")))
            .await
            .map(drop)
    })
    .await?;
    figures.push(
        Figure::value(
            "50-row INSERT, 1 client",
            50.0 / insert50.mean_ms * 1e3,
            "rows/s",
        )
        .target(">= 150K rows/s"),
    );

    println!("bench: INSERT with sync_writes (a second server)");
    figures.extend(
        writers::with_sync_writes(
            binary,
            &dir.path().join("sync"),
            samples / 3,
            per_client / 2,
        )
        .await?,
    );

    println!("bench: primary-key lookups on {sizes:?} hot rows");
    let mut pk_at_smallest = None;
    let mut largest = String::new();
    for &size in sizes {
        let table = format!("bench.pk_{size}");
        http.sql(&hot_table(&table)).await?;
        load(&http, &table, 0, size).await?;
        let t = &table;
        let pk = latency(samples, |i| async move {
            let id = i.wrapping_mul(7919) % size;
            let rows = h
                .rows(&format!("SELECT v FROM {t} WHERE id = {id}"))
                .await?;
            if rows.len() == 1 {
                Ok(())
            } else {
                Err(format!("id {id}: {rows:?}"))
            }
        })
        .await?;
        let mut fig = Figure::latency(format!("PK lookup, {size} hot rows, 1 client"), pk);
        match pk_at_smallest {
            None => {
                pk_at_smallest = Some(pk.mean_ms);
                fig = fig.target("<= 0.15 ms");
            }
            Some(small) => {
                fig = fig
                    .against(&format!("PK lookup at {}", sizes[0]), small)
                    .target("<= 1.2x the cost at 10K rows");
            }
        }
        figures.push(fig);
        largest = table;
    }
    let small_table = format!("bench.pk_{}", sizes[0]);
    let (st, size0) = (&small_table, sizes[0]);
    let pk_param = latency(samples, |i| async move {
        let id = i.wrapping_mul(7919) % size0;
        let body = h
            .sql_with(
                &format!("SELECT v FROM {st} WHERE id = $1"),
                &[serde_json::json!(id)],
            )
            .await?;
        match body["results"][0]["row_count"].as_u64() {
            Some(1) => Ok(()),
            _ => Err(format!("id {id}: {body}")),
        }
    })
    .await?;
    figures.push(
        Figure::latency(
            format!("PK lookup with $1 (plan reused), {size0} hot rows, 1 client"),
            pk_param,
        )
        .against("literal key", pk_at_smallest.unwrap_or(f64::NAN))
        .target("<= 0.15 ms"),
    );
    let (http10, t10, size0) = (http.clone(), small_table.clone(), sizes[0]);
    let pk10 = throughput(10, per_client, move |c, i| {
        let (http, t) = (http10.clone(), t10.clone());
        async move {
            let id = (c * 7919 + i * 104_729) % size0;
            http.sql(&format!("SELECT v FROM {t} WHERE id = {id}"))
                .await
                .map(drop)
        }
    })
    .await?;
    figures.push(Figure::value("PK lookup, 10 clients", pk10, "/s").target(">= 40K/s"));
    let st = &small_table;
    let update = latency(samples, |i| async move {
        h.sql(&format!(
            "UPDATE {st} SET v = 'updated' WHERE id = {}",
            i % size0
        ))
        .await
        .map(drop)
    })
    .await?;
    figures.push(Figure::latency("UPDATE by PK, 1 client", update));
    let delete = latency(samples.min(size0 / 2), |i| async move {
        h.sql(&format!("DELETE FROM {st} WHERE id = {i}"))
            .await
            .map(drop)
    })
    .await?;
    figures.push(Figure::latency("DELETE by PK, 1 client", delete));

    println!("bench: LIMIT 10 on {largest}");
    let lt = &largest;
    let limit10 = latency(samples / 3, |_| async move {
        h.sql(&format!("SELECT * FROM {lt} LIMIT 10"))
            .await
            .map(drop)
    })
    .await?;
    let rss = memory_mib(server.pid(), "VmRSS").unwrap_or(f64::NAN);
    figures.push(
        Figure::latency(
            format!("SELECT * LIMIT 10 on {} hot rows", sizes[sizes.len() - 1]),
            limit10,
        )
        .target("<= 2 ms on 1M rows"),
    );
    figures
        .push(Figure::value("server RSS after the LIMIT 10 runs", rss, "MiB").target("<= 200 MB"));

    println!("bench: flush of 100K rows");
    http.sql(&hot_table("bench.fl")).await?;
    load(&http, "bench.fl", 0, 100_000).await?;
    let ((), flushed) = once(flush(&http, "bench.fl")).await?;
    figures.push(Figure::value(
        "flush of 100K hot rows to Parquet",
        flushed.as_secs_f64() * 1e3,
        "ms",
    ));

    println!("bench: five queries over 200K rows in 20 flushed files");
    figures.extend(cold_queries(&http, &data, if quick { 3 } else { 10 }).await?);

    println!("bench: change latency and fan-out");
    http.sql("CREATE SHARED TABLE bench.live (id BIGINT PRIMARY KEY, v TEXT)")
        .await?;
    let change = live::change_latency(&http, "bench.live", samples / 3).await?;
    figures.push(Figure::latency(
        "change latency: INSERT sent -> change frame",
        change,
    ));
    for n in [1_000usize, 10_000] {
        let table = format!("bench.fan_{n}");
        http.sql(&format!(
            "CREATE SHARED TABLE {table} (id BIGINT PRIMARY KEY, v TEXT)"
        ))
        .await?;
        let f = live::fan_out(&http, &table, n, if quick { 5 } else { 20 }).await?;
        figures.push(
            Figure::value(
                format!("fan-out to {n} subscribers: INSERT response"),
                f.insert_ms,
                "ms",
            )
            .against("single-row INSERT", insert1.mean_ms),
        );
        figures.push(Figure::value(
            format!("fan-out to {n} subscribers: last change frame"),
            f.delivered_ms,
            "ms",
        ));
    }

    let big = if quick { 100_000 } else { 1_000_000 };
    println!("bench: restart with {big} hot + {big} cold rows");
    http.sql(&hot_table("bench.big")).await?;
    load(&http, "bench.big", 0, big).await?;
    let before = memory_mib(server.pid(), "VmRSS").unwrap_or(f64::NAN);
    // The peak so far; resetting it isolates the flush's peak, the larger one is reported below.
    let peak_before_flush = memory_mib(server.pid(), "VmHWM").unwrap_or(f64::NAN);
    let reset = reset_peak_rss(server.pid());
    flush(&http, "bench.big").await?;
    if reset {
        let during = memory_mib(server.pid(), "VmHWM").unwrap_or(f64::NAN);
        figures.push(
            Figure::value(
                format!("server peak RSS while flushing {big} rows"),
                during,
                "MiB",
            )
            .against("RSS before the flush", before),
        );
    }
    load(&http, "bench.big", big, big).await?;
    let peak = memory_mib(server.pid(), "VmHWM")
        .unwrap_or(f64::NAN)
        .max(peak_before_flush);
    figures.push(Figure::value(
        "server peak RSS (before restart)",
        peak,
        "MiB",
    ));
    server.kill();
    let (restarted, started) = once(async {
        let s = ServerProcess::start(binary, &data)
            .await
            .map_err(|e| e.to_string())?;
        Http::new(&s.url)
            .rows("SELECT COUNT(*) FROM bench.big")
            .await?;
        Ok(s)
    })
    .await?;
    figures.push(Figure::value(
        format!("restart (after kill -9) to first query, {big} hot + {big} cold rows"),
        started.as_secs_f64() * 1e3,
        "ms",
    ));
    drop(restarted);

    println!("bench: raw RocksDB on the stored rows");
    let raw = baselines::raw_rocksdb(&data, 10_000)?;
    for f in &mut figures {
        if f.scenario.starts_with("PK lookup, ")
            && f.scenario.ends_with("1 client")
            && f.baseline.is_none()
        {
            *f = f.clone().against("raw RocksDB get", raw.get.mean_ms);
        }
        if f.scenario == "single-row INSERT, 1 client" {
            *f = f
                .clone()
                .against("raw RocksDB 1-row WriteBatch", raw.put_1.mean_ms);
        }
        if f.scenario == "50-row INSERT, 1 client" {
            *f = f
                .clone()
                .against("raw RocksDB 50-row WriteBatch", raw.put_50_rows_per_sec);
        }
    }
    if options.postgres {
        println!("bench: the same statements through pgbench on a local PostgreSQL");
        let pg_dir = tempfile::Builder::new()
            .prefix("kalamdb-bench-pg")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let pg = postgres::measure(pg_dir.path(), if quick { 3 } else { 10 })?;
        for f in &mut figures {
            f.postgres = match f.scenario.as_str() {
                "single-row INSERT, 1 client" => Some(pg.insert_1_ms),
                "single-row INSERT, 10 clients" => Some(pg.insert_10_per_sec),
                "50-row INSERT, 1 client" => Some(pg.insert_50_rows_per_sec),
                "PK lookup, 10000 hot rows, 1 client" => Some(pg.pk_1_ms),
                "PK lookup, 10 clients" => Some(pg.pk_10_per_sec),
                _ => None,
            };
        }
    }
    figures.push(Figure::latency("raw RocksDB get (baseline)", raw.get));
    figures.push(Figure::latency(
        "raw RocksDB 1-row WriteBatch (baseline)",
        raw.put_1,
    ));
    Ok(figures)
}

/// The five cold queries, through the server and through raw DataFusion over the same files.
async fn cold_queries(http: &Http, data: &Path, runs: usize) -> Res<Vec<Figure>> {
    http.sql(
        "CREATE SHARED TABLE bench.cold (id BIGINT PRIMARY KEY, n BIGINT, cat TEXT, v TEXT) \
         FLUSH POLICY TIME 86400",
    )
    .await?;
    for f in 0..20usize {
        let (lo, hi) = (f * 10_000, f * 10_000 + 9_999);
        http.sql(&format!(
            "INSERT INTO bench.cold SELECT value, (value * 7919) % 100000, 'cat' || (value % 10), \
             'row ' || value FROM generate_series({lo}, {hi}) AS g(value)"
        ))
        .await?;
        flush(http, "bench.cold").await?;
    }
    // The same queries by the files' column names (c<id>: columns are numbered from 1).
    let queries = [
        "SELECT COUNT(*) FROM {t}",
        "SELECT SUM({n}), AVG({n}) FROM {t}",
        "SELECT {cat}, COUNT(*), MAX({n}) FROM {t} GROUP BY {cat} ORDER BY {cat}",
        "SELECT {id}, {n} FROM {t} WHERE {n} BETWEEN 1000 AND 1100 ORDER BY {id}",
        "SELECT {id}, {v} FROM {t} ORDER BY {n} DESC LIMIT 10",
    ];
    let fill = |q: &str, names: [&str; 5]| {
        q.replace("{t}", names[0])
            .replace("{id}", names[1])
            .replace("{n}", names[2])
            .replace("{cat}", names[3])
            .replace("{v}", names[4])
    };
    let mut ours = Duration::ZERO;
    for q in &queries {
        let sql = fill(q, ["bench.cold", "id", "n", "cat", "v"]);
        for run in 0..=runs {
            let ((), t) = once(async { http.sql(&sql).await.map(drop) }).await?;
            if run > 0 {
                ours += t;
            }
        }
    }
    let files = kalamdb::process::files_under(data, "parquet", Some("cold"));
    let dir: PathBuf = files
        .first()
        .and_then(|f| f.parent())
        .map(Path::to_path_buf)
        .ok_or("no Parquet files of bench.cold")?;
    let raw_sql: Vec<String> = queries
        .iter()
        .map(|q| fill(q, ["t", "c1", "c2", "c3", "c4"]))
        .collect();
    let raw = baselines::raw_datafusion(&dir, &raw_sql, runs).await?;
    let raw_total: Duration = raw.iter().sum();
    let per_run = |d: Duration| d.as_secs_f64() * 1e3 / runs.max(1) as f64;
    Ok(vec![
        Figure::value(
            format!("5 queries over 200K rows in {} flushed files", files.len()),
            per_run(ours),
            "ms",
        )
        .against("raw DataFusion, same files", raw_total.as_secs_f64() * 1e3)
        .target("<= 1.3x raw DataFusion"),
    ])
}
