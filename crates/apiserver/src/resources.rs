//! The set of resources this server serves right now: the built-in table plus resources
//! defined by established CustomResourceDefinitions, with lookups by URL segment, kind and
//! short name, and a generation counter that changes whenever the set changes (it is part of
//! the discovery and OpenAPI hashes kubectl caches by).

use std::collections::HashMap;
use std::sync::RwLock;

use berth_api::{ResourceRef, builtin_resources};

#[derive(Default)]
struct Inner {
    builtin: Vec<ResourceRef>,
    custom: Vec<ResourceRef>,
    /// Served by other means than the store (metrics.k8s.io): in discovery, not routable as
    /// stored resources.
    extra: Vec<ResourceRef>,
    by_plural: HashMap<(String, String), ResourceRef>,
    by_kind: HashMap<(String, String), ResourceRef>,
    generation: u64,
}

impl Inner {
    fn rebuild(&mut self) {
        self.by_plural.clear();
        self.by_kind.clear();
        for r in self.builtin.iter().chain(self.custom.iter()) {
            self.by_plural
                .entry((r.group.clone(), r.plural.clone()))
                .or_insert_with(|| r.clone());
            self.by_kind
                .entry((r.group.clone(), r.kind.clone()))
                .or_insert_with(|| r.clone());
        }
        self.generation += 1;
    }
}

/// The served resources.
pub struct Resources {
    inner: RwLock<Inner>,
}

impl Default for Resources {
    fn default() -> Self {
        Self::new()
    }
}

impl Resources {
    pub fn new() -> Self {
        let mut inner = Inner {
            builtin: builtin_resources(),
            ..Default::default()
        };
        inner.rebuild();
        Resources {
            inner: RwLock::new(inner),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The resource served at `/<group>/<version>/<plural>`, if that version is served.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<ResourceRef> {
        self.read()
            .by_plural
            .get(&(group.to_string(), plural.to_string()))
            .filter(|r| r.serves_version(version))
            .cloned()
    }

    pub fn by_plural(&self, group: &str, plural: &str) -> Option<ResourceRef> {
        self.read()
            .by_plural
            .get(&(group.to_string(), plural.to_string()))
            .cloned()
    }

    pub fn by_kind(&self, group: &str, kind: &str) -> Option<ResourceRef> {
        self.read()
            .by_kind
            .get(&(group.to_string(), kind.to_string()))
            .cloned()
    }

    /// Every served resource, built-in first.
    pub fn all(&self) -> Vec<ResourceRef> {
        let r = self.read();
        r.builtin
            .iter()
            .chain(r.custom.iter())
            .chain(r.extra.iter())
            .cloned()
            .collect()
    }

    /// Sets the resources served by other means than the store (for discovery).
    pub fn set_extra(&self, extra: Vec<berth_api::ResourceInfo>) {
        let mut w = self.inner.write().unwrap_or_else(|p| p.into_inner());
        w.extra = extra.into_iter().map(std::sync::Arc::new).collect();
        w.generation += 1;
    }

    /// Resources served in a group version, in discovery order.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<ResourceRef> {
        self.all()
            .into_iter()
            .filter(|r| r.group == group && r.serves_version(version))
            .collect()
    }

    /// API groups (other than the core group) with their versions, preferred first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.all() {
            if r.group.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    for v in &r.versions {
                        if !versions.contains(v) {
                            versions.push(v.clone());
                        }
                    }
                }
                None => out.push((r.group.clone(), r.versions.clone())),
            }
        }
        out
    }

    /// Replaces the set of custom resources.
    pub fn set_custom(&self, custom: Vec<ResourceRef>) {
        let mut w = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if w.custom == custom {
            return;
        }
        w.custom = custom;
        w.rebuild();
    }

    pub fn generation(&self) -> u64 {
        self.read().generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_version_plural_and_kind() {
        let r = Resources::new();
        assert!(r.lookup("apps", "v1", "deployments").is_some());
        assert!(r.lookup("apps", "v2", "deployments").is_none());
        assert!(
            r.lookup("autoscaling", "v2beta2", "horizontalpodautoscalers")
                .is_some()
        );
        assert_eq!(r.by_kind("", "Pod").unwrap().plural, "pods");
        let groups = r.groups();
        let autoscaling = groups.iter().find(|(g, _)| g == "autoscaling").unwrap();
        assert_eq!(autoscaling.1[0], "v2");
    }
}
