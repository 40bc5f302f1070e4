//! Plan reuse for parameterised statements: the logical plan of a statement sent with
//! `params` (`WHERE id = $1`) is kept, keyed by its text and everything planning read from the
//! session, and later runs with other parameter values skip parsing, the guard's AST check,
//! the rewrites and SQL-to-plan.
//!
//! What is kept is the plan as `statement_to_plan` returns it, placeholders unbound and not yet
//! analyzed or optimized: analysis, optimization (which folds `now()` to the statement's start
//! time) and physical planning (which turns `pk = 5` into a point read) run per statement on
//! the bound plan, so a reused plan behaves exactly as a fresh one. The guard's plan
//! classification runs per statement too.
//!
//! A plan is kept only when every table it reads or writes is a KalamDB table (not a system or
//! `information_schema` table, whose providers hold rows read while planning) and is reused
//! only while each of those tables' definitions is still the catalog's current one (any DDL
//! replaces a definition). Keys hold the user, role, default namespace and whether system
//! columns are visible, so no plan crosses sessions that would plan it differently. Bounded:
//! [`MAX_PLANS`] plans of statements of at most [`MAX_SQL_BYTES`] bytes, least recently used
//! evicted.
//!
//! May import: the ground floor, `catalog/` and `tables/`.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{LogicalPlan, TableSource};
use lru::LruCache;

use crate::catalog::{Catalog, TableDef};
use crate::session::{Role, Session};
use crate::tables::KalamTable;

/// How many plans are kept.
pub const MAX_PLANS: usize = 256;
/// Longest statement whose plan is kept, bytes.
pub const MAX_SQL_BYTES: usize = 2048;

/// What planning a statement read besides the catalog: plans are reused only under an equal key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlanKey {
    sql: Box<str>,
    user_id: Box<str>,
    role: Role,
    namespace: Option<Box<str>>,
    with_system_columns: bool,
}

impl PlanKey {
    /// The key of `sql` planned for `session`, or None when its plan is not kept (no
    /// parameters, or longer than [`MAX_SQL_BYTES`]).
    pub fn new(
        sql: &str,
        session: &Session,
        has_params: bool,
        with_system_columns: bool,
    ) -> Option<PlanKey> {
        (has_params && sql.len() <= MAX_SQL_BYTES).then(|| PlanKey {
            sql: sql.into(),
            user_id: session.user_id.as_str().into(),
            role: session.role,
            namespace: session.namespace.as_deref().map(Into::into),
            with_system_columns,
        })
    }
}

struct Entry {
    plan: LogicalPlan,
    /// The definitions of the tables the plan names, as they were when it was planned.
    tables: Vec<Arc<TableDef>>,
}

/// The plan cache of one engine (see the module docs).
pub struct PlanCache {
    entries: Mutex<LruCache<PlanKey, Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for PlanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (hits, misses) = self.stats();
        f.debug_struct("PlanCache")
            .field("hits", &hits)
            .field("misses", &misses)
            .finish()
    }
}

impl Default for PlanCache {
    fn default() -> Self {
        PlanCache {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(MAX_PLANS).unwrap_or(NonZeroUsize::MIN),
            )),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

impl PlanCache {
    /// The plan kept under `key` if every table it names still has the definition it was
    /// planned with in `catalog` (a stale plan is dropped).
    pub fn get(&self, key: &PlanKey, catalog: &Catalog) -> Option<LogicalPlan> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let current = entries.get(key).map(|e| {
            e.tables.iter().all(|def| {
                catalog
                    .table(&def.namespace, &def.name)
                    .is_some_and(|now| Arc::ptr_eq(&now, def))
            })
        });
        let plan = match current {
            Some(true) => entries.get(key).map(|e| e.plan.clone()),
            Some(false) => {
                entries.pop(key);
                None
            }
            None => None,
        };
        let counter = if plan.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        plan
    }

    /// Keeps `plan` under `key` when every table it reads or writes is a KalamDB table.
    pub fn insert(&self, key: PlanKey, plan: &LogicalPlan) {
        let Some(tables) = kalam_tables(plan) else {
            return;
        };
        let entry = Entry {
            plan: plan.clone(),
            tables,
        };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.put(key, entry);
    }

    /// How many plans are kept now (at most [`MAX_PLANS`]).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no plan is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(hits, misses)` of [`PlanCache::get`] since the engine opened.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// The definitions of the tables `plan` scans or writes (subqueries included), or None when
/// one of them is not a [`KalamTable`].
fn kalam_tables(plan: &LogicalPlan) -> Option<Vec<Arc<TableDef>>> {
    let def_of = |source: &Arc<dyn TableSource>| {
        let provider = source_as_provider(source).ok()?;
        let table = provider.downcast_ref::<KalamTable>()?;
        Some(table.def().clone())
    };
    let mut tables = Vec::new();
    let mut all_kalam = true;
    let walked = plan.apply_with_subqueries(|node| {
        let source = match node {
            LogicalPlan::TableScan(scan) => Some(&scan.source),
            LogicalPlan::Dml(dml) => Some(&dml.target),
            _ => None,
        };
        if let Some(source) = source {
            match def_of(source) {
                Some(def) => tables.push(def),
                None => {
                    all_kalam = false;
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    (walked.is_ok() && all_kalam).then_some(tables)
}
