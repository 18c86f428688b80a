//! Validation of ingresses, ingress classes, network policies and endpoint slices.

use std::collections::BTreeSet;

use serde_json::Value;

use super::field::*;
use crate::FieldErrors;

/// `IsWildcardDNS1123Subdomain`: `*.` followed by a DNS subdomain.
fn wildcard_host(errs: &mut FieldErrors, host: &str, path: &str) {
    let ok = host
        .strip_prefix("*.")
        .is_some_and(|rest| crate::names::validate_dns1123_subdomain(rest).is_ok());
    if !ok {
        errs.push(invalid(
            path,
            host,
            "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ));
    }
}

fn backend(errs: &mut FieldErrors, b: &Value, path: &str) {
    let resource = b.get("resource").filter(|v| !v.is_null());
    let service = b.get("service").filter(|v| !v.is_null());
    match (resource, service) {
        (Some(_), Some(_)) => errs.push(invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => {
            let rp = child(path, "resource");
            if empty(r, "kind") {
                errs.push(required(child(&rp, "kind"), ""));
            }
            if empty(r, "name") {
                errs.push(required(child(&rp, "name"), ""));
            }
        }
        (None, Some(s)) => {
            let name = str_of(s, "name");
            if name.is_empty() {
                errs.push(required(child(path, "service.name"), ""));
            } else if let Err(msg) = crate::names::validate_dns1035_label(name) {
                errs.push(invalid(child(path, "service.name"), name, msg));
            }
            let port = s.get("port").unwrap_or(&Value::Null);
            let pname = str_of(port, "name");
            let pnum = int_of(port, "number").unwrap_or(0);
            if !pname.is_empty() && pnum != 0 {
                errs.push(invalid(path, "", "cannot set both port name & port number"));
            } else if !pname.is_empty() {
                for msg in port_name_errors(pname) {
                    errs.push(invalid(child(path, "service.port.name"), pname, msg));
                }
            } else if pnum != 0 {
                if !(1..=65535).contains(&pnum) {
                    errs.push(invalid_num(
                        child(path, "service.port.number"),
                        pnum,
                        PORT_RANGE,
                    ));
                }
            } else {
                errs.push(required(path, "port name or number is required"));
            }
        }
        (None, None) => errs.push(invalid(path, "", "resource or service backend is required")),
    }
}

fn http_path(errs: &mut FieldErrors, p: &Value, path: &str) {
    let pt = p
        .get("pathType")
        .filter(|v| !v.is_null())
        .and_then(|v| v.as_str());
    let value = str_of(p, "path");
    match pt {
        None => {
            errs.push(required(
                child(path, "pathType"),
                "pathType must be specified",
            ));
            return;
        }
        Some("Exact" | "Prefix") => {
            if !value.starts_with('/') {
                errs.push(invalid(
                    child(path, "path"),
                    value,
                    "must be an absolute path",
                ));
            }
            if !value.is_empty() {
                for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                    if value.contains(seq) {
                        errs.push(invalid(
                            child(path, "path"),
                            value,
                            format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suffix in ["/..", "/."] {
                    if value.ends_with(suffix) {
                        errs.push(invalid(
                            child(path, "path"),
                            value,
                            format!("cannot end with '{suffix}'"),
                        ));
                    }
                }
            }
        }
        Some("ImplementationSpecific") => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.push(invalid(
                    child(path, "path"),
                    value,
                    "must be an absolute path",
                ));
            }
        }
        Some(other) => errs.push(not_supported(
            child(path, "pathType"),
            other,
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
    backend(
        errs,
        p.get("backend").unwrap_or(&Value::Null),
        &child(path, "backend"),
    );
}

pub fn ingress(errs: &mut FieldErrors, ing: &Value) {
    let spec = ing.get("spec").unwrap_or(&Value::Null);
    let rules = arr(spec, "rules");
    if rules.is_empty() && absent(spec, "defaultBackend") {
        errs.push(invalid_raw(
            "spec",
            "[]networking.IngressRule(nil)".into(),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = spec.get("defaultBackend").filter(|v| !v.is_null()) {
        backend(errs, b, "spec.defaultBackend");
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = index("spec.rules", i);
        let host = str_of(rule, "host");
        if !host.is_empty() {
            if is_ip(host) {
                errs.push(invalid(
                    child(&rp, "host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            if host.contains('*') {
                wildcard_host(errs, host, &child(&rp, "host"));
            } else {
                dns1123_subdomain(errs, host, child(&rp, "host"));
            }
        }
        if let Some(http) = rule.get("http").filter(|v| !v.is_null()) {
            let hp = child(&rp, "http");
            let paths = arr(http, "paths");
            if paths.is_empty() {
                errs.push(required(child(&hp, "paths"), ""));
            }
            for (j, p) in paths.iter().enumerate() {
                http_path(errs, p, &index(&child(&hp, "paths"), j));
            }
        }
    }
    for (i, tls) in arr(spec, "tls").iter().enumerate() {
        let tp = index("spec.tls", i);
        for (j, h) in arr(tls, "hosts").iter().enumerate() {
            let h = h.as_str().unwrap_or_default();
            let hp = index(&child(&tp, "hosts"), j);
            if h.contains('*') {
                wildcard_host(errs, h, &hp);
            } else {
                dns1123_subdomain(errs, h, hp);
            }
        }
        if let Some(s) = tls
            .get("secretName")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
        {
            dns1123_subdomain(errs, s, child(&tp, "secretName"));
        }
    }
    if let Some(c) = spec.get("ingressClassName").and_then(|v| v.as_str()) {
        dns1123_subdomain(errs, c, "spec.ingressClassName");
    }
}

pub fn ingress_class(errs: &mut FieldErrors, ic: &Value, old: Option<&Value>) {
    let spec = ic.get("spec").unwrap_or(&Value::Null);
    let controller = str_of(spec, "controller");
    if controller.len() > 250 {
        errs.push(crate::FieldError::too_long("spec.controller", 250));
    }
    match controller.split_once('/') {
        None => errs.push(invalid(
            "spec.controller",
            controller,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )),
        Some((domain, p)) => {
            dns1123_subdomain(errs, domain, "spec.controller");
            let ok = !p.is_empty()
                && p.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&c));
            if !ok {
                errs.push(invalid(
                    "spec.controller",
                    p,
                    "Invalid path: must consist of alphanumeric characters and the special characters /-._~%!$&'()*+,;=:",
                ));
            }
        }
    }
    if let Some(params) = spec.get("parameters").filter(|v| !v.is_null()) {
        let pp = "spec.parameters";
        if empty(params, "kind") {
            errs.push(required(child(pp, "kind"), "kind is required"));
        }
        if empty(params, "name") {
            errs.push(required(child(pp, "name"), "name is required"));
        }
        let ns = params.get("namespace").and_then(|v| v.as_str());
        match str_of(params, "scope") {
            "Cluster" => {
                if ns.is_some() {
                    errs.push(forbidden(
                        child(pp, "namespace"),
                        "`parameters.scope` is set to 'Cluster'",
                    ));
                }
            }
            "Namespace" => match ns {
                None => errs.push(required(
                    child(pp, "namespace"),
                    "`parameters.scope` is set to 'Namespace'",
                )),
                Some(n) => dns1123_label(errs, n, child(pp, "namespace")),
            },
            "" => errs.push(required(child(pp, "scope"), "")),
            other => errs.push(not_supported(
                child(pp, "scope"),
                other,
                &["Cluster", "Namespace"],
            )),
        }
    }
    if let Some(old) = old {
        let old_controller = old
            .pointer("/spec/controller")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if controller != old_controller {
            errs.push(invalid("spec.controller", controller, IMMUTABLE));
        }
    }
}

fn network_policy_port(errs: &mut FieldErrors, port: &Value, path: &str) {
    if let Some(proto) = port.get("protocol").and_then(|v| v.as_str())
        && !["TCP", "UDP", "SCTP"].contains(&proto)
    {
        errs.push(not_supported(
            child(path, "protocol"),
            proto,
            &["TCP", "UDP", "SCTP"],
        ));
    }
    let end = int_of(port, "endPort");
    match port.get("port").filter(|v| !v.is_null()) {
        Some(Value::Number(n)) => {
            let p = n.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&p) {
                errs.push(invalid_num(child(path, "port"), p, PORT_RANGE));
            }
            if let Some(e) = end {
                if e < p {
                    errs.push(invalid_num(
                        child(path, "endPort"),
                        p,
                        "must be greater than or equal to `port`",
                    ));
                }
                if !(1..=65535).contains(&e) {
                    errs.push(invalid_num(child(path, "endPort"), e, PORT_RANGE));
                }
            }
        }
        Some(Value::String(s)) => {
            if let Some(e) = end {
                errs.push(invalid_num(
                    child(path, "endPort"),
                    e,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for msg in port_name_errors(s) {
                errs.push(invalid(child(path, "port"), s, msg));
            }
        }
        Some(other) => errs.push(invalid_raw(
            child(path, "port"),
            render(other),
            "must be an integer or a port name",
        )),
        None => {
            if let Some(e) = end {
                errs.push(invalid_num(
                    child(path, "endPort"),
                    e,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

fn ip_block(errs: &mut FieldErrors, b: &Value, path: &str) {
    let cidr = str_of(b, "cidr");
    if cidr.is_empty() {
        errs.push(required(child(path, "cidr"), ""));
        return;
    }
    valid_cidr(errs, cidr, child(path, "cidr"));
    let Some(outer) = parse_cidr(cidr) else {
        return;
    };
    for (i, e) in arr(b, "except").iter().enumerate() {
        let e = e.as_str().unwrap_or_default();
        let ep = index(&child(path, "except"), i);
        valid_cidr(errs, e, ep.clone());
        if let Some(inner) = parse_cidr(e)
            && (!cidr_contains(outer, inner.0) || outer.1 >= inner.1)
        {
            errs.push(invalid(ep, e, "must be a strict subset of `cidr`"));
        }
    }
}

fn peer(errs: &mut FieldErrors, p: &Value, path: &str) {
    let mut count = 0;
    for k in ["podSelector", "namespaceSelector"] {
        if let Some(s) = p.get(k).filter(|v| !v.is_null()) {
            count += 1;
            label_selector(errs, Some(s), &child(path, k));
        }
    }
    let block = p.get("ipBlock").filter(|v| !v.is_null());
    if let Some(b) = block {
        count += 1;
        ip_block(errs, b, &child(path, "ipBlock"));
    }
    if count == 0 {
        errs.push(required(path, "must specify a peer"));
    } else if count > 1 && block.is_some() {
        errs.push(forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
}

pub fn network_policy(errs: &mut FieldErrors, np: &Value) {
    let spec = np.get("spec").unwrap_or(&Value::Null);
    label_selector(errs, spec.get("podSelector"), "spec.podSelector");
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in arr(spec, dir).iter().enumerate() {
            let rp = index(&child("spec", dir), i);
            for (j, port) in arr(rule, "ports").iter().enumerate() {
                network_policy_port(errs, port, &index(&child(&rp, "ports"), j));
            }
            for (j, p) in arr(rule, peers).iter().enumerate() {
                peer(errs, p, &index(&child(&rp, peers), j));
            }
        }
    }
    let types = arr(spec, "policyTypes");
    if types.len() > 2 {
        errs.push(invalid_raw(
            "spec.policyTypes",
            go_strings(spec.get("policyTypes")),
            "may not specify more than two policyTypes",
        ));
        return;
    }
    for (i, t) in types.iter().enumerate() {
        let t = t.as_str().unwrap_or_default();
        if !["Ingress", "Egress"].contains(&t) {
            errs.push(not_supported(
                index("spec.policyTypes", i),
                t,
                &["Ingress", "Egress"],
            ));
        }
    }
}

/// EndpointSlices (loopback addresses are accepted, as for Endpoints).
pub fn endpoint_slice(errs: &mut FieldErrors, es: &Value, old: Option<&Value>) {
    let address_type = str_of(es, "addressType");
    match address_type {
        "" => errs.push(required("addressType", "")),
        "IPv4" | "IPv6" | "FQDN" => {}
        other => errs.push(not_supported(
            "addressType",
            other,
            &["FQDN", "IPv4", "IPv6"],
        )),
    }
    let endpoints = arr(es, "endpoints");
    if endpoints.len() > 1000 {
        errs.push(too_many("endpoints", endpoints.len(), 1000));
    }
    for (i, ep) in endpoints.iter().enumerate() {
        let p = index("endpoints", i);
        let ap = child(&p, "addresses");
        let addresses = arr(ep, "addresses");
        if addresses.is_empty() {
            errs.push(required(&ap, "must contain at least 1 address"));
        } else if addresses.len() > 100 {
            errs.push(too_many(&ap, addresses.len(), 100));
        }
        for (j, a) in addresses.iter().enumerate() {
            let a = a.as_str().unwrap_or_default();
            let path = index(&ap, j);
            match address_type {
                "IPv4" | "IPv6" => {
                    let parsed = a.parse::<std::net::IpAddr>().ok();
                    let right_family =
                        parsed.is_some_and(|ip| ip.is_ipv4() == (address_type == "IPv4"));
                    if !right_family {
                        errs.push(invalid(
                            &path,
                            a,
                            format!("must be a valid {address_type} address"),
                        ));
                    }
                }
                "FQDN" => dns1123_subdomain(errs, a, path),
                _ => {}
            }
        }
        if let Some(n) = ep.get("nodeName").and_then(|v| v.as_str()) {
            dns1123_subdomain(errs, n, child(&p, "nodeName"));
        }
        if let Some(h) = ep.get("hostname").and_then(|v| v.as_str()) {
            dns1123_label(errs, h, child(&p, "hostname"));
        }
    }
    let ports = arr(es, "ports");
    if ports.len() > 20000 {
        errs.push(too_many("ports", ports.len(), 20000));
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("ports", i);
        let name = str_of(port, "name");
        if !name.is_empty() {
            dns1123_label(errs, name, child(&p, "name"));
        }
        if !names.insert(name) {
            errs.push(duplicate(child(&p, "name"), name));
        }
        match port.get("protocol").and_then(|v| v.as_str()) {
            None => errs.push(required(child(&p, "protocol"), "")),
            Some(proto) if !["SCTP", "TCP", "UDP"].contains(&proto) => errs.push(not_supported(
                child(&p, "protocol"),
                proto,
                &["SCTP", "TCP", "UDP"],
            )),
            _ => {}
        }
        if let Some(ap) = port.get("appProtocol").and_then(|v| v.as_str()) {
            qualified_name(errs, ap, &child(&p, "appProtocol"));
        }
    }
    if let Some(old) = old
        && address_type != str_of(old, "addressType")
    {
        errs.push(invalid("addressType", address_type, IMMUTABLE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(f: impl FnOnce(&mut FieldErrors)) -> Vec<String> {
        let mut e = FieldErrors::default();
        f(&mut e);
        e.0.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn ingresses() {
        let ok = json!({"spec": {"ingressClassName": "berth", "tls": [{"hosts": ["*.example.com"], "secretName": "tls"}],
            "rules": [{"host": "web.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}});
        assert_eq!(errs(|e| ingress(e, &ok)), Vec::<String>::new());
        let bad = json!({"spec": {"rules": [{"host": "10.0.0.1", "http": {"paths": [
            {"path": "/a", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"path": "a//b", "pathType": "Exact", "backend": {"service": {"name": "Web", "port": {}}}},
            {"path": "/", "pathType": "Regex", "backend": {}}]}}]}});
        let e = errs(|e| ingress(e, &bad));
        for w in [
            "spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
            "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
            "spec.rules[0].http.paths[1].path: Invalid value: \"a//b\": must be an absolute path",
            "spec.rules[0].http.paths[1].path: Invalid value: \"a//b\": must not contain '//'",
            "spec.rules[0].http.paths[1].backend.service.name: Invalid value: \"Web\"",
            "spec.rules[0].http.paths[1].backend: Required value: port name or number is required",
            "spec.rules[0].http.paths[2].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
            "spec.rules[0].http.paths[2].backend: Invalid value: \"\": resource or service backend is required",
        ] {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
        assert_eq!(
            errs(|e| ingress(e, &json!({"spec": {}}))),
            vec!["spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified".to_string()]
        );
    }

    #[test]
    fn ingress_classes_policies_and_slices() {
        let ic = json!({"spec": {"controller": "berth.dev/ingress", "parameters": {"kind": "P", "name": "p", "scope": "Cluster"}}});
        assert_eq!(errs(|e| ingress_class(e, &ic, None)), Vec::<String>::new());
        let moved = json!({"spec": {"controller": "other.dev/x"}});
        assert_eq!(
            errs(|e| ingress_class(e, &moved, Some(&ic))),
            vec!["spec.controller: Invalid value: \"other.dev/x\": field is immutable".to_string()]
        );
        let np = json!({"spec": {"podSelector": {}, "ingress": [{"from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}, "podSelector": {}}],
            "ports": [{"port": 80, "endPort": 70, "protocol": "ICMP"}]}], "policyTypes": ["Ingress", "Sideways"]}});
        let e = errs(|e| network_policy(e, &np));
        for w in [
            "spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\"",
            "spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`",
            "spec.ingress[0].from[0]: Required value: must specify a peer",
            "spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: \"192.168.0.0/16\": must be a strict subset of `cidr`",
            "spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer",
            "spec.policyTypes[1]: Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\"",
        ] {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
        let mut es = json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.42.0.5"]}, {"addresses": ["127.0.0.1"]}], "ports": [{"name": "http", "port": 80}]});
        crate::defaults::apply("discovery.k8s.io", "EndpointSlice", &mut es);
        assert_eq!(errs(|e| endpoint_slice(e, &es, None)), Vec::<String>::new());
        let bad = json!({"addressType": "IPv5", "endpoints": [{"addresses": []}]});
        assert_eq!(
            errs(|e| endpoint_slice(e, &bad, None)),
            vec![
                "addressType: Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"".to_string(),
                "endpoints[0].addresses: Required value: must contain at least 1 address".to_string(),
            ]
        );
        let v6 = json!({"addressType": "IPv4", "endpoints": [{"addresses": ["fd00::1"]}]});
        assert_eq!(errs(|e| endpoint_slice(e, &v6, None)), vec!["endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address".to_string()]);
    }
}
