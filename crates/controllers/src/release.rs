//! Releasing relabeled pods: a pod whose labels no longer match its controlling
//! ReplicaSet's selector loses that ownerReference, as Kubernetes' controller-ref manager
//! does. The ReplicaSet then counts it no more and replaces it, and the pod outlives the
//! ReplicaSet (the way to take a pod out of service for debugging: `kubectl label pod x
//! app-`).
//!
//! The ReplicaSet controller lists its pods by selector, so it never sees pods that left it;
//! this task watches every pod and checks it against its controller in the ReplicaSet
//! controller's own cache.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
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

/// Watches pods until `shutdown`, releasing those that left their ReplicaSet's selector.
pub async fn run(client: Client, sets: Store<ReplicaSet>, shutdown: CancellationToken) {
    // Pods replayed at start are checked against a filled cache.
    tokio::select! {
        _ = shutdown.cancelled() => return,
        r = sets.wait_until_ready() => if r.is_err() { return },
    }
    let mut pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    loop {
        let pod = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = pods.next() => match next {
                Some(Ok(p)) => p,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "replicaset controller: pod watch");
                    continue;
                }
                None => return,
            },
        };
        let Some(owner) = pod.metadata.owner_references.iter().flatten().find(|r| {
            r.controller == Some(true) && r.kind == "ReplicaSet" && r.api_version == "apps/v1"
        }) else {
            continue;
        };
        let key = ObjectRef::new(&owner.name).within(&pod.namespace().unwrap_or_default());
        if let Some(rs) = sets.get(&key)
            && must_release(&pod, &rs)
        {
            release(&client, &pod, &rs).await;
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
}
