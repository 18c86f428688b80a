//! Printers of the core kinds other than pods and storage: namespaces, nodes, services,
//! endpoints, config maps, secrets, service accounts and events.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::cells::{format_labels, str_at};
use super::{AGE, Column, NAME, Printer, age, docs, name, s, since};

pub fn for_kind(group: &str, kind: &str) -> Option<&'static dyn Printer> {
    Some(match (group, kind) {
        ("", "Namespace") => &NAMESPACE,
        ("", "Node") => &NODE,
        ("", "Service") => &SERVICE,
        ("", "Endpoints") => &ENDPOINTS,
        ("", "ConfigMap") => &CONFIG_MAP,
        ("", "Secret") => &SECRET,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("", "Event") => &EVENT,
        _ => return None,
    })
}

fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(|x| x.as_array())
        .map(|a| a.as_slice())
        .unwrap_or_default()
}

fn count_keys(v: &Value, pointer: &str) -> usize {
    v.pointer(pointer)
        .and_then(|x| x.as_object())
        .map_or(0, |m| m.len())
}

fn or(v: &str, fallback: &str) -> String {
    if v.is_empty() {
        fallback.to_string()
    } else {
        v.to_string()
    }
}

pub struct NamespacePrinter;
static NAMESPACE: NamespacePrinter = NamespacePrinter;

impl Printer for NamespacePrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Status", "string", "The status of the namespace"),
            AGE,
        ];
        COLS
    }
    fn cells(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![name(obj), json!(s(obj, "/status/phase")), age(obj, now)]
    }
}

pub struct NodePrinter;
static NODE: NodePrinter = NodePrinter;

/// Roles from `node-role.kubernetes.io/<role>` labels and the `kubernetes.io/role` label.
fn node_roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(labels) = crate::meta::labels(node) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if let Some(v) = v
                .as_str()
                .filter(|v| k == "kubernetes.io/role" && !v.is_empty())
            {
                roles.insert(v.to_string());
            }
        }
    }
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

fn node_address(node: &Value, kind: &str) -> String {
    arr(node, "/status/addresses")
        .iter()
        .find(|a| str_at(a, "type") == kind)
        .map(|a| str_at(a, "address").to_string())
        .unwrap_or_else(|| "<none>".into())
}

impl Printer for NodePrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Status", "string", "The status of the node"),
            Column::new("Roles", "string", "The roles of the node"),
            AGE,
            Column::new("Version", "string", docs::NODE_KUBELET_VERSION),
            Column::new("Internal-IP", "string", docs::NODE_ADDRESSES).wide(),
            Column::new("External-IP", "string", docs::NODE_ADDRESSES).wide(),
            Column::new("OS-Image", "string", docs::NODE_OS_IMAGE).wide(),
            Column::new("Kernel-Version", "string", docs::NODE_KERNEL_VERSION).wide(),
            Column::new("Container-Runtime", "string", docs::NODE_CONTAINER_RUNTIME).wide(),
        ];
        COLS
    }
    fn cells(&self, node: &Value, now: jiff::Timestamp) -> Vec<Value> {
        // The last Ready condition wins, as in Kubernetes' condition map.
        let ready = arr(node, "/status/conditions")
            .iter()
            .rev()
            .find(|c| str_at(c, "type") == "Ready");
        let mut status = vec![match ready {
            Some(c) if str_at(c, "status") == "True" => "Ready",
            Some(_) => "NotReady",
            None => "Unknown",
        }];
        if node
            .pointer("/spec/unschedulable")
            .and_then(|v| v.as_bool())
            == Some(true)
        {
            status.push("SchedulingDisabled");
        }
        vec![
            name(node),
            json!(status.join(",")),
            json!(node_roles(node)),
            age(node, now),
            json!(s(node, "/status/nodeInfo/kubeletVersion")),
            json!(node_address(node, "InternalIP")),
            json!(node_address(node, "ExternalIP")),
            json!(or(s(node, "/status/nodeInfo/osImage"), "<unknown>")),
            json!(or(s(node, "/status/nodeInfo/kernelVersion"), "<unknown>")),
            json!(or(
                s(node, "/status/nodeInfo/containerRuntimeVersion"),
                "<unknown>"
            )),
        ]
    }
}

pub struct ServicePrinter;
static SERVICE: ServicePrinter = ServicePrinter;

/// Load-balancer ingress points (IP, else hostname), sorted and de-duplicated.
pub fn load_balancer_ingress(status: &Value, pointer: &str) -> String {
    let set: BTreeSet<&str> = arr(status, pointer)
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, "ip");
            let host = str_at(i, "hostname");
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = arr(svc, "/spec/externalIPs")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    match s(svc, "/spec/type") {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_ingress(svc, "/status/loadBalancer/ingress");
            if !external.is_empty() {
                let mut all: Vec<&str> = if lb.is_empty() {
                    vec![]
                } else {
                    lb.split(',').collect()
                };
                all.extend(external);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".into()
            }
        }
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

/// `80/TCP,443:30443/TCP`.
pub fn service_ports(svc: &Value) -> String {
    let parts: Vec<String> = arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(|v| v.as_i64()).unwrap_or(0);
            let proto = str_at(p, "protocol");
            match p
                .get("nodePort")
                .and_then(|v| v.as_i64())
                .filter(|n| *n > 0)
            {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

impl Printer for ServicePrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Type", "string", docs::SVC_TYPE),
            Column::new("Cluster-IP", "string", docs::SVC_CLUSTER_IP),
            Column::new("External-IP", "string", docs::SVC_EXTERNAL_IPS),
            Column::new("Port(s)", "string", docs::SVC_PORTS),
            AGE,
            Column::new("Selector", "string", docs::SVC_SELECTOR).wide(),
        ];
        COLS
    }
    fn cells(&self, svc: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let cluster_ip = arr(svc, "/spec/clusterIPs")
            .first()
            .and_then(|v| v.as_str())
            .or_else(|| Some(s(svc, "/spec/clusterIP")))
            .filter(|v| !v.is_empty())
            .unwrap_or("<none>");
        vec![
            name(svc),
            json!(s(svc, "/spec/type")),
            json!(cluster_ip),
            json!(service_external_ip(svc)),
            json!(service_ports(svc)),
            age(svc, now),
            json!(format_labels(
                svc.pointer("/spec/selector").and_then(|v| v.as_object())
            )),
        ]
    }
}

pub struct EndpointsPrinter;
static ENDPOINTS: EndpointsPrinter = EndpointsPrinter;

/// `ip:port` pairs of every subset, at most three, then `+ N more...`; `<none>` when empty.
fn format_endpoints(ep: &Value) -> String {
    let subsets = arr(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut count = 0usize;
    let mut more = false;
    for ss in subsets {
        let addrs = arr(ss, "/addresses");
        let ports = arr(ss, "/ports");
        if ports.is_empty() {
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(a, "ip").to_string());
            }
            continue;
        }
        for p in ports {
            let port = p.get("port").and_then(|v| v.as_i64()).unwrap_or(0);
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                let ip = str_at(a, "ip");
                list.push(if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                });
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

impl Printer for EndpointsPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Endpoints", "string", docs::EP_SUBSETS),
            AGE,
        ];
        COLS
    }
    fn cells(&self, ep: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![name(ep), json!(format_endpoints(ep)), age(ep, now)]
    }
}

pub struct ConfigMapPrinter;
static CONFIG_MAP: ConfigMapPrinter = ConfigMapPrinter;

impl Printer for ConfigMapPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[NAME, Column::new("Data", "string", docs::CM_DATA), AGE];
        COLS
    }
    fn cells(&self, cm: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let n = count_keys(cm, "/data") + count_keys(cm, "/binaryData");
        vec![name(cm), json!(n), age(cm, now)]
    }
}

pub struct SecretPrinter;
static SECRET: SecretPrinter = SecretPrinter;

impl Printer for SecretPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Type", "string", docs::SECRET_TYPE),
            Column::new("Data", "string", docs::SECRET_DATA),
            AGE,
        ];
        COLS
    }
    fn cells(&self, secret: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            name(secret),
            json!(s(secret, "/type")),
            json!(count_keys(secret, "/data")),
            age(secret, now),
        ]
    }
}

pub struct ServiceAccountPrinter;
static SERVICE_ACCOUNT: ServiceAccountPrinter = ServiceAccountPrinter;

impl Printer for ServiceAccountPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Secrets", "string", docs::SA_SECRETS),
            AGE,
        ];
        COLS
    }
    fn cells(&self, sa: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![name(sa), json!(arr(sa, "/secrets").len()), age(sa, now)]
    }
}

pub struct EventPrinter;
static EVENT: EventPrinter = EventPrinter;

fn non_empty<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(|x| x.as_str())
        .filter(|x| !x.is_empty())
}

impl Printer for EventPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            Column::new("Last Seen", "string", docs::EV_LAST_TIMESTAMP),
            Column::new("Type", "string", docs::EV_TYPE),
            Column::new("Reason", "string", docs::EV_REASON),
            Column::new("Object", "string", docs::EV_INVOLVED_OBJECT),
            Column::new("Subobject", "string", docs::REF_FIELD_PATH).wide(),
            Column::new("Source", "string", docs::EV_SOURCE).wide(),
            Column::new("Message", "string", docs::EV_MESSAGE),
            Column::new("First Seen", "string", docs::EV_FIRST_TIMESTAMP).wide(),
            Column::new("Count", "string", docs::EV_COUNT).wide(),
            NAME.wide(),
        ];
        COLS
    }
    fn cells(&self, ev: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let first = match non_empty(ev, "/firstTimestamp") {
            Some(t) => since(Some(t), now),
            None => since(non_empty(ev, "/eventTime"), now),
        };
        let mut last = match non_empty(ev, "/lastTimestamp") {
            Some(t) => since(Some(t), now),
            None => first.clone(),
        };
        let mut count = ev.get("count").and_then(|v| v.as_i64()).unwrap_or(0);
        if let Some(series) = ev.get("series").filter(|v| v.is_object()) {
            last = since(series.get("lastObservedTime").and_then(|v| v.as_str()), now);
            count = series.get("count").and_then(|v| v.as_i64()).unwrap_or(0);
        } else if count == 0 {
            count = 1;
        }
        let kind = s(ev, "/involvedObject/kind").to_lowercase();
        let target = match non_empty(ev, "/involvedObject/name") {
            Some(n) => format!("{kind}/{n}"),
            None => kind,
        };
        let component = non_empty(ev, "/source/component")
            .or(non_empty(ev, "/reportingComponent"))
            .unwrap_or("");
        let instance = non_empty(ev, "/source/host")
            .or(non_empty(ev, "/reportingInstance"))
            .unwrap_or("");
        let source = if instance.is_empty() {
            component.to_string()
        } else {
            format!("{component}, {instance}")
        };
        vec![
            json!(last),
            json!(s(ev, "/type")),
            json!(s(ev, "/reason")),
            json!(target),
            json!(s(ev, "/involvedObject/fieldPath")),
            json!(source),
            json!(s(ev, "/message").trim()),
            json!(first),
            json!(count),
            name(ev),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2025-03-01T12:00:00Z".parse().unwrap()
    }

    fn meta(n: &str) -> Value {
        json!({"name": n, "creationTimestamp": "2025-03-01T10:00:00Z"})
    }

    #[test]
    fn nodes() {
        let node = json!({"metadata": {"name": "n1", "creationTimestamp": "2025-03-01T10:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "", "kubernetes.io/role": "etcd"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.5"}, {"type": "Hostname", "address": "n1"}],
                "nodeInfo": {"kubeletVersion": "v1.32.4-berth", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0", "containerRuntimeVersion": "berth://0.1.0"}}});
        assert_eq!(
            NODE.cells(&node, now()),
            vec![
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,etcd,master"),
                json!("120m"),
                json!("v1.32.4-berth"),
                json!("192.168.1.5"),
                json!("<none>"),
                json!("Debian GNU/Linux 12"),
                json!("6.1.0"),
                json!("berth://0.1.0")
            ]
        );
        let bare = json!({"metadata": meta("n2"), "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let cells = NODE.cells(&bare, now());
        assert_eq!(cells[1], json!("NotReady"));
        assert_eq!(cells[2], json!("<none>"));
        assert_eq!(cells[7], json!("<unknown>"));
        assert_eq!(
            NODE.cells(&json!({"metadata": meta("n3")}), now())[1],
            json!("Unknown")
        );
    }

    #[test]
    fn services() {
        let np = json!({"metadata": meta("web"), "spec": {"type": "NodePort", "clusterIP": "10.43.0.12", "clusterIPs": ["10.43.0.12"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}], "selector": {"app": "web"}}});
        assert_eq!(
            SERVICE.cells(&np, now()),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.43.0.12"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("120m"),
                json!("app=web")
            ]
        );
        let lb = json!({"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.43.0.9"], "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]}});
        assert_eq!(SERVICE.cells(&lb, now())[3], json!("<pending>"));
        let mut lb2 = lb.clone();
        lb2["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.20"}, {"hostname": "lb.example"}]}});
        assert_eq!(
            SERVICE.cells(&lb2, now())[3],
            json!("192.168.1.20,lb.example")
        );
        lb2["spec"]["externalIPs"] = json!(["1.2.3.4"]);
        assert_eq!(
            SERVICE.cells(&lb2, now())[3],
            json!("192.168.1.20,lb.example,1.2.3.4")
        );
        let headless = json!({"metadata": meta("h"), "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}});
        let c = SERVICE.cells(&headless, now());
        assert_eq!(
            (c[2].clone(), c[4].clone(), c[6].clone()),
            (json!("None"), json!("<none>"), json!("<none>"))
        );
        let ext = json!({"metadata": meta("e"), "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        let c = SERVICE.cells(&ext, now());
        assert_eq!(
            (c[2].clone(), c[3].clone()),
            (json!("<none>"), json!("db.example.com"))
        );
    }

    #[test]
    fn endpoints_config_and_secrets() {
        let ep = json!({"metadata": meta("web"), "subsets": [
            {"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}], "ports": [{"port": 8080}, {"port": 9090}]}]});
        assert_eq!(
            ENDPOINTS.cells(&ep, now())[1],
            json!("10.42.0.5:8080,10.42.0.6:8080,10.42.0.5:9090 + 1 more...")
        );
        assert_eq!(
            ENDPOINTS.cells(&json!({"metadata": meta("x")}), now())[1],
            json!("<none>")
        );
        let headless =
            json!({"metadata": meta("h"), "subsets": [{"addresses": [{"ip": "10.42.0.7"}]}]});
        assert_eq!(ENDPOINTS.cells(&headless, now())[1], json!("10.42.0.7"));
        let cm = json!({"metadata": meta("c"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(
            CONFIG_MAP.cells(&cm, now()),
            vec![json!("c"), json!(3), json!("120m")]
        );
        let sec = json!({"metadata": meta("s"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            SECRET.cells(&sec, now()),
            vec![
                json!("s"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("120m")
            ]
        );
        let sa = json!({"metadata": meta("default")});
        assert_eq!(
            SERVICE_ACCOUNT.cells(&sa, now()),
            vec![json!("default"), json!(0), json!("120m")]
        );
        let ns = json!({"metadata": meta("default"), "status": {"phase": "Active"}});
        assert_eq!(
            NAMESPACE.cells(&ns, now()),
            vec![json!("default"), json!("Active"), json!("120m")]
        );
    }

    #[test]
    fn events() {
        let ev = json!({"metadata": meta("web.17f"), "type": "Normal", "reason": "Scheduled",
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
            "source": {"component": "default-scheduler"}, "message": "Successfully assigned default/web-1 to n1\n",
            "firstTimestamp": "2025-03-01T11:50:00Z", "lastTimestamp": "2025-03-01T11:58:00Z", "count": 4});
        assert_eq!(
            EVENT.cells(&ev, now()),
            vec![
                json!("2m"),
                json!("Normal"),
                json!("Scheduled"),
                json!("pod/web-1"),
                json!("spec.containers{web}"),
                json!("default-scheduler"),
                json!("Successfully assigned default/web-1 to n1"),
                json!("10m"),
                json!(4),
                json!("web.17f")
            ]
        );
        let new_style = json!({"metadata": meta("e2"), "type": "Warning", "reason": "BackOff",
            "involvedObject": {"kind": "Node"}, "reportingComponent": "kubelet", "reportingInstance": "n1",
            "eventTime": "2025-03-01T11:59:00.000000Z", "series": {"count": 7, "lastObservedTime": "2025-03-01T11:59:30.000000Z"}});
        let c = EVENT.cells(&new_style, now());
        assert_eq!(c[0], json!("30s"));
        assert_eq!(c[3], json!("node"));
        assert_eq!(c[5], json!("kubelet, n1"));
        assert_eq!(c[7], json!("60s"));
        assert_eq!(c[8], json!(7));
        let single = json!({"metadata": meta("e3"), "involvedObject": {"kind": "Pod", "name": "p"}, "eventTime": "2025-03-01T11:59:00Z"});
        let c = EVENT.cells(&single, now());
        assert_eq!((c[0].clone(), c[8].clone()), (json!("60s"), json!(1)));
    }
}
