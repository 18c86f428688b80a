//! Restarts: after `kill -9` of an agent while Services change, its rules converge to the
//! cluster with no stale entries, its pods keep their addresses and stay reachable, and
//! the address of a pod removed while the agent was down is released.

mod agent_support;
mod net_support;

use berth_e2e::wait_until;
use net_support::*;

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
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
metadata: {name: svc-a}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#;

const SVC_C: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: svc-c}
spec:
  selector: {app: web}
  ports: [{port: 81, targetPort: 8080}]
"#;

fn table(h: &Host) -> String {
    String::from_utf8_lossy(&h.ns.out(&["nft", "list", "table", "ip", "berth"]).stdout).into_owned()
}

fn leases(h: &Host) -> usize {
    std::fs::read_dir(h.data.join("agent/net/ipam"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .parse::<std::net::Ipv4Addr>()
                        .is_ok()
                })
                .count()
        })
        .unwrap_or(0)
}

fn pods(c: &Cluster) -> Vec<(String, String)> {
    let v = c.json(&["get", "pods", "-l", "app=web"]);
    let mut out: Vec<(String, String)> = v["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running"
        })
        .filter_map(|p| {
            Some((
                p["metadata"]["name"].as_str()?.to_string(),
                p["status"]["podIP"].as_str()?.to_string(),
            ))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn agent_kill9_rules_converge_addresses_survive_and_leases_are_collected() {
    let mut c = Cluster::start(1, &[]);
    let tmp = tempfile::tempdir().unwrap();
    push_busybox(
        &c,
        tmp.path(),
        "netweb:1",
        &[
            "sh",
            "-c",
            "hostname > /var/www/index.html && exec httpd -f -p 8080 -h /var/www",
        ],
    );
    c.apply(APP);
    let before = wait_until("two running pods on node-1", WAIT, || {
        let p = pods(&c);
        (p.len() == 2).then_some(p)
    });
    let svc_a_ip = c.json(&["get", "svc", "svc-a"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("svc-a in node-1's rules", WAIT, || {
        table(c.host("node-1"))
            .contains("default/svc-a/")
            .then_some(())
    });
    assert_eq!(leases(c.host("node-1")), 2);

    // The agent dies; while it is down a Service goes, another comes, a pod is deleted.
    c.hosts[1].kill9();
    c.ok(&["delete", "svc", "svc-a"]);
    c.apply(SVC_C);
    c.ok(&["scale", "deployment", "web", "--replicas=1"]);
    c.hosts[1].restart();

    wait_until("node-1's rules to converge", WAIT, || {
        let t = table(c.host("node-1"));
        (!t.contains("default/svc-a/") && !t.contains(&svc_a_ip) && t.contains("default/svc-c/"))
            .then_some(())
    });
    let after = wait_until("one running pod", WAIT, || {
        let p = pods(&c);
        (p.len() == 1).then_some(p)
    });
    assert!(
        before.contains(&after[0]),
        "the surviving pod kept its address: {before:?} {after:?}"
    );
    let svc_c_ip = c.json(&["get", "svc", "svc-c"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = c
        .host("node-1")
        .ns
        .curl(&format!("http://{svc_c_ip}:81/"), &[]);
    assert_eq!((code, body.trim()), (200, after[0].0.as_str()));
    let (code, _) = c
        .host("node-0")
        .ns
        .curl(&format!("http://{}:8080/", after[0].1), &[]);
    assert_eq!(
        code, 200,
        "the pod is reachable from another host after the restart"
    );
    wait_until("the deleted pod's address to be released", WAIT, || {
        (leases(c.host("node-1")) == 1).then_some(())
    });
    c.stop_all();
}
