//! Garbage collection through the real API server: background, orphan and foreground
//! propagation, dangling and partial owner references, custom resources.

use berth_testing::{TestCluster, TestClusterOptions};
use berth_tests::{WAIT, create, unique, wait_for, within};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

async fn cluster_with_namespace() -> anyhow::Result<(TestCluster, Client, String)> {
    let cluster = TestCluster::start(TestClusterOptions::default()).await?;
    let client = cluster.client();
    let ns = unique("gc");
    create(
        &Api::<Namespace>::all(client.clone()),
        json!({"metadata": {"name": ns}}),
    )
    .await?;
    Ok((cluster, client, ns))
}

fn owner_ref(
    kind: &str,
    api_version: &str,
    name: &str,
    uid: &str,
    block: bool,
) -> serde_json::Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "blockOwnerDeletion": block})
}

async fn configmap(
    api: &Api<ConfigMap>,
    name: &str,
    owners: Vec<serde_json::Value>,
    finalizers: &[&str],
) -> anyhow::Result<ConfigMap> {
    create(
        api,
        json!({"metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers}}),
    )
    .await
}

async fn gone(api: &Api<ConfigMap>, name: &str) -> anyhow::Result<Option<()>> {
    Ok(match api.get_opt(name).await? {
        None => Some(()),
        Some(_) => None,
    })
}

#[tokio::test]
async fn background_deletion_removes_dependents() -> anyhow::Result<()> {
    within(LIMIT, async {
        let (cluster, client, ns) = cluster_with_namespace().await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let owner = configmap(&cms, "owner", vec![], &[]).await?;
        let uid = owner.uid().unwrap();
        configmap(
            &cms,
            "dep",
            vec![owner_ref("ConfigMap", "v1", "owner", &uid, false)],
            &[],
        )
        .await?;
        configmap(&cms, "unrelated", vec![], &[]).await?;
        cms.delete("owner", &DeleteParams::background()).await?;
        wait_for("the dependent to be collected", WAIT, || gone(&cms, "dep")).await?;
        assert!(cms.get_opt("unrelated").await?.is_some());
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn dependent_of_an_owner_that_never_existed_or_was_replaced_is_collected()
-> anyhow::Result<()> {
    within(LIMIT, async {
        let (cluster, client, ns) = cluster_with_namespace().await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        configmap(
            &cms,
            "orphaned",
            vec![owner_ref(
                "ConfigMap",
                "v1",
                "nobody",
                "00000000-0000-0000-0000-000000000001",
                false,
            )],
            &[],
        )
        .await?;
        // An owner with the right name but another uid is not the owner.
        configmap(&cms, "impostor", vec![], &[]).await?;
        configmap(
            &cms,
            "stale",
            vec![owner_ref(
                "ConfigMap",
                "v1",
                "impostor",
                "00000000-0000-0000-0000-000000000002",
                false,
            )],
            &[],
        )
        .await?;
        wait_for("the dangling dependent to be collected", WAIT, || {
            gone(&cms, "orphaned")
        })
        .await?;
        wait_for(
            "the dependent of a replaced owner to be collected",
            WAIT,
            || gone(&cms, "stale"),
        )
        .await?;
        assert!(cms.get_opt("impostor").await?.is_some());
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_dependent_keeps_living_while_one_owner_remains() -> anyhow::Result<()> {
    within(LIMIT, async {
        let (cluster, client, ns) = cluster_with_namespace().await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let a = configmap(&cms, "a", vec![], &[]).await?;
        let b = configmap(&cms, "b", vec![], &[]).await?;
        let (ua, ub) = (a.uid().unwrap(), b.uid().unwrap());
        configmap(
            &cms,
            "shared",
            vec![
                owner_ref("ConfigMap", "v1", "a", &ua, false),
                owner_ref("ConfigMap", "v1", "b", &ub, false),
            ],
            &[],
        )
        .await?;
        cms.delete("a", &DeleteParams::background()).await?;
        let refs = wait_for(
            "the reference to the gone owner to be removed",
            WAIT,
            || async {
                let cm = cms.get("shared").await?;
                let refs: Vec<String> = cm
                    .owner_references()
                    .iter()
                    .map(|r| r.uid.clone())
                    .collect();
                Ok((refs.len() == 1).then_some(refs))
            },
        )
        .await?;
        assert_eq!(refs, vec![ub]);
        cms.delete("b", &DeleteParams::background()).await?;
        wait_for("the dependent to go with its last owner", WAIT, || {
            gone(&cms, "shared")
        })
        .await?;
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_without_the_reference() -> anyhow::Result<()> {
    within(LIMIT, async {
        let (cluster, client, ns) = cluster_with_namespace().await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let owner = configmap(&cms, "owner", vec![], &[]).await?;
        let uid = owner.uid().unwrap();
        configmap(
            &cms,
            "dep",
            vec![owner_ref("ConfigMap", "v1", "owner", &uid, true)],
            &[],
        )
        .await?;
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..Default::default()
        };
        cms.delete("owner", &params).await?;
        wait_for("the owner to be deleted after orphaning", WAIT, || {
            gone(&cms, "owner")
        })
        .await?;
        let dep = cms.get("dep").await?;
        assert!(
            dep.owner_references().is_empty(),
            "{:?}",
            dep.owner_references()
        );
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() -> anyhow::Result<()> {
    within(LIMIT, async {
        let (cluster, client, ns) = cluster_with_namespace().await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let owner = configmap(&cms, "owner", vec![], &[]).await?;
        let uid = owner.uid().unwrap();
        // A blocking dependent held by a finalizer, with a dependent of its own.
        let mid = configmap(
            &cms,
            "mid",
            vec![owner_ref("ConfigMap", "v1", "owner", &uid, true)],
            &["example.com/hold"],
        )
        .await?;
        let mid_uid = mid.uid().unwrap();
        configmap(
            &cms,
            "leaf",
            vec![owner_ref("ConfigMap", "v1", "mid", &mid_uid, true)],
            &[],
        )
        .await?;
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..Default::default()
        };
        cms.delete("owner", &params).await?;
        // The leaf goes (mid is deleted in the foreground), mid waits on its finalizer.
        wait_for("the leaf to be deleted", WAIT, || gone(&cms, "leaf")).await?;
        wait_for("mid to be terminating", WAIT, || async {
            let m = cms.get("mid").await?;
            Ok(m.metadata.deletion_timestamp.is_some().then_some(()))
        })
        .await?;
        let o = cms.get("owner").await?;
        assert!(o.metadata.deletion_timestamp.is_some());
        assert!(o.finalizers().iter().any(|f| f == "foregroundDeletion"));
        // Release mid: everything goes.
        cms.patch(
            "mid",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await?;
        wait_for("mid to be deleted", WAIT, || gone(&cms, "mid")).await?;
        wait_for("the owner to be deleted", WAIT, || gone(&cms, "owner")).await?;
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn custom_resources_are_covered_after_rediscovery() -> anyhow::Result<()> {
    within(LIMIT, async {
        let (cluster, client, ns) = cluster_with_namespace().await?;
        let crds: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
                "customresourcedefinitions",
            ),
        );
        let crd: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.gc.berth.test"},
            "spec": {
                "group": "gc.berth.test", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
            }
        }))?;
        crds.create(&Default::default(), &crd).await?;
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("gc.berth.test", "v1", "Widget"),
            "widgets",
        );
        let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        let w: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "gc.berth.test/v1", "kind": "Widget", "metadata": {"name": "w1"}
        }))?;
        let w = wait_for("the custom resource to be served", WAIT, || async {
            Ok(widgets.create(&Default::default(), &w).await.ok())
        })
        .await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        configmap(
            &cms,
            "widget-dep",
            vec![owner_ref("Widget", "gc.berth.test/v1", "w1", &w.uid().unwrap(), false)],
            &[],
        )
        .await?;
        // The dependent stays while the widget exists.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(cms.get_opt("widget-dep").await?.is_some());
        widgets.delete("w1", &DeleteParams::background()).await?;
        wait_for("the widget's dependent to be collected", WAIT, || gone(&cms, "widget-dep")).await?;
        cluster.stop().await;
        Ok(())
    })
    .await
}
