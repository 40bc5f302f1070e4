//! The physical baselines of `cargo xtask bench`, measured in the same run as the server: raw
//! RocksDB (`get` and one-`WriteBatch` writes of the very rows the server stored) and raw
//! DataFusion over the very Parquet files the server's flushes wrote.

use std::path::Path;
use std::time::{Duration, Instant};

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use kalamdb::storage::{Batch, CF_ROWS, Store};

use super::measure::{Latency, Res};

/// Raw RocksDB figures on the server's own encoded rows.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RawRocks {
    /// One `get` by row key, the hot tier's point read.
    pub get: Latency,
    /// One single-row `WriteBatch` (WAL on, no fsync: the server's default).
    pub put_1: Latency,
    /// Rows per second written in 50-row `WriteBatch`es.
    pub put_50_rows_per_sec: f64,
}

/// Opens the stopped server's RocksDB under `data_dir`, takes `n` stored rows (key and
/// encoded value), and times `get` of each, then writes them into a fresh store one per batch
/// and 50 per batch.
pub fn raw_rocksdb(data_dir: &Path, n: usize) -> Res<RawRocks> {
    let err = |e: kalamdb::Error| e.to_string();
    let rows = {
        let store = Store::open(&data_dir.join("rocksdb"), false).map_err(err)?;
        let mut rows = Vec::with_capacity(n);
        store
            .for_each_prefix(CF_ROWS, &[], |k, v| {
                rows.push((k.to_vec(), v.to_vec()));
                Ok(rows.len() < n)
            })
            .map_err(err)?;
        let mut samples = Vec::with_capacity(rows.len());
        for (k, _) in &rows {
            let started = Instant::now();
            let got = store.get(CF_ROWS, k).map_err(err)?;
            samples.push(started.elapsed());
            if got.is_none() {
                return Err("a stored key vanished".into());
            }
        }
        (rows, Latency::of(samples))
    };
    let (rows, get) = rows;
    let fresh = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = Store::open(fresh.path(), false).map_err(err)?;
    let mut samples = Vec::with_capacity(rows.len());
    for (k, v) in &rows {
        let started = Instant::now();
        let mut b = Batch::default();
        b.put(&store, CF_ROWS, k, v);
        store.write(b).map_err(err)?;
        samples.push(started.elapsed());
    }
    let fresh50 = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = Store::open(fresh50.path(), false).map_err(err)?;
    let started = Instant::now();
    for chunk in rows.chunks(50) {
        let mut b = Batch::default();
        for (k, v) in chunk {
            b.put(&store, CF_ROWS, k, v);
        }
        store.write(b).map_err(err)?;
    }
    Ok(RawRocks {
        get,
        put_1: Latency::of(samples),
        put_50_rows_per_sec: rows.len() as f64 / started.elapsed().as_secs_f64(),
    })
}

/// Raw DataFusion (a default `SessionContext`) over the Parquet files in `dir`: the mean time
/// of each query of `queries` (run once untimed, then `runs` times), with the file column
/// names (`c<id>`) substituted by the caller.
pub async fn raw_datafusion(dir: &Path, queries: &[String], runs: usize) -> Res<Vec<Duration>> {
    let ctx = SessionContext::new();
    let dir = dir.to_string_lossy().to_string();
    ctx.register_parquet("t", &dir, ParquetReadOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for q in queries {
        let mut total = Duration::ZERO;
        for run in 0..=runs {
            let started = Instant::now();
            ctx.sql(q)
                .await
                .map_err(|e| format!("{q}: {e}"))?
                .collect()
                .await
                .map_err(|e| format!("{q}: {e}"))?;
            if run > 0 {
                total += started.elapsed();
            }
        }
        out.push(total / runs.max(1) as u32);
    }
    Ok(out)
}
