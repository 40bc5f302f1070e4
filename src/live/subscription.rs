//! One subscription: its compiled WHERE and projection, its phase (loading its initial data,
//! then live), and how a change event becomes its `change` message.
//!
//! The WHERE is compiled once against the table's full schema and evaluated on the changed
//! rows only; it is recompiled when an event carries another schema version, and a schema the
//! subscription can no longer serve (a selected or filtered column was dropped or renamed)
//! ends it. A change is delivered iff a row before or after the write matches.
//!
//! May import: the ground floor, `catalog/` and the rest of `live/`. Never the shared state or
//! anything above.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::datatypes::Schema;
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, Operator};
use datafusion::physical_expr::{PhysicalExpr, create_physical_expr};
use datafusion::scalar::ScalarValue;
use serde_json::Value;

use super::connection::Connection;
use super::event::{ChangeEvent, ChangeKind};
use super::protocol::{self, Frame, SubscribeOptions, codes};
use crate::catalog::{SEQ, TableDef};
use crate::error::{Error, Result};
use crate::result::json_value;

/// What a subscription is, as planned from its SELECT.
#[derive(Debug, Clone)]
pub struct SubscriptionSpec {
    /// The client's id (unique on its connection).
    pub id: String,
    /// The SELECT as sent.
    pub sql: String,
    /// The options as sent.
    pub options: SubscribeOptions,
    /// The table, as defined when the subscription was planned.
    pub table: Arc<TableDef>,
    /// The subscriber's partition: its user id for USER/STREAM tables, `""` for SHARED.
    pub partition: String,
    /// The selected columns, in order (user or system columns).
    pub columns: Vec<String>,
    /// The WHERE clause over unqualified column names (None: every row).
    pub predicate: Option<Expr>,
}

/// The spec compiled against one schema version of the table.
#[derive(Debug)]
pub struct Compiled {
    version: u32,
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// Output columns (name, position in the full schema), `_seq` last unless selected.
    /// Shared: it keys the payloads of an event.
    pub columns: Arc<[(String, usize)]>,
    pk: Option<(String, usize)>,
    seq: usize,
    /// When the WHERE is exactly `column = literal`: the column's position and the value, so
    /// an event without that value in the column is skipped without evaluating anything.
    equals: Option<(usize, ScalarValue)>,
}

/// `column = literal` (either way round) with the literal of the column's type: the column's
/// position in `schema` and the value.
fn column_equals(predicate: &Expr, schema: &Schema) -> Option<(usize, ScalarValue)> {
    let Expr::BinaryExpr(b) = predicate else {
        return None;
    };
    if b.op != Operator::Eq {
        return None;
    }
    let (column, value) = match (b.left.as_ref(), b.right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => (c, v),
        _ => return None,
    };
    let pos = schema.index_of(&column.name).ok()?;
    let field = schema.fields().get(pos)?;
    (field.data_type() == &value.data_type() && !value.is_null()).then(|| (pos, value.clone()))
}

/// What a `change` payload is made of: the output columns, the change type, the row indices.
type PayloadKey = (Arc<[(String, usize)]>, ChangeKind, Vec<u32>);

/// What one event's subscribers share: encoded payloads (subscriptions that send the same rows
/// share one encoding) and, per column, the values the event's rows hold (before and after).
#[derive(Debug)]
pub struct EventCache<'e> {
    event: &'e ChangeEvent,
    payloads: HashMap<PayloadKey, Arc<str>>,
    values: HashMap<usize, HashSet<ScalarValue>>,
}

impl<'e> EventCache<'e> {
    /// An empty cache for `event`.
    pub fn new(event: &'e ChangeEvent) -> EventCache<'e> {
        EventCache {
            event,
            payloads: HashMap::new(),
            values: HashMap::new(),
        }
    }

    /// True unless no row of the event (before or after) holds `value` in column `pos`.
    fn may_hold(&mut self, pos: usize, value: &ScalarValue) -> bool {
        let event = self.event;
        let values = self.values.entry(pos).or_insert_with(|| {
            [&event.old, &event.new]
                .into_iter()
                .flatten()
                .filter_map(|b| b.columns().get(pos))
                .flat_map(|a| (0..a.len()).filter_map(|i| ScalarValue::try_from_array(a, i).ok()))
                .collect()
        });
        values.contains(value)
    }
}

impl Compiled {
    /// Compiles `spec` against `def`.
    ///
    /// # Errors
    /// [`Error::InvalidSql`] when a selected or filtered column does not exist in `def`.
    pub fn new(def: &TableDef, spec: &SubscriptionSpec) -> Result<Compiled> {
        let full = def.arrow_schema(true);
        let position = |name: &str| {
            full.index_of(name).map_err(|_| {
                Error::InvalidSql(format!(
                    "column '{name}' no longer exists in table '{}'",
                    def.qualified()
                ))
            })
        };
        let mut columns = Vec::with_capacity(spec.columns.len().saturating_add(1));
        for name in &spec.columns {
            columns.push((name.clone(), position(name)?));
        }
        let seq = position(SEQ)?;
        if !spec.columns.iter().any(|c| c == SEQ) {
            columns.push((SEQ.to_string(), seq));
        }
        let pk = match def.columns.iter().find(|c| c.primary_key) {
            Some(c) => Some((c.name.clone(), position(&c.name)?)),
            None => None,
        };
        let filter = match &spec.predicate {
            None => None,
            Some(p) => {
                let schema = DFSchema::try_from(full.as_ref().clone())?;
                Some(
                    create_physical_expr(
                        p,
                        &schema,
                        &ExecutionProps::new(),
                        &PhysicalPlanningContext::default(),
                    )
                    .map_err(|e| {
                        Error::InvalidSql(format!(
                            "the WHERE clause no longer fits table '{}': {e}",
                            def.qualified()
                        ))
                    })?,
                )
            }
        };
        let equals = spec
            .predicate
            .as_ref()
            .and_then(|p| column_equals(p, &full));
        Ok(Compiled {
            version: def.schema_version,
            filter,
            columns: columns.into(),
            pk,
            seq,
            equals,
        })
    }

    /// Which rows of `batch` (the table's full schema) the WHERE selects (TRUE, not NULL).
    ///
    /// # Errors
    /// Evaluation errors of the WHERE clause.
    pub fn matches(&self, batch: &RecordBatch) -> Result<Vec<bool>> {
        let Some(f) = &self.filter else {
            return Ok(vec![true; batch.num_rows()]);
        };
        let v = f.evaluate(batch)?.into_array(batch.num_rows())?;
        let mask = v
            .as_boolean_opt()
            .ok_or_else(|| Error::InvalidSql("the WHERE clause is not a boolean".into()))?;
        Ok((0..batch.num_rows())
            .map(|i| mask.is_valid(i) && mask.value(i))
            .collect())
    }

    /// The `_seq` of row `row` of a full-schema batch.
    pub fn seq_of(&self, batch: &RecordBatch, row: usize) -> u64 {
        batch
            .columns()
            .get(self.seq)
            .and_then(|a| a.as_primitive_opt::<Int64Type>())
            .filter(|a| row < a.len())
            .map(|a| crate::ids::from_i64(a.value(row)))
            .unwrap_or(0)
    }

    /// Row `row` of a full-schema batch as the subscriber sees it (selected columns and `_seq`).
    pub fn row(&self, batch: &RecordBatch, row: usize) -> Value {
        protocol::row_object(batch, &self.columns, row)
    }

    /// Row `row` as an `old_values` entry of a delete: the selected columns, the primary key
    /// and `_seq`.
    pub fn deleted_row(&self, batch: &RecordBatch, row: usize) -> Value {
        let mut v = self.row(batch, row);
        if let (Value::Object(m), Some((name, pos))) = (&mut v, &self.pk)
            && !m.contains_key(name)
        {
            let cell = batch
                .columns()
                .get(*pos)
                .map(|a| json_value(a.as_ref(), row));
            m.insert(name.clone(), cell.unwrap_or(Value::Null));
        }
        v
    }

    /// Row `row` as an `old_values` entry of an update: the primary key, each selected column
    /// whose value changed, and the previous version's `_seq`.
    fn updated_row(&self, old: &RecordBatch, new: &RecordBatch, row: usize) -> Value {
        let mut m = serde_json::Map::new();
        let cell = |b: &RecordBatch, pos: usize| {
            b.columns()
                .get(pos)
                .map(|a| json_value(a.as_ref(), row))
                .unwrap_or(Value::Null)
        };
        if let Some((name, pos)) = &self.pk {
            m.insert(name.clone(), cell(old, *pos));
        }
        for (name, pos) in self.columns.iter() {
            let before = cell(old, *pos);
            if name == SEQ || before != cell(new, *pos) {
                m.insert(name.clone(), before);
            }
        }
        Value::Object(m)
    }
}

/// Where a subscription is in its life.
#[derive(Debug)]
enum Phase {
    /// Its initial data is being read and sent; changes wait here.
    Loading(Vec<Frame>),
    /// Changes go straight to the connection's queue.
    Live,
    /// Ended; nothing more is sent.
    Ended,
}

/// What delivering an event did.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered, or nothing to deliver.
    Kept,
    /// The subscription must end with this `error` code and message.
    End(&'static str, String),
}

/// One open subscription.
#[derive(Debug)]
pub struct Subscription {
    /// `<connection id>/<subscription id>`: the `live_id` of `system.live_queries`.
    pub live_id: String,
    /// What it selects.
    pub spec: SubscriptionSpec,
    /// The connection it sends to.
    pub connection: Arc<Connection>,
    compiled: Mutex<Arc<Compiled>>,
    /// The start of its `change` messages ([`protocol::change_head`]).
    change_head: Arc<str>,
    phase: Mutex<Phase>,
    changes: AtomicU64,
    /// When it was created, ms since the Unix epoch.
    pub created_at: i64,
    updated_at: AtomicI64,
}

impl Subscription {
    /// A subscription in its loading phase.
    ///
    /// # Errors
    /// As [`Compiled::new`].
    pub fn new(spec: SubscriptionSpec, connection: Arc<Connection>) -> Result<Subscription> {
        let compiled = Compiled::new(&spec.table, &spec)?;
        let now = crate::ids::now_millis();
        Ok(Subscription {
            live_id: format!("{}/{}", connection.id, spec.id),
            change_head: protocol::change_head(&spec.id).into(),
            spec,
            connection,
            compiled: Mutex::new(Arc::new(compiled)),
            phase: Mutex::new(Phase::Loading(Vec::new())),
            changes: AtomicU64::new(0),
            created_at: now,
            updated_at: AtomicI64::new(now),
        })
    }

    /// A `change` message of this subscription with `tail` ([`protocol::change_tail`]).
    pub fn change_frame(&self, tail: Arc<str>) -> Frame {
        Frame::Change {
            head: self.change_head.clone(),
            tail,
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Recompiles against `def` unless already compiled for its schema version.
    ///
    /// # Errors
    /// As [`Compiled::new`]: the subscription cannot be served by `def`.
    pub fn recompile(&self, def: &TableDef) -> Result<Arc<Compiled>> {
        let mut c = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if c.version != def.schema_version {
            *c = Arc::new(Compiled::new(def, &self.spec)?);
        }
        Ok(c.clone())
    }

    /// Change messages sent or waiting so far.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// When the last change was delivered (or the creation time), ms since the Unix epoch.
    pub fn updated_at(&self) -> i64 {
        self.updated_at.load(Ordering::Relaxed)
    }

    /// Marks it ended: nothing more is delivered.
    pub fn end(&self) {
        *self.phase() = Phase::Ended;
    }

    /// Delivers the rows of `ev` this subscription selects as `change` messages, one per run of
    /// consecutive rows of one kind (a row entering the WHERE is an insert, one leaving it a
    /// delete: docs/live-queries.md). Called by the write path under the table's lock, so it
    /// never waits.
    pub fn deliver(&self, ev: &ChangeEvent, cache: &mut EventCache<'_>) -> Delivery {
        match self.try_deliver(ev, cache) {
            Ok(d) => d,
            Err(e) => Delivery::End(
                codes::SCHEMA_CHANGED,
                format!("the subscription can no longer be served: {}", e.message()),
            ),
        }
    }

    fn try_deliver(&self, ev: &ChangeEvent, cache: &mut EventCache<'_>) -> Result<Delivery> {
        let c = self.recompile(&ev.table)?;
        if let Some((pos, value)) = &c.equals
            && !cache.may_hold(*pos, value)
        {
            return Ok(Delivery::Kept);
        }
        let mask = |b: &Option<RecordBatch>| -> Result<Vec<bool>> {
            match b {
                Some(b) => c.matches(b),
                None => Ok(Vec::new()),
            }
        };
        let (old_mask, new_mask) = (mask(&ev.old)?, mask(&ev.new)?);
        let n = old_mask.len().max(new_mask.len());
        // Runs of consecutive rows (so `_seq` order holds across messages) of one kind as the
        // subscriber sees it: an update whose row enters the WHERE is an insert, one whose row
        // leaves it a delete.
        let mut runs: Vec<(ChangeKind, Vec<u32>)> = Vec::new();
        for i in 0..n {
            let before = old_mask.get(i).copied().unwrap_or(false);
            let after = new_mask.get(i).copied().unwrap_or(false);
            let kind = match (before, after) {
                (true, true) => ChangeKind::Update,
                (false, true) => ChangeKind::Insert,
                (true, false) => ChangeKind::Delete,
                (false, false) => continue,
            };
            let Ok(row) = u32::try_from(i) else { break };
            match runs.last_mut() {
                Some((k, rows)) if *k == kind => rows.push(row),
                _ => runs.push((kind, vec![row])),
            }
        }
        for (kind, rows) in runs {
            let key = (c.columns.clone(), kind, rows);
            let tail = match cache.payloads.get(&key) {
                Some(t) => t.clone(),
                None => {
                    let t: Arc<str> = encode_tail(&c, ev, kind, &key.2).into();
                    cache.payloads.insert(key, t.clone());
                    t
                }
            };
            if let Delivery::End(code, message) = self.enqueue(self.change_frame(tail))? {
                return Ok(Delivery::End(code, message));
            }
        }
        Ok(Delivery::Kept)
    }

    fn enqueue(&self, message: Frame) -> Result<Delivery> {
        let mut phase = self.phase();
        match &mut *phase {
            Phase::Loading(waiting) => {
                if waiting.len() >= self.connection.capacity() {
                    *phase = Phase::Ended;
                    return Ok(Delivery::End(
                        codes::LIMIT_EXCEEDED,
                        format!(
                            "live_queue_messages: more than {} changes arrived while the initial data was sent",
                            self.connection.capacity()
                        ),
                    ));
                }
                waiting.push(message);
            }
            Phase::Live => {
                drop(phase);
                // A full queue fails the whole connection (the slow-client rule).
                self.connection.offer(message);
            }
            Phase::Ended => return Ok(Delivery::Kept),
        }
        self.changes.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::changes_delivered(1);
        self.updated_at
            .store(crate::ids::now_millis(), Ordering::Relaxed);
        Ok(Delivery::Kept)
    }

    /// Ends the loading phase: sends the changes that arrived meanwhile, then lets changes
    /// flow straight to the queue. The subscription was registered under the table's write
    /// lock in the same hold that opened its initial-data snapshot, so the waiting changes are
    /// exactly those committed after that snapshot: none is also in the initial data.
    ///
    /// # Errors
    /// When the connection closed or the subscription ended meanwhile.
    pub async fn go_live(&self) -> Result<()> {
        loop {
            let waiting = {
                let mut phase = self.phase();
                match &mut *phase {
                    Phase::Loading(w) if w.is_empty() => {
                        *phase = Phase::Live;
                        return Ok(());
                    }
                    Phase::Loading(w) => std::mem::take(w),
                    Phase::Live => return Ok(()),
                    Phase::Ended => {
                        return Err(Error::Execution("the subscription has ended".into()));
                    }
                }
            };
            for message in waiting {
                self.connection.send(message).await?;
            }
        }
    }
}

/// The `change` tail of `ev`'s rows `rows`, sent to a subscriber as `kind`, as `c` selects
/// them. A delete of an update (the row left the WHERE) carries the values the subscriber had,
/// under the update's `_seq`.
fn encode_tail(c: &Compiled, ev: &ChangeEvent, kind: ChangeKind, rows: &[u32]) -> String {
    let each = |b: &Option<RecordBatch>, f: &dyn Fn(&RecordBatch, usize) -> Value| -> Vec<Value> {
        match b {
            Some(b) => rows.iter().map(|&r| f(b, r as usize)).collect(),
            None => Vec::new(),
        }
    };
    let new = each(&ev.new, &|b, r| c.row(b, r));
    match kind {
        ChangeKind::Insert => protocol::change_tail(kind.as_str(), Some(&new), None),
        ChangeKind::Delete => {
            let mut old = each(&ev.old, &|b, r| c.deleted_row(b, r));
            if let Some(n) = &ev.new {
                for (v, &r) in old.iter_mut().zip(rows) {
                    if let Value::Object(m) = v {
                        m.insert(SEQ.to_string(), protocol::seq_json(c.seq_of(n, r as usize)));
                    }
                }
            }
            protocol::change_tail(kind.as_str(), None, Some(&old))
        }
        ChangeKind::Update => {
            let old = match (&ev.old, &ev.new) {
                (Some(o), Some(n)) => rows
                    .iter()
                    .map(|&r| c.updated_row(o, n, r as usize))
                    .collect(),
                _ => Vec::new(),
            };
            protocol::change_tail(kind.as_str(), Some(&new), Some(&old))
        }
    }
}
