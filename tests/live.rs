//! Live queries against the real `kalamdb` binary over a real WebSocket (SPEC section 7):
//! message sequences pinned as insta snapshots (`snapshots/live_*.snap`, `_seq` and
//! timestamps redacted), isolation, resume, ends, bad messages, slow clients and scale.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::live::{Live, redact, seq, start_server};
use futures::SinkExt;
use serde_json::{Value, json};

/// Snapshot of a message sequence, stored in `snapshots/`.
macro_rules! snap {
    ($name:expr, $messages:expr) => {{
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let messages: Vec<Value> = $messages.iter().map(redact).collect();
        insta::with_settings!({snapshot_path => dir.join("snapshots"), prepend_module_to_snapshot => false}, {
            insta::assert_json_snapshot!($name, messages);
        });
    }};
}

async fn todos(s: &Live) {
    s.root("CREATE NAMESPACE app").await;
    s.root("CREATE USER TABLE app.todos (id BIGINT PRIMARY KEY, title TEXT, done BOOLEAN DEFAULT false)")
        .await;
}

/// Runs `sql` as `user` through root's EXECUTE AS USER.
async fn as_user(s: &Live, user: &str, sql: &str) -> Value {
    s.root(&format!("EXECUTE AS USER '{user}' ({sql})")).await
}

#[tokio::test]
async fn every_change_type_and_rows_leaving_and_entering_the_where() {
    let s = start_server(&[]).await;
    todos(&s).await;
    let alice = s.user("alice", "pw-alice", "user").await;
    for (id, title, done) in [(1, "a", false), (2, "b", true), (3, "c", false)] {
        as_user(
            &s,
            "alice",
            &format!("INSERT INTO app.todos VALUES ({id}, '{title}', {done})"),
        )
        .await;
    }
    let mut ws = s.ws(&alice).await;
    let mut log = ws
        .subscribe(
            "open",
            "SELECT id, title, done FROM app.todos WHERE done = false",
            json!({"batch_size": 1}),
        )
        .await;
    // Empty table: an ack with 0 rows and one empty `ready` batch.
    s.root("CREATE USER TABLE app.empty (id BIGINT PRIMARY KEY)")
        .await;
    log.extend(
        ws.subscribe("empty", "SELECT * FROM app.empty", json!({}))
            .await,
    );
    for sql in [
        "INSERT INTO app.todos VALUES (4, 'd', false), (5, 'e', true)", // one enters, one does not
        "UPDATE app.todos SET title = 'A' WHERE id = 1",                // stays in the WHERE
        "UPDATE app.todos SET done = true WHERE id = 3",                // leaves the WHERE
        "UPDATE app.todos SET done = false WHERE id = 2",               // enters the WHERE
        "UPDATE app.todos SET title = 'E' WHERE id = 5",                // never matches: nothing
        "UPDATE app.todos SET id = 40 WHERE id = 4",                    // primary key moves
        "DELETE FROM app.todos WHERE id = 1",
        "DELETE FROM app.todos WHERE id = 5", // did not match: nothing
    ] {
        as_user(&s, "alice", sql).await;
    }
    // A write by another user to their own partition is not alice's business.
    s.user("bob", "pw-bob", "user").await;
    as_user(&s, "bob", "INSERT INTO app.todos VALUES (1, 'bob', false)").await;
    log.extend(ws.drain().await);
    snap!("live_change_types", log);
    // `_seq` rises along the subscription.
    let seqs: Vec<u64> = log
        .iter()
        .filter(|m| m["type"] == "change")
        .flat_map(|m| {
            m["rows"]
                .as_array()
                .or(m["old_values"].as_array())
                .cloned()
                .unwrap_or_default()
        })
        .map(|r| seq(&r))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // The subscriptions are listed, with their change counts.
    let (_, body) = s
        .sql(
            "SELECT live_id, user_id, table_name, changes FROM system.live_queries ORDER BY live_id",
            Some(&format!("Bearer {alice}")),
        )
        .await;
    let rows = &body["results"][0]["rows"];
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(rows[1][1], "alice");
    assert_eq!(rows[1][2], "todos");
    assert_eq!(rows[1][3], 6, "{body}");
}

#[tokio::test]
async fn users_are_isolated_and_shared_and_stream_tables_deliver() {
    let s = start_server(&[]).await;
    todos(&s).await;
    s.root("CREATE SHARED TABLE app.news (id BIGINT PRIMARY KEY, headline TEXT)")
        .await;
    s.root("CREATE STREAM TABLE app.typing (who TEXT, at_ms BIGINT) TTL 60")
        .await;
    let alice = s.user("alice", "pw-alice", "user").await;
    let bob = s.user("bob", "pw-bob", "user").await;
    let mut wa = s.ws(&alice).await;
    let mut wb = s.ws(&bob).await;
    for ws in [&mut wa, &mut wb] {
        ws.subscribe("t", "SELECT * FROM app.todos", json!({}))
            .await;
        ws.subscribe("n", "SELECT * FROM app.news", json!({})).await;
        ws.subscribe("e", "SELECT who FROM app.typing", json!({}))
            .await;
    }
    as_user(
        &s,
        "alice",
        "INSERT INTO app.todos VALUES (1, 'alice only', false)",
    )
    .await;
    as_user(
        &s,
        "bob",
        "INSERT INTO app.todos VALUES (1, 'bob only', false)",
    )
    .await;
    s.root("INSERT INTO app.news VALUES (1, 'for everyone')")
        .await;
    as_user(&s, "alice", "INSERT INTO app.typing VALUES ('alice', 1)").await;
    as_user(&s, "bob", "DELETE FROM app.todos WHERE id = 1").await;
    let (a, b) = (wa.drain().await, wb.drain().await);
    snap!("live_isolation_alice", a);
    snap!("live_isolation_bob", b);
}

/// Ids a client holds after applying `messages` to `held`.
fn apply(held: &mut BTreeMap<i64, Value>, messages: &[Value]) {
    for m in messages {
        let rows = m["rows"].as_array().cloned().unwrap_or_default();
        match (m["type"].as_str(), m["change_type"].as_str()) {
            (Some("initial_data_batch"), _) | (Some("change"), Some("insert" | "update")) => {
                if let Some(old) = m["old_values"].as_array() {
                    for o in old {
                        held.remove(&o["id"].as_i64().expect("id"));
                    }
                }
                for r in rows {
                    held.insert(r["id"].as_i64().expect("id"), r);
                }
            }
            (Some("change"), Some("delete")) => {
                for o in m["old_values"].as_array().cloned().unwrap_or_default() {
                    held.remove(&o["id"].as_i64().expect("id"));
                }
            }
            _ => {}
        }
    }
}

/// The highest `_seq` seen in `messages` (rows and `last_seq`).
fn last_seq(messages: &[Value]) -> u64 {
    let mut top = 0;
    for m in messages {
        if let Some(l) = m.pointer("/batch_control/last_seq") {
            top = top.max(seq(&json!({ "_seq": l })));
        }
        for k in ["rows", "old_values"] {
            for r in m[k].as_array().cloned().unwrap_or_default() {
                top = top.max(seq(&r));
            }
        }
    }
    top
}

#[tokio::test]
async fn resume_by_from_seq_across_a_flush_has_no_gap_and_no_duplicate() {
    let s = start_server(&[]).await;
    todos(&s).await;
    let alice = s.user("alice", "pw-alice", "user").await;
    let sql = "SELECT * FROM app.todos WHERE done = false";
    for id in 1..=6 {
        as_user(
            &s,
            "alice",
            &format!("INSERT INTO app.todos VALUES ({id}, 't{id}', false)"),
        )
        .await;
    }
    let mut held = BTreeMap::new();
    let mut ws = s.ws(&alice).await;
    let first = ws.subscribe("s", sql, json!({})).await;
    apply(&mut held, &first);
    let from = last_seq(&first);
    drop(ws);
    // While disconnected: changes in the hot tier, a flush to Parquet, then more changes to
    // both flushed (cold) and hot rows.
    for sql in [
        "INSERT INTO app.todos VALUES (7, 't7', false)",
        "UPDATE app.todos SET title = 'T1' WHERE id = 1",
        "DELETE FROM app.todos WHERE id = 2",
    ] {
        as_user(&s, "alice", sql).await;
    }
    s.root("FLUSH TABLE app.todos").await;
    wait_for_flush(&s).await;
    for sql in [
        "UPDATE app.todos SET done = true WHERE id = 3", // cold row leaves the WHERE
        "UPDATE app.todos SET title = 'T4' WHERE id = 4", // cold row changes
        "INSERT INTO app.todos VALUES (8, 't8', false)",
        "DELETE FROM app.todos WHERE id = 7", // flushed insert, then deleted
    ] {
        as_user(&s, "alice", sql).await;
    }
    let mut ws = s.ws(&alice).await;
    let resumed = ws
        .subscribe("s", sql, json!({"from_seq": from.to_string()}))
        .await;
    // Live changes after the resume follow the resumed data.
    as_user(&s, "alice", "INSERT INTO app.todos VALUES (9, 't9', false)").await;
    let mut after = ws.drain().await;
    let mut all = resumed.clone();
    all.append(&mut after);
    snap!("live_resume", all);
    apply(&mut held, &all);
    // Every row version after `from` arrived exactly once.
    let resumed_seqs: Vec<u64> = all
        .iter()
        .flat_map(|m| {
            let mut v = m["rows"].as_array().cloned().unwrap_or_default();
            if m["change_type"] == "delete" {
                v.extend(m["old_values"].as_array().cloned().unwrap_or_default());
            }
            v
        })
        .map(|r| seq(&r))
        .collect();
    assert!(resumed_seqs.iter().all(|s| *s > from), "{resumed_seqs:?}");
    let unique: BTreeSet<u64> = resumed_seqs.iter().copied().collect();
    assert_eq!(
        unique.len(),
        resumed_seqs.len(),
        "a duplicate: {resumed_seqs:?}"
    );
    // The client's state equals the table's.
    let (_, body) = s
        .sql(
            "SELECT id, title FROM app.todos WHERE done = false ORDER BY id",
            Some(&format!("Bearer {alice}")),
        )
        .await;
    let expected: Vec<(i64, String)> = body["results"][0]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_string()))
        .collect();
    let got: Vec<(i64, String)> = held
        .iter()
        .map(|(id, r)| (*id, r["title"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(got, expected);
}

async fn wait_for_flush(s: &Live) {
    let deadline = std::time::Instant::now() + common::live::WAIT;
    loop {
        let body = s
            .root("SELECT count(*) FROM system.jobs WHERE job_type = 'flush' AND status IN ('queued', 'running')")
            .await;
        if body["results"][0]["rows"][0][0] == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "flush did not finish");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kill_drop_unsubscribe_and_disconnect_end_subscriptions() {
    let s = start_server(&[]).await;
    todos(&s).await;
    s.root("CREATE SHARED TABLE app.gone (id BIGINT PRIMARY KEY)")
        .await;
    let alice = s.user("alice", "pw-alice", "user").await;
    let bob = s.user("bob", "pw-bob", "user").await;
    let mut ws = s.ws(&alice).await;
    ws.subscribe("k", "SELECT * FROM app.todos", json!({}))
        .await;
    ws.subscribe("d", "SELECT * FROM app.gone", json!({})).await;
    ws.subscribe("u", "SELECT id FROM app.todos", json!({}))
        .await;
    s.root("CREATE NAMESPACE other").await;
    s.root("CREATE SHARED TABLE other.t (id BIGINT PRIMARY KEY)")
        .await;
    ws.subscribe("ns", "SELECT * FROM other.t", json!({})).await;
    let live_id = |body: &Value, n: usize| body["results"][0]["rows"][n][0].clone();
    let list = "SELECT live_id FROM system.live_queries ORDER BY live_id";
    let body = s.root(list).await;
    let killed = live_id(&body, 1);
    // Another user cannot see or kill alice's live query.
    let (status, err) = s
        .sql(
            &format!("KILL LIVE QUERY '{}'", killed.as_str().unwrap()),
            Some(&format!("Bearer {bob}")),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let (_, bobs) = s.sql(list, Some(&format!("Bearer {bob}"))).await;
    assert_eq!(bobs["results"][0]["row_count"], 0);
    s.root(&format!("KILL LIVE QUERY '{}'", killed.as_str().unwrap()))
        .await;
    s.root("DROP TABLE app.gone").await;
    s.root("DROP NAMESPACE other CASCADE").await;
    ws.send(json!({"type": "unsubscribe", "subscription_id": "u"}))
        .await;
    ws.send(json!({"type": "unsubscribe", "subscription_id": "u"}))
        .await;
    let log = ws.drain().await;
    snap!("live_ends", log);
    assert_eq!(s.root(list).await["results"][0]["row_count"], 0);
    // Writes after the end reach nobody; a new subscription works on the same connection.
    as_user(&s, "alice", "INSERT INTO app.todos VALUES (1, 'x', false)").await;
    ws.subscribe("k", "SELECT * FROM app.todos", json!({}))
        .await;
    assert_eq!(s.root(list).await["results"][0]["row_count"], 1);
    drop(ws);
    let deadline = std::time::Instant::now() + common::live::WAIT;
    while s.root(list).await["results"][0]["row_count"] != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "disconnect did not end the subscription"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bad_messages_get_errors_and_the_connection_stays_usable() {
    let s = start_server(&[]).await;
    todos(&s).await;
    let alice = s.user("alice", "pw-alice", "user").await;
    let mut ws = s.ws(&alice).await;
    let mut log = Vec::new();
    for text in [
        "not json",
        r#"{"type":"shout"}"#,
        r#"{"type":"subscribe"}"#,
        r#"{"type":"subscribe","subscription":{"id":"x","sql":"SELECT * FROM app.todos","options":{"batch_size":0}}}"#,
        r#"{"type":"subscribe","subscription":{"id":"x","sql":"SELECT * FROM app.todos","options":{"colour":1}}}"#,
        r#"{"type":"subscribe","subscription":{"id":"","sql":"SELECT * FROM app.todos"}}"#,
        r#"{"type":"unsubscribe","subscription_id":"nope"}"#,
        r#"{"type":"authenticate","token":"again"}"#,
    ] {
        ws.send_text(text).await;
        log.push(ws.recv().await);
    }
    for sql in [
        "SELECT * FROM app.nope",
        "SELECT * FROM nope.todos",
        "SELECT count(*) FROM app.todos",
        "SELECT a.id FROM app.todos a JOIN app.todos b ON a.id = b.id",
        "SELECT * FROM app.todos ORDER BY id LIMIT 5",
        "SELECT DISTINCT title FROM app.todos",
        "SELECT id + 1 FROM app.todos",
        "SELECT * FROM app.todos WHERE id IN (SELECT id FROM app.todos)",
        "SELECT * FROM app.todos WHERE random() < 0.5",
        "SELECT * FROM system.users",
        "SELECT 1",
        "DELETE FROM app.todos",
        "CREATE NAMESPACE x",
        "SELECT * FROM app.todos; SELECT * FROM app.todos",
        "SELECT * FROM app.todos WHERE",
    ] {
        log.extend(ws.subscribe("bad", sql, json!({})).await);
    }
    ws.subscribe("dup", "SELECT * FROM app.todos", json!({}))
        .await;
    log.extend(
        ws.subscribe("dup", "SELECT * FROM app.todos", json!({}))
            .await,
    );
    ws.stream
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![
            1u8, 2, 3,
        ]))
        .await
        .unwrap();
    log.push(ws.recv().await);
    snap!("live_bad_messages", log);
    // Nothing was created, and the connection still works.
    assert_eq!(
        s.root("SELECT count(*) FROM system.live_queries").await["results"][0]["rows"][0][0],
        1
    );
    as_user(&s, "alice", "INSERT INTO app.todos VALUES (1, 'ok', false)").await;
    let after = ws.drain().await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["change_type"], "insert");
}

#[tokio::test]
async fn a_slow_client_is_disconnected_and_never_slows_writers() {
    let s = start_server(&[("KALAMDB_LIVE_QUEUE_MESSAGES", "4")]).await;
    s.root("CREATE NAMESPACE app").await;
    s.root("CREATE SHARED TABLE app.blobs (id BIGINT PRIMARY KEY, body TEXT)")
        .await;
    let token = s.login("root", "").await;
    let mut slow = s.ws(&token).await;
    slow.subscribe("s", "SELECT * FROM app.blobs", json!({}))
        .await;
    let mut fast = s.ws(&token).await;
    fast.subscribe("f", "SELECT id FROM app.blobs", json!({}))
        .await;
    // `slow` stops reading; each change to it is ~256 KiB, so socket buffers fill quickly.
    let writes = 200;
    let mut seen = BTreeSet::new();
    for id in 0..writes {
        s.root(&format!(
            "INSERT INTO app.blobs VALUES ({id}, repeat('x', 262144))"
        ))
        .await;
        // The fast client keeps up and gets every change.
        let m = fast.recv().await;
        assert_eq!(m["type"], "change", "{m}");
        seen.insert(m["rows"][0]["id"].as_i64().unwrap());
    }
    assert_eq!(seen.len(), writes as usize);
    // The slow subscription was dropped: only the fast one is listed.
    let list = "SELECT live_id FROM system.live_queries";
    let deadline = std::time::Instant::now() + common::live::WAIT;
    while s.root(list).await["results"][0]["row_count"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow client is still subscribed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Reading now, the slow client finds the queued changes and then the end of the socket
    // (with a LIMIT_EXCEEDED error when it could still be sent).
    let mut received = 0;
    while let Some(m) = slow.next().await {
        if m["type"] == "error" {
            assert_eq!(m["code"], "LIMIT_EXCEEDED", "{m}");
            break;
        }
        received += 1;
    }
    assert!(
        received < writes,
        "the slow client got every change: it was never cut off"
    );
}

#[tokio::test]
async fn a_thousand_subscriptions_on_one_connection() {
    let s = start_server(&[]).await;
    s.root("CREATE NAMESPACE app").await;
    s.root("CREATE SHARED TABLE app.items (id BIGINT PRIMARY KEY, v TEXT)")
        .await;
    let token = s.login("root", "").await;
    let mut ws = s.ws(&token).await;
    let n = 1000;
    for i in 0..n {
        ws.send(json!({"type": "subscribe", "subscription": {"id": format!("s{i}"), "sql": format!("SELECT * FROM app.items WHERE id = {i}")}}))
            .await;
    }
    let mut ready = BTreeSet::new();
    while ready.len() < n {
        let m = ws.recv().await;
        assert_ne!(m["type"], "error", "{m}");
        if m["type"] == "initial_data_batch" {
            ready.insert(m["subscription_id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        s.root("SELECT count(*) FROM system.live_queries").await["results"][0]["rows"][0][0],
        n
    );
    s.root("INSERT INTO app.items VALUES (500, 'five hundred'), (5000, 'nobody')")
        .await;
    let got = ws.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["subscription_id"], "s500");
    assert_eq!(got[0]["rows"][0]["v"], "five hundred");
}

#[tokio::test]
async fn insert_select_cold_rows_execute_as_and_schema_changes() {
    let s = start_server(&[]).await;
    todos(&s).await;
    s.root("CREATE SHARED TABLE app.src (id BIGINT PRIMARY KEY, title TEXT)")
        .await;
    s.root("INSERT INTO app.src VALUES (10, 'from select'), (11, 'also')")
        .await;
    let alice = s.user("alice", "pw-alice", "user").await;
    as_user(
        &s,
        "alice",
        "INSERT INTO app.todos VALUES (1, 'will be cold', false)",
    )
    .await;
    let mut ws = s.ws(&alice).await;
    let first = ws
        .subscribe("all", "SELECT id, title FROM app.todos", json!({}))
        .await;
    assert_eq!(first[1]["rows"][0]["title"], "will be cold", "{first:?}");
    ws.subscribe(
        "titles",
        "SELECT title FROM app.todos WHERE id > 0",
        json!({}),
    )
    .await;
    // A flush moves the row to Parquet and sends nothing.
    s.root("FLUSH TABLE app.todos").await;
    wait_for_flush(&s).await;
    assert_eq!(ws.drain().await, Vec::<Value>::new());
    // A write to a flushed (cold) row, INSERT … SELECT, both through EXECUTE AS USER.
    as_user(
        &s,
        "alice",
        "UPDATE app.todos SET title = 'warm again' WHERE id = 1",
    )
    .await;
    as_user(
        &s,
        "alice",
        "INSERT INTO app.todos (id, title) SELECT id, title FROM app.src",
    )
    .await;
    // A column no subscription selects can be added and written; dropping `title` ends both.
    s.root("ALTER TABLE app.todos ADD COLUMN note TEXT").await;
    as_user(&s, "alice", "UPDATE app.todos SET note = 'n' WHERE id = 10").await;
    s.root("ALTER TABLE app.todos DROP COLUMN title").await;
    let log = ws.drain().await;
    let summary: Vec<(String, String, Value)> = log
        .iter()
        .map(|m| {
            let what = m["change_type"]
                .as_str()
                .or(m["code"].as_str())
                .unwrap_or_default();
            let ids: Value = m["rows"]
                .as_array()
                .map(|r| r.iter().map(|r| r["id"].clone()).collect())
                .unwrap_or(Value::Null);
            (
                m["subscription_id"].as_str().unwrap().to_string(),
                what.to_string(),
                ids,
            )
        })
        .collect();
    let expected = vec![
        ("all".into(), "update".into(), json!([1])),
        ("titles".into(), "update".into(), json!([null])),
        ("all".into(), "insert".into(), json!([10, 11])),
        ("titles".into(), "insert".into(), json!([null, null])),
        // Only `note` changed, but the row's version did: SPEC's rule is "the row matches".
        ("all".into(), "update".into(), json!([10])),
        ("titles".into(), "update".into(), json!([null])),
        ("all".into(), "SCHEMA_CHANGED".into(), Value::Null),
        ("titles".into(), "SCHEMA_CHANGED".into(), Value::Null),
    ];
    assert_eq!(summary, expected, "{log:#?}");
    assert_eq!(log[0]["old_values"][0]["title"], "will be cold");
    assert_eq!(log[0]["rows"][0]["title"], "warm again");
    assert_eq!(
        s.root("SELECT count(*) FROM system.live_queries").await["results"][0]["rows"][0][0],
        0
    );
}

#[tokio::test]
async fn oversized_and_hostile_frames_do_not_hurt_the_server() {
    let s = start_server(&[("KALAMDB_MAX_SQL_BYTES", "4096")]).await;
    todos(&s).await;
    let token = s.login("root", "").await;
    let mut ws = s.ws(&token).await;
    for text in [
        "",
        "null",
        "[]",
        "{}",
        r#"{"type":"subscribe","subscription":{"id":"x","sql":"SELECT * FROM app.todos","options":{"from_seq":"-1"}}}"#,
        r#"{"type":"subscribe","subscription":{"id":"x","sql":"SELECT * FROM app.todos","options":{"from_seq":99999999999999999999999}}}"#,
        r#"{"type":"subscribe","subscription":{"id":"x","sql":"SELECT * FROM app.todos","options":{"last_rows":-5}}}"#,
        r#"{"type":"subscribe","subscription":{"id":"x","sql":"SELECT * FROM app.todos","options":{"batch_size":18446744073709551615}}}"#,
        r#"{"type":"ping","extra":"ignored"}"#,
        r#"{"type":"subscribe","subscription":{"id":5,"sql":"SELECT * FROM app.todos"}}"#,
        r#"{"type":"subscribe","subscription":{"id":"x","sql":null}}"#,
        r#"{"type":"subscribe","subscription":{"id":"x","sql":"SELECT * FROM app.todos","options":null}}"#,
        r#"{"type":"unsubscribe","subscription_id":null}"#,
    ] {
        ws.send_text(text).await;
        let m = ws.recv().await;
        assert!(m["type"] == "error" || m["type"] == "pong", "{text}: {m}");
    }
    // Wrapped or impersonating forms are refused by name, and nothing is registered.
    for (sql, code) in [
        ("EXPLAIN ANALYZE SELECT * FROM app.todos", "INVALID_SQL"),
        ("EXPLAIN SELECT * FROM app.todos", "INVALID_SQL"),
        (
            "EXECUTE AS USER 'root' (SELECT * FROM app.todos)",
            "INVALID_SQL",
        ),
        (
            "WITH x AS (INSERT INTO app.todos VALUES (9, 'x', false)) SELECT 1",
            "SQL_EXECUTION_ERROR",
        ),
        ("SELECT * FROM app.todos WHERE id = $1", "INVALID_SQL"),
    ] {
        let m = ws.subscribe("wrapped", sql, json!({})).await;
        assert_eq!(m[0]["type"], "error", "{sql}: {m:?}");
        assert_eq!(m[0]["code"], code, "{sql}: {m:?}");
    }
    assert_eq!(
        s.root("SELECT count(*) FROM app.todos").await["results"][0]["rows"][0][0],
        0
    );
    let deep = format!(
        "SELECT * FROM app.todos WHERE {}id = 1{}",
        "(".repeat(300),
        ")".repeat(300)
    );
    let m = ws.subscribe("deep", &deep, json!({})).await;
    assert_eq!(m[0]["code"], "LIMIT_EXCEEDED", "{m:?}");
    // A frame over the message limit closes that connection only.
    ws.send_text(&"x".repeat(200_000)).await;
    assert!(ws.next().await.is_none());
    assert!(s.server.client.healthy().await);
    let mut again = s.ws(&token).await;
    assert_eq!(again.drain().await.len(), 0);
}

#[tokio::test]
async fn subscribing_and_resuming_during_concurrent_writes_loses_and_repeats_nothing() {
    let s = start_server(&[]).await;
    s.root("CREATE NAMESPACE app").await;
    s.root("CREATE SHARED TABLE app.feed (id BIGINT PRIMARY KEY)")
        .await;
    let token = s.login("root", "").await;
    let total = 300i64;
    let url = s.server.url.clone();
    let writer = tokio::spawn(async move {
        let http = reqwest::Client::new();
        for id in 0..total {
            let resp = http
                .post(format!("{url}/v1/api/sql"))
                .json(&json!({"sql": format!("INSERT INTO app.feed VALUES ({id})")}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
    });
    // Subscribe while the writer runs, then disconnect and resume twice, mid-stream.
    let mut seen: Vec<i64> = Vec::new();
    let mut from: Option<u64> = None;
    for round in 0..3 {
        let mut ws = s.ws(&token).await;
        let options = match from {
            Some(f) => json!({"from_seq": f.to_string()}),
            None => json!({}),
        };
        let first = ws.subscribe("s", "SELECT id FROM app.feed", options).await;
        assert_eq!(first[0]["type"], "subscription_ack", "{first:?}");
        let mut messages = first;
        let stop = ((round + 1) * total / 3) as usize;
        while seen.len() + count_ids(&messages) < stop && !(round == 2 && writer.is_finished()) {
            messages.push(ws.recv().await);
        }
        if round == 2 {
            messages.extend(ws.drain().await);
        }
        for m in &messages {
            for r in m["rows"].as_array().cloned().unwrap_or_default() {
                seen.push(r["id"].as_i64().unwrap());
            }
        }
        from = Some(last_seq(&messages).max(from.unwrap_or(0)));
    }
    writer.await.unwrap();
    // Whatever the last round had not read yet arrives on one more resume.
    let mut ws = s.ws(&token).await;
    let rest = ws
        .subscribe(
            "s",
            "SELECT id FROM app.feed",
            json!({"from_seq": from.unwrap().to_string()}),
        )
        .await;
    for m in &rest {
        for r in m["rows"].as_array().cloned().unwrap_or_default() {
            seen.push(r["id"].as_i64().unwrap());
        }
    }
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "an id arrived twice");
    assert_eq!(
        unique,
        (0..total).collect::<BTreeSet<i64>>(),
        "an id never arrived"
    );
}

/// Rows carried by `messages`.
fn count_ids(messages: &[Value]) -> usize {
    messages
        .iter()
        .map(|m| m["rows"].as_array().map_or(0, Vec::len))
        .sum()
}

#[tokio::test]
async fn kalamdb_sql_subscribe_prints_changes_as_they_arrive() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let s = start_server(&[]).await;
    todos(&s).await;
    s.user("alice", "pw-alice", "user").await;
    let mut cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_kalamdb"))
        .args(["sql", "--url", &s.server.url, "-u", "alice", "-c"])
        .arg("\\subscribe SELECT id, title FROM app.todos WHERE done = false")
        .env("KALAMDB_PASSWORD", "pw-alice")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kalamdb sql starts");
    let mut lines = BufReader::new(cli.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(common::live::WAIT, lines.next_line())
            .await
            .expect("a line within the deadline")
            .unwrap()
            .expect("output continues")
    };
    assert_eq!(next_line().await, "-- connected as alice");
    assert!(next_line().await.starts_with("-- subscribed: 0 row(s)"));
    as_user(
        &s,
        "alice",
        "INSERT INTO app.todos VALUES (1, 'from the cli test', false)",
    )
    .await;
    let line = next_line().await;
    assert!(line.starts_with("[insert] {"), "{line}");
    assert!(line.contains("\"title\":\"from the cli test\""), "{line}");
    as_user(&s, "alice", "UPDATE app.todos SET done = true WHERE id = 1").await;
    let line = next_line().await;
    assert!(
        line.starts_with("[delete] {") && line.contains("\"id\":1"),
        "{line}"
    );
}

/// The initial data of a large partition (hot rows and a flushed file) is read as a stream and
/// only the rows sent are kept: `last_rows` gets the newest rows by `_seq`, a narrow WHERE its
/// few rows, and an answer over `max_result_rows` is refused without reading further.
#[tokio::test]
async fn initial_data_of_a_large_partition_streams_and_keeps_only_what_is_sent() {
    let s = start_server(&[("KALAMDB_MAX_RESULT_ROWS", "5000")]).await;
    s.root("CREATE NAMESPACE big").await;
    s.root("CREATE SHARED TABLE big.t (id BIGINT PRIMARY KEY, v BIGINT)")
        .await;
    s.root("INSERT INTO big.t SELECT value, value * 1 FROM generate_series(1, 20000) AS g(value)")
        .await;
    s.root("FLUSH TABLE big.t").await;
    wait_for_flush(&s).await;
    s.root(
        "INSERT INTO big.t SELECT value, value * 1 FROM generate_series(20001, 30000) AS g(value)",
    )
    .await;
    s.root("UPDATE big.t SET v = -1 WHERE id = 5").await; // a cold row becomes the newest
    let root = s.login("root", "").await;
    let mut ws = s.ws(&root).await;
    let ids = |messages: &[Value]| -> Vec<i64> {
        messages
            .iter()
            .filter(|m| m["type"] == "initial_data_batch")
            .flat_map(|m| m["rows"].as_array().cloned().unwrap_or_default())
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    let newest = ws
        .subscribe("n", "SELECT id FROM big.t", json!({"last_rows": 3}))
        .await;
    assert_eq!(
        ids(&newest),
        [29999, 30000, 5],
        "by _seq: the UPDATE is newest"
    );
    let narrow = ws
        .subscribe(
            "w",
            "SELECT id, v FROM big.t WHERE v < 0 OR id = 12345",
            json!({}),
        )
        .await;
    assert_eq!(ids(&narrow), [12345, 5]);
    let at_limit = ws
        .subscribe("l", "SELECT id FROM big.t", json!({"last_rows": 5000}))
        .await;
    assert_eq!(ids(&at_limit).len(), 5000);
    for (id, options) in [("a", json!({})), ("o", json!({"last_rows": 5001}))] {
        let refused = ws.subscribe(id, "SELECT id FROM big.t", options).await;
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0]["code"], "LIMIT_EXCEEDED");
        assert!(
            refused[0]["message"]
                .as_str()
                .unwrap()
                .contains("more than 5000 rows"),
            "{refused:?}"
        );
    }
}
