//! Cold reads skip what cannot hold a live matching row — superseded rows (the deletion
//! vector as the decoder's row selection) and pages a filter's page statistics rule out —
//! and still return exactly the live matching rows.

use serde_json::json;

use super::Engine;
use super::tests::{open_with, rows};
use crate::error::Result;
use crate::session::Session;

/// `FLUSH TABLE table` as root, then waits for the job.
async fn flush(e: &Engine, table: &str) {
    e.execute(&format!("FLUSH TABLE {table}"), &Session::root())
        .await
        .unwrap();
    e.wait_for_jobs(std::time::Duration::from_secs(60))
        .await
        .unwrap();
}

/// Inserts the rows `(i, i)` for `i` in `from..=to` into `table` (id, v).
async fn fill(e: &Engine, table: &str, from: i64, to: i64) {
    let sql = format!(
        "INSERT INTO {table} SELECT value, value * 1 FROM generate_series({from}, {to}) AS g(value)"
    );
    e.execute(&sql, &Session::root()).await.unwrap();
}

/// The rows a write statement reports it changed.
async fn changed(e: &Engine, sql: &str) -> Result<usize> {
    Ok(e.execute(sql, &Session::root()).await?[0].row_count)
}

#[tokio::test(flavor = "multi_thread")]
async fn range_filters_over_a_cold_file_with_a_deletion_vector_are_exact() {
    let (_d, e) = open_with(
        "CREATE NAMESPACE c; CREATE SHARED TABLE c.t (id BIGINT PRIMARY KEY, v BIGINT); \
         INSERT INTO c.t SELECT value, value * 2 FROM generate_series(0, 99999) AS g(value)",
    )
    .await;
    let root = Session::root();
    flush(&e, "c.t").await;
    assert_eq!(
        rows(&e, "SELECT COUNT(*) FROM c.t").await,
        [[json!(100_000)]]
    );
    // Rewritten and deleted cold rows enter the file's deletion vector; one inside the range
    // filtered below, one outside it.
    e.execute(
        "UPDATE c.t SET v = -1 WHERE id = 50005; DELETE FROM c.t WHERE id IN (50007, 70000); \
         INSERT INTO c.t VALUES (100000, 7)",
        &root,
    )
    .await
    .unwrap();
    let range = "WHERE id >= 50000 AND id < 50010";
    assert_eq!(
        rows(&e, &format!("SELECT COUNT(*), SUM(v) FROM c.t {range}")).await,
        [[
            json!(9),
            json!(
                (50_000..50_010)
                    .filter(|i| *i != 50_005 && *i != 50_007)
                    .map(|i| i * 2)
                    .sum::<i64>()
                    - 1
            )
        ]]
    );
    assert_eq!(
        rows(
            &e,
            "SELECT id, v FROM c.t WHERE v < 0 OR id >= 99999 ORDER BY id"
        )
        .await,
        [
            [json!(50_005), json!(-1)],
            [json!(99_999), json!(199_998)],
            [json!(100_000), json!(7)]
        ]
    );
    assert_eq!(
        rows(&e, "SELECT COUNT(*) FROM c.t WHERE id > 99999 OR id < 0").await,
        [[json!(1)]]
    );
    assert_eq!(
        rows(&e, "SELECT COUNT(*), SUM(v) FROM c.t").await,
        [[
            json!(99_999),
            json!(
                (0..100_000i64).map(|i| i * 2).sum::<i64>()
                    - 50_005 * 2
                    - 1
                    - 50_007 * 2
                    - 70_000 * 2
                    + 7
            )
        ]]
    );
    // NULL and wrong-typed bounds over the cold file: no rows, or a clear refusal.
    let count = "SELECT COUNT(*) FROM c.t WHERE id > $1";
    let r = e
        .execute_with_params(count, &root, &[json!(null)])
        .await
        .unwrap();
    assert_eq!(r[0].json_rows(), [[json!(0)]]);
    let r = e.execute_with_params(count, &root, &[json!("x")]).await;
    assert_eq!(r.unwrap_err().http_status(), 400);
    // EXPLAIN ANALYZE runs the pruned cold scan: 9 rows match, and the scan produced far
    // fewer than the file's 100K rows (pages outside the range were never read).
    let r = rows(&e, &format!("EXPLAIN ANALYZE SELECT id FROM c.t {range}")).await;
    let text = r[0][1].as_str().unwrap().to_string();
    assert!(text.contains("output_rows=9,"), "{text}");
    let scanned = text
        .split("KalamScanExec: c.t, metrics=[output_rows=")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("{text}"));
    let scanned: f64 = match scanned.strip_suffix(" K") {
        Some(k) => k.parse::<f64>().unwrap() * 1000.0,
        None => scanned.parse().unwrap(),
    };
    assert!(scanned < 50_000.0, "{scanned} rows scanned: {text}");
}

/// UPDATE and DELETE without a key filter read the partition as a stream of batches (hot rows
/// and each cold file, a few batches at a time) and still touch exactly the matching rows.
#[tokio::test(flavor = "multi_thread")]
async fn writes_without_a_key_filter_stream_hot_and_cold_rows_exactly() {
    let (_d, e) =
        open_with("CREATE NAMESPACE w; CREATE SHARED TABLE w.t (id BIGINT PRIMARY KEY, v BIGINT)")
            .await;
    fill(&e, "w.t", 0, 19_999).await;
    flush(&e, "w.t").await;
    fill(&e, "w.t", 20_000, 29_999).await;
    flush(&e, "w.t").await;
    fill(&e, "w.t", 30_000, 39_999).await;
    let count = |sql: &'static str| {
        let e = &e;
        async move { changed(e, sql).await.unwrap() }
    };
    // Two cold files and 10,000 hot rows: every third row changes, in every tier.
    let third = (0..40_000i64).filter(|v| v % 3 == 0).count();
    assert_eq!(
        count("UPDATE w.t SET v = v + 1 WHERE v % 3 = 0").await,
        third
    );
    let odd = (0..40_000i64)
        .filter(|i| (if i % 3 == 0 { i + 1 } else { *i }) % 2 == 1)
        .count();
    assert_eq!(count("DELETE FROM w.t WHERE v % 2 = 1").await, odd);
    let survivors: Vec<(i64, i64)> = (0..40_000i64)
        .map(|i| (i, if i % 3 == 0 { i + 1 } else { i }))
        .filter(|(_, v)| v % 2 == 0)
        .collect();
    let moving = survivors.iter().filter(|(i, _)| i % 10_000 == 0).count();
    assert!(moving >= 2, "keys move out of both cold files");
    assert_eq!(
        count("UPDATE w.t SET id = id + 1000000 WHERE id % 10000 = 0").await,
        moving
    );
    let kept: Vec<(i64, i64)> = survivors
        .into_iter()
        .map(|(i, v)| (if i % 10_000 == 0 { i + 1_000_000 } else { i }, v))
        .collect();
    assert_eq!(
        rows(&e, "SELECT COUNT(*), SUM(id), SUM(v) FROM w.t").await,
        [[
            json!(kept.len()),
            json!(kept.iter().map(|(i, _)| i).sum::<i64>()),
            json!(kept.iter().map(|(_, v)| v).sum::<i64>())
        ]]
    );
}

/// An UPDATE or DELETE never opens a cold file its WHERE rules out by the file's statistics:
/// with the older file gone from disk, writes confined to the newer file's keys still work,
/// while one that could match in the missing file fails (so the check bites).
#[tokio::test(flavor = "multi_thread")]
async fn writes_skip_the_cold_files_their_where_rules_out() {
    let (d, e) =
        open_with("CREATE NAMESPACE p; CREATE SHARED TABLE p.t (id BIGINT PRIMARY KEY, v BIGINT)")
            .await;
    fill(&e, "p.t", 0, 9_999).await;
    flush(&e, "p.t").await;
    let older = crate::process::files_under(d.path(), "parquet", None);
    assert_eq!(older.len(), 1);
    fill(&e, "p.t", 10_000, 19_999).await;
    flush(&e, "p.t").await;
    for f in &older {
        std::fs::remove_file(f).unwrap();
    }
    let count = |sql: &'static str| changed(&e, sql);
    assert_eq!(
        count("DELETE FROM p.t WHERE id >= 15000").await.unwrap(),
        5000
    );
    assert_eq!(
        count("UPDATE p.t SET v = -v WHERE id BETWEEN 10000 AND 10009")
            .await
            .unwrap(),
        10
    );
    assert!(
        count("DELETE FROM p.t WHERE v = 3").await.is_err(),
        "a WHERE that may match the missing file has to read it"
    );
}
