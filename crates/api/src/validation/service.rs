//! Service validation: ports, types, selectors, session affinity, cluster IPs and IP
//! families, external IPs, traffic policies, and the cluster IPs an update may not change.

use std::collections::BTreeSet;

use serde_json::Value;

use super::field::*;
use crate::FieldErrors;

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
}
