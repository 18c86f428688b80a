//! Pod facts and pod management shared by the workload controllers: controller references,
//! pods from templates, active/ready/available, the order in which surplus pods are deleted,
//! creation/deletion expectations (so a reconcile never acts twice on the same gap before the
//! watch shows its first action), and pod control: creating and deleting an owner's pods with
//! the events Kubernetes' ReplicaSet, DaemonSet and Job controllers record.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::Selector;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};

/// The controller reference an owner puts on what it creates.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Makes `owner` the controller of the orphan `obj` (a merge patch that fails if `obj`
/// changed since it was read). `false` when `obj` is gone or changed meanwhile: the next
/// reconcile looks again.
pub async fn adopt<K, O>(api: &Api<K>, obj: &K, owner: &O) -> Result<bool>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    O: Resource<DynamicType = ()>,
{
    let mut refs = obj.owner_references().to_vec();
    refs.push(controller_ref(owner));
    let patch =
        json!({"metadata": {"ownerReferences": refs, "resourceVersion": obj.resource_version()}});
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if has_code(&e, 404) || has_code(&e, 409) => Ok(false),
        Err(e) => Err(Error::api(format!("adopting {}", obj.name_any()), e)),
    }
}

/// Creates `pod` for `owner`, recording `SuccessfulCreate` or `FailedCreate` on the owner.
pub async fn create_pod(
    recorder: &EventRecorder,
    owner: &InvolvedObject,
    api: &Api<Pod>,
    pod: &Pod,
) -> std::result::Result<Pod, kube::Error> {
    match api.create(&PostParams::default(), pod).await {
        Ok(p) => {
            recorder.normal(
                owner,
                "SuccessfulCreate",
                &format!("Created pod: {}", p.name_any()),
            );
            Ok(p)
        }
        Err(e) => {
            recorder.warning(owner, "FailedCreate", &format!("Error creating: {e}"));
            Err(e)
        }
    }
}

/// Deletes `pod` of `owner`, recording `SuccessfulDelete`; the pod's uid when this call
/// deleted it, `None` when it was already gone.
pub async fn delete_pod(
    recorder: &EventRecorder,
    owner: &InvolvedObject,
    api: &Api<Pod>,
    pod: &Pod,
    params: &DeleteParams,
) -> Result<Option<String>> {
    match api.delete(&pod.name_any(), params).await {
        Ok(_) => {
            recorder.normal(
                owner,
                "SuccessfulDelete",
                &format!("Deleted pod: {}", pod.name_any()),
            );
            Ok(Some(pod.uid().unwrap_or_default()))
        }
        Err(e) if has_code(&e, 404) => Ok(None),
        Err(e) => Err(Error::api(format!("deleting pod {}", pod.name_any()), e)),
    }
}

/// The uid of an object's controller, if any.
pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// A label selector as a query string; errors name the owner.
pub fn selector_string(owner: &str, sel: Option<&LabelSelector>) -> Result<String> {
    let sel = sel.ok_or_else(|| Error::invalid(owner, "spec.selector", "required"))?;
    let s =
        Selector::try_from(sel.clone()).map_err(|e| Error::invalid(owner, "spec.selector", e.0))?;
    if s.selects_all() {
        return Err(Error::invalid(
            owner,
            "spec.selector",
            "empty selector is invalid for a workload",
        ));
    }
    Ok(s.to_string())
}

/// A pod made from a template, owned by `owner`.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    owner: OwnerReference,
    name: Option<String>,
    generate_name: Option<String>,
    extra_labels: &BTreeMap<String, String>,
) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.extend(extra_labels.clone());
    Pod {
        metadata: ObjectMeta {
            name,
            generate_name,
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase(pod), "Succeeded" | "Failed")
}

/// When the pod's Ready condition became True, if it is.
pub fn ready_since(pod: &Pod) -> Option<jiff::Timestamp> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        c.last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(jiff::Timestamp::now),
    )
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(t) => now.duration_since(t).as_secs() >= min_ready_seconds as i64,
    }
}

/// When a ready pod that is not yet available becomes so (to requeue then).
pub fn available_in(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> Option<Duration> {
    let t = ready_since(pod)?;
    let elapsed = now.duration_since(t).as_secs_f64();
    let left = min_ready_seconds as f64 - elapsed;
    (left > 0.0).then(|| Duration::from_secs_f64(left))
}

fn phase_rank(p: &Pod) -> u8 {
    match phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        _ => 2,
    }
}

/// Kubernetes' order for deleting surplus pods: unscheduled before scheduled, pending
/// before running, not ready before ready, recently ready before long ready, newer before
/// older. The first pods of the sorted list go first.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let assigned = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some_and(|n| !n.is_empty())
    };
    assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(is_ready(a).cmp(&is_ready(b)))
        .then_with(|| match (ready_since(a), ready_since(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then_with(|| {
            let ts = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            ts(b).cmp(&ts(a))
        })
}

/// What a controller expects the watch to show after its writes, per owner.
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Expected>>,
}

struct Expected {
    creations: HashSet<String>,
    deletions: HashSet<String>,
    since: Instant,
}

/// How long unmet expectations are trusted before acting anyway (a lost watch event must
/// not wedge the owner).
const EXPECTATIONS_TTL: Duration = Duration::from_secs(10);

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Expected>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the names created and uids deleted by a reconcile of `owner`.
    pub fn expect(&self, owner: &str, created: Vec<String>, deleted: Vec<String>) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        let mut m = self.lock();
        let e = m.entry(owner.to_string()).or_insert_with(|| Expected {
            creations: HashSet::new(),
            deletions: HashSet::new(),
            since: Instant::now(),
        });
        e.creations.extend(created);
        e.deletions.extend(deleted);
        e.since = Instant::now();
    }

    /// Whether `pods` (a fresh list of the owner's pods) show every expected write.
    pub fn satisfied(&self, owner: &str, pods: &[Pod]) -> bool {
        let mut m = self.lock();
        let Some(e) = m.get_mut(owner) else {
            return true;
        };
        let names: HashSet<String> = pods.iter().map(|p| p.name_any()).collect();
        e.creations.retain(|n| !names.contains(n));
        e.deletions.retain(|uid| {
            pods.iter()
                .any(|p| p.uid().as_deref() == Some(uid) && p.metadata.deletion_timestamp.is_none())
        });
        if (e.creations.is_empty() && e.deletions.is_empty())
            || e.since.elapsed() > EXPECTATIONS_TTL
        {
            m.remove(owner);
            return true;
        }
        false
    }

    pub fn forget(&self, owner: &str) {
        self.lock().remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c"}], "nodeName": node},
            "status": {"phase": phase, "conditions": if ready {
                json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"}])
            } else { json!([]) }}
        }))
        .unwrap()
    }

    #[test]
    fn surplus_pods_go_in_kubernetes_order() {
        let mut pods = [
            pod("running-ready", Some("n"), "Running", true),
            pod("unscheduled", None, "Pending", false),
            pod("running-unready", Some("n"), "Running", false),
            pod("pending", Some("n"), "Pending", false),
        ];
        pods.sort_by(deletion_order);
        let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
        assert_eq!(
            names,
            ["unscheduled", "pending", "running-unready", "running-ready"]
        );
    }

    #[test]
    fn expectations_wait_for_the_watch() {
        let e = Expectations::default();
        e.expect("rs", vec!["a".into()], vec!["old".into()]);
        let old = pod("old", Some("n"), "Running", true);
        assert!(!e.satisfied("rs", std::slice::from_ref(&old)));
        let a = pod("a", None, "Pending", false);
        assert!(!e.satisfied("rs", &[a.clone(), old]));
        assert!(e.satisfied("rs", &[a]));
        assert!(e.satisfied("other", &[]));
    }

    #[test]
    fn availability_honours_min_ready_seconds() {
        let p = pod("p", Some("n"), "Running", true);
        let t: jiff::Timestamp = "2026-01-01T00:00:15Z".parse().unwrap();
        assert!(is_available(&p, 0, t));
        assert!(is_available(&p, 5, t));
        assert!(!is_available(&p, 6, t));
        assert!(available_in(&p, 6, t).is_some());
    }
}
