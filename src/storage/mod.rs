//! The hot tier and the metadata store: one RocksDB instance under `<data_dir>/rocksdb`.
//!
//! Two column families, created once at open (never per statement):
//! - `meta`: catalog records (namespaces, tables, schema versions, users, storages, counters), JSON.
//! - `rows`: every table's rows, compact binary (see [`codec`]), keyed by
//!   `table_id (u64 BE) | partition | 0x00 | row key` (see [`keys`]).
//!
//! A whole statement is written with one `WriteBatch`, so a multi-row INSERT lands fully or not
//! at all (SPEC section 3 item 3). The WAL is always on; `sync_writes` adds an fsync per batch.
//!
//! May import: the ground floor. Never `catalog/`, `auth/` or anything above.

pub mod codec;
pub mod cold;
pub mod hot;
pub mod keys;

use std::path::Path;

use rocksdb::{
    ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, ReadOptions, Snapshot,
    WriteBatch, WriteOptions,
};

use crate::error::{Error, Result};

/// Name of the metadata column family.
pub const CF_META: &str = "meta";
/// Name of the row column family.
pub const CF_ROWS: &str = "rows";

/// The RocksDB instance with KalamDB's column families.
pub struct Store {
    db: DB,
    sync_writes: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .finish()
    }
}

/// One stored `(key, value)` pair.
pub type KeyValue = (Box<[u8]>, Box<[u8]>);

/// A set of writes applied atomically by [`Store::write`].
#[derive(Default)]
pub struct Batch {
    inner: WriteBatch,
}

impl Batch {
    /// Puts `value` under `key` in column family `cf` ([`CF_META`] or [`CF_ROWS`]).
    pub fn put(&mut self, store: &Store, cf: &str, key: &[u8], value: &[u8]) {
        if let Some(h) = store.db.cf_handle(cf) {
            self.inner.put_cf(h, key, value);
        }
    }

    /// Raises the little-endian `u64` under `key` in [`CF_META`] to at least `value`: batches
    /// committed in any order leave the largest value (a RocksDB merge operator of `meta`).
    pub fn put_max_u64(&mut self, store: &Store, key: &[u8], value: u64) {
        if let Some(h) = store.db.cf_handle(CF_META) {
            self.inner.merge_cf(h, key, value.to_le_bytes());
        }
    }

    /// Deletes `key` in column family `cf`.
    pub fn delete(&mut self, store: &Store, cf: &str, key: &[u8]) {
        if let Some(h) = store.db.cf_handle(cf) {
            self.inner.delete_cf(h, key);
        }
    }

    /// Deletes every key in `[from, to)` in column family `cf`.
    pub fn delete_range(&mut self, store: &Store, cf: &str, from: &[u8], to: &[u8]) {
        if let Some(h) = store.db.cf_handle(cf) {
            self.inner.delete_range_cf(h, from, to);
        }
    }

    /// Number of operations in the batch.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl Store {
    /// Opens (or creates) the RocksDB instance at `path`.
    ///
    /// # Errors
    /// [`Error::Internal`] when RocksDB cannot open the directory (e.g. held by another process).
    pub fn open(path: &Path, sync_writes: bool) -> Result<Store> {
        std::fs::create_dir_all(path)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let mut meta = Options::default();
        meta.set_merge_operator_associative("kalamdb_max_u64", max_u64_merge);
        let cfs = [
            ColumnFamilyDescriptor::new(CF_META, meta),
            ColumnFamilyDescriptor::new(CF_ROWS, Options::default()),
        ];
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Store { db, sync_writes })
    }

    /// Reads a little-endian `u64` written by [`Batch::put_max_u64`] (or a plain put).
    ///
    /// # Errors
    /// [`Error::Internal`] when the stored value is not 8 bytes; storage failures.
    pub fn get_u64(&self, key: &[u8]) -> Result<Option<u64>> {
        self.get(CF_META, key)?
            .map(|v| {
                v.as_slice()
                    .try_into()
                    .map(u64::from_le_bytes)
                    .map_err(|_| Error::Internal(format!("bad u64 under {key:?}")))
            })
            .transpose()
    }

    /// Applies `batch` atomically; durable against a process crash once this returns
    /// (and against power loss with `sync_writes`).
    pub fn write(&self, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync_writes);
        let write = || self.db.write_opt(batch.inner, &wo);
        // With `sync_writes`, the write waits for an fsync. On a multi-thread runtime's worker
        // that wait is announced (`block_in_place`), so the worker's other tasks move on and
        // writers arriving meanwhile join RocksDB's next write group: one fsync commits them
        // all (group commit) instead of each waiting behind the last.
        let on_worker = self.sync_writes
            && tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if on_worker {
            tokio::task::block_in_place(write)?;
        } else {
            write()?;
        }
        Ok(())
    }

    /// Writes one metadata record (`value` as JSON under `key` in [`CF_META`]) on its own,
    /// with the durability of [`Store::write`].
    ///
    /// # Errors
    /// Serialization or storage failures.
    pub fn put_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<()> {
        let mut b = Batch::default();
        b.put(self, CF_META, key, &serde_json::to_vec(value)?);
        self.write(b)
    }

    /// Reads one key.
    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_at(None, cf, key)
    }

    fn read_opts(snapshot: Option<&Snapshot<'_>>) -> ReadOptions {
        let mut ro = ReadOptions::default();
        if let Some(s) = snapshot {
            ro.set_snapshot(s);
        }
        ro
    }

    fn get_at(
        &self,
        snapshot: Option<&Snapshot<'_>>,
        cf: &str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let h = self.cf(cf)?;
        Ok(self.db.get_cf_opt(h, key, &Self::read_opts(snapshot))?)
    }

    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Vec<KeyValue>> {
        let mut out = Vec::new();
        self.for_each_prefix(cf, prefix, |k, v| {
            out.push((k.into(), v.into()));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Calls `f(key, value)` for every key starting with `prefix`, in key order. `f` returns
    /// `Ok(false)` to stop early; its first error stops the scan and is returned.
    pub fn for_each_prefix(
        &self,
        cf: &str,
        prefix: &[u8],
        f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.for_each_prefix_at(None, cf, prefix, f)
    }

    /// Calls `f(key, value)` for every key of `cf` from `from` to `to` (both included), in key
    /// order: one sequential walk, much cheaper than a [`Store::get`] per key of a sorted run.
    /// `f` returns `Ok(false)` to stop early; its first error stops the walk and is returned.
    pub fn for_each_between(
        &self,
        cf: &str,
        from: &[u8],
        to: &[u8],
        f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.walk(None, cf, from, |k| k <= to, f)
    }

    fn for_each_prefix_at(
        &self,
        snapshot: Option<&Snapshot<'_>>,
        cf: &str,
        prefix: &[u8],
        f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.walk(snapshot, cf, prefix, |k| k.starts_with(prefix), f)
    }

    /// Calls `f(key, value)` for the keys of `cf` from `from` on, in key order, while `within`
    /// holds and `f` returns `Ok(true)`.
    fn walk(
        &self,
        snapshot: Option<&Snapshot<'_>>,
        cf: &str,
        from: &[u8],
        within: impl Fn(&[u8]) -> bool,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let h = self.cf(cf)?;
        let iter = self.db.iterator_cf_opt(
            h,
            Self::read_opts(snapshot),
            IteratorMode::From(from, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !within(&k) || !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    /// A consistent point-in-time view across both column families (a RocksDB snapshot), so a
    /// reader sees hot rows, manifest and deletion vectors as of one instant.
    pub fn view(&self) -> View<'_> {
        View {
            store: self,
            snapshot: self.db.snapshot(),
        }
    }

    /// Compacts the keys of `cf` in `[from, to)` (RocksDB's `CompactRange`, memtable first):
    /// the deletes of rows a flush moved to the cold tier are dropped, so later scans of the
    /// range no longer step over them one by one. Blocks for the compaction.
    ///
    /// # Errors
    /// [`Error::Internal`] for an unknown column family.
    pub fn compact_range(&self, cf: &str, from: &[u8], to: &[u8]) -> Result<()> {
        self.db.compact_range_cf(self.cf(cf)?, Some(from), Some(to));
        Ok(())
    }

    /// Flushes the WAL to disk (graceful shutdown).
    pub fn flush_wal(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    pub(crate) fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::Internal(format!("missing column family {name}")))
    }
}

/// A snapshot of the store; see [`Store::view`].
pub struct View<'a> {
    store: &'a Store,
    snapshot: Snapshot<'a>,
}

impl View<'_> {
    /// Reads one key as of the snapshot.
    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.store.get_at(Some(&self.snapshot), cf, key)
    }

    /// [`Store::for_each_prefix`] as of the snapshot.
    pub fn for_each_prefix(
        &self,
        cf: &str,
        prefix: &[u8],
        f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.store
            .for_each_prefix_at(Some(&self.snapshot), cf, prefix, f)
    }
}
/// The merge of [`Batch::put_max_u64`]: the largest of the stored value and the operands, each
/// a little-endian `u64` (values of another length count as 0, so the merge never fails).
fn max_u64_merge(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &rocksdb::MergeOperands,
) -> Option<Vec<u8>> {
    let read = |v: &[u8]| <[u8; 8]>::try_from(v).map(u64::from_le_bytes).unwrap_or(0);
    let max = existing
        .into_iter()
        .chain(operands)
        .map(read)
        .max()
        .unwrap_or(0);
    Some(max.to_le_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_max_u64_keeps_the_largest_value_in_any_commit_order_and_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = b"ctr/test";
        {
            let store = Store::open(dir.path(), false).unwrap();
            assert_eq!(store.get_u64(key).unwrap(), None);
            // A plain put of an older format, then merges committed out of order.
            store.put_meta_raw(key, &7u64.to_le_bytes());
            for v in [40u64, 12, 39, 5] {
                let mut b = Batch::default();
                b.put_max_u64(&store, key, v);
                store.write(b).unwrap();
            }
            assert_eq!(store.get_u64(key).unwrap(), Some(40));
            let mut b = Batch::default();
            b.put_max_u64(&store, key, u64::MAX);
            b.put_max_u64(&store, key, 1);
            store.write(b).unwrap();
            assert_eq!(store.get_u64(key).unwrap(), Some(u64::MAX));
        }
        let store = Store::open(dir.path(), false).unwrap();
        assert_eq!(store.get_u64(key).unwrap(), Some(u64::MAX));
        store.put_meta_raw(b"ctr/short", b"abc");
        assert!(store.get_u64(b"ctr/short").is_err());
    }

    /// A synced write works on every kind of thread: outside a runtime, on a current-thread
    /// runtime (where announcing a blocking wait would panic) and on multi-thread workers
    /// (announced, so concurrent writers can share an fsync).
    #[test]
    fn synced_writes_commit_from_any_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(dir.path(), true).unwrap());
        let write = |store: &Store, n: u64| {
            let mut b = Batch::default();
            b.put_max_u64(store, b"ctr/n", n);
            store.write(b).unwrap();
        };
        write(&store, 1);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async { write(&store, 2) });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let tasks: Vec<_> = (3..=40u64)
                .map(|n| {
                    let store = store.clone();
                    tokio::spawn(async move { write(&store, n) })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        assert_eq!(store.get_u64(b"ctr/n").unwrap(), Some(40));
    }

    impl Store {
        fn put_meta_raw(&self, key: &[u8], value: &[u8]) {
            let mut b = Batch::default();
            b.put(self, CF_META, key, value);
            self.write(b).unwrap();
        }
    }
}
