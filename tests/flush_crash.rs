//! Kill the server between every flush step and prove the row set is exact afterwards
//! (issue "cold tier": no lost row, no duplicate row, no orphan file ever read).
//!
//! The real binary runs with `KALAMDB_FAILPOINT=<step>`, which aborts the process at that step
//! (like `kill -9`). It is then restarted without the failpoint and queried.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Server {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Server {
    async fn start(dir: &Path, failpoint: Option<&str>) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kalamdb"));
        cmd.args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--bind", &format!("127.0.0.1:{port}")]);
        cmd.env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.env_remove("KALAMDB_FAILPOINT");
        if let Some(fp) = failpoint {
            cmd.env("KALAMDB_FAILPOINT", fp);
        }
        let child = cmd.spawn().expect("spawn kalamdb");
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = server
                .http
                .get(format!("{}/v1/api/healthcheck", server.url))
                .send()
                .await
                .is_ok();
            if ok {
                return server;
            }
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn sql(&self, sql: &str) -> Value {
        let resp = self
            .http
            .post(format!("{}/v1/api/sql", self.url))
            .json(&json!({ "sql": sql }))
            .send()
            .await;
        resp.expect("request").json().await.expect("json")
    }

    async fn rows(&self, sql: &str) -> Value {
        let body = self.sql(sql).await;
        assert_eq!(body["status"], "success", "{sql}: {body}");
        body["results"][0]["rows"].clone()
    }

    /// Waits for the process to die (the failpoint aborts it).
    async fn wait_for_exit(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.child.try_wait().expect("try_wait").is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server did not hit the failpoint"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SETUP: &str = "CREATE NAMESPACE c; \
    CREATE USER 'u1' WITH PASSWORD 'p'; CREATE USER 'u2' WITH PASSWORD 'p'; \
    CREATE USER TABLE c.notes (id INT PRIMARY KEY, body TEXT); \
    CREATE SHARED TABLE c.kv (k TEXT PRIMARY KEY, v INT)";

const QUERIES: [&str; 4] = [
    "EXECUTE AS USER 'u1' (SELECT id, body FROM c.notes ORDER BY id)",
    "EXECUTE AS USER 'u2' (SELECT id, body FROM c.notes ORDER BY id)",
    "SELECT k, v FROM c.kv ORDER BY k",
    "EXECUTE AS USER 'u1' (SELECT id, _deleted FROM c.notes WHERE _deleted = true ORDER BY id)",
];

async fn snapshot(s: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    for q in QUERIES {
        out.push(s.rows(q).await);
    }
    out
}

fn files_on_disk(dir: &Path) -> (usize, usize) {
    let (mut live, mut tmp) = (0, 0);
    let mut stack = vec![dir.join("storage")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
            {
                tmp += 1;
            } else {
                live += 1;
            }
        }
    }
    (live, tmp)
}

async fn stat(s: &Server, table: &str, name: &str) -> String {
    let rows = s.rows(&format!("SHOW STATS FOR TABLE {table}")).await;
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == name)
        .unwrap()
        .clone();
    row[1].as_str().unwrap_or("NULL").to_string()
}

async fn crash_at(step: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), Some(step)).await;
    assert_eq!(s.sql(SETUP).await["status"], "success");
    s.sql("EXECUTE AS USER 'u1' (INSERT INTO c.notes VALUES (1, 'a'), (2, 'b'), (3, 'c'))")
        .await;
    s.sql("EXECUTE AS USER 'u2' (INSERT INTO c.notes VALUES (1, 'x'))")
        .await;
    s.sql("EXECUTE AS USER 'u1' (DELETE FROM c.notes WHERE id = 3)")
        .await;
    s.sql("INSERT INTO c.kv VALUES ('a', 1), ('b', 2)").await;
    s.sql("UPDATE c.kv SET v = 20 WHERE k = 'b'").await;
    let expected = snapshot(&s).await;
    assert_eq!(expected[0], json!([[1, "a"], [2, "b"]]));

    let body = s.sql("FLUSH TABLE c.notes").await;
    assert_eq!(body["status"], "success", "{body}");
    s.wait_for_exit().await;

    let s = Server::start(dir.path(), None).await;
    assert_eq!(snapshot(&s).await, expected, "rows after a crash at {step}");
    let (live, tmp) = files_on_disk(dir.path());
    assert_eq!(tmp, 0, "temporary files are removed at start-up ({step})");
    assert_eq!(
        live.to_string(),
        stat(&s, "c.notes", "parquet_files").await,
        "only manifest files remain ({step})"
    );
    let jobs = s
        .rows("SELECT status FROM system.jobs WHERE job_type = 'flush'")
        .await;
    let want = if step == "flush:after_job" {
        "completed"
    } else {
        "failed"
    };
    assert_eq!(jobs, json!([[want]]), "job outcome after a crash at {step}");

    // A clean flush afterwards moves everything and still changes no answer.
    s.sql("FLUSH ALL TABLES").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while s
        .rows("SELECT COUNT(*) FROM system.jobs WHERE status IN ('queued', 'running')")
        .await
        != json!([[0]])
    {
        assert!(Instant::now() < deadline, "flush did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        snapshot(&s).await,
        expected,
        "rows after the second flush ({step})"
    );
    assert_eq!(stat(&s, "c.notes", "hot_rows").await, "0");
    assert_eq!(stat(&s, "c.kv", "cold_rows").await, "2");
    let (live, tmp) = files_on_disk(dir.path());
    assert_eq!(
        (live, tmp),
        (
            stat(&s, "c.notes", "parquet_files")
                .await
                .parse::<usize>()
                .unwrap()
                + 1,
            0
        )
    );
}

#[tokio::test]
async fn crash_after_the_file_is_written() {
    crash_at("flush:after_write").await;
}

#[tokio::test]
async fn crash_after_the_file_is_renamed() {
    crash_at("flush:after_rename").await;
}

#[tokio::test]
async fn crash_after_the_manifest_commit_and_hot_row_removal() {
    crash_at("flush:after_commit").await;
}

#[tokio::test]
async fn crash_after_the_job_is_recorded() {
    crash_at("flush:after_job").await;
}
