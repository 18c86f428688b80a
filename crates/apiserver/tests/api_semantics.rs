//! API semantics through the in-process router with real kube-rs clients (no sockets, no
//! root): allocation without duplicates under concurrency, watch resourceVersion semantics
//! and expiry, paginated lists at one revision, selector transitions in watches.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use berth_apiserver::{ApiConfig, ApiServer, Authenticator, Identity};
use berth_store::{MemoryStore, Store};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

async fn server(store: Arc<dyn Store>) -> (ApiServer, kube::Client) {
    let api = ApiServer::new(ApiConfig::default(), store, Authenticator::new())
        .await
        .expect("server");
    berth_apiserver::bootstrap(&api).await.expect("bootstrap");
    let client = api.client(Identity::system("test"));
    (api, client)
}

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

async fn within<F: std::future::Future<Output = T>, T>(f: F) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_services_get_distinct_cluster_ips_and_node_ports() {
    within(async {
        let (_api, client) = server(Arc::new(MemoryStore::new())).await;
        let svcs: Api<Service> = Api::namespaced(client, "default");
        let mut tasks = Vec::new();
        for i in 0..60 {
            let svcs = svcs.clone();
            tasks.push(tokio::spawn(async move {
                let s: Service = serde_json::from_value(json!({"metadata": {"name": format!("s{i}")},
                    "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}, {"port": 443, "name": "https"}]}}))
                .unwrap();
                let s = if i % 10 == 0 {
                    // some ask for specific ports and IPs too, in the bands dynamic
                    // allocation leaves for them
                    let mut v = serde_json::to_value(&s).unwrap();
                    v["spec"]["ports"][0]["name"] = json!("http");
                    v["spec"]["ports"][0]["nodePort"] = json!(30000 + i);
                    v["spec"]["clusterIP"] = json!(format!("10.43.0.{}", 100 + i));
                    serde_json::from_value(v).unwrap()
                } else {
                    let mut v = serde_json::to_value(&s).unwrap();
                    v["spec"]["ports"][0]["name"] = json!("http");
                    serde_json::from_value(v).unwrap()
                };
                svcs.create(&PostParams::default(), &s).await
            }));
        }
        let mut ips = HashSet::new();
        let mut ports = HashSet::new();
        for t in tasks {
            let s = t.await.unwrap().expect("create service");
            let spec = s.spec.unwrap();
            assert!(ips.insert(spec.cluster_ip.unwrap()), "duplicate ClusterIP");
            for p in spec.ports.unwrap() {
                let np = p.node_port.unwrap();
                assert!((30000..=32767).contains(&np));
                assert!(ports.insert(np), "duplicate NodePort {np}");
            }
        }
        assert_eq!(ips.len(), 60);
        assert!(!ips.contains("10.43.0.1"), "the kubernetes service keeps the first IP");
        // A taken IP or port is refused with a field error, and the release after delete
        // makes it available again.
        let taken: Service = serde_json::from_value(json!({"metadata": {"name": "dup"},
            "spec": {"clusterIP": "10.43.0.100", "ports": [{"port": 80}]}})).unwrap();
        let err = svcs.create(&PostParams::default(), &taken).await.unwrap_err();
        match err {
            kube::Error::Api(s) => {
                assert_eq!(s.code, 422);
                assert!(s.message.contains("already allocated"), "{}", s.message);
            }
            other => panic!("{other}"),
        }
        svcs.delete("s0", &Default::default()).await.unwrap();
        svcs.create(&PostParams::default(), &taken).await.expect("released IP is reusable");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_follow_resource_version_semantics() {
    within(async {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (_api, client) = server(store.clone()).await;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let a = cms
            .create(&PostParams::default(), &cm("a", json!({"app": "x"})))
            .await
            .unwrap();
        let rv_a = a.metadata.resource_version.clone().unwrap();
        cms.create(&PostParams::default(), &cm("b", json!({"app": "x"})))
            .await
            .unwrap();

        // From N: only what happened after N.
        let mut w = cms
            .watch(&WatchParams::default(), &rv_a)
            .await
            .unwrap()
            .boxed();
        match w.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("b")),
            other => panic!("{other:?}"),
        }
        // From 0: the current state first.
        let mut w0 = cms
            .watch(&WatchParams::default(), "0")
            .await
            .unwrap()
            .boxed();
        let mut names = Vec::new();
        for _ in 0..2 {
            if let WatchEvent::Added(o) = w0.try_next().await.unwrap().unwrap() {
                names.push(o.metadata.name.unwrap());
            }
        }
        names.sort();
        assert_eq!(names, vec!["a", "b"]);
        // A selector the object leaves turns its update into DELETED for that watcher.
        let list = cms.list(&ListParams::default()).await.unwrap();
        let rv = list.metadata.resource_version.unwrap();
        let mut sel = cms
            .watch(&WatchParams::default().labels("app=x"), &rv)
            .await
            .unwrap()
            .boxed();
        let mut moved = cms.get("a").await.unwrap();
        moved.metadata.labels = Some([("app".to_string(), "y".to_string())].into());
        cms.replace("a", &PostParams::default(), &moved)
            .await
            .unwrap();
        match sel.try_next().await.unwrap().unwrap() {
            WatchEvent::Deleted(o) => assert_eq!(o.metadata.name.as_deref(), Some("a")),
            other => panic!("{other:?}"),
        }
        // Bookmarks come when asked for.
        let wp = WatchParams {
            bookmarks: true,
            ..WatchParams::default().timeout(30)
        };
        let mut bm = cms.watch(&wp, &rv).await.unwrap().boxed();
        let got_bookmark = loop {
            match bm.try_next().await.unwrap() {
                Some(WatchEvent::Bookmark(b)) => break !b.metadata.resource_version.is_empty(),
                Some(_) => continue,
                None => break false,
            }
        };
        assert!(got_bookmark);

        // A new server over the same store: history before its start is gone -> 410 Expired.
        let (_api2, client2) = server(store).await;
        let cms2: Api<ConfigMap> = Api::namespaced(client2, "default");
        let mut old = cms2
            .watch(&WatchParams::default(), &rv_a)
            .await
            .unwrap()
            .boxed();
        match old.next().await {
            Some(Ok(WatchEvent::Error(e))) => {
                assert_eq!(e.code, 410);
                assert_eq!(e.reason, "Expired");
            }
            Some(Err(kube::Error::Api(e))) => assert_eq!(e.code, 410),
            other => panic!("expected 410, got {other:?}"),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginated_lists_are_consistent_at_the_first_page_revision() {
    within(async {
        let (_api, client) = server(Arc::new(MemoryStore::new())).await;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        for i in 0..25 {
            cms.create(
                &PostParams::default(),
                &cm(&format!("c{i:02}"), json!({"n": (i % 3).to_string()})),
            )
            .await
            .unwrap();
        }
        let first = cms.list(&ListParams::default().limit(10)).await.unwrap();
        assert_eq!(first.items.len(), 10);
        let token = first.metadata.continue_.clone().expect("continue token");
        let rv = first.metadata.resource_version.clone().unwrap();
        // Changes after the first page are not seen by the rest of this list.
        cms.delete("c24", &Default::default()).await.unwrap();
        cms.create(&PostParams::default(), &cm("c99", json!({})))
            .await
            .unwrap();
        let mut names: Vec<String> = first
            .items
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        let mut next = Some(token);
        while let Some(t) = next {
            let page = cms
                .list(&ListParams::default().limit(10).continue_token(&t))
                .await
                .unwrap();
            assert_eq!(page.metadata.resource_version.as_deref(), Some(rv.as_str()));
            names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
            next = page.metadata.continue_.filter(|c| !c.is_empty());
        }
        assert_eq!(names.len(), 25);
        assert!(names.contains(&"c24".to_string()) && !names.contains(&"c99".to_string()));
        // Set-based and equality selectors.
        let in_set = cms
            .list(&ListParams::default().labels("n in (0,1)"))
            .await
            .unwrap();
        // c00..c23 with n in {0, 1} (c24 was deleted after the first page)
        assert_eq!(in_set.items.len(), 16);
        let not = cms
            .list(&ListParams::default().labels("n!=0,n"))
            .await
            .unwrap();
        assert!(
            not.items
                .iter()
                .all(|c| c.metadata.labels.as_ref().unwrap()["n"] != "0")
        );
        let by_name = cms
            .list(&ListParams::default().fields("metadata.name=c05"))
            .await
            .unwrap();
        assert_eq!(by_name.items.len(), 1);
        let bad = cms
            .list(&ListParams::default().fields("spec.nodeName=x"))
            .await
            .unwrap_err();
        match bad {
            kube::Error::Api(s) => assert_eq!(s.code, 400),
            other => panic!("{other}"),
        }
    })
    .await
}

struct FixedMetrics;

#[async_trait::async_trait]
impl berth_apiserver::metrics::MetricsProvider for FixedMetrics {
    async fn nodes(&self) -> Vec<berth_apiserver::metrics::NodeUsage> {
        vec![berth_apiserver::metrics::NodeUsage {
            name: "n1".into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            window_seconds: 10.0,
            cpu_nanocores: 250_000_000,
            memory_bytes: 512 * 1024 * 1024,
        }]
    }
    async fn pods(&self, namespace: Option<&str>) -> Vec<berth_apiserver::metrics::PodUsage> {
        ["default", "other"]
            .iter()
            .filter(|ns| namespace.is_none_or(|n| n == **ns))
            .map(|ns| berth_apiserver::metrics::PodUsage {
                namespace: ns.to_string(),
                name: "web".into(),
                timestamp: "2026-01-01T00:00:00Z".into(),
                window_seconds: 10.0,
                containers: vec![("app".into(), 100_000_000, 64 * 1024 * 1024)],
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_api_is_served_from_the_provider() {
    within(async {
        let (api, client) = server(Arc::new(MemoryStore::new())).await;
        let get = |path: &'static str| {
            let client = client.clone();
            async move {
                let req = http::Request::get(path).body(Vec::new()).unwrap();
                client.request::<serde_json::Value>(req).await
            }
        };
        assert!(
            get("/apis/metrics.k8s.io/v1beta1/nodes").await.is_err(),
            "no provider, no group"
        );
        api.set_metrics_provider(Arc::new(FixedMetrics));
        let groups = get("/apis").await.unwrap();
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "metrics.k8s.io")
        );
        let nodes = get("/apis/metrics.k8s.io/v1beta1/nodes").await.unwrap();
        assert_eq!(nodes["items"][0]["usage"]["cpu"], "250m");
        assert_eq!(nodes["items"][0]["usage"]["memory"], "524288Ki");
        let pods = get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods")
            .await
            .unwrap();
        assert_eq!(pods["items"].as_array().unwrap().len(), 1);
        assert_eq!(pods["items"][0]["containers"][0]["usage"]["cpu"], "100m");
        let one = get("/apis/metrics.k8s.io/v1beta1/namespaces/other/pods/web")
            .await
            .unwrap();
        assert_eq!(one["kind"], "PodMetrics");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_authenticate_while_their_account_exists() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use tower::ServiceExt;
    within(async {
        let (api, client) = server(Arc::new(MemoryStore::new())).await;
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "robot"}})).unwrap();
        sas.create(&PostParams::default(), &sa).await.unwrap();
        let req = http::Request::post("/api/v1/namespaces/default/serviceaccounts/robot/token")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})).unwrap())
            .unwrap();
        let tr: serde_json::Value = client.request(req).await.expect("token request");
        let token = tr["status"]["token"].as_str().expect("token").to_string();
        assert!(tr["status"]["expirationTimestamp"].is_string());

        let call = |token: String| {
            let router = api.router();
            async move {
                let req = http::Request::get("/api/v1/namespaces/default/configmaps")
                    .header("authorization", format!("Bearer {token}"))
                    .body(axum::body::Body::empty())
                    .unwrap();
                router.oneshot(req).await.unwrap().status().as_u16()
            }
        };
        assert_eq!(call(token.clone()).await, 200);
        assert_eq!(call(format!("{token}x")).await, 401, "a tampered token is refused");
        assert_eq!(call("nonsense".into()).await, 401);
        sas.delete("robot", &Default::default()).await.unwrap();
        // The token dies with its ServiceAccount (once the cache has seen the deletion).
        let mut status = 200;
        for _ in 0..100 {
            status = call(token.clone()).await;
            if status == 401 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status, 401);
        let other: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap();
        sas.create(&PostParams::default(), &other).await.unwrap();
        let short = http::Request::post("/api/v1/namespaces/default/serviceaccounts/other/token")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&json!({"spec": {"expirationSeconds": 60}})).unwrap())
            .unwrap();
        let err = client.request::<serde_json::Value>(short).await.unwrap_err();
        match err {
            kube::Error::Api(s) => assert_eq!(s.code, 422),
            other => panic!("{other}"),
        }
    })
    .await
}
