//! berth-net: the node's networking.
//!
//! - **Pod network** ([`BridgeNetwork`], the `PodNetwork` seam of `berth-cri`): bridge
//!   `berth0` with the node's podCIDR gateway, one veth pair per sandbox, addresses from a
//!   persisted IPAM that cannot hand out one address twice and releases addresses whose
//!   namespace is gone. Pods get a /32 and a default route through the bridge's address, so
//!   all pod traffic, even between pods of one node, is routed by the node and passes its
//!   nftables hooks (Service NAT and NetworkPolicy need no `br_netfilter`).
//!
//! Depends on `berth-cri` (the seam it implements) and talks to the cluster only through
//! kube clients. Links, addresses and routes are configured through netlink (rtnetlink); a
//! sandbox's namespace is entered from a dedicated thread, because a netlink socket belongs
//! to the namespace of the thread that opened it.

mod bridge;
mod error;
mod ipam;
mod links;
mod netns;
mod routes;

pub use bridge::{BridgeNetwork, PodNetworkConfig, host_interface_name};
pub use error::{NetError, Result};
pub use ipam::{Ipam, Lease};
pub use netns::{NetnsId, with_netns};
pub use routes::PeerRoute;
