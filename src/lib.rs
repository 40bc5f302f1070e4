//! KalamDB: a SQL-first realtime database. Rows land in RocksDB (the hot tier), queries run
//! through Apache DataFusion, and every front end (HTTP, CLI, tests) goes through
//! [`Engine::execute`]. See `../shared/SPEC.md` for the contract and `docs/` for decisions.
//!
//! Layers, bottom up (each file imports only files below it; `cargo xtask layers` checks there
//! is no cycle): the ground floor (`error`, `ids`, `config`, `control`, `session`, `result`,
//! `functions`, `catalog::types`); `sql/`; `storage/`; `catalog/`, `auth/` and the live-query
//! routing core (`live/`); `state`; `jobs/`; `tables/`; `query/`; `engine/`; the front ends
//! (`server/`, `client`, `slt`, `process`, `torture`).
//! See `docs/architecture.md`.
//!
//! This root owns only the module list, the re-exports and the crate-wide lints; it imports
//! nothing itself.

#![deny(missing_docs)]
// No input may panic the server (issue #6): outside tests, no unwrap/expect/panic, no indexing
// that can go out of bounds, no overflowing arithmetic and no lossy `as` casts anywhere in the
// crate. Use `get`, `checked_*`/`saturating_*` and `try_from` instead.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_possible_wrap
    )
)]

pub mod auth;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod config;
pub mod control;
pub mod engine;
pub mod error;
pub mod functions;
pub mod ids;
pub mod jobs;
pub mod live;
pub mod locks;
pub mod process;
pub mod query;
pub mod result;
pub mod server;
pub mod session;
pub mod slt;
pub mod sql;
pub mod state;
pub mod storage;
pub mod tables;
pub mod telemetry;
pub mod torture;

pub use config::Config;
pub use engine::Engine;
pub use error::{Error, Result};
pub use result::QueryResult;
pub use session::{Role, Session};
