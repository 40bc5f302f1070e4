//! Cold reads skip what cannot hold a live matching row — superseded rows (the deletion
//! vector as the decoder's row selection) and pages a filter's page statistics rule out —
//! and still return exactly the live matching rows.

use serde_json::json;

use super::tests::{open_with, rows};
use crate::session::Session;

#[tokio::test(flavor = "multi_thread")]
async fn range_filters_over_a_cold_file_with_a_deletion_vector_are_exact() {
    let (_d, e) = open_with(
        "CREATE NAMESPACE c; CREATE SHARED TABLE c.t (id BIGINT PRIMARY KEY, v BIGINT); \
         INSERT INTO c.t SELECT value, value * 2 FROM generate_series(0, 99999) AS g(value)",
    )
    .await;
    let root = Session::root();
    e.execute("FLUSH TABLE c.t", &root).await.unwrap();
    e.wait_for_jobs(std::time::Duration::from_secs(60))
        .await
        .unwrap();
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
