//! End-to-end: `berth server --disable-agent --simulated-nodes 3` driven by the real kubectl
//! through the seeds' orchestration — the seeds' Deployment, Service and HPA, `rollout
//! status`, `set image`, `rollout history|undo|pause|resume|restart`, `scale`, `create job` +
//! `wait`, a NoExecute taint that moves pods away, and the scheduler's and controllers'
//! events; and a DaemonSet's and a StatefulSet's ControllerRevisions through `rollout
//! history|undo|status` and `set image`.

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

/// `berth server --disable-agent --simulated-nodes 3`, once its 3 nodes are Ready.
fn server_with_three_nodes() -> BerthServer {
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
    s
}

#[test]
fn seeds_roll_out_roll_back_scale_run_jobs_and_move_off_tainted_nodes() {
    let s = server_with_three_nodes();

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

/// `kubectl apply -f -` of a JSON manifest.
fn apply(s: &BerthServer, manifest: &serde_json::Value) {
    let out = s.kubectl_with(&["apply", "-f", "-"], &[], Some(&manifest.to_string()));
    assert!(
        out.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The revision numbers `kubectl rollout history` lists.
fn history(s: &BerthServer, what: &str) -> Vec<i64> {
    s.ok(&["rollout", "history", what])
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Waits until `n` running pods of `app` all run `image`, and returns their
/// `controller-revision-hash` labels.
fn all_on(s: &BerthServer, app: &str, n: usize, image: &str) -> Vec<String> {
    wait_until(&format!("{n} {app} pods on {image}"), WAIT, || {
        let p = app_pods(s, app);
        (p.len() == n && p.iter().all(|(_, _, i)| i == image)).then_some(())
    });
    let list = json(s, &["get", "pods", "-l", &format!("app={app}")]);
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            p["metadata"]["labels"]["controller-revision-hash"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn daemonset_and_statefulset_history_undo_and_status_with_kubectl() {
    let s = server_with_three_nodes();
    let template = |app: &str, image: &str| {
        serde_json::json!({"metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": app, "image": image}]}})
    };

    // DaemonSet: one pod per node, revision 1.
    apply(
        &s,
        &serde_json::json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent", "agent:v1")}}),
    );
    let out = s.ok(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    all_on(&s, "agent", 3, "agent:v1");
    assert_eq!(history(&s, "ds/agent"), [1]);

    // set image: revision 2, rolled out to every node.
    s.ok(&["set", "image", "ds/agent", "agent=agent:v2"]);
    let out = s.ok(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let hashes = all_on(&s, "agent", 3, "agent:v2");
    assert_eq!(history(&s, "ds/agent"), [1, 2]);
    let rev1 = s.ok(&["rollout", "history", "ds/agent", "--revision=1"]);
    assert!(rev1.contains("agent:v1"), "{rev1}");
    let revs = json(&s, &["get", "controllerrevisions", "-l", "app=agent"]);
    let current = revs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["revision"] == 2)
        .expect("revision 2")
        .clone();
    let hash = current["metadata"]["labels"]["controller-revision-hash"]
        .as_str()
        .unwrap();
    assert!(hashes.iter().all(|h| h == hash), "{hashes:?} vs {hash}");
    assert_eq!(
        current["metadata"]["name"].as_str(),
        Some(format!("agent-{hash}").as_str())
    );

    // undo: back to the first template, which becomes revision 3.
    let out = s.ok(&["rollout", "undo", "ds/agent"]);
    assert!(out.contains("rolled back"), "{out}");
    s.ok(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    all_on(&s, "agent", 3, "agent:v1");
    assert_eq!(history(&s, "ds/agent"), [2, 3]);
    // undo to a named revision; the current one is skipped.
    s.ok(&["rollout", "undo", "ds/agent", "--to-revision=2"]);
    s.ok(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    all_on(&s, "agent", 3, "agent:v2");
    assert_eq!(history(&s, "ds/agent"), [3, 4]);
    let out = s.ok(&["rollout", "undo", "ds/agent", "--to-revision=4"]);
    assert!(out.contains("skipped rollback"), "{out}");
    let err = s.fails(&["rollout", "undo", "ds/agent", "--to-revision=9"]);
    assert!(err.contains("unable to find specified revision 9"), "{err}");

    // StatefulSet: the same through its revisions.
    apply(
        &s,
        &serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": template("db", "db:v1")}}),
    );
    s.ok(&["rollout", "status", "sts/db", "--timeout=90s"]);
    all_on(&s, "db", 2, "db:v1");
    assert_eq!(history(&s, "sts/db"), [1]);
    s.ok(&["set", "image", "sts/db", "db=db:v2"]);
    s.ok(&["rollout", "status", "sts/db", "--timeout=90s"]);
    all_on(&s, "db", 2, "db:v2");
    assert_eq!(history(&s, "sts/db"), [1, 2]);
    let rev1 = s.ok(&["rollout", "history", "sts/db", "--revision=1"]);
    assert!(rev1.contains("db:v1"), "{rev1}");
    let out = s.ok(&["rollout", "undo", "sts/db"]);
    assert!(out.contains("rolled back"), "{out}");
    s.ok(&["rollout", "status", "sts/db", "--timeout=90s"]);
    let labels = all_on(&s, "db", 2, "db:v1");
    assert_eq!(history(&s, "sts/db"), [2, 3]);
    let status = wait_until("the statefulset's revisions to settle", WAIT, || {
        let st = json(&s, &["get", "sts", "db"])["status"].clone();
        (st["currentRevision"] == st["updateRevision"] && st["updatedReplicas"] == 2).then_some(st)
    });
    // Pods carry the revision's name, as on Kubernetes.
    assert!(
        labels
            .iter()
            .all(|l| status["updateRevision"] == l.as_str()),
        "{labels:?} vs {status}"
    );
    let rev = json(
        &s,
        &[
            "get",
            "controllerrevision",
            status["updateRevision"].as_str().unwrap(),
        ],
    );
    assert_eq!(rev["revision"], 3);
}
