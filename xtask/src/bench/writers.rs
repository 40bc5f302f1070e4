//! Concurrent writers: ten clients inserting into one USER table as one user (one partition,
//! one write lock) or as ten users (`EXECUTE AS USER`, ten partitions), with and without
//! `sync_writes` (where concurrent writers share fsyncs: RocksDB's group commit).

use std::path::Path;

use kalamdb::process::ServerProcess;

use super::measure::{Http, Res, latency, throughput};
use super::{Figure, hot_table};

/// Users `bench0..bench9` that the ten-user runs act as.
pub const USERS: usize = 10;

/// Creates the users the ten-user runs act as.
pub async fn create_users(http: &Http) -> Res<()> {
    for u in 0..USERS {
        http.sql(&format!(
            "CREATE USER 'bench{u}' WITH PASSWORD 'bench-password' ROLE user"
        ))
        .await?;
    }
    Ok(())
}

/// Single-row INSERTs per second into `table` by ten clients, each `per_client` times, with
/// ids from `base` up; as root, or each client as its own user.
pub async fn inserts_per_sec(
    http: &Http,
    table: &str,
    as_users: bool,
    per_client: usize,
    base: usize,
) -> Res<f64> {
    let (http, table) = (http.clone(), table.to_string());
    throughput(USERS, per_client, move |c, i| {
        let (http, table) = (http.clone(), table.clone());
        async move {
            let id = base + c * 1_000_000 + i;
            let insert = format!("INSERT INTO {table} VALUES ({id}, 'value {id}')");
            let sql = if as_users {
                format!("EXECUTE AS USER 'bench{c}' ({insert})")
            } else {
                insert
            };
            http.sql(&sql).await.map(drop)
        }
    })
    .await
}

/// The INSERT figures of a second server started with `sync_writes = true` on `data`.
pub async fn with_sync_writes(
    binary: &Path,
    data: &Path,
    samples: usize,
    per_client: usize,
) -> Res<Vec<Figure>> {
    let server = ServerProcess::start_with_env(binary, data, &[("KALAMDB_SYNC_WRITES", "true")])
        .await
        .map_err(|e| e.to_string())?;
    let http = Http::new(&server.url);
    http.sql("CREATE NAMESPACE bench").await?;
    http.sql(&hot_table("bench.sync")).await?;
    create_users(&http).await?;
    let h = &http;
    let one = latency(samples, |i| async move {
        h.sql(&format!("INSERT INTO bench.sync VALUES ({i}, 'value {i}')"))
            .await
            .map(drop)
    })
    .await?;
    let root = inserts_per_sec(&http, "bench.sync", false, per_client, 10_000_000).await?;
    let users = inserts_per_sec(&http, "bench.sync", true, per_client, 20_000_000).await?;
    Ok(vec![
        Figure::latency("sync_writes: single-row INSERT, 1 client", one),
        Figure::value("sync_writes: single-row INSERT, 10 clients", root, "/s")
            .against("1 client", 1e3 / one.mean_ms),
        Figure::value(
            "sync_writes: single-row INSERT, 10 clients as 10 users",
            users,
            "/s",
        )
        .against("one user", root),
    ])
}
