//! The DataFusion bridge's safety layer: where statements run ([`runtime`]), what a plan may do
//! ([`guard`]), and UPDATE/DELETE with their exact predicate ([`dml`]).
//!
//! May import the ground floor, `catalog/`, `storage/` and `tables/`; never `engine`, `server/`
//! or the front ends.

pub mod dml;
pub mod guard;
pub mod runtime;
