//! End-to-end networking on three simulated hosts (network namespaces on a test-owned LAN):
//! one `berth server` and two `berth agent`s, real pods from a busybox image pushed with
//! `berth push`, real kubectl. Shows pod to pod across hosts; ClusterIP from a pod and from a
//! host; NodePort and LoadBalancer from outside the cluster; DNS names (services, headless,
//! StatefulSet pods, search domains, forwarding to the hosts' resolver) from pods; an
//! Ingress routing by host and path; an unready pod leaving the endpoints and the traffic;
//! a NetworkPolicy denying then allowing; and that stopping the cluster removes every link,
//! route and table berth created.

mod agent_support;
mod net_support;

use std::collections::BTreeSet;

use berth_e2e::wait_until;
use net_support::*;

const WEB_CMD: &str = "mkdir -p /var/www/api && hostname > /var/www/index.html && echo api-$(hostname) > /var/www/api/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /var/www";

fn web_yaml(replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      topologySpreadConstraints:
      - {{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {{matchLabels: {{app: web}}}}}}
      containers:
      - name: web
        image: netweb:1
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          exec: {{command: [test, -f, /tmp/ready]}}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-np}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080, nodePort: 30080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-lb}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{port: 8000, targetPort: 8080}}]
"#
    )
}

/// (name, node, podIP) of the Ready web pods.
fn web_pods(c: &Cluster) -> Vec<(String, String, String)> {
    let v = c.json(&["get", "pods", "-l", "app=web"]);
    let mut out: Vec<(String, String, String)> = v["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .map(|p| {
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["status"]["podIP"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// Runs a command in a pod; (success, stdout+stderr).
fn exec(c: &Cluster, pod: &str, cmd: &[&str]) -> (bool, String) {
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(cmd);
    let o = c.kubectl(&args, None);
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn wget(c: &Cluster, pod: &str, url: &str) -> Option<String> {
    let (ok, out) = exec(c, pod, &["timeout", "5", "wget", "-q", "-O", "-", url]);
    if !ok {
        eprintln!("wget {url} in {pod}: {out}");
    }
    ok.then(|| out.trim().to_string())
}

/// The set of pods answering `n` requests made by `f`.
fn answers(n: usize, mut f: impl FnMut() -> Option<String>) -> BTreeSet<String> {
    (0..n).filter_map(|_| f()).collect()
}

#[test]
fn three_hosts_pods_services_dns_ingress_policy_and_cleanup() {
    let mut c = Cluster::start(2, &[]);
    let tmp = tempfile::tempdir().unwrap();
    push_busybox(&c, tmp.path(), "netweb:1", &["sh", "-c", WEB_CMD]);
    c.apply(&web_yaml(3));
    let pods = wait_until("three Ready web pods, one per host", WAIT, || {
        let p = web_pods(&c);
        let nodes: BTreeSet<&String> = p.iter().map(|x| &x.1).collect();
        (p.len() == 3 && nodes.len() == 3).then_some(p)
    });
    let (p0, p1, p2) = (&pods[0], &pods[1], &pods[2]);
    eprintln!("pods: {pods:?}");

    // Pod to pod across hosts, with the pods' own addresses.
    assert_eq!(
        wget(&c, &p0.0, &format!("http://{}:8080/", p1.2)).as_deref(),
        Some(p1.0.as_str())
    );
    assert_eq!(
        wget(&c, &p2.0, &format!("http://{}:8080/", p0.2)).as_deref(),
        Some(p0.0.as_str())
    );

    // ClusterIP: from a pod (by address and by name, with the search domains) and from a
    // host; every endpoint answers.
    let svc = c.json(&["get", "svc", "web"]);
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let all: BTreeSet<String> = pods.iter().map(|p| p.0.clone()).collect();
    let seen = answers(30, || wget(&c, &p0.0, &format!("http://{cluster_ip}/")));
    assert_eq!(seen, all, "ClusterIP from a pod reaches every endpoint");
    let seen = answers(30, || wget(&c, &p1.0, "http://web/"));
    assert_eq!(
        seen, all,
        "the short name resolves through the search domains"
    );
    assert_eq!(
        wget(&c, &p2.0, "http://web.default.svc.cluster.local/api/").map(|s| s.starts_with("api-")),
        Some(true)
    );
    let host = c.host("node-1");
    let seen = answers(30, || {
        let (code, body) = host.ns.curl(&format!("http://{cluster_ip}/"), &[]);
        (code == 200).then(|| body.trim().to_string())
    });
    assert_eq!(seen, all, "ClusterIP from a host");

    // NodePort and LoadBalancer from outside the cluster.
    for h in &c.hosts {
        let (code, body) = c.outside.curl(&format!("http://{}:30080/", h.ip), &[]);
        assert_eq!(code, 200, "NodePort on {}: {body}", h.node);
    }
    let lb = wait_until("the LoadBalancer's external IPs", WAIT, || {
        let s = c.json(&["get", "svc", "web-lb"]);
        let ips: Vec<String> = s["status"]["loadBalancer"]["ingress"]
            .as_array()?
            .iter()
            .filter_map(|i| i["ip"].as_str().map(str::to_string))
            .collect();
        (ips.len() == 3).then_some(ips)
    });
    let get_svc = c.ok(&["get", "svc", "web-lb"]);
    assert!(
        get_svc.contains(&lb.join(",")) && get_svc.contains("8000:3"),
        "{get_svc}"
    );
    let seen = answers(30, || {
        let (code, body) = c.outside.curl(&format!("http://{}:8000/", lb[1]), &[]);
        (code == 200).then(|| body.trim().to_string())
    });
    assert_eq!(
        seen, all,
        "LoadBalancer from outside reaches every endpoint"
    );

    // DNS from pods: services, forwarding to the hosts' resolver, NXDOMAIN.
    let (ok, out) = exec(
        &c,
        &p0.0,
        &["nslookup", "web.default.svc.cluster.local", "10.43.0.10"],
    );
    assert!(ok && out.contains(&cluster_ip), "{out}");
    let (ok, out) = exec(
        &c,
        &p1.0,
        &["nslookup", "kubernetes.default.svc.cluster.local"],
    );
    assert!(ok && out.contains("10.43.0.1"), "{out}");
    let (ok, out) = exec(&c, &p2.0, &["nslookup", "shop.test"]);
    assert!(
        ok && out.contains(OUTSIDE_IP),
        "forwarded to the hosts' resolver: {out}"
    );
    let (ok, out) = exec(
        &c,
        &p2.0,
        &["nslookup", "nothing.default.svc.cluster.local"],
    );
    assert!(
        !ok || out.contains("NXDOMAIN") || out.contains("can't resolve"),
        "{out}"
    );

    // Headless Service and StatefulSet pod names.
    c.apply(STATEFUL_YAML);
    wait_until("two Ready db pods", WAIT, || {
        let v = c.json(&["get", "pods", "-l", "app=db"]);
        let ready = v["items"]
            .as_array()?
            .iter()
            .filter(|p| {
                p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count();
        (ready == 2).then_some(())
    });
    let db0_ip = c.json(&["get", "pod", "db-0"])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let db1_ip = c.json(&["get", "pod", "db-1"])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let out = wait_until("the headless Service to list both pods", WAIT, || {
        let (ok, out) = exec(&c, &p0.0, &["nslookup", "db.default.svc.cluster.local"]);
        (ok && out.contains(&db0_ip) && out.contains(&db1_ip)).then_some(out)
    });
    assert!(
        !out.contains("Address: 10.43."),
        "a headless name has no ClusterIP: {out}"
    );
    let (ok, out) = exec(
        &c,
        &p1.0,
        &["nslookup", "db-1.db.default.svc.cluster.local"],
    );
    assert!(
        ok && out.contains(&db1_ip) && !out.contains(&db0_ip),
        "StatefulSet pod name: {out}"
    );
    assert_eq!(
        wget(&c, &p2.0, "http://db-0.db:8080/").map(|s| s == "db-0"),
        Some(true)
    );
    let (ok, out) = exec(
        &c,
        &p2.0,
        &[
            "nslookup",
            "-type=SRV",
            "_http._tcp.web.default.svc.cluster.local",
        ],
    );
    assert!(
        ok && out.contains("web.default.svc.cluster.local") && out.contains("80"),
        "SRV: {out}"
    );

    // Ingress: host and path rules, default backend, HTTP/2, TLS from a Secret by SNI.
    c.apply(OTHER_YAML);
    wait_until("a Ready other pod", WAIT, || {
        let v = c.json(&["get", "pods", "-l", "app=other"]);
        v["items"]
            .as_array()?
            .iter()
            .any(|p| {
                p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .then_some(())
    });
    let (cert, key) = self_signed(tmp.path(), "a.test");
    c.ok(&[
        "create", "secret", "tls", "a-tls", "--cert", &cert, "--key", &key,
    ]);
    c.apply(INGRESS_YAML);
    let via = c.hosts[1].ip.clone();
    let body = |host: &str, path: &str| -> String {
        wait_until(&format!("ingress {host}{path}"), WAIT, || {
            let (code, body) = c.outside.curl(
                &format!("http://{via}{path}"),
                &["-H", &format!("Host: {host}")],
            );
            (code == 200).then(|| body.trim().to_string())
        })
    };
    assert!(all.contains(&body("a.test", "/")), "a.test / goes to web");
    assert_eq!(
        body("a.test", "/api/"),
        "other-api",
        "a.test /api goes to other"
    );
    assert_eq!(body("b.test", "/"), "other", "b.test goes to other");
    assert!(
        all.contains(&body("unknown.test", "/")),
        "the default backend"
    );
    let seen = answers(20, || {
        let (code, b) = c
            .outside
            .curl(&format!("http://{via}/"), &["-H", "Host: a.test"]);
        (code == 200).then(|| b.trim().to_string())
    });
    assert_eq!(seen, all, "the Ingress balances over every ready endpoint");
    let o = c.outside.out(&[
        "curl",
        "-sS",
        "-m",
        "3",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        "--http2-prior-knowledge",
        "-H",
        "Host: a.test",
        &format!("http://{via}/"),
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "2", "HTTP/2 cleartext");
    let o = c.outside.out(&[
        "curl",
        "-sSkv",
        "-m",
        "3",
        "--http2",
        "--resolve",
        &format!("a.test:443:{via}"),
        "https://a.test/api/",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains("other-api") && text.contains("CN=a.test") && text.contains("HTTP/2 200"),
        "TLS by SNI over HTTP/2: {text}"
    );
    let o = c.outside.out(&[
        "curl",
        "-sSk",
        "-m",
        "3",
        "--http1.1",
        "-w",
        " %{http_version}",
        "--resolve",
        &format!("a.test:443:{via}"),
        "https://a.test/api/",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("other-api") && text.ends_with(" 1.1"),
        "TLS by SNI over HTTP/1.1: {text} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    wait_until("the Ingress's address", WAIT, || {
        let v = c.json(&["get", "ingress", "web"]);
        v["status"]["loadBalancer"]["ingress"]
            .as_array()
            .filter(|a| a.len() == 3)
            .map(|_| ())
    });
    let listing = c.ok(&["get", "ingress", "web"]);
    assert!(
        listing.contains("berth") && listing.contains("172.31.0.1"),
        "{listing}"
    );

    // An unready pod leaves the endpoints and stops getting traffic (ClusterIP, NodePort,
    // LoadBalancer, Ingress).
    exec(&c, &p2.0, &["rm", "/tmp/ready"]);
    let ready: BTreeSet<String> = [p0.0.clone(), p1.0.clone()].into();
    wait_until("the unready pod to leave the ready endpoints", WAIT, || {
        let s = c.ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]} {end}",
        ]);
        (!s.contains(&p2.2) && s.contains(&p0.2)).then_some(())
    });
    // The rules follow within moments; from then on the pod gets nothing.
    let via_cluster_ip = || {
        let (code, body) = c
            .host("node-2")
            .ns
            .curl(&format!("http://{cluster_ip}/"), &[]);
        (code == 200).then(|| body.trim().to_string())
    };
    let via_node_port = || {
        let (code, body) = c
            .outside
            .curl(&format!("http://{}:30080/", c.hosts[2].ip), &[]);
        (code == 200).then(|| body.trim().to_string())
    };
    let via_ingress = || {
        let (code, b) = c
            .outside
            .curl(&format!("http://{via}/"), &["-H", "Host: a.test"]);
        (code == 200).then(|| b.trim().to_string())
    };
    for (what, f) in [
        ("ClusterIP", &via_cluster_ip as &dyn Fn() -> Option<String>),
        ("NodePort", &via_node_port),
        ("Ingress", &via_ingress),
    ] {
        wait_until(
            &format!("{what} traffic to avoid the unready pod"),
            WAIT,
            || (answers(6, f) == ready).then_some(()),
        );
        assert_eq!(
            answers(24, f),
            ready,
            "no {what} traffic to the unready pod"
        );
    }
    exec(&c, &p2.0, &["touch", "/tmp/ready"]);

    // NetworkPolicy: deny every ingress to the web pods, then allow the other pods on 8080.
    let other_pod = c.json(&["get", "pods", "-l", "app=other"])["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let target = format!("http://{}:8080/", p1.2);
    assert!(
        wget(&c, &other_pod, &target).is_some(),
        "reachable before any policy"
    );
    c.apply(DENY_YAML);
    wait_until("the policy to deny", WAIT, || {
        wget(&c, &other_pod, &target).is_none().then_some(())
    });
    assert!(
        wget(&c, &p0.0, &target).is_none(),
        "denied from another web pod too"
    );
    c.apply(ALLOW_YAML);
    wait_until("the policy to allow the other pods", WAIT, || {
        wget(&c, &other_pod, &target).map(|_| ())
    });
    assert!(
        wget(&c, &p0.0, &target).is_none(),
        "still denied from unlisted pods"
    );
    c.ok(&["delete", "networkpolicy", "deny-web", "allow-other"]);
    wait_until("traffic to flow again", WAIT, || {
        wget(&c, &p0.0, &target).map(|_| ())
    });

    // Stopping the cluster removes every link, route and table berth created.
    c.ok(&["delete", "ingress", "--all"]);
    c.ok(&["delete", "deployment,statefulset", "--all"]);
    c.ok(&["delete", "svc", "web", "web-np", "web-lb", "db", "other"]);
    wait_until("every pod gone", WAIT, || {
        let v = c.json(&["get", "pods", "-A"]);
        v["items"].as_array()?.is_empty().then_some(())
    });
    c.stop_all();
    for h in &c.hosts {
        let left = h.leftovers();
        assert!(
            left.is_empty(),
            "{} left behind: {left:?}\n{}",
            h.node,
            h.log_tail(20)
        );
    }
}

const STATEFUL_YAML: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: netweb:1
        ports: [{name: http, containerPort: 8080}]
"#;

const OTHER_YAML: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: other}
spec:
  replicas: 1
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers:
      - name: other
        image: netweb:1
        command: [sh, -c, "mkdir -p /var/www/api && echo other > /var/www/index.html && echo other-api > /var/www/api/index.html && exec httpd -f -p 8080 -h /var/www"]
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: other}
spec:
  selector: {app: other}
  ports: [{port: 80, targetPort: 8080}]
"#;

const INGRESS_YAML: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: berth
  defaultBackend: {service: {name: web, port: {number: 80}}}
  tls: [{hosts: [a.test], secretName: a-tls}]
  rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
      - {path: /api, pathType: Prefix, backend: {service: {name: other, port: {number: 80}}}}
  - host: b.test
    http:
      paths:
      - {path: /, pathType: Exact, backend: {service: {name: other, port: {number: 80}}}}
"#;

const DENY_YAML: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
"#;

const ALLOW_YAML: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-other}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: other}}}]
    ports: [{port: http}]
"#;

/// A self-signed certificate and key for `host` (PEM files in `dir`).
fn self_signed(dir: &std::path::Path, host: &str) -> (String, String) {
    let cert = dir.join(format!("{host}.crt"));
    let key = dir.join(format!("{host}.key"));
    let o = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN={host}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    )
}
