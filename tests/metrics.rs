//! `GET /metrics` of the real `kalamdb` binary: the Prometheus text reflects exactly what this
//! test did to a fresh server (requests, statements, rows, a flush, storage per table, live
//! connections, subscriptions and delivered changes), and only dba/system may read it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::live::{Live, start_server};
use serde_json::json;

/// Every sample of a scrape: `name{labels sorted}` → value.
async fn scrape(live: &Live, authorization: Option<&str>) -> (u16, BTreeMap<String, f64>) {
    let mut req = live.http.get(format!("{}/metrics", live.server.url));
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default();
    let text = resp.text().await.expect("body");
    let mut samples = BTreeMap::new();
    if status != 200 {
        return (status, samples);
    }
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                labels.sort_unstable();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_string(),
        };
        samples.insert(key, value.parse().expect("numeric value"));
    }
    (status, samples)
}

fn get(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples.get(key).unwrap_or_else(|| {
        panic!(
            "{key} missing from {:#?}",
            samples.keys().collect::<Vec<_>>()
        )
    })
}

#[tokio::test]
async fn metrics_count_what_the_server_did() {
    let live = start_server(&[]).await;
    live.root("CREATE NAMESPACE m; CREATE SHARED TABLE m.t (id INT PRIMARY KEY, v TEXT)")
        .await;
    live.root("INSERT INTO m.t VALUES (1, 'a'), (2, 'b')").await;
    live.root("INSERT INTO m.t VALUES (3, 'c')").await;
    live.root("SELECT * FROM m.t WHERE id > 1").await;
    let (status, _) = live.sql("SELECT * FROM m.missing", None).await;
    assert_eq!(status, 400);
    live.root("FLUSH TABLE m.t").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let body = live
            .root("SELECT status FROM system.jobs WHERE job_type = 'flush'")
            .await;
        if body["results"][0]["rows"] == json!([["completed"]]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "flush did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    live.root("UPDATE m.t SET v = 'z' WHERE id = 3").await;

    // A live subscription, then one change delivered to it.
    let token = live.user("watcher", "watcher-password", "dba").await;
    let mut ws = live.ws(&token).await;
    ws.subscribe("s", "SELECT * FROM m.t", json!({})).await;
    live.root("INSERT INTO m.t VALUES (4, 'd')").await;
    let change = ws.recv().await;
    assert_eq!(change["type"], "change", "{change}");

    let (status, m) = scrape(&live, None).await;
    assert_eq!(status, 200);
    // Statements by kind (the polling SELECTs on system.jobs count too: read them back).
    let inserts = r#"kalamdb_statements_total{kind="insert",outcome="ok"}"#;
    assert_eq!(get(&m, inserts), 3.0);
    assert_eq!(get(&m, r#"kalamdb_rows_written_total{kind="insert"}"#), 4.0);
    assert_eq!(get(&m, r#"kalamdb_rows_written_total{kind="update"}"#), 1.0);
    assert_eq!(
        get(
            &m,
            r#"kalamdb_statements_total{kind="select",outcome="error"}"#
        ),
        1.0
    );
    let selects = get(
        &m,
        r#"kalamdb_statements_total{kind="select",outcome="ok"}"#,
    );
    assert!(selects >= 2.0, "{selects}");
    assert_eq!(
        get(
            &m,
            r#"kalamdb_statement_duration_seconds_count{kind="select"}"#
        ),
        selects + 1.0
    );
    // Requests by route and status: the 400 above, and every 200 before the scrape.
    assert_eq!(
        get(
            &m,
            r#"kalamdb_http_requests_total{route="/v1/api/sql",status="400"}"#
        ),
        1.0
    );
    let sql_ok = get(
        &m,
        r#"kalamdb_http_requests_total{route="/v1/api/sql",status="200"}"#,
    );
    // 3 DDL/INSERT requests, the SELECT, FLUSH, the polls, UPDATE, CREATE USER, the INSERT.
    assert_eq!(sql_ok, 8.0 + (selects - 1.0));
    assert_eq!(
        get(
            &m,
            r#"kalamdb_http_requests_total{route="/v1/api/auth/login",status="200"}"#
        ),
        1.0
    );
    // The flush, and storage per table: 3 rows went cold, two rows are hot now (3 rewritten,
    // 4 new).
    assert_eq!(
        get(&m, r#"kalamdb_flush_jobs_total{status="completed"}"#),
        1.0
    );
    assert_eq!(get(&m, "kalamdb_flushed_rows_total"), 3.0);
    let table = r#"{namespace="m",table="t"}"#;
    assert_eq!(get(&m, &format!("kalamdb_table_cold_files{table}")), 1.0);
    assert_eq!(get(&m, &format!("kalamdb_table_cold_rows{table}")), 2.0);
    assert_eq!(get(&m, &format!("kalamdb_table_hot_rows{table}")), 2.0);
    assert!(get(&m, &format!("kalamdb_table_cold_bytes{table}")) > 0.0);
    // Live queries.
    assert_eq!(get(&m, "kalamdb_live_connections"), 1.0);
    assert_eq!(get(&m, "kalamdb_live_subscriptions"), 1.0);
    assert_eq!(get(&m, "kalamdb_live_changes_delivered_total"), 1.0);
    assert_eq!(get(&m, "kalamdb_running_statements"), 0.0);

    // Closed connections leave the gauges.
    drop(ws);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while get(&scrape(&live, None).await.1, "kalamdb_live_connections") != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "connection never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Only dba and system read metrics.
    live.root("CREATE USER 'plain' WITH PASSWORD 'plain-password' ROLE user")
        .await;
    use base64::Engine as _;
    let basic = |user: &str, pw: &str| {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        format!("Basic {b}")
    };
    assert_eq!(
        scrape(&live, Some(&basic("plain", "plain-password")))
            .await
            .0,
        403
    );
    assert_eq!(scrape(&live, Some(&basic("plain", "wrong"))).await.0, 401);
    assert_eq!(
        scrape(&live, Some(&basic("watcher", "watcher-password")))
            .await
            .0,
        200
    );
}
