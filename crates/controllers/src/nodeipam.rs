//! Node IPAM: gives every node a pod network (`spec.podCIDR`, `spec.podCIDRs`) — one subnet
//! of the cluster CIDR per node (a /24 of 10.42.0.0/16 by default, DESIGN §6) — the lowest
//! one no node holds. Allocations are written with the node's resourceVersion as a
//! precondition, and remembered until the watch shows them, so two nodes never get the
//! same subnet.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};

/// Settings of node IPAM.
#[derive(Clone, Debug)]
pub struct NodeIpamConfig {
    /// The cluster's pod network, as `a.b.c.d/len`.
    pub cluster_cidr: String,
    /// Prefix length of each node's subnet.
    pub node_mask: u8,
}

impl Default for NodeIpamConfig {
    fn default() -> Self {
        NodeIpamConfig {
            cluster_cidr: "10.42.0.0/16".into(),
            node_mask: 24,
        }
    }
}

/// An IPv4 network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Net {
    addr: u32,
    len: u8,
}

impl Net {
    pub fn parse(s: &str) -> std::result::Result<Net, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| format!("{s:?}: bad address"))?;
        let len: u8 = l.parse().map_err(|_| format!("{s:?}: bad prefix length"))?;
        if len > 32 {
            return Err(format!("{s:?}: prefix length over 32"));
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        Ok(Net {
            addr: u32::from(addr) & mask,
            len,
        })
    }

    /// The `i`-th subnet of length `len`.
    fn subnet(&self, len: u8, i: u32) -> Net {
        Net {
            addr: self.addr + (i << (32 - len)),
            len,
        }
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.len)
    }
}

impl NodeIpamConfig {
    pub fn validate(&self) -> Result<Net> {
        let net = Net::parse(&self.cluster_cidr).map_err(|reason| Error::Config {
            field: "node_ipam.cluster_cidr",
            reason,
        })?;
        if self.node_mask < net.len || self.node_mask > 30 || self.node_mask - net.len > 20 {
            return Err(Error::Config {
                field: "node_ipam.node_mask",
                reason: format!(
                    "/{} subnets of {} are not allocatable (need {}..=30 and at most 2^20 subnets)",
                    self.node_mask, net, net.len
                ),
            });
        }
        Ok(net)
    }
}

/// The lowest subnet that is neither `used` nor `taken`.
fn first_free(cluster: Net, mask: u8, used: &HashSet<String>) -> Option<Net> {
    let count = 1u32 << (mask - cluster.len);
    (0..count)
        .map(|i| cluster.subnet(mask, i))
        .find(|n| !used.contains(&n.to_string()))
}

struct Ctx {
    client: Client,
    recorder: EventRecorder,
    cluster: Net,
    mask: u8,
    nodes: Store<Node>,
    /// Allocations written but perhaps not yet seen in the watch.
    pending: Mutex<HashMap<String, String>>,
}

/// The node IPAM component.
pub struct NodeIpamController {
    config: NodeIpamConfig,
    client: Client,
    recorder: EventRecorder,
}

impl NodeIpamController {
    pub fn new(config: NodeIpamConfig, client: Client, recorder: EventRecorder) -> Result<Self> {
        config.validate()?;
        Ok(NodeIpamController {
            config,
            client,
            recorder,
        })
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let cluster = self.config.validate()?;
        let controller = Controller::new(
            Api::<Node>::all(self.client.clone()),
            watcher::Config::default(),
        );
        let ctx = Arc::new(Ctx {
            client: self.client,
            recorder: self.recorder,
            cluster,
            mask: self.config.node_mask,
            nodes: controller.store(),
            pending: Mutex::new(HashMap::new()),
        });
        controller
            // One at a time: allocations must not race each other.
            .with_config(kube::runtime::controller::Config::default().concurrency(1))
            .graceful_shutdown_on(shutdown.cancelled_owned())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| futures::future::ready(()))
            .await;
        Ok(())
    }
}

fn error_policy(n: Arc<Node>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(node = %n.name_any(), error = %err, "node ipam: will retry");
    Action::requeue(Duration::from_secs(1))
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action> {
    let name = node.name_any();
    if node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_some_and(|c| !c.is_empty())
    {
        ctx.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        return Ok(Action::await_change());
    }
    let mut used: HashSet<String> = ctx
        .nodes
        .state()
        .iter()
        .filter_map(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.clone()))
        .collect();
    {
        let mut pending = ctx.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|n, _| ctx.nodes.state().iter().any(|x| x.name_any() == *n));
        used.extend(pending.values().cloned());
    }
    let Some(cidr) = first_free(ctx.cluster, ctx.mask, &used) else {
        ctx.recorder.warning(
            &InvolvedObject::of(node.as_ref()),
            "CIDRNotAvailable",
            &format!("Node {name} status is now: CIDRNotAvailable"),
        );
        return Ok(Action::requeue(Duration::from_secs(30)));
    };
    let cidr = cidr.to_string();
    let api: Api<Node> = Api::all(ctx.client.clone());
    let patch = json!({"metadata": {"resourceVersion": node.resource_version()},
                       "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            ctx.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone(), cidr.clone());
            ctx.recorder.normal(
                &InvolvedObject::of(node.as_ref()),
                "CIDRAssignmentSucceeded",
                &format!("Node {name} was assigned pod network {cidr}"),
            );
            Ok(Action::await_change())
        }
        Err(e) if has_code(&e, 409) => Ok(Action::requeue(Duration::from_millis(100))),
        Err(e) if has_code(&e, 404) => Ok(Action::await_change()),
        Err(e) => Err(Error::api(
            format!("assigning a pod network to node {name}"),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_the_lowest_free_subnet() {
        let net = Net::parse("10.42.0.0/16").unwrap();
        let mut used = HashSet::new();
        assert_eq!(
            first_free(net, 24, &used).unwrap().to_string(),
            "10.42.0.0/24"
        );
        used.insert("10.42.0.0/24".to_string());
        used.insert("10.42.2.0/24".to_string());
        assert_eq!(
            first_free(net, 24, &used).unwrap().to_string(),
            "10.42.1.0/24"
        );
        let tiny = Net::parse("10.0.0.0/30").unwrap();
        let all: HashSet<String> = ["10.0.0.0/30".to_string()].into();
        assert!(first_free(tiny, 30, &all).is_none());
    }

    #[test]
    fn config_is_checked() {
        assert!(NodeIpamConfig::default().validate().is_ok());
        let bad = |c: &str, m| {
            NodeIpamConfig {
                cluster_cidr: c.into(),
                node_mask: m,
            }
            .validate()
            .is_err()
        };
        assert!(bad("10.42.0.0", 24));
        assert!(bad("10.42.0.0/16", 8));
        assert!(bad("10.42.0.0/16", 31));
        assert!(bad("300.1.0.0/16", 24));
        assert_eq!(
            Net::parse("10.42.7.9/16").unwrap().to_string(),
            "10.42.0.0/16"
        );
    }
}
