//! Containers of a pod spec: names, images, ports, environment, mounts and devices, pull
//! policy, probes and lifecycle handlers, security context, host port conflicts.

use std::collections::BTreeSet;

use serde_json::Value;

use super::field::*;
use super::resources::resource_requirements;
use super::volumes::{
    ENV_FIELD_PATHS, Volumes, local_descending_path, object_field_selector, resource_field_selector,
};
use crate::FieldErrors;

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

pub(super) fn probe(
    errs: &mut FieldErrors,
    c: &Value,
    which: &str,
    grace: Option<i64>,
    path: &str,
) {
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

pub(super) fn lifecycle(errs: &mut FieldErrors, c: &Value, grace: Option<i64>, path: &str) {
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

pub(super) fn security_context(errs: &mut FieldErrors, sc: Option<&Value>, path: &str) {
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

pub(super) fn container_common(errs: &mut FieldErrors, c: &Value, vols: &Volumes, path: &str) {
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

pub(super) fn host_ports(
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
