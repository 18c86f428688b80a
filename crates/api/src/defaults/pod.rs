//! Pod defaults: the PodSpec defaults every pod template gets too (DNS and restart policy,
//! grace period, scheduler, containers, probes, volumes), the pod-only ones (requests from
//! limits, service links, host-network ports), what Kubernetes' admission adds to new pods
//! (service account, priority; the not-ready/unreachable tolerations are the API server's
//! admission, configurable there) and the status a new
//! pod starts with (phase `Pending` and its QoS class).

use serde_json::{Map, Value, json};

use super::resources::resource_lists;
use super::{child, default_nonzero, default_str, existing, items, set_default};
use crate::validation::Quantity;

/// The defaults of a PodSpec, wherever it appears.
pub fn pod_spec(spec: &mut Map<String, Value>) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    // `serviceAccount` is the deprecated alias of `serviceAccountName`: read it when the name
    // is missing and always mirror the name into it, as the v1 conversion does.
    let alias = spec
        .get("serviceAccount")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    if !alias.is_empty() {
        default_str(spec, "serviceAccountName", &alias);
    }
    if let Some(name) = spec
        .get("serviceAccountName")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        let name = name.to_string();
        spec.insert("serviceAccount".into(), Value::String(name));
    }
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for c in items(spec, key) {
            container(c);
        }
    }
    for v in items(spec, "volumes") {
        volume(v);
    }
    resource_lists(spec, &["overhead"]);
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent` (also for names that do not
/// parse, as Kubernetes does).
pub fn pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let start = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[start..].rfind(':') {
        Some(i) => (&name[..start + i], Some(&name[start + i + 1..])),
        None => (name, None),
    };
    let valid =
        !repo.is_empty() && !repo.bytes().any(|c| c.is_ascii_uppercase()) && tag != Some("");
    if !valid {
        return "IfNotPresent";
    }
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

fn container(c: &mut Map<String, Value>) {
    let policy = pull_policy(c.get("image").and_then(|v| v.as_str()).unwrap_or(""));
    default_str(c, "imagePullPolicy", policy);
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    for p in items(c, "ports") {
        default_str(p, "protocol", "TCP");
    }
    for e in items(c, "env") {
        if let Some(field_ref) = existing(e, "valueFrom").and_then(|vf| existing(vf, "fieldRef")) {
            default_str(field_ref, "apiVersion", "v1");
        }
    }
    if let Some(res) = existing(c, "resources") {
        resource_lists(res, &["limits", "requests"]);
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = existing(c, key) {
            probe(p);
        }
    }
    if let Some(lifecycle) = existing(c, "lifecycle") {
        for key in ["postStart", "preStop"] {
            if let Some(get) = existing(lifecycle, key).and_then(|h| existing(h, "httpGet")) {
                http_get(get);
            }
        }
    }
}

fn http_get(get: &mut Map<String, Value>) {
    default_str(get, "path", "/");
    default_str(get, "scheme", "HTTP");
}

fn probe(p: &mut Map<String, Value>) {
    default_nonzero(p, "timeoutSeconds", 1);
    default_nonzero(p, "periodSeconds", 10);
    default_nonzero(p, "successThreshold", 1);
    default_nonzero(p, "failureThreshold", 3);
    if let Some(get) = existing(p, "httpGet") {
        http_get(get);
    }
    if let Some(grpc) = existing(p, "grpc") {
        set_default(grpc, "service", json!(""));
    }
}

fn field_refs(items_of: &mut Map<String, Value>) {
    for item in items(items_of, "items") {
        if let Some(f) = existing(item, "fieldRef") {
            default_str(f, "apiVersion", "v1");
        }
    }
}

/// The defaults of a PersistentVolumeClaimSpec (claims, claim templates, ephemeral volumes).
pub fn claim_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "volumeMode", json!("Filesystem"));
    if let Some(res) = existing(spec, "resources") {
        resource_lists(res, &["limits", "requests"]);
    }
}

fn volume(v: &mut Map<String, Value>) {
    let has_source = v.iter().any(|(k, val)| k != "name" && !val.is_null());
    if !has_source {
        v.insert("emptyDir".into(), json!({}));
    }
    if let Some(hp) = existing(v, "hostPath") {
        set_default(hp, "type", json!(""));
    }
    for key in ["secret", "configMap"] {
        if let Some(s) = existing(v, key) {
            set_default(s, "defaultMode", json!(420));
        }
    }
    if let Some(d) = existing(v, "downwardAPI") {
        set_default(d, "defaultMode", json!(420));
        field_refs(d);
    }
    if let Some(p) = existing(v, "projected") {
        set_default(p, "defaultMode", json!(420));
        for src in items(p, "sources") {
            if let Some(d) = existing(src, "downwardAPI") {
                field_refs(d);
            }
            if let Some(t) = existing(src, "serviceAccountToken") {
                set_default(t, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(i) = existing(v, "iscsi") {
        default_str(i, "iscsiInterface", "default");
    }
    if let Some(r) = existing(v, "rbd") {
        default_str(r, "pool", "rbd");
        default_str(r, "user", "admin");
        default_str(r, "keyring", "/etc/ceph/keyring");
    }
    if let Some(a) = existing(v, "azureDisk") {
        set_default(a, "cachingMode", json!("ReadWrite"));
        set_default(a, "kind", json!("Shared"));
        set_default(a, "fsType", json!("ext4"));
        set_default(a, "readOnly", json!(false));
    }
    if let Some(s) = existing(v, "scaleIO") {
        default_str(s, "storageMode", "ThinProvisioned");
        default_str(s, "fsType", "xfs");
    }
    if let Some(spec) = existing(v, "ephemeral")
        .and_then(|e| existing(e, "volumeClaimTemplate"))
        .and_then(|t| existing(t, "spec"))
    {
        claim_spec(spec);
    }
}

/// The defaults of a pod template (`spec.template` of workloads).
pub fn template(owner_spec: &mut Map<String, Value>) {
    if let Some(spec) = existing(owner_spec, "template").and_then(|t| child(t, "spec")) {
        pod_spec(spec);
    }
}

/// Requests default to limits for the resources with a limit but no request.
fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(res) = existing(c, "resources") else {
        return;
    };
    let limits: Vec<(String, Value)> = match res.get("limits").and_then(|l| l.as_object()) {
        Some(l) if !l.is_empty() => l.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => return,
    };
    if let Some(requests) = child(res, "requests") {
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
}

/// The priority Kubernetes' Priority admission resolves when the pod names no class (0) or a
/// built-in system class. Other classes are resolved by the server, which can read them.
fn default_priority(spec: &mut Map<String, Value>) {
    if !matches!(spec.get("priority"), None | Some(Value::Null)) {
        return;
    }
    let value = match spec
        .get("priorityClassName")
        .and_then(|v| v.as_str())
        .unwrap_or("")
    {
        "" => 0,
        "system-node-critical" => 2_000_001_000,
        "system-cluster-critical" => 2_000_000_000,
        _ => return,
    };
    spec.insert("priority".into(), json!(value));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
}

fn sum_into(total: &mut Map<String, Value>, list: Option<&Value>) -> bool {
    let mut found_cpu_and_memory = (false, false);
    for (name, v) in list.and_then(|l| l.as_object()).into_iter().flatten() {
        if name != "cpu" && name != "memory" {
            continue;
        }
        let Ok(q) = Quantity::from_json(v) else {
            continue;
        };
        if q.is_zero() || q.is_negative() {
            continue;
        }
        if name == "cpu" {
            found_cpu_and_memory.0 = true;
        } else {
            found_cpu_and_memory.1 = true;
        }
        let sum = match total.get(name).and_then(|t| Quantity::from_json(t).ok()) {
            Some(t) => t.checked_add(&q).unwrap_or(t),
            None => q,
        };
        total.insert(name.clone(), Value::String(sum.canonical()));
    }
    found_cpu_and_memory.0 && found_cpu_and_memory.1
}

/// Kubernetes' QoS class of a pod (cpu and memory of containers and init containers).
pub fn qos_class(spec: &Value) -> &'static str {
    let mut requests = Map::new();
    let mut limits = Map::new();
    let mut guaranteed = true;
    for key in ["containers", "initContainers"] {
        for c in spec
            .get(key)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            sum_into(&mut requests, c.pointer("/resources/requests"));
            if !sum_into(&mut limits, c.pointer("/resources/limits")) {
                guaranteed = false;
            }
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        for (name, req) in &requests {
            let same = limits.get(name).is_some_and(|l| {
                matches!((Quantity::from_json(l), Quantity::from_json(req)), (Ok(a), Ok(b)) if a == b)
            });
            if !same {
                guaranteed = false;
                break;
            }
        }
    }
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// All defaults of a Pod.
pub fn pod(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    let Some(spec) = child(o, "spec") else { return };
    pod_spec(spec);
    for key in ["containers", "initContainers"] {
        for c in items(spec, key) {
            requests_from_limits(c);
        }
    }
    set_default(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork").and_then(|v| v.as_bool()) == Some(true) {
        for key in ["containers", "initContainers"] {
            for c in items(spec, key) {
                for p in items(c, "ports") {
                    if let Some(cp) = p.get("containerPort").cloned() {
                        default_nonzero_value(p, "hostPort", cp);
                    }
                }
            }
        }
    }
    default_str(spec, "serviceAccountName", "default");
    let sa = spec
        .get("serviceAccountName")
        .cloned()
        .unwrap_or(Value::Null);
    spec.insert("serviceAccount".into(), sa);
    default_priority(spec);

    let qos = qos_class(&o["spec"]);
    if let Some(status) = child(o, "status") {
        if matches!(status.get("phase"), None | Some(Value::Null)) {
            status.insert("phase".into(), json!("Pending"));
        }
        set_default(status, "qosClass", json!(qos));
    }
}

fn default_nonzero_value(obj: &mut Map<String, Value>, key: &str, value: Value) {
    let unset = match obj.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        _ => false,
    };
    if unset {
        obj.insert(key.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("my-image:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("localhost:5000/web", "Always"),
            ("registry.local:5000/team/web:2", "IfNotPresent"),
            (
                "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "IfNotPresent",
            ),
            (
                "nginx:latest@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "Always",
            ),
            ("MyImage", "IfNotPresent"),
            ("", "IfNotPresent"),
        ] {
            assert_eq!(pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn kubectl_run_pod_gets_kubernetes_defaults() {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"run": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "readinessProbe": {"httpGet": {"port": 80}}}],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}});
        pod(&mut p);
        assert_eq!(
            p["spec"],
            json!({
                "containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName", "apiVersion": "v1"}}}],
                    "readinessProbe": {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                    "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                "securityContext": {}, "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
                "enableServiceLinks": true, "serviceAccountName": "default", "serviceAccount": "default",
                "priority": 0, "preemptionPolicy": "PreemptLowerPriority"
            })
        );
        assert_eq!(
            p["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
    }

    #[test]
    fn client_values_are_kept_and_defaulting_is_idempotent() {
        let mut p = json!({"spec": {"containers": [{"name": "a", "image": "x", "imagePullPolicy": "Never",
                "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 3}}],
            "restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 0, "securityContext": {"runAsUser": 1000},
            "enableServiceLinks": false, "serviceAccountName": "builder", "priority": 7,
            "tolerations": [{"operator": "Exists"}]},
            "status": {"phase": "Running", "qosClass": "Burstable"}});
        pod(&mut p);
        let once = p.clone();
        pod(&mut p);
        assert_eq!(p, once);
        let s = &p["spec"];
        assert_eq!(s["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(s["containers"][0]["livenessProbe"]["periodSeconds"], 3);
        assert_eq!(s["restartPolicy"], "OnFailure");
        assert_eq!(s["terminationGracePeriodSeconds"], 0);
        assert_eq!(s["securityContext"], json!({"runAsUser": 1000}));
        assert_eq!(s["enableServiceLinks"], false);
        assert_eq!(
            (s["serviceAccountName"].clone(), s["serviceAccount"].clone()),
            (json!("builder"), json!("builder"))
        );
        assert_eq!(s["priority"], 7);
        assert!(s.get("preemptionPolicy").is_none());
        // A toleration of every taint covers both defaults.
        assert_eq!(s["tolerations"], json!([{"operator": "Exists"}]));
        assert_eq!(
            p["status"],
            json!({"phase": "Running", "qosClass": "Burstable"})
        );
    }

    #[test]
    fn resources_requests_from_limits_and_qos() {
        let mut p = json!({"spec": {"containers": [{"name": "a", "image": "x:1",
            "resources": {"limits": {"cpu": "0.5", "memory": "128Mi"}}}]}});
        pod(&mut p);
        assert_eq!(
            p["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "500m", "memory": "128Mi"}})
        );
        assert_eq!(p["status"]["qosClass"], "Guaranteed");
        let mut b = json!({"spec": {"containers": [{"name": "a", "image": "x:1",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}}}]}});
        pod(&mut b);
        assert_eq!(b["status"]["qosClass"], "Burstable");
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "0"}}}]})),
            "BestEffort"
        );
        let only_cpu = json!({"containers": [{"resources": {"limits": {"cpu": "1"}}}]});
        assert_eq!(qos_class(&only_cpu), "Burstable");
    }

    #[test]
    fn volumes_and_host_network() {
        let mut p = json!({"spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "x:1", "ports": [{"containerPort": 8080}]}],
            "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}}, {"name": "s", "secret": {"secretName": "s", "defaultMode": 256}},
                        {"name": "h", "hostPath": {"path": "/var/log"}},
                        {"name": "tok", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}, {"downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}},
                        {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1024Mi"}}}}}}]}});
        pod(&mut p);
        let v = &p["spec"]["volumes"];
        assert_eq!(v[0], json!({"name": "scratch", "emptyDir": {}}));
        assert_eq!(v[1]["configMap"]["defaultMode"], 420);
        assert_eq!(v[2]["secret"]["defaultMode"], 256);
        assert_eq!(v[3]["hostPath"], json!({"path": "/var/log", "type": ""}));
        assert_eq!(v[4]["projected"]["defaultMode"], 420);
        assert_eq!(
            v[4]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3600
        );
        assert_eq!(
            v[4]["projected"]["sources"][1]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
            "v1"
        );
        assert_eq!(
            v[5]["ephemeral"]["volumeClaimTemplate"]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            v[5]["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"],
            "1Gi"
        );
        assert_eq!(p["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
    }

    #[test]
    fn templates_get_pod_spec_defaults_only() {
        let mut spec = json!({"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "a", "image": "x",
            "resources": {"limits": {"cpu": "1"}}}]}}});
        template(spec.as_object_mut().unwrap());
        let t = &spec["template"]["spec"];
        assert_eq!(t["dnsPolicy"], "ClusterFirst");
        assert_eq!(t["containers"][0]["imagePullPolicy"], "Always");
        assert!(t.get("enableServiceLinks").is_none());
        assert!(t.get("tolerations").is_none());
        assert!(t["containers"][0]["resources"].get("requests").is_none());
    }
}
