//! Pod and pod template validation: Kubernetes' `ValidatePodSpec` (containers, init and
//! ephemeral containers, ports, env, mounts, resources, probes, lifecycle hooks, volumes,
//! policies, tolerations, affinity, DNS config, ...), the pod-only checks, the pod template
//! checks of workloads, and the rules of a pod update (only images, active deadline,
//! additional tolerations and a few more may change).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::Quantity;
use super::field::*;
use crate::FieldErrors;

/// What kind of object a pod spec belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SpecOf {
    Pod,
    Template,
}

const VOLUME_SOURCES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

const FILE_MODE: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// Valid volumes by name: whether each is backed by a claim (for block devices).
type Volumes = BTreeMap<String, bool>;

fn file_mode(errs: &mut FieldErrors, obj: &Value, k: &str, path: &str) {
    if let Some(m) = int_of(obj, k).filter(|m| !(0..=0o777).contains(m)) {
        errs.push(invalid_num(child(path, k), m, FILE_MODE));
    }
}

fn no_backsteps(errs: &mut FieldErrors, p: &str, path: &str) {
    if p.split('/').any(|part| part == "..") {
        errs.push(invalid(path, p, "must not contain '..'"));
    }
}

fn local_descending_path(errs: &mut FieldErrors, p: &str, path: &str) {
    if p.starts_with('/') {
        errs.push(invalid(path, p, "must be a relative path"));
    }
    no_backsteps(errs, p, path);
}

fn local_non_reserved_path(errs: &mut FieldErrors, p: &str, path: &str) {
    local_descending_path(errs, p, path);
    if p.starts_with("..") {
        errs.push(invalid(path, p, "must not start with '..'"));
    }
}

fn key_to_paths(errs: &mut FieldErrors, items: &[Value], path: &str) {
    for (i, kp) in items.iter().enumerate() {
        let p = index(path, i);
        if empty(kp, "key") {
            errs.push(required(child(&p, "key"), ""));
        }
        if empty(kp, "path") {
            errs.push(required(child(&p, "path"), ""));
        }
        local_non_reserved_path(errs, str_of(kp, "path"), &child(&p, "path"));
        file_mode(errs, kp, "mode", &p);
    }
}

const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn object_field_selector(errs: &mut FieldErrors, fs: &Value, allowed: &[&str], path: &str) {
    if empty(fs, "apiVersion") {
        errs.push(required(child(path, "apiVersion"), ""));
        return;
    }
    let fp = str_of(fs, "fieldPath");
    if fp.is_empty() {
        errs.push(required(child(path, "fieldPath"), ""));
        return;
    }
    // `metadata.labels['key']` and `metadata.annotations['key']` select one entry.
    if let Some((base, rest)) = fp.split_once('[') {
        let subscript = rest.strip_suffix(']').map(|s| s.trim_matches('\''));
        match (base, subscript) {
            ("metadata.annotations", Some(s)) => qualified_name(errs, &s.to_lowercase(), path),
            ("metadata.labels", Some(s)) => qualified_name(errs, s, path),
            _ => errs.push(invalid(path, base, "does not support subscript")),
        }
    } else if !allowed.contains(&fp) {
        errs.push(not_supported(child(path, "fieldPath"), fp, allowed));
    }
}

fn resource_field_selector(errs: &mut FieldErrors, rs: &Value, path: &str, volume: bool) {
    let resource = str_of(rs, "resource");
    if volume && empty(rs, "containerName") {
        errs.push(required(child(path, "containerName"), ""));
    } else if resource.is_empty() {
        errs.push(required(child(path, "resource"), ""));
    } else if !RESOURCE_FIELD_PATHS.contains(&resource)
        && !resource.starts_with("requests.hugepages-")
        && !resource.starts_with("limits.hugepages-")
    {
        errs.push(not_supported(
            child(path, "resource"),
            resource,
            RESOURCE_FIELD_PATHS,
        ));
    }
}

fn downward_api_files(errs: &mut FieldErrors, items: &[Value], path: &str) {
    for file in items {
        let fpath = str_of(file, "path");
        if fpath.is_empty() {
            errs.push(required(child(path, "path"), ""));
        }
        local_non_reserved_path(errs, fpath, &child(path, "path"));
        match (
            file.get("fieldRef").filter(|v| !v.is_null()),
            file.get("resourceFieldRef").filter(|v| !v.is_null()),
        ) {
            (Some(fr), rf) => {
                object_field_selector(errs, fr, VOLUME_FIELD_PATHS, &child(path, "fieldRef"));
                if rf.is_some() {
                    errs.push(invalid(
                        path,
                        "resource",
                        "fieldRef and resourceFieldRef can not be specified simultaneously",
                    ));
                }
            }
            (None, Some(rf)) => {
                resource_field_selector(errs, rf, &child(path, "resourceFieldRef"), true)
            }
            (None, None) => errs.push(required(
                path,
                "one of fieldRef and resourceFieldRef is required",
            )),
        }
        file_mode(errs, file, "mode", path);
    }
}

fn projected(errs: &mut FieldErrors, src: &Value, path: &str) {
    file_mode(errs, src, "defaultMode", path);
    let mut paths = BTreeSet::new();
    for (i, source) in arr(src, "sources").iter().enumerate() {
        let sp = index(&child(path, "sources"), i);
        let mut count = 0;
        for kind in [
            "secret",
            "configMap",
            "downwardAPI",
            "serviceAccountToken",
            "clusterTrustBundle",
        ] {
            let Some(s) = source.get(kind).filter(|v| !v.is_null()) else {
                continue;
            };
            count += 1;
            let kp = child(&sp, kind);
            if count > 1 {
                errs.push(forbidden(
                    kp,
                    "may not specify more than 1 volume type per source",
                ));
                continue;
            }
            match kind {
                "secret" | "configMap" => {
                    if empty(s, "name") {
                        errs.push(required(child(&kp, "name"), ""));
                    }
                    key_to_paths(errs, arr(s, "items"), &child(&kp, "items"));
                    for item in arr(s, "items") {
                        let p = str_of(item, "path");
                        if !p.is_empty() && !paths.insert(p.to_string()) {
                            errs.push(invalid(
                                path,
                                str_of(s, "name"),
                                "conflicting duplicate paths",
                            ));
                        }
                    }
                }
                "downwardAPI" => {
                    downward_api_files(errs, arr(s, "items"), &kp);
                    for item in arr(s, "items") {
                        let p = str_of(item, "path");
                        if !p.is_empty() && !paths.insert(p.to_string()) {
                            errs.push(invalid(path, p, "conflicting duplicate paths"));
                        }
                    }
                }
                "serviceAccountToken" => {
                    let exp = int_of(s, "expirationSeconds").unwrap_or(0);
                    if exp < 600 {
                        errs.push(invalid_num(
                            child(&kp, "expirationSeconds"),
                            exp,
                            "may not specify a duration less than 10 minutes",
                        ));
                    }
                    if exp > 1 << 32 {
                        errs.push(invalid_num(
                            child(&kp, "expirationSeconds"),
                            exp,
                            "may not specify a duration larger than 2^32 seconds",
                        ));
                    }
                    let p = str_of(s, "path");
                    if p.is_empty() {
                        errs.push(required(child(&kp, "path"), ""));
                    } else {
                        local_non_reserved_path(errs, p, &child(&kp, "path"));
                        if !paths.insert(p.to_string()) {
                            errs.push(invalid(path, p, "conflicting duplicate paths"));
                        }
                    }
                }
                _ => {}
            }
        }
        if count == 0 {
            errs.push(required(
                &sp,
                "must specify exactly 1 volume type per source",
            ));
        }
    }
}

const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];

fn volume_source(errs: &mut FieldErrors, vol: &Value, path: &str) {
    let mut count = 0;
    for (key_name, path_name) in VOLUME_SOURCES {
        let Some(src) = vol.get(*key_name).filter(|v| !v.is_null()) else {
            continue;
        };
        if count > 0 {
            errs.push(forbidden(
                child(path, path_name),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let sp = child(path, key_name);
        match *key_name {
            "emptyDir" => {
                if let Some(limit) = src.get("sizeLimit").filter(|v| !v.is_null())
                    && Quantity::from_json(limit).map_or(true, |q| q.is_negative())
                {
                    errs.push(forbidden(
                        child(&sp, "sizeLimit"),
                        "SizeLimit field must be a valid resource quantity",
                    ));
                }
            }
            "hostPath" => {
                let p = str_of(src, "path");
                if p.is_empty() {
                    errs.push(required(child(&sp, "path"), ""));
                } else {
                    no_backsteps(errs, p, &child(&sp, "path"));
                    let t = str_of(src, "type");
                    if !HOST_PATH_TYPES.contains(&t) {
                        errs.push(not_supported(child(&sp, "type"), t, HOST_PATH_TYPES));
                    }
                }
            }
            "secret" => {
                if empty(src, "secretName") {
                    errs.push(required(child(&sp, "secretName"), ""));
                }
                file_mode(errs, src, "defaultMode", &sp);
                key_to_paths(errs, arr(src, "items"), &child(&sp, "items"));
            }
            "configMap" => {
                if empty(src, "name") {
                    errs.push(required(child(&sp, "name"), ""));
                }
                file_mode(errs, src, "defaultMode", &sp);
                key_to_paths(errs, arr(src, "items"), &child(&sp, "items"));
            }
            "persistentVolumeClaim" if empty(src, "claimName") => {
                errs.push(required(child(&sp, "claimName"), ""));
            }
            "nfs" => {
                if empty(src, "server") {
                    errs.push(required(child(&sp, "server"), ""));
                }
                let p = str_of(src, "path");
                if p.is_empty() {
                    errs.push(required(child(&sp, "path"), ""));
                }
                if !p.starts_with('/') {
                    errs.push(invalid(child(&sp, "path"), p, "must be an absolute path"));
                }
            }
            "downwardAPI" => {
                file_mode(errs, src, "defaultMode", &sp);
                downward_api_files(errs, arr(src, "items"), &sp);
            }
            "projected" => projected(errs, src, &sp),
            "csi" if empty(src, "driver") => {
                errs.push(required(child(&sp, "driver"), ""));
            }
            "ephemeral" => match src.get("volumeClaimTemplate").filter(|v| !v.is_null()) {
                None => errs.push(required(child(&sp, "volumeClaimTemplate"), "")),
                Some(t) => super::core::claim_spec(
                    errs,
                    t.get("spec").unwrap_or(&Value::Null),
                    &child(&child(&sp, "volumeClaimTemplate"), "spec"),
                ),
            },
            "gitRepo" => {
                if empty(src, "repository") {
                    errs.push(required(child(&sp, "repository"), ""));
                }
                local_descending_path(errs, str_of(src, "directory"), &child(&sp, "directory"));
            }
            "image" if empty(src, "reference") => {
                errs.push(required(child(&sp, "reference"), ""));
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(required(path, "must specify a volume type"));
    }
}

fn volumes(errs: &mut FieldErrors, spec: &Value, path: &str) -> Volumes {
    let mut valid = Volumes::new();
    for (i, vol) in arr(spec, "volumes").iter().enumerate() {
        let p = index(path, i);
        let mut el = FieldErrors::default();
        volume_source(&mut el, vol, &p);
        let name = str_of(vol, "name");
        if name.is_empty() {
            el.push(required(child(&p, "name"), ""));
        } else {
            dns1123_label(&mut el, name, child(&p, "name"));
        }
        if valid.contains_key(name) {
            el.push(duplicate(child(&p, "name"), name));
        }
        if el.is_empty() {
            let claim = !absent(vol, "persistentVolumeClaim") || !absent(vol, "ephemeral");
            valid.insert(name.to_string(), claim);
        } else {
            errs.extend(el);
        }
    }
    valid
}

fn container_ports(errs: &mut FieldErrors, c: &Value, path: &str) {
    let mut names = BTreeSet::new();
    for (i, port) in arr(c, "ports").iter().enumerate() {
        let p = index(path, i);
        let name = str_of(port, "name");
        if !name.is_empty() {
            let msgs = port_name_errors(name);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(invalid(child(&p, "name"), name, m));
                }
            } else if !names.insert(name) {
                errs.push(duplicate(child(&p, "name"), name));
            }
        }
        match int_of(port, "containerPort").unwrap_or(0) {
            0 => errs.push(required(child(&p, "containerPort"), "")),
            n if !(1..=65535).contains(&n) => {
                errs.push(invalid_num(child(&p, "containerPort"), n, PORT_RANGE))
            }
            _ => {}
        }
        if let Some(hp) = int_of(port, "hostPort").filter(|h| *h != 0 && !(1..=65535).contains(h)) {
            errs.push(invalid_num(child(&p, "hostPort"), hp, PORT_RANGE));
        }
        let proto = str_of(port, "protocol");
        if proto.is_empty() {
            errs.push(required(child(&p, "protocol"), ""));
        } else if !["SCTP", "TCP", "UDP"].contains(&proto) {
            errs.push(not_supported(
                child(&p, "protocol"),
                proto,
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
}

/// Kubernetes 1.32's relaxed environment variable names: printable ASCII without `=`.
fn env_name(errs: &mut FieldErrors, name: &str, path: &str) {
    if !name.bytes().all(|c| (32..=126).contains(&c) && c != b'=') {
        errs.push(invalid(path, name, "a valid environment variable name must consist only of printable ASCII characters other than '='"));
    }
}

fn config_key(errs: &mut FieldErrors, k: &str, path: &str) {
    for msg in config_key_errors(k) {
        errs.push(invalid(path, k, msg));
    }
}

/// Kubernetes' `IsConfigMapKey` messages (config map, secret and key selector keys).
pub fn config_key_errors(k: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if k.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if k.is_empty()
        || !k
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
    {
        errs.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_string());
    }
    if k == "." {
        errs.push("must not be '.'".into());
    } else if k == ".." {
        errs.push("must not be '..'".into());
    } else if k.starts_with("..") {
        errs.push("must not start with '..'".into());
    }
    errs
}

fn key_selector(errs: &mut FieldErrors, sel: &Value, path: &str) {
    let name = str_of(sel, "name");
    if let Err(msg) = crate::names::validate_dns1123_subdomain(name) {
        errs.push(invalid(child(path, "name"), name, msg));
    }
    let k = str_of(sel, "key");
    if k.is_empty() {
        errs.push(required(child(path, "key"), ""));
    } else {
        config_key(errs, k, &child(path, "key"));
    }
}

fn env(errs: &mut FieldErrors, c: &Value, container_path: &str) {
    let path = &child(container_path, "env");
    for (i, ev) in arr(c, "env").iter().enumerate() {
        let p = index(path, i);
        let name = str_of(ev, "name");
        if name.is_empty() {
            errs.push(required(child(&p, "name"), ""));
        } else {
            env_name(errs, name, &child(&p, "name"));
        }
        let Some(vf) = ev.get("valueFrom").filter(|v| !v.is_null()) else {
            continue;
        };
        let vp = child(&p, "valueFrom");
        let mut sources = 0;
        if let Some(fr) = vf.get("fieldRef").filter(|v| !v.is_null()) {
            sources += 1;
            object_field_selector(errs, fr, ENV_FIELD_PATHS, &child(&vp, "fieldRef"));
        }
        if let Some(rf) = vf.get("resourceFieldRef").filter(|v| !v.is_null()) {
            sources += 1;
            resource_field_selector(errs, rf, &child(&vp, "resourceFieldRef"), false);
        }
        if let Some(r) = vf.get("configMapKeyRef").filter(|v| !v.is_null()) {
            sources += 1;
            key_selector(errs, r, &child(&vp, "configMapKeyRef"));
        }
        if let Some(r) = vf.get("secretKeyRef").filter(|v| !v.is_null()) {
            sources += 1;
            key_selector(errs, r, &child(&vp, "secretKeyRef"));
        }
        if sources == 0 {
            errs.push(invalid(&vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
        } else if !empty(ev, "value") {
            errs.push(invalid(
                &vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            errs.push(invalid(
                &vp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    let from_path = child(container_path, "envFrom");
    for (i, ef) in arr(c, "envFrom").iter().enumerate() {
        let p = index(&from_path, i);
        let prefix = str_of(ef, "prefix");
        if !prefix.is_empty() {
            env_name(errs, prefix, &child(&p, "prefix"));
        }
        let mut sources = 0;
        for kind in ["configMapRef", "secretRef"] {
            if let Some(r) = ef.get(kind).filter(|v| !v.is_null()) {
                sources += 1;
                let name = str_of(r, "name");
                if name.is_empty() {
                    errs.push(required(child(&child(&p, kind), "name"), ""));
                } else {
                    dns1123_subdomain(errs, name, child(&child(&p, kind), "name"));
                }
            }
        }
        if sources == 0 {
            errs.push(invalid(
                &from_path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            errs.push(invalid(
                &from_path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn volume_mounts(errs: &mut FieldErrors, c: &Value, vols: &Volumes, container_path: &str) {
    let path = &child(container_path, "volumeMounts");
    let mut mount_paths = BTreeSet::new();
    let device_names: BTreeSet<&str> = arr(c, "volumeDevices")
        .iter()
        .map(|d| str_of(d, "name"))
        .collect();
    let device_paths: BTreeSet<&str> = arr(c, "volumeDevices")
        .iter()
        .map(|d| str_of(d, "devicePath"))
        .collect();
    for (i, m) in arr(c, "volumeMounts").iter().enumerate() {
        let p = index(path, i);
        let name = str_of(m, "name");
        if name.is_empty() {
            errs.push(required(child(&p, "name"), ""));
        }
        if !vols.contains_key(name) {
            errs.push(not_found(child(&p, "name"), name));
        }
        let mp = str_of(m, "mountPath");
        if mp.is_empty() {
            errs.push(required(child(&p, "mountPath"), ""));
        }
        if !mount_paths.insert(mp) {
            errs.push(invalid(child(&p, "mountPath"), mp, "must be unique"));
        }
        if device_names.contains(name) {
            errs.push(invalid(
                child(&p, "name"),
                name,
                "must not already exist in volumeDevices",
            ));
        }
        if device_paths.contains(mp) {
            errs.push(invalid(
                child(&p, "mountPath"),
                mp,
                "must not already exist as a path in volumeDevices",
            ));
        }
        let sub = str_of(m, "subPath");
        if !sub.is_empty() {
            local_descending_path(errs, sub, &child(path, "subPath"));
        }
        let expr = str_of(m, "subPathExpr");
        if !expr.is_empty() {
            if !sub.is_empty() {
                errs.push(invalid(
                    child(&p, "subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            local_descending_path(errs, expr, &child(path, "subPathExpr"));
        }
        let prop = str_of(m, "mountPropagation");
        if !prop.is_empty() && !["Bidirectional", "HostToContainer", "None"].contains(&prop) {
            errs.push(not_supported(
                child(path, "mountPropagation"),
                prop,
                &["Bidirectional", "HostToContainer", "None"],
            ));
        }
    }
    let dev_path = child(container_path, "volumeDevices");
    let mut seen_names = BTreeSet::new();
    let mut seen_paths = BTreeSet::new();
    for (i, d) in arr(c, "volumeDevices").iter().enumerate() {
        let p = index(&dev_path, i);
        let name = str_of(d, "name");
        if name.is_empty() {
            errs.push(required(child(&p, "name"), ""));
        }
        if !seen_names.insert(name) {
            errs.push(invalid(child(&p, "name"), name, "must be unique"));
        }
        match vols.get(name) {
            Some(false) => errs.push(invalid(
                child(&p, "name"),
                name,
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            )),
            Some(true) => {}
            None => errs.push(not_found(child(&p, "name"), name)),
        }
        let dp = str_of(d, "devicePath");
        if dp.is_empty() {
            errs.push(required(child(&p, "devicePath"), ""));
        }
        if !seen_paths.insert(dp) {
            errs.push(invalid(child(&p, "devicePath"), dp, "must be unique"));
        }
    }
}

/// A resource name a container may request.
fn container_resource_name(errs: &mut FieldErrors, name: &str, path: &str) -> bool {
    let before = errs.0.len();
    qualified_name(errs, name, path);
    if errs.0.len() != before {
        return false;
    }
    if !name.contains('/') {
        let standard = matches!(name, "cpu" | "memory" | "ephemeral-storage")
            || name.starts_with("hugepages-");
        if !standard {
            errs.push(invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
            return false;
        }
    } else if !name.contains("kubernetes.io/") && name.starts_with("requests.") {
        errs.push(invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
        return false;
    }
    true
}

/// Extended resources and huge pages cannot be overcommitted: requests must equal limits.
fn overcommit_allowed(name: &str) -> bool {
    (!name.contains('/') || name.contains("kubernetes.io/")) && !name.starts_with("hugepages-")
}

fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// Parses every quantity of a resource list, reporting those that are not quantities.
pub fn quantities<'a>(
    errs: &mut FieldErrors,
    list: Option<&'a Value>,
    path: &str,
) -> Vec<(&'a str, Quantity)> {
    let mut out = Vec::new();
    let Some(list) = list.filter(|v| !v.is_null()) else {
        return out;
    };
    let Some(map) = list.as_object() else {
        errs.push(invalid_raw(
            path,
            render(list),
            "must be a map of resource quantities",
        ));
        return out;
    };
    for (name, v) in map {
        match Quantity::from_json(v) {
            Ok(q) => out.push((name.as_str(), q)),
            Err(e) => errs.push(invalid_raw(key(path, name), render(v), e.to_string())),
        }
    }
    out
}

/// `ValidateResourceQuantityValue`: not negative, and whole for integer resources.
pub fn quantity_value(errs: &mut FieldErrors, name: &str, q: &Quantity, path: &str) {
    if q.is_negative() {
        errs.push(invalid(path, &q.canonical(), IS_NEGATIVE));
    }
    if is_extended(name) && q.milli_value() % 1000 != 0 {
        errs.push(invalid(path, &q.canonical(), "must be an integer"));
    }
}

/// `ValidateResourceRequirements` of a container (or a pod's overhead, as limits).
pub fn resource_requirements(errs: &mut FieldErrors, res: &Value, path: &str) {
    let lim_path = child(path, "limits");
    let req_path = child(path, "requests");
    let limits = quantities(errs, res.get("limits"), &lim_path);
    let requests = quantities(errs, res.get("requests"), &req_path);
    let mut cpu_or_memory = false;
    let mut hugepages = false;
    for (name, q) in &limits {
        let p = key(&lim_path, name);
        if container_resource_name(errs, name, &p) {
            quantity_value(errs, name, q, &p);
        }
        cpu_or_memory |= matches!(*name, "cpu" | "memory");
        hugepages |= name.starts_with("hugepages-");
    }
    for (name, q) in &requests {
        let p = key(&req_path, name);
        if container_resource_name(errs, name, &p) {
            quantity_value(errs, name, q, &p);
        }
        match limits.iter().find(|(n, _)| n == name) {
            Some((_, limit)) => {
                let ord = q.cmp_value(limit);
                if ord != std::cmp::Ordering::Equal && !overcommit_allowed(name) {
                    errs.push(invalid(
                        &req_path,
                        &q.canonical(),
                        format!("must be equal to {name} limit of {}", limit.canonical()),
                    ));
                } else if ord == std::cmp::Ordering::Greater {
                    errs.push(invalid(
                        &req_path,
                        &q.canonical(),
                        format!(
                            "must be less than or equal to {name} limit of {}",
                            limit.canonical()
                        ),
                    ));
                }
            }
            None if !overcommit_allowed(name) => {
                errs.push(required(
                    &lim_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            None => {}
        }
        cpu_or_memory |= matches!(*name, "cpu" | "memory");
        hugepages |= name.starts_with("hugepages-");
    }
    if hugepages && !cpu_or_memory {
        errs.push(forbidden(path, "HugePages require cpu or memory"));
    }
}

fn handler(errs: &mut FieldErrors, h: &Value, grace: Option<i64>, path: &str, kinds: &[&str]) {
    let mut count = 0;
    for kind in kinds {
        let Some(a) = h.get(*kind).filter(|v| !v.is_null()) else {
            continue;
        };
        let p = child(path, kind);
        if count > 0 {
            errs.push(forbidden(p, "may not specify more than 1 handler type"));
            continue;
        }
        count += 1;
        match *kind {
            "exec" if empty(a, "command") => {
                errs.push(required(child(&p, "command"), ""));
            }
            "httpGet" => {
                if empty(a, "path") {
                    errs.push(required(child(&p, "path"), ""));
                }
                port_num_or_name(errs, a.get("port"), &child(&p, "port"));
                let scheme = str_of(a, "scheme");
                if !["HTTP", "HTTPS"].contains(&scheme) {
                    errs.push(not_supported(
                        child(&p, "scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
                for header in arr(a, "httpHeaders") {
                    let n = str_of(header, "name");
                    let token = !n.is_empty()
                        && n.bytes()
                            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
                    if !token {
                        errs.push(invalid(
                            child(&p, "httpHeaders"),
                            n,
                            "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')",
                        ));
                    }
                }
            }
            "tcpSocket" => port_num_or_name(errs, a.get("port"), &child(&p, "port")),
            "grpc" => {
                let port = int_of(a, "port").unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    errs.push(invalid_num(child(&p, "port"), port, PORT_RANGE));
                }
            }
            "sleep" => {
                let secs = int_of(a, "seconds").unwrap_or(0);
                let g = grace.unwrap_or(30);
                if secs <= 0 || secs > g {
                    errs.push(invalid_num(
                        &p,
                        secs,
                        format!("must be greater than 0 and less than terminationGracePeriodSeconds ({g})"),
                    ));
                }
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(required(path, "must specify a handler type"));
    }
}

const PROBE_HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "grpc"];
const LIFECYCLE_HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "sleep"];

fn probe(errs: &mut FieldErrors, c: &Value, which: &str, grace: Option<i64>, path: &str) {
    let Some(p) = c.get(which).filter(|v| !v.is_null()) else {
        return;
    };
    let pp = child(path, which);
    handler(errs, p, grace, &pp, PROBE_HANDLERS);
    for k in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        non_negative(errs, p, k, &pp);
    }
    if let Some(t) = int_of(p, "terminationGracePeriodSeconds") {
        if which == "readinessProbe" {
            errs.push(invalid_num(
                child(&pp, "terminationGracePeriodSeconds"),
                t,
                "must not be set for readinessProbes",
            ));
        } else if t <= 0 {
            errs.push(invalid_num(
                child(&pp, "terminationGracePeriodSeconds"),
                t,
                "must be greater than 0",
            ));
        }
    }
    if which != "readinessProbe"
        && let Some(s) = int_of(p, "successThreshold").filter(|s| *s != 1)
    {
        errs.push(invalid_num(child(&pp, "successThreshold"), s, "must be 1"));
    }
}

fn lifecycle(errs: &mut FieldErrors, c: &Value, grace: Option<i64>, path: &str) {
    let Some(l) = c.get("lifecycle").filter(|v| !v.is_null()) else {
        return;
    };
    for hook in ["postStart", "preStop"] {
        if let Some(h) = l.get(hook).filter(|v| !v.is_null()) {
            handler(
                errs,
                h,
                grace,
                &child(&child(path, "lifecycle"), hook),
                LIFECYCLE_HANDLERS,
            );
        }
    }
}

fn security_context(errs: &mut FieldErrors, sc: Option<&Value>, path: &str) {
    let Some(sc) = sc.filter(|v| v.is_object()) else {
        return;
    };
    for k in ["runAsUser", "runAsGroup"] {
        if let Some(id) = int_of(sc, k).filter(|id| !(0..=2_147_483_647).contains(id)) {
            errs.push(invalid_num(
                child(path, k),
                id,
                "must be between 0 and 2147483647, inclusive",
            ));
        }
    }
    let privileged = sc.get("privileged").and_then(|v| v.as_bool()) == Some(true);
    if sc.get("allowPrivilegeEscalation").and_then(|v| v.as_bool()) == Some(false) && privileged {
        errs.push(invalid_raw(
            path,
            "core.SecurityContext{...}".into(),
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ));
    }
    let pm = str_of(sc, "procMount");
    if !pm.is_empty() && !["Default", "Unmasked"].contains(&pm) {
        errs.push(not_supported(
            child(path, "procMount"),
            pm,
            &["Default", "Unmasked"],
        ));
    }
    if let Some(sp) = sc.get("seccompProfile").filter(|v| v.is_object()) {
        let t = str_of(sp, "type");
        let sp_path = child(path, "seccompProfile");
        match t {
            "Localhost" => {
                if empty(sp, "localhostProfile") {
                    errs.push(required(
                        child(&sp_path, "localhostProfile"),
                        "must be set when seccomp type is Localhost",
                    ));
                }
            }
            "RuntimeDefault" | "Unconfined" => {
                if !empty(sp, "localhostProfile") {
                    errs.push(invalid(
                        child(&sp_path, "localhostProfile"),
                        str_of(sp, "localhostProfile"),
                        "can only be set when seccomp type is Localhost",
                    ));
                }
            }
            "" => errs.push(required(child(&sp_path, "type"), "")),
            other => errs.push(not_supported(
                child(&sp_path, "type"),
                other,
                &["Localhost", "RuntimeDefault", "Unconfined"],
            )),
        }
    }
}

fn container_common(errs: &mut FieldErrors, c: &Value, vols: &Volumes, path: &str) {
    let name = str_of(c, "name");
    if name.is_empty() {
        errs.push(required(child(path, "name"), ""));
    } else {
        dns1123_label(errs, name, child(path, "name"));
    }
    if empty(c, "image") {
        errs.push(required(child(path, "image"), ""));
    }
    match str_of(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(required(child(path, "terminationMessagePolicy"), "")),
        other => errs.push(not_supported(
            child(path, "terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    container_ports(errs, c, &child(path, "ports"));
    env(errs, c, path);
    volume_mounts(errs, c, vols, path);
    match str_of(c, "imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(required(child(path, "imagePullPolicy"), "")),
        other => errs.push(not_supported(
            child(path, "imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    if let Some(res) = c.get("resources").filter(|v| !v.is_null()) {
        resource_requirements(errs, res, &child(path, "resources"));
    }
    security_context(
        errs,
        c.get("securityContext"),
        &child(path, "securityContext"),
    );
}

fn host_ports(
    errs: &mut FieldErrors,
    containers: &[Value],
    path: &str,
    seen: &mut BTreeSet<String>,
) {
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in arr(c, "ports").iter().enumerate() {
            let hp = int_of(port, "hostPort").unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let k = format!(
                "{}/{}/{}",
                str_of(port, "protocol"),
                str_of(port, "hostIP"),
                hp
            );
            if !seen.insert(k.clone()) {
                errs.push(duplicate(
                    child(&index(&child(&index(path, ci), "ports"), pi), "hostPort"),
                    &k,
                ));
            }
        }
    }
}

fn tolerations(errs: &mut FieldErrors, list: &[Value], path: &str) {
    for (i, t) in list.iter().enumerate() {
        let p = index(path, i);
        let k = str_of(t, "key");
        if !k.is_empty() {
            qualified_name(errs, k, &child(&p, "key"));
        }
        let op = str_of(t, "operator");
        if k.is_empty() && op != "Exists" {
            errs.push(invalid(
                child(&p, "operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        let effect = str_of(t, "effect");
        if !absent(t, "tolerationSeconds") && effect != "NoExecute" {
            errs.push(invalid(
                child(&p, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = label_value_errors(str_of(t, "value"));
                if !msgs.is_empty() {
                    errs.push(invalid(
                        child(&p, "operator"),
                        str_of(t, "value"),
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !empty(t, "value") {
                    errs.push(invalid_raw(
                        child(&p, "operator"),
                        render(t),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(not_supported(
                child(&p, "operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
        {
            errs.push(not_supported(
                child(&p, "effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
}

fn node_selector_requirement(errs: &mut FieldErrors, rq: &Value, path: &str) {
    let values = arr(rq, "values");
    match str_of(rq, "operator") {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.push(required(
                    child(path, "values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                errs.push(forbidden(
                    child(path, "values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        "Gt" | "Lt" => {
            if values.len() != 1 {
                errs.push(required(
                    child(path, "values"),
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                ));
            }
        }
        op => errs.push(invalid(
            child(path, "operator"),
            op,
            "not a valid selector operator",
        )),
    }
    qualified_name(errs, str_of(rq, "key"), &child(path, "key"));
}

fn node_selector_terms(errs: &mut FieldErrors, terms: &[Value], path: &str) {
    for (i, term) in terms.iter().enumerate() {
        let p = index(path, i);
        for (j, rq) in arr(term, "matchExpressions").iter().enumerate() {
            node_selector_requirement(errs, rq, &index(&child(&p, "matchExpressions"), j));
        }
        for (j, rq) in arr(term, "matchFields").iter().enumerate() {
            let fp = index(&child(&p, "matchFields"), j);
            if !matches!(str_of(rq, "operator"), "In" | "NotIn") {
                errs.push(invalid(
                    child(&fp, "operator"),
                    str_of(rq, "operator"),
                    "not a valid selector operator",
                ));
            } else if arr(rq, "values").len() != 1 {
                errs.push(required(
                    child(&fp, "values"),
                    "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                ));
            }
            if str_of(rq, "key") != "metadata.name" {
                errs.push(invalid(
                    child(&fp, "key"),
                    str_of(rq, "key"),
                    "not a valid field selector key",
                ));
            }
        }
    }
}

fn pod_affinity_terms(errs: &mut FieldErrors, terms: &[Value], path: &str, weighted: bool) {
    for (i, t) in terms.iter().enumerate() {
        let mut p = index(path, i);
        let mut term = t;
        if weighted {
            if let Some(w) = int_of(t, "weight").filter(|w| !(1..=100).contains(w)) {
                errs.push(invalid_num(
                    child(&p, "weight"),
                    w,
                    "must be in the range 1-100",
                ));
            }
            p = child(&p, "podAffinityTerm");
            term = t.get("podAffinityTerm").unwrap_or(&Value::Null);
        }
        label_selector(errs, term.get("labelSelector"), &child(&p, "labelSelector"));
        label_selector(
            errs,
            term.get("namespaceSelector"),
            &child(&p, "namespaceSelector"),
        );
        for (j, ns) in arr(term, "namespaces").iter().enumerate() {
            let ns = ns.as_str().unwrap_or_default();
            dns1123_label(errs, ns, index(&child(&p, "namespaces"), j));
        }
        let tk = str_of(term, "topologyKey");
        if tk.is_empty() {
            errs.push(required(child(&p, "topologyKey"), "can not be empty"));
        } else {
            qualified_name(errs, tk, &child(&p, "topologyKey"));
        }
    }
}

fn affinity(errs: &mut FieldErrors, spec: &Value, path: &str) {
    let Some(a) = spec.get("affinity").filter(|v| v.is_object()) else {
        return;
    };
    if let Some(na) = a.get("nodeAffinity").filter(|v| v.is_object()) {
        let np = child(path, "nodeAffinity");
        if let Some(req) = na
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .filter(|v| v.is_object())
        {
            let rp = child(&np, "requiredDuringSchedulingIgnoredDuringExecution");
            let terms = arr(req, "nodeSelectorTerms");
            if terms.is_empty() {
                errs.push(required(
                    child(&rp, "nodeSelectorTerms"),
                    "must have at least one node selector term",
                ));
            }
            node_selector_terms(errs, terms, &child(&rp, "nodeSelectorTerms"));
        }
        for (i, pref) in arr(na, "preferredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .enumerate()
        {
            let pp = index(
                &child(&np, "preferredDuringSchedulingIgnoredDuringExecution"),
                i,
            );
            if let Some(w) = int_of(pref, "weight").filter(|w| !(1..=100).contains(w)) {
                errs.push(invalid_num(
                    child(&pp, "weight"),
                    w,
                    "must be in the range 1-100",
                ));
            }
            if let Some(pref_term) = pref.get("preference") {
                node_selector_terms(
                    errs,
                    std::slice::from_ref(pref_term),
                    &child(&pp, "preference"),
                );
            }
        }
    }
    for which in ["podAffinity", "podAntiAffinity"] {
        let Some(pa) = a.get(which).filter(|v| v.is_object()) else {
            continue;
        };
        let pp = child(path, which);
        pod_affinity_terms(
            errs,
            arr(pa, "requiredDuringSchedulingIgnoredDuringExecution"),
            &child(&pp, "requiredDuringSchedulingIgnoredDuringExecution"),
            false,
        );
        pod_affinity_terms(
            errs,
            arr(pa, "preferredDuringSchedulingIgnoredDuringExecution"),
            &child(&pp, "preferredDuringSchedulingIgnoredDuringExecution"),
            true,
        );
    }
}

fn dns_config(errs: &mut FieldErrors, spec: &Value, path: &str) {
    let cfg = spec.get("dnsConfig").filter(|v| !v.is_null());
    if str_of(spec, "dnsPolicy") == "None" {
        match cfg {
            None => {
                errs.push(required(
                    path,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
                return;
            }
            Some(c) if arr(c, "nameservers").is_empty() => {
                errs.push(required(
                    child(path, "nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ));
                return;
            }
            _ => {}
        }
    }
    let Some(cfg) = cfg else { return };
    let ns = arr(cfg, "nameservers");
    if ns.len() > 3 {
        errs.push(invalid_raw(
            child(path, "nameservers"),
            go_strings(cfg.get("nameservers")),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, n) in ns.iter().enumerate() {
        valid_ip(
            errs,
            n.as_str().unwrap_or_default(),
            index(&child(path, "nameservers"), i),
        );
    }
    let searches = arr(cfg, "searches");
    if searches.len() > 32 {
        errs.push(invalid_raw(
            child(path, "searches"),
            go_strings(cfg.get("searches")),
            "must not have more than 32 search paths",
        ));
    }
    for (i, s) in searches.iter().enumerate() {
        let s = s.as_str().unwrap_or_default();
        dns1123_subdomain(
            errs,
            s.strip_suffix('.').unwrap_or(s),
            index(&child(path, "searches"), i),
        );
    }
    for (i, o) in arr(cfg, "options").iter().enumerate() {
        if empty(o, "name") {
            errs.push(required(
                index(&child(path, "options"), i),
                "must not be empty",
            ));
        }
    }
}

fn topology_spread(errs: &mut FieldErrors, spec: &Value, path: &str) {
    let mut seen = BTreeSet::new();
    for (i, c) in arr(spec, "topologySpreadConstraints").iter().enumerate() {
        let p = index(path, i);
        let skew = int_of(c, "maxSkew").unwrap_or(0);
        if skew <= 0 {
            errs.push(invalid_num(
                child(&p, "maxSkew"),
                skew,
                "must be greater than zero",
            ));
        }
        let tk = str_of(c, "topologyKey");
        if tk.is_empty() {
            errs.push(required(child(&p, "topologyKey"), "can not be empty"));
        } else {
            qualified_name(errs, tk, &child(&p, "topologyKey"));
        }
        let wu = str_of(c, "whenUnsatisfiable");
        if !["DoNotSchedule", "ScheduleAnyway"].contains(&wu) {
            errs.push(not_supported(
                child(&p, "whenUnsatisfiable"),
                wu,
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if !seen.insert((tk, wu)) {
            errs.push(duplicate_raw(
                index(path, i),
                format!("{{{}, {}}}", quote(tk), quote(wu)),
            ));
        }
        label_selector(errs, c.get("labelSelector"), &child(&p, "labelSelector"));
        if let Some(m) = int_of(c, "minDomains").filter(|m| *m <= 0) {
            errs.push(invalid_num(
                child(&p, "minDomains"),
                m,
                "must be greater than 0",
            ));
        }
    }
}

/// Kubernetes' `ValidatePodSpec`.
pub fn pod_spec(errs: &mut FieldErrors, spec: &Value, path: &str, of: SpecOf) {
    let grace = int_of(spec, "terminationGracePeriodSeconds");
    if absent(spec, "terminationGracePeriodSeconds") {
        errs.push(required(child(path, "terminationGracePeriodSeconds"), ""));
    }
    let vols = volumes(errs, spec, &child(path, "volumes"));

    let containers = arr(spec, "containers");
    let cpath = child(path, "containers");
    if containers.is_empty() {
        errs.push(required(&cpath, ""));
    }
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = index(&cpath, i);
        container_common(errs, c, &vols, &p);
        let name = str_of(c, "name");
        if !names.insert(name) {
            errs.push(duplicate(child(&p, "name"), name));
        }
        lifecycle(errs, c, grace, &p);
        for which in ["livenessProbe", "readinessProbe", "startupProbe"] {
            probe(errs, c, which, grace, &p);
        }
        if !absent(c, "restartPolicy") {
            errs.push(forbidden(
                child(&p, "restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
        if of == SpecOf::Pod && str_of(c, "image").trim() != str_of(c, "image") {
            errs.push(invalid(
                child(&p, "image"),
                str_of(c, "image"),
                "must not have leading or trailing whitespace",
            ));
        }
    }
    host_ports(errs, containers, &cpath, &mut BTreeSet::new());

    let ipath = child(path, "initContainers");
    for (i, c) in arr(spec, "initContainers").iter().enumerate() {
        let p = index(&ipath, i);
        container_common(errs, c, &vols, &p);
        let mut sidecar = false;
        if let Some(rp) = c.get("restartPolicy").filter(|v| !v.is_null()) {
            let rp = rp.as_str().unwrap_or_default();
            if rp == "Always" {
                sidecar = true;
            } else {
                errs.push(not_supported(child(&p, "restartPolicy"), rp, &["Always"]));
            }
        }
        let name = str_of(c, "name");
        if !name.is_empty() && !names.insert(name) {
            errs.push(duplicate(child(&p, "name"), name));
        }
        host_ports(errs, std::slice::from_ref(c), &ipath, &mut BTreeSet::new());
        if sidecar {
            lifecycle(errs, c, grace, &p);
            for which in ["livenessProbe", "readinessProbe", "startupProbe"] {
                probe(errs, c, which, grace, &p);
            }
        } else {
            for k in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if !absent(c, k) {
                    errs.push(forbidden(
                        child(&p, k),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
        if of == SpecOf::Pod && str_of(c, "image").trim() != str_of(c, "image") {
            errs.push(invalid(
                child(&p, "image"),
                str_of(c, "image"),
                "must not have leading or trailing whitespace",
            ));
        }
    }

    let epath = child(path, "ephemeralContainers");
    for (i, c) in arr(spec, "ephemeralContainers").iter().enumerate() {
        let p = index(&epath, i);
        container_common(errs, c, &vols, &p);
        let name = str_of(c, "name");
        if !names.insert(name) {
            errs.push(duplicate(child(&p, "name"), name));
        }
        for k in [
            "ports",
            "resources",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "lifecycle",
        ] {
            if !empty(c, k) {
                errs.push(forbidden(
                    child(&p, k),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
    }

    if spec.get("hostNetwork").and_then(|v| v.as_bool()) == Some(true) {
        for (i, c) in containers.iter().enumerate() {
            for (j, port) in arr(c, "ports").iter().enumerate() {
                let hp = int_of(port, "hostPort").unwrap_or(0);
                let cp = int_of(port, "containerPort").unwrap_or(0);
                if (of == SpecOf::Pod || hp != 0) && hp != cp {
                    errs.push(invalid_num(
                        child(&index(&child(&index(&cpath, i), "ports"), j), "hostPort"),
                        hp,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }

    match str_of(spec, "restartPolicy") {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(required(child(path, "restartPolicy"), "")),
        other => errs.push(not_supported(
            child(path, "restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    match str_of(spec, "dnsPolicy") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(required(child(path, "dnsPolicy"), "")),
        other => errs.push(not_supported(
            child(path, "dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    labels(errs, spec.get("nodeSelector"), &child(path, "nodeSelector"));
    let sc = spec.get("securityContext").filter(|v| v.is_object());
    security_context(errs, sc, &child(path, "securityContext"));
    if let Some(fs) = sc
        .and_then(|s| int_of(s, "fsGroup"))
        .filter(|g| !(0..=2_147_483_647).contains(g))
    {
        errs.push(invalid_num(
            child(&child(path, "securityContext"), "fsGroup"),
            fs,
            "must be between 0 and 2147483647, inclusive",
        ));
    }
    for (i, s) in arr(spec, "imagePullSecrets").iter().enumerate() {
        if s.as_object().is_some_and(|m| m.keys().any(|k| k != "name")) {
            errs.push(invalid_raw(
                index(&child(path, "imagePullSecrets"), i),
                render(s),
                "only name may be set",
            ));
        }
    }
    affinity(errs, spec, &child(path, "affinity"));
    dns_config(errs, spec, &child(path, "dnsConfig"));
    for (i, g) in arr(spec, "readinessGates").iter().enumerate() {
        qualified_name(
            errs,
            str_of(g, "conditionType"),
            &child(&index(&child(path, "readinessGates"), i), "conditionType"),
        );
    }
    let mut gates = BTreeSet::new();
    for (i, g) in arr(spec, "schedulingGates").iter().enumerate() {
        let gp = index(&child(path, "schedulingGates"), i);
        let n = str_of(g, "name");
        qualified_name(errs, n, &gp);
        if !gates.insert(n) {
            errs.push(duplicate(gp, n));
        }
    }
    topology_spread(errs, spec, &child(path, "topologySpreadConstraints"));
    for (k, sub) in [
        ("serviceAccountName", true),
        ("nodeName", true),
        ("priorityClassName", true),
        ("hostname", false),
        ("subdomain", false),
    ] {
        let v = str_of(spec, k);
        if v.is_empty() {
            continue;
        }
        if sub {
            dns1123_subdomain(errs, v, child(path, k));
        } else {
            dns1123_label(errs, v, child(path, k));
        }
    }
    if let Some(ads) =
        int_of(spec, "activeDeadlineSeconds").filter(|a| !(1..=2_147_483_647).contains(a))
    {
        errs.push(invalid_num(
            child(path, "activeDeadlineSeconds"),
            ads,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    tolerations(errs, arr(spec, "tolerations"), &child(path, "tolerations"));
    for (i, ha) in arr(spec, "hostAliases").iter().enumerate() {
        let hp = index(&child(path, "hostAliases"), i);
        valid_ip(errs, str_of(ha, "ip"), child(&hp, "ip"));
        for (j, h) in arr(ha, "hostnames").iter().enumerate() {
            dns1123_subdomain(
                errs,
                h.as_str().unwrap_or_default(),
                index(&child(&hp, "hostnames"), j),
            );
        }
    }
    if let Some(rc) = spec.get("runtimeClassName").and_then(|v| v.as_str()) {
        dns1123_subdomain(errs, rc, child(path, "runtimeClassName"));
    }
    if let Some(pp) = spec.get("preemptionPolicy").filter(|v| !v.is_null()) {
        match pp.as_str().unwrap_or_default() {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(required(child(path, "preemptionPolicy"), "")),
            other => errs.push(not_supported(
                child(path, "preemptionPolicy"),
                other,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if let Some(oh) = spec.get("overhead").filter(|v| !v.is_null()) {
        let wrapped = serde_json::json!({ "limits": oh });
        resource_requirements(errs, &wrapped, &child(path, "overhead"));
    }
    if let Some(os) = spec.get("os").filter(|v| v.is_object()) {
        match str_of(os, "name") {
            "linux" | "windows" => {}
            "" => errs.push(required(child(&child(path, "os"), "name"), "")),
            other => errs.push(not_supported(
                child(&child(path, "os"), "name"),
                other,
                &["linux", "windows"],
            )),
        }
    }
}

/// Kubernetes' `ValidatePodTemplateSpec` (the template of a workload at `path`).
pub fn pod_template(errs: &mut FieldErrors, template: Option<&Value>, path: &str) {
    let Some(t) = template.filter(|t| t.is_object()) else {
        errs.push(required(path, ""));
        return;
    };
    let meta = t.get("metadata").unwrap_or(&Value::Null);
    labels(errs, meta.get("labels"), &child(path, "labels"));
    annotations(errs, meta.get("annotations"), &child(path, "annotations"));
    let spec = t.get("spec").unwrap_or(&Value::Null);
    pod_spec(errs, spec, &child(path, "spec"), SpecOf::Template);
    if !empty(spec, "ephemeralContainers") {
        errs.push(forbidden(
            child(&child(path, "spec"), "ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// `ValidateAnnotations`: qualified keys (case-insensitive), at most 256 KiB in total.
pub fn annotations(errs: &mut FieldErrors, m: Option<&Value>, path: &str) {
    let Some(m) = m.and_then(|v| v.as_object()) else {
        return;
    };
    let mut total = 0;
    for (k, v) in m {
        for msg in qualified_name_errors(&k.to_lowercase()) {
            errs.push(invalid(path, k, msg));
        }
        total += k.len() + v.as_str().map_or(0, |s| s.len());
    }
    if total > 256 * 1024 {
        errs.push(crate::FieldError::too_long(path, 256 * 1024));
    }
}

/// A pod template's labels (for selector checks).
pub fn template_labels(owner_spec: &Value) -> Option<&serde_json::Map<String, Value>> {
    owner_spec
        .pointer("/template/metadata/labels")
        .and_then(|l| l.as_object())
}

/// Whether two JSON objects are equal when the keys in `skip` are ignored.
fn eq_except(a: &Value, b: &Value, skip: &[&str]) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) => {
            let keys: BTreeSet<&String> = x
                .keys()
                .chain(y.keys())
                .filter(|k| !skip.contains(&k.as_str()))
                .collect();
            keys.into_iter()
                .all(|k| x.get(k).filter(|v| !v.is_null()) == y.get(k).filter(|v| !v.is_null()))
        }
        _ => a == b,
    }
}

const UPDATABLE: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Kubernetes' `ValidatePodUpdate` rules for the spec.
pub fn pod_update(errs: &mut FieldErrors, new: &Value, old: &Value) {
    let (ns, os) = (
        new.get("spec").unwrap_or(&Value::Null),
        old.get("spec").unwrap_or(&Value::Null),
    );
    if ns == os {
        return;
    }
    for k in ["containers", "initContainers"] {
        if arr(ns, k).len() != arr(os, k).len() {
            errs.push(forbidden(
                child("spec", k),
                "pod updates may not add or remove containers",
            ));
            return;
        }
    }
    match (
        int_of(ns, "activeDeadlineSeconds"),
        int_of(os, "activeDeadlineSeconds"),
    ) {
        (Some(n), _) if !(0..=2_147_483_647).contains(&n) => {
            errs.push(invalid_num(
                "spec.activeDeadlineSeconds",
                n,
                "must be between 0 and 2147483647, inclusive",
            ));
            return;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(invalid_num(
                "spec.activeDeadlineSeconds",
                n,
                "must be less than or equal to previous value",
            ));
            return;
        }
        (None, Some(_)) => errs.push(invalid_raw(
            "spec.activeDeadlineSeconds",
            "null".into(),
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    // Tolerations may only be added (and their tolerationSeconds changed).
    let new_tolerations = arr(ns, "tolerations");
    for t in arr(os, "tolerations") {
        if !new_tolerations
            .iter()
            .any(|n| eq_except(n, t, &["tolerationSeconds"]))
        {
            errs.push(forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    // Scheduling gates may only be removed.
    let old_gates: BTreeSet<&str> = arr(os, "schedulingGates")
        .iter()
        .map(|g| str_of(g, "name"))
        .collect();
    for (i, g) in arr(ns, "schedulingGates").iter().enumerate() {
        let n = str_of(g, "name");
        if !old_gates.contains(n) {
            errs.push(forbidden(
                child(&index("spec.schedulingGates", i), "name"),
                format!("only deletion is allowed, but found new scheduling gate '{n}'"),
            ));
        }
    }
    let mut changed: Vec<String> = Vec::new();
    for k in ["containers", "initContainers"] {
        for (i, (a, b)) in arr(ns, k).iter().zip(arr(os, k)).enumerate() {
            if !eq_except(a, b, &["image"]) {
                changed.push(format!("spec.{k}[{i}]"));
            }
        }
    }
    let grace_relaxed = int_of(os, "terminationGracePeriodSeconds").is_some_and(|g| g < 0)
        && int_of(ns, "terminationGracePeriodSeconds") == Some(1);
    let mut skip = vec![
        "containers",
        "initContainers",
        "activeDeadlineSeconds",
        "tolerations",
        "schedulingGates",
    ];
    if grace_relaxed {
        skip.push("terminationGracePeriodSeconds");
    }
    // Binding an unscheduled pod sets `spec.nodeName` (berth's `pods/binding` goes through
    // the update path).
    if empty(os, "nodeName") {
        skip.push("nodeName");
    }
    if let (Some(a), Some(b)) = (ns.as_object(), os.as_object()) {
        let keys: BTreeSet<&String> = a
            .keys()
            .chain(b.keys())
            .filter(|k| !skip.contains(&k.as_str()))
            .collect();
        for k in keys {
            if a.get(k).filter(|v| !v.is_null()) != b.get(k).filter(|v| !v.is_null()) {
                changed.push(format!("spec.{k}"));
            }
        }
    }
    if !changed.is_empty() {
        errs.push(forbidden(
            "spec",
            format!("{UPDATABLE}\n  changed: {}", changed.join(", ")),
        ));
    }
}

/// A Pod: its spec and the pod-only rules; on update, what may change.
pub fn validate_pod(errs: &mut FieldErrors, pod: &Value, old: Option<&Value>) {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    annotations(
        errs,
        pod.pointer("/metadata/annotations"),
        "metadata.annotations",
    );
    pod_spec(errs, spec, "spec", SpecOf::Pod);
    if empty(spec, "serviceAccountName") {
        for (vi, v) in arr(spec, "volumes").iter().enumerate() {
            for (si, s) in v
                .get("projected")
                .map(|p| arr(p, "sources"))
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                if !absent(s, "serviceAccountToken") {
                    errs.push(forbidden(
                        format!("spec.volumes[{vi}].projected.sources[{si}].serviceAccountToken"),
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    if let Some(old) = old {
        pod_update(errs, pod, old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaulted_pod(spec: Value) -> Value {
        let mut p = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec});
        crate::defaults::apply("", "Pod", &mut p);
        p
    }

    fn errors(p: &Value, old: Option<&Value>) -> Vec<String> {
        let mut errs = FieldErrors::default();
        validate_pod(&mut errs, p, old);
        errs.0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn a_defaulted_pod_is_valid() {
        let p = defaulted_pod(
            json!({"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "name": "http"}],
            "env": [{"name": "A", "value": "1"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}},
            "livenessProbe": {"httpGet": {"port": "http"}}, "readinessProbe": {"tcpSocket": {"port": 80}},
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}}],
            "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}, {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
            "volumes": [{"name": "data"}, {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "a", "path": "a.conf"}]}}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}}]}}}),
        );
        assert_eq!(errors(&p, None), Vec::<String>::new());
    }

    #[test]
    fn container_errors_have_kubernetes_paths_and_messages() {
        let p = defaulted_pod(json!({"containers": [
            {"name": "Web_1", "image": "", "ports": [{"containerPort": 70000, "protocol": "HTTP"}, {"containerPort": 0}]},
            {"name": "b", "image": "x", "imagePullPolicy": "Sometimes", "env": [{"name": "A=B"}, {"name": ""}],
             "volumeMounts": [{"name": "missing", "mountPath": "/m"}],
             "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1", "nvidia.com/gpu": "1"}},
             "livenessProbe": {"exec": {"command": ["x"]}, "httpGet": {"port": 80}, "successThreshold": 2}},
            {"name": "b", "image": "x", "readinessProbe": {}}]}));
        let e = errors(&p, None);
        let want = [
            "spec.containers[0].name: Invalid value: \"Web_1\": a lowercase RFC 1123 label must consist of",
            "spec.containers[0].image: Required value",
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[0].ports[1].containerPort: Required value",
            "spec.containers[1].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            "spec.containers[1].env[1].name: Required value",
            "spec.containers[1].volumeMounts[0].name: Not found: \"missing\"",
            "spec.containers[1].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            "spec.containers[1].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            "spec.containers[1].livenessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
            "spec.containers[1].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.containers[2].name: Duplicate value: \"b\"",
            "spec.containers[2].readinessProbe: Required value: must specify a handler type",
        ];
        for w in want {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
        assert_eq!(e.len(), want.len(), "{e:#?}");
    }

    #[test]
    fn spec_level_errors() {
        let p = defaulted_pod(
            json!({"containers": [], "restartPolicy": "Sometimes", "dnsPolicy": "None",
            "volumes": [{"name": "a", "emptyDir": {}, "hostPath": {"path": "/x"}}, {"name": "a", "secret": {}}],
            "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}, {"operator": "Equal"}],
            "activeDeadlineSeconds": 0, "hostname": "Bad_Host"}),
        );
        let e = errors(&p, None);
        for w in [
            "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[1].secret.secretName: Required value",
            "spec.containers: Required value",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            "spec.hostname: Invalid value: \"Bad_Host\"",
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            "spec.tolerations[0].operator: Invalid value: ",
            "spec.tolerations[1].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty",
        ] {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
    }

    #[test]
    fn init_containers_and_sidecars() {
        let p = defaulted_pod(json!({"containers": [{"name": "a", "image": "x"}],
            "initContainers": [{"name": "a", "image": "y", "livenessProbe": {"exec": {"command": ["x"]}}}, {"name": "s", "image": "z", "restartPolicy": "OnFailure"}]}));
        let e = errors(&p, None);
        assert!(
            e.contains(&"spec.initContainers[0].name: Duplicate value: \"a\"".to_string()),
            "{e:#?}"
        );
        assert!(e.contains(&"spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always".to_string()));
        assert!(e.contains(&"spec.initContainers[1].restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"".to_string()));
    }

    #[test]
    fn pod_updates_may_change_images_and_add_tolerations_only() {
        let old = defaulted_pod(json!({"containers": [{"name": "a", "image": "x:1"}]}));
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("x:2");
        new["spec"]["tolerations"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"}));
        new["spec"]["activeDeadlineSeconds"] = json!(60);
        assert_eq!(errors(&new, Some(&old)), Vec::<String>::new());
        let mut bad = old.clone();
        bad["spec"]["restartPolicy"] = json!("Never");
        bad["spec"]["containers"][0]["command"] = json!(["sh"]);
        let e = errors(&bad, Some(&old));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"));
        assert!(e[0].contains("spec.containers[0]") && e[0].contains("spec.restartPolicy"));
        let mut bound = old.clone();
        bound["spec"]["nodeName"] = json!("n1");
        assert_eq!(errors(&bound, Some(&old)), Vec::<String>::new());
        let mut moved = bound.clone();
        moved["spec"]["nodeName"] = json!("n2");
        assert_eq!(errors(&moved, Some(&bound)).len(), 1);
        let mut removed = old.clone();
        removed["spec"]["tolerations"] = json!([]);
        assert_eq!(errors(&removed, Some(&old)), vec!["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds".to_string()]);
    }
}
