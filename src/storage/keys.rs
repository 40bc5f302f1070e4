//! Key layout of the `rows` column family.
//!
//! `table_id: u64 BE | partition bytes | 0x00 | row key`
//!
//! - partition: the user id for USER and STREAM tables, empty for SHARED tables (user ids never
//!   contain NUL, so the separator is unambiguous and one partition is one contiguous prefix).
//! - row key: the encoded PRIMARY KEY value, or for tables without one the hidden identity (the
//!   `_seq` of the row's first insert, u64 BE); for STREAM tables the row's `_seq` (append order).
//!
//! Table ids are never reused, so dropping a table is one range delete over its id.
//!
//! May import: nothing of the crate.

/// `table_id | partition | 0x00`: the prefix of one partition.
pub fn partition_prefix(table_id: u64, partition: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(partition.len().saturating_add(25));
    k.extend_from_slice(&table_id.to_be_bytes());
    k.extend_from_slice(partition.as_bytes());
    k.push(0);
    k
}

/// `[prefix, end)` of one partition: every row key under `partition_prefix(table_id,
/// partition)` (the end replaces the trailing `0x00` separator by `0x01`).
pub fn partition_range(table_id: u64, partition: &str) -> (Vec<u8>, Vec<u8>) {
    let start = partition_prefix(table_id, partition);
    let mut end = start.clone();
    if let Some(last) = end.last_mut() {
        *last = 1;
    }
    (start, end)
}

/// `[table_id, table_id + 1)` as byte keys: every row of the table.
pub fn table_range(table_id: u64) -> (Vec<u8>, Vec<u8>) {
    (
        table_id.to_be_bytes().to_vec(),
        // Table ids come from a counter starting at 1 and never reach u64::MAX.
        table_id.saturating_add(1).to_be_bytes().to_vec(),
    )
}

/// Appends a signed integer so that byte order equals numeric order.
pub fn push_i64(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(&(v.cast_unsigned() ^ (1 << 63)).to_be_bytes());
}

/// Appends a `u64` big-endian (identity and stream keys).
pub fn push_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

/// The partition of a full row key, given the table's prefix length (8 bytes).
pub fn split_partition(key: &[u8]) -> Option<(&str, &[u8])> {
    let rest = key.get(8..)?;
    let nul = rest.iter().position(|b| *b == 0)?;
    let part = std::str::from_utf8(rest.get(..nul)?).ok()?;
    Some((part, rest.get(nul.checked_add(1)?..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_sort_numerically() {
        let enc = |v: i64| {
            let mut b = Vec::new();
            push_i64(&mut b, v);
            b
        };
        assert!(enc(-5) < enc(-1));
        assert!(enc(-1) < enc(0));
        assert!(enc(0) < enc(7));
        assert!(enc(7) < enc(i64::MAX));
    }

    #[test]
    fn partitions_do_not_overlap() {
        let a = partition_prefix(1, "al");
        let b = partition_prefix(1, "alice");
        assert!(!b.starts_with(&a));
        let mut key = b.clone();
        key.extend_from_slice(b"k");
        assert_eq!(split_partition(&key), Some(("alice", &b"k"[..])));
        let (from, to) = table_range(1);
        assert!(key.as_slice() >= from.as_slice() && key.as_slice() < to.as_slice());
    }
}
