//! The DataFusion bridge's safety layer: where statements run ([`runtime`]), what a plan may do
//! ([`guard`]), UPDATE/DELETE with their exact predicate ([`dml`]), operators that always
//! yield their thread ([`coop`]), integer arithmetic that fails instead of wrapping
//! ([`checked`]), string functions that cannot build unbounded values ([`bounded`]), the
//! planning of live queries ([`live`]) and plan reuse for parameterised statements ([`plans`]).
//!
//! May import the ground floor, `catalog/`, `storage/` and `tables/`; never `engine`, `server/`
//! or the front ends.

pub mod bounded;
pub mod bridge;
pub mod catalog;
pub mod checked;
pub mod checked_sum;
pub mod coop;
pub mod dml;
pub mod guard;
pub mod live;
pub mod plans;
pub mod runtime;
