//! [`LiveRegistry`]: every open connection and subscription of the process, and the routing of
//! committed changes to them.
//!
//! Subscriptions are found by (table id, partition) in a map, never by scanning all of them;
//! a SHARED table's subscriptions all sit under the partition `""`, so every reader sees its
//! changes, while a USER or STREAM table's sit under their subscriber's user id, so nobody sees
//! another user's rows. [`LiveRegistry::publish`] runs on the write path, under the table's
//! write lock and after the commit: it evaluates each WHERE on the changed rows, encodes each
//! distinct payload once, and offers the messages to the connections' queues without waiting.
//!
//! May import: the ground floor, `catalog/` and the rest of `live/`. Never the shared state or
//! anything above.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use super::connection::{Connection, Outbox};
use super::event::ChangeEvent;
use super::protocol::{self, codes};
use super::subscription::{Delivery, EventCache, Subscription};
use crate::catalog::TableDef;
use crate::error::{Error, Result};
use crate::session::{Role, Session};

type Routes = HashMap<(u64, String), Vec<Arc<Subscription>>>;

/// One row of `system.live_queries`.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveQueryInfo {
    /// `<connection id>/<subscription id>`.
    pub live_id: String,
    /// The connection.
    pub connection_id: String,
    /// The subscriber.
    pub user_id: String,
    /// The table's namespace.
    pub namespace_id: String,
    /// The table.
    pub table_name: String,
    /// The SELECT.
    pub query: String,
    /// The options as JSON.
    pub options: String,
    /// Change messages delivered so far.
    pub changes: u64,
    /// ms since the Unix epoch.
    pub created_at: i64,
    /// Last change delivered (or creation), ms since the Unix epoch.
    pub updated_at: i64,
}

/// One connection in the registry and its subscriptions by the client's ids.
#[derive(Debug)]
struct Registered {
    connection: Weak<Connection>,
    subscriptions: HashMap<String, Arc<Subscription>>,
}

/// The process's connections and subscriptions (see the module docs).
#[derive(Debug)]
pub struct LiveRegistry {
    queue_capacity: usize,
    max_per_connection: usize,
    routes: RwLock<Routes>,
    by_live_id: Mutex<HashMap<String, Arc<Subscription>>>,
    connections: Mutex<HashMap<String, Registered>>,
    next_connection: AtomicU64,
}

/// A registered connection: unregisters itself and its subscriptions when dropped.
#[derive(Debug)]
pub struct LiveConnection {
    /// The connection.
    pub connection: Arc<Connection>,
    registry: Arc<LiveRegistry>,
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        self.registry.disconnect(&self.connection);
    }
}

impl LiveConnection {
    /// The registry it belongs to.
    pub fn registry(&self) -> &Arc<LiveRegistry> {
        &self.registry
    }
}

impl LiveRegistry {
    /// An empty registry: each connection queues at most `queue_capacity` messages and holds
    /// at most `max_per_connection` subscriptions.
    pub fn new(queue_capacity: usize, max_per_connection: usize) -> LiveRegistry {
        LiveRegistry {
            queue_capacity,
            max_per_connection,
            routes: RwLock::default(),
            by_live_id: Mutex::default(),
            connections: Mutex::default(),
            next_connection: AtomicU64::new(1),
        }
    }

    fn routes_read(&self) -> std::sync::RwLockReadGuard<'_, Routes> {
        self.routes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn routes_write(&self) -> std::sync::RwLockWriteGuard<'_, Routes> {
        self.routes.write().unwrap_or_else(|p| p.into_inner())
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<String, Registered>> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn by_live_id(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Subscription>>> {
        self.by_live_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `(open connections, open subscriptions)`.
    pub fn counts(&self) -> (usize, usize) {
        (self.connections().len(), self.by_live_id().len())
    }

    /// Registers a connection of `user_id` (credential version `auth_version`); returns it and
    /// its writer's side.
    pub fn connect(self: &Arc<Self>, user_id: &str, auth_version: u64) -> (LiveConnection, Outbox) {
        let n = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (c, outbox) = Connection::new(
            format!("c{n}"),
            user_id.to_string(),
            auth_version,
            self.queue_capacity,
        );
        let c = Arc::new(c);
        self.connections().insert(
            c.id.clone(),
            Registered {
                connection: Arc::downgrade(&c),
                subscriptions: HashMap::new(),
            },
        );
        (
            LiveConnection {
                connection: c,
                registry: self.clone(),
            },
            outbox,
        )
    }

    /// Checks that `connection` may open a subscription named `id`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a bad or taken id; [`Error::LimitExceeded`] over
    /// `max_subscriptions_per_connection`.
    pub fn check_new(&self, connection: &Connection, id: &str) -> Result<()> {
        if id.is_empty() || id.len() > protocol::MAX_SUBSCRIPTION_ID_BYTES {
            return Err(Error::InvalidParameter(format!(
                "subscription id must be 1 to {} bytes",
                protocol::MAX_SUBSCRIPTION_ID_BYTES
            )));
        }
        self.check_room(&self.connections(), &connection.id, id)
    }

    /// Fails when `connection_id` is gone, or `id` is taken among its subscriptions, or they
    /// are as many as allowed.
    fn check_room(
        &self,
        connections: &HashMap<String, Registered>,
        connection_id: &str,
        id: &str,
    ) -> Result<()> {
        let subs = &connections
            .get(connection_id)
            .ok_or_else(|| Error::Execution("the connection was closed".into()))?
            .subscriptions;
        if subs.contains_key(id) {
            return Err(Error::InvalidParameter(format!(
                "subscription id '{id}' is already in use on this connection"
            )));
        }
        if subs.len() >= self.max_per_connection {
            return Err(Error::LimitExceeded(format!(
                "max_subscriptions_per_connection: a connection may hold {} subscriptions",
                self.max_per_connection
            )));
        }
        Ok(())
    }

    /// True if any subscription listens to `partition` of table `table_id` (the write path
    /// builds change events only then).
    pub fn wants(&self, table_id: u64, partition: &str) -> bool {
        let routes = self.routes_read();
        !routes.is_empty() && routes.contains_key(&(table_id, partition.to_string()))
    }

    /// Adds `sub` to the routes. The caller holds the partition's write lock, so no write of the
    /// partition is between its commit and its publication.
    ///
    /// # Errors
    /// As [`LiveRegistry::check_new`] (another subscribe may have raced this one).
    pub fn register(&self, sub: Arc<Subscription>) -> Result<()> {
        {
            let mut connections = self.connections();
            self.check_room(&connections, &sub.connection.id, &sub.spec.id)?;
            if let Some(c) = connections.get_mut(&sub.connection.id) {
                c.subscriptions.insert(sub.spec.id.clone(), sub.clone());
            }
        }
        self.by_live_id().insert(sub.live_id.clone(), sub.clone());
        self.routes_write()
            .entry((sub.spec.table.id, sub.spec.partition.clone()))
            .or_default()
            .push(sub);
        Ok(())
    }

    /// Delivers a committed change to the subscriptions of its table and partition.
    pub fn publish(&self, ev: &ChangeEvent) {
        let mut ended = Vec::new();
        {
            let routes = self.routes_read();
            let Some(subs) = routes.get(&(ev.table.id, ev.partition.clone())) else {
                return;
            };
            let mut cache = EventCache::new(ev);
            for sub in subs {
                if let Delivery::End(code, message) = sub.deliver(ev, &mut cache) {
                    ended.push((sub.clone(), code, message));
                }
            }
        }
        for (sub, code, message) in ended {
            self.end(&sub, code, &message);
        }
    }

    /// Removes `sub` everywhere (and nothing else that may share its ids) and marks it ended.
    fn remove(&self, sub: &Arc<Subscription>) {
        sub.end();
        let same = |s: &Arc<Subscription>| Arc::ptr_eq(s, sub);
        {
            let mut by_id = self.by_live_id();
            if by_id.get(&sub.live_id).is_some_and(same) {
                by_id.remove(&sub.live_id);
            }
        }
        if let Some(c) = self.connections().get_mut(&sub.connection.id)
            && c.subscriptions.get(&sub.spec.id).is_some_and(same)
        {
            c.subscriptions.remove(&sub.spec.id);
        }
        let mut routes = self.routes_write();
        let key = (sub.spec.table.id, sub.spec.partition.clone());
        if let Some(list) = routes.get_mut(&key) {
            list.retain(|s| !same(s));
            if list.is_empty() {
                routes.remove(&key);
            }
        }
    }

    /// Ends `sub` with an `error` message (`code`, `message`) to its client.
    pub fn end(&self, sub: &Arc<Subscription>, code: &str, message: &str) {
        self.remove(sub);
        sub.connection
            .offer(protocol::error(Some(&sub.spec.id), code, message));
    }

    /// Removes subscription `id` of `connection` (an `unsubscribe`); false if it has none.
    pub fn unsubscribe(&self, connection: &Connection, id: &str) -> bool {
        let sub = self
            .connections()
            .get(&connection.id)
            .and_then(|c| c.subscriptions.get(id).cloned());
        match sub {
            Some(s) => {
                self.remove(&s);
                true
            }
            None => false,
        }
    }

    /// Removes a subscription whose set-up failed after it was registered.
    pub fn abandon(&self, sub: &Arc<Subscription>) {
        self.remove(sub);
    }

    /// `KILL LIVE QUERY 'live_id'`: ends the subscription with a `LIVE_QUERY_KILLED` error.
    /// A `user` may end only its own subscriptions; another user's reads as not existing.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when there is no such live query.
    pub fn kill(&self, live_id: &str, session: &Session) -> Result<()> {
        let sub = self.by_live_id().get(live_id).cloned();
        match sub {
            Some(s) if session.role >= Role::Dba || s.connection.user_id == session.user_id => {
                self.end(
                    &s,
                    codes::KILLED,
                    &format!("live query '{live_id}' was killed by '{}'", session.user_id),
                );
                Ok(())
            }
            _ => Err(Error::InvalidParameter(format!(
                "live query '{live_id}' does not exist"
            ))),
        }
    }

    fn subscriptions_of_table(&self, table_id: u64) -> Vec<Arc<Subscription>> {
        self.routes_read()
            .iter()
            .filter(|((t, _), _)| *t == table_id)
            .flat_map(|(_, subs)| subs.iter().cloned())
            .collect()
    }

    /// The table `def` was dropped: its subscriptions end with `TABLE_NOT_FOUND`.
    pub fn table_dropped(&self, def: &TableDef) {
        for sub in self.subscriptions_of_table(def.id) {
            self.end(
                &sub,
                codes::TABLE_DROPPED,
                &format!("table '{}' was dropped", def.qualified()),
            );
        }
    }

    /// The table was altered to `def`: each subscription is recompiled, and the ones it can no
    /// longer serve end with `SCHEMA_CHANGED`.
    pub fn table_altered(&self, def: &TableDef) {
        for sub in self.subscriptions_of_table(def.id) {
            if let Err(e) = sub.recompile(def) {
                self.end(
                    &sub,
                    codes::SCHEMA_CHANGED,
                    &format!(
                        "table '{}' changed: {}; subscribe again",
                        def.qualified(),
                        e.message()
                    ),
                );
            }
        }
    }

    /// The user `user_id` changed: its connections authenticated at another credential version
    /// than `current` (None: the user was dropped) end with `auth_error`.
    pub fn user_changed(&self, user_id: &str, current: Option<u64>) {
        let connections: Vec<Arc<Connection>> = self
            .connections()
            .values()
            .filter_map(|r| r.connection.upgrade())
            .filter(|c| c.user_id == user_id && Some(c.auth_version) != current)
            .collect();
        for c in connections {
            c.fail(protocol::auth_error(
                "credentials revoked: the user was dropped or its password or role changed",
            ));
        }
    }

    /// Removes a connection and all its subscriptions.
    fn disconnect(&self, connection: &Arc<Connection>) {
        connection.close();
        let registered = self.connections().remove(&connection.id);
        for s in registered
            .into_iter()
            .flat_map(|r| r.subscriptions.into_values())
        {
            self.remove(&s);
        }
    }

    /// Every open subscription, for `system.live_queries`, ordered by live id.
    pub fn list(&self) -> Vec<LiveQueryInfo> {
        let mut out: Vec<LiveQueryInfo> = self
            .by_live_id()
            .values()
            .map(|s| LiveQueryInfo {
                live_id: s.live_id.clone(),
                connection_id: s.connection.id.clone(),
                user_id: s.connection.user_id.clone(),
                namespace_id: s.spec.table.namespace.clone(),
                table_name: s.spec.table.name.clone(),
                query: s.spec.sql.clone(),
                options: serde_json::to_string(&s.spec.options).unwrap_or_default(),
                changes: s.changes(),
                created_at: s.created_at,
                updated_at: s.updated_at(),
            })
            .collect();
        out.sort_by(|a, b| a.live_id.cmp(&b.live_id));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use datafusion::logical_expr::{Expr, col, lit};

    use super::*;
    use crate::catalog::types::{FlushPolicy, SqlType, TableType};
    use crate::catalog::{ColumnDef, TableDef};
    use crate::live::connection::{Outbox, Outgoing};
    use crate::live::event::{ChangeBuilder, ChangeKind};
    use crate::live::subscription::SubscriptionSpec;

    fn table(table_type: TableType) -> Arc<TableDef> {
        let column = |id: u32, name: &str, sql_type: SqlType, primary_key: bool| ColumnDef {
            id,
            name: name.into(),
            sql_type,
            nullable: !primary_key,
            default: None,
            primary_key,
            added_in: 1,
        };
        Arc::new(TableDef {
            id: 7,
            namespace: "app".into(),
            name: "t".into(),
            table_type,
            columns: vec![
                column(1, "id", SqlType::BigInt, true),
                column(2, "v", SqlType::Text, false),
            ],
            next_column_id: 3,
            schema_version: 1,
            location: None,
            flush_policy: FlushPolicy::default(),
            ttl_seconds: None,
            buffer_size: None,
            deleted_retention_secs: None,
            storage_id: "local".into(),
            created_at: 0,
            updated_at: 0,
        })
    }

    fn subscribe(
        registry: &Arc<LiveRegistry>,
        connection: &Arc<Connection>,
        def: &Arc<TableDef>,
        id: &str,
        partition: &str,
        predicate: Option<Expr>,
    ) -> Result<Arc<Subscription>> {
        let spec = SubscriptionSpec {
            id: id.into(),
            sql: String::new(),
            options: Default::default(),
            table: def.clone(),
            partition: partition.into(),
            columns: vec!["id".into(), "v".into()],
            predicate,
        };
        let sub = Arc::new(Subscription::new(spec, connection.clone())?);
        registry.register(sub.clone())?;
        Ok(sub)
    }

    fn insert(def: &Arc<TableDef>, partition: &str, ids: &[i64]) -> ChangeEvent {
        let user: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(vec!["x"; ids.len()])),
        ];
        let rows: Vec<usize> = (0..ids.len()).collect();
        let seqs: Vec<u64> = (1..=ids.len() as u64).collect();
        let mut b = ChangeBuilder::new(ChangeKind::Insert, def.clone(), partition);
        b.add_new(&user, &rows, &seqs).unwrap();
        b.finish().unwrap().unwrap()
    }

    async fn next_message(outbox: &mut Outbox) -> serde_json::Value {
        match outbox.next().await {
            Outgoing::Message(m) => serde_json::from_str(&m).unwrap(),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn changes_reach_only_their_partition_and_matching_rows() {
        let registry = Arc::new(LiveRegistry::new(16, 16));
        let def = table(TableType::User);
        let (alice, mut alice_out) = registry.connect("alice", 0);
        let (bob, mut bob_out) = registry.connect("bob", 0);
        let a = subscribe(
            &registry,
            &alice.connection,
            &def,
            "s",
            "alice",
            Some(col("id").gt(lit(1i64))),
        )
        .unwrap();
        let b = subscribe(&registry, &bob.connection, &def, "s", "bob", None).unwrap();
        for s in [&a, &b] {
            futures::executor::block_on(s.go_live()).unwrap();
        }
        assert!(registry.wants(7, "alice") && registry.wants(7, "bob"));
        assert!(!registry.wants(7, "carol") && !registry.wants(8, "alice"));
        registry.publish(&insert(&def, "alice", &[1, 2, 3]));
        registry.publish(&insert(&def, "bob", &[9]));
        let m = next_message(&mut alice_out).await;
        assert_eq!(m["change_type"], "insert");
        let ids: Vec<i64> = m["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, vec![2, 3]);
        assert_eq!(next_message(&mut bob_out).await["rows"][0]["id"], 9);
        assert_eq!(a.changes(), 1);
        // Dropping a connection removes its subscriptions and its route.
        drop(alice);
        assert!(!registry.wants(7, "alice"));
        assert_eq!(registry.list().len(), 1);
    }

    #[tokio::test]
    async fn a_failed_duplicate_does_not_remove_the_original() {
        let registry = Arc::new(LiveRegistry::new(16, 2));
        let def = table(TableType::Shared);
        let (c, _out) = registry.connect("root", 0);
        let first = subscribe(&registry, &c.connection, &def, "s", "", None).unwrap();
        let spec = first.spec.clone();
        let dup = Arc::new(Subscription::new(spec, c.connection.clone()).unwrap());
        assert!(registry.register(dup.clone()).is_err());
        registry.abandon(&dup);
        assert_eq!(registry.list().len(), 1);
        assert!(registry.wants(7, ""));
        subscribe(&registry, &c.connection, &def, "t", "", None).unwrap();
        let third = subscribe(&registry, &c.connection, &def, "u", "", None);
        assert!(matches!(third, Err(Error::LimitExceeded(_))));
    }

    #[tokio::test]
    async fn a_full_queue_fails_the_connection_instead_of_waiting() {
        let registry = Arc::new(LiveRegistry::new(2, 16));
        let def = table(TableType::Shared);
        let (c, mut out) = registry.connect("root", 0);
        let s = subscribe(&registry, &c.connection, &def, "s", "", None).unwrap();
        futures::executor::block_on(s.go_live()).unwrap();
        for id in 0..5 {
            registry.publish(&insert(&def, "", &[id]));
        }
        assert!(c.connection.is_failed());
        match out.next().await {
            Outgoing::Last(m) => assert!(m.contains("LIMIT_EXCEEDED"), "{m}"),
            other => panic!("expected the failure first, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_equality_where_skips_events_without_its_value_and_sees_rows_leaving() {
        let registry = Arc::new(LiveRegistry::new(16, 16));
        let def = table(TableType::Shared);
        let (c, mut out) = registry.connect("root", 0);
        let s = subscribe(
            &registry,
            &c.connection,
            &def,
            "s",
            "",
            Some(col("id").eq(lit(2i64))),
        )
        .unwrap();
        futures::executor::block_on(s.go_live()).unwrap();
        registry.publish(&insert(&def, "", &[1, 3]));
        assert_eq!(s.changes(), 0);
        registry.publish(&insert(&def, "", &[2, 4]));
        let m = next_message(&mut out).await;
        assert_eq!(
            (
                m["change_type"].as_str(),
                m["rows"].as_array().map(Vec::len)
            ),
            (Some("insert"), Some(1))
        );
        // An update moving the key from 2 to 5: the old row held the value, so it is a delete.
        let user = |id: i64| -> Vec<ArrayRef> {
            vec![
                Arc::new(Int64Array::from(vec![id])),
                Arc::new(StringArray::from(vec!["x"])),
            ]
        };
        let mut b = ChangeBuilder::new(ChangeKind::Update, def.clone(), "");
        b.add_old(&user(2), &[0], &[10]).unwrap();
        b.add_new(&user(5), &[0], &[11]).unwrap();
        registry.publish(&b.finish().unwrap().unwrap());
        let m = next_message(&mut out).await;
        assert_eq!(m["change_type"], "delete", "{m}");
        assert_eq!(m["old_values"][0]["id"], 2);
        assert_eq!(s.changes(), 2);
    }
}
