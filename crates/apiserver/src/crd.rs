//! CustomResourceDefinitions: each established CRD adds a served resource (its group,
//! versions, names, scope, subresources), with its schemas for validation, pruning and
//! defaulting, its printer columns, and its scale paths. A CRD's status (accepted names,
//! `NamesAccepted`/`Established` conditions) is set by the server when it is written; when a
//! CRD is deleted its instances are removed before the CRD goes (the
//! `customresourcecleanup.apiextensions.k8s.io` finalizer), as Kubernetes does.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use berth_api::{ResourceInfo, ResourceRef, Scope, Subresource, meta};
use berth_store::ListRequest;
use serde_json::{Value, json};

use crate::state::ApiState;

pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
const CRD_PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// What the server keeps of one CRD beyond its ResourceInfo.
#[derive(Clone, Debug, Default)]
pub struct CrdDetails {
    /// Root schema per version (metadata typed as ObjectMeta).
    pub schemas: HashMap<String, Value>,
    /// additionalPrinterColumns per version.
    pub columns: HashMap<String, Vec<Value>>,
    /// `.spec.replicas`-style paths of the scale subresource.
    pub scale: Option<ScalePaths>,
}

#[derive(Clone, Debug, Default)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// The custom resources currently served, by (group, plural).
#[derive(Default)]
pub struct Crds {
    details: RwLock<HashMap<(String, String), Arc<CrdDetails>>>,
}

impl Crds {
    pub fn get(&self, group: &str, plural: &str) -> Option<Arc<CrdDetails>> {
        self.details
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(group.to_string(), plural.to_string()))
            .cloned()
    }
}

/// The schema of a custom resource's version.
pub fn schema_of(st: &ApiState, res: &ResourceInfo, version: &str) -> Option<Value> {
    st.crds
        .get(&res.group, &res.plural)?
        .schemas
        .get(version)
        .cloned()
}

/// Kubernetes' version priority: GA > beta > alpha, higher numbers first, then others by name.
fn version_priority(v: &str) -> (u8, i64, i64, String) {
    let re = |v: &str| -> Option<(i64, u8, i64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 3, 0));
        }
        for (name, rank) in [("beta", 2u8), ("alpha", 1u8)] {
            if let Some(n) = tail.strip_prefix(name) {
                let minor: i64 = n.parse().ok()?;
                return Some((major, rank, minor));
            }
        }
        None
    };
    match re(v) {
        Some((major, rank, minor)) => (3 - rank, -major, -minor, String::new()),
        None => (3, 0, 0, v.to_string()),
    }
}

/// The served resource a CRD defines, if it is well-formed.
pub fn resource_from_crd(crd: &Value) -> Option<(ResourceInfo, CrdDetails)> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let names = spec.get("names")?;
    let kind = names.get("kind")?.as_str()?.to_string();
    let plural = names.get("plural")?.as_str()?.to_string();
    let singular = names
        .get("singular")
        .and_then(|s| s.as_str())
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = names
        .get("listKind")
        .and_then(|s| s.as_str())
        .map(String::from)
        .unwrap_or_else(|| format!("{kind}List"));
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let scope = if spec.get("scope").and_then(|s| s.as_str()) == Some("Cluster") {
        Scope::Cluster
    } else {
        Scope::Namespaced
    };
    let mut versions: Vec<String> = Vec::new();
    let mut storage = None;
    let mut details = CrdDetails::default();
    let mut subresources = Vec::new();
    for v in spec.get("versions")?.as_array()? {
        let name = v.get("name")?.as_str()?.to_string();
        if v.get("served").and_then(|s| s.as_bool()) != Some(false) {
            versions.push(name.clone());
        }
        if v.get("storage").and_then(|s| s.as_bool()) == Some(true) {
            storage = Some(name.clone());
        }
        let schema = v
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            );
        details
            .schemas
            .insert(name.clone(), crate::schema::custom_root(&schema));
        if let Some(cols) = v.get("additionalPrinterColumns").and_then(|c| c.as_array()) {
            details.columns.insert(name.clone(), cols.clone());
        }
        if let Some(sub) = v.get("subresources") {
            if sub.get("status").is_some() && !subresources.contains(&Subresource::Status) {
                subresources.push(Subresource::Status);
            }
            if let Some(scale) = sub.get("scale") {
                if !subresources.contains(&Subresource::Scale) {
                    subresources.push(Subresource::Scale);
                }
                details.scale = Some(ScalePaths {
                    spec_replicas: scale
                        .get("specReplicasPath")
                        .and_then(|s| s.as_str())
                        .unwrap_or(".spec.replicas")
                        .into(),
                    status_replicas: scale
                        .get("statusReplicasPath")
                        .and_then(|s| s.as_str())
                        .unwrap_or(".status.replicas")
                        .into(),
                    label_selector: scale
                        .get("labelSelectorPath")
                        .and_then(|s| s.as_str())
                        .map(String::from),
                });
            }
        }
    }
    if versions.is_empty() {
        return None;
    }
    versions.sort_by_key(|v| version_priority(v));
    let storage = storage.unwrap_or_else(|| versions[0].clone());
    Some((
        ResourceInfo {
            group,
            versions,
            storage_version: storage,
            kind,
            list_kind,
            plural,
            singular,
            scope,
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            subresources,
            verbs: [
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            custom: true,
        },
        details,
    ))
}

/// The status the server gives a CRD: names accepted and established.
pub fn set_status(crd: &mut Value) {
    let now = crate::codec::now_rfc3339();
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let mut accepted = names.clone();
    if let Some(a) = accepted.as_object_mut() {
        if !a.contains_key("singular")
            && let Some(k) = names.get("kind").and_then(|k| k.as_str())
        {
            a.insert("singular".into(), json!(k.to_lowercase()));
        }
        if !a.contains_key("listKind")
            && let Some(k) = names.get("kind").and_then(|k| k.as_str())
        {
            a.insert("listKind".into(), json!(format!("{k}List")));
        }
    }
    let previous = crd
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    let since = |t: &str| -> String {
        previous
            .iter()
            .find(|c| c["type"] == t && c["status"] == "True")
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map(String::from)
            .unwrap_or_else(|| now.clone())
    };
    let stored: Vec<String> = crd
        .pointer("/spec/versions")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter(|v| v["storage"] == true)
                .filter_map(|v| v["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut stored_versions: Vec<String> = crd
        .pointer("/status/storedVersions")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for v in stored {
        if !stored_versions.contains(&v) {
            stored_versions.push(v);
        }
    }
    crd["status"] = json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": since("NamesAccepted"), "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": since("Established"), "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "storedVersions": stored_versions,
    });
}

/// Adds the cleanup finalizer to a new CRD.
pub fn add_cleanup_finalizer(crd: &mut Value) {
    let mut f = meta::finalizers(crd);
    if !f.iter().any(|x| x == CLEANUP_FINALIZER) {
        f.push(CLEANUP_FINALIZER.into());
        meta::metadata_mut(crd).insert("finalizers".into(), json!(f));
    }
}

/// Rebuilds the served custom resources from the CRDs in the cache.
pub fn refresh(st: &ApiState) {
    let rc = st.cache.resource(CRD_PREFIX);
    let (crds, _, _) = rc.list(CRD_PREFIX, None, 0, |_| true);
    let mut infos: Vec<ResourceRef> = Vec::new();
    let mut details = HashMap::new();
    for c in crds {
        let v = c.value();
        if let Some((info, d)) = resource_from_crd(&v) {
            let builtin_clash = st
                .resources
                .by_plural(&info.group, &info.plural)
                .is_some_and(|r| !r.custom);
            if builtin_clash {
                continue;
            }
            details.insert((info.group.clone(), info.plural.clone()), Arc::new(d));
            infos.push(Arc::new(info));
        }
    }
    infos.sort_by(|a, b| (&a.group, &a.plural).cmp(&(&b.group, &b.plural)));
    *st.crds.details.write().unwrap_or_else(|p| p.into_inner()) = details;
    st.resources.set_custom(infos);
}

/// Keeps the served custom resources in step with the CRDs, and removes the instances of
/// deleted CRDs before letting them go.
pub async fn run(st: Arc<ApiState>) {
    let rc = st.cache.resource(CRD_PREFIX);
    let mut live = rc.subscribe();
    refresh(&st);
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            m = live.recv() => {
                match m {
                    Ok(crate::cache::Live::Bookmark(_)) => continue,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
            _ = tick.tick() => {}
        }
        refresh(&st);
        cleanup_deleted(&st).await;
    }
}

async fn cleanup_deleted(st: &ApiState) {
    let rc = st.cache.resource(CRD_PREFIX);
    let (crds, _, _) = rc.list(CRD_PREFIX, None, 0, |_| true);
    for c in crds {
        let crd = c.value();
        if !meta::is_deleting(&crd)
            || !meta::finalizers(&crd)
                .iter()
                .any(|f| f == CLEANUP_FINALIZER)
        {
            continue;
        }
        let (Some(group), Some(plural)) = (
            crd.pointer("/spec/group").and_then(|v| v.as_str()),
            crd.pointer("/spec/names/plural").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let prefix = format!("/registry/{group}/{plural}/");
        let mut remaining = false;
        match st
            .store
            .list(ListRequest {
                prefix: prefix.clone(),
                ..Default::default()
            })
            .await
        {
            Ok(page) => {
                for kv in page.items {
                    if st.store.delete(&kv.key, None).await.is_err() {
                        remaining = true;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, crd = %c.name, "cannot list custom resources to remove");
                continue;
            }
        }
        if remaining {
            continue;
        }
        // Remove the finalizer; with none left the CRD goes.
        let Ok(Some(kv)) = st.store.get(&c.key).await else {
            continue;
        };
        let Ok(mut current) = crate::codec::decode_stored(&kv.value, kv.mod_revision) else {
            continue;
        };
        let f: Vec<String> = meta::finalizers(&current)
            .into_iter()
            .filter(|f| f != CLEANUP_FINALIZER)
            .collect();
        let result = if f.is_empty() {
            st.store
                .delete(&c.key, Some(kv.mod_revision))
                .await
                .map(|_| ())
        } else {
            meta::metadata_mut(&mut current).insert("finalizers".into(), json!(f));
            st.store
                .update(
                    &c.key,
                    crate::codec::encode_for_store(&current),
                    kv.mod_revision,
                )
                .await
                .map(|_| ())
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, crd = %c.name, "finalizing CRD deletion will be retried");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_become_resources() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {"group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                     "additionalPrinterColumns": [{"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"}]}]}});
        let (info, d) = resource_from_crd(&crd).unwrap();
        assert_eq!(info.versions, vec!["v1", "v1beta1"]);
        assert_eq!(info.storage_version, "v1");
        assert_eq!(info.short_names, vec!["ct"]);
        assert!(
            info.has_subresource(Subresource::Status) && info.has_subresource(Subresource::Scale)
        );
        assert_eq!(d.columns["v1"].len(), 1);
        let mut c = crd.clone();
        set_status(&mut c);
        assert_eq!(c["status"]["conditions"][1]["type"], "Established");
        assert_eq!(c["status"]["storedVersions"], json!(["v1"]));
    }

    #[test]
    fn version_priority_orders_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v2", "foo", "v1beta2", "v1", "v1beta1", "v10"];
        v.sort_by_key(|x| version_priority(x));
        assert_eq!(
            v,
            vec!["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }
}
