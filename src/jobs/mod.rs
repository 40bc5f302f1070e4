//! Background jobs: starting and running flushes on the worker pool, and recording the
//! maintenance pass's cleanups. The records themselves live in [`registry`]; the flush itself
//! in [`flush`].
//!
//! May import: the shared state (`state`) and everything below it, and `storage/` for the
//! hot-tier decoding. Never the table providers, `query/`, `engine/` or the front ends.

pub mod flush;
pub mod registry;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::catalog::TableDef;
use crate::error::Result;
use crate::state::Core;
use registry::{FlushClaim, JobRecord, Jobs};

/// Queues a flush of `def` (only `partition` if given, else every partition), or names the
/// flush already queued or running for the table. Returns `(job_id, already_active)`.
pub fn start_flush(
    core: &Arc<Core>,
    def: Arc<TableDef>,
    partition: Option<String>,
    user_id: &str,
) -> Result<(String, bool)> {
    let (record, cancel) = match core.jobs.claim_flush(&def, user_id)? {
        FlushClaim::Existing(id) => return Ok((id, true)),
        FlushClaim::New(record, cancel) => (*record, cancel),
    };
    let id = record.job_id.clone();
    let core = core.clone();
    tokio::spawn(async move { run_flush(core, def, partition, record, cancel).await });
    Ok((id, false))
}

async fn run_flush(
    core: Arc<Core>,
    def: Arc<TableDef>,
    partition: Option<String>,
    mut job: JobRecord,
    cancel: Arc<AtomicBool>,
) {
    let permit = core.jobs.pool().acquire_owned().await;
    let started = std::time::Instant::now();
    if cancel.load(Ordering::SeqCst) || permit.is_err() {
        job.status = "cancelled".into();
    } else {
        job.status = "running".into();
        job.started_at = Some(crate::ids::now_millis());
        let _ = core.jobs.put(&job);
        match flush::flush_table(&core, &def, partition.as_deref(), &cancel).await {
            Ok(stats) => {
                job.status = if stats.cancelled {
                    "cancelled"
                } else if stats.rows == 0 {
                    "skipped"
                } else {
                    "completed"
                }
                .into();
                job.result = Some(serde_json::json!({
                    "rows_flushed": stats.rows,
                    "files": stats.files,
                    "bytes": stats.bytes,
                    "duration_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                }));
            }
            Err(e) => {
                tracing::warn!(job = %job.job_id, error = %e, "flush failed");
                job.status = "failed".into();
                job.error_message = Some(e.message());
            }
        }
    }
    job.finished_at = Some(crate::ids::now_millis());
    if let Err(e) = core.jobs.put(&job) {
        tracing::warn!(job = %job.job_id, error = %e, "cannot record job outcome");
    }
    let rows = job
        .result
        .as_ref()
        .and_then(|r| r["rows_flushed"].as_u64())
        .unwrap_or(0);
    crate::telemetry::flush_job(&job.status, started.elapsed().as_secs_f64(), rows);
    core.jobs.release_flush(def.id, &job.job_id);
    crate::storage::cold::failpoint("flush:after_job");
}

/// Records a finished maintenance job (`cleanup`, `ttl_eviction`) that changed something.
pub fn record_maintenance(core: &Core, job_type: &str, def: &TableDef, rows: u64) -> Result<()> {
    let mut job = Jobs::new_record(job_type, def, crate::auth::ROOT_USER);
    let now = crate::ids::now_millis();
    job.status = "completed".into();
    job.started_at = Some(now);
    job.finished_at = Some(now);
    job.result = Some(serde_json::json!({ "rows_removed": rows }));
    core.jobs.put(&job)
}
