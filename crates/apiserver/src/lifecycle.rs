//! Object lifecycle rules common to every kind: system fields set on create, fields an
//! update may not change, `metadata.generation`, status isolation between the main resource
//! and its `/status` subresource, and `generateName`.

use berth_api::{FieldError, FieldErrors, ResourceInfo, Subresource, meta, names::NameRule};
use serde_json::{Map, Value, json};

use crate::codec::{new_uid, now_rfc3339};

/// Whether a kind tracks `metadata.generation` (kinds with a spec do; ConfigMaps and
/// Secrets do not).
pub fn tracks_generation(res: &ResourceInfo) -> bool {
    if res.custom {
        return true;
    }
    !matches!(
        (res.group.as_str(), res.kind.as_str()),
        ("", "ConfigMap")
            | ("", "Secret")
            | ("", "Endpoints")
            | ("", "Event")
            | ("", "ServiceAccount")
            | ("", "Namespace")
            | ("", "Node")
            | ("", "Pod")
            | ("", "Service")
            | ("", "PersistentVolume")
            | ("", "PersistentVolumeClaim")
            | ("rbac.authorization.k8s.io", _)
            | ("coordination.k8s.io", "Lease")
            | ("discovery.k8s.io", "EndpointSlice")
            | ("apps", "ControllerRevision")
    )
}

/// The part of an object whose change bumps `generation`: everything except metadata and
/// status (for most kinds that is `spec`; for custom resources without a status subresource
/// everything but metadata).
fn generation_part(res: &ResourceInfo, obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if res.has_subresource(Subresource::Status) || !res.custom {
            m.remove("status");
        }
    }
    o
}

/// Whether an object being deleted has no finalizers left (for namespaces also none in
/// `spec.finalizers`), so it can be removed.
pub fn is_finalized(res: &ResourceInfo, obj: &Value) -> bool {
    if !meta::is_deleting(obj) || !meta::finalizers(obj).is_empty() {
        return false;
    }
    // A graceful deletion (pods on a node) ends with the node's grace-0 delete, not with an
    // update.
    let grace = meta::metadata(obj)
        .and_then(|m| m.get("deletionGracePeriodSeconds"))
        .and_then(|g| g.as_i64())
        .unwrap_or(0);
    if grace > 0 {
        return false;
    }
    if res.group.is_empty() && res.kind == "Namespace" {
        return obj
            .pointer("/spec/finalizers")
            .and_then(|f| f.as_array())
            .is_none_or(|a| a.is_empty());
    }
    true
}

/// Sets the fields the server owns on a new object.
pub fn prepare_create(res: &ResourceInfo, obj: &mut Value) {
    let m = meta::metadata_mut(obj);
    m.insert("uid".into(), Value::String(new_uid()));
    m.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
    m.remove("resourceVersion");
    m.remove("deletionTimestamp");
    m.remove("deletionGracePeriodSeconds");
    m.remove("selfLink");
    if tracks_generation(res) {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
    if res.has_subresource(Subresource::Status)
        && !keeps_status_on_create(res)
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
}

/// Kinds whose initial status a creator may set (Kubernetes keeps status on create for
/// nodes, events and the like; the workload kinds reset it).
fn keeps_status_on_create(res: &ResourceInfo) -> bool {
    matches!(
        (res.group.as_str(), res.kind.as_str()),
        ("", "Node") | ("", "PersistentVolume") | ("", "PersistentVolumeClaim") | ("", "Namespace")
    ) || (res.custom && !res.has_subresource(Subresource::Status))
}

/// Carries over what an update of the main resource may not change, and bumps generation
/// when the spec changed.
pub fn prepare_update(res: &ResourceInfo, new: &mut Value, old: &Value) {
    let old_meta = meta::metadata(old).cloned().unwrap_or_default();
    {
        let m = meta::metadata_mut(new);
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(f) {
                Some(v) => {
                    m.insert(f.into(), v.clone());
                }
                None => {
                    m.remove(f);
                }
            }
        }
        m.remove("selfLink");
        if !m.contains_key("managedFields")
            && let Some(mf) = old_meta.get("managedFields")
        {
            m.insert("managedFields".into(), mf.clone());
        }
    }
    if res.has_subresource(Subresource::Status) {
        copy_field(new, old, "status");
    }
    if tracks_generation(res) && generation_part(res, new) != generation_part(res, old) {
        let g = old_meta
            .get("generation")
            .and_then(|g| g.as_i64())
            .unwrap_or(0);
        meta::metadata_mut(new).insert("generation".into(), json!(g + 1));
    }
}

/// An update through `/status`: only `.status` (and metadata the server keeps) change.
pub fn status_update(new: &Value, old: &Value) -> Value {
    let mut out = old.clone();
    copy_field(&mut out, new, "status");
    // Labels and annotations may change with a status write in Kubernetes too.
    if let (Some(nm), Some(om)) = (
        meta::metadata(new),
        out.get_mut("metadata").and_then(|m| m.as_object_mut()),
    ) {
        for f in ["managedFields"] {
            if let Some(v) = nm.get(f) {
                om.insert(f.into(), v.clone());
            }
        }
    }
    out
}

fn copy_field(to: &mut Value, from: &Value, field: &str) {
    let Some(o) = to.as_object_mut() else { return };
    match from.get(field) {
        Some(v) => {
            o.insert(field.into(), v.clone());
        }
        None => {
            o.remove(field);
        }
    }
}

/// Fills `metadata.name` from `metadata.generateName` (a 5-character random suffix).
pub fn generate_name(res: &ResourceInfo, obj: &mut Value) {
    if meta::name(obj).is_some() {
        return;
    }
    let Some(prefix) = meta::meta_str(obj, "generateName").map(String::from) else {
        return;
    };
    let rule = NameRule::for_kind(&res.group, &res.kind);
    let mut prefix = prefix;
    prefix.truncate(rule.max_generated_prefix());
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    meta::metadata_mut(obj).insert("name".into(), Value::String(format!("{prefix}{suffix}")));
}

/// Validation of metadata every kind shares.
pub fn validate_metadata(res: &ResourceInfo, obj: &Value, errs: &mut FieldErrors) {
    let empty = Map::new();
    let m = meta::metadata(obj).unwrap_or(&empty);
    match m
        .get("name")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        None => errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(name) => {
            if let Err(e) = NameRule::for_kind(&res.group, &res.kind).validate(name) {
                errs.push(FieldError::invalid("metadata.name", name, e));
            }
        }
    }
    if let Some(labels) = m.get("labels") {
        match labels.as_object() {
            Some(l) => {
                for (k, v) in l {
                    if let Err(e) = berth_api::selector::validate_label_key(k) {
                        errs.push(FieldError::invalid("metadata.labels", k, e));
                    }
                    match v.as_str() {
                        Some(v) => {
                            if let Err(e) = berth_api::selector::validate_label_value(v) {
                                errs.push(FieldError::invalid("metadata.labels", v, e));
                            }
                        }
                        None => errs.push(FieldError::invalid(
                            "metadata.labels",
                            v,
                            "label values must be strings",
                        )),
                    }
                }
            }
            None if labels.is_null() => {}
            None => errs.push(FieldError::invalid(
                "metadata.labels",
                labels,
                "must be a map of strings",
            )),
        }
    }
    if let Some(ann) = m.get("annotations") {
        match ann.as_object() {
            Some(a) => {
                let mut total = 0;
                for (k, v) in a {
                    if let Err(e) = berth_api::selector::validate_label_key(k) {
                        errs.push(FieldError::invalid(
                            "metadata.annotations",
                            k,
                            e.replace("label key", "annotation key"),
                        ));
                    }
                    total += k.len() + v.as_str().map(|s| s.len()).unwrap_or(0);
                    if !v.is_string() {
                        errs.push(FieldError::invalid(
                            "metadata.annotations",
                            k,
                            "annotation values must be strings",
                        ));
                    }
                }
                if total > 256 * 1024 {
                    errs.push(FieldError::too_long("metadata.annotations", 256 * 1024));
                }
            }
            None if ann.is_null() => {}
            None => errs.push(FieldError::invalid(
                "metadata.annotations",
                ann,
                "must be a map of strings",
            )),
        }
    }
    if let Some(f) = m.get("finalizers").and_then(|f| f.as_array()) {
        for (i, v) in f.iter().enumerate() {
            let ok = v.as_str().is_some_and(|s| {
                berth_api::selector::validate_label_key(s).is_ok() || s == "kubernetes"
            });
            if !ok {
                errs.push(FieldError::invalid(
                    format!("metadata.finalizers[{i}]"),
                    v,
                    "a finalizer must be a qualified name",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(kind: &str) -> ResourceInfo {
        (*berth_api::builtin_resources()
            .into_iter()
            .find(|r| r.kind == kind)
            .unwrap())
        .clone()
    }

    #[test]
    fn generation_bumps_only_on_spec_changes() {
        let d = res("Deployment");
        let mut old = json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}});
        prepare_create(&d, &mut old);
        assert_eq!(old["metadata"]["generation"], 1);
        let mut label_only = old.clone();
        label_only["metadata"]["labels"] = json!({"x": "y"});
        prepare_update(&d, &mut label_only, &old);
        assert_eq!(label_only["metadata"]["generation"], 1);
        let mut spec = old.clone();
        spec["spec"]["replicas"] = json!(3);
        spec["status"] = json!({"replicas": 9});
        prepare_update(&d, &mut spec, &old);
        assert_eq!(spec["metadata"]["generation"], 2);
        assert!(
            spec.get("status").is_none(),
            "main resource updates ignore status"
        );
    }

    #[test]
    fn generated_names_keep_the_prefix() {
        let d = res("Pod");
        let mut o = json!({"metadata": {"generateName": "web-"}});
        generate_name(&d, &mut o);
        let n = o["metadata"]["name"].as_str().unwrap();
        assert!(n.starts_with("web-") && n.len() == 9, "{n}");
    }

    #[test]
    fn metadata_validation_names_fields() {
        let mut errs = FieldErrors::default();
        validate_metadata(
            &res("Pod"),
            &json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "-bad-"}}}),
            &mut errs,
        );
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["metadata.name", "metadata.labels"]);
    }
}
