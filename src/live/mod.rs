//! Live queries (SPEC section 7): subscriptions to `SELECT … FROM ns.t [WHERE …]` that receive
//! every committed change to the rows they select, over a WebSocket.
//!
//! - [`event`]: the [`ChangeEvent`] the write path publishes after each commit.
//! - [`registry`]: the [`LiveRegistry`] of connections and subscriptions, routing events by
//!   table and partition.
//! - [`subscription`]: one subscription's compiled WHERE, its phases, its `change` messages.
//! - [`connection`]: one connection's bounded send queue and failure signal.
//! - [`protocol`]: the JSON messages of both directions.
//!
//! This folder is the routing core and sits below the shared state (which holds the registry),
//! as the job records do, so the write path can hand it changes without importing upward.
//! Planning a subscription's SELECT (`query/live.rs`) and reading its initial data
//! (`engine/live.rs`, `tables/scan.rs`) happen above; the WebSocket itself is `server/ws.rs`.
//! Nothing here knows about sockets or SQL text.
//!
//! May import: the ground floor and `catalog/`. Never `storage/`, the shared state, `tables/`,
//! `query/`, `engine/` or the front ends.

pub mod connection;
pub mod event;
pub mod protocol;
pub mod registry;
pub mod subscription;

pub use connection::{Connection, Outbox, Outgoing};
pub use event::{ChangeBuilder, ChangeEvent, ChangeKind};
pub use registry::{LiveConnection, LiveQueryInfo, LiveRegistry};
pub use subscription::{Subscription, SubscriptionSpec};
