//! Cluster-wide switches and traffic policies: `--disable ingress` and `--disable servicelb`
//! (no proxy ports on the nodes, LoadBalancer addresses stay pending),
//! `externalTrafficPolicy: Local` (only nodes with a local endpoint answer, and the client's
//! address reaches the pod) against `Cluster` (any node answers, masqueraded), and
//! `sessionAffinity: ClientIP` from outside.

mod agent_support;
mod net_support;

use std::collections::BTreeSet;

use berth_e2e::wait_until;
use net_support::*;

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {kubernetes.io/hostname: node-1}
      containers:
      - name: web
        image: netweb:1
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30081}]
---
apiVersion: v1
kind: Service
metadata: {name: cluster}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30082}]
---
apiVersion: v1
kind: Service
metadata: {name: lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sticky}
spec:
  replicas: 3
  selector: {matchLabels: {app: sticky}}
  template:
    metadata: {labels: {app: sticky}}
    spec:
      containers:
      - name: web
        image: netweb:1
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  type: NodePort
  sessionAffinity: ClientIP
  selector: {app: sticky}
  ports: [{port: 80, targetPort: 8080, nodePort: 30083}]
"#;

#[test]
fn disabled_components_and_traffic_policies() {
    let c = Cluster::start(1, &["--disable", "ingress", "--disable", "servicelb"]);
    let tmp = tempfile::tempdir().unwrap();
    push_busybox(
        &c,
        tmp.path(),
        "netweb:1",
        &[
            "sh",
            "-c",
            "hostname > /var/www/index.html && exec httpd -f -v -p 8080 -h /var/www",
        ],
    );
    c.apply(APP);
    let pod = wait_until("the web pod running", WAIT, || {
        let v = c.json(&["get", "pods", "-l", "app=web"]);
        let p = &v["items"][0];
        (p["status"]["phase"] == "Running")
            .then(|| p["metadata"]["name"].as_str().unwrap().to_string())
    });
    wait_until("three sticky pods running", WAIT, || {
        let v = c.json(&["get", "pods", "-l", "app=sticky"]);
        (v["items"]
            .as_array()?
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count()
            == 3)
            .then_some(())
    });

    // Disabled components: no IngressClass, nothing on port 80, LoadBalancer pending.
    assert!(
        c.kubectl(&["get", "ingressclass", "berth"], None)
            .status
            .code()
            != Some(0)
    );
    let (code, _) = c.outside.curl(&format!("http://{}/", c.hosts[0].ip), &[]);
    assert_eq!(code, 0, "no Ingress proxy listens");
    let listing = c.ok(&["get", "svc", "lb"]);
    assert!(listing.contains("<pending>"), "{listing}");

    // externalTrafficPolicy: Local answers only where the pod runs, with the client's address.
    let local_host = &c.host("node-1").ip;
    let other_host = &c.host("node-0").ip;
    let (code, body) = wait_until("the Local NodePort on the pod's node", WAIT, || {
        let r = c.outside.curl(&format!("http://{local_host}:30081/"), &[]);
        (r.0 == 200).then_some(r)
    });
    assert_eq!((code, body.trim()), (200, pod.as_str()));
    let (code, _) = c.outside.curl(&format!("http://{other_host}:30081/"), &[]);
    assert_eq!(
        code, 0,
        "a node without a local endpoint drops Local traffic"
    );
    let logs = c.ok(&["logs", &pod]);
    assert!(
        logs.contains(OUTSIDE_IP),
        "the pod saw the client's address: {logs}"
    );
    // Cluster policy: every node answers.
    let (code, _) = wait_until("the Cluster NodePort on the other node", WAIT, || {
        let r = c.outside.curl(&format!("http://{other_host}:30082/"), &[]);
        (r.0 == 200).then_some(r)
    });
    assert_eq!(code, 200);

    // sessionAffinity: ClientIP — one client, one pod.
    let seen: BTreeSet<String> = wait_until("the sticky NodePort", WAIT, || {
        let seen: BTreeSet<String> = (0..15)
            .filter_map(|_| {
                let (code, body) = c.outside.curl(&format!("http://{other_host}:30083/"), &[]);
                (code == 200).then(|| body.trim().to_string())
            })
            .collect();
        (seen.len() == 1).then_some(seen)
    });
    assert_eq!(seen.len(), 1);
}
