//! Routes to the other nodes' pod networks: `<their podCIDR> via <their node IP>`, marked with
//! berth's routing protocol so that exactly berth's routes are added, replaced and removed.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rtnetlink::Handle;

use crate::error::Result;
use crate::links::{self, OwnedRoute};

/// One other node's pod network and where to send it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PeerRoute {
    pub node: String,
    pub pod_cidr: Ipv4Net,
    pub node_ip: Ipv4Addr,
}

/// Makes berth's gateway routes exactly `peers`; routes through a device (the Service CIDR
/// route onto the bridge) are left alone. Returns the number of changes. A route that cannot
/// be added (its node IP is not on a directly connected network) is logged and skipped, so
/// one bad node does not keep the others unreachable.
pub async fn sync_peer_routes(handle: &Handle, peers: &[PeerRoute]) -> Result<usize> {
    let want: BTreeSet<OwnedRoute> = peers
        .iter()
        .map(|p| OwnedRoute {
            destination: p.pod_cidr,
            gateway: Some(p.node_ip),
            device: None,
        })
        .collect();
    let mut changes = 0;
    let mut have = BTreeSet::new();
    for (route, msg) in links::owned_routes(handle).await? {
        if route.gateway.is_none() {
            continue;
        }
        if want.contains(&route) {
            have.insert(route);
        } else {
            links::delete_route(handle, msg).await?;
            tracing::info!(destination = %route.destination, "removed the route of a departed node");
            changes += 1;
        }
    }
    for p in peers {
        let route = OwnedRoute {
            destination: p.pod_cidr,
            gateway: Some(p.node_ip),
            device: None,
        };
        if have.contains(&route) {
            continue;
        }
        match links::replace_route(handle, &route).await {
            Ok(()) => {
                tracing::info!(node = %p.node, pod_cidr = %p.pod_cidr, via = %p.node_ip, "route to a node's pods");
                changes += 1;
            }
            Err(e) => tracing::warn!(node = %p.node, error = %e, "cannot route to the node's pods"),
        }
    }
    Ok(changes)
}

/// Removes every route berth added (gateway and device routes), for `berth agent` cleanup.
pub async fn remove_all_routes(handle: &Handle) -> Result<usize> {
    let mut n = 0;
    for (_, msg) in links::owned_routes(handle).await? {
        links::delete_route(handle, msg).await?;
        n += 1;
    }
    Ok(n)
}
