//! Validation per kind: the field errors Kubernetes reports for an object (on create, or on
//! update given the old object for immutability rules), with Kubernetes' field paths, error
//! types and messages, so `kubectl` prints the same `is invalid:` lines as against
//! Kubernetes.
//!
//! Objects arrive defaulted and in their storage version; metadata (name, labels,
//! annotations, finalizers) is checked by the server, everything else here. Validators read
//! the JSON in place (no typed copies), compile nothing per call, and report every problem
//! rather than stopping at the first. An update that leaves everything but metadata and
//! status unchanged (a status write, a label change) is not re-validated, so objects stored
//! before a rule existed keep working.

mod autoscaling;
mod cluster;
mod containers;
mod core;
mod cron;
mod field;
mod networking;
mod pod;
mod policy;
mod quantity;
mod resources;
mod service;
mod storage;
mod volumes;
mod workloads;

pub use quantity::{
    FORMAT_WRONG as QUANTITY_FORMAT_WRONG, Quantity, QuantityError, QuantityFormat,
};

use serde_json::Value;

use crate::FieldErrors;

/// Validates `obj` (a kind of `group` in its storage version); `old` is the current object on
/// updates.
pub fn validate(group: &str, kind: &str, obj: &Value, old: Option<&Value>) -> FieldErrors {
    let mut errs = FieldErrors::default();
    if old.is_some_and(|old| only_metadata_or_status_changed(obj, old)) {
        return errs;
    }
    let e = &mut errs;
    match (group, kind) {
        ("", "Pod") => pod::validate_pod(e, obj, old),
        ("", "Service") => service::service(e, obj, old),
        ("", "ConfigMap") => core::config_map(e, obj, old),
        ("", "Secret") => core::secret(e, obj, old),
        ("", "Namespace") => core::namespace(e, obj),
        ("", "Node") => core::node(e, obj, old),
        ("", "Endpoints") => core::endpoints(e, obj),
        ("", "Event") => core::event(e, obj),
        ("", "PersistentVolume") => storage::persistent_volume(e, obj, old),
        ("", "PersistentVolumeClaim") => storage::persistent_volume_claim(e, obj, old),
        ("apps", "Deployment") => workloads::deployment(e, obj, old),
        ("apps", "ReplicaSet") => workloads::replica_set(e, obj, old),
        ("apps", "DaemonSet") => workloads::daemon_set(e, obj, old),
        ("apps", "StatefulSet") => workloads::stateful_set(e, obj, old),
        ("apps", "ControllerRevision") => workloads::controller_revision(e, obj, old),
        ("batch", "Job") => workloads::job(e, obj, old),
        ("batch", "CronJob") => workloads::cron_job(e, obj, old),
        ("autoscaling", "HorizontalPodAutoscaler") => autoscaling::hpa(e, obj),
        ("coordination.k8s.io", "Lease") => policy::lease(e, obj),
        ("discovery.k8s.io", "EndpointSlice") => networking::endpoint_slice(e, obj, old),
        ("networking.k8s.io", "Ingress") => networking::ingress(e, obj),
        ("networking.k8s.io", "IngressClass") => networking::ingress_class(e, obj, old),
        ("networking.k8s.io", "NetworkPolicy") => networking::network_policy(e, obj),
        ("policy", "PodDisruptionBudget") => policy::pod_disruption_budget(e, obj),
        ("scheduling.k8s.io", "PriorityClass") => cluster::priority_class(e, obj, old),
        ("storage.k8s.io", "StorageClass") => cluster::storage_class(e, obj, old),
        ("rbac.authorization.k8s.io", "Role") => cluster::role(e, obj, true),
        ("rbac.authorization.k8s.io", "ClusterRole") => cluster::role(e, obj, false),
        ("rbac.authorization.k8s.io", "RoleBinding") => cluster::binding(e, obj, true, old),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => cluster::binding(e, obj, false, old),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => cluster::crd(e, obj, old),
        _ => {}
    }
    errs
}

/// Whether an update changes nothing but metadata and status.
fn only_metadata_or_status_changed(new: &Value, old: &Value) -> bool {
    let (Some(a), Some(b)) = (new.as_object(), old.as_object()) else {
        return false;
    };
    let skip = ["metadata", "status", "apiVersion", "kind"];
    a.keys()
        .chain(b.keys())
        .filter(|k| !skip.contains(&k.as_str()))
        .all(|k| a.get(k).filter(|v| !v.is_null()) == b.get(k).filter(|v| !v.is_null()))
}

/// Why a CronJob `timeZone` is not acceptable (Kubernetes' messages), or `None`.
pub fn time_zone_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("timeZone must be nil or non-empty string".into());
    }
    let unknown = || Some(format!("unknown time zone {name}"));
    for part in name.split('/') {
        let chars_ok = (1..=14).contains(&part.len())
            && part
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'));
        if part == "." || part == ".." || part.starts_with('-') || !chars_ok {
            return unknown();
        }
    }
    if name.eq_ignore_ascii_case("Local") {
        return Some(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
                .into(),
        );
    }
    if jiff::tz::db().get(name).is_err() {
        return unknown();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn time_zones() {
        assert_eq!(time_zone_error("Europe/Paris"), None);
        assert_eq!(time_zone_error("UTC"), None);
        assert_eq!(
            time_zone_error("Nowhere/City"),
            Some("unknown time zone Nowhere/City".into())
        );
        assert_eq!(
            time_zone_error("../etc/passwd"),
            Some("unknown time zone ../etc/passwd".into())
        );
        assert_eq!(
            time_zone_error(""),
            Some("timeZone must be nil or non-empty string".into())
        );
    }

    #[test]
    fn status_and_metadata_writes_are_not_revalidated() {
        // Stored before a rule existed: still invalid, but a status write must not fail.
        let old = json!({"metadata": {"name": "d"}, "spec": {"replicas": -1}});
        let mut new = old.clone();
        new["status"] = json!({"replicas": 0});
        new["metadata"]["labels"] = json!({"a": "b"});
        assert!(validate("apps", "Deployment", &new, Some(&old)).is_empty());
        assert!(!validate("apps", "Deployment", &new, None).is_empty());
    }

    #[test]
    fn every_builtin_kind_validates_an_empty_object_without_panicking() {
        for r in crate::builtin_resources() {
            for obj in [
                json!({}),
                json!({"spec": "x"}),
                json!({"spec": {"template": [], "containers": {}, "ports": 5}}),
            ] {
                let mut o = obj.clone();
                crate::defaults::apply(&r.group, &r.kind, &mut o);
                let _ = validate(&r.group, &r.kind, &o, None);
                let _ = validate(&r.group, &r.kind, &o, Some(&json!({"spec": {}})));
            }
        }
    }

    #[test]
    fn messages_render_as_kubectl_prints_them() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "web"}]}}}});
        crate::defaults::apply("apps", "Deployment", &mut d);
        let errs = validate("apps", "Deployment", &d, None);
        assert_eq!(
            errs.summary("Deployment.apps", "web"),
            "Deployment.apps \"web\" is invalid: [spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\"}: `selector` does not match template `labels`, spec.template.spec.containers[0].image: Required value]"
        );
        let causes: Vec<&str> = errs.0.iter().map(|e| e.kind.reason()).collect();
        assert_eq!(causes, vec!["FieldValueInvalid", "FieldValueRequired"]);
    }
}
