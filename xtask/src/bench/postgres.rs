//! `cargo xtask bench --postgres`: the same small-statement scenarios through `pgbench`
//! against a throwaway local PostgreSQL cluster (initdb into a temporary directory, run as the
//! `postgres` system user, TCP on loopback, `synchronous_commit = off` to match KalamDB's
//! default of a WAL write without an fsync per commit).

use std::path::Path;
use std::process::Command;

use super::measure::Res;

/// pgbench figures: mean latency (ms, 1 client) or throughput (per second, 10 clients).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Pg {
    /// Single-row INSERT, 1 client, ms.
    pub insert_1_ms: f64,
    /// Single-row INSERTs per second, 10 clients.
    pub insert_10_per_sec: f64,
    /// Rows per second in 50-row INSERTs, 1 client.
    pub insert_50_rows_per_sec: f64,
    /// PK lookup on 10K rows, 1 client, ms.
    pub pk_1_ms: f64,
    /// PK lookups per second, 10 clients.
    pub pk_10_per_sec: f64,
}

fn run(cmd: &mut Command) -> Res<String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn as_postgres(program: &str) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--", program]);
    c
}

/// The number after `label` in pgbench's report (e.g. `latency average = 0.190 ms`).
fn figure(report: &str, label: &str) -> Res<f64> {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no `{label}` in pgbench's report:\n{report}"))
}

/// Starts a cluster under `dir`, runs the scenarios for `seconds` each, and stops it.
pub fn measure(dir: &Path, seconds: u32) -> Res<Pg> {
    let data = dir.join("pgdata");
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    run(Command::new("chown").args(["-R", "postgres"]).arg(dir))?;
    run(as_postgres("initdb")
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
        .arg(&data))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port()
        .to_string();
    let options = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -k {} -c synchronous_commit=off",
        dir.display()
    );
    run(as_postgres("pg_ctl")
        .args(["-w", "-o", &options, "-l"])
        .arg(dir.join("pg.log"))
        .arg("-D")
        .arg(&data)
        .arg("start"))?;
    let result = scenarios(dir, &port, seconds);
    let _ = run(as_postgres("pg_ctl")
        .args(["-m", "immediate", "-D"])
        .arg(&data)
        .arg("stop"));
    result
}

fn scenarios(dir: &Path, port: &str, seconds: u32) -> Res<Pg> {
    let conn = ["-h", "127.0.0.1", "-p", port, "-U", "postgres"];
    run(Command::new("psql").args(conn).args([
        "-q",
        "-c",
        "CREATE TABLE w (id bigint PRIMARY KEY, v text); \
         CREATE TABLE pk (id bigint PRIMARY KEY, v text); \
         INSERT INTO pk SELECT g, 'value ' || g FROM generate_series(0, 9999) g",
    ]))?;
    let values50: Vec<String> = (0..50)
        .map(|i| format!("(:id::bigint * 50 + {i}, 'value')"))
        .collect();
    let scripts = [
        (
            "insert.sql",
            "\\set id random(1, 1000000000000)\nINSERT INTO w VALUES (:id, 'value') ON CONFLICT DO NOTHING;\n".to_string(),
        ),
        (
            "insert50.sql",
            format!(
                "\\set id random(1, 10000000000)\nINSERT INTO w VALUES {} ON CONFLICT DO NOTHING;\n",
                values50.join(", ")
            ),
        ),
        (
            "pk.sql",
            "\\set id random(0, 9999)\nSELECT v FROM pk WHERE id = :id;\n".to_string(),
        ),
    ];
    for (name, text) in &scripts {
        std::fs::write(dir.join(name), text).map_err(|e| e.to_string())?;
    }
    let bench = |script: &str, clients: u32| -> Res<String> {
        let script = dir.join(script);
        run(Command::new("pgbench")
            .args(conn)
            .args(["-n", "-M", "simple", "-T", &seconds.to_string()])
            .args([
                "-c",
                &clients.to_string(),
                "-j",
                &clients.min(2).to_string(),
            ])
            .arg("-f")
            .arg(&script)
            .arg("postgres"))
    };
    let tps = |r: &str| figure(r, "tps =");
    let latency = |r: &str| figure(r, "latency average =");
    let insert_1 = bench("insert.sql", 1)?;
    let insert_10 = bench("insert.sql", 10)?;
    let insert_50 = bench("insert50.sql", 1)?;
    let pk_1 = bench("pk.sql", 1)?;
    let pk_10 = bench("pk.sql", 10)?;
    Ok(Pg {
        insert_1_ms: latency(&insert_1)?,
        insert_10_per_sec: tps(&insert_10)?,
        insert_50_rows_per_sec: tps(&insert_50)? * 50.0,
        pk_1_ms: latency(&pk_1)?,
        pk_10_per_sec: tps(&pk_10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::figure;

    #[test]
    fn pgbench_figures_are_read_by_label() {
        let report = "number of failed transactions: 0 (0.000%)\n\
                      latency average = 0.190 ms\n\
                      initial connection time = 2.345 ms\n\
                      tps = 5234.123456 (without initial connection time)\n";
        assert_eq!(figure(report, "latency average =").unwrap(), 0.190);
        assert_eq!(figure(report, "tps =").unwrap(), 5234.123456);
        assert!(figure(report, "nothing =").is_err());
    }
}
