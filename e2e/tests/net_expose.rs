//! `kubectl expose` in all its forms against the real API server, and `kubectl get svc`
//! showing TYPE, CLUSTER-IP, EXTERNAL-IP and PORT(S) as Kubernetes does (a control plane
//! without nodes: LoadBalancer addresses stay `<pending>`).

use std::collections::BTreeMap;

use berth_e2e::server::BerthServer;
use berth_e2e::wait_until;

/// `kubectl get svc` rows by name: (TYPE, CLUSTER-IP, EXTERNAL-IP, PORT(S)).
fn rows(s: &BerthServer) -> BTreeMap<String, (String, String, String, String)> {
    let out = s.ok(&["get", "svc"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{out}"
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                (
                    f[1].to_string(),
                    f[2].to_string(),
                    f[3].to_string(),
                    f[4].to_string(),
                ),
            )
        })
        .collect()
}

fn spec(s: &BerthServer, name: &str) -> serde_json::Value {
    serde_json::from_str(&s.ok(&["get", "svc", name, "-o", "json"])).unwrap()
}

fn node_port(v: &serde_json::Value, i: usize) -> i64 {
    v["spec"]["ports"][i]["nodePort"].as_i64().unwrap_or(0)
}

#[test]
fn kubectl_expose_in_all_forms_and_get_svc_columns() {
    berth_e2e::require_root();
    let s = BerthServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1",
        "--port=8080",
        "--replicas=0",
    ]);
    let multi = dir.path().join("multi.yaml");
    std::fs::write(
        &multi,
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: multi}
spec:
  replicas: 0
  selector: {matchLabels: {app: multi}}
  template:
    metadata: {labels: {app: multi}}
    spec:
      containers:
      - name: c
        image: busybox:1
        ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 9090}, {name: dns, containerPort: 5353, protocol: UDP}]
"#,
    )
    .unwrap();
    s.ok(&["apply", "-f", multi.to_str().unwrap()]);
    s.ok(&[
        "run",
        "pod1",
        "--image=busybox:1",
        "--port=9000",
        "--labels=run=pod1,tier=x",
    ]);
    let rs = wait_until(
        "the deployment's ReplicaSet",
        std::time::Duration::from_secs(60),
        || {
            let v: serde_json::Value =
                serde_json::from_str(&s.ok(&["get", "rs", "-l", "app=web", "-o", "json"])).ok()?;
            v["items"][0]["metadata"]["name"]
                .as_str()
                .map(str::to_string)
        },
    );

    // Every resource kind and flag kubectl knows.
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--name=web-np",
        "--type=NodePort",
        "--port=80",
        "--target-port=8080",
    ]);
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--name=web-lb",
        "--type=LoadBalancer",
        "--port=8000",
        "--target-port=8080",
    ]);
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--name=web-h",
        "--cluster-ip=None",
        "--port=80",
    ]);
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--name=web-ext",
        "--external-ip=192.0.2.10",
        "--port=80",
    ]);
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--name=web-udp",
        "--protocol=UDP",
        "--port=53",
    ]);
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--name=web-aff",
        "--session-affinity=ClientIP",
        "--port=80",
    ]);
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--name=web-sel",
        "--selector=app=other",
        "--port=80",
    ]);
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--name=web-ip",
        "--cluster-ip=10.43.200.200",
        "--port=80",
    ]);
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--name=web-lbip",
        "--type=LoadBalancer",
        "--load-balancer-ip=192.0.2.20",
        "--port=80",
    ]);
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--name=web-labels",
        "--labels=team=net",
        "--port=80",
    ]);
    s.ok(&["expose", "deployment", "multi"]);
    s.ok(&[
        "expose",
        "-f",
        multi.to_str().unwrap(),
        "--name=multi-file",
        "--type=NodePort",
    ]);
    s.ok(&["expose", "pod", "pod1"]);
    s.ok(&["expose", "svc", "web", "--name=web-copy", "--port=81"]);
    s.ok(&["expose", "rs", &rs, "--name=web-rs", "--port=82"]);
    s.ok(&["expose", "deployment/web", "--name=web-slash", "--port=83"]);
    let dry = s.ok(&[
        "expose",
        "deployment",
        "web",
        "--name=web-dry",
        "--port=80",
        "--dry-run=server",
        "-o",
        "json",
    ]);
    assert!(
        dry.contains("\"clusterIP\""),
        "a server dry run shows the allocated address: {dry}"
    );
    let client_dry = s.ok(&[
        "expose",
        "deployment",
        "web",
        "--name=web-dry",
        "--port=80",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    assert!(client_dry.contains("name: web-dry"), "{client_dry}");
    // A name taken and a resource that cannot be exposed fail as on Kubernetes.
    let err = s.fails(&["expose", "deployment", "web", "--port=80"]);
    assert!(
        err.contains("AlreadyExists") || err.contains("already exists"),
        "{err}"
    );
    s.ok(&["create", "configmap", "cm1"]);
    let err = s.fails(&["expose", "configmap", "cm1", "--port=80"]);
    assert!(err.contains("cannot expose"), "{err}");
    let err = s.fails(&[
        "expose",
        "deployment",
        "web",
        "--name=bad-ip",
        "--cluster-ip=192.0.2.1",
        "--port=80",
    ]);
    assert!(
        err.contains("spec.clusterIPs") || err.contains("not in the valid range"),
        "{err}"
    );
    assert!(
        s.kubectl(&["get", "svc", "web-dry"]).status.code() != Some(0),
        "dry runs create nothing"
    );

    // What kubectl get svc shows.
    let r = rows(&s);
    let (ty, ip, ext, ports) = &r["web"];
    assert_eq!(
        (ty.as_str(), ext.as_str(), ports.as_str()),
        ("ClusterIP", "<none>", "80/TCP")
    );
    assert!(ip.starts_with("10.43."), "{ip}");
    let np = spec(&s, "web-np");
    assert_eq!(r["web-np"].0, "NodePort");
    assert_eq!(r["web-np"].3, format!("80:{}/TCP", node_port(&np, 0)));
    assert!((30000..=32767).contains(&node_port(&np, 0)));
    let lb = spec(&s, "web-lb");
    assert_eq!(r["web-lb"].0, "LoadBalancer");
    assert_eq!(r["web-lb"].2, "<pending>", "no node can announce it");
    assert_eq!(r["web-lb"].3, format!("8000:{}/TCP", node_port(&lb, 0)));
    assert_eq!(
        (r["web-h"].1.as_str(), r["web-h"].3.as_str()),
        ("None", "80/TCP")
    );
    assert_eq!(r["web-ext"].2, "192.0.2.10");
    assert_eq!(r["web-udp"].3, "53/UDP");
    assert_eq!(r["web-ip"].1, "10.43.200.200");
    assert_eq!(r["web-lbip"].2, "<pending>");
    assert_eq!(r["multi"].3, "8080/TCP,9090/TCP,5353/UDP");
    let mf = spec(&s, "multi-file");
    assert_eq!(
        r["multi-file"].3,
        format!(
            "8080:{}/TCP,9090:{}/TCP,5353:{}/UDP",
            node_port(&mf, 0),
            node_port(&mf, 1),
            node_port(&mf, 2)
        )
    );
    assert_eq!(r["pod1"].3, "9000/TCP");
    assert_eq!(r["web-copy"].3, "81/TCP");
    assert_eq!(r["web-rs"].3, "82/TCP");
    assert_eq!(r["web-slash"].3, "83/TCP");
    assert_eq!(r["kubernetes"].3, "443/TCP");

    // The specs kubectl made.
    let web = spec(&s, "web");
    assert_eq!(web["spec"]["selector"], serde_json::json!({"app": "web"}));
    assert_eq!(web["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(spec(&s, "web-aff")["spec"]["sessionAffinity"], "ClientIP");
    assert_eq!(
        spec(&s, "web-sel")["spec"]["selector"],
        serde_json::json!({"app": "other"})
    );
    assert_eq!(spec(&s, "web-labels")["metadata"]["labels"]["team"], "net");
    assert_eq!(spec(&s, "web-lbip")["spec"]["loadBalancerIP"], "192.0.2.20");
    let pod1 = spec(&s, "pod1");
    assert_eq!(
        pod1["spec"]["selector"],
        serde_json::json!({"run": "pod1", "tier": "x"})
    );
    let m = spec(&s, "multi");
    let names: Vec<&str> = m["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["port-1", "port-2", "port-3"]);
    assert_eq!(
        spec(&s, "web-copy")["spec"]["selector"],
        serde_json::json!({"app": "web"})
    );
    let wide = s.ok(&["get", "svc", "web", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().contains("SELECTOR") && wide.contains("app=web"),
        "{wide}"
    );
}
