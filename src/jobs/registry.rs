//! Job records: the registry behind `system.jobs`, which flush is active per table, the
//! cancel flags `KILL JOB` sets, and the bounded worker pool.
//!
//! A job is a row `job/<job_id>` in the `meta` column family with the lifecycle
//! `queued → running → completed | skipped | failed | cancelled`. Jobs found `queued` or
//! `running` at start-up were interrupted by a crash and are marked `failed` (their partial
//! work is either committed per partition or invisible, see `jobs::flush`).
//!
//! May import: the ground floor, `storage/` and `catalog/` (table definitions). Never the
//! shared state (`state`), which holds the registry, nor anything above it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::catalog::TableDef;
use crate::error::{Error, Result};
use crate::storage::{CF_META, Store};

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
        self.store.put_meta(&job_key(&j.job_id), j)
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

    /// A new `queued` record of `job_type` for `def`, started by `user_id`.
    pub fn new_record(job_type: &str, def: &TableDef, user_id: &str) -> JobRecord {
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

    /// Claims the flush of table `def` for a new `queued` job started by `user_id`, unless a
    /// flush of it is already queued or running.
    ///
    /// # Errors
    /// Storage failures writing the record.
    pub fn claim_flush(&self, def: &TableDef, user_id: &str) -> Result<FlushClaim> {
        let mut active = lock(&self.active);
        if let Some(id) = active.get(&def.id) {
            return Ok(FlushClaim::Existing(id.clone()));
        }
        let record = Jobs::new_record("flush", def, user_id);
        self.put(&record)?;
        let cancel = Arc::new(AtomicBool::new(false));
        active.insert(def.id, record.job_id.clone());
        lock(&self.cancels).insert(record.job_id.clone(), cancel.clone());
        Ok(FlushClaim::New(Box::new(record), cancel))
    }

    /// The worker pool: a job runs while it holds one permit.
    pub fn pool(&self) -> Arc<Semaphore> {
        self.permits.clone()
    }

    /// Ends the claim of [`Jobs::claim_flush`] once `job_id` of table `table_id` finished.
    pub fn release_flush(&self, table_id: u64, job_id: &str) {
        lock(&self.active).remove(&table_id);
        lock(&self.cancels).remove(job_id);
    }
}

/// The outcome of [`Jobs::claim_flush`].
#[derive(Debug)]
pub enum FlushClaim {
    /// A flush of the table is already queued or running: its job id.
    Existing(String),
    /// A new queued job, and the flag `KILL JOB` sets to cancel it.
    New(Box<JobRecord>, Arc<AtomicBool>),
}
