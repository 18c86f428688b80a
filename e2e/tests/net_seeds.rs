//! The seeds' workflow end to end on three simulated hosts: an image built from busybox
//! and pushed with `berth push`, `kubectl apply -f` of the seeds' Deployment, Service and
//! HPA, `kubectl expose svc mywebapp --type=LoadBalancer`, then HTTP requests from a
//! machine outside the cluster reach every replica.
//!
//! kubectl names the exposed Service after its source, so with the seeds' Service applied
//! the command as written fails with AlreadyExists, exactly as on Kubernetes; and a copy of
//! a Service targets the copied port. The test shows both, then exposes it as it works
//! there too (`--name`, `--target-port`).

mod agent_support;
mod net_support;

use std::collections::BTreeSet;

use berth_e2e::wait_until;
use net_support::*;

fn fixture(name: &str) -> String {
    format!(
        "{}/fixtures/seed-workflow/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn seeds_workflow_load_balancer_reaches_every_replica_from_outside() {
    let mut c = Cluster::start(2, &[]);
    let tmp = tempfile::tempdir().unwrap();
    push_busybox(
        &c,
        tmp.path(),
        "mywebapp:latest",
        &[
            "sh",
            "-c",
            "hostname > /var/www/index.html && exec httpd -f -p 8080 -h /var/www",
        ],
    );
    for f in [
        "deployment-mywebapp.yaml",
        "service-mywebapp.yaml",
        "hpa-mywebapp.yaml",
    ] {
        c.ok(&["apply", "-f", &fixture(f)]);
    }
    let replicas: BTreeSet<String> = wait_until("3 Running and Ready replicas", WAIT, || {
        let v = c.json(&["get", "pods", "-l", "app=mywebapp"]);
        let ready: BTreeSet<String> = v["items"]
            .as_array()?
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| {
                p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        (ready.len() == 3).then_some(ready)
    });

    // As on Kubernetes, exposing a Service under its own name collides with it...
    let o = c.kubectl(&["expose", "svc", "mywebapp", "--type=LoadBalancer"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("already exists"),
        "{err}"
    );
    // ...and kubectl makes a copy of a Service target the copied *port* (80), not the
    // pods' port (8080), again as on Kubernetes:
    c.ok(&[
        "expose",
        "svc",
        "mywebapp",
        "--type=LoadBalancer",
        "--name=mywebapp-copy",
    ]);
    let copy = c.json(&["get", "svc", "mywebapp-copy"]);
    assert_eq!(copy["spec"]["ports"][0]["targetPort"], 80, "{copy}");
    c.ok(&["delete", "svc", "mywebapp-copy"]);
    // So the working form names the copy and the pods' port.
    c.ok(&[
        "expose",
        "svc",
        "mywebapp",
        "--type=LoadBalancer",
        "--name=mywebapp-lb",
        "--target-port=8080",
    ]);
    let lb = c.json(&["get", "svc", "mywebapp-lb"]);
    assert_eq!(lb["spec"]["ports"][0]["port"], 80);
    assert_eq!(lb["spec"]["selector"]["app"], "mywebapp");
    let ips = wait_until("the LoadBalancer's addresses", WAIT, || {
        let s = c.json(&["get", "svc", "mywebapp-lb"]);
        let ips: Vec<String> = s["status"]["loadBalancer"]["ingress"]
            .as_array()?
            .iter()
            .filter_map(|i| i["ip"].as_str().map(str::to_string))
            .collect();
        (ips.len() == 3).then_some(ips)
    });
    let listing = c.ok(&["get", "svc", "mywebapp-lb"]);
    assert!(
        listing.contains("LoadBalancer") && listing.contains(&ips.join(",")),
        "{listing}"
    );

    // From outside the cluster, on every node's address, every replica answers.
    for ip in &ips {
        let seen: BTreeSet<String> =
            wait_until(&format!("every replica through {ip}"), WAIT, || {
                let seen: BTreeSet<String> = (0..24)
                    .filter_map(|_| {
                        let (code, body) = c.outside.curl(&format!("http://{ip}/"), &[]);
                        (code == 200).then(|| body.trim().to_string())
                    })
                    .collect();
                (seen == replicas).then_some(seen)
            });
        assert_eq!(seen, replicas);
    }
    let hpa = c.ok(&["get", "hpa", "mywebapp"]);
    assert!(hpa.contains("Deployment/mywebapp"), "{hpa}");
    c.stop_all();
}
