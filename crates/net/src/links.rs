//! Small netlink operations on links, addresses and routes of one namespace (the namespace
//! of the handle's socket).

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::error::{NetError, Result, netlink_errno};

/// The routing protocol number berth marks its routes with (`ip route show proto 98`), so it
/// finds and removes exactly its own routes.
pub const ROUTE_PROTOCOL: u8 = 98;

/// A link by name, if it exists.
pub async fn link_by_name(handle: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(l) => Ok(l),
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(NetError::netlink(format!("looking up link {name}"), e)),
    }
}

/// The link's index.
pub async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>> {
    Ok(link_by_name(handle, name).await?.map(|l| l.header.index))
}

pub fn is_up(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Up)
}

pub fn controller(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(i) => Some(*i),
        _ => None,
    })
}

pub fn mtu(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

fn is_missing(e: &rtnetlink::Error) -> bool {
    netlink_errno(e).is_some_and(|c| c == libc::ENODEV || c == libc::ENOENT || c == libc::ESRCH)
}

fn is_exists(e: &rtnetlink::Error) -> bool {
    netlink_errno(e) == Some(libc::EEXIST)
}

/// Creates the bridge if missing, sets its MTU and brings it up; returns its index.
pub async fn ensure_bridge(handle: &Handle, name: &str, mtu_value: u32) -> Result<u32> {
    if link_by_name(handle, name).await?.is_none() {
        match handle
            .link()
            .add(LinkBridge::new(name).mtu(mtu_value).build())
            .execute()
            .await
        {
            Ok(()) => {}
            Err(e) if is_exists(&e) => {}
            Err(e) => return Err(NetError::netlink(format!("creating bridge {name}"), e)),
        }
    }
    let link = link_by_name(handle, name)
        .await?
        .ok_or_else(|| NetError::Internal(format!("bridge {name} vanished after creation")))?;
    let index = link.header.index;
    if mtu(&link) != Some(mtu_value) || !is_up(&link) {
        handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .mtu(mtu_value)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| NetError::netlink(format!("setting up bridge {name}"), e))?;
    }
    Ok(index)
}

/// Makes `want` the only IPv4 addresses of the link.
pub async fn set_ipv4_addresses(handle: &Handle, index: u32, want: &[Ipv4Net]) -> Result<()> {
    let current: Vec<_> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetError::netlink("listing addresses", e))?;
    let mut present = Vec::new();
    for msg in current {
        if msg.header.index != index {
            continue;
        }
        let addr = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(IpAddr::V4(ip)) | AddressAttribute::Address(IpAddr::V4(ip)) => {
                Some(*ip)
            }
            _ => None,
        });
        let Some(ip) = addr else { continue };
        let net = Ipv4Net::new(ip, msg.header.prefix_len)
            .map_err(|e| NetError::Internal(e.to_string()))?;
        if want.contains(&net) {
            present.push(net);
        } else {
            handle
                .address()
                .del(msg)
                .execute()
                .await
                .map_err(|e| NetError::netlink(format!("removing address {net}"), e))?;
        }
    }
    for net in want {
        if present.contains(net) {
            continue;
        }
        match handle
            .address()
            .add(index, IpAddr::V4(net.addr()), net.prefix_len())
            .execute()
            .await
        {
            Ok(()) => {}
            Err(e) if is_exists(&e) => {}
            Err(e) => return Err(NetError::netlink(format!("adding address {net}"), e)),
        }
    }
    Ok(())
}

/// Deletes a link by name; `false` if it did not exist.
pub async fn delete_link(handle: &Handle, name: &str) -> Result<bool> {
    let Some(index) = link_index(handle, name).await? else {
        return Ok(false);
    };
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if is_missing(&e) => Ok(false),
        Err(e) => Err(NetError::netlink(format!("deleting link {name}"), e)),
    }
}

/// Creates a veth pair: `name` in this namespace, a port of `bridge` and up; `peer` in the
/// namespace open at `netns`. One request for what took four (create, move the peer,
/// enslave, bring up), each a round trip through the node's busy runtime.
pub async fn add_veth_into(
    handle: &Handle,
    name: &str,
    peer: &str,
    mtu_value: u32,
    netns: std::os::fd::RawFd,
    bridge: u32,
) -> Result<()> {
    let mut msg = LinkVeth::new(name, peer)
        .mtu(mtu_value)
        .controller(bridge)
        .up()
        .build();
    // The peer is made in the namespace at `netns` (`ip link add … peer name … netns …`):
    // moving a link between namespaces afterwards waits for an RCU grace period under the
    // kernel's RTNL lock (~16 ms each here), which serialised a burst of pod starts.
    let peer_msg = msg.attributes.iter_mut().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter_mut().find_map(|i| match i {
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p),
            _ => None,
        }),
        _ => None,
    });
    match peer_msg {
        Some(p) => p.attributes.push(LinkAttribute::NetNsFd(netns)),
        None => return Err(NetError::Internal("veth message without a peer".into())),
    }
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(|e| NetError::netlink(format!("creating veth {name}"), e))
}

/// Turns hairpin mode on for a bridge port (a pod reaching its own Service comes back
/// through the port it left by).
pub async fn set_hairpin(handle: &Handle, name: &str) -> Result<()> {
    let index = link_index(handle, name)
        .await?
        .ok_or_else(|| NetError::Internal(format!("link {name} vanished")))?;
    handle
        .link()
        .set_port(LinkBridgePort::new(index).hairpin(true).build())
        .execute()
        .await
        .map_err(|e| NetError::netlink(format!("hairpin mode on {name}"), e))
}

pub async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<()> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| NetError::netlink(format!("bringing {name} up"), e))
}

/// Renames a (down) link and sets its MTU.
pub async fn rename(handle: &Handle, name: &str, new_name: &str, mtu_value: u32) -> Result<u32> {
    let index = link_index(handle, name)
        .await?
        .ok_or_else(|| NetError::Internal(format!("link {name} not found in the sandbox")))?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .name(new_name.to_string())
                .mtu(mtu_value)
                .build(),
        )
        .execute()
        .await
        .map_err(|e| NetError::netlink(format!("renaming {name} to {new_name}"), e))?;
    Ok(index)
}

/// A route berth owns: destination, optional gateway, optional device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OwnedRoute {
    pub destination: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub device: Option<u32>,
}

fn route_message(route: &OwnedRoute) -> RouteMessage {
    let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(route.destination.addr(), route.destination.prefix_len())
        .protocol(RouteProtocol::Other(ROUTE_PROTOCOL));
    if let Some(gw) = route.gateway {
        b = b.gateway(gw);
    } else {
        b = b.scope(RouteScope::Link);
    }
    if let Some(dev) = route.device {
        b = b.output_interface(dev);
    }
    b.build()
}

/// Adds (or replaces) a route.
pub async fn replace_route(handle: &Handle, route: &OwnedRoute) -> Result<()> {
    handle
        .route()
        .add(route_message(route))
        .replace()
        .execute()
        .await
        .map_err(|e| NetError::netlink(format!("adding route to {}", route.destination), e))
}

/// Adds a route without berth's protocol mark (inside sandboxes).
pub async fn add_plain_route(
    handle: &Handle,
    destination: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    device: u32,
) -> Result<()> {
    let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(destination.addr(), destination.prefix_len())
        .output_interface(device);
    b = match gateway {
        Some(gw) => b.gateway(gw),
        None => b.scope(RouteScope::Link),
    };
    match handle.route().add(b.build()).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_exists(&e) => Ok(()),
        Err(e) => Err(NetError::netlink(
            format!("adding route to {destination}"),
            e,
        )),
    }
}

/// The main table's IPv4 routes marked with berth's protocol.
pub async fn owned_routes(handle: &Handle) -> Result<Vec<(OwnedRoute, RouteMessage)>> {
    let all: Vec<RouteMessage> = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetError::netlink("listing routes", e))?;
    let mut out = Vec::new();
    for msg in all {
        if msg.header.protocol != RouteProtocol::Other(ROUTE_PROTOCOL)
            || msg.header.kind != RouteType::Unicast
        {
            continue;
        }
        let mut dst = Ipv4Addr::UNSPECIFIED;
        let mut gateway = None;
        let mut device = None;
        for a in &msg.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = *ip,
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
                RouteAttribute::Oif(i) => device = Some(*i),
                _ => {}
            }
        }
        let Ok(destination) = Ipv4Net::new(dst, msg.header.destination_prefix_length) else {
            continue;
        };
        out.push((
            OwnedRoute {
                destination,
                gateway,
                device: if gateway.is_some() { None } else { device },
            },
            msg,
        ));
    }
    Ok(out)
}

pub async fn delete_route(handle: &Handle, msg: RouteMessage) -> Result<()> {
    match handle.route().del(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_missing(&e) => Ok(()),
        Err(e) => Err(NetError::netlink("deleting route", e)),
    }
}

/// The MTU of the interface holding the main table's IPv4 default route, if there is one.
pub async fn default_route_mtu(handle: &Handle) -> Result<Option<u32>> {
    let all: Vec<RouteMessage> = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetError::netlink("listing routes", e))?;
    let Some(oif) = all
        .iter()
        .filter(|r| r.header.destination_prefix_length == 0 && r.header.kind == RouteType::Unicast)
        .flat_map(|r| r.attributes.iter())
        .find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        })
    else {
        return Ok(None);
    };
    let mut links = handle.link().get().match_index(oif).execute();
    Ok(links
        .try_next()
        .await
        .map_err(|e| NetError::netlink("reading the uplink", e))?
        .as_ref()
        .and_then(mtu))
}
