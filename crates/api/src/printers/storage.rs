//! Printers of storage: persistent volumes, claims and storage classes.

use serde_json::{Value, json};

use super::cells::{access_modes, str_at};
use super::{AGE, Column, NAME, Printer, age, docs, name, s};
use crate::validation::Quantity;

pub fn for_kind(group: &str, kind: &str) -> Option<&'static dyn Printer> {
    Some(match (group, kind) {
        ("", "PersistentVolume") => &PV,
        ("", "PersistentVolumeClaim") => &PVC,
        ("storage.k8s.io", "StorageClass") => &STORAGE_CLASS,
        _ => return None,
    })
}

/// A quantity in canonical form ("0" when missing, the text as-is when malformed).
pub fn quantity_text(v: Option<&Value>) -> String {
    match v.and_then(|v| v.as_str()) {
        Some(t) => Quantity::parse(t)
            .map(|q| q.canonical())
            .unwrap_or_else(|_| t.to_string()),
        None => match v.and_then(|v| v.as_f64()) {
            Some(n) => n.to_string(),
            None => "0".into(),
        },
    }
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    crate::meta::metadata(obj)?
        .get("annotations")?
        .get(key)?
        .as_str()
}

fn unset_or(v: &str) -> String {
    if v.is_empty() {
        "<unset>".into()
    } else {
        v.into()
    }
}

fn phase(obj: &Value) -> String {
    if crate::meta::is_deleting(obj) {
        "Terminating".into()
    } else {
        s(obj, "/status/phase").into()
    }
}

pub struct PvPrinter;
static PV: PvPrinter = PvPrinter;

impl Printer for PvPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Capacity", "string", docs::PV_CAPACITY),
            Column::new("Access Modes", "string", docs::PV_ACCESS_MODES),
            Column::new("Reclaim Policy", "string", docs::PV_RECLAIM),
            Column::new("Status", "string", docs::PV_PHASE),
            Column::new("Claim", "string", docs::PV_CLAIM_REF),
            Column::new("StorageClass", "string", "StorageClass of the pv"),
            Column::new(
                "VolumeAttributesClass",
                "string",
                "VolumeAttributesClass of the pv",
            ),
            Column::new("Reason", "string", docs::PV_REASON),
            AGE,
            Column::new("VolumeMode", "string", docs::PV_VOLUME_MODE).wide(),
        ];
        COLS
    }
    fn cells(&self, pv: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let claim = match pv.pointer("/spec/claimRef").filter(|c| c.is_object()) {
            Some(c) => format!("{}/{}", str_at(c, "namespace"), str_at(c, "name")),
            None => String::new(),
        };
        let class = annotation(pv, "volume.beta.kubernetes.io/storage-class")
            .unwrap_or_else(|| s(pv, "/spec/storageClassName"));
        vec![
            name(pv),
            json!(quantity_text(pv.pointer("/spec/capacity/storage"))),
            json!(access_modes(pv.pointer("/spec/accessModes"))),
            json!(s(pv, "/spec/persistentVolumeReclaimPolicy")),
            json!(phase(pv)),
            json!(claim),
            json!(class),
            json!(unset_or(s(pv, "/spec/volumeAttributesClassName"))),
            json!(s(pv, "/status/reason")),
            age(pv, now),
            json!(unset_or(s(pv, "/spec/volumeMode"))),
        ]
    }
}

pub struct PvcPrinter;
static PVC: PvcPrinter = PvcPrinter;

impl Printer for PvcPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Status", "string", docs::PVC_PHASE),
            Column::new("Volume", "string", docs::PVC_VOLUME_NAME),
            Column::new("Capacity", "string", docs::PVC_CAPACITY),
            Column::new("Access Modes", "string", docs::PVC_ACCESS_MODES),
            Column::new("StorageClass", "string", "StorageClass of the pvc"),
            Column::new(
                "VolumeAttributesClass",
                "string",
                "VolumeAttributesClass of the pvc",
            ),
            AGE,
            Column::new("VolumeMode", "string", docs::PVC_VOLUME_MODE).wide(),
        ];
        COLS
    }
    fn cells(&self, pvc: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let volume = s(pvc, "/spec/volumeName");
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                quantity_text(pvc.pointer("/status/capacity/storage")),
                access_modes(pvc.pointer("/status/accessModes")),
            )
        };
        let class = annotation(pvc, "volume.beta.kubernetes.io/storage-class")
            .unwrap_or_else(|| s(pvc, "/spec/storageClassName"));
        vec![
            name(pvc),
            json!(phase(pvc)),
            json!(volume),
            json!(capacity),
            json!(modes),
            json!(class),
            json!(unset_or(s(pvc, "/spec/volumeAttributesClassName"))),
            age(pvc, now),
            json!(unset_or(s(pvc, "/spec/volumeMode"))),
        ]
    }
}

pub struct StorageClassPrinter;
static STORAGE_CLASS: StorageClassPrinter = StorageClassPrinter;

impl Printer for StorageClassPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Provisioner", "string", docs::SC_PROVISIONER),
            Column::new("ReclaimPolicy", "string", docs::SC_RECLAIM),
            Column::new("VolumeBindingMode", "string", docs::SC_BINDING_MODE),
            Column::new("AllowVolumeExpansion", "string", docs::SC_EXPANSION),
            AGE,
        ];
        COLS
    }
    fn cells(&self, sc: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let is_default = annotation(sc, "storageclass.kubernetes.io/is-default-class")
            == Some("true")
            || annotation(sc, "storageclass.beta.kubernetes.io/is-default-class") == Some("true");
        let mut n = crate::meta::name(sc).unwrap_or_default().to_string();
        if is_default {
            n.push_str(" (default)");
        }
        let reclaim = sc
            .get("reclaimPolicy")
            .and_then(|v| v.as_str())
            .unwrap_or("Delete");
        let binding = sc
            .get("volumeBindingMode")
            .and_then(|v| v.as_str())
            .unwrap_or("Immediate");
        let expansion = sc
            .get("allowVolumeExpansion")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        vec![
            json!(n),
            json!(str_at(sc, "provisioner")),
            json!(reclaim),
            json!(binding),
            json!(expansion),
            age(sc, now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2025-03-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn volumes_claims_and_classes() {
        let pv = json!({"metadata": {"name": "pv1", "creationTimestamp": "2025-03-01T11:00:00Z"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
                     "claimRef": {"namespace": "default", "name": "data"}, "storageClassName": "local", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"}});
        assert_eq!(
            PV.cells(&pv, now()),
            vec![
                json!("pv1"),
                json!("10Gi"),
                json!("RWO"),
                json!("Retain"),
                json!("Bound"),
                json!("default/data"),
                json!("local"),
                json!("<unset>"),
                json!(""),
                json!("60m"),
                json!("Filesystem")
            ]
        );
        let pvc = json!({"metadata": {"name": "data", "creationTimestamp": "2025-03-01T11:00:00Z"},
            "spec": {"volumeName": "pv1", "storageClassName": "local", "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "10240Mi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"]}});
        assert_eq!(
            PVC.cells(&pvc, now()),
            vec![
                json!("data"),
                json!("Bound"),
                json!("pv1"),
                json!("10Gi"),
                json!("RWO,ROX"),
                json!("local"),
                json!("<unset>"),
                json!("60m"),
                json!("<unset>")
            ]
        );
        let pending = json!({"metadata": {"name": "p", "deletionTimestamp": "2025-03-01T11:00:00Z"}, "spec": {}, "status": {"phase": "Pending"}});
        let c = PVC.cells(&pending, now());
        assert_eq!(
            (c[1].clone(), c[3].clone()),
            (json!("Terminating"), json!(""))
        );
        let sc = json!({"metadata": {"name": "local-path", "creationTimestamp": "2025-03-01T11:00:00Z",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "berth.dev/local-path",
            "volumeBindingMode": "WaitForFirstConsumer"});
        assert_eq!(
            STORAGE_CLASS.cells(&sc, now()),
            vec![
                json!("local-path (default)"),
                json!("berth.dev/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false),
                json!("60m")
            ]
        );
    }
}
