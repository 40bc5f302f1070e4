//! The maintenance pass the server runs every `maintenance_interval_secs`: STREAM TTL eviction,
//! flushes whose policy is due, and purging tombstones past DELETED_RETENTION.
//!
//! May import: the ground floor, `catalog/`, `storage/`, the shared state and the job logic
//! (`jobs/`). Never `engine/mod.rs`, `query/` or the front ends.

use std::sync::Arc;

use crate::catalog::{TableDef, TableType};
use crate::error::Result;
use crate::state::Core;
use crate::storage::{Batch, CF_ROWS, codec, keys};

/// One pass as of `now_ms`; a table that fails does not stop it: every table is visited,
/// failures are logged, and the first one is returned.
///
/// # Errors
/// The first failure.
pub async fn run(core: &Arc<Core>, now_ms: i64) -> Result<()> {
    let mut first_error = evict_expired_stream_rows(core, now_ms).await.err();
    for t in core.catalog.tables(None) {
        if t.table_type == TableType::Stream {
            continue;
        }
        if let Err(e) = maintain_table(core, &t, now_ms).await {
            tracing::warn!(table = %t.qualified(), error = %e, "maintenance failed");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn maintain_table(core: &Arc<Core>, t: &Arc<TableDef>, now_ms: i64) -> Result<()> {
    if crate::jobs::flush::flush_due(core, t, now_ms)? {
        crate::jobs::start_flush(core, t.clone(), None, crate::auth::ROOT_USER)?;
    }
    let purged = crate::jobs::flush::purge_tombstones(core, t, now_ms).await?;
    if purged > 0 {
        crate::jobs::record_maintenance(core, "cleanup", t, purged)?;
    }
    Ok(())
}

/// Removes STREAM rows older than their table's TTL as of `now_ms`, across all partitions;
/// returns how many were removed. Reads already hide expired rows; this reclaims their space.
///
/// # Errors
/// Storage failures.
pub async fn evict_expired_stream_rows(core: &Core, now_ms: i64) -> Result<u64> {
    let mut removed = 0u64;
    for t in core.catalog.tables(None) {
        let (TableType::Stream, Some(ttl)) = (t.table_type, t.ttl_seconds) else {
            continue;
        };
        let cutoff = crate::ids::cutoff_seq(now_ms, ttl);
        let _guard = core.locks.table(t.id).await;
        let mut b = Batch::default();
        core.store
            .for_each_prefix(CF_ROWS, &keys::table_range(t.id).0, |k, v| {
                if codec::decode_header(v)?.seq < cutoff {
                    b.delete(&core.store, CF_ROWS, k);
                }
                Ok(true)
            })?;
        removed = removed.saturating_add(b.len() as u64);
        core.store.write(b)?;
    }
    Ok(removed)
}
