//! A pod's name resolution: its hostname (and FQDN with a subdomain), `resolv.conf`
//! according to `dnsPolicy` and `dnsConfig`, and the Kubernetes-managed `/etc/hosts`.

use std::net::IpAddr;

use berth_cri::DnsConfig;
use k8s_openapi::api::core::v1::Pod;

/// (hostname, FQDN when the pod has a subdomain).
pub fn hostname(pod: &Pod, domain: &str) -> (String, Option<String>) {
    let spec = pod.spec.as_ref();
    let name = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            let n = pod.metadata.name.clone().unwrap_or_default();
            let cut: String = n.chars().take(63).collect();
            cut.trim_end_matches(['-', '.']).to_string()
        });
    let fqdn = spec
        .and_then(|s| s.subdomain.clone())
        .filter(|s| !s.is_empty())
        .map(|sub| {
            format!(
                "{name}.{sub}.{}.svc.{domain}",
                pod.metadata.namespace.as_deref().unwrap_or("default")
            )
        });
    let as_fqdn = spec.and_then(|s| s.set_hostname_as_fqdn).unwrap_or(false);
    match (&fqdn, as_fqdn) {
        (Some(f), true) => (f.chars().take(64).collect(), fqdn.clone()),
        _ => (name, fqdn),
    }
}

fn host_resolv() -> DnsConfig {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut c = DnsConfig::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => c.servers.extend(f.next().map(String::from)),
            Some("search") | Some("domain") => c.searches = f.map(String::from).collect(),
            Some("options") => c.options.extend(f.map(String::from)),
            _ => {}
        }
    }
    c
}

/// The pod's `resolv.conf` settings.
pub fn dns_config(pod: &Pod, cluster_dns: &[IpAddr], domain: &str) -> DnsConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    } && !cluster_dns.is_empty();
    let mut c = if policy == "None" {
        DnsConfig::default()
    } else if cluster {
        let host = host_resolv();
        let mut searches = vec![
            format!("{ns}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.to_string(),
        ];
        searches.extend(host.searches);
        DnsConfig {
            servers: cluster_dns.iter().map(|i| i.to_string()).collect(),
            searches,
            options: vec!["ndots:5".into()],
        }
    } else {
        host_resolv()
    };
    if let Some(dc) = &spec.dns_config {
        c.servers.extend(dc.nameservers.iter().flatten().cloned());
        c.searches.extend(dc.searches.iter().flatten().cloned());
        for o in dc.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            c.options
                .retain(|x| x.split(':').next() != Some(name.as_str()));
            c.options.push(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    c.servers.truncate(3);
    c.searches.dedup();
    c.searches.truncate(32);
    c
}

/// The Kubernetes-managed `/etc/hosts` of a pod.
pub fn hosts_file(pod: &Pod, ips: &[IpAddr], domain: &str) -> String {
    let (host, fqdn) = hostname(pod, domain);
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let names = match &fqdn {
        Some(f) if *f != host => format!("{f}\t{host}"),
        _ => host.clone(),
    };
    if ips.is_empty() {
        // No pod network: the pod's own name resolves to a loopback address.
        out.push_str(&format!("127.0.1.1\t{names}\n"));
    }
    for ip in ips {
        out.push_str(&format!("{ip}\t{names}\n"));
    }
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.clone())
        .unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            out.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.unwrap_or_default().join("\t")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(extra: serde_json::Value) -> Pod {
        let mut v = serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": {"containers": [{"name": "c"}]}
        });
        for (k, val) in extra.as_object().unwrap() {
            v["spec"][k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn cluster_first_searches_the_namespace() {
        let c = dns_config(
            &pod(serde_json::json!({})),
            &["10.43.0.10".parse().unwrap()],
            "cluster.local",
        );
        assert_eq!(c.servers, ["10.43.0.10"]);
        assert_eq!(
            &c.searches[..3],
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert_eq!(c.options, ["ndots:5"]);
        let none = dns_config(
            &pod(
                serde_json::json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]}}),
            ),
            &["10.43.0.10".parse().unwrap()],
            "cluster.local",
        );
        assert_eq!(none.servers, ["1.1.1.1"]);
        assert_eq!(none.options, ["ndots:2"]);
    }

    #[test]
    fn hosts_and_hostnames() {
        let p = pod(
            serde_json::json!({"hostname": "db", "subdomain": "dbs", "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a", "b"]}]}),
        );
        let (h, f) = hostname(&p, "cluster.local");
        assert_eq!(h, "db");
        assert_eq!(f.as_deref(), Some("db.dbs.shop.svc.cluster.local"));
        let hosts = hosts_file(&p, &["10.42.0.5".parse().unwrap()], "cluster.local");
        assert!(hosts.contains("10.42.0.5\tdb.dbs.shop.svc.cluster.local\tdb\n"));
        assert!(hosts.contains("1.2.3.4\ta\tb\n"));
        assert_eq!(
            hostname(&pod(serde_json::json!({})), "cluster.local").0,
            "web-0"
        );
    }
}
