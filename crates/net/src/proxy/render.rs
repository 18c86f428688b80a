//! Service port models to the node's nftables ruleset.
//!
//! ```text
//! nat-prerouting / nat-output  ─ jump services
//! services       ip daddr . l4proto . dport vmap { clusterIP…: goto svc-*, externalIP…: goto ext-* }
//!                fib daddr type local … l4proto . dport vmap { nodePort…: goto ext-* }
//! svc-*          [from outside the cluster CIDR: mark for masquerade]
//!                [ClientIP affinity: known client → its endpoint]
//!                numgen random mod N vmap { i: goto ep-* }          (even spread)
//! ext-*          Cluster policy: mark for masquerade, goto svc-*
//!                Local policy: pods and the node → svc-*; others → local endpoints or drop
//! ep-*           [the endpoint itself is the client (hairpin): mark for masquerade]
//!                [affinity: remember the client] dnat to ip:port
//! nat-postrouting  marked → masquerade; pod traffic leaving the cluster CIDR → masquerade
//! filter-*       new connections to a Service port without endpoints → reject;
//!                to a ClusterIP on a port it does not serve → reject; rest of the Service
//!                CIDR → drop (fail closed)
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nftables::expr::{FibFlag, MetaKey};
use nftables::schema::{SetFlag, SetType, SetTypeValue};
use nftables::types::{NfChainType, NfHook};

use crate::nft::expr::*;
use crate::nft::{ChainSpec, Ruleset, SetSpec};
use crate::proxy::model::{Endpoint, ServicePortModel};

/// The packet mark bit that asks postrouting to masquerade.
pub const MASQ_MARK: u32 = 0x4000;

pub const SERVICES: &str = "services";
pub const MARK_FOR_MASQ: &str = "mark-for-masquerade";
pub const MASQUERADING: &str = "masquerading";
pub const REJECT: &str = "reject-chain";
pub const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
pub const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";
pub const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";
/// Chain where network policy rules go (filter, forward hook, after DNAT).
pub const FILTER_FORWARD_POLICY: &str = "filter-forward-policy";

#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub node_name: String,
    pub cluster_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
}

fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:08x}", (h >> 32) as u32 ^ (h as u32))
}

fn svc_chain(p: &ServicePortModel) -> String {
    format!("svc-{}-{}", short_hash(&p.key()), p.key())
}

fn ext_chain(p: &ServicePortModel) -> String {
    format!("ext-{}-{}", short_hash(&p.key()), p.key())
}

fn ep_chain(p: &ServicePortModel, e: &Endpoint) -> String {
    format!(
        "ep-{}-{}__{}/{}",
        short_hash(&p.key()),
        p.key(),
        e.ip,
        e.port
    )
}

fn affinity_set(p: &ServicePortModel, e: &Endpoint) -> String {
    // The timeout is part of the name: changing it makes a new set instead of a conflict.
    let t = p.affinity_timeout.unwrap_or(0);
    format!(
        "aff-{}-{}-{t}",
        short_hash(&p.key()),
        short_hash(&format!("{}:{}", e.ip, e.port))
    )
}

fn ct_new() -> Stmt {
    is_in(ct("state"), s("new"))
}

fn l4_key() -> Expr {
    concat(vec![
        field("ip", "daddr"),
        meta(MetaKey::L4proto),
        field("th", "dport"),
    ])
}

fn svc_elem(ip_addr: Ipv4Addr, p: &ServicePortModel) -> Expr {
    concat(vec![
        ip(ip_addr),
        l4(p.protocol.nft()),
        n(u32::from(p.port)),
    ])
}

fn nodeport_elem(p: &ServicePortModel, port: u16) -> Expr {
    concat(vec![l4(p.protocol.nft()), n(u32::from(port))])
}

/// Spreads evenly over `eps` (with affinity first when configured).
fn balance(chain: &mut ChainSpec, p: &ServicePortModel, eps: &[&Endpoint]) {
    if p.affinity_timeout.is_some() {
        for e in eps {
            chain.rule(vec![
                is_in(field("ip", "saddr"), set_ref(&affinity_set(p, e))),
                goto(&ep_chain(p, e)),
            ]);
        }
    }
    match eps {
        [] => {}
        [one] => {
            chain.rule(vec![goto(&ep_chain(p, one))]);
        }
        many => {
            let entries = many
                .iter()
                .enumerate()
                .map(|(i, e)| (n(i as u32), verdict_goto(&ep_chain(p, e))))
                .collect();
            chain.rule(vec![vmap(numgen_random(many.len() as u32), entries)]);
        }
    }
}

/// The node's whole Service ruleset (policy rules are added to [`FILTER_FORWARD_POLICY`]
/// by the caller).
pub fn render(ports: &[ServicePortModel], opts: &RenderOptions) -> Ruleset {
    let mut rs = Ruleset::default();
    let cluster = opts.cluster_cidr;

    // Base chains.
    let mut c = ChainSpec::base("nat-prerouting", NfChainType::NAT, NfHook::Prerouting, -100);
    c.rule(vec![jump(SERVICES)]);
    rs.chains.push(c);
    let mut c = ChainSpec::base("nat-output", NfChainType::NAT, NfHook::Output, -100);
    c.rule(vec![jump(SERVICES)]);
    rs.chains.push(c);
    let mut c = ChainSpec::base(
        "nat-postrouting",
        NfChainType::NAT,
        NfHook::Postrouting,
        100,
    );
    c.rule(vec![jump(MASQUERADING)]);
    rs.chains.push(c);
    let mut c = ChainSpec::base("filter-input", NfChainType::Filter, NfHook::Input, -110);
    c.rule(vec![ct_new(), jump(NODEPORT_ENDPOINTS_CHECK)]);
    c.rule(vec![ct_new(), jump(SERVICE_ENDPOINTS_CHECK)]);
    rs.chains.push(c);
    let mut c = ChainSpec::base("filter-forward", NfChainType::Filter, NfHook::Forward, -110);
    c.rule(vec![ct_new(), jump(SERVICE_ENDPOINTS_CHECK)]);
    c.rule(vec![ct_new(), jump(CLUSTER_IPS_CHECK)]);
    rs.chains.push(c);
    let mut c = ChainSpec::base("filter-output", NfChainType::Filter, NfHook::Output, -110);
    c.rule(vec![ct_new(), jump(SERVICE_ENDPOINTS_CHECK)]);
    c.rule(vec![ct_new(), jump(NODEPORT_ENDPOINTS_CHECK)]);
    rs.chains.push(c);
    let mut c = ChainSpec::base(
        "filter-output-post-dnat",
        NfChainType::Filter,
        NfHook::Output,
        -90,
    );
    c.rule(vec![ct_new(), jump(CLUSTER_IPS_CHECK)]);
    rs.chains.push(c);
    let mut c = ChainSpec::base(
        "filter-forward-policy-hook",
        NfChainType::Filter,
        NfHook::Forward,
        0,
    );
    c.rule(vec![jump(FILTER_FORWARD_POLICY)]);
    rs.chains.push(c);
    rs.chains.push(ChainSpec::regular(FILTER_FORWARD_POLICY));

    // Masquerading.
    let mut c = ChainSpec::regular(MARK_FOR_MASQ);
    c.rule(vec![set_mark_bit(MASQ_MARK)]);
    rs.chains.push(c);
    let mut c = ChainSpec::regular(MASQUERADING);
    c.rule(vec![
        ne(
            nftables::expr::Expression::BinaryOperation(Box::new(
                nftables::expr::BinaryOperation::AND(meta(MetaKey::Mark), n(MASQ_MARK)),
            )),
            n(0),
        ),
        flip_mark_bit(MASQ_MARK),
        masquerade(),
    ]);
    c.rule(vec![
        eq(field("ip", "saddr"), net(cluster)),
        ne(field("ip", "daddr"), net(cluster)),
        masquerade(),
    ]);
    rs.chains.push(c);
    let mut c = ChainSpec::regular(REJECT);
    // A TCP reset reaches the client even where an ICMP error for a packet routed back out
    // the bridge does not.
    c.rule(vec![
        eq(meta(MetaKey::L4proto), s("tcp")),
        reject_tcp_reset(),
    ]);
    c.rule(vec![reject()]);
    rs.chains.push(c);

    // Per service port.
    let mut service_map: Vec<(Expr, Expr)> = Vec::new();
    let mut nodeport_map: Vec<(Expr, Expr)> = Vec::new();
    let mut no_ep_services: Vec<(Expr, Expr)> = Vec::new();
    let mut no_ep_nodeports: Vec<(Expr, Expr)> = Vec::new();
    let mut all_cluster_ips: BTreeMap<Ipv4Addr, ()> = BTreeMap::new();
    for p in ports {
        for ipa in &p.cluster_ips {
            all_cluster_ips.insert(*ipa, ());
        }
        let cluster_eps: Vec<&Endpoint> = if p.internal_local {
            p.local_endpoints(&opts.node_name).collect()
        } else {
            p.endpoints.iter().collect()
        };
        let has_external = p.node_port.is_some() || !p.external_ips.is_empty();
        let local_eps: Vec<&Endpoint> = p.local_endpoints(&opts.node_name).collect();
        let external_usable = if p.external_local {
            !local_eps.is_empty() || !p.endpoints.is_empty()
        } else {
            !p.endpoints.is_empty()
        };
        // Cluster traffic.
        if cluster_eps.is_empty() {
            for ipa in &p.cluster_ips {
                no_ep_services.push((svc_elem(*ipa, p), verdict_goto(REJECT)));
            }
        } else {
            let mut c = ChainSpec::regular(svc_chain(p));
            if !p.node_local {
                c.rule(vec![
                    ne(field("ip", "saddr"), net(cluster)),
                    jump(MARK_FOR_MASQ),
                ]);
            }
            balance(&mut c, p, &cluster_eps);
            rs.chains.push(c);
            for ipa in &p.cluster_ips {
                service_map.push((svc_elem(*ipa, p), verdict_goto(&svc_chain(p))));
            }
        }
        // External traffic (NodePort, LoadBalancer and external IPs).
        if has_external {
            if external_usable && (!cluster_eps.is_empty() || p.external_local) {
                let mut c = ChainSpec::regular(ext_chain(p));
                if p.external_local {
                    if !cluster_eps.is_empty() {
                        c.rule(vec![
                            eq(field("ip", "saddr"), net(cluster)),
                            goto(&svc_chain(p)),
                        ]);
                        c.rule(vec![
                            eq(fib_type(FibFlag::Saddr), s("local")),
                            jump(MARK_FOR_MASQ),
                        ]);
                        c.rule(vec![
                            eq(fib_type(FibFlag::Saddr), s("local")),
                            goto(&svc_chain(p)),
                        ]);
                    }
                    if local_eps.is_empty() {
                        c.rule(vec![drop()]);
                    } else {
                        balance(&mut c, p, &local_eps);
                    }
                } else {
                    c.rule(vec![jump(MARK_FOR_MASQ)]);
                    c.rule(vec![goto(&svc_chain(p))]);
                }
                rs.chains.push(c);
                for ipa in &p.external_ips {
                    service_map.push((svc_elem(*ipa, p), verdict_goto(&ext_chain(p))));
                }
                if let Some(np) = p.node_port {
                    nodeport_map.push((nodeport_elem(p, np), verdict_goto(&ext_chain(p))));
                }
            } else {
                for ipa in &p.external_ips {
                    no_ep_services.push((svc_elem(*ipa, p), verdict_goto(REJECT)));
                }
                if let Some(np) = p.node_port {
                    no_ep_nodeports.push((nodeport_elem(p, np), verdict_goto(REJECT)));
                }
            }
        }
        // Endpoint chains (each endpoint once, even if used by both paths).
        let mut eps: Vec<&Endpoint> = cluster_eps.clone();
        if p.external_local {
            eps.extend(local_eps.iter().copied());
        }
        eps.sort();
        eps.dedup();
        for e in eps {
            let mut c = ChainSpec::regular(ep_chain(p, e));
            if !p.node_local {
                c.rule(vec![
                    eq(field("ip", "saddr"), ip(e.ip)),
                    jump(MARK_FOR_MASQ),
                ]);
            }
            let mut last = vec![eq(meta(MetaKey::L4proto), l4(p.protocol.nft()))];
            if let Some(timeout) = p.affinity_timeout {
                rs.sets.push(SetSpec {
                    name: affinity_set(p, e),
                    set_type: SetTypeValue::Single(SetType::Ipv4Addr),
                    flags: vec![SetFlag::Timeout],
                    timeout: Some(timeout),
                    elements: None,
                });
                last.push(update_set_with_saddr(&affinity_set(p, e)));
            }
            last.push(dnat(e.ip, e.port));
            c.rule(last);
            rs.chains.push(c);
        }
    }

    let mut c = ChainSpec::regular(SERVICES);
    if !service_map.is_empty() {
        c.rule(vec![vmap(l4_key(), service_map)]);
    }
    if !nodeport_map.is_empty() {
        c.rule(vec![
            eq(fib_type(FibFlag::Daddr), s("local")),
            ne(
                field("ip", "daddr"),
                net("127.0.0.0/8".parse().expect("valid")),
            ),
            vmap(
                concat(vec![meta(MetaKey::L4proto), field("th", "dport")]),
                nodeport_map,
            ),
        ]);
    }
    rs.chains.push(c);
    let mut c = ChainSpec::regular(SERVICE_ENDPOINTS_CHECK);
    if !no_ep_services.is_empty() {
        c.rule(vec![vmap(l4_key(), no_ep_services)]);
    }
    rs.chains.push(c);
    let mut c = ChainSpec::regular(NODEPORT_ENDPOINTS_CHECK);
    if !no_ep_nodeports.is_empty() {
        c.rule(vec![
            eq(fib_type(FibFlag::Daddr), s("local")),
            vmap(
                concat(vec![meta(MetaKey::L4proto), field("th", "dport")]),
                no_ep_nodeports,
            ),
        ]);
    }
    rs.chains.push(c);
    let mut c = ChainSpec::regular(CLUSTER_IPS_CHECK);
    if !all_cluster_ips.is_empty() {
        c.rule(vec![
            is_in(
                field("ip", "daddr"),
                set(all_cluster_ips.keys().map(|a| ip(*a)).collect()),
            ),
            goto(REJECT),
        ]);
    }
    c.rule(vec![
        eq(field("ip", "daddr"), net(opts.service_cidr)),
        drop(),
    ]);
    rs.chains.push(c);
    rs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::model::Proto;

    fn port(eps: &[(&str, &str)]) -> ServicePortModel {
        ServicePortModel {
            namespace: "default".into(),
            name: "web".into(),
            port_name: "http".into(),
            protocol: Proto::Tcp,
            port: 80,
            cluster_ips: vec!["10.43.0.5".parse().unwrap()],
            external_ips: vec![],
            node_port: None,
            endpoints: eps
                .iter()
                .map(|(ip, node)| Endpoint {
                    ip: ip.parse().unwrap(),
                    port: 8080,
                    node: Some(node.to_string()),
                })
                .collect(),
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            node_local: false,
        }
    }

    fn opts() -> RenderOptions {
        RenderOptions {
            node_name: "n1".into(),
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            service_cidr: "10.43.0.0/16".parse().unwrap(),
        }
    }

    fn chain<'a>(rs: &'a Ruleset, prefix: &str) -> Vec<&'a ChainSpec> {
        rs.chains
            .iter()
            .filter(|c| c.name.starts_with(prefix))
            .collect()
    }

    fn json(rs: &Ruleset, name: &str) -> String {
        let c = rs.chains.iter().find(|c| c.name == name).unwrap();
        serde_json::to_string(&c.rules).unwrap()
    }

    #[test]
    fn endpoints_are_spread_evenly_and_hairpin_is_masqueraded() {
        let p = port(&[
            ("10.42.1.2", "n1"),
            ("10.42.2.2", "n2"),
            ("10.42.3.2", "n3"),
        ]);
        let rs = render(std::slice::from_ref(&p), &opts());
        let svc = chain(&rs, "svc-");
        assert_eq!(svc.len(), 1);
        let text = serde_json::to_string(&svc[0].rules).unwrap();
        assert!(text.contains(r#""mode":"random","mod":3"#), "{text}");
        assert_eq!(chain(&rs, "ep-").len(), 3);
        let ep = serde_json::to_string(&chain(&rs, "ep-")[0].rules).unwrap();
        assert!(
            ep.contains("10.42.1.2") && ep.contains(MARK_FOR_MASQ) && ep.contains(r#""port":8080"#),
            "{ep}"
        );
        let services = json(&rs, SERVICES);
        assert!(
            services.contains("10.43.0.5") && services.contains(&svc_chain(&p)),
            "{services}"
        );
    }

    #[test]
    fn a_port_without_endpoints_is_rejected_not_forwarded() {
        let mut p = port(&[]);
        p.node_port = Some(30080);
        let rs = render(&[p], &opts());
        assert!(chain(&rs, "svc-").is_empty());
        assert!(chain(&rs, "ext-").is_empty());
        assert!(json(&rs, SERVICE_ENDPOINTS_CHECK).contains(REJECT));
        assert!(json(&rs, NODEPORT_ENDPOINTS_CHECK).contains("30080"));
        assert!(!json(&rs, SERVICES).contains("10.43.0.5"));
        assert!(json(&rs, CLUSTER_IPS_CHECK).contains("10.43.0.0"));
    }

    #[test]
    fn external_traffic_policy_local_uses_only_local_endpoints_or_drops() {
        let mut p = port(&[("10.42.1.2", "n1"), ("10.42.2.2", "n2")]);
        p.node_port = Some(30080);
        p.external_local = true;
        let rs = render(std::slice::from_ref(&p), &opts());
        let ext = serde_json::to_string(&chain(&rs, "ext-")[0].rules).unwrap();
        assert!(
            ext.contains("10.42.1.2") && !ext.contains("10.42.2.2"),
            "{ext}"
        );
        let mut o = opts();
        o.node_name = "n9".into();
        let rs = render(&[p], &o);
        let ext = serde_json::to_string(&chain(&rs, "ext-")[0].rules).unwrap();
        assert!(ext.contains("drop"), "{ext}");
    }

    #[test]
    fn affinity_sets_are_named_per_endpoint_and_timeout() {
        let mut p = port(&[("10.42.1.2", "n1"), ("10.42.2.2", "n2")]);
        p.affinity_timeout = Some(60);
        let rs = render(&[p], &opts());
        assert_eq!(rs.sets.len(), 2);
        assert!(
            rs.sets
                .iter()
                .all(|s| s.timeout == Some(60) && s.elements.is_none() && s.name.ends_with("-60"))
        );
        let svc = serde_json::to_string(&chain(&rs, "svc-")[0].rules).unwrap();
        assert!(svc.contains(&format!("@{}", rs.sets[0].name)), "{svc}");
    }
}
