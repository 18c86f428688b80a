//! ControllerRevisions of DaemonSets and StatefulSets on simulated nodes: one revision per
//! template, undo by sending a revision's data back as a strategic merge patch (what
//! `kubectl rollout undo` does), renumbering, adoption and pruning.

use std::time::Duration;

use berth_testing::{TestCluster, TestClusterOptions};
use berth_tests::{WAIT, create, namespace, wait_for, within};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(180);
const HASH: &str = "controller-revision-hash";

fn running(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn image(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

fn data_image(r: &ControllerRevision) -> String {
    r.data.as_ref().unwrap().0["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The revisions listed by the owner's selector, as kubectl lists them, by revision number.
async fn revisions(
    api: &Api<ControllerRevision>,
    selector: &str,
) -> anyhow::Result<Vec<ControllerRevision>> {
    let mut list = api
        .list(&ListParams::default().labels(selector))
        .await?
        .items;
    list.sort_by_key(|r| r.revision);
    Ok(list)
}

/// `kubectl rollout undo --to-revision`: the revision's data as a strategic merge patch.
async fn undo<K>(api: &Api<K>, name: &str, revision: &ControllerRevision) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let data = revision.data.clone().unwrap().0;
    api.patch(name, &PatchParams::default(), &Patch::Strategic(data))
        .await?;
    Ok(())
}

#[tokio::test]
async fn daemonset_revisions_record_templates_undo_renumbers_and_history_is_pruned()
-> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(2)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "rev").await?;
        let dss: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let crs: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
        let ds = create(&dss, json!({"metadata": {"name": "agent", "annotations": {"kubernetes.io/change-cause": "first"}}, "spec": {
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent", "tier": "node"}}, "spec": {"containers": [{"name": "c", "image": "agent:1"}]}}}})).await?;
        // Both pods run `image`, labelled with the hash of the revision recording it.
        let rolled_to = |img: &'static str| {
            let (pods, crs) = (pods.clone(), crs.clone());
            async move {
                wait_for(&format!("2 daemon pods on {img} labelled with its revision"), WAIT, || async {
                    let list: Vec<Pod> = pods.list(&ListParams::default().labels("app=agent")).await?.items;
                    let revs = revisions(&crs, "app=agent").await?;
                    let Some(rev) = revs.iter().find(|r| data_image(r) == img).cloned() else { return Ok(None) };
                    let hash = rev.labels().get(HASH).cloned().unwrap_or_default();
                    let ok = list.len() == 2 && list.iter().all(|p| running(p) && image(p) == img && p.labels().get(HASH) == Some(&hash));
                    Ok(ok.then_some((rev, revs)))
                })
                .await
            }
        };
        let (first, revs) = rolled_to("agent:1").await?;
        assert_eq!(revs.len(), 1);
        assert_eq!(first.revision, 1);
        let hash = first.labels()[HASH].clone();
        assert_eq!(first.name_any(), format!("agent-{hash}"));
        assert_eq!(first.labels()["tier"], "node", "template labels are copied");
        assert_eq!(first.annotations()["kubernetes.io/change-cause"], "first");
        let owner = &first.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("DaemonSet", ds.uid().unwrap().as_str()));
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
        let data = &first.data.as_ref().unwrap().0;
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(data.as_object().unwrap().len(), 1, "only spec");
        assert_eq!(data["spec"].as_object().unwrap().len(), 1, "only spec.template");

        // A template change is revision 2.
        dss.patch("agent", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}}))).await?;
        let (second, revs) = rolled_to("agent:2").await?;
        assert_eq!(second.revision, 2);
        assert_eq!(revs.len(), 2);
        // Undo to revision 1: the same object comes back as revision 3.
        undo(&dss, "agent", &first).await?;
        let (back, revs) = rolled_to("agent:1").await?;
        assert_eq!(back.name_any(), first.name_any());
        assert_eq!(back.uid(), first.uid());
        let back = wait_for("revision 1 renumbered to 3", WAIT, || async {
            let r = crs.get(&first.name_any()).await?;
            Ok((r.revision == 3).then_some(r))
        })
        .await?;
        assert_eq!(back.labels()[HASH], hash);
        assert_eq!(revs.len(), 2);
        wait_for("the rollout to be reported complete", WAIT, || async {
            let d = dss.get("agent").await?;
            let s = d.status.clone().unwrap_or_default();
            Ok((s.observed_generation == d.metadata.generation && s.updated_number_scheduled == Some(2) && s.number_available == Some(2)).then_some(()))
        })
        .await?;

        // Two more templates: with a limit of 2 the oldest unused revision (agent:2) goes.
        for img in ["agent:3", "agent:4"] {
            dss.patch("agent", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": img}]}}}}))).await?;
            rolled_to(img).await?;
        }
        let kept = wait_for("history pruned to the limit", WAIT, || async {
            let revs = revisions(&crs, "app=agent").await?;
            Ok((revs.len() == 3).then_some(revs))
        })
        .await?;
        let images: Vec<String> = kept.iter().map(data_image).collect();
        assert_eq!(images, ["agent:1", "agent:3", "agent:4"]);
        assert_eq!(kept.iter().map(|r| r.revision).collect::<Vec<_>>(), [3, 4, 5]);

        // Deleting the DaemonSet collects its revisions.
        dss.delete("agent", &DeleteParams::background()).await?;
        wait_for("revisions garbage-collected", WAIT, || async {
            Ok(revisions(&crs, "app=agent").await?.is_empty().then_some(()))
        })
        .await?;
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn statefulset_revisions_adopt_undo_and_keep_the_partition_on_the_current_revision()
-> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(2)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "rev").await?;
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let crs: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
        // An orphan revision matching the selector is adopted and numbers continue after it.
        create(&crs, json!({"metadata": {"name": "db-orphan", "labels": {"app": "db"}},
            "data": {"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "db:0"}]}}}},
            "revision": 7})).await?;
        let set = create(&sets, json!({"metadata": {"name": "db"}, "spec": {
            "replicas": 2, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "db:1"}]}}}})).await?;
        let uid = set.uid().unwrap();
        // Every pod on `img`, labelled with the revision's name, and the rollout complete.
        let rolled_to = |img: &'static str| {
            let (pods, crs, sets) = (pods.clone(), crs.clone(), sets.clone());
            async move {
                wait_for(&format!("both pods on {img} and the status on its revision"), WAIT, || async {
                    let revs = revisions(&crs, "app=db").await?;
                    let Some(rev) = revs.iter().find(|r| data_image(r) == img) else { return Ok(None) };
                    let list: Vec<Pod> = pods.list(&ListParams::default().labels("app=db")).await?.items;
                    let name = rev.name_any();
                    let pods_ok = list.len() == 2 && list.iter().all(|p| running(p) && image(p) == img && p.labels().get(HASH) == Some(&name));
                    let s = sets.get("db").await?.status.unwrap_or_default();
                    let status_ok = s.update_revision.as_ref() == Some(&name) && s.current_revision.as_ref() == Some(&name) && s.updated_replicas == Some(2) && s.ready_replicas == Some(2);
                    Ok((pods_ok && status_ok).then(|| rev.clone()))
                })
                .await
            }
        };
        let first = rolled_to("db:1").await?;
        assert_eq!(first.revision, 8);
        assert_eq!(first.name_any(), format!("db-{}", first.labels()[HASH]));
        let orphan = crs.get("db-orphan").await?;
        assert_eq!(orphan.owner_references().iter().find(|o| o.controller == Some(true)).map(|o| o.uid.as_str()), Some(uid.as_str()));

        sets.patch("db", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "db:2"}]}}}}))).await?;
        let second = rolled_to("db:2").await?;
        assert_eq!(second.revision, 9);
        undo(&sets, "db", &first).await?;
        let back = rolled_to("db:1").await?;
        assert_eq!(back.uid(), first.uid());
        wait_for("revision 8 renumbered to 10", WAIT, || async {
            Ok((crs.get(&first.name_any()).await?.revision == 10).then_some(()))
        })
        .await?;

        // Partition 1: db-1 moves to db:3; db-0, deleted, comes back on the current revision.
        sets.patch("db", &PatchParams::default(), &Patch::Merge(json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
            "template": {"spec": {"containers": [{"name": "c", "image": "db:3"}]}}}}))).await?;
        let by_name = |list: &[Pod], n: &str| list.iter().find(|p| p.name_any() == n && running(p)).map(|p| (image(p), p.labels().get(HASH).cloned().unwrap_or_default()));
        wait_for("db-1 on db:3", WAIT, || async {
            let list = pods.list(&ListParams::default().labels("app=db")).await?.items;
            Ok((by_name(&list, "db-1").map(|x| x.0).as_deref() == Some("db:3")).then_some(()))
        })
        .await?;
        let old_uid = pods.get("db-0").await?.uid();
        pods.delete("db-0", &DeleteParams::default()).await?;
        wait_for("db-0 recreated on the current revision", WAIT, || async {
            let list = pods.list(&ListParams::default().labels("app=db")).await?.items;
            let fresh = list.iter().any(|p| p.name_any() == "db-0" && p.uid() != old_uid);
            Ok((fresh && by_name(&list, "db-0") == Some(("db:1".to_string(), first.name_any()))).then_some(()))
        })
        .await?;
        let s = sets.get("db").await?.status.unwrap();
        assert_eq!(s.current_revision.as_deref(), Some(first.name_any().as_str()));
        assert_ne!(s.update_revision, s.current_revision);
        cluster.stop().await;
        Ok(())
    })
    .await
}
