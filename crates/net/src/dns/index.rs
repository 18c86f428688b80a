//! The cluster's names, computed from Services, EndpointSlices and Pods (CoreDNS's
//! `kubernetes` plugin semantics):
//!
//! - `<svc>.<ns>.svc.<domain>`: A/AAAA of the ClusterIPs; for headless Services the ready
//!   endpoints' addresses; CNAME for ExternalName Services;
//! - `<hostname>.<svc>.<ns>.svc.<domain>`: an endpoint with a hostname (StatefulSet pods of
//!   their governing headless Service), else `<a-b-c-d>.<svc>.<ns>.svc.<domain>`;
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>` (and `<svc>.<ns>.svc.<domain>` itself): SRV;
//! - `<a-b-c-d>.<ns>.pod.<domain>`: A of the address in the name;
//! - PTR of ClusterIPs and of endpoints with a hostname.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::proxy::model::SERVICE_NAME_LABEL;

/// An SRV target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// Everything one name has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub a: Vec<Ipv4Addr>,
    pub aaaa: Vec<Ipv6Addr>,
    pub srv: Vec<Srv>,
    pub cname: Option<String>,
    pub ptr: Vec<String>,
}

/// What a name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Not a cluster name: ask the upstream resolvers.
    Outside,
    /// A cluster name that does not exist.
    NotFound,
    /// The name exists (it may have no record of the asked type).
    Found(std::borrow::Cow<'a, Entry>),
}

/// The index of one moment.
#[derive(Debug, Clone, Default)]
pub struct DnsIndex {
    domain: String,
    names: HashMap<String, Entry>,
}

fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

impl DnsIndex {
    pub fn build<'a>(
        domain: &str,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> DnsIndex {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut idx = DnsIndex {
            domain: domain.clone(),
            names: HashMap::new(),
        };
        // Pods by (namespace, name), for endpoint hostnames.
        let pods: HashMap<(String, String), &Pod> = pods
            .into_iter()
            .filter_map(|p| Some(((p.metadata.namespace.clone()?, p.metadata.name.clone()?), p)))
            .collect();
        let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
        for s in slices {
            if let (Some(ns), Some(svc)) = (
                s.metadata.namespace.clone(),
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .cloned(),
            ) {
                by_service.entry((ns, svc)).or_default().push(s);
            }
        }
        for svc in services {
            let (Some(ns), Some(name)) =
                (svc.metadata.namespace.clone(), svc.metadata.name.clone())
            else {
                continue;
            };
            let Some(spec) = &svc.spec else { continue };
            let base = format!("{name}.{ns}.svc.{domain}").to_ascii_lowercase();
            idx.add_parents(&base);
            if spec.type_.as_deref() == Some("ExternalName") {
                if let Some(target) = &spec.external_name {
                    idx.names.entry(base).or_default().cname =
                        Some(target.trim_end_matches('.').to_ascii_lowercase());
                }
                continue;
            }
            let cluster_ips: Vec<IpAddr> = spec
                .cluster_ips
                .clone()
                .unwrap_or_else(|| spec.cluster_ip.clone().into_iter().collect())
                .iter()
                .filter_map(|ip| ip.parse().ok())
                .collect();
            let headless = cluster_ips.is_empty();
            let ports: Vec<(String, String, u16)> = spec
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    Some((
                        p.name.clone().unwrap_or_default(),
                        p.protocol
                            .clone()
                            .unwrap_or_else(|| "TCP".into())
                            .to_ascii_lowercase(),
                        u16::try_from(p.port).ok()?,
                    ))
                })
                .collect();
            if !headless {
                let e = idx.names.entry(base.clone()).or_default();
                for ip in &cluster_ips {
                    match ip {
                        IpAddr::V4(v4) => e.a.push(*v4),
                        IpAddr::V6(v6) => e.aaaa.push(*v6),
                    }
                }
                for (pname, proto, port) in &ports {
                    let srv = Srv {
                        priority: 0,
                        weight: 100,
                        port: *port,
                        target: base.clone(),
                    };
                    idx.names
                        .entry(base.clone())
                        .or_default()
                        .srv
                        .push(srv.clone());
                    if !pname.is_empty() {
                        let n = format!("_{pname}._{proto}.{base}").to_ascii_lowercase();
                        idx.add_parents(&n);
                        idx.names.entry(n).or_default().srv.push(srv);
                    }
                }
                for ip in &cluster_ips {
                    let r = reverse_name(*ip);
                    idx.names.entry(r).or_default().ptr.push(base.clone());
                }
                continue;
            }
            // Headless: the endpoints themselves.
            let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
            let mut seen: BTreeSet<(IpAddr, String)> = BTreeSet::new();
            for slice in by_service
                .get(&(ns.clone(), name.clone()))
                .into_iter()
                .flatten()
            {
                for ep in &slice.endpoints {
                    let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                    if !ready && !publish_not_ready {
                        continue;
                    }
                    let hostname = ep.hostname.clone().or_else(|| {
                        let r = ep.target_ref.as_ref()?;
                        let pod = pods.get(&(
                            r.namespace.clone().unwrap_or_else(|| ns.clone()),
                            r.name.clone()?,
                        ))?;
                        let ps = pod.spec.as_ref()?;
                        (ps.subdomain.as_deref() == Some(name.as_str()))
                            .then(|| ps.hostname.clone().or_else(|| pod.metadata.name.clone()))
                            .flatten()
                    });
                    for a in &ep.addresses {
                        let Ok(ip) = a.parse::<IpAddr>() else {
                            continue;
                        };
                        let label = hostname.clone().unwrap_or_else(|| dashed(ip));
                        if !seen.insert((ip, label.clone())) {
                            continue;
                        }
                        let host = format!("{label}.{base}").to_ascii_lowercase();
                        let e = idx.names.entry(base.clone()).or_default();
                        let he = match ip {
                            IpAddr::V4(v4) => {
                                e.a.push(v4);
                                let he = idx.names.entry(host.clone()).or_default();
                                he.a.push(v4);
                                he
                            }
                            IpAddr::V6(v6) => {
                                e.aaaa.push(v6);
                                let he = idx.names.entry(host.clone()).or_default();
                                he.aaaa.push(v6);
                                he
                            }
                        };
                        let _ = he;
                        if hostname.is_some() {
                            idx.names
                                .entry(reverse_name(ip))
                                .or_default()
                                .ptr
                                .push(host.clone());
                        }
                        for sp in slice.ports.iter().flatten() {
                            let Some(port) = sp.port.and_then(|p| u16::try_from(p).ok()) else {
                                continue;
                            };
                            let pname = sp.name.clone().unwrap_or_default();
                            let proto = sp
                                .protocol
                                .clone()
                                .unwrap_or_else(|| "TCP".into())
                                .to_ascii_lowercase();
                            let srv = Srv {
                                priority: 0,
                                weight: 100,
                                port,
                                target: host.clone(),
                            };
                            idx.names
                                .entry(base.clone())
                                .or_default()
                                .srv
                                .push(srv.clone());
                            if !pname.is_empty() {
                                let n = format!("_{pname}._{proto}.{base}").to_ascii_lowercase();
                                idx.add_parents(&n);
                                idx.names.entry(n).or_default().srv.push(srv);
                            }
                        }
                    }
                }
            }
            // A headless Service without endpoints still exists.
            idx.names.entry(base).or_default();
        }
        for e in idx.names.values_mut() {
            e.a.sort();
            e.a.dedup();
            e.aaaa.sort();
            e.aaaa.dedup();
            e.srv.sort();
            e.srv.dedup();
            e.ptr.sort();
            e.ptr.dedup();
        }
        idx
    }

    /// Registers the ancestors of `name` under the domain as existing (empty) names.
    fn add_parents(&mut self, name: &str) {
        let suffix = format!(".{}", self.domain);
        let mut rest = name;
        while let Some((_, parent)) = rest.split_once('.') {
            if parent.len() < self.domain.len() {
                break;
            }
            self.names.entry(parent.to_string()).or_default();
            if !parent.ends_with(&suffix) && parent != self.domain {
                break;
            }
            rest = parent;
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Looks a name up (any case, with or without the trailing dot).
    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let in_domain = name == self.domain || name.ends_with(&format!(".{}", self.domain));
        let reverse = name.ends_with(".in-addr.arpa") || name.ends_with(".ip6.arpa");
        if let Some(e) = self.names.get(&name) {
            return Lookup::Found(std::borrow::Cow::Borrowed(e));
        }
        if reverse {
            // Reverse names berth does not know belong to the upstream resolvers.
            return Lookup::Outside;
        }
        if !in_domain {
            return Lookup::Outside;
        }
        // <a-b-c-d>.<ns>.pod.<domain>
        let pod_suffix = format!(".pod.{}", self.domain);
        if let Some(head) = name.strip_suffix(&pod_suffix) {
            let mut parts = head.splitn(2, '.');
            if let (Some(ip), Some(_ns)) = (parts.next(), parts.next())
                && let Ok(v4) = ip.replace('-', ".").parse::<Ipv4Addr>()
            {
                return Lookup::Found(std::borrow::Cow::Owned(Entry {
                    a: vec![v4],
                    ..Default::default()
                }));
            }
            if !head.contains('.') {
                // `<ns>.pod.<domain>`: an existing parent.
                return Lookup::Found(std::borrow::Cow::Owned(Entry::default()));
            }
        }
        if name == self.domain
            || name == format!("svc.{}", self.domain)
            || name == format!("pod.{}", self.domain)
        {
            return Lookup::Found(std::borrow::Cow::Owned(Entry::default()));
        }
        Lookup::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn idx() -> DnsIndex {
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "prod"},
            "spec": {"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"],
                     "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}})).unwrap();
        let headless: Service =
            serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "prod"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}))
            .unwrap();
        let ext: Service =
            serde_json::from_value(json!({"metadata": {"name": "ext", "namespace": "prod"},
            "spec": {"type": "ExternalName", "externalName": "Example.COM."}}))
            .unwrap();
        let slice: EndpointSlice = serde_json::from_value(json!({"metadata": {"name": "db-1", "namespace": "prod",
                "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.1.5"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "db-0", "namespace": "prod"}},
                {"addresses": ["10.42.2.6"], "conditions": {"ready": true}, "hostname": "db-1"},
                {"addresses": ["10.42.2.7"], "conditions": {"ready": true}},
                {"addresses": ["10.42.2.8"], "conditions": {"ready": false}}]})).unwrap();
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": "db-0", "namespace": "prod"},
            "spec": {"hostname": "db-0", "subdomain": "db", "containers": []}}))
            .unwrap();
        DnsIndex::build("cluster.local", [&svc, &headless, &ext], [&slice], [&pod])
    }

    fn found(i: &DnsIndex, n: &str) -> Entry {
        match i.lookup(n) {
            Lookup::Found(e) => e.into_owned(),
            other => panic!("{n}: {other:?}"),
        }
    }

    #[test]
    fn services_resolve_to_cluster_ips_with_srv_and_ptr() {
        let i = idx();
        assert_eq!(
            found(&i, "WEB.prod.svc.cluster.local.").a,
            vec![Ipv4Addr::new(10, 43, 0, 20)]
        );
        let srv = found(&i, "_http._tcp.web.prod.svc.cluster.local").srv;
        assert_eq!(
            srv,
            vec![Srv {
                priority: 0,
                weight: 100,
                port: 80,
                target: "web.prod.svc.cluster.local".into()
            }]
        );
        assert_eq!(
            found(&i, "_dns._udp.web.prod.svc.cluster.local").srv[0].port,
            53
        );
        assert_eq!(
            found(&i, "20.0.43.10.in-addr.arpa").ptr,
            vec!["web.prod.svc.cluster.local"]
        );
        // Existing parents are empty names, not missing ones.
        assert_eq!(found(&i, "prod.svc.cluster.local"), Entry::default());
        assert_eq!(
            found(&i, "_tcp.web.prod.svc.cluster.local"),
            Entry::default()
        );
        assert_eq!(i.lookup("nope.prod.svc.cluster.local"), Lookup::NotFound);
        assert_eq!(i.lookup("example.org"), Lookup::Outside);
        assert_eq!(i.lookup("1.1.168.192.in-addr.arpa"), Lookup::Outside);
    }

    #[test]
    fn headless_services_list_ready_endpoints_and_statefulset_pod_names() {
        let i = idx();
        let a = found(&i, "db.prod.svc.cluster.local").a;
        assert_eq!(a.len(), 3, "{a:?}");
        assert!(
            !a.contains(&Ipv4Addr::new(10, 42, 2, 8)),
            "unready endpoint listed"
        );
        assert_eq!(
            found(&i, "db-0.db.prod.svc.cluster.local").a,
            vec![Ipv4Addr::new(10, 42, 1, 5)]
        );
        assert_eq!(
            found(&i, "db-1.db.prod.svc.cluster.local").a,
            vec![Ipv4Addr::new(10, 42, 2, 6)]
        );
        assert_eq!(
            found(&i, "10-42-2-7.db.prod.svc.cluster.local").a,
            vec![Ipv4Addr::new(10, 42, 2, 7)]
        );
        let srv = found(&i, "_pg._tcp.db.prod.svc.cluster.local").srv;
        let targets: Vec<&str> = srv.iter().map(|s| s.target.as_str()).collect();
        assert_eq!(
            targets,
            vec![
                "10-42-2-7.db.prod.svc.cluster.local",
                "db-0.db.prod.svc.cluster.local",
                "db-1.db.prod.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn external_names_and_pod_names() {
        let i = idx();
        assert_eq!(
            found(&i, "ext.prod.svc.cluster.local").cname.as_deref(),
            Some("example.com")
        );
        assert_eq!(
            found(&i, "10-42-0-9.any.pod.cluster.local").a,
            vec![Ipv4Addr::new(10, 42, 0, 9)]
        );
        assert_eq!(i.lookup("bad-name.any.pod.cluster.local"), Lookup::NotFound);
    }
}
