//! Validation of config maps, secrets, namespaces, nodes, endpoints and events.

use std::collections::BTreeSet;

use serde_json::Value;

use super::containers::config_key_errors;
use super::field::*;
use super::resources::quantities;
use crate::{FieldError, FieldErrors};

const MAX_DATA_SIZE: usize = 1024 * 1024;

/// Data keys and total size of a config map or secret; `decode` gives each value's size.
fn data_keys(errs: &mut FieldErrors, obj: &Value, field: &str, size: &mut usize, decoded: bool) {
    let Some(data) = obj.get(field).filter(|v| !v.is_null()) else {
        return;
    };
    let Some(data) = data.as_object() else {
        errs.push(invalid_raw(field, render(data), "must be a map of strings"));
        return;
    };
    for (k, v) in data {
        for msg in config_key_errors(k) {
            errs.push(invalid(key(field, k), k, msg));
        }
        match v.as_str() {
            None => errs.push(invalid_raw(key(field, k), render(v), "must be a string")),
            Some(s) if decoded => match base64_len(s) {
                Ok(n) => *size += n,
                Err(at) => errs.push(invalid(
                    key(field, k),
                    "<secret contents redacted>",
                    format!("illegal base64 data at input byte {at}"),
                )),
            },
            Some(s) => *size += s.len(),
        }
    }
}

/// The decoded length of standard base64 text, or the offset of the first bad byte.
fn base64_len(s: &str) -> Result<usize, usize> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return Err(b.len() - b.len() % 4);
    }
    let pad = b.iter().rev().take_while(|c| **c == b'=').count();
    if pad > 2 {
        return Err(b.len() - pad);
    }
    for (i, c) in b[..b.len() - pad].iter().enumerate() {
        if !(c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/') {
            return Err(i);
        }
    }
    Ok(b.len() / 4 * 3 - pad)
}

fn immutable_data(errs: &mut FieldErrors, new: &Value, old: &Value, fields: &[&str]) {
    if old.get("immutable").and_then(|v| v.as_bool()) != Some(true) {
        return;
    }
    if new.get("immutable").and_then(|v| v.as_bool()) != Some(true) {
        errs.push(forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    for f in fields {
        let a = new
            .get(*f)
            .filter(|v| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()));
        let b = old
            .get(*f)
            .filter(|v| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()));
        if a != b {
            errs.push(forbidden(*f, "field is immutable when `immutable` is set"));
        }
    }
}

pub fn config_map(errs: &mut FieldErrors, cm: &Value, old: Option<&Value>) {
    if let Some(old) = old {
        immutable_data(errs, cm, old, &["data", "binaryData"]);
    }
    let mut size = 0;
    data_keys(errs, cm, "data", &mut size, false);
    if let (Some(d), Some(b)) = (
        cm.get("data").and_then(|v| v.as_object()),
        cm.get("binaryData").and_then(|v| v.as_object()),
    ) {
        for k in d.keys().filter(|k| b.contains_key(*k)) {
            errs.push(invalid(
                key("data", k),
                k,
                "duplicate of key present in binaryData",
            ));
        }
    }
    data_keys(errs, cm, "binaryData", &mut size, true);
    if size > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("", MAX_DATA_SIZE));
    }
}

pub fn secret(errs: &mut FieldErrors, s: &Value, old: Option<&Value>) {
    if let Some(old) = old {
        if str_of(s, "type") != str_of(old, "type") {
            errs.push(invalid("type", str_of(s, "type"), IMMUTABLE));
        }
        immutable_data(errs, s, old, &["data"]);
    }
    let mut size = 0;
    data_keys(errs, s, "data", &mut size, true);
    if size > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    let data = s.get("data").and_then(|v| v.as_object());
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let non_empty = |k: &str| {
        data.and_then(|d| d.get(k))
            .and_then(|v| v.as_str())
            .is_some_and(|v| !v.is_empty())
    };
    match str_of(s, "type") {
        "kubernetes.io/service-account-token" => {
            let sa = s
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(|v| v.as_str());
            if sa.is_none_or(|v| v.is_empty()) {
                errs.push(required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => {
            errs.push(required("data[.dockercfg]", ""))
        }
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            errs.push(required("data[.dockerconfigjson]", ""))
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(required("data[username]", ""));
            errs.push(required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth" if !non_empty("ssh-privatekey") => {
            errs.push(required("data[ssh-privatekey]", ""))
        }
        "kubernetes.io/tls" => {
            if !has("tls.crt") {
                errs.push(required("data[tls.crt]", ""));
            }
            if !has("tls.key") {
                errs.push(required("data[tls.key]", ""));
            }
        }
        _ => {}
    }
}

fn finalizer_name(errs: &mut FieldErrors, f: &str, path: &str) {
    qualified_name(errs, f, path);
    if !f.contains('/') && !["kubernetes", "orphan", "foregroundDeletion"].contains(&f) {
        errs.push(invalid(
            path,
            f,
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
}

pub fn namespace(errs: &mut FieldErrors, ns: &Value) {
    for f in ns
        .pointer("/spec/finalizers")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        finalizer_name(errs, f.as_str().unwrap_or_default(), "spec.finalizers");
    }
}

fn node_taints(errs: &mut FieldErrors, taints: &[Value], path: &str) {
    let mut unique = BTreeSet::new();
    for (i, t) in taints.iter().enumerate() {
        let p = index(path, i);
        let k = str_of(t, "key");
        qualified_name(errs, k, &child(&p, "key"));
        let msgs = label_value_errors(str_of(t, "value"));
        if !msgs.is_empty() {
            errs.push(invalid(
                child(&p, "value"),
                str_of(t, "value"),
                msgs.join(";"),
            ));
        }
        let effect = str_of(t, "effect");
        match effect {
            "" => errs.push(required(child(&p, "effect"), "")),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => errs.push(not_supported(
                child(&p, "effect"),
                other,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )),
        }
        if !unique.insert((effect, k)) {
            let mut e = duplicate_raw(&p, render(t));
            e.detail = "taints must be unique by key and effect pair".into();
            errs.push(e);
        }
    }
}

pub fn node(errs: &mut FieldErrors, n: &Value, old: Option<&Value>) {
    let spec = n.get("spec").unwrap_or(&Value::Null);
    node_taints(errs, arr(spec, "taints"), "metadata.taints");
    for which in ["capacity", "allocatable"] {
        let path = child("status", which);
        for (name, q) in quantities(errs, n.pointer(&format!("/status/{which}")), &path) {
            if q.is_negative() {
                errs.push(invalid(key(&path, name), &q.canonical(), IS_NEGATIVE));
            }
        }
    }
    let cidrs = arr(spec, "podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        valid_cidr(
            errs,
            c.as_str().unwrap_or_default(),
            index("spec.podCIDRs", i),
        );
    }
    if cidrs.len() > 2 {
        errs.push(invalid_raw(
            "spec.podCIDRs",
            go_strings(spec.get("podCIDRs")),
            "may specify no more than one CIDR for each IP family",
        ));
    }
    let Some(old) = old else { return };
    let ospec = old.get("spec").unwrap_or(&Value::Null);
    if !empty(ospec, "podCIDRs") && spec.get("podCIDRs") != ospec.get("podCIDRs") {
        errs.push(forbidden(
            "spec.podCIDRs",
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    if !empty(ospec, "providerID") && str_of(spec, "providerID") != str_of(ospec, "providerID") {
        errs.push(forbidden(
            "spec.providerID",
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
}

/// Endpoints. Unlike Kubernetes, loopback and link-local addresses are accepted: a single-node
/// berth (and every test cluster) advertises its API server on loopback.
pub fn endpoints(errs: &mut FieldErrors, ep: &Value) {
    for (i, ss) in arr(ep, "subsets").iter().enumerate() {
        let p = index("subsets", i);
        if empty(ss, "addresses") && empty(ss, "notReadyAddresses") {
            errs.push(required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for which in ["addresses", "notReadyAddresses"] {
            for (j, a) in arr(ss, which).iter().enumerate() {
                let ap = index(&child(&p, which), j);
                let ip = str_of(a, "ip");
                valid_ip(errs, ip, child(&ap, "ip"));
                let host = str_of(a, "hostname");
                if !host.is_empty() {
                    dns1123_label(errs, host, child(&ap, "hostname"));
                }
                if let Some(nn) = a.get("nodeName").and_then(|v| v.as_str()) {
                    dns1123_subdomain(errs, nn, child(&ap, "nodeName"));
                }
            }
        }
        let ports = arr(ss, "ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = index(&child(&p, "ports"), j);
            let name = str_of(port, "name");
            if ports.len() > 1 && name.is_empty() {
                errs.push(required(child(&pp, "name"), ""));
            } else if !name.is_empty() {
                dns1123_label(errs, name, child(&pp, "name"));
            }
            let n = int_of(port, "port").unwrap_or(0);
            if !(1..=65535).contains(&n) {
                errs.push(invalid_num(child(&pp, "port"), n, PORT_RANGE));
            }
            let proto = str_of(port, "protocol");
            if proto.is_empty() {
                errs.push(required(child(&pp, "protocol"), ""));
            } else if !["SCTP", "TCP", "UDP"].contains(&proto) {
                errs.push(not_supported(
                    child(&pp, "protocol"),
                    proto,
                    &["SCTP", "TCP", "UDP"],
                ));
            }
        }
    }
}

/// core/v1 Events (the legacy rules: namespaces agree; new-style events name their reporter).
pub fn event(errs: &mut FieldErrors, ev: &Value) {
    let ns = crate::meta::namespace(ev).unwrap_or("");
    let involved_ns = ev
        .pointer("/involvedObject/namespace")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if empty(ev, "eventTime") {
        let ok = if involved_ns.is_empty() {
            ns.is_empty() || ns == "default"
        } else {
            ns == involved_ns
        };
        if !ok {
            errs.push(invalid(
                "involvedObject.namespace",
                involved_ns,
                "does not match event.namespace",
            ));
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(invalid(
                "involvedObject.namespace",
                involved_ns,
                "does not match event.namespace",
            ));
        }
        let rc = str_of(ev, "reportingComponent");
        if rc.is_empty() {
            errs.push(required("reportingComponent", ""));
        }
        qualified_name(errs, rc, "reportingComponent");
        for (k, limit) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
            let v = str_of(ev, k);
            if v.is_empty() {
                errs.push(required(k, ""));
            }
            if v.len() > limit {
                errs.push(invalid(
                    k,
                    "",
                    format!("can have at most {limit} characters"),
                ));
            }
        }
        if str_of(ev, "message").len() > 1024 {
            errs.push(invalid("message", "", "can have at most 1024 characters"));
        }
    }
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
    fn config_maps_and_secrets() {
        let cm = json!({"data": {"app.conf": "x", "bad key": "y", "..": "z"}, "binaryData": {"app.conf": "AA=="}});
        let e = errs_of(|e| config_map(e, &cm, None));
        assert!(e.iter().any(|x| x.starts_with("data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters")), "{e:#?}");
        assert!(e.contains(&"data[..]: Invalid value: \"..\": must not be '..'".to_string()));
        assert!(e.contains(&"data[app.conf]: Invalid value: \"app.conf\": duplicate of key present in binaryData".to_string()));
        let big = json!({"data": {"a": "x".repeat(MAX_DATA_SIZE + 1)}});
        assert_eq!(
            errs_of(|e| config_map(e, &big, None)),
            vec![": Too long: may not be more than 1048576 bytes".to_string()]
        );
        let old = json!({"immutable": true, "data": {"a": "1"}});
        let changed = json!({"immutable": true, "data": {"a": "2"}});
        assert_eq!(
            errs_of(|e| config_map(e, &changed, Some(&old))),
            vec!["data: Forbidden: field is immutable when `immutable` is set".to_string()]
        );
        let unset = json!({"data": {"a": "1"}});
        assert_eq!(
            errs_of(|e| config_map(e, &unset, Some(&old))),
            vec!["immutable: Forbidden: field is immutable when `immutable` is set".to_string()]
        );

        let s = defaulted("Secret", json!({"stringData": {"password": "hunter2"}}));
        assert_eq!(errs_of(|e| secret(e, &s, None)), Vec::<String>::new());
        let bad = json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "@@@@", "n": 5}});
        let e = errs_of(|e| secret(e, &bad, None));
        assert!(e.contains(&"data[tls.crt]: Invalid value: \"<secret contents redacted>\": illegal base64 data at input byte 0".to_string()), "{e:#?}");
        assert!(e.contains(&"data[n]: Invalid value: 5: must be a string".to_string()));
        assert!(e.contains(&"data[tls.key]: Required value".to_string()));
        let retyped = json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        let e = errs_of(|e| secret(e, &retyped, Some(&s)));
        assert_eq!(
            e,
            vec!["type: Invalid value: \"kubernetes.io/tls\": field is immutable".to_string()]
        );
        assert_eq!(base64_len("aGVsbG8="), Ok(5));
    }

    #[test]
    fn namespaces_nodes_endpoints_events() {
        let ns = defaulted(
            "Namespace",
            json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["custom"]}}),
        );
        assert_eq!(
            errs_of(|e| namespace(e, &ns)),
            vec!["spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified".to_string()]
        );
        let node_obj = json!({"spec": {"podCIDRs": ["10.42.0.0/24"], "taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"}, {"key": "b"}]}});
        let e = errs_of(|e| node(e, &node_obj, None));
        assert!(
            e.iter()
                .any(|x| x.starts_with("metadata.taints[1]: Duplicate value")
                    && x.ends_with("taints must be unique by key and effect pair")),
            "{e:#?}"
        );
        assert!(e.contains(&"metadata.taints[2].effect: Required value".to_string()));
        let moved = json!({"spec": {"podCIDRs": ["10.42.1.0/24"]}});
        assert_eq!(
            errs_of(|e| node(e, &moved, Some(&node_obj))),
            vec!["spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid".to_string()]
        );
        let ep = json!({"subsets": [{"addresses": [{"ip": "10.42.0.300"}, {"ip": "127.0.0.1"}], "ports": [{"port": 80, "protocol": "TCP"}]}, {"ports": []}]});
        let e = errs_of(|e| endpoints(e, &ep));
        // The loopback address (berth's own API endpoint on one node) is accepted.
        assert_eq!(
            e,
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"10.42.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string(),
                "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`".to_string(),
            ]
        );
        let ev = json!({"metadata": {"namespace": "default"}, "involvedObject": {"kind": "Pod", "namespace": "other"}});
        assert_eq!(errs_of(|e| event(e, &ev)), vec!["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace".to_string()]);
    }
}
