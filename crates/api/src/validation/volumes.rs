//! Pod volumes: exactly one source per volume, the checks of the common sources (secret,
//! config map, downward API, projected, host path, NFS, claims, ephemeral claims, CSI, ...),
//! file modes and relative paths, and the downward API field selectors that environment
//! variables use too.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::Quantity;
use super::field::*;
use crate::FieldErrors;

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
pub(super) type Volumes = BTreeMap<String, bool>;

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

pub(super) fn local_descending_path(errs: &mut FieldErrors, p: &str, path: &str) {
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
pub(super) const ENV_FIELD_PATHS: &[&str] = &[
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

pub(super) fn object_field_selector(
    errs: &mut FieldErrors,
    fs: &Value,
    allowed: &[&str],
    path: &str,
) {
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

pub(super) fn resource_field_selector(
    errs: &mut FieldErrors,
    rs: &Value,
    path: &str,
    volume: bool,
) {
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
                Some(t) => super::storage::claim_spec(
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

pub(super) fn volumes(errs: &mut FieldErrors, spec: &Value, path: &str) -> Volumes {
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
