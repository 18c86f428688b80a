//! Printers of the networking kinds: ingresses, ingress classes, network policies and
//! endpoint slices.

use serde_json::{Value, json};

use super::cells::{format_label_selector, list_with_more, str_at};
use super::core::load_balancer_ingress;
use super::{AGE, Column, NAME, Printer, age, docs, name, s};

pub fn for_kind(group: &str, kind: &str) -> Option<&'static dyn Printer> {
    Some(match (group, kind) {
        ("networking.k8s.io", "Ingress") => &INGRESS,
        ("networking.k8s.io", "IngressClass") => &INGRESS_CLASS,
        ("networking.k8s.io", "NetworkPolicy") => &NETWORK_POLICY,
        ("discovery.k8s.io", "EndpointSlice") => &ENDPOINT_SLICE,
        _ => return None,
    })
}

fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(|x| x.as_array())
        .map(|a| a.as_slice())
        .unwrap_or_default()
}

pub struct IngressPrinter;
static INGRESS: IngressPrinter = IngressPrinter;

/// Up to three rule hosts, `*` when no rule names a host.
fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = str_at(rule, "host");
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".into();
    }
    if more {
        format!("{} + {} more...", list.join(","), rules.len() - MAX)
    } else {
        list.join(",")
    }
}

impl Printer for IngressPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new(
                "Class",
                "string",
                "The name of the IngressClass resource that should be used for additional configuration",
            ),
            Column::new(
                "Hosts",
                "string",
                "Hosts that incoming requests are matched against before the ingress rule",
            ),
            Column::new(
                "Address",
                "string",
                "Address is a list containing ingress points for the load-balancer",
            ),
            Column::new("Ports", "string", "Ports of TLS configurations that open"),
            AGE,
        ];
        COLS
    }
    fn cells(&self, ing: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let class = ing
            .pointer("/spec/ingressClassName")
            .and_then(|v| v.as_str())
            .unwrap_or("<none>");
        let ports = if arr(ing, "/spec/tls").is_empty() {
            "80"
        } else {
            "80, 443"
        };
        vec![
            name(ing),
            json!(class),
            json!(format_hosts(arr(ing, "/spec/rules"))),
            json!(load_balancer_ingress(ing, "/status/loadBalancer/ingress")),
            json!(ports),
            age(ing, now),
        ]
    }
}

pub struct IngressClassPrinter;
static INGRESS_CLASS: IngressClassPrinter = IngressClassPrinter;

impl Printer for IngressClassPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new(
                "Controller",
                "string",
                "Controller that is responsible for handling this class",
            ),
            Column::new(
                "Parameters",
                "string",
                "A reference to a resource with additional parameters",
            ),
            AGE,
        ];
        COLS
    }
    fn cells(&self, ic: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let parameters = match ic.pointer("/spec/parameters").filter(|p| p.is_object()) {
            Some(p) => {
                let mut out = str_at(p, "kind").to_string();
                if let Some(g) = p.get("apiGroup").and_then(|v| v.as_str()) {
                    out = format!("{out}.{g}");
                }
                format!("{out}/{}", str_at(p, "name"))
            }
            None => "<none>".into(),
        };
        vec![
            name(ic),
            json!(s(ic, "/spec/controller")),
            json!(parameters),
            age(ic, now),
        ]
    }
}

pub struct NetworkPolicyPrinter;
static NETWORK_POLICY: NetworkPolicyPrinter = NetworkPolicyPrinter;

impl Printer for NetworkPolicyPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Pod-Selector", "string", docs::NP_POD_SELECTOR),
            AGE,
        ];
        COLS
    }
    fn cells(&self, np: &Value, now: jiff::Timestamp) -> Vec<Value> {
        // The pod selector is a struct in Kubernetes, never nil: a missing one prints as empty.
        let sel = np
            .pointer("/spec/podSelector")
            .cloned()
            .unwrap_or(json!({}));
        vec![
            name(np),
            json!(format_label_selector(Some(&sel))),
            age(np, now),
        ]
    }
}

pub struct EndpointSlicePrinter;
static ENDPOINT_SLICE: EndpointSlicePrinter = EndpointSlicePrinter;

impl Printer for EndpointSlicePrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("AddressType", "string", docs::ES_ADDRESS_TYPE),
            Column::new("Ports", "string", docs::ES_PORTS),
            Column::new("Endpoints", "string", docs::ES_ENDPOINTS),
            AGE,
        ];
        COLS
    }
    fn cells(&self, es: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let ports: Vec<String> = arr(es, "/ports")
            .iter()
            .map(|p| {
                match (
                    p.get("port").and_then(|v| v.as_i64()),
                    p.get("name").and_then(|v| v.as_str()),
                ) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(name)) => name.to_string(),
                    (None, None) => "*".into(),
                }
            })
            .collect();
        let addresses: Vec<String> = arr(es, "/endpoints")
            .iter()
            .flat_map(|e| {
                arr(e, "/addresses")
                    .iter()
                    .filter_map(|a| a.as_str().map(String::from))
            })
            .collect();
        vec![
            name(es),
            json!(s(es, "/addressType")),
            json!(list_with_more(&ports, 3)),
            json!(list_with_more(&addresses, 3)),
            age(es, now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2025-03-01T12:00:00Z".parse().unwrap()
    }

    fn m(n: &str) -> Value {
        json!({"name": n, "creationTimestamp": "2025-03-01T11:00:00Z"})
    }

    #[test]
    fn ingresses() {
        let ing = json!({"metadata": m("web"), "spec": {"ingressClassName": "berth", "tls": [{"hosts": ["a.example"]}],
            "rules": [{"host": "a.example"}, {}, {"host": "b.example"}, {"host": "c.example"}, {"host": "d.example"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.5"}]}}});
        assert_eq!(
            INGRESS.cells(&ing, now()),
            vec![
                json!("web"),
                json!("berth"),
                json!("a.example,b.example,c.example + 2 more..."),
                json!("192.168.1.5"),
                json!("80, 443"),
                json!("60m")
            ]
        );
        let bare = json!({"metadata": m("x"), "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}});
        assert_eq!(
            INGRESS.cells(&bare, now()),
            vec![
                json!("x"),
                json!("<none>"),
                json!("*"),
                json!(""),
                json!("80"),
                json!("60m")
            ]
        );
        let ic = json!({"metadata": m("berth"), "spec": {"controller": "berth.dev/ingress", "parameters": {"apiGroup": "k8s.example.com", "kind": "Params", "name": "p"}}});
        assert_eq!(
            INGRESS_CLASS.cells(&ic, now()),
            vec![
                json!("berth"),
                json!("berth.dev/ingress"),
                json!("Params.k8s.example.com/p"),
                json!("60m")
            ]
        );
    }

    #[test]
    fn policies_and_slices() {
        let np = json!({"metadata": m("deny"), "spec": {"podSelector": {}}});
        assert_eq!(NETWORK_POLICY.cells(&np, now())[1], json!("<none>"));
        let np2 =
            json!({"metadata": m("web"), "spec": {"podSelector": {"matchLabels": {"app": "web"}}}});
        assert_eq!(NETWORK_POLICY.cells(&np2, now())[1], json!("app=web"));
        let es = json!({"metadata": m("web-abc"), "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}, {"name": "x"}],
            "endpoints": [{"addresses": ["10.42.0.5"]}, {"addresses": ["10.42.0.6"]}, {"addresses": ["10.42.1.2"]}, {"addresses": ["10.42.1.3"]}]});
        assert_eq!(
            ENDPOINT_SLICE.cells(&es, now()),
            vec![
                json!("web-abc"),
                json!("IPv4"),
                json!("8080,x"),
                json!("10.42.0.5,10.42.0.6,10.42.1.2 + 1 more..."),
                json!("60m")
            ]
        );
        let empty = json!({"metadata": m("e"), "addressType": "IPv4"});
        let c = ENDPOINT_SLICE.cells(&empty, now());
        assert_eq!(
            (c[2].clone(), c[3].clone()),
            (json!("<unset>"), json!("<unset>"))
        );
    }
}
