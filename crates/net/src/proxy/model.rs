//! From Services and EndpointSlices to what the node must program: one [`ServicePortModel`]
//! per (service, port), with its addresses and its ready endpoints. Pure functions, so the
//! rules' inputs are unit-tested without a kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::error::NetError;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    pub fn parse(s: Option<&str>) -> Option<Proto> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }

    pub fn nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// A ready endpoint of a service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub node: Option<String>,
}

/// One port of one Service, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortModel {
    pub namespace: String,
    pub name: String,
    /// The port's name (`""` when unnamed).
    pub port_name: String,
    pub protocol: Proto,
    pub port: u16,
    pub cluster_ips: Vec<Ipv4Addr>,
    /// `spec.externalIPs` and `status.loadBalancer.ingress[].ip`.
    pub external_ips: Vec<Ipv4Addr>,
    pub node_port: Option<u16>,
    /// Ready endpoints, sorted, without duplicates.
    pub endpoints: Vec<Endpoint>,
    /// `sessionAffinity: ClientIP` timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// Endpoints are local listeners of the node (cluster DNS): no hairpin masquerade.
    pub node_local: bool,
}

impl ServicePortModel {
    /// `namespace/name/proto/port`: unique per node, stable across restarts.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace,
            self.name,
            self.protocol.nft(),
            if self.port_name.is_empty() {
                self.port.to_string()
            } else {
                self.port_name.clone()
            }
        )
    }

    pub fn local_endpoints<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints
            .iter()
            .filter(move |e| e.node.as_deref() == Some(node))
    }
}

/// What the model needs besides the objects.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// The node the rules are for (`externalTrafficPolicy: Local`).
    pub node_name: String,
    /// Cluster DNS: Service address and the node-local listener that answers for it.
    pub cluster_dns: Option<(Ipv4Addr, SocketAddrV4)>,
}

fn object_name(svc: &Service) -> String {
    format!(
        "service {}/{}",
        svc.metadata.namespace.as_deref().unwrap_or(""),
        svc.metadata.name.as_deref().unwrap_or("")
    )
}

/// Resolves every service port. Objects that cannot be used are skipped and reported (the
/// others still get their rules).
pub fn service_ports<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    opts: &ModelOptions,
) -> (Vec<ServicePortModel>, Vec<NetError>) {
    // (namespace, service name) -> slices
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        if s.address_type != "IPv4" {
            continue;
        }
        let Some(svc) = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        by_service.entry((ns, svc.clone())).or_default().push(s);
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for svc in services {
        if svc.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(spec) = &svc.spec else { continue };
        let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
        if ty == "ExternalName" {
            continue;
        }
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let mut cluster_ips: Vec<Ipv4Addr> = Vec::new();
        let ips = spec
            .cluster_ips
            .clone()
            .unwrap_or_else(|| spec.cluster_ip.clone().into_iter().collect());
        for ip in ips {
            if ip == "None" || ip.is_empty() {
                continue;
            }
            match ip.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(v4)) => cluster_ips.push(v4),
                Ok(std::net::IpAddr::V6(_)) => {}
                Err(_) => errors.push(NetError::invalid(
                    object_name(svc),
                    "spec.clusterIPs",
                    format!("{ip:?} is not an IP address"),
                )),
            }
        }
        if cluster_ips.is_empty() {
            // Headless (answered by DNS only) or not allocated yet.
            continue;
        }
        if let Some((dns_ip, _)) = opts.cluster_dns
            && cluster_ips.contains(&dns_ip)
        {
            // The cluster DNS address is answered by the node itself (below).
            continue;
        }
        let mut external_ips: Vec<Ipv4Addr> = Vec::new();
        for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
            match ip.parse::<Ipv4Addr>() {
                Ok(v4) => external_ips.push(v4),
                Err(_) => errors.push(NetError::invalid(
                    object_name(svc),
                    format!("spec.externalIPs[{i}]"),
                    format!("{ip:?} is not an IPv4 address"),
                )),
            }
        }
        if ty == "LoadBalancer"
            && let Some(ingress) = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
        {
            for ing in ingress {
                if let Some(ip) = ing.ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) {
                    external_ips.push(ip);
                }
            }
        }
        external_ips.sort();
        external_ips.dedup();
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(10800)
        });
        let external_local = spec.external_traffic_policy.as_deref() == Some("Local")
            && (ty == "NodePort" || ty == "LoadBalancer");
        let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
        let svc_slices = by_service
            .get(&(ns.clone(), name.clone()))
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        for (i, p) in spec.ports.iter().flatten().enumerate() {
            let Some(protocol) = Proto::parse(p.protocol.as_deref()) else {
                errors.push(NetError::invalid(
                    object_name(svc),
                    format!("spec.ports[{i}].protocol"),
                    format!("unsupported protocol {:?}", p.protocol),
                ));
                continue;
            };
            let Ok(port) = u16::try_from(p.port) else {
                errors.push(NetError::invalid(
                    object_name(svc),
                    format!("spec.ports[{i}].port"),
                    format!("{} is not a port number", p.port),
                ));
                continue;
            };
            let node_port = if ty == "NodePort" || ty == "LoadBalancer" {
                p.node_port
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n > 0)
            } else {
                None
            };
            let port_name = p.name.clone().unwrap_or_default();
            let mut endpoints = BTreeSet::new();
            for slice in svc_slices {
                let Some(target) = slice.ports.iter().flatten().find(|sp| {
                    sp.name.clone().unwrap_or_default() == port_name
                        && Proto::parse(sp.protocol.as_deref()) == Some(protocol)
                }) else {
                    continue;
                };
                let Some(tport) = target
                    .port
                    .and_then(|x| u16::try_from(x).ok())
                    .filter(|x| *x > 0)
                else {
                    continue;
                };
                for ep in &slice.endpoints {
                    let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                    if !ready {
                        continue;
                    }
                    for a in &ep.addresses {
                        if let Ok(ip) = a.parse::<Ipv4Addr>() {
                            endpoints.insert(Endpoint {
                                ip,
                                port: tport,
                                node: ep.node_name.clone(),
                            });
                        }
                    }
                }
            }
            // One endpoint per ip:port even if two slices list it.
            let mut seen = BTreeSet::new();
            let endpoints: Vec<Endpoint> = endpoints
                .into_iter()
                .filter(|e| seen.insert((e.ip, e.port)))
                .collect();
            out.push(ServicePortModel {
                namespace: ns.clone(),
                name: name.clone(),
                port_name,
                protocol,
                port,
                cluster_ips: cluster_ips.clone(),
                external_ips: external_ips.clone(),
                node_port,
                endpoints,
                affinity_timeout,
                external_local,
                internal_local,
                node_local: false,
            });
        }
    }
    if let Some((vip, local)) = opts.cluster_dns {
        for protocol in [Proto::Udp, Proto::Tcp] {
            out.push(ServicePortModel {
                namespace: "kube-system".into(),
                name: "cluster-dns".into(),
                port_name: String::new(),
                protocol,
                port: 53,
                cluster_ips: vec![vip],
                external_ips: vec![],
                node_port: None,
                endpoints: vec![Endpoint {
                    ip: *local.ip(),
                    port: local.port(),
                    node: Some(opts.node_name.clone()),
                }],
                affinity_timeout: None,
                external_local: false,
                internal_local: false,
                node_local: true,
            });
        }
    }
    out.sort_by_key(|p| p.key());
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    fn opts() -> ModelOptions {
        ModelOptions {
            node_name: "n1".into(),
            cluster_dns: None,
        }
    }

    #[test]
    fn ports_resolve_named_targets_per_slice_and_keep_only_ready_endpoints() {
        let s = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"],
                "ports": [{"name": "http", "port": 80, "nodePort": 30080, "targetPort": "web"},
                          {"name": "dns", "port": 53, "protocol": "UDP"}],
                "sessionAffinity": "ClientIP", "externalTrafficPolicy": "Local",
                "externalIPs": ["192.0.2.10"]}}));
        let a = slice(json!({"metadata": {"name": "web-a", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.1.2"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.42.2.2"], "conditions": {"ready": false}, "nodeName": "n2"},
                {"addresses": ["10.42.2.3"], "nodeName": "n2"}]}));
        // Pods whose named port maps to another number come in their own slice.
        let b = slice(json!({"metadata": {"name": "web-b", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.42.3.2"], "conditions": {"ready": true}, "nodeName": "n3"}]}));
        let other_ns = slice(json!({"metadata": {"name": "x", "namespace": "other",
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 1}],
            "endpoints": [{"addresses": ["10.42.9.9"]}]}));
        let (ports, errors) = service_ports([&s], [&a, &b, &other_ns], &opts());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(ports.len(), 2);
        let dns = &ports[1];
        assert_eq!(dns.key(), "default/web/udp/dns");
        assert!(dns.endpoints.is_empty(), "no slice lists the dns port");
        let http = &ports[0];
        assert_eq!(http.key(), "default/web/tcp/http");
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(
            http.external_ips,
            vec!["192.0.2.10".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(http.affinity_timeout, Some(10800));
        assert!(http.external_local);
        let eps: Vec<String> = http
            .endpoints
            .iter()
            .map(|e| format!("{}:{}", e.ip, e.port))
            .collect();
        assert_eq!(
            eps,
            vec!["10.42.1.2:8080", "10.42.2.3:8080", "10.42.3.2:9090"]
        );
        assert_eq!(http.local_endpoints("n1").count(), 1);
    }

    #[test]
    fn headless_external_name_and_dns_addresses_get_no_service_rules() {
        let headless = svc(json!({"metadata": {"name": "h", "namespace": "d"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}));
        let ext = svc(json!({"metadata": {"name": "e", "namespace": "d"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}}));
        let kube_dns = svc(
            json!({"metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {"clusterIP": "10.43.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}),
        );
        let mut o = opts();
        o.cluster_dns = Some((
            "10.43.0.10".parse().unwrap(),
            "10.42.0.1:53".parse().unwrap(),
        ));
        let (ports, errors) = service_ports([&headless, &ext, &kube_dns], [], &o);
        assert!(errors.is_empty());
        let keys: Vec<String> = ports.iter().map(|p| p.key()).collect();
        assert_eq!(
            keys,
            vec![
                "kube-system/cluster-dns/tcp/53",
                "kube-system/cluster-dns/udp/53"
            ]
        );
        assert!(
            ports
                .iter()
                .all(|p| p.node_local && p.endpoints[0].port == 53)
        );
    }

    #[test]
    fn load_balancer_ingress_ips_are_external_addresses_and_bad_fields_are_named() {
        let lb = svc(json!({"metadata": {"name": "lb", "namespace": "d"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.7",
                "ports": [{"port": 80, "nodePort": 31000}, {"port": 81, "protocol": "ICMP"}],
                "externalIPs": ["not-an-ip"]},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.31.0.2"}, {"ip": "172.31.0.1"}]}}}));
        let (ports, errors) = service_ports([&lb], [], &opts());
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].external_ips.len(), 2);
        assert_eq!(ports[0].node_port, Some(31000));
        let msgs: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("service d/lb: spec.externalIPs[0]")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("spec.ports[1].protocol")),
            "{msgs:?}"
        );
    }
}
