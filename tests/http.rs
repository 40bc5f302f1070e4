//! HTTP API tests: exact JSON shapes and statuses (SPEC section 7) pinned as insta snapshots,
//! auth rules, and "bad input changes nothing" (SPEC section 9).

mod common;

use common::start;
use serde_json::{Value, json};

/// Replaces volatile values: `took`, and ISO-8601 timestamps inside result rows.
fn redact(mut body: Value) -> Value {
    if body.get("took").is_some() {
        body["took"] = json!("[took]");
    }
    if let Some(results) = body.get_mut("results").and_then(Value::as_array_mut) {
        for rows in results
            .iter_mut()
            .filter_map(|r| r.get_mut("rows"))
            .filter_map(Value::as_array_mut)
        {
            for cell in rows.iter_mut().filter_map(Value::as_array_mut).flatten() {
                if cell.as_str().is_some_and(chrono_like) {
                    *cell = json!("[timestamp]");
                }
            }
        }
    }
    body
}

/// True for `YYYY-MM-DDTHH:MM:SS...Z`.
fn chrono_like(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() >= 20 && s.ends_with('Z') && b[4] == b'-' && b[10] == b'T'
}

/// Snapshot of status + redacted body, stored in `snapshots/`.
macro_rules! snap {
    ($name:expr, $resp:expr) => {{
        let (status, body) = $resp;
        // Absolute and resolved at run time: checkouts sharing a target dir share test binaries.
        let dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
        insta::with_settings!({snapshot_path => dir.join("snapshots"), prepend_module_to_snapshot => false}, {
            insta::assert_json_snapshot!($name, json!({"http_status": status, "body": redact(body)}));
        });
    }};
}

#[tokio::test]
async fn healthcheck_shape() {
    let s = start(|_| {}).await;
    let body: Value = s
        .http
        .get(format!("{}/v1/api/healthcheck", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["api_version"], "v1");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn one_success_of_each_statement_kind() {
    let s = start(|_| {}).await;
    snap!("create_namespace", s.sql("CREATE NAMESPACE app").await);
    snap!(
        "create_table",
        s.sql(
            "CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, name TEXT, big BIGINT, at TIMESTAMP)"
        )
        .await
    );
    snap!(
        "insert_two_statements",
        s.sql("INSERT INTO app.t (id, name, big, at) VALUES (1, 'a', 9007199254740993, '2024-05-06 07:08:09'); INSERT INTO app.t (id, name) VALUES (2, 'b')").await
    );
    snap!(
        "select",
        s.sql("SELECT id, name, big, at FROM app.t ORDER BY id")
            .await
    );
    snap!(
        "update",
        s.sql("UPDATE app.t SET name = 'z' WHERE id = 2").await
    );
    snap!("delete", s.sql("DELETE FROM app.t WHERE id = 2").await);
    snap!("show_namespaces", s.sql("SHOW NAMESPACES").await);
    snap!("show_tables", s.sql("SHOW TABLES IN app").await);
    snap!("describe", s.sql("DESCRIBE TABLE app.t").await);
    snap!("show_stats", s.sql("SHOW STATS FOR TABLE app.t").await);
    snap!(
        "create_user",
        s.sql("CREATE USER 'alice' WITH PASSWORD 'pw'").await
    );
    snap!("drop_table", s.sql("DROP TABLE app.t").await);
    let (status, body) = s
        .post_raw(
            &json!({"sql": "SELECT $1 + 1 AS x, $2 AS y", "params": [41, "p"]}).to_string(),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["rows"], json!([[42, "p"]]));
}

#[tokio::test]
async fn one_of_each_error_code() {
    let s = start(|c| c.max_sql_bytes = 1024).await;
    s.sql("CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id INT PRIMARY KEY)")
        .await;
    s.sql("CREATE USER 'alice' WITH PASSWORD 'pw'").await;
    snap!("err_invalid_sql", s.sql("SELEC 1").await);
    snap!("err_table_not_found", s.sql("SELECT * FROM app.nope").await);
    snap!(
        "err_namespace_not_found",
        s.sql("CREATE TABLE nope.t (id INT)").await
    );
    snap!("err_already_exists", s.sql("CREATE NAMESPACE app").await);
    snap!(
        "err_invalid_parameter_json",
        s.post_raw("{not json", None).await
    );
    snap!(
        "err_invalid_parameter_missing_sql",
        s.post_raw("{\"params\": []}", None).await
    );
    snap!("err_empty_sql", s.sql("  ;  ").await);
    snap!(
        "err_sql_execution",
        s.sql("INSERT INTO app.t (id) VALUES (1), (1)").await
    );
    snap!(
        "err_unauthorized",
        s.sql_as("SELECT 1", "alice", "wrong").await
    );
    snap!(
        "err_permission_denied",
        s.sql_as("CREATE NAMESPACE x", "alice", "pw").await
    );
    snap!(
        "err_payload_too_large",
        s.sql(&format!("SELECT '{}'", "x".repeat(2048))).await
    );
    // None of the failures changed anything.
    let (_, body) = s
        .sql("SELECT COUNT(*) AS n FROM app.t; SELECT COUNT(*) AS n FROM system.namespaces")
        .await;
    assert_eq!(body["results"][0]["rows"], json!([[0]]));
    assert_eq!(body["results"][1]["rows"], json!([[1]]));
}

#[tokio::test]
async fn rate_limit_answers_429_per_user() {
    // Two requests of burst, refilled one per ~11.5 days: the third is always over the limit.
    let s = start(|c| {
        c.rate_limit_per_sec = Some(0.000001);
        c.rate_limit_burst = 2;
    })
    .await;
    s.sql("CREATE USER 'alice' WITH PASSWORD 'pw'").await;
    assert_eq!(s.sql("SELECT 1").await.0, 200);
    snap!("err_rate_limit_exceeded", s.sql("SELECT 1").await);
    // Buckets are per user: alice still has her own burst.
    assert_eq!(s.sql_as("SELECT 1", "alice", "pw").await.0, 200);
}

#[tokio::test]
async fn statements_stop_at_the_first_error_and_keep_earlier_ones() {
    let s = start(|_| {}).await;
    let (status, body) = s
        .sql("CREATE NAMESPACE a; CREATE SHARED TABLE a.t (id INT); INSERT INTO a.t VALUES (1); SELECT * FROM a.missing; INSERT INTO a.t VALUES (2)")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "TABLE_NOT_FOUND");
    let (_, body) = s.sql("SELECT id FROM a.t").await;
    assert_eq!(body["results"][0]["rows"], json!([[1]]));
}

#[tokio::test]
async fn basic_auth_users_see_only_their_rows() {
    let s = start(|_| {}).await;
    s.sql("CREATE NAMESPACE n; CREATE USER TABLE n.t (id INT PRIMARY KEY, v TEXT)")
        .await;
    s.sql("CREATE USER 'u1' WITH PASSWORD 'p1'; CREATE USER 'u2' WITH PASSWORD 'p2'")
        .await;
    let (st, _) = s
        .sql_as("INSERT INTO n.t VALUES (1, 'mine')", "u1", "p1")
        .await;
    assert_eq!(st, 200);
    let (_, body) = s.sql_as("SELECT id, v FROM n.t", "u1", "p1").await;
    assert_eq!(body["results"][0]["rows"], json!([[1, "mine"]]));
    let (_, body) = s.sql_as("SELECT COUNT(*) FROM n.t", "u2", "p2").await;
    assert_eq!(body["results"][0]["rows"], json!([[0]]));
    let (st, body) = s.sql_as("SELECT * FROM system.users", "u2", "p2").await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    // A dropped user can no longer log in.
    s.sql("DROP USER 'u2'").await;
    let (st, _) = s.sql_as("SELECT 1", "u2", "p2").await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn root_needs_a_password_once_one_is_set() {
    let s = start(|c| c.root_password = Some("rootpw".into())).await;
    let (st, body) = s.sql("SELECT 1").await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (401, Some("UNAUTHORIZED"))
    );
    let (st, _) = s.sql_as("SELECT 1", "root", "rootpw").await;
    assert_eq!(st, 200);
}
