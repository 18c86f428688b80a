//! berth-net: the node's networking.
//!
//! - **Pod network** ([`BridgeNetwork`], the `PodNetwork` seam of `berth-cri`): bridge
//!   `berth0` with the node's podCIDR gateway, one veth pair per sandbox, addresses from a
//!   persisted IPAM that cannot hand out one address twice and releases addresses whose
//!   namespace is gone; routes to the other nodes' podCIDRs via their node IPs. Pods get a
//!   /32 and a default route through the bridge's address, so all pod traffic, even between
//!   pods of one node, is routed by the node and passes its nftables hooks (Service NAT and
//!   NetworkPolicy need no `br_netfilter`).
//! - **Services and NetworkPolicy** ([`ServiceRules`]): one nftables table per node,
//!   rewritten in one transaction from Services, EndpointSlices and policies (ClusterIP,
//!   NodePort, LoadBalancer and external IPs, even spread with `numgen`, ClientIP affinity in
//!   timeout sets that survive rewrites, traffic policies, rejection without endpoints,
//!   fail-closed for unknown Service addresses, masquerade for hairpin and egress).
//! - **Cluster DNS**: a node-local server on the bridge address that the cluster DNS address
//!   is DNATed to; cluster names from the watch caches, everything else relayed to the
//!   host's resolvers.
//! - **Ingress**: an HTTP/1.1 + HTTP/2 reverse proxy (hyper) with SNI certificates from
//!   Secrets, round robin over ready endpoints and retries on connect failures.
//! - **Cluster side** ([`LoadBalancerController`], [`ensure_cluster_objects`],
//!   [`ClusterNetworkSettings`]): load-balancer and Ingress status like k3s's ServiceLB, the
//!   `kube-dns` Service, berth's IngressClass, the settings agents read.
//!
//! [`NodeNetwork`] runs the node-side parts from shared watch caches, level-triggered.
//!
//! Depends on `berth-cri` (the seam it implements) and talks to the cluster only through
//! kube clients. Links, addresses and routes are configured through netlink (rtnetlink); a
//! sandbox's namespace is entered from a dedicated thread, because a netlink socket belongs
//! to the namespace of the thread that opened it. nftables rules are typed (`nftables`
//! crate) and applied as JSON by `nft`; DNS messages are hickory-proto's.

mod bridge;
mod cluster_objects;
mod dns;
mod error;
mod ingress;
mod ingress_class;
mod ipam;
mod lb;
mod links;
mod netns;
pub mod nft;
mod node;
mod policy;
mod proxy;
mod routes;
mod stores;
mod watch;

pub use bridge::{BridgeNetwork, PodNetworkConfig, host_interface_name};
pub use cluster_objects::{ClusterNetworkSettings, ensure_cluster_objects};
pub use error::{NetError, Result};
pub use ingress::proxy::IngressConfig;
pub use ipam::{Ipam, Lease};
pub use lb::{LoadBalancerConfig, LoadBalancerController};
pub use netns::{NetnsId, with_netns};
pub use nft::Ruleset;
pub use node::{DnsSettings, NodeNetwork, NodeNetworkConfig, NodeNetworkStatus};
pub use proxy::sync::{ProxyConfig, ServiceRules, SyncReport};
pub use routes::PeerRoute;
