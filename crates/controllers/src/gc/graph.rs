//! The garbage collector's dependency graph: every object's identity, owners and deletion
//! state, keyed by uid, with the reverse index owner uid → dependents. Pure data: updates
//! return the uids that need attention, the caller queues them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::catalog::CatalogEntry;

pub const ORPHAN: &str = "orphan";
pub const FOREGROUND: &str = "foregroundDeletion";

/// What the graph knows of one object.
#[derive(Clone, Debug)]
pub struct Node {
    pub resource: Arc<CatalogEntry>,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    pub fn from_meta(resource: Arc<CatalogEntry>, meta: &ObjectMeta) -> Option<Node> {
        Some(Node {
            resource,
            namespace: meta.namespace.clone().filter(|n| !n.is_empty()),
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        })
    }

    pub fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Being deleted in the foreground: waits for its blocking dependents.
    pub fn deleting_in_foreground(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }

    /// `kind namespace/name` for logs and events.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.resource.resource.kind, self.name),
            None => format!("{} {}", self.resource.resource.kind, self.name),
        }
    }
}

/// The graph.
#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The objects that name `uid` as an owner.
    pub fn dependents_of(&self, uid: &str) -> Vec<Node> {
        self.dependents
            .get(uid)
            .map(|set| {
                set.iter()
                    .filter_map(|d| self.nodes.get(d).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn has_dependents(&self, uid: &str) -> bool {
        self.dependents
            .get(uid)
            .is_some_and(|set| set.iter().any(|d| self.nodes.contains_key(d)))
    }

    /// Adds or replaces a node. Returns the uids to process.
    pub fn upsert(&mut self, node: Node) -> Vec<String> {
        let mut attention = Vec::new();
        let old = self.nodes.get(&node.uid).cloned();
        let old_owner_uids: HashSet<String> = old
            .as_ref()
            .map(|o| o.owners.iter().map(|r| r.uid.clone()).collect())
            .unwrap_or_default();
        let new_owner_uids: HashSet<String> = node.owners.iter().map(|r| r.uid.clone()).collect();
        for removed in old_owner_uids.difference(&new_owner_uids) {
            if let Some(set) = self.dependents.get_mut(removed) {
                set.remove(&node.uid);
                if set.is_empty() {
                    self.dependents.remove(removed);
                }
            }
            // An owner waiting for its dependents may be done now.
            attention.push(removed.clone());
        }
        for added in new_owner_uids.difference(&old_owner_uids) {
            self.dependents
                .entry(added.clone())
                .or_default()
                .insert(node.uid.clone());
        }
        let owners_changed = old.as_ref().is_none_or(|o| o.owners != node.owners);
        let deletion_changed = old
            .as_ref()
            .is_none_or(|o| o.deleting != node.deleting || o.finalizers != node.finalizers);
        if (!node.owners.is_empty() && owners_changed)
            || (node.deleting
                && (node.has_finalizer(ORPHAN) || node.has_finalizer(FOREGROUND))
                && deletion_changed)
        {
            attention.push(node.uid.clone());
        }
        if deletion_changed && node.deleting {
            // A dependent started going away: owners deleting in the foreground re-check.
            attention.extend(node.owners.iter().map(|r| r.uid.clone()));
        }
        if old.is_none() && self.dependents.contains_key(&node.uid) {
            // Dependents were seen before this owner; let them re-check (cheaply: it exists).
            attention.extend(self.dependents[&node.uid].iter().cloned());
        }
        self.nodes.insert(node.uid.clone(), node);
        attention
    }

    /// Removes a node that was deleted. Returns the uids to process: its dependents (their
    /// owner may be gone) and its owners (one may be waiting for it).
    pub fn remove(&mut self, uid: &str) -> Vec<String> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        for r in &node.owners {
            if let Some(set) = self.dependents.get_mut(&r.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&r.uid);
                }
            }
        }
        let mut attention: Vec<String> = node.owners.iter().map(|r| r.uid.clone()).collect();
        if let Some(set) = self.dependents.get(uid) {
            attention.extend(set.iter().cloned());
        }
        attention
    }

    /// The uids of the nodes of a resource (to forget them when it is no longer served).
    pub fn uids_of_resource(&self, key: &str) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.resource.key() == key)
            .map(|n| n.uid.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::discovery::ApiResource;

    fn entry(kind: &str) -> Arc<CatalogEntry> {
        Arc::new(CatalogEntry {
            resource: ApiResource {
                group: "apps".into(),
                version: "v1".into(),
                api_version: "apps/v1".into(),
                kind: kind.into(),
                plural: format!("{}s", kind.to_lowercase()),
            },
            namespaced: true,
            verbs: vec![],
        })
    }

    fn node(uid: &str, owners: &[&str]) -> Node {
        Node {
            resource: entry("ReplicaSet"),
            namespace: Some("ns".into()),
            name: format!("n-{uid}"),
            uid: uid.into(),
            owners: owners
                .iter()
                .map(|o| OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: format!("n-{o}"),
                    uid: o.to_string(),
                    ..Default::default()
                })
                .collect(),
            deleting: false,
            finalizers: vec![],
        }
    }

    #[test]
    fn indexes_dependents_and_reports_attention() {
        let mut g = Graph::default();
        assert!(g.upsert(node("owner", &[])).is_empty());
        assert_eq!(g.upsert(node("dep", &["owner"])), vec!["dep".to_string()]);
        assert_eq!(g.dependents_of("owner").len(), 1);
        assert!(g.has_dependents("owner"));
        // unchanged owners: nothing to do
        assert!(g.upsert(node("dep", &["owner"])).is_empty());
        // removing the owner flags the dependent
        let att = g.remove("owner");
        assert_eq!(att, vec!["dep".to_string()]);
        // removing the dependent flags its owner and clears the index
        let att = g.remove("dep");
        assert_eq!(att, vec!["owner".to_string()]);
        assert!(!g.has_dependents("owner"));
        assert_eq!(g.len(), 0);
    }

    #[test]
    fn owner_seen_after_dependent_rechecks_dependents() {
        let mut g = Graph::default();
        g.upsert(node("dep", &["owner"]));
        let att = g.upsert(node("owner", &[]));
        assert_eq!(att, vec!["dep".to_string()]);
    }

    #[test]
    fn deletion_with_finalizer_needs_attention() {
        let mut g = Graph::default();
        g.upsert(node("owner", &[]));
        let mut o = node("owner", &[]);
        o.deleting = true;
        o.finalizers = vec![FOREGROUND.into()];
        assert!(g.upsert(o).contains(&"owner".to_string()));
        assert!(g.get("owner").unwrap().deleting_in_foreground());
    }
}
