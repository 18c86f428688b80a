//! Defaulting: the values Kubernetes fills in for fields a client left out, per kind, so
//! that `kubectl get -o yaml` and controllers see the same objects as on Kubernetes.
//!
//! The rules follow Kubernetes' `SetDefaults_*` functions and generated defaulters, plus the
//! few values its admission chain and create strategies add that clients rely on (a pod's
//! default tolerations, priority, service account, `Pending` phase and QoS class; a job's
//! generated selector; a service's IP family fields). As in Kubernetes, a string field that
//! is empty and a counter that is 0 where 0 is not meaningful count as unset; every other
//! value a client set is kept. Defaulting is idempotent and works in place.
//!
//! Objects arrive in their storage version (HPAs as autoscaling/v2).

mod autoscaling;
mod cluster;
mod core;
mod networking;
mod pod;
mod resources;
mod workloads;

use serde_json::{Map, Value};

/// Fills defaults into `obj` (a kind of `group` in its storage version).
pub fn apply(group: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (group, kind) {
        ("", "Namespace") => core::namespace(obj),
        ("", "Pod") => pod::pod(obj),
        ("", "Node") => core::node(obj),
        ("", "Service") => core::service(obj),
        ("", "Endpoints") => core::endpoints(obj),
        ("", "Secret") => core::secret(obj),
        ("", "PersistentVolume") => core::persistent_volume(obj),
        ("", "PersistentVolumeClaim") => core::persistent_volume_claim(obj),
        ("apps", "Deployment") => workloads::deployment(obj),
        ("apps", "ReplicaSet") => workloads::replica_set(obj),
        ("apps", "StatefulSet") => workloads::stateful_set(obj),
        ("apps", "DaemonSet") => workloads::daemon_set(obj),
        ("batch", "Job") => workloads::job(obj),
        ("batch", "CronJob") => workloads::cron_job(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => autoscaling::hpa(obj),
        ("networking.k8s.io", "NetworkPolicy") => networking::network_policy(obj),
        ("networking.k8s.io", "IngressClass") => networking::ingress_class(obj),
        ("discovery.k8s.io", "EndpointSlice") => networking::endpoint_slice(obj),
        ("storage.k8s.io", "StorageClass") => cluster::storage_class(obj),
        ("scheduling.k8s.io", "PriorityClass") => cluster::priority_class(obj),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            cluster::binding(obj)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => cluster::crd(obj),
        _ => {}
    }
}

/// Inserts `value` at `key` of the object at `obj` if absent (or null).
pub fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    match obj.get_mut(key) {
        Some(v) if !v.is_null() => {}
        Some(v) => *v = value,
        None => {
            obj.insert(key.to_string(), value);
        }
    }
}

/// Sets a string field that is absent, null or empty (Go's zero value).
fn default_str(obj: &mut Map<String, Value>, key: &str, value: &str) {
    let unset = match obj.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    };
    if unset {
        obj.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// Sets an integer field that is absent, null or 0 (Go's zero value for non-pointer ints).
fn default_nonzero(obj: &mut Map<String, Value>, key: &str, value: i64) {
    let unset = match obj.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        _ => false,
    };
    if unset {
        obj.insert(key.to_string(), Value::from(value));
    }
}

/// The child object at `key`, created when absent or null; `None` when it holds something
/// else (validation reports that).
fn child<'a>(obj: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let slot = obj.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// The child object at `key` when it exists.
fn existing<'a>(obj: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    obj.get_mut(key).and_then(|v| v.as_object_mut())
}

/// The objects of the array at `key` (none when absent).
fn items<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    obj.get_mut(key)
        .and_then(|v| v.as_array_mut())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_object_mut())
}

/// Whether the field at `key` is absent, null, an empty array or an empty object.
fn is_empty(obj: &Map<String, Value>, key: &str) -> bool {
    match obj.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn helpers_treat_go_zero_values_as_unset() {
        let mut m = json!({"a": "", "b": "x", "c": 0, "d": 5, "e": null})
            .as_object()
            .unwrap()
            .clone();
        default_str(&mut m, "a", "A");
        default_str(&mut m, "b", "B");
        default_nonzero(&mut m, "c", 1);
        default_nonzero(&mut m, "d", 1);
        set_default(&mut m, "e", json!(true));
        set_default(&mut m, "f", json!(2));
        assert_eq!(
            Value::Object(m),
            json!({"a": "A", "b": "x", "c": 1, "d": 5, "e": true, "f": 2})
        );
    }

    #[test]
    fn every_builtin_kind_defaults_idempotently_without_panicking() {
        for r in crate::builtin_resources() {
            for start in [
                json!({}),
                json!({"spec": null, "status": "x"}),
                json!({"spec": {"template": 3}}),
            ] {
                let mut once = start.clone();
                apply(&r.group, &r.kind, &mut once);
                let mut twice = once.clone();
                apply(&r.group, &r.kind, &mut twice);
                assert_eq!(once, twice, "{} from {start}", r.kind);
            }
        }
    }
}
