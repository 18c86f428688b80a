//! Golden tests of managedFields and server-side apply along kubectl 1.32's real requests
//! (bodies captured in `fixtures/kubectl`): client-side apply creates a Deployment, then
//! `kubectl apply --server-side` upgrades it, conflicts with another manager's value, and
//! succeeds with `--force-conflicts`.

use berth_patch::{
    ApplyOptions, SchemaRef, UpdateOptions, apply, builtin, json_patch, record_update,
};
use serde_json::{Value, json};

const T1: &str = "2026-01-01T00:00:00Z";
const T2: &str = "2026-01-01T00:01:00Z";
const T3: &str = "2026-01-01T00:02:00Z";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/kubectl/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str::<Value>(&text).unwrap()["body"].clone()
}

fn schema() -> SchemaRef {
    builtin("apps", "v1", "Deployment").unwrap()
}

/// The POST body of `kubectl apply -f deploy1.yaml` after the server's defaulting.
fn defaulted_create_body() -> Value {
    let mut d = fixture("csa-create.json");
    let spec = d["spec"].as_object_mut().unwrap();
    spec.insert("progressDeadlineSeconds".into(), json!(600));
    spec.insert("revisionHistoryLimit".into(), json!(10));
    spec.insert("strategy".into(), json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}));
    let pod = d["spec"]["template"]["spec"].as_object_mut().unwrap();
    pod.insert("dnsPolicy".into(), json!("ClusterFirst"));
    pod.insert("restartPolicy".into(), json!("Always"));
    pod.insert("schedulerName".into(), json!("default-scheduler"));
    pod.insert("securityContext".into(), json!({}));
    pod.insert("terminationGracePeriodSeconds".into(), json!(30));
    for c in d["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
    {
        c["imagePullPolicy"] = json!("IfNotPresent");
        c["resources"] = json!({});
        c["terminationMessagePath"] = json!("/dev/termination-log");
        c["terminationMessagePolicy"] = json!("File");
        if let Some(ports) = c.get_mut("ports") {
            ports[0]["protocol"] = json!("TCP");
        }
    }
    d
}

fn update_options<'a>(manager: &'a str, time: &'a str) -> UpdateOptions<'a> {
    UpdateOptions {
        manager,
        api_version: "apps/v1",
        subresource: None,
        time,
        reset_fields: &["status"],
    }
}

fn apply_options(force: bool, time: &str) -> ApplyOptions<'_> {
    ApplyOptions {
        manager: "kubectl",
        force,
        api_version: "apps/v1",
        subresource: None,
        time,
        reset_fields: &["status"],
    }
}

/// What the API server stores for `kubectl apply -f deploy1.yaml`.
fn created() -> Value {
    let mut d = defaulted_create_body();
    record_update(
        None,
        &mut d,
        &update_options("kubectl-client-side-apply", T1),
        &schema(),
    );
    let meta = d["metadata"].as_object_mut().unwrap();
    meta.insert("uid".into(), json!("3f1c6b1e-0000-4000-8000-000000000001"));
    meta.insert("resourceVersion".into(), json!("101"));
    meta.insert("generation".into(), json!(1));
    meta.insert("creationTimestamp".into(), json!(T1));
    d
}

fn managers(object: &Value) -> Vec<(String, String)> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().to_string(),
                        e["operation"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn entry<'a>(object: &'a Value, manager: &str) -> &'a Value {
    object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == manager)
        .unwrap_or_else(|| panic!("no entry for {manager}"))
}

#[test]
fn create_records_an_update_entry_in_kubernetes_format() {
    let d = created();
    let entries = d["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e["manager"], "kubectl-client-side-apply");
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], T1);
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert!(e.get("subresource").is_none());
    let expected = r#"{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},"f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:env":{".":{},"k:{\"name\":\"LEVEL\"}":{".":{},"f:name":{},"f:value":{}},"k:{\"name\":\"MODE\"}":{".":{},"f:name":{},"f:value":{}}},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:protocol":{}}},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}},"k:{\"name\":\"sidecar\"}":{".":{},"f:command":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}"#;
    assert_eq!(serde_json::to_string(&e["fieldsV1"]).unwrap(), expected);
}

#[test]
fn server_side_apply_after_client_side_apply_succeeds_without_force() {
    let live = created();
    let config = fixture("ssa-apply.json");
    let out = apply(Some(&live), &config, &apply_options(false, T2), &schema()).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    let containers: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // The sidecar is still owned by the client-side apply manager, so it stays.
    assert_eq!(containers, ["logger", "nginx", "sidecar"]);
    let nginx = &out["spec"]["template"]["spec"]["containers"][1];
    assert_eq!(nginx["image"], "nginx:1.28");
    assert_eq!(
        nginx["env"],
        json!([{"name": "MODE", "value": "prod"}, {"name": "LEVEL", "value": "debug"}])
    );
    assert_eq!(
        managers(&out),
        [
            ("kubectl".into(), "Apply".into()),
            ("kubectl-client-side-apply".into(), "Update".into())
        ]
    );
    let kubectl = entry(&out, "kubectl");
    assert_eq!(kubectl["time"], T2);
    assert_eq!(
        serde_json::to_string(&kubectl["fieldsV1"]).unwrap(),
        r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"logger\"}":{".":{},"f:image":{},"f:name":{}},"k:{\"name\":\"nginx\"}":{".":{},"f:env":{"k:{\"name\":\"LEVEL\"}":{".":{},"f:name":{},"f:value":{}}},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}"#
    );
    // The fields whose values changed moved to kubectl; the client-side manager keeps the rest.
    let csa = serde_json::to_string(&entry(&out, "kubectl-client-side-apply")["fieldsV1"]).unwrap();
    assert!(!csa.contains("f:replicas"), "{csa}");
    assert!(csa.contains("f:progressDeadlineSeconds"), "{csa}");
    assert!(csa.contains(r#"k:{\"name\":\"sidecar\"}"#), "{csa}");
    // kubectl's server-side apply keeps the client-side annotation in step.
    let annotation =
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap();
    assert!(annotation.ends_with('\n'));
    let last: Value = serde_json::from_str(annotation).unwrap();
    assert_eq!(last, config);
    assert_eq!(annotation.trim_end(), berth_patch_sorted_json(&config));
}

/// Compact JSON with sorted keys, as Go encodes an unstructured object.
fn berth_patch_sorted_json(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sort(&m[k]))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sort(v)).unwrap()
}

#[test]
fn conflicting_value_from_another_manager_needs_force_conflicts() {
    let live = created();
    // `kubectl edit` changes the replicas (an Update by another manager).
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(5);
    record_update(
        Some(&live),
        &mut edited,
        &update_options("kubectl-edit", T2),
        &schema(),
    );
    assert_eq!(
        serde_json::to_string(&entry(&edited, "kubectl-edit")["fieldsV1"]).unwrap(),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );

    let config = fixture("ssa-apply.json");
    let err = apply(Some(&edited), &config, &apply_options(false, T3), &schema()).unwrap_err();
    assert!(err.is_conflict());
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas"#
    );
    assert_eq!(err.conflicts().len(), 1);
    assert_eq!(err.conflicts()[0].path, ".spec.replicas");
    assert_eq!(
        err.conflicts()[0].cause_message(),
        r#"conflict with "kubectl-edit" using apps/v1"#
    );

    let out = apply(Some(&edited), &config, &apply_options(true, T3), &schema()).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert!(
        !managers(&out).iter().any(|(m, _)| m == "kubectl-edit"),
        "{:?}",
        managers(&out)
    );
}

#[test]
fn other_managers_without_last_applied_conflict_on_every_changed_field() {
    let live = created();
    let mut config = fixture("ssa-apply.json");
    config["metadata"]["name"] = json!("web");
    // Another applier than kubectl gets no client-side apply allowance.
    let options = ApplyOptions {
        manager: "helm",
        ..apply_options(false, T2)
    };
    let err = apply(Some(&live), &config, &options, &schema()).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("Apply failed with 3 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n"), "{text}");
    assert!(text.contains("\n- .spec.replicas"), "{text}");
    assert!(
        text.contains(r#"- .spec.template.spec.containers[name="nginx"].image"#),
        "{text}"
    );
    assert!(
        text.contains(r#"- .spec.template.spec.containers[name="nginx"].env[name="LEVEL"].value"#),
        "{text}"
    );
}

#[test]
fn kubectl_last_applied_migration_and_managed_fields_upgrade() {
    let live = created();
    let after_apply = apply(
        Some(&live),
        &fixture("ssa-apply.json"),
        &apply_options(false, T2),
        &schema(),
    )
    .unwrap();
    // kubectl's second request: the annotation, applied by `kubectl-last-applied`, with the
    // value of the object the first request returned.
    let mut body = fixture("ssa-last-applied.json");
    let key = "kubectl.kubernetes.io/last-applied-configuration";
    body["metadata"]["annotations"][key] = after_apply["metadata"]["annotations"][key].clone();
    let options = ApplyOptions {
        manager: "kubectl-last-applied",
        ..apply_options(false, T2)
    };
    let out = apply(Some(&after_apply), &body, &options, &schema()).unwrap();
    // The captured body carries the annotation as the client-side apply left it; a stale
    // value is a conflict with its owner, as in Kubernetes.
    let stale = apply(
        Some(&after_apply),
        &fixture("ssa-last-applied.json"),
        &options,
        &schema(),
    )
    .unwrap_err();
    assert!(stale.is_conflict(), "{stale}");
    assert_eq!(
        serde_json::to_string(&entry(&out, "kubectl-last-applied")["fieldsV1"]).unwrap(),
        r#"{"f:metadata":{"f:annotations":{"f:kubectl.kubernetes.io/last-applied-configuration":{}}}}"#
    );
    // The JSON patch kubectl sends to move the client-side apply fields to its Apply entry:
    // managed fields supplied by a write replace the stored ones.
    let migrate = fixture("ssa-migrate-managed-fields.jsonpatch.json");
    let mut patched = json_patch(&out, &json!([migrate[0].clone()])).unwrap();
    record_update(
        Some(&out),
        &mut patched,
        &update_options("kubectl", T3),
        &schema(),
    );
    assert_eq!(patched["metadata"]["managedFields"], migrate[0]["value"]);
}

#[test]
fn server_side_apply_twice_is_a_no_op() {
    let live = created();
    let config = fixture("ssa-apply.json");
    let once = apply(Some(&live), &config, &apply_options(false, T2), &schema()).unwrap();
    let twice = apply(Some(&once), &config, &apply_options(false, T3), &schema()).unwrap();
    assert_eq!(once, twice);
}

#[test]
fn set_image_takes_the_image_from_the_previous_owner() {
    let live = created();
    let patched =
        berth_patch::strategic_merge(&live, &fixture("set-image.smp.json"), &schema()).unwrap();
    let mut patched = patched;
    record_update(
        Some(&live),
        &mut patched,
        &update_options("kubectl-set", T2),
        &schema(),
    );
    assert_eq!(
        serde_json::to_string(&entry(&patched, "kubectl-set")["fieldsV1"]).unwrap(),
        r#"{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{"f:image":{}}}}}}}"#
    );
    let csa =
        serde_json::to_string(&entry(&patched, "kubectl-client-side-apply")["fieldsV1"]).unwrap();
    assert!(
        !csa.contains(r#"{"f:image":{},"f:imagePullPolicy""#) || csa.contains("sidecar"),
        "{csa}"
    );
    assert_eq!(
        managers(&patched),
        [
            ("kubectl-client-side-apply".into(), "Update".into()),
            ("kubectl-set".into(), "Update".into())
        ]
    );
}

/// Union of two `fieldsV1` tries (a recursive merge of their JSON objects).
fn union(a: &Value, b: &Value) -> Value {
    let mut out = a.clone();
    for (k, v) in b.as_object().unwrap() {
        let merged = match out.get(k) {
            Some(existing) => union(existing, v),
            None => v.clone(),
        };
        out[k] = merged;
    }
    out
}

#[test]
fn after_kubectl_migrates_client_side_ownership_the_next_apply_prunes() {
    let live = created();
    let config = fixture("ssa-apply.json");
    let after = apply(Some(&live), &config, &apply_options(false, T2), &schema()).unwrap();
    // What kubectl's csaupgrade sends: the client-side manager's fields moved into the
    // `kubectl` Apply entry (a `replace` of /metadata/managedFields).
    let mut kubectl = entry(&after, "kubectl").clone();
    kubectl["fieldsV1"] = union(
        &kubectl["fieldsV1"],
        &entry(&after, "kubectl-client-side-apply")["fieldsV1"],
    );
    let mut migrated = json_patch(
        &after,
        &json!([{"op": "replace", "path": "/metadata/managedFields", "value": [kubectl]}]),
    )
    .unwrap();
    record_update(
        Some(&after),
        &mut migrated,
        &update_options("kubectl", T3),
        &schema(),
    );
    assert_eq!(managers(&migrated), [("kubectl".into(), "Apply".into())]);

    let out = apply(
        Some(&migrated),
        &config,
        &apply_options(false, T3),
        &schema(),
    )
    .unwrap();
    let containers: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(containers, ["logger", "nginx"]);
    // MODE was applied by the client-side apply only; kubectl now owns and no longer applies it.
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][1]["env"],
        json!([{"name": "LEVEL", "value": "debug"}])
    );
    assert_eq!(managers(&out), [("kubectl".into(), "Apply".into())]);
}
