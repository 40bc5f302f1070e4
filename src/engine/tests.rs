//! Engine tests: maintenance, flush jobs, cold-tier reads and DDL through `Engine::execute`.
//!
//! May import: anything in the crate (test code).

use super::*;
use crate::config::Config;
use crate::session::Session;
use crate::storage::{Batch, CF_ROWS, codec, cold, keys};

#[tokio::test]
async fn ttl_eviction_removes_only_expired_stream_rows() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(Config::with_data_dir(dir.path())).unwrap();
    let root = Session::root();
    engine
        .execute("CREATE NAMESPACE n; CREATE STREAM TABLE n.e (v TEXT) TTL 60; CREATE SHARED TABLE n.s (v TEXT)", &root)
        .await
        .unwrap();
    engine
        .execute(
            "INSERT INTO n.e VALUES ('a'), ('b'); INSERT INTO n.s VALUES ('keep')",
            &root,
        )
        .await
        .unwrap();
    let now = crate::ids::now_millis();
    assert_eq!(engine.evict_expired_stream_rows(now).await.unwrap(), 0);
    assert_eq!(
        engine
            .evict_expired_stream_rows(now + 61_000)
            .await
            .unwrap(),
        2
    );
    let r = engine
        .execute("SELECT COUNT(*) FROM n.e; SELECT COUNT(*) FROM n.s", &root)
        .await
        .unwrap();
    assert_eq!(r[0].json_rows(), vec![vec![serde_json::json!(0)]]);
    assert_eq!(r[1].json_rows(), vec![vec![serde_json::json!(1)]]);
}

/// Definitions stored before options were range-checked may hold any number: reads and the
/// maintenance pass must neither panic nor wrap on them (issue #6: a huge TTL killed the
/// maintenance loop and every SELECT of the table).
#[tokio::test]
async fn extreme_stored_options_neither_panic_nor_wrap() {
    let (_d, e) = open_with(
        "CREATE NAMESPACE x; CREATE STREAM TABLE x.e (v TEXT) TTL 60; \
         CREATE SHARED TABLE x.s (id INT PRIMARY KEY) FLUSH POLICY TIME 60; \
         INSERT INTO x.e VALUES ('kept'); INSERT INTO x.s VALUES (1); DELETE FROM x.s WHERE id = 1",
    )
    .await;
    let catalog = &e.exec.core.catalog;
    for (table, ttl, retention, interval) in [
        ("e", Some(u64::MAX), None, None),
        ("s", None, Some(u64::MAX), Some(u64::MAX)),
    ] {
        let mut def = (*catalog.table("x", table).unwrap()).clone();
        def.ttl_seconds = ttl.or(def.ttl_seconds);
        def.deleted_retention_secs = retention.or(def.deleted_retention_secs);
        def.flush_policy.interval_secs = interval.or(def.flush_policy.interval_secs);
        catalog.put_table(def).unwrap();
    }
    for now in [0, crate::ids::now_millis(), i64::MAX] {
        e.run_maintenance(now).await.unwrap();
    }
    assert_eq!(
        rows(&e, "SELECT v FROM x.e").await,
        vec![vec![serde_json::json!("kept")]]
    );
    assert_eq!(
        rows(&e, "SELECT COUNT(*) FROM x.s").await,
        vec![vec![serde_json::json!(0)]]
    );
}

/// Every object under the storage base.
async fn cold_files(e: &Engine) -> Vec<String> {
    let listed = e.exec.core.cold.list().await.unwrap();
    listed.into_iter().map(|(p, _)| p).collect()
}

pub(super) async fn open_with(sql: &str) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(Config::with_data_dir(dir.path())).unwrap();
    engine.execute(sql, &Session::root()).await.unwrap();
    (dir, engine)
}

pub(super) async fn rows(engine: &Engine, sql: &str) -> Vec<Vec<serde_json::Value>> {
    engine
        .execute(sql, &Session::root())
        .await
        .unwrap()
        .pop()
        .unwrap()
        .json_rows()
}

async fn message(engine: &Engine, sql: &str) -> String {
    let mut r = engine.execute(sql, &Session::root()).await.unwrap();
    r.pop().and_then(|r| r.message).unwrap()
}

async fn stat(engine: &Engine, table: &str, name: &str) -> serde_json::Value {
    let all = rows(engine, &format!("SHOW STATS FOR TABLE {table}")).await;
    all.into_iter().find(|r| r[0] == name).unwrap()[1].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn flush_policies_fire_when_due() {
    let (_d, e) = open_with(
        "CREATE NAMESPACE p; \
         CREATE SHARED TABLE p.by_rows (id INT) FLUSH POLICY ROWS 3; \
         CREATE SHARED TABLE p.by_time (id INT) FLUSH POLICY TIME 60; \
         CREATE SHARED TABLE p.both (id INT) FLUSH POLICY ROWS 100 OR TIME 60; \
         CREATE SHARED TABLE p.dflt (id INT)",
    )
    .await;
    e.execute(
        "INSERT INTO p.by_rows VALUES (1), (2); INSERT INTO p.by_time VALUES (1); \
         INSERT INTO p.both VALUES (1); INSERT INTO p.dflt VALUES (1)",
        &Session::root(),
    )
    .await
    .unwrap();
    let now = crate::ids::now_millis();
    e.run_maintenance(now).await.unwrap();
    e.wait_for_jobs(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        rows(&e, "SELECT COUNT(*) FROM system.jobs").await,
        vec![vec![serde_json::json!(0)]]
    );
    // ROWS 3 reached; time not yet.
    e.execute("INSERT INTO p.by_rows VALUES (3)", &Session::root())
        .await
        .unwrap();
    e.run_maintenance(now).await.unwrap();
    e.wait_for_jobs(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(stat(&e, "p.by_rows", "cold_rows").await, "3");
    assert_eq!(stat(&e, "p.by_time", "cold_rows").await, "0");
    // 61 s later the TIME policies are due; the default ROWS 10000 policy is not.
    e.run_maintenance(now + 61_000).await.unwrap();
    e.wait_for_jobs(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(stat(&e, "p.by_time", "cold_rows").await, "1");
    assert_eq!(stat(&e, "p.both", "cold_rows").await, "1");
    assert_eq!(stat(&e, "p.dflt", "hot_rows").await, "1");
    assert_eq!(stat(&e, "p.dflt", "parquet_files").await, "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn tombstones_are_purged_after_retention_hot_and_cold() {
    let (_d, e) = open_with(
        "CREATE NAMESPACE r; CREATE SHARED TABLE r.t (id INT PRIMARY KEY) DELETED_RETENTION 1h; \
         INSERT INTO r.t VALUES (1), (2), (3); DELETE FROM r.t WHERE id = 1; FLUSH TABLE r.t",
    )
    .await;
    e.wait_for_jobs(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    e.execute("DELETE FROM r.t WHERE id = 2", &Session::root())
        .await
        .unwrap();
    let deleted = "SELECT id FROM r.t WHERE _deleted = true ORDER BY id";
    assert_eq!(
        rows(&e, deleted).await,
        vec![vec![serde_json::json!(1)], vec![serde_json::json!(2)]]
    );
    let now = crate::ids::now_millis();
    e.run_maintenance(now).await.unwrap();
    assert_eq!(
        rows(&e, deleted).await.len(),
        2,
        "within retention nothing is purged"
    );
    e.run_maintenance(now + 3_601_000).await.unwrap();
    assert!(rows(&e, deleted).await.is_empty());
    assert_eq!(
        rows(&e, "SELECT id FROM r.t").await,
        vec![vec![serde_json::json!(3)]]
    );
    let cleanup = "SELECT job_type, status FROM system.jobs WHERE job_type = 'cleanup'";
    assert_eq!(
        rows(&e, cleanup).await,
        vec![vec![
            serde_json::json!("cleanup"),
            serde_json::json!("completed")
        ]]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn second_flush_names_the_running_job_and_kill_cancels_it() {
    let (_d, e) = open_with(
        "CREATE NAMESPACE k; CREATE SHARED TABLE k.t (id INT); INSERT INTO k.t VALUES (1)",
    )
    .await;
    let def = e.exec.core.catalog.table("k", "t").unwrap();
    let guard = e.exec.core.locks.table(def.id).await; // the job starts but cannot flush yet
    let first = message(&e, "FLUSH TABLE k.t").await;
    let id = first.rsplit(' ').next().unwrap().to_string();
    let second = message(&e, "STORAGE FLUSH TABLE k.t").await;
    assert_eq!(
        second,
        format!("Flush already in progress for table 'k.t'. Job ID: {id}")
    );
    e.execute(&format!("KILL JOB '{id}'"), &Session::root())
        .await
        .unwrap();
    drop(guard);
    e.wait_for_jobs(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let status = rows(&e, "SELECT job_id, status FROM system.jobs").await;
    assert_eq!(
        status,
        vec![vec![serde_json::json!(id), serde_json::json!("cancelled")]]
    );
    assert_eq!(stat(&e, "k.t", "hot_rows").await, "1");
    assert!(
        e.exec.core.cold.list().await.unwrap().is_empty(),
        "the killed flush's file is discarded"
    );
    let again = e
        .execute(&format!("KILL JOB '{id}'"), &Session::root())
        .await
        .unwrap_err();
    assert_eq!(again.code(), "INVALID_PARAMETER");
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_during_flushes_see_every_row_exactly_once() {
    let (_d, e) =
        open_with("CREATE NAMESPACE q; CREATE SHARED TABLE q.t (id INT PRIMARY KEY, v TEXT)").await;
    let e = std::sync::Arc::new(e);
    let mut expected = 0i64;
    for round in 0..15 {
        let values: Vec<String> = (0..20)
            .map(|i| format!("({}, 'v')", round * 20 + i))
            .collect();
        e.execute(
            &format!("INSERT INTO q.t VALUES {}", values.join(",")),
            &Session::root(),
        )
        .await
        .unwrap();
        expected += 20;
        e.execute("FLUSH TABLE q.t", &Session::root())
            .await
            .unwrap();
        // Read while the flush runs (or has just finished): always the exact set.
        for _ in 0..3 {
            let r = rows(&e, "SELECT COUNT(*), COUNT(DISTINCT id), SUM(id) FROM q.t").await;
            let sum: i64 = (0..expected).sum();
            assert_eq!(
                r,
                vec![vec![
                    serde_json::json!(expected),
                    serde_json::json!(expected),
                    serde_json::json!(sum)
                ]]
            );
        }
        e.wait_for_jobs(std::time::Duration::from_secs(30))
            .await
            .unwrap();
    }
    assert_eq!(stat(&e, "q.t", "parquet_files").await, "15");
    assert_eq!(stat(&e, "q.t", "cold_rows").await, "300");
}

#[tokio::test(flavor = "multi_thread")]
async fn cold_files_are_pruned_by_min_max_and_seq() {
    let (dir, e) = open_with(
        "CREATE NAMESPACE pr; CREATE SHARED TABLE pr.t (id INT PRIMARY KEY, name TEXT); \
         INSERT INTO pr.t VALUES (1, 'a'), (2, 'b'); FLUSH TABLE pr.t",
    )
    .await;
    e.wait_for_jobs(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    // `_seq` is beyond 2^53, so JSON carries it as a string (SPEC section 7).
    let boundary: i64 = rows(&e, "SELECT MAX(_seq) FROM pr.t").await[0][0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    e.execute(
        "INSERT INTO pr.t VALUES (10, 'x'), (11, 'y'); FLUSH TABLE pr.t",
        &Session::root(),
    )
    .await
    .unwrap();
    e.wait_for_jobs(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    // Remove the first file from disk: only queries that must read it can fail.
    let first = {
        let view = e.exec.core.store.view();
        let def = e.exec.core.catalog.table("pr", "t").unwrap();
        let mut files = cold::manifest(&view, def.id, None).unwrap();
        files.sort_by_key(|f| f.file_id);
        files[0].path.clone()
    };
    std::fs::remove_file(dir.path().join("storage").join(&first)).unwrap();
    let q = |sql: &'static str| {
        let e = &e;
        async move { e.execute(sql, &Session::root()).await }
    };
    assert_eq!(
        q("SELECT id FROM pr.t WHERE id >= 10 ORDER BY id")
            .await
            .unwrap()[0]
            .json_rows()
            .len(),
        2
    );
    assert_eq!(
        q("SELECT name FROM pr.t WHERE name > 'c'").await.unwrap()[0]
            .json_rows()
            .len(),
        2
    );
    let by_seq = format!("SELECT COUNT(*) FROM pr.t WHERE _seq > {boundary}");
    assert_eq!(rows(&e, &by_seq).await, vec![vec![serde_json::json!(2)]]);
    assert!(
        q("SELECT id FROM pr.t WHERE id < 5").await.is_err(),
        "the missing file is needed here"
    );
    assert!(q("SELECT * FROM pr.t").await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_table_deletes_files_and_reports_them() {
    let (dir, e) = open_with(
        "CREATE NAMESPACE dr; CREATE USER TABLE dr.t (id INT); CREATE USER 'u' WITH PASSWORD 'p'; \
         INSERT INTO dr.t VALUES (1); EXECUTE AS USER 'u' (INSERT INTO dr.t VALUES (2)); FLUSH TABLE dr.t",
    )
    .await;
    e.wait_for_jobs(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let bytes: u64 = stat(&e, "dr.t", "storage_bytes")
        .await
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(bytes > 0);
    assert_eq!(stat(&e, "dr.t", "parquet_files").await, "2");
    assert!(
        dir.path().join("storage/dr/t/u").is_dir(),
        "USER partitions get their own directory"
    );
    let msg = message(&e, "DROP TABLE dr.t").await;
    assert_eq!(
        msg,
        format!("Table 'dr.t' dropped (2 file(s) deleted, {bytes} bytes freed)")
    );
    assert!(e.exec.core.cold.list().await.unwrap().is_empty());
    e.execute("CREATE USER TABLE dr.t (id INT)", &Session::root())
        .await
        .unwrap();
    assert!(
        rows(&e, "SELECT * FROM dr.t").await.is_empty(),
        "a new table of the same name starts empty"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn location_templates_place_files_inside_the_storage_base() {
    let (dir, e) = open_with(
        "CREATE NAMESPACE lo; CREATE USER 'ann' WITH PASSWORD 'p'; \
         CREATE TABLE lo.u (id INT) LOCATION '/tenants/${user_id}/u'; \
         CREATE SHARED TABLE lo.s (id INT) LOCATION 'shared/s'; \
         EXECUTE AS USER 'ann' (INSERT INTO lo.u VALUES (1)); INSERT INTO lo.s VALUES (1); \
         FLUSH ALL TABLES IN lo",
    )
    .await;
    e.wait_for_jobs(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let mut paths = cold_files(&e).await;
    paths.sort();
    assert_eq!(paths.len(), 2);
    assert!(
        paths[0].starts_with("shared/s/") && paths[0].ends_with(".parquet"),
        "{paths:?}"
    );
    assert!(paths[1].starts_with("tenants/ann/u/"), "{paths:?}");
    assert!(dir.path().join("storage").join(&paths[1]).is_file());
    let r = e
        .execute(
            "EXECUTE AS USER 'ann' (SELECT id FROM lo.u)",
            &Session::root(),
        )
        .await
        .unwrap();
    assert_eq!(r[0].json_rows(), vec![vec![serde_json::json!(1)]]);
}

#[tokio::test(flavor = "multi_thread")]
async fn flushes_cut_partitions_into_files_of_bounded_rows() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        flush_file_rows: 1000,
        ..Config::with_data_dir(dir.path())
    };
    let e = Engine::open(config).unwrap();
    let values: Vec<String> = (1..=2500).map(|i| format!("({i}, 'v{i}')")).collect();
    let setup = format!(
        "CREATE USER 'u1' WITH PASSWORD 'x'; CREATE USER 'u2' WITH PASSWORD 'x'; \
         CREATE NAMESPACE f; CREATE USER TABLE f.t (id BIGINT PRIMARY KEY, v TEXT); \
         EXECUTE AS USER 'u1' (INSERT INTO f.t VALUES {}); \
         EXECUTE AS USER 'u1' (DELETE FROM f.t WHERE id = 7); \
         EXECUTE AS USER 'u2' (INSERT INTO f.t VALUES (1, 'other'), (2, 'other'))",
        values.join(", ")
    );
    e.execute(&setup, &Session::root()).await.unwrap();
    e.execute("FLUSH TABLE f.t", &Session::root())
        .await
        .unwrap();
    e.wait_for_jobs(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let def = e.exec.core.catalog.table("f", "t").unwrap();
    let view = e.exec.core.store.view();
    let mut files: Vec<(String, u64, u64)> = cold::manifest(&view, def.id, None)
        .unwrap()
        .into_iter()
        .map(|f| (f.partition, f.rows, f.tombstones))
        .collect();
    files.sort();
    // 2,500 keys of u1 (one a tombstone) in files of at most 1,000 rows; u2 in a file of its own.
    let tombstones: u64 = files.iter().map(|f| f.2).sum();
    assert_eq!(tombstones, 1);
    let sizes: Vec<(&str, u64)> = files.iter().map(|f| (f.0.as_str(), f.1)).collect();
    assert_eq!(
        sizes,
        vec![("u1", 500), ("u1", 1000), ("u1", 1000), ("u2", 2)]
    );
    let parquet: Vec<String> = cold_files(&e).await;
    assert_eq!(
        parquet.len(),
        4,
        "only the committed files remain: {parquet:?}"
    );
    assert!(parquet.iter().all(|p| !p.contains(cold::TEMP_PREFIX)));
    assert_eq!(stat(&e, "f.t", "hot_rows").await, "0");
    assert_eq!(stat(&e, "f.t", "cold_rows").await, "2501");
    let as_u1 = |sql: &str| format!("EXECUTE AS USER 'u1' ({sql})");
    let expected_sum: i64 = (1..=2500).sum::<i64>() - 7;
    assert_eq!(
        rows(&e, &as_u1("SELECT COUNT(*), SUM(id) FROM f.t")).await,
        vec![vec![
            serde_json::json!(2499),
            serde_json::json!(expected_sum)
        ]]
    );
    // Key reads find rows in every file; the deleted key stays deleted.
    for id in [1, 999, 1000, 1001, 1999, 2001, 2500] {
        let got = rows(&e, &as_u1(&format!("SELECT v FROM f.t WHERE id = {id}"))).await;
        assert_eq!(
            got,
            vec![vec![serde_json::json!(format!("v{id}"))]],
            "id {id}"
        );
    }
    assert!(
        rows(&e, &as_u1("SELECT v FROM f.t WHERE id = 7"))
            .await
            .is_empty()
    );
    e.execute(
        &as_u1("UPDATE f.t SET v = 'x' WHERE id = 2222"),
        &Session::root(),
    )
    .await
    .unwrap();
    assert_eq!(
        rows(&e, &as_u1("SELECT v FROM f.t WHERE id = 2222")).await,
        vec![vec![serde_json::json!("x")]]
    );
    assert_eq!(
        rows(&e, "EXECUTE AS USER 'u2' (SELECT COUNT(*) FROM f.t)").await,
        vec![vec![serde_json::json!(2)]]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_rewritten_during_a_flush_stay_hot_and_win() {
    use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray};
    let (_d, e) = open_with(
        "CREATE NAMESPACE w; CREATE SHARED TABLE w.t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO w.t VALUES (1, 'old'), (2, 'two')",
    )
    .await;
    let def = e.exec.core.catalog.table("w", "t").unwrap();
    let guard = e.exec.core.locks.table(def.id).await;
    e.execute("FLUSH TABLE w.t", &Session::root())
        .await
        .unwrap();
    // The job snapshots and writes its file without the lock, then waits for it to commit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while cold_files(&e)
        .await
        .iter()
        .all(|p| !p.ends_with(".parquet"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "flush did not write its file"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // A writer (holding the table lock, as writers do) replaces row 1 meanwhile.
    let mut key = keys::partition_prefix(def.id, "");
    keys::push_i64(&mut key, 1);
    let mut value = Vec::new();
    let header = codec::RowHeader {
        seq: crate::ids::next_seq(),
        deleted: false,
        schema_version: 1,
    };
    codec::encode_header(&mut value, header);
    let id: ArrayRef = std::sync::Arc::new(Int32Array::from(vec![1]));
    let v: ArrayRef = std::sync::Arc::new(StringArray::from(vec!["new"]));
    codec::push_cell(&mut value, def.columns[0].id, id.as_ref(), 0).unwrap();
    codec::push_cell(&mut value, def.columns[1].id, v.as_ref(), 0).unwrap();
    let mut b = Batch::default();
    b.put(&e.exec.core.store, CF_ROWS, &key, &value);
    e.exec.core.store.write(b).unwrap();
    drop(guard);
    e.wait_for_jobs(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let all = "SELECT id, v FROM w.t ORDER BY id";
    let want = vec![
        vec![serde_json::json!(1), serde_json::json!("new")],
        vec![serde_json::json!(2), serde_json::json!("two")],
    ];
    assert_eq!(rows(&e, all).await, want);
    assert_eq!(stat(&e, "w.t", "hot_rows").await, "1");
    assert_eq!(stat(&e, "w.t", "cold_rows").await, "1");
    e.execute("FLUSH TABLE w.t", &Session::root())
        .await
        .unwrap();
    e.wait_for_jobs(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(rows(&e, all).await, want);
    assert_eq!(stat(&e, "w.t", "cold_rows").await, "2");
}

/// The plan text of an `EXPLAIN [ANALYZE] …` statement (its plan rows joined).
async fn plan_text(e: &Engine, explain: &str) -> String {
    rows(e, explain)
        .await
        .iter()
        .map(|r| r[1].as_str().unwrap().to_string())
        .collect()
}

/// The `output_rows` of the table scan in `EXPLAIN ANALYZE sql`'s plan.
async fn scanned_rows(e: &Engine, sql: &str) -> u64 {
    let text = plan_text(e, &format!("EXPLAIN ANALYZE {sql}")).await;
    let line = text
        .lines()
        .find(|l| l.contains("KalamScanExec"))
        .unwrap_or_else(|| panic!("no scan in {text}"));
    // DataFusion prints counts from 1,000 up as e.g. `40.00 K`.
    let rest = line.split("output_rows=").nth(1).unwrap();
    let shown: String = rest
        .chars()
        .take_while(|c| !matches!(c, ',' | ']'))
        .collect();
    let (number, scale) = match shown.split_once(' ') {
        Some((n, "K")) => (n, 1e3),
        Some((n, "M")) => (n, 1e6),
        _ => (shown.as_str(), 1.0),
    };
    (number.parse::<f64>().unwrap() * scale).round() as u64
}

/// Scans stream: a LIMIT without WHERE stops reading hot rows and cold files once it has its
/// rows, over a table of three cold files and a hot tier; without LIMIT every row is read
/// exactly once, and a filtered LIMIT still finds its rows in the last file.
#[tokio::test(flavor = "multi_thread")]
async fn scans_stream_and_a_limit_stops_them() {
    let (_d, e) = open_with(
        "CREATE NAMESPACE s; CREATE SHARED TABLE s.t (id BIGINT PRIMARY KEY, v TEXT) \
         FLUSH POLICY ROWS 1000000",
    )
    .await;
    for part in 0..4 {
        let (lo, hi) = (part * 10_000 + 1, part * 10_000 + 10_000);
        message(
            &e,
            &format!(
                "INSERT INTO s.t SELECT value, 'r' || value FROM generate_series({lo}, {hi}) AS g(value)"
            ),
        )
        .await;
        if part < 3 {
            message(&e, "FLUSH TABLE s.t").await;
            e.wait_for_jobs(std::time::Duration::from_secs(60))
                .await
                .unwrap();
        }
    }
    assert_eq!(stat(&e, "s.t", "parquet_files").await, "3");
    assert_eq!(stat(&e, "s.t", "hot_rows").await, "10000");
    assert_eq!(scanned_rows(&e, "SELECT * FROM s.t LIMIT 10").await, 10);
    assert_eq!(rows(&e, "SELECT * FROM s.t LIMIT 10").await.len(), 10);
    assert_eq!(scanned_rows(&e, "SELECT * FROM s.t").await, 40_000);
    assert_eq!(
        rows(&e, "SELECT COUNT(*), COUNT(DISTINCT id), SUM(id) FROM s.t").await,
        vec![vec![
            serde_json::json!(40_000),
            serde_json::json!(40_000),
            serde_json::json!(800_020_000)
        ]]
    );
    assert_eq!(
        rows(&e, "SELECT v FROM s.t WHERE v = 'r29999' LIMIT 1").await,
        vec![vec![serde_json::json!("r29999")]]
    );
}

/// A primary-key point filter is `Exact`: the plan has no filter above the scan for it (the
/// scan reads just that key); the same predicate in another form keeps its filter.
#[tokio::test(flavor = "multi_thread")]
async fn key_filters_are_not_checked_twice() {
    let (_d, e) = open_with(
        "CREATE NAMESPACE x; CREATE SHARED TABLE x.t (id BIGINT PRIMARY KEY, v TEXT); \
         INSERT INTO x.t VALUES (1, 'a'), (2, 'b')",
    )
    .await;
    let plan = |sql: &'static str| {
        let e = &e;
        async move { plan_text(e, &format!("EXPLAIN {sql}")).await }
    };
    assert!(
        !plan("SELECT v FROM x.t WHERE id = 2")
            .await
            .contains("FilterExec")
    );
    assert!(
        !plan("SELECT v FROM x.t WHERE id IN (1, 2)")
            .await
            .contains("FilterExec")
    );
    assert!(
        plan("SELECT v FROM x.t WHERE id + 0 = 2")
            .await
            .contains("FilterExec")
    );
    assert!(
        plan("SELECT v FROM x.t WHERE id = 2 AND v = 'b'")
            .await
            .contains("FilterExec")
    );
    assert_eq!(
        rows(&e, "SELECT v FROM x.t WHERE id = 2 AND v = 'b'").await,
        vec![vec![serde_json::json!("b")]]
    );
}

/// A filter naming only the key that the scan cannot read as keys (as when the optimizer
/// rewrites a filter after it was reported `Exact`) is applied by the scan itself, also when
/// the key column is not projected, and a limit is applied after it.
#[tokio::test(flavor = "multi_thread")]
async fn key_only_filters_the_scan_cannot_read_are_applied_by_it() {
    use datafusion::arrow::array::AsArray;
    use datafusion::datasource::TableProvider;
    use datafusion::prelude::{SessionContext, col, lit};
    let (_d, e) = open_with(
        "CREATE NAMESPACE k; CREATE SHARED TABLE k.t (id BIGINT PRIMARY KEY, v TEXT); \
         INSERT INTO k.t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')",
    )
    .await;
    let core = e.exec.core.clone();
    let def = core.catalog.table("k", "t").unwrap();
    let table = crate::tables::KalamTable::new(core, def, Session::root(), false).unwrap();
    let ctx = SessionContext::new();
    let values = |limit: Option<usize>| {
        let (table, ctx) = (&table, &ctx);
        async move {
            let filter = (col("id") + lit(0i64)).gt(lit(1i64));
            let plan = table
                .scan(&ctx.state(), Some(&vec![1]), &[filter], limit)
                .await
                .unwrap();
            let batches = datafusion::physical_plan::collect(plan, ctx.task_ctx())
                .await
                .unwrap();
            let mut out: Vec<String> = batches
                .iter()
                .flat_map(|b| {
                    assert_eq!(b.num_columns(), 1);
                    b.column(0)
                        .as_string::<i32>()
                        .iter()
                        .map(|v| v.unwrap().to_string())
                        .collect::<Vec<_>>()
                })
                .collect();
            out.sort();
            out
        }
    };
    assert_eq!(values(None).await, vec!["b", "c", "d"]);
    assert_eq!(values(Some(2)).await.len(), 2);
}

/// Hostile input around key reads and streaming scans: NULL and wrong-typed parameters for a
/// key (no row, or a clear error that changes nothing), a chain of key ORs at and past the
/// nesting limit, and a statement timeout in the middle of a streaming scan (a clear error,
/// nothing changed, the next statement fine).
#[tokio::test(flavor = "multi_thread")]
async fn key_reads_and_streaming_scans_under_hostile_input() {
    use serde_json::json;
    let (_d, e) = open_with(
        "CREATE NAMESPACE h; CREATE SHARED TABLE h.t (id BIGINT PRIMARY KEY, v TEXT); \
         INSERT INTO h.t SELECT value, 'v' || value FROM generate_series(1, 20000) AS g(value)",
    )
    .await;
    let root = Session::root();
    let with = |sql: &'static str, p: serde_json::Value| {
        let (e, root) = (&e, &root);
        async move { e.execute_with_params(sql, root, &[p]).await }
    };
    let select = "SELECT v FROM h.t WHERE id = $1";
    assert_eq!(
        with(select, json!(7)).await.unwrap()[0].json_rows(),
        vec![vec![json!("v7")]]
    );
    assert!(
        with(select, json!(null)).await.unwrap()[0]
            .json_rows()
            .is_empty()
    );
    let bad = with(select, json!("seven")).await.unwrap_err();
    assert!((400..500).contains(&bad.http_status()), "{bad}");
    let update = "UPDATE h.t SET v = 'x' WHERE id = $1";
    assert_eq!(with(update, json!(null)).await.unwrap()[0].row_count, 0);
    let bad = with(update, json!({"id": 7})).await.unwrap_err();
    assert!((400..500).contains(&bad.http_status()), "{bad}");
    assert_eq!(
        rows(&e, "SELECT COUNT(*) FROM h.t WHERE v = 'x'").await,
        vec![vec![json!(0)]]
    );

    // `id = 1 OR id = 2 OR …`: a key read while within max_expression_depth, refused past it.
    let ors = |n: usize| {
        let terms: Vec<String> = (1..=n).map(|i| format!("id = {i}")).collect();
        format!("SELECT COUNT(*) FROM h.t WHERE {}", terms.join(" OR "))
    };
    assert_eq!(rows(&e, &ors(100)).await, vec![vec![json!(100)]]);
    let deep = e.execute(&ors(5000), &root).await.unwrap_err();
    assert_eq!(deep.code(), "LIMIT_EXCEEDED", "{deep}");

    // A timeout while the scan streams: the producers stop with the statement.
    let slow = "SET statement_timeout = 200; \
                SELECT COUNT(*) FROM h.t a CROSS JOIN h.t b WHERE a.v < b.v";
    let timed_out = e.execute(slow, &root).await.unwrap_err();
    assert!(
        timed_out.to_string().contains("statement_timeout_ms"),
        "{timed_out}"
    );
    assert_eq!(
        rows(&e, "SELECT COUNT(*), MIN(id), MAX(id) FROM h.t").await,
        vec![vec![json!(20000), json!(1), json!(20000)]]
    );
}
