//! The shared state of one open data directory ([`Core`]): the RocksDB store, the catalog, the
//! users and their login tokens, the job registry, the live-query registry, the cold store, the
//! configuration, and the per-table write locks.
//! Everything above it (table providers, jobs, the query bridge, the engine) holds an
//! `Arc<Core>`.
//!
//! May import: the ground floor (`config`, `error`, `ids`, `session`), `storage/`, `catalog/`,
//! `auth/`, the job records (`jobs::registry`) and the live-query registry (`live/`). Never the
//! table providers, the job logic, `query/`, `engine/` or the front ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::auth::Users;
use crate::auth::token::Tokens;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::jobs::registry::Jobs;
use crate::live::LiveRegistry;
use crate::storage::cold::ColdStore;
use crate::storage::{Batch, CF_META, Store};

const SEQ_HWM_KEY: &[u8] = b"ctr/seq_hwm";

/// The shared state of one open data directory (see the module docs).
pub struct Core {
    /// RocksDB.
    pub(crate) store: Arc<Store>,
    /// Namespaces and tables.
    pub(crate) catalog: Catalog,
    /// Users.
    pub(crate) users: Users,
    /// Login tokens (signing and checking).
    pub(crate) tokens: Tokens,
    /// Live-query connections and subscriptions; the write path publishes changes to it.
    pub(crate) live: Arc<LiveRegistry>,
    /// The configuration the engine was opened with.
    pub(crate) config: Config,
    /// When this data directory was first opened (ms since the Unix epoch).
    pub(crate) created_at: i64,
    /// The cold tier (Parquet files under `<data_dir>/storage`).
    pub(crate) cold: ColdStore,
    /// Background jobs (`system.jobs`).
    pub(crate) jobs: Jobs,
    /// Hot rows inserted per (table id, partition) since its last flush, for the ROWS policy;
    /// counted from storage on first use after start-up.
    pub(crate) hot_counts: Mutex<HashMap<(u64, String), u64>>,
    locks: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("data_dir", &self.config.data_dir)
            .finish()
    }
}

impl Core {
    /// The write lock of one table, held across a write's read-check-write and a whole flush
    /// (an async lock: it is held across cold-file reads).
    pub(crate) fn table_lock(&self, table_id: u64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(table_id).or_default().clone()
    }

    /// Adds the `_seq` high-water mark to a write batch (monotonicity across restarts).
    pub(crate) fn record_seq(&self, b: &mut Batch, seq: u64) {
        b.put(&self.store, CF_META, SEQ_HWM_KEY, &seq.to_le_bytes());
    }

    /// The base directory of the `local` storage (`<data_dir>/storage`).
    pub(crate) fn storage_base(&self) -> PathBuf {
        self.config.data_dir.join("storage")
    }
}

impl Core {
    /// Opens (or creates) the state in `config.data_dir`: RocksDB (raising the `_seq` generator
    /// to the persisted high-water mark), the catalog, the users (bootstrapping `root`), the cold
    /// store and the job registry.
    ///
    /// # Errors
    /// [`Error::Internal`] when the directory cannot be opened (e.g. locked by another process)
    /// or a stored record is unreadable.
    pub fn open(config: Config) -> Result<Core> {
        let store = Arc::new(Store::open(
            &config.data_dir.join("rocksdb"),
            config.sync_writes,
        )?);
        if let Some(v) = store.get(CF_META, SEQ_HWM_KEY)? {
            let hwm = u64::from_le_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| Error::Internal("bad _seq high-water mark".into()))?,
            );
            crate::ids::observe(hwm);
        }
        let created_at = match store.get(CF_META, b"ctr/created_at")? {
            Some(v) => i64::from_le_bytes(v.as_slice().try_into().unwrap_or([0; 8])),
            None => {
                let now = crate::ids::now_millis();
                let mut b = Batch::default();
                b.put(&store, CF_META, b"ctr/created_at", &now.to_le_bytes());
                store.write(b)?;
                now
            }
        };
        let catalog = Catalog::load(store.clone())?;
        let users = Users::open(store.clone(), config.root_password.as_deref())?;
        let tokens = Tokens::open(&store, config.jwt_secret.as_deref(), config.jwt_expiry_secs)?;
        let live = Arc::new(LiveRegistry::new(
            config.live_queue_messages,
            config.max_subscriptions_per_connection,
        ));
        let cold = ColdStore::local(&config.data_dir.join("storage"))?;
        let jobs = Jobs::open(store.clone())?;
        Ok(Core {
            store,
            catalog,
            users,
            tokens,
            live,
            config,
            created_at,
            cold,
            jobs,
            hot_counts: Mutex::default(),
            locks: Mutex::default(),
        })
    }
}
