//! Deployments, ReplicaSets, scheduling and node failover on simulated nodes.

use std::collections::HashMap;
use std::time::Duration;

use berth_testing::{TestCluster, TestClusterOptions};
use berth_tests::{WAIT, create, namespace, wait_for, within};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(120);

fn deployment(
    name: &str,
    replicas: i32,
    image: &str,
    surge: i32,
    unavailable: i32,
) -> serde_json::Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image,
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}
            }
        }
    })
}

/// kubectl's `rollout status` success test.
fn rolled_out(d: &Deployment) -> bool {
    let Some(s) = &d.status else { return false };
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    d.metadata.generation <= s.observed_generation
        && s.updated_replicas.unwrap_or(0) >= want
        && s.replicas.unwrap_or(0) <= s.updated_replicas.unwrap_or(0)
        && s.available_replicas.unwrap_or(0) >= s.updated_replicas.unwrap_or(0)
}

async fn wait_rolled_out(api: &Api<Deployment>, name: &str) -> anyhow::Result<Deployment> {
    wait_for(&format!("deployment {name} to roll out"), WAIT, || async {
        let d = api.get(name).await?;
        Ok(rolled_out(&d).then_some(d))
    })
    .await
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn rolling_update_respects_surge_and_unavailability_and_undo_restores() -> anyhow::Result<()>
{
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(3)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "wl").await?;
        let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        create(&deploys, deployment("web", 4, "nginx:1.27", 1, 1)).await?;
        wait_rolled_out(&deploys, "web").await?;
        let running = pods
            .list(&ListParams::default().labels("app=web"))
            .await?
            .items;
        assert_eq!(running.len(), 4);
        assert!(
            running
                .iter()
                .all(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()).is_some())
        );

        // Watch every pod event during the update and check the fences at each one.
        let watch_pods = pods.clone();
        let checker = tokio::spawn(async move {
            let mut seen: HashMap<String, Pod> = HashMap::new();
            let mut violations = Vec::new();
            let stream = watcher::watcher(watch_pods, watcher::Config::default().labels("app=web"));
            futures::pin_mut!(stream);
            let mut events = 0;
            let mut listed = false;
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::InitApply(p)) => {
                        seen.insert(p.name_any(), p);
                        continue;
                    }
                    Ok(watcher::Event::InitDone) => listed = true,
                    Ok(watcher::Event::Apply(p)) => {
                        seen.insert(p.name_any(), p);
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        seen.remove(&p.name_any());
                    }
                    _ => continue,
                }
                if !listed {
                    continue;
                }
                events += 1;
                let active: Vec<&Pod> = seen
                    .values()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                let ready = active.iter().filter(|p| is_ready(p)).count();
                if active.len() > 5 {
                    violations.push(format!(
                        "{} active pods > replicas + maxSurge",
                        active.len()
                    ));
                }
                if ready < 3 {
                    violations.push(format!("{ready} ready pods < replicas - maxUnavailable"));
                }
                let new_ready = active
                    .iter()
                    .filter(|p| {
                        is_ready(p)
                            && p.spec.as_ref().is_some_and(|s| {
                                s.containers[0].image.as_deref() == Some("nginx:1.28")
                            })
                    })
                    .count();
                if new_ready == 4 && active.len() == 4 {
                    return (events, violations);
                }
            }
            (events, violations)
        });
        deploys
            .patch("web", &PatchParams::default(), &Patch::Merge(json!({
                "metadata": {"annotations": {"kubernetes.io/change-cause": "image 1.28"}},
                "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}
            })))
            .await?;
        let d = wait_rolled_out(&deploys, "web").await?;
        let (events, violations) = tokio::time::timeout(WAIT, checker).await??;
        assert!(events > 4, "saw only {events} pod events");
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(
            d.annotations()
                .get("deployment.kubernetes.io/revision")
                .map(String::as_str),
            Some("2")
        );

        // History: two ReplicaSets with revisions, hash labels and a controller reference.
        let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
        let rs = sets
            .list(&ListParams::default().labels("app=web"))
            .await?
            .items;
        assert_eq!(rs.len(), 2);
        let by_rev = |r: &str| {
            rs.iter()
                .find(|s| {
                    s.annotations()
                        .get("deployment.kubernetes.io/revision")
                        .map(String::as_str)
                        == Some(r)
                })
                .cloned()
        };
        let old = by_rev("1").expect("revision 1");
        let new = by_rev("2").expect("revision 2");
        assert_eq!(
            new.annotations()
                .get("kubernetes.io/change-cause")
                .map(String::as_str),
            Some("image 1.28")
        );
        assert!(old.labels().contains_key("pod-template-hash"));
        assert!(
            old.owner_references()
                .iter()
                .any(|r| r.controller == Some(true) && r.kind == "Deployment")
        );
        assert_eq!(old.spec.as_ref().and_then(|s| s.replicas), Some(0));

        // rollout undo, as kubectl does it: the old template without its hash label.
        let mut template = serde_json::to_value(old.spec.unwrap().template.unwrap())?;
        template["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("pod-template-hash");
        deploys
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Json::<()>(serde_json::from_value(json!([
                    {"op": "replace", "path": "/spec/template", "value": template}
                ]))?),
            )
            .await?;
        wait_for(
            "the undo to roll out on the old ReplicaSet",
            WAIT,
            || async {
                let d = deploys.get("web").await?;
                let rev3 = d
                    .annotations()
                    .get("deployment.kubernetes.io/revision")
                    .map(String::as_str)
                    == Some("3");
                Ok((rolled_out(&d) && rev3).then_some(()))
            },
        )
        .await?;
        let rs = sets
            .list(&ListParams::default().labels("app=web"))
            .await?
            .items;
        assert_eq!(rs.len(), 2, "undo reuses the old ReplicaSet");
        let current = rs
            .iter()
            .find(|s| s.name_any() == old.metadata.name.clone().unwrap())
            .unwrap();
        assert_eq!(
            current
                .annotations()
                .get("deployment.kubernetes.io/revision")
                .map(String::as_str),
            Some("3")
        );
        let images: Vec<String> = pods
            .list(&ListParams::default().labels("app=web"))
            .await?
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| {
                p.spec.as_ref().unwrap().containers[0]
                    .image
                    .clone()
                    .unwrap_or_default()
            })
            .collect();
        assert!(images.iter().all(|i| i == "nginx:1.27"), "{images:?}");
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn pods_of_a_silent_node_are_replaced_elsewhere() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(3)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "wl").await?;
        let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        create(&deploys, deployment("svc", 3, "nginx", 1, 0)).await?;
        wait_rolled_out(&deploys, "svc").await?;
        let list = pods
            .list(&ListParams::default().labels("app=svc"))
            .await?
            .items;
        let victim = list[0].spec.as_ref().unwrap().node_name.clone().unwrap();
        cluster.nodes().unwrap().stop_heartbeat(&victim);
        let started = std::time::Instant::now();
        wait_for(
            "3 running replicas away from the silent node",
            WAIT,
            || async {
                let list = pods
                    .list(&ListParams::default().labels("app=svc"))
                    .await?
                    .items;
                let elsewhere = list
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter(|p| {
                        p.spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_deref())
                            .is_some_and(|n| n != victim)
                    })
                    .filter(|p| is_ready(p))
                    .count();
                Ok((elsewhere == 3).then_some(()))
            },
        )
        .await?;
        println!(
            "failover took {:?} (grace period 5 s in this test)",
            started.elapsed()
        );
        let nodes: Api<Node> = Api::all(client.clone());
        let node = nodes.get(&victim).await?;
        let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
        assert!(
            taints
                .iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute"),
            "{taints:?}"
        );
        let ready = node
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "Unknown");
        // Back: the taints go.
        cluster.nodes().unwrap().resume_heartbeat(&victim);
        wait_for("the node to be untainted", WAIT, || async {
            let n = nodes.get(&victim).await?;
            Ok(n.spec
                .and_then(|s| s.taints)
                .unwrap_or_default()
                .is_empty()
                .then_some(()))
        })
        .await?;
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unschedulable_pods_explain_why_and_a_noexecute_taint_moves_pods() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(3)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "wl").await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        create(&pods, json!({"metadata": {"name": "huge"}, "spec": {"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": "100"}}}]}})).await?;
        let events: Api<Event> = Api::namespaced(client.clone(), &ns);
        let ev = wait_for("a FailedScheduling event", WAIT, || async {
            Ok(events.list(&ListParams::default()).await?.items.into_iter().find(|e| e.reason.as_deref() == Some("FailedScheduling")))
        })
        .await?;
        assert_eq!(ev.message.as_deref(), Some("0/3 nodes are available: 3 Insufficient cpu."));
        assert_eq!(ev.source.and_then(|s| s.component).as_deref(), Some("default-scheduler"));
        let cond = wait_for("the PodScheduled=False condition", WAIT, || async {
            let p = pods.get("huge").await?;
            Ok(p.status.and_then(|s| s.conditions).unwrap_or_default().into_iter().find(|c| c.type_ == "PodScheduled" && c.status == "False"))
        })
        .await?;
        assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));

        // A deployment, then a NoExecute taint on one node moves its pods off it.
        let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        create(&deploys, deployment("mover", 6, "nginx", 1, 1)).await?;
        wait_rolled_out(&deploys, "mover").await?;
        let nodes: Api<Node> = Api::all(client.clone());
        let target = cluster.nodes().unwrap().node_names()[0].clone();
        nodes
            .patch(&target, &PatchParams::default(), &Patch::Merge(json!({"spec": {"taints": [{"key": "maintenance", "value": "yes", "effect": "NoExecute"}]}})))
            .await?;
        wait_for("no pods left on the tainted node and 6 running elsewhere", WAIT, || async {
            let list = pods.list(&ListParams::default().labels("app=mover")).await?.items;
            let on_target = list.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(target.as_str())).count();
            let ready_elsewhere = list.iter().filter(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none()).count();
            Ok((on_target == 0 && ready_elsewhere == 6).then_some(()))
        })
        .await?;
        // The scheduler reported its bindings.
        let scheduled = events.list(&ListParams::default()).await?.items.into_iter().filter(|e| e.reason.as_deref() == Some("Scheduled")).count();
        assert!(scheduled >= 6);
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn spread_anti_affinity_and_retry_when_the_cluster_changes() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(3)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "wl").await?;
        let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        // Spread over the three zones, at most one per node for the anti-affine set.
        let mut spread = deployment("spread", 6, "nginx", 1, 1);
        spread["spec"]["template"]["spec"]["topologySpreadConstraints"] = json!([{"maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "spread"}}}]);
        create(&deploys, spread).await?;
        let mut solo = deployment("solo", 3, "nginx", 1, 1);
        solo["spec"]["template"]["spec"]["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "solo"}}, "topologyKey": "kubernetes.io/hostname"}]}});
        create(&deploys, solo).await?;
        wait_rolled_out(&deploys, "spread").await?;
        wait_rolled_out(&deploys, "solo").await?;
        let per_node = |app: &'static str| {
            let pods = pods.clone();
            async move {
                let mut m: HashMap<String, usize> = HashMap::new();
                for p in pods.list(&ListParams::default().labels(&format!("app={app}"))).await?.items {
                    if p.metadata.deletion_timestamp.is_none() {
                        *m.entry(p.spec.and_then(|s| s.node_name).unwrap_or_default()).or_default() += 1;
                    }
                }
                anyhow::Ok(m)
            }
        };
        let spread_nodes = per_node("spread").await?;
        assert_eq!(spread_nodes.len(), 3, "{spread_nodes:?}");
        assert!(spread_nodes.values().all(|n| *n == 2), "{spread_nodes:?}");
        let solo_nodes = per_node("solo").await?;
        assert!(solo_nodes.len() == 3 && solo_nodes.values().all(|n| *n == 1), "{solo_nodes:?}");
        // A fourth solo replica cannot fit...
        deploys
            .patch("solo", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 4}})))
            .await?;
        let events: Api<Event> = Api::namespaced(client.clone(), &ns);
        let ev = wait_for("the anti-affinity failure", WAIT, || async {
            Ok(events.list(&ListParams::default()).await?.items.into_iter().find(|e| e.reason.as_deref() == Some("FailedScheduling")))
        })
        .await?;
        assert!(ev.message.unwrap_or_default().contains("didn't match pod anti-affinity rules"));
        // ...until the cluster changes: a new node, and the pending pod is retried there.
        cluster.nodes().unwrap().add_node("extra").await?;
        wait_for("the fourth replica on the new node", WAIT, || async {
            let m = per_node("solo").await?;
            Ok((m.get("extra") == Some(&1) && m.len() == 4).then_some(()))
        })
        .await?;
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_pod_relabeled_out_of_its_replicaset_is_released_replaced_and_outlives_it()
-> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(1)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "wl").await?;
        let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let mut rs = deployment("quarantine", 2, "nginx:1.27", 1, 0);
        rs["metadata"]["name"] = json!("quarantine");
        rs["spec"].as_object_mut().unwrap().remove("strategy");
        create(&sets, rs).await?;
        let first = wait_for("two pods", WAIT, || async {
            let l = pods
                .list(&ListParams::default().labels("app=quarantine"))
                .await?
                .items;
            Ok((l.len() == 2).then(|| l[0].name_any()))
        })
        .await?;

        // Take one pod out of service.
        pods.patch(
            &first,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"app": "debug"}}})),
        )
        .await?;
        wait_for("the relabeled pod released", WAIT, || async {
            let p = pods.get(&first).await?;
            Ok(p.metadata
                .owner_references
                .unwrap_or_default()
                .is_empty()
                .then_some(()))
        })
        .await?;
        wait_for("a replacement", WAIT, || async {
            let l = pods
                .list(&ListParams::default().labels("app=quarantine"))
                .await?
                .items;
            Ok((l.len() == 2 && l.iter().all(|p| p.name_any() != first)).then_some(()))
        })
        .await?;

        // Deleting the ReplicaSet takes its pods, not the released one.
        sets.delete("quarantine", &kube::api::DeleteParams::foreground())
            .await?;
        wait_for("the ReplicaSet's pods gone", WAIT, || async {
            let l = pods
                .list(&ListParams::default().labels("app=quarantine"))
                .await?
                .items;
            Ok(l.is_empty().then_some(()))
        })
        .await?;
        let kept = pods.get(&first).await?;
        assert!(
            kept.metadata.deletion_timestamp.is_none(),
            "the released pod stays"
        );
        cluster.stop().await;
        Ok(())
    })
    .await
}
