//! Writers of different partitions of one table do not wait for each other; work on the whole
//! table waits for, and excludes, all of them ([`crate::locks`]).

use std::time::Duration;

use super::tests::{open_with, rows};
use crate::session::{Role, Session};

#[tokio::test(flavor = "multi_thread")]
async fn a_held_partition_delays_only_its_own_writers_and_the_table_lock_delays_all() {
    let (_d, e) = open_with("CREATE NAMESPACE w; CREATE USER TABLE w.t (id INT PRIMARY KEY)").await;
    let e = std::sync::Arc::new(e);
    let def = e.exec.core.catalog.table("w", "t").unwrap();
    let (u1, u2) = (
        Session::new("u1", Role::User),
        Session::new("u2", Role::User),
    );
    let count = |s: Session| {
        let e = e.clone();
        async move {
            let r = e.execute("SELECT COUNT(*) FROM w.t", &s).await.unwrap();
            r[0].json_rows()[0][0].as_i64().unwrap()
        }
    };
    let insert = |s: Session, id: i32| {
        let e = e.clone();
        tokio::spawn(async move {
            e.execute(&format!("INSERT INTO w.t VALUES ({id})"), &s)
                .await
                .unwrap()
        })
    };
    let finish = |task: tokio::task::JoinHandle<_>| async move {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the write finishes once its partition is free")
            .unwrap()
    };

    // u1's partition is held (as by a long write or a flush commit of u1's rows).
    let held = e.exec.core.locks.partition(def.id, "u1").await;
    let blocked = insert(u1.clone(), 1);
    // u2 writes the same table meanwhile; the same key is free in u2's partition.
    finish(insert(u2.clone(), 1)).await;
    assert_eq!(count(u2.clone()).await, 1);
    assert!(!blocked.is_finished());
    assert_eq!(count(u1.clone()).await, 0);
    drop(held);
    finish(blocked).await;
    assert_eq!(count(u1.clone()).await, 1);

    // The whole table held (as by DROP TABLE or a tombstone purge): every partition waits.
    let whole = e.exec.core.locks.table(def.id).await;
    let (a, b) = (insert(u1.clone(), 2), insert(u2.clone(), 2));
    assert_eq!((count(u1.clone()).await, count(u2.clone()).await), (1, 1));
    assert!(!a.is_finished() && !b.is_finished());
    drop(whole);
    finish(a).await;
    finish(b).await;
    assert_eq!((count(u1).await, count(u2).await), (2, 2));
    assert_eq!(
        rows(&e, "SELECT COUNT(*) FROM w.t").await,
        vec![vec![serde_json::json!(0)]],
        "root has no rows of its own in a USER table"
    );
}
