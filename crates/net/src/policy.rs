//! NetworkPolicy to nftables rules for the pods of this node.
//!
//! A pod is isolated for ingress (egress) when a policy of its namespace selects it and
//! lists `Ingress` (`Egress`) in its policy types; its allowed traffic is the union of those
//! policies' rules. Each isolated local pod gets a chain that `return`s for allowed packets
//! and drops the rest; replies of allowed connections pass by conntrack. Rules are enforced
//! in the forward hook after DNAT, so they see the real destination of Service traffic; the
//! node itself always reaches its pods (probes), as with most CNI plugins. Named ports are
//! resolved against the destination pods' container ports.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{Selector, SelectorExt};
use nftables::expr::MetaKey;

use crate::error::NetError;
use crate::nft::ChainSpec;
use crate::nft::expr::*;
use crate::proxy::model::Proto;

/// The forward-chain rules and per-pod chains of the node's policies.
#[derive(Debug, Default)]
pub struct PolicyRules {
    pub dispatch: Vec<Vec<Stmt>>,
    pub chains: Vec<ChainSpec>,
    pub errors: Vec<NetError>,
    /// Local pods isolated for ingress / egress.
    pub isolated: (usize, usize),
}

/// One rule's peers and ports.
type RuleParts = (
    Option<Vec<NetworkPolicyPeer>>,
    Option<Vec<NetworkPolicyPort>>,
);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

struct PodInfo<'a> {
    pod: &'a Pod,
    ip: Ipv4Addr,
    namespace: &'a str,
}

fn selector(sel: &LabelSelector, what: &str, errors: &mut Vec<NetError>) -> Option<Selector> {
    match Selector::try_from(sel.clone()) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.push(NetError::invalid(
                what.to_string(),
                "selector",
                e.to_string(),
            ));
            None
        }
    }
}

fn labels(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

fn policy_types(p: &NetworkPolicy) -> (bool, bool) {
    let Some(spec) = &p.spec else {
        return (false, false);
    };
    match &spec.policy_types {
        Some(types) => (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        ),
        None => (true, spec.egress.is_some()),
    }
}

/// A named or numbered port resolved on one destination pod.
fn resolve_port(port: &NetworkPolicyPort, dest: &Pod, proto: Proto) -> Option<(u16, u16)> {
    match &port.port {
        None => Some((0, 0)),
        Some(IntOrString::Int(n)) => {
            let start = u16::try_from(*n).ok()?;
            let end = port
                .end_port
                .and_then(|e| u16::try_from(e).ok())
                .unwrap_or(start);
            Some((start, end.max(start)))
        }
        Some(IntOrString::String(name)) => dest
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| {
                p.name.as_deref() == Some(name.as_str())
                    && Proto::parse(p.protocol.as_deref()) == Some(proto)
            })
            .and_then(|p| u16::try_from(p.container_port).ok())
            .map(|p| (p, p)),
    }
}

/// Builds the node's policy rules.
pub fn render(
    node_name: &str,
    pods: &[Arc<Pod>],
    namespaces: &[Arc<Namespace>],
    policies: &[Arc<NetworkPolicy>],
) -> PolicyRules {
    let mut out = PolicyRules::default();
    let ns_labels: BTreeMap<&str, BTreeMap<String, String>> = namespaces
        .iter()
        .filter_map(|n| {
            Some((
                n.metadata.name.as_deref()?,
                n.metadata.labels.clone().unwrap_or_default(),
            ))
        })
        .collect();
    let all: Vec<PodInfo> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            !p.spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false)
        })
        .filter_map(|p| {
            let ip = p
                .status
                .as_ref()?
                .pod_ip
                .as_deref()?
                .parse::<Ipv4Addr>()
                .ok()?;
            Some(PodInfo {
                pod: p,
                ip,
                namespace: p.metadata.namespace.as_deref()?,
            })
        })
        .collect();
    let local: Vec<&PodInfo> = all
        .iter()
        .filter(|p| p.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node_name))
        .collect();

    let mut ingress_dispatch: Vec<(Expr, Expr)> = Vec::new();
    let mut egress_dispatch: Vec<(Expr, Expr)> = Vec::new();
    for pod in &local {
        let pod_labels = labels(pod.pod);
        let selecting: Vec<&Arc<NetworkPolicy>> = policies
            .iter()
            .filter(|np| np.metadata.namespace.as_deref() == Some(pod.namespace))
            .filter(|np| {
                let what = format!(
                    "networkpolicy {}/{}",
                    pod.namespace,
                    np.metadata.name.as_deref().unwrap_or("")
                );
                np.spec
                    .as_ref()
                    .and_then(|s| {
                        selector(
                            &s.pod_selector.clone().unwrap_or_default(),
                            &what,
                            &mut Vec::new(),
                        )
                    })
                    .is_some_and(|sel| sel.matches(&pod_labels))
            })
            .collect();
        for dir in [Direction::Ingress, Direction::Egress] {
            let applying: Vec<&&Arc<NetworkPolicy>> = selecting
                .iter()
                .filter(|np| {
                    let (i, e) = policy_types(np);
                    if dir == Direction::Ingress { i } else { e }
                })
                .collect();
            if applying.is_empty() {
                continue;
            }
            let chain_name = format!(
                "pol-{}-{}",
                if dir == Direction::Ingress {
                    "in"
                } else {
                    "out"
                },
                pod.ip
            );
            let mut chain = ChainSpec::regular(chain_name.clone());
            for np in applying {
                let what = format!(
                    "networkpolicy {}/{}",
                    pod.namespace,
                    np.metadata.name.as_deref().unwrap_or("")
                );
                let spec = np.spec.as_ref().expect("selected policies have a spec");
                let rules: Vec<RuleParts> = if dir == Direction::Ingress {
                    spec.ingress
                        .iter()
                        .flatten()
                        .map(|r| (r.from.clone(), r.ports.clone()))
                        .collect()
                } else {
                    spec.egress
                        .iter()
                        .flatten()
                        .map(|r| (r.to.clone(), r.ports.clone()))
                        .collect()
                };
                for (peers, ports) in rules {
                    rule_statements(
                        &mut chain,
                        dir,
                        pod,
                        peers.as_deref(),
                        ports.as_deref(),
                        &all,
                        &ns_labels,
                        &what,
                        &mut out.errors,
                    );
                }
            }
            chain.rule(vec![drop()]);
            out.chains.push(chain);
            match dir {
                Direction::Ingress => {
                    ingress_dispatch.push((ip(pod.ip), verdict_jump(&chain_name)));
                    out.isolated.0 += 1;
                }
                Direction::Egress => {
                    egress_dispatch.push((ip(pod.ip), verdict_jump(&chain_name)));
                    out.isolated.1 += 1;
                }
            }
        }
    }
    if !ingress_dispatch.is_empty() || !egress_dispatch.is_empty() {
        out.dispatch.push(vec![
            is_in(ct("state"), set(vec![s("established"), s("related")])),
            accept(),
        ]);
    }
    if !egress_dispatch.is_empty() {
        out.dispatch
            .push(vec![vmap(field("ip", "saddr"), egress_dispatch)]);
    }
    if !ingress_dispatch.is_empty() {
        out.dispatch
            .push(vec![vmap(field("ip", "daddr"), ingress_dispatch)]);
    }
    out
}

/// One peer's match: the addresses it stands for.
enum PeerMatch {
    /// Pods (IPs) selected by selectors.
    Pods(Vec<Ipv4Addr>),
    /// A CIDR minus exceptions.
    Block(Ipv4Net, Vec<Ipv4Net>),
}

#[allow(clippy::too_many_arguments)]
fn rule_statements(
    chain: &mut ChainSpec,
    dir: Direction,
    pod: &PodInfo,
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    all: &[PodInfo],
    ns_labels: &BTreeMap<&str, BTreeMap<String, String>>,
    what: &str,
    errors: &mut Vec<NetError>,
) {
    // The other end's address field.
    let peer_field = if dir == Direction::Ingress {
        "saddr"
    } else {
        "daddr"
    };
    // Peers: None or empty = everyone.
    let peer_matches: Option<Vec<PeerMatch>> = match peers {
        None => None,
        Some([]) => None,
        Some(list) => Some(
            list.iter()
                .filter_map(|peer| peer_match(peer, pod.namespace, all, ns_labels, what, errors))
                .collect(),
        ),
    };
    // Ports: None or empty = all ports.
    let port_specs: Option<&[NetworkPolicyPort]> = ports.filter(|p| !p.is_empty());

    // The pods that can be at the other end, for resolving named egress ports.
    let mut push = |peer_stmts: Vec<Stmt>, candidates: Option<Vec<&PodInfo>>| {
        match port_specs {
            None => {
                let mut r = peer_stmts;
                r.push(ret());
                chain.rule(r);
            }
            Some(specs) => {
                for spec in specs {
                    let Some(proto) = Proto::parse(spec.protocol.as_deref()) else {
                        errors.push(NetError::invalid(
                            what.to_string(),
                            "ports.protocol",
                            format!("unsupported protocol {:?}", spec.protocol),
                        ));
                        continue;
                    };
                    let named = matches!(spec.port, Some(IntOrString::String(_)));
                    if named && dir == Direction::Egress {
                        // Resolve on each possible destination pod: (ip . port) pairs.
                        let dests: Vec<&PodInfo> =
                            candidates.clone().unwrap_or_else(|| all.iter().collect());
                        let pairs: Vec<Expr> = dests
                            .iter()
                            .filter_map(|d| {
                                resolve_port(spec, d.pod, proto)
                                    .map(|(p, _)| concat(vec![ip(d.ip), n(u32::from(p))]))
                            })
                            .collect();
                        if pairs.is_empty() {
                            continue;
                        }
                        let mut r = peer_stmts.clone();
                        r.push(eq(meta(MetaKey::L4proto), l4(proto.nft())));
                        r.push(is_in(
                            concat(vec![field("ip", "daddr"), field("th", "dport")]),
                            set(pairs),
                        ));
                        r.push(ret());
                        chain.rule(r);
                        continue;
                    }
                    let dest = if dir == Direction::Ingress {
                        Some(pod.pod)
                    } else {
                        None
                    };
                    let resolved = match dest {
                        Some(d) => resolve_port(spec, d, proto),
                        None => resolve_port(spec, pod.pod, proto),
                    };
                    let Some((start, end)) = resolved else {
                        continue;
                    };
                    let mut r = peer_stmts.clone();
                    r.push(eq(meta(MetaKey::L4proto), l4(proto.nft())));
                    if start != 0 {
                        let port_expr = if start == end {
                            n(u32::from(start))
                        } else {
                            range(n(u32::from(start)), n(u32::from(end)))
                        };
                        r.push(eq(field("th", "dport"), port_expr));
                    }
                    r.push(ret());
                    chain.rule(r);
                }
            }
        }
    };
    match peer_matches {
        None => push(vec![], None),
        Some(matches) => {
            for m in matches {
                match m {
                    PeerMatch::Pods(ips) => {
                        if ips.is_empty() {
                            continue;
                        }
                        let candidates: Vec<&PodInfo> =
                            all.iter().filter(|p| ips.contains(&p.ip)).collect();
                        push(
                            vec![is_in(
                                field("ip", peer_field),
                                set(ips.into_iter().map(ip).collect()),
                            )],
                            Some(candidates),
                        );
                    }
                    PeerMatch::Block(cidr, except) => {
                        let mut stmts = vec![eq(field("ip", peer_field), net(cidr))];
                        if !except.is_empty() {
                            stmts.push(ne(
                                field("ip", peer_field),
                                set(except.into_iter().map(net).collect()),
                            ));
                        }
                        let candidates: Vec<&PodInfo> =
                            all.iter().filter(|p| cidr.contains(&p.ip)).collect();
                        push(stmts, Some(candidates));
                    }
                }
            }
        }
    }
}

fn peer_match(
    peer: &NetworkPolicyPeer,
    own_ns: &str,
    all: &[PodInfo],
    ns_labels: &BTreeMap<&str, BTreeMap<String, String>>,
    what: &str,
    errors: &mut Vec<NetError>,
) -> Option<PeerMatch> {
    if let Some(block) = &peer.ip_block {
        let cidr = match block.cidr.parse::<Ipv4Net>() {
            Ok(c) => c.trunc(),
            Err(_) => {
                if block.cidr.parse::<ipnet::Ipv6Net>().is_err() {
                    errors.push(NetError::invalid(
                        what.to_string(),
                        "ipBlock.cidr",
                        format!("{:?} is not a CIDR", block.cidr),
                    ));
                }
                return None;
            }
        };
        let mut except = Vec::new();
        for e in block.except.iter().flatten() {
            match e.parse::<Ipv4Net>() {
                Ok(n) => except.push(n.trunc()),
                Err(_) => errors.push(NetError::invalid(
                    what.to_string(),
                    "ipBlock.except",
                    format!("{e:?} is not an IPv4 CIDR"),
                )),
            }
        }
        return Some(PeerMatch::Block(cidr, except));
    }
    let pod_sel = match &peer.pod_selector {
        Some(s) => Some(selector(s, what, errors)?),
        None => None,
    };
    let ns_sel = match &peer.namespace_selector {
        Some(s) => Some(selector(s, what, errors)?),
        None => None,
    };
    if pod_sel.is_none() && ns_sel.is_none() {
        return None;
    }
    let empty = BTreeMap::new();
    let ips: BTreeSet<Ipv4Addr> = all
        .iter()
        .filter(|p| match &ns_sel {
            None => p.namespace == own_ns,
            Some(sel) => sel.matches(ns_labels.get(p.namespace).unwrap_or(&empty)),
        })
        .filter(|p| {
            pod_sel
                .as_ref()
                .is_none_or(|sel| sel.matches(&labels(p.pod)))
        })
        .map(|p| p.ip)
        .collect();
    Some(PeerMatch::Pods(ips.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, ip: &str, node: &str, labels: serde_json::Value) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns, "labels": labels},
                "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
                "status": {"podIP": ip}}))
            .unwrap(),
        )
    }

    fn ns(name: &str, labels: serde_json::Value) -> Arc<Namespace> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
        )
    }

    fn np(v: serde_json::Value) -> Arc<NetworkPolicy> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn text(r: &PolicyRules) -> String {
        serde_json::to_string(&(
            &r.dispatch,
            r.chains
                .iter()
                .map(|c| (&c.name, &c.rules))
                .collect::<Vec<_>>(),
        ))
        .unwrap()
    }

    #[test]
    fn unselected_pods_are_not_isolated() {
        let pods = vec![pod("a", "web", "10.42.0.5", "n1", json!({"app": "web"}))];
        let r = render("n1", &pods, &[], &[]);
        assert!(r.dispatch.is_empty() && r.chains.is_empty());
    }

    #[test]
    fn ingress_from_selected_pods_and_namespaces_on_named_ports() {
        let pods = vec![
            pod("a", "web", "10.42.0.5", "n1", json!({"app": "web"})),
            pod("a", "client", "10.42.1.6", "n2", json!({"role": "client"})),
            pod("b", "other", "10.42.1.7", "n2", json!({"role": "client"})),
            pod("c", "third", "10.42.1.8", "n2", json!({})),
        ];
        let nss = vec![
            ns("a", json!({})),
            ns("b", json!({"team": "x"})),
            ns("c", json!({})),
        ];
        let pol = np(json!({"metadata": {"name": "allow", "namespace": "a"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}},
                                       {"namespaceSelector": {"matchLabels": {"team": "x"}}}],
                             "ports": [{"port": "http"}]}]}}));
        let r = render("n1", &pods, &nss, &[pol]);
        assert_eq!(r.isolated, (1, 0));
        let t = text(&r);
        assert!(t.contains("pol-in-10.42.0.5"), "{t}");
        assert!(
            t.contains("10.42.1.6") && t.contains("10.42.1.7") && !t.contains("10.42.1.8"),
            "{t}"
        );
        assert!(t.contains("8080"), "named port resolved: {t}");
        assert!(r.chains[0].rules.last().unwrap() == &vec![drop()]);
    }

    #[test]
    fn egress_ip_blocks_with_exceptions_and_default_deny() {
        let pods = vec![pod("a", "web", "10.42.0.5", "n1", json!({"app": "web"}))];
        let deny = np(json!({"metadata": {"name": "deny", "namespace": "a"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}));
        let allow = np(json!({"metadata": {"name": "out", "namespace": "a"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.43.0.0/16"]}}],
                            "ports": [{"protocol": "UDP", "port": 53}, {"port": 9000, "endPort": 9010}]}]}}));
        let r = render("n1", &pods, &[], &[deny, allow]);
        assert_eq!(r.isolated, (1, 1));
        let t = text(&r);
        assert!(
            t.contains("10.43.0.0") && t.contains("\"udp\"") && t.contains("9010"),
            "{t}"
        );
        let input = r
            .chains
            .iter()
            .find(|c| c.name.starts_with("pol-in"))
            .unwrap();
        assert_eq!(input.rules, vec![vec![drop()]], "ingress: deny all");
    }

    #[test]
    fn bad_selectors_and_cidrs_are_reported_with_the_policy_named() {
        let pods = vec![pod("a", "web", "10.42.0.5", "n1", json!({}))];
        let bad = np(json!({"metadata": {"name": "bad", "namespace": "a"},
            "spec": {"podSelector": {},
                "ingress": [{"from": [{"ipBlock": {"cidr": "nonsense"}},
                                       {"podSelector": {"matchExpressions": [{"key": "k", "operator": "Bogus"}]}}]}]}}));
        let r = render("n1", &pods, &[], &[bad]);
        let msgs: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("networkpolicy a/bad") && m.contains("ipBlock.cidr")),
            "{msgs:?}"
        );
        assert!(msgs.len() >= 2, "{msgs:?}");
        // Still isolated (fails closed): nothing allowed.
        assert_eq!(r.isolated, (1, 0));
    }
}
