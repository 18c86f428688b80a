//! Service rules in a real kernel (root): ClusterIP spread over ready endpoints, hairpin,
//! NodePort, session affinity, rejection without endpoints, fail-closed for unknown Service
//! addresses, convergence of a restarted proxy, removal of the table.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_cri::{NetworkAttachment, PodNetwork};
use berth_net::{BridgeNetwork, PodNetworkConfig, ProxyConfig, Ruleset, ServiceRules};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use support::{NameServer, TestNetns, block_on_in, require_root, unique_name, who};

fn attachment(id: &str, ns: &TestNetns) -> NetworkAttachment {
    NetworkAttachment {
        sandbox_id: id.to_string(),
        pod_name: id.to_string(),
        pod_namespace: "default".into(),
        pod_uid: id.to_string(),
        netns: ns.path(),
        port_mappings: vec![],
    }
}

fn service(extra: serde_json::Value) -> Service {
    let mut v = json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "NodePort", "clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"],
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080, "targetPort": 8080}]}});
    for (k, val) in extra.as_object().unwrap() {
        v["spec"][k] = val.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn slice(eps: &[(&str, bool)]) -> EndpointSlice {
    let endpoints: Vec<_> = eps
        .iter()
        .map(|(ip, ready)| json!({"addresses": [ip], "conditions": {"ready": ready}, "nodeName": "node-a"}))
        .collect();
    serde_json::from_value(json!({"metadata": {"name": "web-1", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints}))
    .unwrap()
}

fn counts(ns: &TestNetns, addr: &str, n: usize) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let who = who(ns, addr).unwrap_or_else(|e| format!("error:{e:?}"));
        *m.entry(who).or_default() += 1;
    }
    m
}

#[test]
fn service_rules_balance_reject_fail_closed_and_converge() {
    require_root();
    let node = Arc::new(TestNetns::new("bsn"));
    let pods: Vec<TestNetns> = (0..3).map(|_| TestNetns::new("bsp")).collect();
    let client = TestNetns::new("bsp");
    let state = tempfile::tempdir().unwrap();
    let bridge = unique_name("bb");
    let table = unique_name("bt");
    let node2 = node.clone();
    block_on_in(&node, move || async move {
        let node = node2;
        let net = BridgeNetwork::new(PodNetworkConfig {
            bridge: bridge.clone(),
            state_dir: state.path().to_path_buf(),
            mtu: None,
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            service_cidr: "10.43.0.0/16".parse().unwrap(),
        })
        .unwrap();
        net.set_pod_cidr("10.42.5.0/24").await.unwrap();
        let mut ips = Vec::new();
        for (i, p) in pods.iter().enumerate() {
            let ip = net.setup(&attachment(&format!("p{i}"), p)).await.unwrap()[0].to_string();
            ips.push(ip);
        }
        net.setup(&attachment("client", &client)).await.unwrap();
        let _servers: Vec<NameServer> = pods
            .iter()
            .enumerate()
            .map(|(i, p)| NameServer::start(p, 8080, &format!("p{i}")))
            .collect();
        let config = ProxyConfig {
            node_name: "node-a".into(),
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            service_cidr: "10.43.0.0/16".parse().unwrap(),
            table: table.clone(),
            cluster_dns: None,
        };
        let mut rules = ServiceRules::new(config.clone()).unwrap();
        let svc = service(json!({}));
        let all = slice(&[(&ips[0], true), (&ips[1], true), (&ips[2], true)]);
        let r = rules
            .sync([&svc], [&all], vec![], Ruleset::default())
            .await
            .unwrap();
        assert!(r.applied && r.skipped.is_empty(), "{r:?}");
        // Unchanged objects: no transaction.
        let r = rules
            .sync([&svc], [&all], vec![], Ruleset::default())
            .await
            .unwrap();
        assert!(!r.applied);

        // Even spread over the three endpoints, from a pod and from the node.
        let c = counts(&client, "10.43.0.5:80", 60);
        assert_eq!(
            c.keys().cloned().collect::<Vec<_>>(),
            vec!["p0", "p1", "p2"],
            "{c:?}"
        );
        assert!(c.values().all(|n| *n >= 5), "uneven spread {c:?}");
        let c = counts(&node, "10.43.0.5:80", 30);
        assert!(c.keys().all(|k| k.starts_with('p')), "{c:?}");
        // Hairpin: a pod reaches itself through its own Service.
        let c = counts(&pods[0], "10.43.0.5:80", 30);
        assert!(c.contains_key("p0"), "{c:?}");
        assert!(c.keys().all(|k| k.starts_with('p')), "{c:?}");
        // NodePort on the node's address.
        let c = counts(&client, "10.42.5.1:30080", 15);
        assert!(c.keys().all(|k| k.starts_with('p')), "{c:?}");

        // An unready endpoint stops receiving traffic.
        let two = slice(&[(&ips[0], true), (&ips[1], false), (&ips[2], true)]);
        rules
            .sync([&svc], [&two], vec![], Ruleset::default())
            .await
            .unwrap();
        let c = counts(&client, "10.43.0.5:80", 40);
        assert!(!c.contains_key("p1") && c.len() == 2, "{c:?}");

        // ClientIP affinity: one client sticks to one endpoint.
        let sticky = service(json!({"sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}}}));
        rules
            .sync([&sticky], [&all], vec![], Ruleset::default())
            .await
            .unwrap();
        let c = counts(&client, "10.43.0.5:80", 20);
        assert_eq!(c.len(), 1, "{c:?}");
        // Affinity survives an unrelated rewrite.
        let other = serde_json::from_value::<Service>(
            json!({"metadata": {"name": "other", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.6", "ports": [{"port": 81}]}}),
        )
        .unwrap();
        rules
            .sync([&sticky, &other], [&all], vec![], Ruleset::default())
            .await
            .unwrap();
        let again = counts(&client, "10.43.0.5:80", 10);
        assert_eq!(
            again.keys().collect::<Vec<_>>(),
            c.keys().collect::<Vec<_>>()
        );

        // No endpoints: refused at once (not a timeout, not forwarded).
        rules
            .sync([&svc], [&slice(&[])], vec![], Ruleset::default())
            .await
            .unwrap();
        assert_eq!(
            who(&client, "10.43.0.5:80"),
            Err(std::io::ErrorKind::ConnectionRefused)
        );
        assert_eq!(
            who(&client, "10.42.5.1:30080"),
            Err(std::io::ErrorKind::ConnectionRefused)
        );
        // A ClusterIP on a port it does not serve is refused; an unallocated Service address
        // goes nowhere (dropped on the node).
        rules
            .sync([&svc], [&all], vec![], Ruleset::default())
            .await
            .unwrap();
        assert_eq!(
            who(&client, "10.43.0.5:81"),
            Err(std::io::ErrorKind::ConnectionRefused)
        );
        assert!(who(&client, "10.43.0.99:80").is_err());
        assert!(who(&node, "10.43.0.99:80").is_err());

        // A restarted proxy (no memory) converges to the objects and drops stale chains.
        rules
            .sync([&svc, &other], [&all], vec![], Ruleset::default())
            .await
            .unwrap();
        // The changes above went in as incremental transactions; the kernel's table is the
        // one a full rewrite of the same objects makes.
        let sorted = |t: String| {
            let mut l: Vec<String> = t.lines().map(|l| l.trim().to_string()).collect();
            l.sort();
            l
        };
        let incremental = sorted(rules.list_text().await.unwrap());
        let mut fresh = ServiceRules::new(config.clone()).unwrap();
        fresh
            .sync([&svc, &other], [&all], vec![], Ruleset::default())
            .await
            .unwrap();
        assert_eq!(incremental, sorted(fresh.list_text().await.unwrap()));
        drop(fresh);
        drop(rules);
        let mut restarted = ServiceRules::new(config).unwrap();
        restarted
            .sync([&other], [], vec![], Ruleset::default())
            .await
            .unwrap();
        let text = restarted.list_text().await.unwrap();
        assert!(!text.contains("default/web/"), "stale chains left:\n{text}");
        assert!(text.contains("10.43.0.6"), "{text}");
        assert_eq!(who(&client, "10.43.0.5:80").ok(), None);

        // Removal leaves no table behind.
        restarted.remove().await.unwrap();
        let tables = node.exec(&["nft", "list", "tables"]);
        assert!(!tables.contains(&table), "{tables}");
        restarted.remove().await.unwrap();
    });
}
