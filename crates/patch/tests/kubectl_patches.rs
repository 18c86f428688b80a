//! Golden tests: the patches kubectl 1.32 sends (captured request bodies in
//! `fixtures/kubectl`), applied to the Deployment its `apply` created.

use berth_patch::{builtin, json_patch, merge_patch, strategic_merge};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/kubectl/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    v["body"].clone()
}

/// The Deployment as stored after `kubectl apply -f deploy1.yaml`: the POST body plus what
/// the server sets and defaults.
fn live() -> Value {
    let mut d = fixture("csa-create.json");
    let meta = d["metadata"].as_object_mut().unwrap();
    meta.insert("uid".into(), json!("3f1c6b1e-0000-4000-8000-000000000001"));
    meta.insert("resourceVersion".into(), json!("101"));
    meta.insert("generation".into(), json!(1));
    meta.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
    let spec = d["spec"].as_object_mut().unwrap();
    spec.insert("strategy".into(), json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}));
    spec.insert("revisionHistoryLimit".into(), json!(10));
    for c in d["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
    {
        c["imagePullPolicy"] = json!("IfNotPresent");
        c["terminationMessagePath"] = json!("/dev/termination-log");
        if let Some(ports) = c.get_mut("ports") {
            ports[0]["protocol"] = json!("TCP");
        }
    }
    d
}

fn apply(patch: &str) -> Value {
    let schema = builtin("apps", "v1", "Deployment").unwrap();
    strategic_merge(&live(), &fixture(patch), &schema).unwrap()
}

fn names(d: &Value) -> Vec<&str> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

#[test]
fn client_side_apply_edit_removes_and_adds_containers() {
    let out = apply("csa-apply-edit.smp.json");
    assert_eq!(names(&out), ["logger", "nginx"]);
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        containers[0],
        json!({"image": "fluent/fluent-bit:3.0", "name": "logger"})
    );
    assert_eq!(
        containers[1],
        json!({
            "env": [{"name": "LEVEL", "value": "debug"}],
            "image": "nginx:1.28",
            "name": "nginx",
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "imagePullPolicy": "IfNotPresent",
            "terminationMessagePath": "/dev/termination-log"
        })
    );
    assert_eq!(out["spec"]["replicas"], 3);
    let last_applied: Value = serde_json::from_str(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last_applied["spec"]["replicas"], 3);
    // Everything the patch does not mention is untouched.
    assert_eq!(out["metadata"]["uid"], live()["metadata"]["uid"]);
    assert_eq!(out["spec"]["strategy"], live()["spec"]["strategy"]);
}

#[test]
fn set_image_changes_one_container_and_keeps_order() {
    let out = apply("set-image.smp.json");
    assert_eq!(names(&out), ["nginx", "sidecar"]);
    let mut expected = live();
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.29");
    assert_eq!(out, expected);
}

#[test]
fn patch_deletes_a_container() {
    let out = apply("patch-delete-container.smp.json");
    assert_eq!(names(&out), ["sidecar"]);
}

#[test]
fn label_and_annotate_patches_are_also_valid_strategic_patches() {
    // kubectl sends these as merge patches; as strategic patches they mean the same.
    let out = apply("label.merge.json");
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "tier": "frontend"})
    );
    let out = apply("unlabel.merge.json");
    assert_eq!(out["metadata"]["labels"], json!({}));
}

#[test]
fn label_annotate_and_scale_merge_patches() {
    let out = merge_patch(&live(), &fixture("label.merge.json")).unwrap();
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "tier": "frontend"})
    );
    let out = merge_patch(&out, &fixture("annotate.merge.json")).unwrap();
    assert_eq!(out["metadata"]["annotations"]["note"], "hello");
    assert!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let out = merge_patch(&out, &fixture("unlabel.merge.json")).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"tier": "frontend"}));
    let out = merge_patch(&out, &fixture("patch-replicas.merge.json")).unwrap();
    assert_eq!(out["spec"]["replicas"], 4);
}

#[test]
fn json_patch_replaces_replicas() {
    let out = json_patch(&live(), &fixture("patch-replicas.jsonpatch.json")).unwrap();
    let mut expected = live();
    expected["spec"]["replicas"] = json!(5);
    assert_eq!(out, expected);
}
