//! The load-balancer status controller (like k3s's ServiceLB): every `LoadBalancer` Service
//! without a `loadBalancerClass` is announced on the nodes — its `status.loadBalancer.ingress`
//! lists the ready nodes' addresses and each node DNATs `<node IP>:<port>` to the Service —
//! and every Ingress of berth's class gets the same addresses. When two LoadBalancer
//! Services want one port and protocol, the older keeps it and the newer stays pending, as
//! with k3s (a host port can serve one Service).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{NetError, Result};
use crate::ingress_class::IngressClassFilter;
use crate::watch::Watched;

/// What the controller announces.
#[derive(Debug, Clone)]
pub struct LoadBalancerConfig {
    /// Announce LoadBalancer Services (`--disable servicelb` turns it off).
    pub service_lb: bool,
    /// Announce Ingresses of this class (`None`: the Ingress proxy is disabled).
    pub ingress_class: Option<String>,
}

pub struct LoadBalancerController {
    client: Client,
    config: LoadBalancerConfig,
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The ready nodes' first IPv4 InternalIP (ExternalIP when none), sorted.
pub fn announced_ips(nodes: &[Arc<Node>]) -> Vec<Ipv4Addr> {
    let mut ips: BTreeSet<Ipv4Addr> = BTreeSet::new();
    for n in nodes.iter().filter(|n| node_ready(n)) {
        let Some(addrs) = n.status.as_ref().and_then(|s| s.addresses.as_ref()) else {
            continue;
        };
        let ip = addrs
            .iter()
            .filter(|a| a.type_ == "InternalIP")
            .chain(addrs.iter().filter(|a| a.type_ == "ExternalIP"))
            .find_map(|a| a.address.parse::<Ipv4Addr>().ok());
        ips.extend(ip);
    }
    ips.into_iter().collect()
}

fn is_ours(svc: &Service) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec.load_balancer_class.is_none()
        && svc.metadata.deletion_timestamp.is_none()
}

/// Desired `status.loadBalancer.ingress` of every LoadBalancer Service of ours, keyed by
/// `(namespace, name)`; losers of a port conflict get an empty list.
pub fn service_statuses(
    services: &[Arc<Service>],
    ips: &[Ipv4Addr],
) -> BTreeMap<(String, String), Vec<Ipv4Addr>> {
    let mut ours: Vec<&Arc<Service>> = services.iter().filter(|s| is_ours(s)).collect();
    ours.sort_by(|a, b| {
        (
            a.metadata.creation_timestamp.as_ref().map(|t| t.0),
            &a.metadata.namespace,
            &a.metadata.name,
        )
            .cmp(&(
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                &b.metadata.namespace,
                &b.metadata.name,
            ))
    });
    let mut taken: BTreeSet<(String, i32)> = BTreeSet::new();
    let mut out = BTreeMap::new();
    for svc in ours {
        let ports: Vec<(String, i32)> = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .map(|p| (p.protocol.clone().unwrap_or_else(|| "TCP".into()), p.port))
            .collect();
        let free = ports.iter().all(|p| !taken.contains(p));
        let key = (
            svc.metadata.namespace.clone().unwrap_or_default(),
            svc.metadata.name.clone().unwrap_or_default(),
        );
        if free {
            taken.extend(ports);
            out.insert(key, ips.to_vec());
        } else {
            tracing::warn!(service = %format!("{}/{}", key.0, key.1), "LoadBalancer port already used by an older Service: left pending");
            out.insert(key, Vec::new());
        }
    }
    out
}

fn ingress_json(ips: &[Ipv4Addr], with_mode: bool) -> Value {
    Value::Array(
        ips.iter()
            .map(|ip| {
                if with_mode {
                    json!({"ip": ip.to_string(), "ipMode": "VIP"})
                } else {
                    json!({"ip": ip.to_string()})
                }
            })
            .collect(),
    )
}

fn current_ips(v: Option<&Value>) -> Vec<String> {
    v.and_then(|x| x.as_array())
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("ip").and_then(|ip| ip.as_str()).map(str::to_string))
        .collect()
}

impl LoadBalancerController {
    pub fn new(config: LoadBalancerConfig, client: Client) -> LoadBalancerController {
        LoadBalancerController { client, config }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let (tx, mut rx) = watch::channel(0u64);
        let cfg = watcher::Config::default;
        let services: Watched<Service> = Watched::start(
            Api::all(self.client.clone()),
            cfg(),
            tx.clone(),
            shutdown.clone(),
        );
        let nodes: Watched<Node> = Watched::start(
            Api::all(self.client.clone()),
            cfg(),
            tx.clone(),
            shutdown.clone(),
        );
        let ingress = self.config.ingress_class.as_ref().map(|_| {
            (
                Watched::<Ingress>::start(
                    Api::all(self.client.clone()),
                    cfg(),
                    tx.clone(),
                    shutdown.clone(),
                ),
                Watched::<IngressClass>::start(
                    Api::all(self.client.clone()),
                    cfg(),
                    tx.clone(),
                    shutdown.clone(),
                ),
            )
        });
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = async {
                services.ready().await;
                nodes.ready().await;
                if let Some((i, c)) = &ingress {
                    i.ready().await;
                    c.ready().await;
                }
            } => {}
        }
        loop {
            let ips = announced_ips(&nodes.all());
            if let Err(e) = self.sync_services(&services.all(), &ips).await {
                tracing::warn!(error = %e, "load balancer status (will retry)");
            }
            if let (Some(class), Some((ings, classes))) = (&self.config.ingress_class, &ingress) {
                let filter = IngressClassFilter::new(class, &classes.all());
                if let Err(e) = self.sync_ingresses(&ings.all(), &filter, &ips).await {
                    tracing::warn!(error = %e, "ingress status (will retry)");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = rx.changed() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
            }
        }
    }

    async fn sync_services(&self, services: &[Arc<Service>], ips: &[Ipv4Addr]) -> Result<()> {
        if !self.config.service_lb {
            return Ok(());
        }
        for ((ns, name), want) in service_statuses(services, ips) {
            let Some(svc) = services.iter().find(|s| {
                s.metadata.namespace.as_deref() == Some(ns.as_str())
                    && s.metadata.name.as_deref() == Some(name.as_str())
            }) else {
                continue;
            };
            let current =
                serde_json::to_value(svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()))
                    .unwrap_or(Value::Null);
            let have = current_ips(current.get("ingress"));
            let want_s: Vec<String> = want.iter().map(|i| i.to_string()).collect();
            if have == want_s {
                continue;
            }
            let body = json!({"status": {"loadBalancer": {"ingress": ingress_json(&want, true)}}});
            let api: Api<Service> = Api::namespaced(self.client.clone(), &ns);
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => {
                    tracing::info!(service = %format!("{ns}/{name}"), ingress = ?want_s, "load balancer addresses")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    return Err(NetError::api(
                        format!("updating the status of service {ns}/{name}"),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    async fn sync_ingresses(
        &self,
        ingresses: &[Arc<Ingress>],
        filter: &IngressClassFilter,
        ips: &[Ipv4Addr],
    ) -> Result<()> {
        for ing in ingresses {
            if ing.metadata.deletion_timestamp.is_some() || !filter.is_ours(ing) {
                continue;
            }
            let ns = ing.metadata.namespace.clone().unwrap_or_default();
            let name = ing.metadata.name.clone().unwrap_or_default();
            let current =
                serde_json::to_value(ing.status.as_ref().and_then(|s| s.load_balancer.as_ref()))
                    .unwrap_or(Value::Null);
            let have = current_ips(current.get("ingress"));
            let want_s: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
            if have == want_s {
                continue;
            }
            let body = json!({"status": {"loadBalancer": {"ingress": ingress_json(ips, false)}}});
            let api: Api<Ingress> = Api::namespaced(self.client.clone(), &ns);
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    return Err(NetError::api(
                        format!("updating the status of ingress {ns}/{name}"),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ip: &str, ready: bool) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}],
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}))
            .unwrap(),
        )
    }

    fn svc(name: &str, created: &str, port: i32, extra: Value) -> Arc<Service> {
        let mut v = json!({"metadata": {"name": name, "namespace": "d", "creationTimestamp": created},
            "spec": {"type": "LoadBalancer", "ports": [{"port": port}]}});
        for (k, val) in extra.as_object().unwrap() {
            v["spec"][k] = val.clone();
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn ready_nodes_are_announced_and_older_services_keep_their_port() {
        let ips = announced_ips(&[
            node("b", "172.31.0.3", true),
            node("a", "172.31.0.2", true),
            node("c", "172.31.0.4", false),
        ]);
        assert_eq!(
            ips,
            vec![Ipv4Addr::new(172, 31, 0, 2), Ipv4Addr::new(172, 31, 0, 3)]
        );
        let services = vec![
            svc("new", "2026-01-02T00:00:00Z", 80, json!({})),
            svc("old", "2026-01-01T00:00:00Z", 80, json!({})),
            svc("other", "2026-01-03T00:00:00Z", 81, json!({})),
            svc(
                "classed",
                "2026-01-01T00:00:00Z",
                82,
                json!({"loadBalancerClass": "example.com/lb"}),
            ),
        ];
        let st = service_statuses(&services, &ips);
        assert_eq!(st[&("d".into(), "old".into())], ips);
        assert!(st[&("d".into(), "new".into())].is_empty());
        assert_eq!(st[&("d".into(), "other".into())], ips);
        assert!(!st.contains_key(&("d".into(), "classed".into())));
    }
}
