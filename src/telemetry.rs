//! Server metrics for `GET /metrics` (Prometheus text format 0.0.4), recorded through the
//! `metrics` facade into `metrics-exporter-prometheus`'s recorder, installed once per process.
//!
//! Counters and histograms are recorded where things happen (each function below names its
//! series); per-table figures and live-query gauges are computed when scraped (the engine's
//! `metrics_text`), so a dropped table leaves no stale series. Durations are seconds, as
//! Prometheus' conventions ask (<https://prometheus.io/docs/practices/naming/>).
//!
//! May import: nothing of the crate (ground floor).

use std::fmt::Write as _;
use std::sync::OnceLock;

use metrics::{counter, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets, seconds: 0.1 ms to 10 s.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle). None when
/// another recorder was installed first (then nothing is recorded here).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// `kalamdb_http_requests_total{route, status}` and `kalamdb_http_request_duration_seconds{route}`:
/// one HTTP request answered. `route` is the matched route template (`unmatched` otherwise).
pub fn http_request(route: &str, status: u16, seconds: f64) {
    let route = route.to_string();
    counter!("kalamdb_http_requests_total", "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    histogram!("kalamdb_http_request_duration_seconds", "route" => route).record(seconds);
}

/// The kind label of a statement: its first keyword when it is one of `select`, `insert`,
/// `update`, `delete` (`with`, `values` and `explain` count as `select`), else `other` (DDL,
/// administration).
pub fn statement_kind(sql: &str) -> &'static str {
    let sql = sql.trim_start();
    let end = sql
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(sql.len());
    let word = sql.get(..end).unwrap_or_default();
    let is = |w: &str| word.eq_ignore_ascii_case(w);
    if is("select") || is("with") || is("values") || is("explain") {
        "select"
    } else if is("insert") {
        "insert"
    } else if is("update") {
        "update"
    } else if is("delete") {
        "delete"
    } else {
        "other"
    }
}

/// `kalamdb_statements_total{kind, outcome}` and `kalamdb_statement_duration_seconds{kind}`;
/// with `rows`, also `kalamdb_rows_written_total{kind}` (insert/update/delete) or
/// `kalamdb_rows_returned_total` (select).
pub fn statement(kind: &'static str, ok: bool, seconds: f64, rows: Option<u64>) {
    let outcome = if ok { "ok" } else { "error" };
    counter!("kalamdb_statements_total", "kind" => kind, "outcome" => outcome).increment(1);
    histogram!("kalamdb_statement_duration_seconds", "kind" => kind).record(seconds);
    match (kind, rows) {
        ("insert" | "update" | "delete", Some(n)) => {
            counter!("kalamdb_rows_written_total", "kind" => kind).increment(n);
        }
        ("select", Some(n)) => counter!("kalamdb_rows_returned_total").increment(n),
        _ => {}
    }
}

/// `kalamdb_flush_jobs_total{status}` and `kalamdb_flush_duration_seconds`, plus
/// `kalamdb_flushed_rows_total`: one flush job ended.
pub fn flush_job(status: &str, seconds: f64, rows: u64) {
    counter!("kalamdb_flush_jobs_total", "status" => status.to_string()).increment(1);
    histogram!("kalamdb_flush_duration_seconds").record(seconds);
    counter!("kalamdb_flushed_rows_total").increment(rows);
}

/// `kalamdb_live_changes_delivered_total`: change messages queued for live-query clients.
pub fn changes_delivered(n: u64) {
    counter!("kalamdb_live_changes_delivered_total").increment(n);
}

/// `kalamdb_live_clients_dropped_total`: connections closed because they fell
/// `live_queue_messages` behind.
pub fn client_dropped() {
    counter!("kalamdb_live_clients_dropped_total").increment(1);
}

/// Per-table storage figures, rendered as gauges by [`render`].
#[derive(Debug, Clone, Default)]
pub struct TableFigures {
    /// Namespace of the table.
    pub namespace: String,
    /// Table name.
    pub table: String,
    /// Live hot rows (tombstones excluded).
    pub hot_rows: u64,
    /// Live cold rows.
    pub cold_rows: u64,
    /// Parquet files.
    pub cold_files: u64,
    /// Bytes of those files.
    pub cold_bytes: u64,
}

/// Figures computed at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Open WebSocket connections.
    pub connections: u64,
    /// Open subscriptions.
    pub subscriptions: u64,
    /// Statements running now.
    pub running_statements: u64,
    /// One entry per table.
    pub tables: Vec<TableFigures>,
}

/// A per-table gauge: name, help text, and its value for one table.
type PerTableGauge = (&'static str, &'static str, fn(&TableFigures) -> u64);

/// The Prometheus text of every recorded series followed by `now`'s gauges.
pub fn render(now: &Snapshot) -> String {
    let mut out = install().map(PrometheusHandle::render).unwrap_or_default();
    let mut gauge = |name: &str, help: &str, values: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in values {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    gauge(
        "kalamdb_live_connections",
        "Open WebSocket connections.",
        &[(String::new(), now.connections)],
    );
    gauge(
        "kalamdb_live_subscriptions",
        "Open live-query subscriptions.",
        &[(String::new(), now.subscriptions)],
    );
    gauge(
        "kalamdb_running_statements",
        "Statements executing now.",
        &[(String::new(), now.running_statements)],
    );
    let per_table: [PerTableGauge; 4] = [
        (
            "kalamdb_table_hot_rows",
            "Live rows in the hot tier (RocksDB).",
            |t| t.hot_rows,
        ),
        (
            "kalamdb_table_cold_rows",
            "Live rows in the cold tier (Parquet).",
            |t| t.cold_rows,
        ),
        (
            "kalamdb_table_cold_files",
            "Parquet files of the table.",
            |t| t.cold_files,
        ),
        (
            "kalamdb_table_cold_bytes",
            "Bytes of the table's Parquet files.",
            |t| t.cold_bytes,
        ),
    ];
    for (name, help, value) in per_table {
        let values: Vec<(String, u64)> = now
            .tables
            .iter()
            .map(|t| {
                let labels = format!(
                    "{{namespace=\"{}\",table=\"{}\"}}",
                    escape(&t.namespace),
                    escape(&t.table)
                );
                (labels, value(t))
            })
            .collect();
        gauge(name, help, &values);
    }
    out
}

/// A label value escaped per the text format (`\`, `"` and newlines).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_labelled_by_their_first_keyword() {
        assert_eq!(statement_kind("  SELECT 1"), "select");
        assert_eq!(
            statement_kind("with x as (select 1) select * from x"),
            "select"
        );
        assert_eq!(statement_kind("Insert into t values (1)"), "insert");
        assert_eq!(statement_kind("UPDATE t SET a = 1"), "update");
        assert_eq!(statement_kind("delete from t"), "delete");
        assert_eq!(statement_kind("CREATE TABLE t (id INT)"), "other");
        assert_eq!(statement_kind(""), "other");
        assert_eq!(statement_kind("selectx"), "other");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
