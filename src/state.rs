//! The shared state of one open data directory ([`Core`]): the RocksDB store, the catalog, the
//! users and their login tokens, the job registry, the live-query registry, the cold store, the
//! configuration, and the write locks ([`crate::locks`]).
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
use crate::error::Result;
use crate::jobs::registry::Jobs;
use crate::live::LiveRegistry;
use crate::locks::WriteLocks;
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
    /// The write locks of tables and their partitions.
    pub(crate) locks: WriteLocks,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("data_dir", &self.config.data_dir)
            .finish()
    }
}

impl Core {
    /// Adds the `_seq` high-water mark to a write batch (monotonicity across restarts).
    pub(crate) fn record_seq(&self, b: &mut Batch, seq: u64) {
        // Writers of different partitions commit concurrently, not in `_seq` order: the
        // mark keeps the largest.
        b.put_max_u64(&self.store, SEQ_HWM_KEY, seq);
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
    /// [`crate::error::Error::Internal`] when the directory cannot be opened (e.g. locked by another process)
    /// or a stored record is unreadable.
    pub fn open(config: Config) -> Result<Core> {
        let store = Arc::new(Store::open(
            &config.data_dir.join("rocksdb"),
            config.sync_writes,
        )?);
        if let Some(hwm) = store.get_u64(SEQ_HWM_KEY)? {
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
            locks: WriteLocks::default(),
        })
    }
}
