//! Persistent volume and claim validation: access modes, capacities and storage requests,
//! reclaim policies, volume sources and modes, and what an update may change.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Quantity;
use super::field::*;
use super::resources::{quantities, quantity_value};
use crate::FieldErrors;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn access_modes(errs: &mut FieldErrors, spec: &Value, path: &str, detail: &str) {
    let modes = arr(spec, "accessModes");
    let p = child(path, "accessModes");
    if modes.is_empty() {
        errs.push(required(&p, detail));
    }
    let (mut rwop, mut other) = (false, false);
    for m in modes {
        let m = m.as_str().unwrap_or_default();
        if !ACCESS_MODES.contains(&m) {
            errs.push(not_supported(&p, m, ACCESS_MODES));
        } else if m == "ReadWriteOncePod" {
            rwop = true;
        } else {
            other = true;
        }
    }
    if rwop && other {
        errs.push(forbidden(
            &p,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

fn volume_mode(errs: &mut FieldErrors, spec: &Value, path: &str) {
    if let Some(m) = spec.get("volumeMode").and_then(|v| v.as_str())
        && !["Block", "Filesystem"].contains(&m)
    {
        errs.push(not_supported(
            child(path, "volumeMode"),
            m,
            &["Block", "Filesystem"],
        ));
    }
}

/// Kubernetes' `ValidatePersistentVolumeClaimSpec`.
pub fn claim_spec(errs: &mut FieldErrors, spec: &Value, path: &str) {
    access_modes(errs, spec, path, "at least 1 access mode is required");
    label_selector(errs, spec.get("selector"), &child(path, "selector"));
    let storage_path = key(&child(path, "resources"), "storage");
    let mut sub = FieldErrors::default();
    let requests = quantities(
        &mut sub,
        spec.pointer("/resources/requests"),
        &child(&child(path, "resources"), "requests"),
    );
    errs.extend(sub);
    match requests.iter().find(|(n, _)| *n == "storage") {
        None => errs.push(required(&storage_path, "")),
        Some((_, q)) if q.cmp_value(&Quantity::from_int(0)) != std::cmp::Ordering::Greater => {
            errs.push(invalid(
                &storage_path,
                &q.canonical(),
                "must be greater than zero",
            ));
        }
        Some((n, q)) => quantity_value(errs, n, q, &storage_path),
    }
    if let Some(sc) = spec
        .get("storageClassName")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        dns1123_subdomain(errs, sc, child(path, "storageClassName"));
    }
    volume_mode(errs, spec, path);
}

pub fn persistent_volume_claim(errs: &mut FieldErrors, pvc: &Value, old: Option<&Value>) {
    let spec = pvc.get("spec").unwrap_or(&Value::Null);
    claim_spec(errs, spec, "spec");
    let Some(old) = old else { return };
    let ospec = old.get("spec").unwrap_or(&Value::Null);
    // Only the storage request (and volumeName once, and volumeAttributesClassName) may change.
    let mut skip = vec!["resources", "volumeAttributesClassName"];
    if empty(ospec, "volumeName") {
        skip.push("volumeName");
    }
    let changed =
        |k: &str| spec.get(k).filter(|v| !v.is_null()) != ospec.get(k).filter(|v| !v.is_null());
    let keys: BTreeSet<&String> = spec
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .chain(ospec.as_object().into_iter().flat_map(|m| m.keys()))
        .filter(|k| !skip.contains(&k.as_str()))
        .collect();
    let limits_changed = spec.pointer("/resources/limits") != ospec.pointer("/resources/limits");
    if keys.into_iter().any(|k| changed(k)) || limits_changed {
        errs.push(forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    let size = |v: &Value| {
        v.pointer("/spec/resources/requests/storage")
            .and_then(|q| Quantity::from_json(q).ok())
    };
    if let (Some(n), Some(o)) = (size(pvc), size(old))
        && n.cmp_value(&o) == std::cmp::Ordering::Less
    {
        errs.push(forbidden(
            "spec.resources.requests.storage",
            "field can not be less than previous value",
        ));
    }
}

const PV_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "nfs",
    "rbd",
    "quobyte",
    "cinder",
    "cephfs",
    "fc",
    "flocker",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
    "iscsi",
];

pub fn persistent_volume(errs: &mut FieldErrors, pv: &Value, old: Option<&Value>) {
    let spec = pv.get("spec").unwrap_or(&Value::Null);
    access_modes(errs, spec, "spec", "");
    let capacity = spec.get("capacity").and_then(|v| v.as_object());
    if capacity.is_none_or(|c| c.is_empty()) {
        errs.push(required("spec.capacity", ""));
    }
    if capacity.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        errs.push(not_supported(
            "spec.capacity",
            &render_opt(spec.get("capacity")),
            &["storage"],
        ));
    }
    for (_, q) in quantities(errs, spec.get("capacity"), "spec.capacity") {
        if q.cmp_value(&Quantity::from_int(0)) != std::cmp::Ordering::Greater {
            errs.push(invalid(
                "spec.capacity[storage]",
                &q.canonical(),
                "must be greater than zero",
            ));
        }
    }
    let policy = str_of(spec, "persistentVolumeReclaimPolicy");
    if !policy.is_empty() && !["Delete", "Recycle", "Retain"].contains(&policy) {
        errs.push(not_supported(
            "spec.persistentVolumeReclaimPolicy",
            policy,
            &["Delete", "Recycle", "Retain"],
        ));
    }
    let mut count = 0;
    for s in PV_SOURCES {
        let Some(src) = spec.get(*s).filter(|v| !v.is_null()) else {
            continue;
        };
        let p = child("spec", s);
        if count > 0 {
            errs.push(forbidden(p, "may not specify more than 1 volume type"));
            continue;
        }
        count += 1;
        match *s {
            "hostPath" | "local" if empty(src, "path") => {
                errs.push(required(child(&p, "path"), ""));
            }
            "nfs" => {
                if empty(src, "server") {
                    errs.push(required(child(&p, "server"), ""));
                }
                if !str_of(src, "path").starts_with('/') {
                    errs.push(invalid(
                        child(&p, "path"),
                        str_of(src, "path"),
                        "must be an absolute path",
                    ));
                }
            }
            "csi" => {
                if empty(src, "driver") {
                    errs.push(required(child(&p, "driver"), ""));
                }
                if empty(src, "volumeHandle") {
                    errs.push(required(child(&p, "volumeHandle"), ""));
                }
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(required("spec", "must specify a volume type"));
    }
    if let Some(sc) = spec
        .get("storageClassName")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        dns1123_subdomain(errs, sc, "spec.storageClassName");
    }
    volume_mode(errs, spec, "spec");
    let Some(old) = old else { return };
    let ospec = old.get("spec").unwrap_or(&Value::Null);
    if PV_SOURCES.iter().any(|s| spec.get(*s) != ospec.get(*s)) {
        errs.push(forbidden(
            "spec.persistentvolumesource",
            "spec.persistentvolumesource is immutable after creation",
        ));
    }
    immutable(errs, spec, ospec, "volumeMode", "spec", render_opt);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs_of(f: impl FnOnce(&mut FieldErrors)) -> Vec<String> {
        let mut e = FieldErrors::default();
        f(&mut e);
        e.0.iter().map(|x| x.to_string()).collect()
    }

    fn defaulted(kind: &str, mut v: Value) -> Value {
        crate::defaults::apply("", kind, &mut v);
        v
    }

    #[test]
    fn volumes_and_claims() {
        let pvc = defaulted(
            "PersistentVolumeClaim",
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        );
        assert_eq!(
            errs_of(|e| persistent_volume_claim(e, &pvc, None)),
            Vec::<String>::new()
        );
        let bad = json!({"spec": {"accessModes": ["ReadWriteSometimes"], "resources": {"requests": {"storage": "0"}}, "volumeMode": "Raw"}});
        let e = errs_of(|e| persistent_volume_claim(e, &bad, None));
        assert!(
            e.iter()
                .any(|x| x
                    .starts_with("spec.accessModes: Unsupported value: \"ReadWriteSometimes\"")),
            "{e:#?}"
        );
        assert!(e.contains(
            &"spec.resources[storage]: Invalid value: \"0\": must be greater than zero".to_string()
        ));
        assert!(
            e.iter()
                .any(|x| x.starts_with("spec.volumeMode: Unsupported value: \"Raw\""))
        );
        let empty_claim = json!({"spec": {}});
        let e = errs_of(|e| persistent_volume_claim(e, &empty_claim, None));
        assert_eq!(
            e,
            vec![
                "spec.accessModes: Required value: at least 1 access mode is required".to_string(),
                "spec.resources[storage]: Required value".to_string()
            ]
        );
        let mut grown = pvc.clone();
        grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert_eq!(
            errs_of(|e| persistent_volume_claim(e, &grown, Some(&pvc))),
            Vec::<String>::new()
        );
        let mut moved = pvc.clone();
        moved["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        assert_eq!(
            errs_of(|e| persistent_volume_claim(e, &moved, Some(&pvc))),
            vec!["spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".to_string()]
        );
        let pv = defaulted(
            "PersistentVolume",
            json!({"spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"}}}),
        );
        assert_eq!(
            errs_of(|e| persistent_volume(e, &pv, None)),
            Vec::<String>::new()
        );
        let nosrc =
            json!({"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
        assert_eq!(
            errs_of(|e| persistent_volume(e, &nosrc, None)),
            vec!["spec: Required value: must specify a volume type".to_string()]
        );
    }
}
