//! Validation of the core kinds other than pods: services, config maps, secrets, namespaces,
//! nodes, endpoints, events, persistent volumes and claims.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Quantity;
use super::field::*;
use super::pod::{config_key_errors, quantities, quantity_value};
use crate::{FieldError, FieldErrors};

const MAX_DATA_SIZE: usize = 1024 * 1024;

fn is_headless(spec: &Value) -> bool {
    str_of(spec, "clusterIP") == "None"
}

fn externally_accessible(spec: &Value) -> bool {
    match str_of(spec, "type") {
        "LoadBalancer" | "NodePort" => true,
        "ClusterIP" => !empty(spec, "externalIPs"),
        _ => false,
    }
}

fn service_port(
    errs: &mut FieldErrors,
    p: &Value,
    require_name: bool,
    names: &mut BTreeSet<String>,
    path: &str,
) {
    let name = str_of(p, "name");
    if require_name && name.is_empty() {
        errs.push(required(child(path, "name"), ""));
    } else if !name.is_empty() {
        dns1123_label(errs, name, child(path, "name"));
        if !names.insert(name.to_string()) {
            errs.push(duplicate(child(path, "name"), name));
        }
    }
    let port = int_of(p, "port").unwrap_or(0);
    if !(1..=65535).contains(&port) {
        errs.push(invalid_num(child(path, "port"), port, PORT_RANGE));
    }
    let proto = str_of(p, "protocol");
    if proto.is_empty() {
        errs.push(required(child(path, "protocol"), ""));
    } else if !["SCTP", "TCP", "UDP"].contains(&proto) {
        errs.push(not_supported(
            child(path, "protocol"),
            proto,
            &["SCTP", "TCP", "UDP"],
        ));
    }
    port_num_or_name(errs, p.get("targetPort"), &child(path, "targetPort"));
    if let Some(ap) = p.get("appProtocol").and_then(|v| v.as_str()) {
        qualified_name(errs, ap, &child(path, "appProtocol"));
    }
}

/// Kubernetes' `ValidateServiceClusterIPsRelatedFields`.
fn cluster_ips(errs: &mut FieldErrors, spec: &Value) {
    if str_of(spec, "type") == "ExternalName" {
        return;
    }
    let ips: Vec<&str> = arr(spec, "clusterIPs")
        .iter()
        .map(|v| v.as_str().unwrap_or_default())
        .collect();
    let rendered = || go_strings(spec.get("clusterIPs"));
    let cluster_ip = str_of(spec, "clusterIP");
    if !cluster_ip.is_empty() {
        if ips.is_empty() {
            errs.push(required("spec.clusterIPs", ""));
        } else if ips[0] != cluster_ip {
            errs.push(invalid_raw(
                "spec.clusterIPs",
                rendered(),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(invalid_raw(
            "spec.clusterIPs",
            rendered(),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, f) in arr(spec, "ipFamilies").iter().enumerate() {
        let f = f.as_str().unwrap_or_default();
        if !["IPv4", "IPv6"].contains(&f) {
            errs.push(not_supported(
                index("spec.ipFamilies", i),
                f,
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(f) {
            errs.push(duplicate(index("spec.ipFamilies", i), f));
        }
    }
    if let Some(p) = spec.get("ipFamilyPolicy").filter(|v| !v.is_null()) {
        let p = p.as_str().unwrap_or_default();
        let allowed = ["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !allowed.contains(&p) {
            errs.push(not_supported("spec.ipFamilyPolicy", p, &allowed));
        }
    }
    let mut bad = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && *ip == "None" {
            if ips.len() > 1 {
                bad = true;
                errs.push(invalid_raw(
                    "spec.clusterIPs",
                    rendered(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if !is_ip(ip) {
            bad = true;
            valid_ip(errs, ip, index("spec.clusterIPs", i));
        }
    }
    if ips.len() > 2 {
        errs.push(invalid_raw(
            "spec.clusterIPs",
            rendered(),
            "may only hold up to 2 values",
        ));
    }
    if bad {
        return;
    }
    if ips.len() == 2 && ips[0].contains(':') == ips[1].contains(':') {
        errs.push(invalid_raw(
            "spec.clusterIPs",
            rendered(),
            "may specify no more than one IP for each IP family",
        ));
    }
    if !is_headless(spec) {
        let families = arr(spec, "ipFamilies");
        for (i, ip) in ips.iter().enumerate().take(families.len()) {
            let want_v6 = families[i] == "IPv6";
            if want_v6 != ip.contains(':') {
                let fam = if want_v6 { "IPv6" } else { "IPv4" };
                errs.push(invalid(
                    index("spec.clusterIPs", i),
                    ip,
                    format!("expected an {fam} value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
}

pub fn service(errs: &mut FieldErrors, svc: &Value, old: Option<&Value>) {
    let spec = svc.get("spec").unwrap_or(&Value::Null);
    let ports = arr(spec, "ports");
    let kind = str_of(spec, "type");
    if ports.is_empty() && !is_headless(spec) && kind != "ExternalName" {
        errs.push(required("spec.ports", ""));
    }
    match kind {
        "LoadBalancer" | "NodePort" => {
            for (i, p) in ports.iter().enumerate() {
                if kind == "LoadBalancer" && int_of(p, "port") == Some(10250) {
                    errs.push(invalid_num(
                        index("spec.ports", i),
                        10250,
                        "may not expose port 10250 externally since it is used by kubelet",
                    ));
                }
            }
            if is_headless(spec) {
                errs.push(invalid(
                    "spec.clusterIPs[0]",
                    "None",
                    format!("may not be set to 'None' for {kind} services"),
                ));
            }
        }
        "ExternalName" => {
            if !empty(spec, "clusterIPs") {
                errs.push(forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            if !empty(spec, "ipFamilies") {
                errs.push(forbidden(
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                ));
            }
            if !absent(spec, "ipFamilyPolicy") {
                errs.push(forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
            let cname = str_of(spec, "externalName");
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(required("spec.externalName", ""));
            } else {
                dns1123_subdomain(errs, cname, "spec.externalName");
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        service_port(
            errs,
            p,
            ports.len() > 1,
            &mut names,
            &index("spec.ports", i),
        );
    }
    if !absent(spec, "selector") {
        labels(errs, spec.get("selector"), "spec.selector");
    }
    match str_of(spec, "sessionAffinity") {
        "" => errs.push(required("spec.sessionAffinity", "")),
        "ClientIP" => match spec
            .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
            .and_then(|v| v.as_i64())
        {
            None => errs.push(required(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                "when session affinity type is ClientIP",
            )),
            Some(t) if t <= 0 || t > 86400 => errs.push(invalid_num(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                t,
                "must be greater than 0 and less than 86400",
            )),
            _ => {}
        },
        "None" => {
            if !absent(spec, "sessionAffinityConfig") {
                errs.push(forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => errs.push(not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }
    cluster_ips(errs, spec);
    for (i, ip) in arr(spec, "externalIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or_default();
        let p = index("spec.externalIPs", i);
        if !is_ip(ip) {
            valid_ip(errs, ip, p);
        } else {
            non_special_ip(errs, ip, &p);
        }
    }
    match kind {
        "" => errs.push(required("spec.type", "")),
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort" => {}
        other => errs.push(not_supported(
            "spec.type",
            other,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    if kind == "ClusterIP" {
        for (i, p) in ports.iter().enumerate() {
            if int_of(p, "nodePort").unwrap_or(0) != 0 {
                errs.push(forbidden(
                    child(&index("spec.ports", i), "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    let mut port_keys = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let proto = str_of(p, "protocol");
        let np = int_of(p, "nodePort").unwrap_or(0);
        if np != 0 && !node_ports.insert((proto, np)) {
            errs.push(duplicate_raw(
                child(&index("spec.ports", i), "nodePort"),
                np.to_string(),
            ));
        }
        let port = int_of(p, "port").unwrap_or(0);
        if !port_keys.insert((proto, port)) {
            errs.push(duplicate_raw(
                index("spec.ports", i),
                format!("core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}", quote(proto)),
            ));
        }
    }
    let ranges = arr(spec, "loadBalancerSourceRanges");
    if !ranges.is_empty() {
        if kind != "LoadBalancer" {
            errs.push(forbidden(
                "spec.LoadBalancerSourceRanges",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            valid_cidr(
                errs,
                r.as_str().unwrap_or_default().trim(),
                index("spec.LoadBalancerSourceRanges", i),
            );
        }
    }
    if !absent(spec, "allocateLoadBalancerNodePorts") && kind != "LoadBalancer" {
        errs.push(forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if kind == "LoadBalancer" && absent(spec, "allocateLoadBalancerNodePorts") {
        errs.push(required("allocateLoadBalancerNodePorts", ""));
    }
    let etp = str_of(spec, "externalTrafficPolicy");
    if !externally_accessible(spec) {
        if !etp.is_empty() {
            errs.push(invalid(
                "spec.externalTrafficPolicy",
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(required("spec.externalTrafficPolicy", ""));
    } else if !["Cluster", "Local"].contains(&etp) {
        errs.push(not_supported(
            "spec.externalTrafficPolicy",
            etp,
            &["Cluster", "Local"],
        ));
    }
    let needs_health_check = kind == "LoadBalancer" && etp == "Local";
    if let Some(hc) = int_of(spec, "healthCheckNodePort").filter(|h| *h != 0) {
        if !needs_health_check {
            errs.push(invalid_num(
                "spec.healthCheckNodePort",
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        } else if !(1..=65535).contains(&hc) {
            errs.push(invalid_num("spec.healthCheckNodePort", hc, PORT_RANGE));
        }
    }
    match spec.get("internalTrafficPolicy").filter(|v| !v.is_null()) {
        None if matches!(kind, "NodePort" | "LoadBalancer" | "ClusterIP") => {
            errs.push(required("spec.internalTrafficPolicy", ""))
        }
        Some(p) if !["Cluster", "Local"].contains(&p.as_str().unwrap_or_default()) => {
            errs.push(not_supported(
                "spec.internalTrafficPolicy",
                p.as_str().unwrap_or_default(),
                &["Cluster", "Local"],
            ))
        }
        _ => {}
    }
    if let Some(td) = spec.get("trafficDistribution").and_then(|v| v.as_str())
        && td != "PreferClose"
    {
        errs.push(not_supported(
            "spec.trafficDistribution",
            td,
            &["PreferClose"],
        ));
    }
    if let Some(old) = old {
        service_update(errs, spec, old.get("spec").unwrap_or(&Value::Null));
    }
}

/// The cluster IPs of a service may not change once set (the server carries them over when
/// an update leaves them out).
fn service_update(errs: &mut FieldErrors, new: &Value, old: &Value) {
    if str_of(new, "type") == "ExternalName" || str_of(old, "type") == "ExternalName" {
        return;
    }
    if is_headless(new) && is_headless(old) {
        return;
    }
    let new_ips: Vec<&str> = arr(new, "clusterIPs")
        .iter()
        .map(|v| v.as_str().unwrap_or_default())
        .collect();
    let old_ips: Vec<&str> = arr(old, "clusterIPs")
        .iter()
        .map(|v| v.as_str().unwrap_or_default())
        .collect();
    if new_ips.is_empty() {
        return;
    }
    let rendered = go_strings(new.get("clusterIPs"));
    if new_ips.len() == old_ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if *ip != new_ips[i] {
                errs.push(invalid_raw(
                    index("spec.clusterIPs", i),
                    rendered.clone(),
                    "may not change once set",
                ));
            }
        }
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        errs.push(invalid_raw(
            "spec.clusterIPs[0]",
            rendered.clone(),
            "may not change once set",
        ));
    } else if old_ips.len() > new_ips.len() && str_of(new, "ipFamilyPolicy") != "SingleStack" {
        errs.push(invalid_raw(
            "spec.clusterIPs[0]",
            rendered,
            "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP",
        ));
    }
}

/// `ValidateNonSpecialIP`: no unspecified, loopback or link-local addresses.
pub fn non_special_ip(errs: &mut FieldErrors, ip: &str, path: &str) {
    let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
        errs.push(invalid(path, ip, "must be a valid IP address"));
        return;
    };
    if addr.is_unspecified() {
        errs.push(invalid(path, ip, format!("may not be unspecified ({ip})")));
    }
    if addr.is_loopback() {
        errs.push(invalid(
            path,
            ip,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let link_local = match addr {
        std::net::IpAddr::V4(a) => a.is_link_local(),
        std::net::IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local {
        errs.push(invalid(
            path,
            ip,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    let link_local_multicast = match addr {
        std::net::IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
        std::net::IpAddr::V6(a) => (a.segments()[0] & 0xff0f) == 0xff02,
    };
    if link_local_multicast {
        errs.push(invalid(
            path,
            ip,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

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
    fn seed_service_is_valid_and_broken_ones_are_not() {
        let svc = defaulted(
            "Service",
            json!({"metadata": {"name": "mywebapp"},
            "spec": {"selector": {"app": "mywebapp"}, "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}]}}),
        );
        assert_eq!(errs_of(|e| service(e, &svc, None)), Vec::<String>::new());
        let bad = defaulted(
            "Service",
            json!({"spec": {"type": "Balancer", "ports": [{"port": 0, "protocol": "ICMP"}, {"port": 0, "targetPort": "Http_Port"}],
            "selector": {"app": "a b"}}}),
        );
        let e = errs_of(|e| service(e, &bad, None));
        for w in [
            "spec.ports[0].name: Required value",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.ports[1].targetPort: Invalid value: \"Http_Port\"",
            "spec.selector: Invalid value: \"a b\"",
            "spec.type: Unsupported value: \"Balancer\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
        ] {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
        let no_ports = defaulted("Service", json!({"spec": {"selector": {"app": "x"}}}));
        assert_eq!(
            errs_of(|e| service(e, &no_ports, None)),
            vec!["spec.ports: Required value".to_string()]
        );
        let headless = defaulted("Service", json!({"spec": {"clusterIP": "None"}}));
        assert_eq!(
            errs_of(|e| service(e, &headless, None)),
            Vec::<String>::new()
        );
        let ext = defaulted(
            "Service",
            json!({"spec": {"type": "ExternalName", "externalName": "db.example.com."}}),
        );
        assert_eq!(errs_of(|e| service(e, &ext, None)), Vec::<String>::new());
        let np = defaulted(
            "Service",
            json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}]}}),
        );
        assert_eq!(
            errs_of(|e| service(e, &np, None)),
            vec![
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
                    .to_string()
            ]
        );
    }

    #[test]
    fn cluster_ip_is_immutable() {
        let old = defaulted(
            "Service",
            json!({"spec": {"clusterIP": "10.43.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}}),
        );
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.43.0.11");
        new["spec"]["clusterIPs"] = json!(["10.43.0.11"]);
        assert_eq!(
            errs_of(|e| service(e, &new, Some(&old))),
            vec!["spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.11\"}: may not change once set".to_string()]
        );
        // Leaving the IP out keeps it (the server carries it over).
        let mut omitted = old.clone();
        omitted["spec"]
            .as_object_mut()
            .unwrap()
            .shift_remove("clusterIP");
        omitted["spec"]
            .as_object_mut()
            .unwrap()
            .shift_remove("clusterIPs");
        assert_eq!(
            errs_of(|e| service(e, &omitted, Some(&old))),
            Vec::<String>::new()
        );
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
        assert!(e.contains(&"subsets[0].addresses[0].ip: Invalid value: \"10.42.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string()), "{e:#?}");
        assert!(
            e.contains(
                &"subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`"
                    .to_string()
            )
        );
        let ev = json!({"metadata": {"namespace": "default"}, "involvedObject": {"kind": "Pod", "namespace": "other"}});
        assert_eq!(errs_of(|e| event(e, &ev)), vec!["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace".to_string()]);
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
