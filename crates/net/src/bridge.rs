//! The bridge pod network: the `PodNetwork` implementation.
//!
//! Node side: bridge `berth0` holding the podCIDR's first address (the pods' gateway), IP
//! forwarding on, and a route for the Service CIDR onto the bridge, so that a packet to a
//! Service address that no NAT rule rewrote is dropped on the node (nothing answers ARP for
//! it) instead of following the default route out of the machine. Sandbox side: a veth pair
//! whose host end is a bridge port with hairpin on and whose other end becomes the sandbox's
//! `eth0` with a /32 address, an on-link route to the gateway and a default route through it.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use berth_cri::{NetworkAttachment, PodNetwork};
use ipnet::Ipv4Net;
use rtnetlink::Handle;

use crate::error::{NetError, Result};
use crate::ipam::{Ipam, Lease};
use crate::links::{self, OwnedRoute};
use crate::netns::{self, NetnsId};
use crate::routes::{self, PeerRoute};

/// How the node's pod network is set up.
#[derive(Debug, Clone)]
pub struct PodNetworkConfig {
    /// Bridge name (`berth0`).
    pub bridge: String,
    /// Where the address records live (`<data-dir>/agent/net/ipam`).
    pub state_dir: PathBuf,
    /// MTU of the bridge and the veth pairs; `None`: the MTU of the interface holding the
    /// default route, else 1500.
    pub mtu: Option<u32>,
    /// The whole cluster's pod network (a node's podCIDR must lie inside it).
    pub cluster_cidr: Ipv4Net,
    /// The Service network, routed onto the bridge so unrewritten packets stay on the node.
    pub service_cidr: Ipv4Net,
}

impl PodNetworkConfig {
    pub fn validate(&self) -> Result<()> {
        if self.bridge.is_empty() || self.bridge.len() > 15 {
            return Err(NetError::Config {
                field: "bridge",
                reason: format!(
                    "{:?} is not a valid interface name (1-15 bytes)",
                    self.bridge
                ),
            });
        }
        if let Some(m) = self.mtu
            && !(576..=65535).contains(&m)
        {
            return Err(NetError::Config {
                field: "mtu",
                reason: format!("{m} is outside 576..65535"),
            });
        }
        if self.cluster_cidr.contains(&self.service_cidr.network())
            || self.service_cidr.contains(&self.cluster_cidr.network())
        {
            return Err(NetError::Config {
                field: "service_cidr",
                reason: format!(
                    "{} overlaps the cluster CIDR {}",
                    self.service_cidr, self.cluster_cidr
                ),
            });
        }
        Ok(())
    }
}

/// What the node's pod CIDR gave.
#[derive(Debug, Clone, Copy)]
struct NodeNet {
    cidr: Ipv4Net,
    gateway: Ipv4Addr,
    bridge_index: u32,
    mtu: u32,
}

/// Exclusive use of the node-side netlink handle.
struct Netlink<'a> {
    _guard: tokio::sync::MutexGuard<'a, Option<Handle>>,
    handle: Handle,
}

impl std::ops::Deref for Netlink<'_> {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
    }
}

/// The bridge pod network of one node.
pub struct BridgeNetwork {
    config: PodNetworkConfig,
    ipam: Ipam,
    node: RwLock<Option<NodeNet>>,
    /// The node-side netlink connection; one request at a time (a netlink socket refuses
    /// a second dump while one is in progress).
    netlink: tokio::sync::Mutex<Option<Handle>>,
    /// Serialises node-level (re)configuration.
    configure: tokio::sync::Mutex<()>,
}

/// Name of the host end of a sandbox's veth pair: stable for a sandbox id, ≤ 15 bytes.
pub fn host_interface_name(sandbox_id: &str) -> String {
    format!("bv{:012x}", fnv1a(sandbox_id.as_bytes()) & 0xffff_ffff_ffff)
}

fn peer_interface_name(sandbox_id: &str) -> String {
    format!("bp{:012x}", fnv1a(sandbox_id.as_bytes()) & 0xffff_ffff_ffff)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl BridgeNetwork {
    pub fn new(config: PodNetworkConfig) -> Result<Arc<BridgeNetwork>> {
        config.validate()?;
        let ipam = Ipam::open(&config.state_dir.join("ipam"))?;
        ipam.clean_temporaries();
        Ok(Arc::new(BridgeNetwork {
            config,
            ipam,
            node: RwLock::new(None),
            netlink: tokio::sync::Mutex::new(None),
            configure: tokio::sync::Mutex::new(()),
        }))
    }

    pub fn config(&self) -> &PodNetworkConfig {
        &self.config
    }

    /// The node's podCIDR and gateway, once set.
    pub fn pod_cidr(&self) -> Option<(Ipv4Net, Ipv4Addr)> {
        self.node_net().map(|n| (n.cidr, n.gateway))
    }

    fn node_net(&self) -> Option<NodeNet> {
        *self.node.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The node-side netlink handle, exclusively until the guard is dropped.
    async fn handle(&self) -> Result<Netlink<'_>> {
        let mut guard = self.netlink.lock().await;
        if guard.is_none() {
            let (conn, handle, _) = rtnetlink::new_connection()
                .map_err(|e| NetError::io("opening netlink socket", "netlink", e))?;
            tokio::spawn(conn);
            *guard = Some(handle);
        }
        let handle = guard.clone().expect("set above");
        Ok(Netlink {
            _guard: guard,
            handle,
        })
    }

    /// Configures the node side for `cidr` (idempotent) and releases addresses that are
    /// outside it or whose sandbox namespace is gone.
    pub async fn configure(&self, cidr: Ipv4Net) -> Result<()> {
        let cidr = cidr.trunc();
        if !self.config.cluster_cidr.contains(&cidr) {
            return Err(NetError::invalid(
                "node",
                "spec.podCIDR",
                format!(
                    "{cidr} is not inside the cluster CIDR {}",
                    self.config.cluster_cidr
                ),
            ));
        }
        let gateway = cidr.hosts().next().ok_or_else(|| {
            NetError::invalid(
                "node",
                "spec.podCIDR",
                format!("{cidr} has no host addresses"),
            )
        })?;
        let _guard = self.configure.lock().await;
        let handle = self.handle().await?;
        let mtu = match self.config.mtu {
            Some(m) => m,
            None => links::default_route_mtu(&handle).await?.unwrap_or(1500),
        };
        let bridge_index = links::ensure_bridge(&handle, &self.config.bridge, mtu).await?;
        let gw_net = Ipv4Net::new(gateway, cidr.prefix_len())
            .map_err(|e| NetError::Internal(e.to_string()))?;
        links::set_ipv4_addresses(&handle, bridge_index, &[gw_net]).await?;
        netns::write_sysctl("net.ipv4.ip_forward", "1")?;
        // Fail closed: Service addresses without a NAT rule stay on the bridge.
        links::replace_route(
            &handle,
            &OwnedRoute {
                destination: self.config.service_cidr,
                gateway: None,
                device: Some(bridge_index),
            },
        )
        .await?;
        *self.node.write().unwrap_or_else(|p| p.into_inner()) = Some(NodeNet {
            cidr,
            gateway,
            bridge_index,
            mtu,
        });
        tracing::info!(pod_cidr = %cidr, bridge = %self.config.bridge, mtu, "pod network configured");
        drop(handle);
        drop(_guard);
        self.garbage_collect().await?;
        Ok(())
    }

    /// Releases the addresses (and host interfaces) of sandboxes whose namespace is gone, or
    /// that lie outside the node's current podCIDR. Returns how many were released.
    pub async fn garbage_collect(&self) -> Result<usize> {
        let cidr = self.node_net().map(|n| n.cidr);
        let released = self.ipam.release_where(|ip, lease| {
            if cidr.is_some_and(|c| !c.contains(&ip)) {
                return true;
            }
            match lease {
                None => true,
                Some(l) => match NetnsId::of(&l.netns) {
                    Ok(Some(now)) => l.netns_id.is_some_and(|then| then != now),
                    Ok(None) => true,
                    Err(_) => false,
                },
            }
        })?;
        if released.is_empty() {
            return Ok(0);
        }
        let handle = self.handle().await?;
        for (ip, lease) in &released {
            if let Some(l) = lease {
                links::delete_link(&handle, &l.host_interface).await?;
            }
            tracing::info!(%ip, sandbox = lease.as_ref().map(|l| l.sandbox_id.as_str()).unwrap_or("?"), "released the address of a vanished sandbox");
        }
        Ok(released.len())
    }

    /// Makes berth's routes to the other nodes' pod networks exactly `peers`.
    pub async fn sync_peer_routes(&self, peers: &[PeerRoute]) -> Result<usize> {
        let handle = self.handle().await?;
        routes::sync_peer_routes(&handle, peers).await
    }

    /// When no sandbox holds an address any more: removes the bridge and every route berth
    /// added, leaving the node's network as it was. Returns whether it did.
    pub async fn remove_if_unused(&self) -> Result<bool> {
        let _guard = self.configure.lock().await;
        if !self.ipam.leases()?.is_empty() {
            return Ok(false);
        }
        let handle = self.handle().await?;
        routes::remove_all_routes(&handle).await?;
        links::delete_link(&handle, &self.config.bridge).await?;
        *self.node.write().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!(bridge = %self.config.bridge, "pod network removed (no sandbox left)");
        Ok(true)
    }

    /// Every recorded address lease.
    pub fn leases(&self) -> Result<Vec<(Ipv4Addr, Option<Lease>)>> {
        Ok(self.ipam.leases()?.into_iter().collect())
    }

    async fn connect(&self, att: &NetworkAttachment) -> Result<Vec<IpAddr>> {
        let node = self.node_net().ok_or_else(|| NetError::NotReady {
            reason: "the node has no podCIDR yet".into(),
        })?;
        let netns_id = NetnsId::of(&att.netns)?.ok_or_else(|| {
            NetError::invalid(
                format!("sandbox {}", att.sandbox_id),
                "netns",
                format!("{} does not exist", att.netns.display()),
            )
        })?;
        let host_if = host_interface_name(&att.sandbox_id);
        let previous = self.ipam.find(&att.sandbox_id)?;
        let lease = Lease {
            sandbox_id: att.sandbox_id.clone(),
            pod: format!("{}/{}", att.pod_namespace, att.pod_name),
            netns: att.netns.clone(),
            netns_id: Some(netns_id),
            host_interface: host_if.clone(),
        };
        let t0 = std::time::Instant::now();
        let ip = self.ipam.acquire(node.cidr, node.gateway, &lease)?;
        let t_ipam = t0.elapsed();
        // One sandbox at a time: the kernel runs link changes one by one under its RTNL lock
        // anyway, and taken in turn the first pods of a burst are done first (with the
        // handle shared, a 100-pod burst in `bench/podstart` had p50 1.1 s instead of 0.85 s).
        let handle = self.handle().await?;
        let t_wait = t0.elapsed() - t_ipam;
        // Already connected to this very namespace: nothing to repair.
        if let Some((_, prev)) = &previous
            && prev.netns_id == Some(netns_id)
            && let Some(link) = links::link_by_name(&handle, &host_if).await?
            && links::controller(&link) == Some(node.bridge_index)
            && links::is_up(&link)
        {
            return Ok(vec![IpAddr::V4(ip)]);
        }
        match self.plug(handle, att, &host_if, ip, node).await {
            Ok(t_host) => {
                tracing::debug!(
                    sandbox = %att.sandbox_id,
                    ipam_ms = t_ipam.as_millis() as u64,
                    netlink_wait_ms = t_wait.as_millis() as u64,
                    host_ms = t_host.as_millis() as u64,
                    sandbox_side_ms = (t0.elapsed() - t_ipam - t_wait - t_host).as_millis() as u64,
                    "pod network connected"
                );
                Ok(vec![IpAddr::V4(ip)])
            }
            Err(e) => {
                let handle = self.handle().await?;
                let _ = links::delete_link(&handle, &host_if).await;
                let _ = self.ipam.release(&att.sandbox_id);
                Err(e)
            }
        }
    }

    async fn plug(
        &self,
        handle: Netlink<'_>,
        att: &NetworkAttachment,
        host_if: &str,
        ip: Ipv4Addr,
        node: NodeNet,
    ) -> Result<std::time::Duration> {
        let t0 = std::time::Instant::now();
        let peer = peer_interface_name(&att.sandbox_id);
        links::delete_link(&handle, host_if).await?;
        let ns = std::fs::File::open(&att.netns)
            .map_err(|e| NetError::io("opening network namespace", &att.netns, e))?;
        links::add_veth_into(
            &handle,
            host_if,
            &peer,
            node.mtu,
            ns.as_raw_fd(),
            node.bridge_index,
        )
        .await?;
        drop(ns);
        links::set_hairpin(&handle, host_if).await?;
        // The sandbox side uses its own socket: let other setups use the node's meanwhile.
        drop(handle);
        let t_host = t0.elapsed();
        let gateway = node.gateway;
        let mtu = node.mtu;
        netns::with_netns(&att.netns, move |h| async move {
            configure_sandbox(&h, &peer, ip, gateway, mtu).await
        })
        .await?;
        Ok(t_host)
    }

    async fn disconnect(&self, sandbox_id: &str) -> Result<()> {
        let handle = self.handle().await?;
        let name = match self.ipam.find(sandbox_id)? {
            Some((_, lease)) => lease.host_interface,
            None => host_interface_name(sandbox_id),
        };
        links::delete_link(&handle, &name).await?;
        if let Some((ip, _)) = self.ipam.release(sandbox_id)? {
            tracing::debug!(sandbox = sandbox_id, %ip, "released pod address");
        }
        Ok(())
    }
}

/// Inside the sandbox: the peer becomes `eth0` with a /32, the gateway on-link, the default
/// route through it; loopback up; ICMP redirects ignored (the node routes every packet).
async fn configure_sandbox(
    h: &Handle,
    peer: &str,
    ip: Ipv4Addr,
    gateway: Ipv4Addr,
    mtu: u32,
) -> Result<()> {
    if let Some(lo) = links::link_index(h, "lo").await? {
        links::set_up(h, lo, "lo").await?;
    }
    if links::link_index(h, "eth0").await?.is_some() {
        return Err(NetError::invalid(
            "sandbox",
            "netns",
            "the namespace already has an eth0 that berth did not create",
        ));
    }
    let index = links::rename(h, peer, "eth0", mtu).await?;
    let own = Ipv4Net::new(ip, 32).map_err(|e| NetError::Internal(e.to_string()))?;
    links::set_ipv4_addresses(h, index, &[own]).await?;
    links::set_up(h, index, "eth0").await?;
    let gw = Ipv4Net::new(gateway, 32).map_err(|e| NetError::Internal(e.to_string()))?;
    links::add_plain_route(h, gw, None, index).await?;
    links::add_plain_route(h, Ipv4Net::default(), Some(gateway), index).await?;
    if let Err(e) = netns::write_sysctl("net.ipv4.conf.eth0.accept_redirects", "0") {
        tracing::debug!(error = %e, "cannot turn off ICMP redirects in the sandbox");
    }
    Ok(())
}

#[async_trait::async_trait]
impl PodNetwork for BridgeNetwork {
    async fn set_pod_cidr(&self, cidr: &str) -> berth_cri::Result<()> {
        let net: Ipv4Net = cidr
            .parse()
            .map_err(|e| berth_cri::CriError::InvalidArgument {
                field: "podCIDR".into(),
                message: format!("{cidr:?}: {e} (berth's pod network is IPv4)"),
            })?;
        Ok(self.configure(net).await?)
    }

    async fn setup(&self, attachment: &NetworkAttachment) -> berth_cri::Result<Vec<IpAddr>> {
        Ok(self.connect(attachment).await?)
    }

    async fn teardown(&self, attachment: &NetworkAttachment) -> berth_cri::Result<()> {
        Ok(self.disconnect(&attachment.sandbox_id).await?)
    }

    fn ready(&self) -> std::result::Result<(), String> {
        match self.node_net() {
            Some(_) => Ok(()),
            None => Err("pod network: the node has no podCIDR yet".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_fit_and_differ() {
        let a = host_interface_name("0123456789abcdef0123456789abcdef");
        let b = host_interface_name("0123456789abcdef0123456789abcdee");
        assert!(a.len() <= 15 && b.len() <= 15, "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(a, host_interface_name("0123456789abcdef0123456789abcdef"));
        assert_ne!(a[2..], peer_interface_name("x")[2..]);
    }

    #[test]
    fn config_rejects_overlaps_and_bad_mtu() {
        let mut c = PodNetworkConfig {
            bridge: "berth0".into(),
            state_dir: "/tmp/x".into(),
            mtu: None,
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            service_cidr: "10.43.0.0/16".parse().unwrap(),
        };
        c.validate().unwrap();
        c.service_cidr = "10.42.128.0/17".parse().unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("overlaps"));
        c.service_cidr = "10.43.0.0/16".parse().unwrap();
        c.mtu = Some(100);
        assert!(c.validate().unwrap_err().to_string().contains("mtu"));
        c.mtu = None;
        c.bridge = "a-very-long-bridge-name".into();
        assert!(c.validate().is_err());
    }
}
