//! Background jobs: the registry behind `system.jobs`, the bounded worker pool, and the
//! maintenance pass (flush policies, STREAM TTL eviction, tombstone retention).
//!
//! A job is a row `job/<job_id>` in the `meta` column family with the lifecycle
//! `queued → running → completed | skipped | failed | cancelled`. Jobs found `queued` or
//! `running` at start-up were interrupted by a crash and are marked `failed` (their partial
//! work is either committed per partition or invisible, see [`flush`]).

pub mod flush;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::catalog::TableDef;
use crate::engine::Core;
use crate::error::{Error, Result};
use crate::storage::{Batch, CF_META, Store};

/// Jobs that may run at once (the worker pool size).
pub const WORKERS: usize = 2;

/// One row of `system.jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Id, e.g. `flush-7529814445048987648`.
    pub job_id: String,
    /// `flush`, `cleanup`, `ttl_eviction` or `drop_table`.
    pub job_type: String,
    /// Namespace of the table.
    pub namespace_id: String,
    /// Table name.
    pub table_name: String,
    /// `queued`, `running`, `completed`, `skipped`, `failed` or `cancelled`.
    pub status: String,
    /// ms since the Unix epoch.
    pub created_at: i64,
    /// ms since the Unix epoch.
    pub started_at: Option<i64>,
    /// ms since the Unix epoch.
    pub finished_at: Option<i64>,
    /// `{"rows_flushed", "files", "bytes", "duration_ms"}` for flushes.
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    pub error_message: Option<String>,
    /// Who started it (a `user` role sees only its own jobs).
    pub user_id: String,
}

fn job_key(id: &str) -> Vec<u8> {
    format!("job/{id}").into_bytes()
}

/// The job registry and worker pool.
pub struct Jobs {
    store: Arc<Store>,
    /// table id → the queued or running flush job of that table.
    active: Mutex<HashMap<u64, String>>,
    cancels: Mutex<HashMap<String, Arc<AtomicBool>>>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jobs")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Jobs {
    /// Opens the registry; jobs left `queued`/`running` by a crash become `failed`.
    pub fn open(store: Arc<Store>) -> Result<Jobs> {
        let jobs = Jobs {
            store,
            active: Mutex::default(),
            cancels: Mutex::default(),
            permits: Arc::new(Semaphore::new(WORKERS)),
        };
        for mut j in jobs.list()? {
            if j.status == "queued" || j.status == "running" {
                j.status = "failed".into();
                j.finished_at = Some(crate::ids::now_millis());
                j.error_message = Some("interrupted by a server restart".into());
                jobs.put(&j)?;
            }
        }
        Ok(jobs)
    }

    /// Writes a job record.
    pub fn put(&self, j: &JobRecord) -> Result<()> {
        let mut b = Batch::default();
        b.put(
            &self.store,
            CF_META,
            &job_key(&j.job_id),
            &serde_json::to_vec(j)?,
        );
        self.store.write(b)
    }

    /// One job.
    pub fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        match self.store.get(CF_META, &job_key(id))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    /// Every job, oldest first (ids embed a `_seq`).
    pub fn list(&self) -> Result<Vec<JobRecord>> {
        self.store
            .scan_prefix(CF_META, b"job/")?
            .into_iter()
            .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
            .collect()
    }

    /// True while any flush job is queued or running.
    pub fn busy(&self) -> bool {
        !lock(&self.active).is_empty()
    }

    /// `KILL JOB`: a queued job is cancelled before it starts; a running flush commits no
    /// further partition (the one being written is discarded; each partition commits atomically).
    ///
    /// # Errors
    /// `INVALID_PARAMETER` for an unknown job or one that already finished.
    pub fn kill(&self, id: &str) -> Result<String> {
        let job = self
            .get(id)?
            .ok_or_else(|| Error::InvalidParameter(format!("job '{id}' does not exist")))?;
        let flag = lock(&self.cancels).get(id).cloned();
        match flag {
            Some(f) if job.status == "queued" || job.status == "running" => {
                f.store(true, Ordering::SeqCst);
                Ok(format!("Job '{id}' cancellation requested"))
            }
            _ => Err(Error::InvalidParameter(format!(
                "job '{id}' already finished with status {}",
                job.status
            ))),
        }
    }

    fn new_record(job_type: &str, def: &TableDef, user_id: &str) -> JobRecord {
        let seq = crate::ids::next_seq();
        JobRecord {
            job_id: format!("{job_type}-{seq}"),
            job_type: job_type.into(),
            namespace_id: def.namespace.clone(),
            table_name: def.name.clone(),
            status: "queued".into(),
            created_at: crate::ids::seq_millis(seq),
            started_at: None,
            finished_at: None,
            result: None,
            error_message: None,
            user_id: user_id.into(),
        }
    }
}

/// Queues a flush of `def` (only `partition` if given, else every partition), or names the
/// flush already queued or running for the table. Returns `(job_id, already_active)`.
pub fn start_flush(
    core: &Arc<Core>,
    def: Arc<TableDef>,
    partition: Option<String>,
    user_id: &str,
) -> Result<(String, bool)> {
    let mut active = lock(&core.jobs.active);
    if let Some(id) = active.get(&def.id) {
        return Ok((id.clone(), true));
    }
    let record = Jobs::new_record("flush", &def, user_id);
    core.jobs.put(&record)?;
    let id = record.job_id.clone();
    let cancel = Arc::new(AtomicBool::new(false));
    active.insert(def.id, id.clone());
    lock(&core.jobs.cancels).insert(id.clone(), cancel.clone());
    drop(active);
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
    let permit = core.jobs.permits.clone().acquire_owned().await;
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
    lock(&core.jobs.active).remove(&def.id);
    lock(&core.jobs.cancels).remove(&job.job_id);
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
