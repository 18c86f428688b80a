//! The resource catalog: which resources the API server serves, from discovery, refreshed
//! periodically so that resources of CustomResourceDefinitions created later are covered by
//! the garbage collector and the namespace controller.

use std::collections::HashMap;
use std::sync::RwLock;

use kube::Client;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};

use crate::error::{Error, Result};

/// One served resource (in its group's preferred version).
#[derive(Clone, Debug)]
pub struct CatalogEntry {
    pub resource: ApiResource,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

impl CatalogEntry {
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// A stable identity: group/plural (the version does not matter for an object's
    /// identity).
    pub fn key(&self) -> String {
        format!("{}/{}", self.resource.group, self.resource.plural)
    }
}

#[derive(Default)]
struct Catalog {
    entries: Vec<CatalogEntry>,
    by_group_kind: HashMap<(String, String), CatalogEntry>,
}

/// Discovery results shared by the controllers that need every resource.
#[derive(Default)]
pub struct ResourceCatalog {
    inner: RwLock<Catalog>,
}

impl ResourceCatalog {
    pub fn new() -> ResourceCatalog {
        ResourceCatalog::default()
    }

    /// Runs discovery and replaces the catalog.
    pub async fn refresh(&self, client: &Client) -> Result<()> {
        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .map_err(|e| Error::api("discovering the API server's resources", e))?;
        let mut catalog = Catalog::default();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                let entry = entry(ar, &caps);
                catalog.by_group_kind.insert(
                    (entry.resource.group.clone(), entry.resource.kind.clone()),
                    entry.clone(),
                );
                catalog.entries.push(entry);
            }
        }
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = catalog;
        Ok(())
    }

    /// Every served resource.
    pub fn entries(&self) -> Vec<CatalogEntry> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .clone()
    }

    /// The resource of an `apiVersion` + `kind` (any version of the group).
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<CatalogEntry> {
        let group = match api_version.split_once('/') {
            Some((g, _)) => g,
            None => "",
        };
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_group_kind
            .get(&(group.to_string(), kind.to_string()))
            .cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .is_empty()
    }
}

fn entry(ar: ApiResource, caps: &ApiCapabilities) -> CatalogEntry {
    CatalogEntry {
        namespaced: caps.scope == Scope::Namespaced,
        verbs: caps.operations.clone(),
        resource: ar,
    }
}

/// Whether an entry is an `events` resource (the garbage collector ignores them, as
/// Kubernetes does: they are many and never own anything).
pub fn is_event(entry: &CatalogEntry) -> bool {
    entry.resource.plural == "events"
        && (entry.resource.group.is_empty() || entry.resource.group == "events.k8s.io")
}

/// The verbs the garbage collector needs on a resource.
pub fn gc_can_track(entry: &CatalogEntry) -> bool {
    entry.supports(verbs::LIST)
        && entry.supports(verbs::WATCH)
        && entry.supports(verbs::DELETE)
        && !is_event(entry)
}
