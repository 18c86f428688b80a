//! DaemonSets, StatefulSets and volume claims on simulated nodes.

use std::time::Duration;

use berth_testing::{TestCluster, TestClusterOptions};
use berth_tests::{WAIT, create, namespace, unique, wait_for, within};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(120);

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone())
}

fn running(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

#[tokio::test]
async fn daemonset_covers_every_node_including_later_ones_and_rolls() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(2)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "apps").await?;
        let dss: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        create(&dss, json!({"metadata": {"name": "agent"}, "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "agent:1"}]}}}})).await?;
        let one_per_node = |n: usize, image: &'static str| {
            let pods = pods.clone();
            async move {
                wait_for(&format!("{n} daemon pods running {image}, one per node"), WAIT, || async {
                    let list: Vec<Pod> = pods.list(&ListParams::default().labels("app=agent")).await?.items.into_iter().filter(running).collect();
                    let mut nodes: Vec<String> = list.iter().filter_map(node_of).collect();
                    nodes.sort();
                    nodes.dedup();
                    let images_ok = list.iter().all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some(image));
                    Ok((list.len() == n && nodes.len() == n && images_ok).then_some(()))
                })
                .await
            }
        };
        one_per_node(2, "agent:1").await?;
        cluster.nodes().unwrap().add_node("late-node").await?;
        one_per_node(3, "agent:1").await?;
        let ds = wait_for("the daemonset status", WAIT, || async {
            let d = dss.get("agent").await?;
            Ok(d.status.clone().filter(|s| s.desired_number_scheduled == 3 && s.number_ready == 3).map(|_| d))
        })
        .await?;
        assert_eq!(ds.status.unwrap().number_misscheduled, 0);
        dss.patch("agent", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}}))).await?;
        one_per_node(3, "agent:2").await?;
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn statefulset_starts_in_order_keeps_names_and_claims() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(2)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "apps").await?;
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        // Record the order in which pods appear.
        let watch_pods = pods.clone();
        let order = tokio::spawn(async move {
            let mut seen: Vec<String> = Vec::new();
            let stream = watcher::watcher(watch_pods, watcher::Config::default().labels("app=db"));
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                if let Ok(watcher::Event::Apply(p)) = ev {
                    // A pod may only appear once its predecessors run and are ready.
                    if !seen.contains(&p.name_any()) {
                        seen.push(p.name_any());
                    }
                    if seen.len() == 3 {
                        return seen;
                    }
                }
            }
            seen
        });
        create(&sets, json!({"metadata": {"name": "db"}, "spec": {
            "replicas": 3, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "db:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        }})).await?;
        let seen = tokio::time::timeout(WAIT, order).await??;
        assert_eq!(seen, ["db-0", "db-1", "db-2"]);
        wait_for("3 ready replicas", WAIT, || async {
            let s = sets.get("db").await?;
            Ok(s.status.filter(|s| s.ready_replicas == Some(3)).map(|_| ()))
        })
        .await?;
        let p1 = pods.get("db-1").await?;
        assert_eq!(p1.spec.as_ref().unwrap().hostname.as_deref(), Some("db-1"));
        assert_eq!(p1.spec.as_ref().unwrap().subdomain.as_deref(), Some("db"));
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        for i in 0..3 {
            let c = wait_for(&format!("claim data-db-{i} bound"), WAIT, || async {
                let c = claims.get(&format!("data-db-{i}")).await?;
                Ok((c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")).then_some(c))
            })
            .await?;
            let vol = c.spec.unwrap().volume_name.unwrap();
            let pv = Api::<PersistentVolume>::all(client.clone()).get(&vol).await?;
            assert!(pv.spec.unwrap().host_path.unwrap().path.contains(&format!("data-db-{i}")));
        }
        // A deleted pod comes back with the same name and claim.
        let uid = p1.uid();
        pods.delete("db-1", &DeleteParams::default()).await?;
        let back = wait_for("db-1 to come back", WAIT, || async {
            Ok(pods.get_opt("db-1").await?.filter(|p| p.uid() != uid && running(p)))
        })
        .await?;
        assert!(back.spec.unwrap().volumes.unwrap().iter().any(|v| v.persistent_volume_claim.as_ref().is_some_and(|c| c.claim_name == "data-db-1")));
        // Partitioned rolling update: only ordinals >= partition get the new template.
        sets.patch("db", &PatchParams::default(), &Patch::Merge(json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
            "template": {"spec": {"containers": [{"name": "c", "image": "db:2"}]}}}})))
            .await?;
        wait_for("db-2 on the new template, db-0 and db-1 on the old", WAIT, || async {
            let image = |p: &Pod| p.spec.as_ref().unwrap().containers[0].image.clone().unwrap_or_default();
            let list = pods.list(&ListParams::default().labels("app=db")).await?.items;
            let by_name = |n: &str| list.iter().find(|p| p.name_any() == n && running(p)).map(image);
            Ok((by_name("db-2").as_deref() == Some("db:2")
                && by_name("db-1").as_deref() == Some("db:1")
                && by_name("db-0").as_deref() == Some("db:1"))
            .then_some(()))
        })
        .await?;
        let st = sets.get("db").await?.status.unwrap();
        assert_eq!(st.updated_replicas, Some(1));
        assert_ne!(st.current_revision, st.update_revision);
        // Scale down: highest ordinal first.
        sets.patch("db", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}}))).await?;
        wait_for("only db-0 left", WAIT, || async {
            let names: Vec<String> = pods.list(&ListParams::default().labels("app=db")).await?.items.iter().map(|p| p.name_any()).collect();
            Ok((names == ["db-0"]).then_some(()))
        })
        .await?;
        // Claims outlive their pods.
        assert!(claims.get_opt("data-db-2").await?.is_some());
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn every_node_gets_its_own_pod_network() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(3)).await?;
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.client());
        let cidrs = wait_for("3 nodes with a podCIDR", WAIT, || async {
            let mut c: Vec<String> = nodes
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter_map(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.clone()))
                .collect();
            c.sort();
            Ok((c.len() == 3).then_some(c))
        })
        .await?;
        assert_eq!(cidrs, ["10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24"]);
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn claims_bind_to_matching_volumes_or_get_one_provisioned() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::default()).await?;
        let client = cluster.client();
        let ns = namespace(&client, "apps").await?;
        let pvs: Api<PersistentVolume> = Api::all(client.clone());
        let small = unique("pv-small");
        let big = unique("pv-big");
        for (n, size) in [(&small, "1Gi"), (&big, "10Gi")] {
            create(&pvs, json!({"metadata": {"name": n}, "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                "storageClassName": "manual", "hostPath": {"path": format!("/tmp/{n}")}}})).await?;
        }
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        create(&claims, json!({"metadata": {"name": "want-5"}, "spec": {"storageClassName": "manual", "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "5Gi"}}}})).await?;
        create(&claims, json!({"metadata": {"name": "dynamic"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "2Gi"}}}})).await?;
        let bound = |name: &'static str| {
            let claims = claims.clone();
            async move {
                wait_for(&format!("claim {name} bound"), WAIT, || async {
                    let c = claims.get(name).await?;
                    Ok((c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")).then(|| c.spec.unwrap().volume_name.unwrap()))
                })
                .await
            }
        };
        assert_eq!(bound("want-5").await?, big);
        let provisioned = bound("dynamic").await?;
        let pv = pvs.get(&provisioned).await?;
        assert_eq!(pv.annotations().get("pv.kubernetes.io/provisioned-by").map(String::as_str), Some("berth.dev/local-path"));
        // Deleting the claim deletes the provisioned volume.
        claims.delete("dynamic", &DeleteParams::default()).await?;
        wait_for("the provisioned volume to go", WAIT, || async { Ok(pvs.get_opt(&provisioned).await?.is_none().then_some(())) }).await?;
        for n in [&small, &big] {
            pvs.delete(n, &DeleteParams::default()).await?;
        }
        cluster.stop().await;
        Ok(())
    })
    .await
}
