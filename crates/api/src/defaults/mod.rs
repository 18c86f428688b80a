//! Defaulting: the values Kubernetes fills in for fields a client left out, per kind, so
//! that `kubectl get -o yaml` and controllers see the same objects as on Kubernetes.

use serde_json::{Map, Value, json};

/// Fills defaults into `obj` (a kind of `group` in its storage version).
pub fn apply(group: &str, kind: &str, obj: &mut Value) {
    if let ("", "Namespace") = (group, kind) {
        namespace(obj)
    }
}

/// Inserts `value` at `key` of the object at `obj` if absent.
pub fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    obj.entry(key.to_string()).or_insert(value);
}

fn namespace(obj: &mut Value) {
    if !obj.get("spec").is_some_and(|s| s.is_object()) {
        obj["spec"] = json!({});
    }
    if let Some(spec) = obj["spec"].as_object_mut() {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    if !obj.get("status").is_some_and(|s| s.is_object()) {
        obj["status"] = json!({});
    }
    if let Some(status) = obj["status"].as_object_mut() {
        set_default(status, "phase", json!("Active"));
    }
}
