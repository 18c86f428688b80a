//! Endpoints/EndpointSlices from Services, and the HorizontalPodAutoscaler over fed metrics.

use std::time::Duration;

use berth_testing::{TestCluster, TestClusterOptions};
use berth_tests::{WAIT, create, namespace, wait_for, within};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(120);

fn deployment(name: &str, replicas: i32) -> serde_json::Value {
    json!({"metadata": {"name": name}, "spec": {"replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "web",
            "ports": [{"name": "http", "containerPort": 8080}],
            "resources": {"requests": {"cpu": "200m"}}}]}}}})
}

#[tokio::test]
async fn endpoints_follow_ready_pods() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(2)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "svc").await?;
        create(&Api::<Deployment>::namespaced(client.clone(), &ns), deployment("web", 3)).await?;
        create(&Api::<Service>::namespaced(client.clone(), &ns), json!({"metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})).await?;
        let eps: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
        let ep = wait_for("3 ready addresses", WAIT, || async {
            let e = eps.get_opt("web").await?;
            Ok(e.filter(|e| e.subsets.as_ref().and_then(|s| s.first()).and_then(|s| s.addresses.as_ref()).is_some_and(|a| a.len() == 3)))
        })
        .await?;
        let subset = &ep.subsets.unwrap()[0];
        assert_eq!(subset.ports.as_ref().unwrap()[0].port, 8080, "named targetPort resolved");
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
        let slice = wait_for("the endpoint slice", WAIT, || async {
            Ok(slices.list(&ListParams::default().labels("kubernetes.io/service-name=web")).await?.items.into_iter().find(|s| s.endpoints.len() == 3))
        })
        .await?;
        assert_eq!(slice.address_type, "IPv4");
        assert!(slice.endpoints.iter().all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true)));
        // Scale down: endpoints follow.
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}})))
            .await?;
        wait_for("1 address", WAIT, || async {
            let e = eps.get("web").await?;
            let n: usize = e.subsets.unwrap_or_default().iter().map(|s| s.addresses.as_ref().map_or(0, |a| a.len())).sum();
            Ok((n == 1).then_some(()))
        })
        .await?;
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn autoscaler_scales_up_and_down_from_fed_metrics() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(3)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "svc").await?;
        let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        create(&deploys, deployment("api", 2)).await?;
        // Twice the 50% target: 200m requested, 200m used.
        cluster.nodes().unwrap().set_cpu_usage(&ns, &[("app", "api")], 200);
        // The same usage is served as metrics.k8s.io (what `kubectl top` reads).
        let ar = kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics"),
            "pods",
        );
        let pod_metrics: Api<kube::core::DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        let listed = wait_for("PodMetrics of both pods", WAIT, || async {
            let l = pod_metrics.list(&ListParams::default().labels("app=api")).await?;
            Ok((l.items.len() == 2).then_some(l))
        })
        .await?;
        let cpu = listed.items[0].data["containers"][0]["usage"]["cpu"].as_str().unwrap_or_default().to_string();
        assert!(cpu == "200m" || cpu == "200000000n" || cpu == "200000u", "{cpu}");
        let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
        create(&hpas, json!({"metadata": {"name": "api"}, "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}})).await?;
        // 2 pods at 100% of a 50% target → 4; then 4 at 100% → capped at 5.
        wait_for("the deployment to scale up to the maximum", WAIT, || async {
            let d = deploys.get("api").await?;
            Ok((d.spec.unwrap().replicas == Some(5)).then_some(()))
        })
        .await?;
        let h = wait_for("ScalingLimited", WAIT, || async {
            let h = hpas.get("api").await?;
            let limited = h.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "ScalingLimited" && c.status == "True"));
            Ok(limited.then_some(h))
        })
        .await?;
        let st = h.status.unwrap();
        assert_eq!(st.desired_replicas, 5);
        assert!(st.last_scale_time.is_some());
        // Idle: scales down to the minimum after the stabilization window.
        cluster.nodes().unwrap().set_cpu_usage(&ns, &[("app", "api")], 10);
        wait_for("the deployment to scale down to 1", WAIT, || async {
            let d = deploys.get("api").await?;
            Ok((d.spec.unwrap().replicas == Some(1)).then_some(()))
        })
        .await?;
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn autoscaler_scale_up_is_limited_by_a_pods_policy() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(3)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "svc").await?;
        let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        create(&deploys, deployment("burst", 1)).await?;
        // 100% of requests used against a 20% target: the metric asks for 5× the pods.
        cluster.nodes().unwrap().set_cpu_usage(&ns, &[("app", "burst")], 200);
        let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
        create(&hpas, json!({"metadata": {"name": "burst"}, "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burst"},
            "minReplicas": 1, "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 20}}}],
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 1800}]}}}})).await?;
        // One pod per 30 minutes: 1 → 2, and a later sync at 2 (asking for 10) is held there.
        let h = wait_for("a sync at 2 replicas limited by the policy", WAIT, || async {
            let h = hpas.get("burst").await?;
            let Some(st) = h.status.clone() else { return Ok(None) };
            let limited = st.conditions.iter().flatten().any(|c| c.type_ == "ScalingLimited" && c.status == "True" && c.reason.as_deref() == Some("ScaleUpLimit"));
            Ok((st.current_replicas == Some(2) && st.desired_replicas == 2 && limited).then_some(h))
        })
        .await?;
        let st = h.status.unwrap();
        assert!(st.last_scale_time.is_some());
        let able = st.conditions.iter().flatten().find(|c| c.type_ == "AbleToScale").unwrap();
        assert_eq!(able.status, "True");
        assert_eq!(deploys.get("burst").await?.spec.unwrap().replicas, Some(2));
        // The event names the new size and the metric.
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns);
        let rescaled = wait_for("the SuccessfulRescale event", WAIT, || async {
            let list = events.list(&ListParams::default()).await?.items;
            Ok(list.into_iter().find(|e| e.reason.as_deref() == Some("SuccessfulRescale")))
        })
        .await?;
        assert_eq!(
            rescaled.message.as_deref(),
            Some("New size: 2; reason: cpu resource utilization (percentage of request) above target")
        );
        cluster.stop().await;
        Ok(())
    })
    .await
}
