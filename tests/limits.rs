//! Limits over HTTP (issue #6, docs/limits.md): a runaway statement hits its deadline while the
//! healthcheck and other users keep being served; a statement whose client went away is
//! cancelled; oversize and out-of-range requests are refused at once; the canonical careless
//! app bug (`DELETE … WHERE x = $1` with a NULL parameter) deletes nothing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{start, start_hosted};
use serde_json::json;

/// A statement that runs until something stops it.
const RUNAWAY: &str = "SELECT COUNT(*) FROM generate_series(1, 100000000000)";

/// Polls `cond` every 10 ms until it holds or `secs` pass.
async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_query_times_out_while_everyone_else_is_served() {
    // Hosted as `kalamdb serve` hosts it: connections share the query runtime's threads.
    let s = Arc::new(start_hosted(|_| {}).await);
    s.sql("CREATE USER 'other' WITH PASSWORD 'pw'").await;
    let finished = Arc::new(AtomicBool::new(false));
    // Two runaways (one per core), each stopped by its own 3 s deadline.
    let mut runaways = Vec::new();
    for _ in 0..2 {
        let (s, finished) = (s.clone(), finished.clone());
        runaways.push(tokio::spawn(async move {
            let r = s
                .sql(&format!("SET statement_timeout = 3000; {RUNAWAY}"))
                .await;
            finished.store(true, Ordering::SeqCst);
            r
        }));
    }
    assert!(
        eventually(10, || s.engine.running_statements() >= 2).await,
        "the runaways never started"
    );
    // While they burn both cores: the healthcheck and another user's SELECT 1 answer.
    for _ in 0..5 {
        assert!(s.healthy().await);
        let (status, body) = s.sql_as("SELECT 1 AS one", "other", "pw").await;
        assert_eq!(
            (status, body["results"][0]["rows"].clone()),
            (200, json!([[1]]))
        );
    }
    assert!(
        !finished.load(Ordering::SeqCst),
        "the runaways ended before the others were served"
    );
    for r in runaways {
        let (status, body) = r.await.unwrap();
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], "LIMIT_EXCEEDED");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("statement_timeout_ms: the statement ran longer than 3000 ms"),
            "{body}"
        );
    }
    assert!(eventually(10, || s.engine.running_statements() == 0).await);
    Arc::into_inner(s).expect("no other holder").stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_is_cancelled_when_its_client_goes_away() {
    // The default 30 s timeout would keep the statement alive long after the client left.
    let s = start_hosted(|_| {}).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let sent = impatient
        .post(format!("{}/v1/api/sql", s.url))
        .json(&json!({ "sql": RUNAWAY }))
        .send()
        .await;
    assert!(sent.is_err(), "the runaway answered: {sent:?}");
    assert!(
        eventually(10, || s.engine.running_statements() == 0).await,
        "the statement kept running after its client left"
    );
    assert!(s.healthy().await);
    s.stop().await;
}

#[tokio::test]
async fn an_announced_oversize_body_is_refused_before_it_is_sent() {
    let s = start(|_| {}).await;
    // The rest of the body never comes: the answer must not wait for it.
    let text = s.partial_body(10_000_000_000).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("PAYLOAD_TOO_LARGE"), "{text}");
}

#[tokio::test]
async fn a_slow_body_times_out() {
    let s = start(|c| c.request_body_timeout_secs = 1).await;
    let text = s.partial_body(100).await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("request_body_timeout_secs"), "{text}");
}

#[tokio::test]
async fn null_and_out_of_range_parameters() {
    let s = start(|_| {}).await;
    s.sql("CREATE NAMESPACE p; CREATE SHARED TABLE p.t (id INT PRIMARY KEY, x TEXT, b BIGINT)")
        .await;
    s.sql("INSERT INTO p.t (id, x) VALUES (1, 'a'), (2, 'b')")
        .await;
    let body = json!({"sql": "DELETE FROM p.t WHERE x = $1", "params": [null]}).to_string();
    let (status, body) = s.post_raw(&body, None).await;
    assert_eq!(
        (status, body["results"][0]["row_count"].clone()),
        (200, json!(0))
    );
    let body = json!({"sql": "UPDATE p.t SET x = 'z' WHERE id = $1", "params": [null]});
    let (status, body) = s.post_raw(&body.to_string(), None).await;
    assert_eq!(
        (status, body["results"][0]["row_count"].clone()),
        (200, json!(0))
    );
    // An integer outside 64 bits would become a rounded double: refused instead.
    let raw = r#"{"sql": "UPDATE p.t SET b = $1 WHERE id = 1", "params": [-9223372036854775809]}"#;
    let (status, body) = s.post_raw(raw, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_PARAMETER"))
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("$1"));
    // Within range, as a number or as a string, the value is exact.
    let raw = r#"{"sql": "UPDATE p.t SET b = $1 WHERE id = 1; UPDATE p.t SET b = $2 WHERE id = 2", "params": [-9223372036854775808, "9223372036854775807"]}"#;
    assert_eq!(s.post_raw(raw, None).await.0, 200);
    let stored = json!([
        [1, "a", "-9223372036854775808"],
        [2, "b", "9223372036854775807"]
    ]);
    let rows_now = || async {
        let (_, body) = s.sql("SELECT id, x, b FROM p.t ORDER BY id").await;
        body["results"][0]["rows"].clone()
    };
    assert_eq!(rows_now().await, stored);
    // A value that does not convert to its column's type is refused, not stored as NULL.
    for (sql, params) in [
        (
            "INSERT INTO p.t (id, b) VALUES ($1, $2)",
            json!([3, "text"]),
        ),
        (
            "INSERT INTO p.t (id, b) VALUES ($1, $2)",
            json!([3000000000_i64, 1]),
        ),
        ("UPDATE p.t SET b = $1 WHERE id = 1", json!(["text"])),
        (
            "UPDATE p.t SET id = $1 WHERE id = 1",
            json!([3000000000_i64]),
        ),
    ] {
        let body = json!({"sql": sql, "params": params}).to_string();
        let (status, body) = s.post_raw(&body, None).await;
        assert_eq!(status, 400, "{sql} {params}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("Cast error"), "{sql} {params}: {body}");
    }
    assert_eq!(rows_now().await, stored, "nothing changed");
    // Deeply nested JSON is a clean 400.
    let nested = format!(
        "{{\"sql\": \"SELECT 1\", \"params\": [{}1{}]}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let (status, body) = s.post_raw(&nested, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_PARAMETER"))
    );
}

/// A flood of wrong Basic passwords (each needs an argon2 verification) waits for its turn on
/// blocking threads, at most 64 waiting; the rest is refused at once with 429. Meanwhile other
/// requests are served, and afterwards the gate is open again (nothing stays counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_is_bounded_and_stalls_nobody() {
    let s = start(|_| {}).await;
    s.sql("CREATE USER 'victim' WITH PASSWORD 'right-one'")
        .await;
    let flood = 3 * 64;
    let finished = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut attempts = Vec::new();
    for i in 0..flood {
        let (url, http) = (s.url.clone(), s.http.clone());
        let (finished, refused) = (finished.clone(), refused.clone());
        attempts.push(tokio::spawn(async move {
            let status = http
                .post(format!("{url}/v1/api/sql"))
                .basic_auth("victim", Some(format!("wrong-{i}")))
                .body(r#"{"sql": "SELECT 1"}"#)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if status == 429 {
                refused.fetch_add(1, Ordering::SeqCst);
            }
            finished.fetch_add(1, Ordering::SeqCst);
            status
        }));
    }
    assert!(
        eventually(60, || refused.load(Ordering::SeqCst) > 0).await,
        "a full queue refuses at once"
    );
    // The gate is full: still, a request that needs no password check is served now.
    let (status, body) = s.sql("SELECT 41 + 1").await;
    assert_eq!(
        (status, &body["results"][0]["rows"][0][0]),
        (200, &json!(42))
    );
    assert!(
        finished.load(Ordering::SeqCst) < flood,
        "answered while the flood still waits"
    );
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for a in attempts {
        *statuses.entry(a.await.unwrap()).or_default() += 1;
    }
    let rejected = statuses.get(&429).copied().unwrap_or(0);
    assert_eq!(
        statuses.get(&401).copied().unwrap_or(0) + rejected,
        flood,
        "{statuses:?}"
    );
    assert!(rejected > 0 && rejected <= flood - 64, "{statuses:?}");
    // Afterwards: the right password works, a wrong one is a plain 401 again.
    assert_eq!(s.sql_as("SELECT 1", "victim", "right-one").await.0, 200);
    assert_eq!(s.sql_as("SELECT 1", "victim", "wrong").await.0, 401);

    // Clients that give up while their check waits: the gate forgets them (it would otherwise
    // stay counted full and refuse every later check with 429).
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    let gave_up = futures::future::join_all((0..flood).map(|i| {
        impatient
            .post(format!("{}/v1/api/sql", s.url))
            .basic_auth("victim", Some(format!("impatient-{i}")))
            .body(r#"{"sql": "SELECT 1"}"#)
            .send()
    }))
    .await;
    assert!(gave_up.iter().any(Result::is_err), "some clients timed out");
    let mut status = 0;
    for _ in 0..600 {
        status = s.sql_as("SELECT 1", "victim", "wrong-again").await.0;
        if status == 401 {
            break;
        }
    }
    assert_eq!(status, 401, "the gate drains once the clients are gone");
    assert_eq!(s.sql_as("SELECT 1", "victim", "right-one").await.0, 200);
    s.stop().await;
}
