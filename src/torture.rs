//! `cargo xtask torture`: concurrent writers over HTTP against the real binary, SIGKILL at
//! random moments (some while flushes run), restart, and a check that every acknowledged write
//! is there — SPEC section 3 items 2 and 4 under fire.
//!
//! Writers insert, update and delete rows of a SHARED table and of their own partition of a
//! USER table (through `EXECUTE AS USER`), keeping a model of what the server acknowledged.
//! A request whose answer was lost in a kill is *uncertain*: its row may be in the old or the
//! new state, but in no third one. Small flush policies and explicit `FLUSH ALL TABLES` keep
//! rows moving to Parquet while the killer strikes. At the end the server restarts once more
//! and every row of every partition is compared with the model.
//!
//! May import: the ground floor, `client` and `process`. A tool module: nothing in the server imports it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::process::ServerProcess;

/// What a torture run does.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Server kills (each followed by a restart).
    pub kills: u32,
    /// Concurrent writers.
    pub writers: u32,
    /// Seed of the random choices (operations, kill moments).
    pub seed: u64,
}

/// What a torture run saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Writes the server acknowledged.
    pub acknowledged: u64,
    /// Writes whose answer was lost in a kill.
    pub uncertain: u64,
    /// Rows compared at the end.
    pub rows_checked: u64,
    /// Flush jobs a kill interrupted (`failed`, "interrupted by a server restart").
    pub flushes_interrupted: u64,
    /// Flush jobs that completed.
    pub flushes_completed: u64,
}

/// One row's expected state: acknowledged value (None = deleted or never written), and the
/// values an unanswered write may have left instead.
#[derive(Debug, Default, Clone)]
struct Expect {
    value: Option<String>,
    maybe: Vec<Option<String>>,
}

/// `(table, partition, id)` → expected state.
type Model = BTreeMap<(&'static str, String, i64), Expect>;

const SETUP: &str = "CREATE NAMESPACE tt; \
    CREATE SHARED TABLE tt.shared (id BIGINT PRIMARY KEY, v TEXT) FLUSH POLICY ROWS 40; \
    CREATE USER TABLE tt.mine (id BIGINT PRIMARY KEY, v TEXT) FLUSH POLICY ROWS 25";

/// The server's current address, replaced at every restart.
type Url = Arc<RwLock<String>>;

fn client(url: &Url) -> Client {
    let u = url.read().map(|u| u.clone()).unwrap_or_default();
    Client::new(&u, None)
}

/// True when `e` means the answer was lost (connection refused or cut), not refused.
fn lost(e: &Error) -> bool {
    matches!(e, Error::Internal(_))
}

/// Runs one torture session with `binary` on a fresh data directory.
///
/// # Errors
/// [`Error::Internal`] describing the first acknowledged write that is missing or wrong, or a
/// server that does not come back.
pub async fn run(binary: &Path, options: Options) -> Result<Report> {
    let dir = tempfile::Builder::new()
        .prefix("kalamdb-torture")
        .tempdir()?;
    let mut server = ServerProcess::start(binary, dir.path()).await?;
    server.client.sql(SETUP).await?;
    for w in 0..options.writers {
        server
            .client
            .sql(&format!("CREATE USER 'w{w}' WITH PASSWORD 'pw'"))
            .await?;
    }
    let url: Url = Arc::new(RwLock::new(server.url.clone()));
    let model: Arc<Mutex<Model>> = Arc::default();
    let report: Arc<Mutex<Report>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..options.writers {
        let (url, model, report, stop) = (url.clone(), model.clone(), report.clone(), stop.clone());
        let seed = options.seed.wrapping_add(u64::from(w));
        tasks.push(tokio::spawn(async move {
            writer(w, seed, url, model, report, stop).await
        }));
    }
    let mut rng = fastrand::Rng::with_seed(options.seed);
    for _ in 0..options.kills {
        tokio::time::sleep(Duration::from_millis(rng.u64(200..900))).await;
        if rng.bool() {
            // Start flushes, then kill soon after: some kills land inside a flush.
            let _ = server.client.sql("FLUSH ALL TABLES IN tt").await;
            tokio::time::sleep(Duration::from_millis(rng.u64(0..40))).await;
        }
        server.kill();
        server = ServerProcess::start(binary, dir.path()).await?;
        if let Ok(mut u) = url.write() {
            u.clone_from(&server.url);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await
            .map_err(|e| Error::Internal(format!("writer failed: {e}")))??;
    }
    server.kill();
    let server = ServerProcess::start(binary, dir.path()).await?;
    let model = model
        .lock()
        .map_err(|_| Error::Internal("model lock poisoned".into()))?
        .clone();
    let checked = verify(&server.client, &model, options.writers).await?;
    let mut out = *report
        .lock()
        .map_err(|_| Error::Internal("report lock poisoned".into()))?;
    out.rows_checked = checked;
    let jobs = "SELECT COUNT(*) FILTER (WHERE error_message LIKE 'interrupted%'), \
                COUNT(*) FILTER (WHERE status = 'completed') FROM system.jobs";
    let counts = server
        .client
        .sql(jobs)
        .await?
        .pop()
        .and_then(|r| r.rows)
        .and_then(|rows| rows.into_iter().next())
        .unwrap_or_default();
    let count = |i: usize| counts.get(i).and_then(Value::as_u64).unwrap_or(0);
    out.flushes_interrupted = count(0);
    out.flushes_completed = count(1);
    Ok(out)
}

/// What one writer request does to the model.
enum Op {
    Insert(Vec<i64>),
    Update(i64),
    Delete(i64),
}

/// One writer: random INSERT/UPDATE/DELETE on its own id range until `stop`.
async fn writer(
    w: u32,
    seed: u64,
    url: Url,
    model: Arc<Mutex<Model>>,
    report: Arc<Mutex<Report>>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let user = format!("w{w}");
    // Writer w owns ids [w * 2^32, (w + 1) * 2^32).
    let base = i64::from(w).saturating_mul(1 << 32);
    let mut next_id = base;
    let mut step = 0u64;
    while !stop.load(Ordering::SeqCst) {
        step = step.wrapping_add(1);
        let (table, partition) = if rng.bool() {
            ("shared", String::new())
        } else {
            ("mine", user.clone())
        };
        let known: Vec<i64> = model
            .lock()
            .map(|m| {
                m.keys()
                    .filter(|(t, p, id)| *t == table && *p == partition && *id >= base)
                    .map(|(_, _, id)| *id)
                    .collect()
            })
            .unwrap_or_default();
        let value = format!("w{w}-s{step}");
        let pick = known.get(rng.usize(..known.len().max(1))).copied();
        let op = match (rng.u8(0..10), pick) {
            (6..=7, Some(id)) => Op::Update(id),
            (8..=9, Some(id)) => Op::Delete(id),
            _ => Op::Insert(
                (0..rng.usize(1..6))
                    .map(|_| {
                        next_id = next_id.saturating_add(1);
                        next_id
                    })
                    .collect(),
            ),
        };
        let sql = match &op {
            Op::Insert(ids) => {
                let rows: Vec<String> = ids.iter().map(|id| format!("({id}, '{value}')")).collect();
                format!("INSERT INTO tt.{table} (id, v) VALUES {}", rows.join(", "))
            }
            Op::Update(id) => format!("UPDATE tt.{table} SET v = '{value}' WHERE id = {id}"),
            Op::Delete(id) => format!("DELETE FROM tt.{table} WHERE id = {id}"),
        };
        let sql = if table == "mine" {
            format!("EXECUTE AS USER '{user}' ({sql})")
        } else {
            sql
        };
        let outcome = client(&url).sql(&sql).await;
        let lost_answer = matches!(&outcome, Err(e) if lost(e));
        {
            let mut model = model
                .lock()
                .map_err(|_| Error::Internal("model lock poisoned".into()))?;
            let mut report = report
                .lock()
                .map_err(|_| Error::Internal("report lock poisoned".into()))?;
            let mut set = |id: i64, v: Option<String>, certain: bool| {
                let e = model.entry((table, partition.clone(), id)).or_default();
                if certain {
                    e.value = v;
                    e.maybe.clear();
                } else {
                    e.maybe.push(v);
                }
            };
            match (&outcome, &op) {
                (Ok(results), _) => {
                    report.acknowledged = report.acknowledged.saturating_add(1);
                    let count = results.last().map_or(0, |r| r.row_count);
                    match &op {
                        Op::Insert(ids) => ids
                            .iter()
                            .for_each(|id| set(*id, Some(value.clone()), true)),
                        // An UPDATE that found no row (an unanswered insert that never
                        // landed) leaves it absent.
                        Op::Update(id) => set(*id, (count > 0).then(|| value.clone()), true),
                        Op::Delete(id) => set(*id, None, true),
                    }
                }
                (Err(_), Op::Insert(ids)) if lost_answer => {
                    ids.iter()
                        .for_each(|id| set(*id, Some(value.clone()), false));
                }
                (Err(_), Op::Update(id)) if lost_answer => set(*id, Some(value.clone()), false),
                (Err(_), Op::Delete(id)) if lost_answer => set(*id, None, false),
                // Refused outright: nothing changed.
                (Err(_), _) => {}
            }
            if lost_answer {
                report.uncertain = report.uncertain.saturating_add(1);
            }
        }
        if lost_answer {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Compares every partition with the model; returns the rows compared.
async fn verify(client: &Client, model: &Model, writers: u32) -> Result<u64> {
    let mut checked = 0u64;
    let mut scopes = vec![("shared", String::new())];
    scopes.extend((0..writers).map(|w| ("mine", format!("w{w}"))));
    for (table, partition) in scopes {
        let select = format!("SELECT id, v FROM tt.{table} ORDER BY id");
        let sql = if partition.is_empty() {
            select
        } else {
            format!("EXECUTE AS USER '{partition}' ({select})")
        };
        let rows = client
            .sql(&sql)
            .await?
            .pop()
            .and_then(|r| r.rows)
            .unwrap_or_default();
        let mut actual: BTreeMap<i64, Option<String>> = BTreeMap::new();
        for r in rows {
            let id = r.first().and_then(Value::as_i64).unwrap_or(-1);
            let v = r.get(1).and_then(Value::as_str).map(str::to_string);
            actual.insert(id, v);
        }
        for ((t, p, id), expect) in model.range((table, partition.clone(), i64::MIN)..) {
            if *t != table || *p != partition {
                break;
            }
            checked = checked.saturating_add(1);
            // Rows are written with a value, so "present" is Some(value), "absent" None.
            let got = actual.remove(id).flatten();
            if got != expect.value && !expect.maybe.contains(&got) {
                return Err(Error::Internal(format!(
                    "tt.{table} partition '{partition}' id {id}: expected {:?} (or one of {:?}), found {got:?}",
                    expect.value, expect.maybe
                )));
            }
        }
        if let Some((id, v)) = actual.into_iter().next() {
            return Err(Error::Internal(format!(
                "tt.{table} partition '{partition}' holds id {id} = {v:?}, which no write produced"
            )));
        }
    }
    Ok(checked)
}
