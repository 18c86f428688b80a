//! ControllerRevisions: the template history the DaemonSet and StatefulSet controllers keep,
//! one `apps/v1 ControllerRevision` per distinct pod template, so `kubectl rollout
//! history|undo daemonset|statefulset` work as on Kubernetes.
//!
//! - A revision is named `<owner>-<hash>` (the owner's name cut to 223 characters, as
//!   Kubernetes does, so the name stays valid), labelled with the owner's template labels
//!   and selector labels (so `kubectl`, which lists revisions by the owner's selector, finds
//!   it) plus `controller-revision-hash: <hash>`, annotated with the owner's annotations (the
//!   `kubernetes.io/change-cause` that `rollout history` shows) and controlled by the owner.
//! - Its `data` is what Kubernetes stores for both kinds: the strategic merge patch
//!   `{"spec":{"template":{…,"$patch":"replace"}}}` with the keys sorted as Go marshals a
//!   map, and with the two empty values Go's encoding always writes in a pod template
//!   (`metadata.creationTimestamp: null`, a container's `resources: {}`): kubectl compares
//!   a revision's data byte for byte with the same encoding of the live object to skip an
//!   undo to the current template. `rollout undo` sends the data back as the patch;
//!   `rollout history --revision=N` applies it to print the template.
//! - The revision whose data equals the owner's template is the current one; when the
//!   template returns to an earlier revision's (an undo) that revision is renumbered to one
//!   more than the highest instead of a new object being made. A name taken by a revision
//!   of other content is a hash collision: `status.collisionCount` is bumped and the hash
//!   recomputed, as for Deployments' ReplicaSets.
//! - Orphans matching the selector are adopted (as the Deployment controller adopts
//!   ReplicaSets); revisions beyond `revisionHistoryLimit` that no live pod uses are deleted,
//!   oldest first.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::deployment::template_hash;
use crate::error::{Error, Result, has_code};
use crate::pods::{adopt, controller_ref, controller_uid, selector_string};

/// The label carrying a revision's hash (on revisions, DaemonSet pods and — with the
/// revision's name as value — StatefulSet pods).
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// How long the owner part of a revision name may be (Kubernetes' ControllerRevisionName).
const MAX_PREFIX: usize = 223;

/// How many names to try when hashes collide before giving up until the next reconcile.
const MAX_COLLISIONS: usize = 5;

/// What can own revisions: a namespaced workload object (DaemonSet, StatefulSet).
pub trait RevisionOwner:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
{
}

impl<K> RevisionOwner for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
{
}

/// An owner's revisions after [`sync`]: the one matching its template and the others.
#[derive(Debug)]
pub struct History {
    pub current: ControllerRevision,
    pub old: Vec<ControllerRevision>,
}

impl History {
    /// The current revision's hash.
    pub fn hash(&self) -> String {
        revision_hash(&self.current)
    }

    /// The revision named `name`, current or old.
    pub fn find(&self, name: &str) -> Option<&ControllerRevision> {
        std::iter::once(&self.current)
            .chain(self.old.iter())
            .find(|r| r.metadata.name.as_deref() == Some(name))
    }
}

/// Keys sorted at every level, as Go's encoding/json writes a map.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted(v)))
                    .collect::<Map<String, Value>>(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Adds the empty values Go's encoding/json writes for a pod template's non-pointer structs
/// (the object metadata's timestamp, each container's resources).
fn go_shape(template: &mut Map<String, Value>) {
    if let Value::Object(meta) = template.entry("metadata").or_insert_with(|| json!({})) {
        meta.entry("creationTimestamp").or_insert(Value::Null);
    }
    let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            c.entry("resources").or_insert_with(|| json!({}));
        }
    }
}

/// The data Kubernetes stores in a DaemonSet's or StatefulSet's revision: a strategic merge
/// patch that puts `template` back wholesale.
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        go_shape(m);
        m.insert("$patch".into(), json!("replace"));
    }
    sorted(json!({"spec": {"template": t}}))
}

/// The pod template a revision restores; errors name the revision.
pub fn revision_template(cr: &ControllerRevision) -> Result<PodTemplateSpec> {
    let who = format!("controllerrevision {}", cr.name_any());
    let mut t = cr
        .data
        .as_ref()
        .and_then(|d| d.0.pointer("/spec/template"))
        .cloned()
        .ok_or_else(|| Error::invalid(&who, "data", "has no spec.template"))?;
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).map_err(|e| Error::invalid(&who, "data.spec.template", e.to_string()))
}

/// A revision's hash: its `controller-revision-hash` label, else its name after the last `-`.
pub fn revision_hash(cr: &ControllerRevision) -> String {
    if let Some(h) = cr
        .labels()
        .get(REVISION_HASH_LABEL)
        .filter(|h| !h.is_empty())
    {
        return h.clone();
    }
    let name = cr.name_any();
    name.rsplit_once('-')
        .map(|(_, h)| h.to_string())
        .unwrap_or(name)
}

/// `<owner>-<hash>` with the owner part cut to Kubernetes' limit.
pub fn revision_name(owner: &str, hash: &str) -> String {
    let mut end = owner.len().min(MAX_PREFIX);
    while !owner.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &owner[..end])
}

fn has_data(cr: &ControllerRevision, data: &Value) -> bool {
    cr.data.as_ref().is_some_and(|d| d.0 == *data)
}

/// The owner facts a history needs.
pub struct Owner<'a> {
    pub selector: &'a LabelSelector,
    pub template: &'a PodTemplateSpec,
    pub collision_count: i32,
}

/// Finds, adopts, creates or renumbers `owner`'s revisions so that exactly one current
/// revision matches its template and carries the highest revision number.
pub async fn sync<K>(client: &Client, owner: &K, facts: &Owner<'_>) -> Result<History>
where
    K: RevisionOwner,
{
    let ns = owner.namespace().unwrap_or_default();
    let name = owner.name_any();
    let uid = owner.uid().unwrap_or_default();
    let who = format!("{} {ns}/{name}", K::kind(&()).to_lowercase());
    let selector = selector_string(&who, Some(facts.selector))?;
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let mut mine = Vec::new();
    for cr in api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Error::api(format!("listing the revisions of {who}"), e))?
        .items
    {
        if cr.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match controller_uid(&cr.metadata) {
            Some(u) if u == uid => mine.push(cr),
            None if adopt(&api, &cr, owner).await? => mine.push(cr),
            _ => {}
        }
    }
    let data = revision_data(facts.template);
    let (mut matching, old): (Vec<_>, Vec<_>) = mine.into_iter().partition(|r| has_data(r, &data));
    let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
    // Several revisions of one template (a race in an earlier life): the newest is current,
    // the others are history like any other.
    matching.sort_by_key(|r| r.revision);
    let (current, old) = match matching.pop() {
        Some(cur) => {
            let mut old = old;
            old.extend(matching);
            let cur = if cur.revision < next {
                renumber(&api, &cur, next).await?
            } else {
                cur
            };
            (cur, old)
        }
        None => {
            let cur = create(client, &api, owner, facts, &data, next).await?;
            (cur, old)
        }
    };
    Ok(History { current, old })
}

async fn renumber(
    api: &Api<ControllerRevision>,
    cr: &ControllerRevision,
    revision: i64,
) -> Result<ControllerRevision> {
    let patch =
        json!({"metadata": {"resourceVersion": cr.resource_version()}, "revision": revision});
    api.patch(
        &cr.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|e| Error::api(format!("renumbering revision {}", cr.name_any()), e))
}

async fn create<K>(
    client: &Client,
    api: &Api<ControllerRevision>,
    owner: &K,
    facts: &Owner<'_>,
    data: &Value,
    revision: i64,
) -> Result<ControllerRevision>
where
    K: RevisionOwner,
{
    let ns = owner.namespace().unwrap_or_default();
    let owner_name = owner.name_any();
    let mut collision = facts.collision_count.max(0);
    for _ in 0..MAX_COLLISIONS {
        let hash = template_hash(facts.template, collision);
        let mut labels: BTreeMap<String, String> = facts
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.extend(facts.selector.match_labels.clone().unwrap_or_default());
        labels.insert(REVISION_HASH_LABEL.into(), hash.clone());
        let annotations = owner.annotations().clone();
        let cr = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(revision_name(&owner_name, &hash)),
                namespace: Some(ns.clone()),
                labels: Some(labels),
                annotations: (!annotations.is_empty()).then_some(annotations),
                owner_references: Some(vec![controller_ref(owner)]),
                ..Default::default()
            },
            data: Some(RawExtension(data.clone())),
            revision,
        };
        match api.create(&PostParams::default(), &cr).await {
            Ok(created) => return Ok(created),
            Err(e) if has_code(&e, 409) => {
                // Ours with this template already (a stale list): that is the current one.
                if let Some(existing) = api
                    .get_opt(&cr.name_any())
                    .await
                    .map_err(|e| Error::api(format!("reading revision {}", cr.name_any()), e))?
                    && controller_uid(&existing.metadata) == owner.uid().as_deref()
                    && has_data(&existing, data)
                {
                    return Ok(existing);
                }
                collision += 1;
                let owners: Api<K> = Api::namespaced(client.clone(), &ns);
                match owners
                    .patch_status(
                        &owner_name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": {"collisionCount": collision}})),
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(e) if has_code(&e, 404) => {}
                    Err(e) => {
                        return Err(Error::api(
                            format!("recording a revision hash collision of {owner_name}"),
                            e,
                        ));
                    }
                }
            }
            Err(e) => {
                return Err(Error::api(
                    format!("creating a revision of {owner_name}"),
                    e,
                ));
            }
        }
    }
    Err(Error::Contended {
        action: format!("naming a new revision of {owner_name}"),
    })
}

/// Which old revisions go so that at most `limit` remain: the lowest-numbered ones that are
/// not `in_use`. With `in_use_counts` (the DaemonSet rule) revisions in use count towards the
/// limit though they are kept; without it (the StatefulSet rule) only unused ones count.
pub fn expired(
    old: &[ControllerRevision],
    limit: usize,
    in_use_counts: bool,
    in_use: impl Fn(&ControllerRevision) -> bool,
) -> Vec<&ControllerRevision> {
    let mut candidates: Vec<&ControllerRevision> = old.iter().collect();
    candidates.sort_by_key(|r| r.revision);
    let counted = if in_use_counts {
        candidates.len()
    } else {
        candidates.iter().filter(|r| !in_use(r)).count()
    };
    let excess = counted.saturating_sub(limit);
    candidates
        .into_iter()
        .filter(|r| !in_use(r))
        .take(excess)
        .collect()
}

/// Deletes `revisions` (already gone is fine).
pub async fn delete(client: &Client, ns: &str, revisions: &[&ControllerRevision]) -> Result<()> {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    for r in revisions {
        match api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if has_code(&e, 404) => {}
            Err(e) => {
                return Err(Error::api(
                    format!("deleting old revision {}", r.name_any()),
                    e,
                ));
            }
        }
    }
    Ok(())
}

/// `spec.revisionHistoryLimit` with Kubernetes' default of 10.
pub fn history_limit(limit: Option<i32>) -> usize {
    limit.unwrap_or(10).max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    fn revision(name: &str, n: i64) -> ControllerRevision {
        ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(RawExtension(revision_data(&template(name)))),
            revision: n,
        }
    }

    #[test]
    fn data_is_the_replace_patch_with_sorted_keys() {
        let data = revision_data(&template("nginx:1"));
        assert_eq!(
            serde_json::to_string(&data).unwrap(),
            r#"{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"web"}},"spec":{"containers":[{"image":"nginx:1","name":"c","resources":{}}]}}}}"#
        );
        let cr = ControllerRevision {
            data: Some(RawExtension(data.clone())),
            ..Default::default()
        };
        // The template a revision restores (what an undo stores) has the same data.
        let restored = revision_template(&cr).unwrap();
        assert_eq!(
            restored.spec.as_ref().unwrap().containers[0]
                .image
                .as_deref(),
            Some("nginx:1")
        );
        assert_eq!(revision_data(&restored), data);
        assert_ne!(revision_data(&template("nginx:2")), data);
    }

    #[test]
    fn malformed_data_is_an_error_not_a_panic() {
        let cr = |data: Value| ControllerRevision {
            metadata: ObjectMeta {
                name: Some("web-x".into()),
                ..Default::default()
            },
            data: Some(RawExtension(data)),
            revision: 1,
        };
        let e = revision_template(&cr(json!({"spec": {}}))).unwrap_err();
        assert!(e.is_invalid_object(), "{e}");
        assert!(e.to_string().contains("web-x"), "{e}");
        let e = revision_template(&cr(json!({"spec": {"template": {"spec": 3}}}))).unwrap_err();
        assert!(e.is_invalid_object(), "{e}");
        assert!(revision_template(&ControllerRevision::default()).is_err());
    }

    #[test]
    fn names_and_hashes() {
        assert_eq!(revision_name("web", "abc"), "web-abc");
        let long = "x".repeat(250);
        assert_eq!(revision_name(&long, "abc").len(), 223 + 4);
        let mut cr = revision("web-7d9f", 1);
        assert_eq!(revision_hash(&cr), "7d9f");
        cr.metadata.labels = Some(BTreeMap::from([(
            REVISION_HASH_LABEL.to_string(),
            "zz".to_string(),
        )]));
        assert_eq!(revision_hash(&cr), "zz");
    }

    #[test]
    fn history_keeps_the_newest_and_those_in_use() {
        let old: Vec<ControllerRevision> = (1..=5).map(|n| revision(&format!("r{n}"), n)).collect();
        let names = |v: Vec<&ControllerRevision>| -> Vec<String> {
            v.iter().map(|r| r.name_any()).collect()
        };
        assert!(expired(&old, 5, true, |_| false).is_empty());
        assert_eq!(names(expired(&old, 2, true, |_| false)), ["r1", "r2", "r3"]);
        // r1 is in use: kept; with the DaemonSet rule it still counts.
        let r1 = |r: &ControllerRevision| r.name_any() == "r1";
        assert_eq!(names(expired(&old, 2, true, r1)), ["r2", "r3", "r4"]);
        assert_eq!(names(expired(&old, 2, false, r1)), ["r2", "r3"]);
        assert_eq!(names(expired(&old, 0, true, |_| false)).len(), 5);
        assert_eq!(history_limit(None), 10);
        assert_eq!(history_limit(Some(-1)), 0);
    }
}
