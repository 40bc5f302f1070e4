//! `_seq` and `SNOWFLAKE_ID()`: unique, strictly increasing 64-bit ids in snowflake layout
//! (SPEC section 1): `milliseconds since the Unix epoch << 22 | 22-bit counter`.
//!
//! One generator serves the whole process. Each engine raises it to the persisted high-water
//! mark at open ([`observe`]) and persists every id it hands out in the same `WriteBatch` as the
//! rows, so ids stay monotonic across restarts even if the clock steps back.
//!
//! May import: nothing of the crate (a ground-floor module).

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits of the per-millisecond counter.
pub const COUNTER_BITS: u32 = 22;

static LAST: AtomicU64 = AtomicU64::new(0);

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The next id: greater than every id returned before and than every observed one.
pub fn next_seq() -> u64 {
    let now = u64::try_from(now_millis()).unwrap_or(0) << COUNTER_BITS;
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(actual) => last = actual,
        }
    }
}

/// The last id handed out (or observed); every later [`next_seq`] is greater.
pub fn last_seq() -> u64 {
    LAST.load(Ordering::Acquire)
}

/// Raises the generator so later ids exceed `seq` (called with the persisted high-water mark).
pub fn observe(seq: u64) {
    LAST.fetch_max(seq, Ordering::AcqRel);
}

/// The smallest `_seq` a write committed at or after `now_ms - secs` seconds can have: rows
/// with a smaller `_seq` are older than `secs` (TTL, retention and flush cut-offs). Saturates
/// at 0 for windows reaching before the epoch, so no input can overflow it.
pub fn cutoff_seq(now_ms: i64, secs: u64) -> u64 {
    let window_ms = i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000);
    let cutoff_ms = u64::try_from(now_ms.saturating_sub(window_ms)).unwrap_or(0);
    cutoff_ms
        .checked_shl(COUNTER_BITS)
        .filter(|v| v >> COUNTER_BITS == cutoff_ms)
        .unwrap_or(u64::MAX)
}

/// A count as a SQL BIGINT (saturating; counts never come near 2^63).
pub fn count_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `now + timeout` (or far in the future if that overflows), for polling loops.
pub fn deadline(timeout: std::time::Duration) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(86_400 * 365)))
        .unwrap_or(now)
}

/// The commit time encoded in an id, in milliseconds since the Unix epoch (`_updated`).
pub fn seq_millis(seq: u64) -> i64 {
    as_i64(seq >> COUNTER_BITS)
}

/// `seq` as the signed BIGINT SQL shows it (`_seq`, `SNOWFLAKE_ID()`). Snowflake ids stay below
/// 2^63 until the year 2109; larger values saturate rather than turn negative.
pub fn as_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// A stored `_seq` read back from a BIGINT column (never negative when written by us; a
/// negative value reads as 0).
pub fn from_i64(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_saturate() {
        assert_eq!(cutoff_seq(10_000, 3), 7_000 << COUNTER_BITS);
        assert_eq!(cutoff_seq(10_000, u64::MAX), 0);
        assert_eq!(cutoff_seq(i64::MIN, 1), 0);
        assert_eq!(cutoff_seq(i64::MAX, 0), u64::MAX);
    }

    #[test]
    fn ids_increase_and_encode_time() {
        let before = now_millis();
        let a = next_seq();
        let b = next_seq();
        assert!(b > a);
        assert!(seq_millis(a) >= before);
        observe(b + 1000);
        assert!(next_seq() > b + 1000);
    }
}
