//! [`StatementControl`]: the state one statement shares between its deadline (in
//! `query::runtime`) and the write path (in `tables/`) — whether its write has reached the
//! commit, after which the deadline must not cut it off.
//!
//! May import: nothing of the crate (a ground-floor module).

use std::sync::atomic::{AtomicBool, Ordering};

/// Per-statement state shared with the write path (carried to DataFusion operators as a
/// session-config extension).
#[derive(Debug, Default)]
pub struct StatementControl {
    committing: AtomicBool,
}

impl StatementControl {
    /// Marks the point of no return: the statement's write is being committed and must not be
    /// cut off by its deadline any more.
    pub fn enter_commit(&self) {
        self.committing.store(true, Ordering::SeqCst);
    }

    /// True once [`StatementControl::enter_commit`] was called.
    pub fn committing(&self) -> bool {
        self.committing.load(Ordering::SeqCst)
    }
}
