//! The pod-network seam: what a runtime calls, once a sandbox's network namespace exists, to
//! connect it to the node's pod network (bridge, veth, IPAM) and to release it again.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::error::Result;
use crate::types::PortMapping;

/// One sandbox's network namespace, as the pod network sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAttachment {
    pub sandbox_id: String,
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: String,
    /// A file naming the namespace (a bind mount of the namespace), for `setns`.
    pub netns: PathBuf,
    pub port_mappings: Vec<PortMapping>,
}

/// Connects sandboxes to the pod network. Implementations are idempotent: `setup` of an
/// attached sandbox returns its addresses again, `teardown` of a detached one succeeds.
#[async_trait::async_trait]
pub trait PodNetwork: Send + Sync + 'static {
    /// The node's pod CIDR (from the Node object), before any `setup`.
    async fn set_pod_cidr(&self, cidr: &str) -> Result<()>;
    /// Attaches the namespace; returns the pod's IPs (none: the pod has only loopback).
    async fn setup(&self, attachment: &NetworkAttachment) -> Result<Vec<IpAddr>>;
    /// Detaches the namespace and releases its addresses.
    async fn teardown(&self, attachment: &NetworkAttachment) -> Result<()>;
    /// `Err(reason)` while the network cannot attach pods (the node is then not Ready).
    fn ready(&self) -> std::result::Result<(), String>;
}
