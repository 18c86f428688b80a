//! End-to-end: `berth server --disable-agent --simulated-nodes 3` driven by the real kubectl
//! through the seeds' orchestration — the seeds' Deployment, Service and HPA, `rollout
//! status`, `set image`, `rollout history|undo|pause|resume|restart`, `scale`, `create job` +
//! `wait`, a NoExecute taint that moves pods away, and the scheduler's and controllers'
//! events.

use std::time::Duration;

use berth_e2e::server::BerthServer;
use berth_e2e::wait_until;

const WAIT: Duration = Duration::from_secs(90);

fn fixture(name: &str) -> String {
    format!(
        "{}/fixtures/seed-workflow/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn json(s: &BerthServer, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&a)).expect("kubectl -o json prints JSON")
}

/// (name, node, image) of the running, non-terminating pods of `app`.
fn app_pods(s: &BerthServer, app: &str) -> Vec<(String, String, String)> {
    let list = json(s, &["get", "pods", "-l", &format!("app={app}")]);
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| p["status"]["phase"] == "Running")
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
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn seeds_roll_out_roll_back_scale_run_jobs_and_move_off_tainted_nodes() {
    let s = BerthServer::start(&["--simulated-nodes", "3"]);
    wait_until("3 ready simulated nodes", WAIT, || {
        let nodes = json(&s, &["get", "nodes"]);
        let ready = nodes["items"]
            .as_array()?
            .iter()
            .filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count();
        (ready == 3).then_some(())
    });

    // The seeds' manifests, unchanged.
    for f in [
        "deployment-mywebapp.yaml",
        "service-mywebapp.yaml",
        "hpa-mywebapp.yaml",
    ] {
        s.ok(&["apply", "-f", &fixture(f)]);
    }
    let out = s.ok(&["rollout", "status", "deployment/mywebapp", "--timeout=90s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(app_pods(&s, "mywebapp").len(), 3);

    // The HPA reads (fake) metrics and reports.
    wait_until("the autoscaler to report", WAIT, || {
        let h = json(&s, &["get", "hpa", "mywebapp"]);
        (h["status"]["currentReplicas"] == 3).then_some(())
    });
    // Endpoints follow the pods.
    wait_until("3 endpoints", WAIT, || {
        let e = json(&s, &["get", "endpoints", "mywebapp"]);
        (e["subsets"][0]["addresses"].as_array().map(|a| a.len()) == Some(3)).then_some(())
    });

    // set image rolls; history shows two revisions; undo rolls back.
    s.ok(&[
        "set",
        "image",
        "deployment/mywebapp",
        "mywebapp=mywebapp:v2",
    ]);
    s.ok(&["rollout", "status", "deployment/mywebapp", "--timeout=90s"]);
    wait_until("all pods on v2", WAIT, || {
        let p = app_pods(&s, "mywebapp");
        (p.len() == 3 && p.iter().all(|(_, _, i)| i == "mywebapp:v2")).then_some(())
    });
    let history = s.ok(&["rollout", "history", "deployment/mywebapp"]);
    assert!(
        history.contains("REVISION") && history.contains('1') && history.contains('2'),
        "{history}"
    );
    s.ok(&["rollout", "undo", "deployment/mywebapp"]);
    s.ok(&["rollout", "status", "deployment/mywebapp", "--timeout=90s"]);
    wait_until("all pods back on latest", WAIT, || {
        let p = app_pods(&s, "mywebapp");
        (p.len() == 3 && p.iter().all(|(_, _, i)| i == "mywebapp:latest")).then_some(())
    });
    let d = json(&s, &["get", "deployment", "mywebapp"]);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );

    // pause: a template change is recorded but not rolled out; resume rolls it; restart
    // rolls a new revision of the same image.
    let sets_before = json(&s, &["get", "rs", "-l", "app=mywebapp"])["items"]
        .as_array()
        .map(|a| a.len());
    s.ok(&["rollout", "pause", "deployment/mywebapp"]);
    s.ok(&[
        "set",
        "image",
        "deployment/mywebapp",
        "mywebapp=mywebapp:v3",
    ]);
    wait_until(
        "the paused deployment to report Progressing=Unknown (DeploymentPaused)",
        WAIT,
        || {
            let d = json(&s, &["get", "deployment", "mywebapp"]);
            d["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "DeploymentPaused")
                .then_some(())
        },
    );
    let sets_paused = json(&s, &["get", "rs", "-l", "app=mywebapp"])["items"]
        .as_array()
        .map(|a| a.len());
    assert_eq!(sets_before, sets_paused, "no new ReplicaSet while paused");
    assert!(
        app_pods(&s, "mywebapp")
            .iter()
            .all(|(_, _, i)| i == "mywebapp:latest")
    );
    s.ok(&["rollout", "resume", "deployment/mywebapp"]);
    s.ok(&["rollout", "status", "deployment/mywebapp", "--timeout=90s"]);
    wait_until("all pods on v3", WAIT, || {
        let p = app_pods(&s, "mywebapp");
        (p.len() == 3 && p.iter().all(|(_, _, i)| i == "mywebapp:v3")).then_some(())
    });
    s.ok(&["rollout", "restart", "deployment/mywebapp"]);
    s.ok(&["rollout", "status", "deployment/mywebapp", "--timeout=90s"]);
    let d = json(&s, &["get", "deployment", "mywebapp"]);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "5"
    );
    assert!(
        !d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_null()
    );

    // scale (the HPA goes first so it does not scale back to its minimum).
    s.ok(&["delete", "hpa", "mywebapp"]);
    s.ok(&["scale", "deployment/mywebapp", "--replicas=5"]);
    s.ok(&["rollout", "status", "deployment/mywebapp", "--timeout=90s"]);
    assert_eq!(app_pods(&s, "mywebapp").len(), 5);

    // kubectl create job completes.
    s.ok(&[
        "create",
        "job",
        "hello",
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ]);
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/hello",
        "--timeout=90s",
    ]);

    // A NoExecute taint moves pods off a node.
    let node = app_pods(&s, "mywebapp")[0].1.clone();
    s.ok(&["taint", "nodes", &node, "maintenance=yes:NoExecute"]);
    wait_until("5 running pods, none on the tainted node", WAIT, || {
        let p = app_pods(&s, "mywebapp");
        (p.len() == 5 && p.iter().all(|(_, n, _)| *n != node)).then_some(())
    });

    // Events from the scheduler and the controllers.
    let events = json(&s, &["get", "events"]);
    let items = events["items"].as_array().cloned().unwrap_or_default();
    let has = |reason: &str, component: &str| {
        items
            .iter()
            .any(|e| e["reason"] == reason && e["source"]["component"] == component)
    };
    assert!(has("Scheduled", "default-scheduler"));
    assert!(has("ScalingReplicaSet", "berth-controller-manager"));
    assert!(has("SuccessfulCreate", "berth-controller-manager"));
    assert!(has("TaintManagerEviction", "berth-controller-manager"));
    let table = s.ok(&["get", "events"]);
    assert!(table.contains("Successfully assigned default/"), "{table}");
}
