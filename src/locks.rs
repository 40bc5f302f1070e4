//! Write locks: one per partition of a table, under one per table.
//!
//! A write's read-check-write (primary-key uniqueness, `_seq` order of a partition's change
//! events), a flush's commit of one file and a live query's registration with its initial read
//! hold their partition's lock ([`WriteLocks::partition`]); writers of other partitions of the
//! same table — other users of a USER table — go on in parallel. Work on a whole table (DROP
//! TABLE, tombstone purge, STREAM eviction) holds the table's lock exclusively
//! ([`WriteLocks::table`]), which waits for every partition holder and keeps new ones out.
//! A SHARED or STREAM table's rows are one partition (`""`), so its writers serialise as before.
//!
//! Nobody holds two partition locks at once, so partition locks cannot deadlock each other;
//! the table lock is always taken before a partition lock.
//!
//! May import: the ground floor only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard, OwnedRwLockReadGuard, RwLock};

/// Entries of the partition map below which dead entries are not swept.
const MIN_SWEEP: usize = 1024;

/// The write locks of one open data directory (see the module docs).
#[derive(Debug)]
pub struct WriteLocks {
    tables: Mutex<HashMap<u64, Arc<RwLock<()>>>>,
    partitions: Mutex<Partitions>,
}

/// Partition locks by `(table id, partition)`, held weakly: a partition nobody is writing
/// costs a map entry until the next sweep, not a lock.
#[derive(Debug)]
struct Partitions {
    locks: HashMap<(u64, Box<str>), Weak<AsyncMutex<()>>>,
    /// Sweep dead entries once the map reaches this size (then twice the live count).
    sweep_at: usize,
}

/// Holds one partition's write lock (and a shared hold on its table's lock) until dropped.
#[derive(Debug)]
pub struct PartitionGuard {
    _partition: OwnedMutexGuard<()>,
    _table: OwnedRwLockReadGuard<()>,
}

/// Holds one table's lock exclusively until dropped.
pub type TableGuard = tokio::sync::OwnedRwLockWriteGuard<()>;

impl Default for WriteLocks {
    fn default() -> Self {
        WriteLocks {
            tables: Mutex::default(),
            partitions: Mutex::new(Partitions {
                locks: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }
}

impl WriteLocks {
    fn table_lock(&self, table_id: u64) -> Arc<RwLock<()>> {
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        tables.entry(table_id).or_default().clone()
    }

    fn partition_lock(&self, table_id: u64, partition: &str) -> Arc<AsyncMutex<()>> {
        let mut p = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        let key = (table_id, Box::<str>::from(partition));
        if let Some(lock) = p.locks.get(&key).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(AsyncMutex::new(()));
        p.locks.insert(key, Arc::downgrade(&lock));
        if p.locks.len() >= p.sweep_at {
            p.locks.retain(|_, l| l.strong_count() > 0);
            p.sweep_at = p.locks.len().saturating_mul(2).max(MIN_SWEEP);
        }
        lock
    }

    /// Waits for the write lock of `partition` of table `table_id` (after a shared hold on the
    /// table's lock, so no whole-table holder is active meanwhile).
    pub async fn partition(&self, table_id: u64, partition: &str) -> PartitionGuard {
        let table = self.table_lock(table_id).read_owned().await;
        let partition = self.partition_lock(table_id, partition).lock_owned().await;
        PartitionGuard {
            _partition: partition,
            _table: table,
        }
    }

    /// Waits until no partition of table `table_id` is held, then holds the whole table.
    /// Tokio's lock is fair: partition holders arriving meanwhile queue behind it.
    pub async fn table(&self, table_id: u64) -> TableGuard {
        self.table_lock(table_id).write_owned().await
    }

    /// How many partition locks the map still names (live or not yet swept); for tests.
    #[cfg(test)]
    fn partition_entries(&self) -> usize {
        let p = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        p.locks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    /// `f`'s output if it finishes without waiting (a zero timeout polls it once).
    async fn ready<F: std::future::Future>(f: F) -> Option<F::Output> {
        timeout(Duration::ZERO, f).await.ok()
    }

    #[tokio::test]
    async fn partitions_of_one_table_are_independent_and_the_table_lock_excludes_them() {
        let locks = WriteLocks::default();
        let u1 = locks.partition(7, "u1").await;
        // Another partition of the same table, and the same partition of another table: free.
        assert!(ready(locks.partition(7, "u2")).await.is_some());
        assert!(ready(locks.partition(8, "u1")).await.is_some());
        // The same partition: held.
        assert!(ready(locks.partition(7, "u1")).await.is_none());
        // The whole table waits for u1's holder, and is free once it is gone.
        assert!(ready(locks.table(7)).await.is_none());
        drop(u1);
        let whole = ready(locks.table(7)).await.expect("table lock free");
        assert!(ready(locks.partition(7, "u3")).await.is_none());
        assert!(ready(locks.partition(8, "u3")).await.is_some());
        drop(whole);
        assert!(ready(locks.partition(7, "u3")).await.is_some());
    }

    #[tokio::test]
    async fn unused_partition_locks_are_swept() {
        let locks = WriteLocks::default();
        let held = locks.partition(1, "kept").await;
        for i in 0..(3 * MIN_SWEEP) {
            drop(locks.partition(1, &format!("user{i}")).await);
        }
        assert!(
            locks.partition_entries() <= MIN_SWEEP,
            "{} entries",
            locks.partition_entries()
        );
        // The held lock survived every sweep: its partition is still exclusive.
        assert!(ready(locks.partition(1, "kept")).await.is_none());
        drop(held);
        assert!(ready(locks.partition(1, "kept")).await.is_some());
    }
}
