//! Releasing relabeled pods: a pod whose labels no longer match its controlling
//! ReplicaSet's selector loses that ownerReference, as Kubernetes' controller-ref manager
//! does. The ReplicaSet then counts it no more and replaces it, and the pod outlives the
//! ReplicaSet (the way to take a pod out of service for debugging: `kubectl label pod x
//! app-`).
//!
//! The ReplicaSet controller lists its pods by selector, so it never sees pods that left it.
//! Its one pod watch maps each pod event to the pod's ReplicaSets through [`owners`], which
//! also checks the pod against its controller in the controller's own cache and queues a
//! release for [`run`]; no second watch of every pod. A pod that leaves the selector before
//! that cache is filled is released at its next change.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Whether `pod` must be released by `rs`, its controller: both live, and the pod's labels
/// no longer match the selector.
pub fn must_release(pod: &Pod, rs: &ReplicaSet) -> bool {
    let Some(uid) = rs.metadata.uid.as_deref() else {
        return false;
    };
    let controlled = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid);
    if !controlled
        || pod.metadata.deletion_timestamp.is_some()
        || rs.metadata.deletion_timestamp.is_some()
    {
        return false;
    }
    let Some(selector) = rs.spec.as_ref().map(|s| s.selector.clone()) else {
        return false;
    };
    // An invalid selector releases nothing: the controller reports it.
    match Selector::try_from(selector) {
        Ok(s) if !s.selects_all() => !s.matches(pod.labels()),
        _ => false,
    }
}

/// Removes `rs`'s ownerReference from `pod` (a merge patch that fails if the pod changed
/// since it was read; the change that follows brings it back here).
async fn release(client: &Client, pod: &Pod, rs: &ReplicaSet) {
    let ns = pod.namespace().unwrap_or_default();
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let remaining: Vec<_> = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.uid != uid)
        .collect();
    let patch = json!({"metadata": {
        "ownerReferences": remaining,
        "resourceVersion": pod.metadata.resource_version,
    }});
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            tracing::info!(pod = %pod.name_any(), namespace = %ns, replicaset = %rs.name_any(),
            "released a pod that no longer matches its ReplicaSet's selector")
        }
        Err(e) => tracing::debug!(pod = %pod.name_any(), error = %e, "releasing a pod"),
    }
}

/// Pods to release, with the ReplicaSet they leave.
pub type Releases = mpsc::UnboundedSender<(Pod, Arc<ReplicaSet>)>;

/// The ReplicaSets a pod event concerns (those named in its ownerReferences), queueing the
/// pod on `releases` when it left its controlling ReplicaSet's selector.
pub fn owners(
    pod: Pod,
    sets: &Store<ReplicaSet>,
    releases: &Releases,
) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    let refs: Vec<ObjectRef<ReplicaSet>> = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.kind == "ReplicaSet" && r.api_version == "apps/v1")
        .map(|r| ObjectRef::new(&r.name).within(&ns))
        .collect();
    if let Some(rs) = refs
        .iter()
        .filter_map(|r| sets.get(r))
        .find(|rs| must_release(&pod, rs))
    {
        let _ = releases.send((pod, rs));
    }
    refs
}

/// Releases the queued pods until `shutdown`.
pub async fn run(
    client: Client,
    mut queue: mpsc::UnboundedReceiver<(Pod, Arc<ReplicaSet>)>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            next = queue.recv() => match next {
                Some((pod, rs)) => release(&client, &pod, &rs).await,
                None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(deleting: bool) -> ReplicaSet {
        let mut v = json!({"metadata": {"name": "web-1", "namespace": "d", "uid": "rs-uid"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}}}});
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(v).unwrap()
    }

    fn pod(labels: serde_json::Value, owner_uid: &str) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "d", "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
                "uid": owner_uid, "controller": true}]}}),
        )
        .unwrap()
    }

    #[test]
    fn only_controlled_live_pods_that_left_the_selector_are_released() {
        assert!(!must_release(
            &pod(json!({"app": "web"}), "rs-uid"),
            &rs(false)
        ));
        assert!(must_release(
            &pod(json!({"app": "debug"}), "rs-uid"),
            &rs(false)
        ));
        assert!(must_release(&pod(json!({}), "rs-uid"), &rs(false)));
        // Another controller's pod, or a ReplicaSet being deleted: left alone.
        assert!(!must_release(&pod(json!({}), "other"), &rs(false)));
        assert!(!must_release(&pod(json!({}), "rs-uid"), &rs(true)));
    }

    #[test]
    fn owners_map_pods_to_their_replicasets_and_queue_the_relabeled() {
        let (sets, mut writer) = kube::runtime::reflector::store();
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(rs(false)));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let want = vec![ObjectRef::new("web-1").within("d")];
        assert_eq!(
            owners(pod(json!({"app": "web"}), "rs-uid"), &sets, &tx),
            want
        );
        assert!(rx.try_recv().is_err(), "a matching pod stays");
        assert_eq!(
            owners(pod(json!({"app": "debug"}), "rs-uid"), &sets, &tx),
            want
        );
        let (queued, from) = rx.try_recv().expect("the relabeled pod is queued");
        assert_eq!(
            (queued.name_any(), from.name_any()),
            ("p".into(), "web-1".into())
        );
    }
}
