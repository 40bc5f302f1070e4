//! Plans of parameterised statements are reused ([`crate::query::plans`]) without changing
//! any answer: new values bind, DDL invalidates, no plan crosses users, `now()` stays current,
//! system tables are planned afresh.

use serde_json::{Value, json};

use super::Engine;
use super::tests::open_with;
use crate::session::{Role, Session};

async fn run(e: &Engine, sql: &str, session: &Session, params: &[Value]) -> Vec<Vec<Value>> {
    let mut r = e
        .execute_with_params(sql, session, params)
        .await
        .unwrap_or_else(|err| panic!("{sql} {params:?}: {err}"));
    let r = r.pop().unwrap();
    match r.message {
        Some(m) => vec![vec![json!(m)]],
        None => r.json_rows(),
    }
}

fn hits(e: &Engine) -> u64 {
    e.exec.bridge.plan_cache_stats().0
}

#[tokio::test(flavor = "multi_thread")]
async fn reused_plans_bind_new_values_and_follow_ddl() {
    let (_d, e) =
        open_with("CREATE NAMESPACE p; CREATE SHARED TABLE p.t (id INT PRIMARY KEY, v TEXT)").await;
    let root = Session::root();
    let insert = "INSERT INTO p.t VALUES ($1, $2)";
    let h0 = hits(&e);
    assert_eq!(
        run(&e, insert, &root, &[json!(1), json!("a")]).await,
        [[json!("Inserted 1 row(s)")]]
    );
    assert_eq!(
        run(&e, insert, &root, &[json!(2), json!("b")]).await,
        [[json!("Inserted 1 row(s)")]]
    );
    assert_eq!(
        hits(&e),
        h0 + 1,
        "the second INSERT reused the first one's plan"
    );
    let dup = e
        .execute_with_params(insert, &root, &[json!(2), json!("c")])
        .await;
    assert!(
        dup.unwrap_err()
            .to_string()
            .contains("duplicate primary key")
    );

    let select = "SELECT * FROM p.t WHERE id = $1";
    assert_eq!(
        run(&e, select, &root, &[json!(1)]).await,
        [[json!(1), json!("a")]]
    );
    assert_eq!(
        run(&e, select, &root, &[json!(2)]).await,
        [[json!(2), json!("b")]]
    );
    assert_eq!(
        run(&e, select, &root, &[json!(3)]).await,
        Vec::<Vec<Value>>::new()
    );

    let update = "UPDATE p.t SET v = $2 WHERE id = $1";
    assert_eq!(
        run(&e, update, &root, &[json!(1), json!("x")]).await,
        [[json!("Updated 1 row(s)")]]
    );
    assert_eq!(
        run(&e, update, &root, &[json!(9), json!("y")]).await,
        [[json!("Updated 0 row(s)")]]
    );
    assert_eq!(
        run(&e, select, &root, &[json!(1)]).await,
        [[json!(1), json!("x")]]
    );

    // DDL replaces the definition: the next run plans afresh and sees the new column.
    let before = hits(&e);
    e.execute("ALTER TABLE p.t ADD COLUMN w INT DEFAULT 7", &root)
        .await
        .unwrap();
    assert_eq!(
        run(&e, select, &root, &[json!(2)]).await,
        [[json!(2), json!("b"), json!(7)]]
    );
    assert_eq!(hits(&e), before, "a stale plan is not reused");
    // Dropped and created again with other types: planned against the new table.
    e.execute(
        "DROP TABLE p.t; CREATE SHARED TABLE p.t (id INT PRIMARY KEY, v BIGINT)",
        &root,
    )
    .await
    .unwrap();
    assert_eq!(
        run(&e, insert, &root, &[json!(1), json!(42)]).await,
        [[json!("Inserted 1 row(s)")]]
    );
    assert_eq!(
        run(&e, select, &root, &[json!(1)]).await,
        [[json!(1), json!(42)]]
    );
    let wrong = e
        .execute_with_params(insert, &root, &[json!(2), json!("text")])
        .await;
    assert!(
        wrong.is_err(),
        "a TEXT value for a BIGINT column is still refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reused_plans_never_cross_users() {
    let (_d, e) =
        open_with("CREATE NAMESPACE p; CREATE USER TABLE p.notes (id INT PRIMARY KEY, body TEXT)")
            .await;
    let users = [
        Session::new("u1", Role::User),
        Session::new("u2", Role::User),
    ];
    for u in &users {
        let body = format!("note of {}", u.user_id);
        run(
            &e,
            "INSERT INTO p.notes VALUES ($1, $2)",
            u,
            &[json!(1), json!(body)],
        )
        .await;
    }
    for _ in 0..2 {
        for u in &users {
            assert_eq!(
                run(
                    &e,
                    "SELECT body, CURRENT_USER() FROM p.notes WHERE id = $1",
                    u,
                    &[json!(1)]
                )
                .await,
                [[json!(format!("note of {}", u.user_id)), json!(u.user_id)]]
            );
        }
    }
    // The same text in another default namespace names another table.
    e.execute(
        "CREATE NAMESPACE q; CREATE USER TABLE q.notes (id INT PRIMARY KEY, body TEXT)",
        &Session::root(),
    )
    .await
    .unwrap();
    let mut in_q = users[0].clone();
    in_q.namespace = Some("q".into());
    let mut in_p = users[0].clone();
    in_p.namespace = Some("p".into());
    let unqualified = "SELECT body FROM notes WHERE id = $1";
    assert_eq!(
        run(&e, unqualified, &in_p, &[json!(1)]).await,
        [[json!("note of u1")]]
    );
    assert_eq!(
        run(&e, unqualified, &in_q, &[json!(1)]).await,
        Vec::<Vec<Value>>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reused_plans_read_the_clock_and_system_tables_afresh() {
    let (_d, e) = open_with("CREATE NAMESPACE p").await;
    let root = Session::root();
    let clock = "SELECT CAST(now() AS VARCHAR), $1";
    let first = run(&e, clock, &root, &[json!(1)]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let next = run(&e, clock, &root, &[json!(1)]).await;
        if next != first {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "now() froze at {first:?}"
        );
        tokio::task::yield_now().await;
    }
    let names = "SELECT name FROM system.namespaces WHERE name = $1";
    assert_eq!(
        run(&e, names, &root, &[json!("q")]).await,
        Vec::<Vec<Value>>::new()
    );
    e.execute("CREATE NAMESPACE q", &root).await.unwrap();
    assert_eq!(run(&e, names, &root, &[json!("q")]).await, [[json!("q")]]);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_parameters_and_floods_of_statements_stay_bounded_and_exact() {
    let (_d, e) = open_with(
        "CREATE NAMESPACE p; CREATE SHARED TABLE p.t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO p.t VALUES (1, 'one')",
    )
    .await;
    let root = Session::root();
    let select = "SELECT v FROM p.t WHERE id = $1";
    // NULL, a value, more values than used, a key past INT, a wrong type, too few values:
    // the reused plan answers each as a fresh one would, and refuses clearly. (Values beyond
    // those a statement uses are not an error: a request's params serve all its statements.)
    assert_eq!(
        run(&e, select, &root, &[json!(null)]).await,
        Vec::<Vec<Value>>::new()
    );
    assert_eq!(run(&e, select, &root, &[json!(1)]).await, [[json!("one")]]);
    assert_eq!(
        run(&e, select, &root, &[json!(1), json!(2)]).await,
        [[json!("one")]]
    );
    // A key past INT's range matches nothing (compared as BIGINT), as in SQL.
    assert_eq!(
        run(&e, select, &root, &[json!(9_999_999_999_i64)]).await,
        Vec::<Vec<Value>>::new()
    );
    for bad in [vec![json!("x")], vec![]] {
        let r = e.execute_with_params(select, &root, &bad).await;
        let err = r.expect_err(&format!("{bad:?} is refused"));
        assert!(err.http_status() == 400, "{bad:?}: {err}");
    }
    // EXPLAIN ANALYZE of a reused write is still classified (and refused) per run.
    let explain = "EXPLAIN ANALYZE INSERT INTO p.t VALUES ($1, 'x')";
    for id in [2, 3] {
        assert!(
            e.execute_with_params(explain, &root, &[json!(id)])
                .await
                .is_err()
        );
    }
    assert_eq!(
        run(&e, "SELECT COUNT(*) FROM p.t", &root, &[]).await,
        [[json!(1)]],
        "nothing was written"
    );
    // A flood of distinct parameterised statements keeps at most MAX_PLANS plans.
    for i in 0..(crate::query::plans::MAX_PLANS + 50) {
        let sql = format!("SELECT v, {i} AS n FROM p.t WHERE id = $1");
        assert_eq!(
            run(&e, &sql, &root, &[json!(1)]).await,
            [[json!("one"), json!(i)]]
        );
    }
    assert_eq!(e.exec.bridge.plans_kept(), crate::query::plans::MAX_PLANS);
    // A statement over the size bound is answered and never kept.
    let long = format!(
        "SELECT v FROM p.t WHERE id = $1 AND v <> '{}'",
        "x".repeat(crate::query::plans::MAX_SQL_BYTES)
    );
    let before = e.exec.bridge.plan_cache_stats();
    assert_eq!(run(&e, &long, &root, &[json!(1)]).await, [[json!("one")]]);
    assert_eq!(
        e.exec.bridge.plan_cache_stats(),
        before,
        "not even looked up"
    );
}
