//! Defaults of the core kinds other than pods: namespaces, nodes, services (including the IP
//! family fields Kubernetes' service allocator fills), endpoints, secrets (`stringData` is
//! folded into `data`, as Kubernetes' conversion does), persistent volumes and claims.

use serde_json::{Map, Value, json};

use super::pod::claim_spec;
use super::resources::resource_lists;
use super::{child, default_str, existing, is_empty, items, set_default};

pub fn namespace(obj: &mut Value) {
    let name = crate::meta::name(obj).map(String::from);
    let Some(o) = obj.as_object_mut() else { return };
    if let Some(name) = name
        && let Some(labels) = child(o, "metadata").and_then(|m| child(m, "labels"))
    {
        labels.insert("kubernetes.io/metadata.name".into(), Value::String(name));
    }
    // A namespace without a phase is being created: it starts Active with the `kubernetes`
    // finalizer. Later writes may remove that finalizer (namespace deletion does), so it is
    // not re-added then.
    let creating = o
        .get("status")
        .and_then(|s| s.get("phase"))
        .is_none_or(|p| p.is_null());
    if !creating {
        return;
    }
    if let Some(spec) = child(o, "spec") {
        let slot = spec.entry("finalizers").or_insert(Value::Null);
        if slot.is_null() {
            *slot = json!([]);
        }
        if let Some(list) = slot.as_array_mut()
            && !list.iter().any(|f| f == "kubernetes")
        {
            list.push(json!("kubernetes"));
        }
    }
    if let Some(status) = child(o, "status") {
        status.insert("phase".into(), json!("Active"));
    }
}

pub fn node(obj: &mut Value) {
    let Some(status) = obj.as_object_mut().and_then(|o| existing(o, "status")) else {
        return;
    };
    resource_lists(status, &["capacity", "allocatable"]);
    if is_empty(status, "allocatable")
        && let Some(capacity) = status
            .get("capacity")
            .filter(|c| c.as_object().is_some_and(|m| !m.is_empty()))
    {
        let capacity = capacity.clone();
        status.insert("allocatable".into(), capacity);
    }
}

fn is_headless_without_selector(spec: &Map<String, Value>) -> bool {
    spec.get("clusterIP").and_then(|v| v.as_str()) == Some("None") && is_empty(spec, "selector")
}

fn ip_family(ip: &str) -> &'static str {
    if ip.contains(':') { "IPv6" } else { "IPv4" }
}

/// The IP family fields Kubernetes' service IP allocator fills on a single-stack IPv4 cluster.
fn ip_families(spec: &mut Map<String, Value>) {
    if spec.get("type").and_then(|v| v.as_str()) == Some("ExternalName") {
        return;
    }
    // `clusterIP` and `clusterIPs[0]` are the same value; either may be given.
    let cluster_ip = spec
        .get("clusterIP")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    if !cluster_ip.is_empty() && is_empty(spec, "clusterIPs") {
        spec.insert("clusterIPs".into(), json!([cluster_ip]));
    } else if cluster_ip.is_empty()
        && let Some(first) = spec
            .get("clusterIPs")
            .and_then(|v| v.get(0))
            .and_then(|v| v.as_str())
    {
        let first = first.to_string();
        spec.insert("clusterIP".into(), json!(first));
    }
    let headless_selectorless = is_headless_without_selector(spec);
    if matches!(spec.get("ipFamilyPolicy"), None | Some(Value::Null)) {
        let policy = if headless_selectorless {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        spec.insert("ipFamilyPolicy".into(), json!(policy));
    }
    if is_empty(spec, "ipFamilies") {
        let families: Vec<Value> = spec
            .get("clusterIPs")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|ip| ip.as_str())
            .take_while(|ip| *ip != "None" && !ip.is_empty())
            .map(|ip| json!(ip_family(ip)))
            .collect();
        let families = if families.is_empty() {
            vec![json!("IPv4")]
        } else {
            families
        };
        spec.insert("ipFamilies".into(), Value::Array(families));
    }
    let single = spec.get("ipFamilyPolicy").and_then(|v| v.as_str()) == Some("SingleStack");
    if headless_selectorless
        && !single
        && let Some(list) = spec.get_mut("ipFamilies").and_then(|v| v.as_array_mut())
        && list.len() == 1
    {
        let other = if list[0] == "IPv6" { "IPv4" } else { "IPv6" };
        list.push(json!(other));
    }
}

pub fn service(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    let Some(spec) = child(o, "spec") else { return };
    default_str(spec, "sessionAffinity", "None");
    match spec.get("sessionAffinity").and_then(|v| v.as_str()) {
        Some("None") => {
            spec.shift_remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    default_str(spec, "type", "ClusterIP");
    for p in items(spec, "ports") {
        default_str(p, "protocol", "TCP");
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset && let Some(port) = p.get("port").cloned() {
            p.insert("targetPort".into(), port);
        }
    }
    let kind = spec
        .get("type")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let externally_accessible = kind == "LoadBalancer"
        || kind == "NodePort"
        || (kind == "ClusterIP" && !is_empty(spec, "externalIPs"));
    if externally_accessible {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    ip_families(spec);
    if kind == "LoadBalancer"
        && let Some(lb) = existing(o, "status").and_then(|s| existing(s, "loadBalancer"))
    {
        for ing in items(lb, "ingress") {
            if ing
                .get("ip")
                .and_then(|v| v.as_str())
                .is_some_and(|ip| !ip.is_empty())
            {
                set_default(ing, "ipMode", json!("VIP"));
            }
        }
    }
}

pub fn endpoints(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    for subset in items(o, "subsets") {
        for p in items(subset, "ports") {
            default_str(p, "protocol", "TCP");
        }
    }
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn secret(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    default_str(o, "type", "Opaque");
    // `stringData` is write-only: its entries replace those of `data`, base64-encoded.
    let Some(Value::Object(string_data)) = o.get("stringData").cloned() else {
        if o.get("stringData").is_some_and(|v| v.is_null()) {
            o.shift_remove("stringData");
        }
        return;
    };
    if string_data.values().any(|v| !v.is_string()) {
        return; // left for validation to report
    }
    if let Some(data) = child(o, "data") {
        for (k, v) in string_data {
            data.insert(k, json!(base64(v.as_str().unwrap_or_default().as_bytes())));
        }
    }
    o.shift_remove("stringData");
}

pub fn persistent_volume(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    if let Some(spec) = child(o, "spec") {
        default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
        set_default(spec, "volumeMode", json!("Filesystem"));
        resource_lists(spec, &["capacity"]);
        if let Some(hp) = existing(spec, "hostPath") {
            set_default(hp, "type", json!(""));
        }
    }
    if let Some(status) = child(o, "status") {
        default_str(status, "phase", "Pending");
    }
}

pub fn persistent_volume_claim(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    if let Some(spec) = child(o, "spec") {
        claim_spec(spec);
    }
    if let Some(status) = child(o, "status") {
        default_str(status, "phase", "Pending");
        resource_lists(status, &["capacity", "allocatedResources"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_start_active_with_the_kubernetes_finalizer() {
        let mut ns = json!({"metadata": {"name": "team-a"}});
        namespace(&mut ns);
        assert_eq!(
            ns,
            json!({"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        );
        // Finalized while terminating: the finalizer stays removed.
        let mut done = json!({"metadata": {"name": "x", "labels": {"kubernetes.io/metadata.name": "x"}}, "spec": {}, "status": {"phase": "Terminating"}});
        let before = done.clone();
        namespace(&mut done);
        assert_eq!(done, before);
    }

    #[test]
    fn seed_service_defaults() {
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mywebapp"},
            "spec": {"selector": {"app": "mywebapp"}, "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}]}});
        service(&mut svc);
        assert_eq!(
            svc["spec"],
            json!({"selector": {"app": "mywebapp"}, "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}],
                   "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster",
                   "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]})
        );
        let once = svc.clone();
        service(&mut svc);
        assert_eq!(svc, once);
    }

    #[test]
    fn node_port_load_balancer_headless_and_external_name() {
        let mut np = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}],
            "sessionAffinity": "ClientIP"}});
        service(&mut np);
        let s = &np["spec"];
        assert_eq!(
            s["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(s["ports"][1]["targetPort"], "dns");
        assert_eq!(s["externalTrafficPolicy"], "Cluster");
        assert_eq!(
            s["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        let mut lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}, "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.9"}]}}});
        service(&mut lb);
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(lb["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
        let mut headless = json!({"spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
        service(&mut headless);
        let s = &headless["spec"];
        assert_eq!(s["clusterIPs"], json!(["None"]));
        assert_eq!(s["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(s["ipFamilies"], json!(["IPv4", "IPv6"]));
        let mut with_selector = json!({"spec": {"clusterIP": "None", "selector": {"app": "db"}}});
        service(&mut with_selector);
        assert_eq!(with_selector["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(with_selector["spec"]["ipFamilies"], json!(["IPv4"]));
        let mut ext = json!({"spec": {"type": "ExternalName", "externalName": "db.example.com", "sessionAffinityConfig": {"clientIP": {}}}});
        service(&mut ext);
        assert_eq!(
            ext["spec"],
            json!({"type": "ExternalName", "externalName": "db.example.com", "sessionAffinity": "None"})
        );
        let mut fixed = json!({"spec": {"clusterIP": "10.43.0.20"}});
        service(&mut fixed);
        assert_eq!(fixed["spec"]["clusterIPs"], json!(["10.43.0.20"]));
    }

    #[test]
    fn secrets_fold_string_data() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        let mut s = json!({"data": {"a": "YQ==", "b": "Yg=="}, "stringData": {"b": "hello", "c": "pass word"}});
        secret(&mut s);
        assert_eq!(
            s,
            json!({"data": {"a": "YQ==", "b": "aGVsbG8=", "c": "cGFzcyB3b3Jk"}, "type": "Opaque"})
        );
        let mut tls = json!({"type": "kubernetes.io/tls"});
        secret(&mut tls);
        assert_eq!(tls, json!({"type": "kubernetes.io/tls"}));
    }

    #[test]
    fn volumes_claims_nodes_and_endpoints() {
        let mut pv = json!({"spec": {"capacity": {"storage": "10240Mi"}, "hostPath": {"path": "/data"}, "accessModes": ["ReadWriteOnce"]}});
        persistent_volume(&mut pv);
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pv["spec"]["capacity"]["storage"], "10Gi");
        assert_eq!(pv["spec"]["hostPath"]["type"], "");
        assert_eq!(pv["status"]["phase"], "Pending");
        let mut pvc = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1G"}}}});
        persistent_volume_claim(&mut pvc);
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pvc["status"]["phase"], "Pending");
        let mut node =
            json!({"status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}});
        super::node(&mut node);
        assert_eq!(
            node["status"]["allocatable"],
            json!({"cpu": "4", "memory": "8Gi", "pods": "110"})
        );
        let mut ep =
            json!({"subsets": [{"addresses": [{"ip": "10.42.0.5"}], "ports": [{"port": 80}]}]});
        endpoints(&mut ep);
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
    }
}
