//! DataFusion catalog glue: catalog `kalam`, one schema per namespace plus `system`.
//!
//! May import: the shared state, `catalog/` and the table providers (`tables/`). Never
//! `engine/` or the front ends.
//!
//! A [`RequestCatalog`] is registered into each statement's `SessionContext`, bound to that
//! statement's [`Session`]; every table lookup builds a provider from the catalog cache for that
//! session, so restarts need no registration and no provider can outlive a DDL change.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableProvider;

use crate::session::Session;
use crate::state::Core;
use crate::tables::KalamTable;
use crate::tables::system::{self, SystemTable};

/// Name of the DataFusion catalog.
pub const CATALOG_NAME: &str = "kalam";
/// Name of the system schema.
pub const SYSTEM_SCHEMA: &str = "system";

/// The `kalam` catalog as one session sees it.
#[derive(Debug)]
pub struct RequestCatalog {
    core: Arc<Core>,
    session: Session,
    with_system_columns: bool,
}

impl RequestCatalog {
    /// A catalog for `session`; `with_system_columns` exposes `_seq/_updated/_deleted`.
    pub fn new(core: Arc<Core>, session: Session, with_system_columns: bool) -> Self {
        RequestCatalog {
            core,
            session,
            with_system_columns,
        }
    }
}

impl CatalogProvider for RequestCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .core
            .catalog
            .namespaces()
            .into_iter()
            .map(|n| n.name)
            .collect();
        names.push(SYSTEM_SCHEMA.to_string());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SYSTEM_SCHEMA {
            return Some(Arc::new(SystemSchema {
                core: self.core.clone(),
                session: self.session.clone(),
            }));
        }
        self.core.catalog.namespace(name)?;
        Some(Arc::new(NamespaceSchema {
            core: self.core.clone(),
            session: self.session.clone(),
            namespace: name.to_string(),
            with_system_columns: self.with_system_columns,
        }))
    }
}

/// One namespace's tables.
#[derive(Debug)]
struct NamespaceSchema {
    core: Arc<Core>,
    session: Session,
    namespace: String,
    with_system_columns: bool,
}

#[async_trait]
impl SchemaProvider for NamespaceSchema {
    fn table_names(&self) -> Vec<String> {
        self.core
            .catalog
            .tables(Some(&self.namespace))
            .iter()
            .map(|t| t.name.clone())
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(def) = self.core.catalog.table(&self.namespace, name) else {
            return Ok(None);
        };
        let t = KalamTable::new(
            self.core.clone(),
            def,
            self.session.clone(),
            self.with_system_columns,
        )
        .map_err(|e| e.into_datafusion())?;
        Ok(Some(Arc::new(t)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.core.catalog.table(&self.namespace, name).is_some()
    }
}

/// The read-only `system` schema.
#[derive(Debug)]
struct SystemSchema {
    core: Arc<Core>,
    session: Session,
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        SystemTable::ALL
            .iter()
            .filter(|t| t.readable_by(self.session.role))
            .map(|t| t.name().to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(t) = SystemTable::from_name(name) else {
            return Ok(None);
        };
        system::provider(&self.core, &self.session, t)
            .map(Some)
            .map_err(|e| e.into_datafusion())
    }

    fn table_exist(&self, name: &str) -> bool {
        SystemTable::from_name(name).is_some()
    }
}
