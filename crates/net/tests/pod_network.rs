//! The bridge pod network against real namespaces (root): sandboxes get distinct addresses,
//! reach each other through the node, keep their address on a repeated setup, release it on
//! teardown, and lose it when their namespace vanishes without a teardown.

mod support;

use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::Arc;

use berth_cri::{NetworkAttachment, PodNetwork};
use berth_net::{BridgeNetwork, PodNetworkConfig};
use support::{TestNetns, block_on_in, require_root, unique_name};

fn attachment(id: &str, ns: &TestNetns) -> NetworkAttachment {
    NetworkAttachment {
        sandbox_id: id.to_string(),
        pod_name: format!("pod-{id}"),
        pod_namespace: "default".into(),
        pod_uid: format!("uid-{id}"),
        netns: ns.path(),
        port_mappings: vec![],
    }
}

fn config(state: &std::path::Path, bridge: &str) -> PodNetworkConfig {
    PodNetworkConfig {
        bridge: bridge.to_string(),
        state_dir: state.to_path_buf(),
        mtu: Some(1400),
        cluster_cidr: "10.42.0.0/16".parse().unwrap(),
        service_cidr: "10.43.0.0/16".parse().unwrap(),
    }
}

fn ipv4(ips: &[IpAddr]) -> String {
    assert_eq!(ips.len(), 1, "{ips:?}");
    ips[0].to_string()
}

/// Accepts one connection in `server` and connects from `client` to `ip:port`.
fn tcp_reaches(client: &TestNetns, server: &TestNetns, ip: &str, port: u16) -> bool {
    let listener = server.run(move || TcpListener::bind(("0.0.0.0", port)).expect("bind"));
    let addr = format!("{ip}:{port}");
    let ok = client.run(move || {
        TcpStream::connect_timeout(&addr.parse().unwrap(), std::time::Duration::from_secs(3))
            .is_ok()
    });
    drop(listener);
    ok
}

#[test]
fn sandboxes_are_connected_released_and_garbage_collected() {
    require_root();
    let node = Arc::new(TestNetns::new("bnn"));
    let s1 = TestNetns::new("bns");
    let s2 = TestNetns::new("bns");
    let s3 = TestNetns::new("bns");
    let state = tempfile::tempdir().unwrap();
    let bridge = unique_name("bb");
    let cfg = config(state.path(), &bridge);
    let node2 = node.clone();
    // One runtime inside the node's namespace for the whole scenario (the netlink
    // connection lives on it).
    block_on_in(&node, move || async move {
        let node = node2;
        let (a1, a2, a3) = (
            attachment("s1", &s1),
            attachment("s2", &s2),
            attachment("s3", &s3),
        );
        let net = BridgeNetwork::new(cfg).unwrap();
        assert!(net.ready().is_err());
        let err = net.setup(&a1).await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        net.set_pod_cidr("10.42.7.0/24").await.unwrap();
        net.ready().unwrap();
        let ip1 = ipv4(&net.setup(&a1).await.unwrap());
        let ip2 = ipv4(&net.setup(&a2).await.unwrap());
        let ip3 = ipv4(&net.setup(&a3).await.unwrap());
        // A repeated setup keeps the address and the link.
        assert_eq!(ipv4(&net.setup(&a1).await.unwrap()), ip1);
        assert_eq!(ip1, "10.42.7.2");
        assert_eq!(ip2, "10.42.7.3");
        assert_eq!(ip3, "10.42.7.4");

        // Inside a sandbox: eth0 with a /32, the MTU, routes through the gateway.
        let addr = s1.exec(&["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
        assert!(addr.contains("10.42.7.2/32"), "{addr}");
        let link = s1.exec(&["ip", "-o", "link", "show", "dev", "eth0"]);
        assert!(link.contains("mtu 1400") && link.contains("UP"), "{link}");
        let routes = s1.exec(&["ip", "-4", "route"]);
        assert!(
            routes.contains("default via 10.42.7.1 dev eth0"),
            "{routes}"
        );
        // Node side: bridge address, hairpin ports, service CIDR routed onto the bridge.
        let baddr = node.exec(&["ip", "-o", "-4", "addr", "show", "dev", &bridge]);
        assert!(baddr.contains("10.42.7.1/24"), "{baddr}");
        let ports = node.exec(&["ip", "-d", "link", "show", "master", &bridge]);
        assert_eq!(ports.matches("hairpin on").count(), 3, "{ports}");
        let nroutes = node.exec(&["ip", "-4", "route", "show", "proto", "98"]);
        assert!(
            nroutes.contains(&format!("10.43.0.0/16 dev {bridge}")),
            "{nroutes}"
        );
        assert_eq!(
            node.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(),
            "1"
        );

        // Pod to pod (routed by the node), node to pod.
        assert!(tcp_reaches(&s1, &s2, &ip2, 8080));
        assert!(tcp_reaches(&s2, &s1, &ip1, 8081));
        assert!(tcp_reaches(&node, &s3, &ip3, 8082));

        // Teardown releases; a second teardown is fine; a sandbox that vanished without a
        // teardown loses its address to the garbage collector.
        let s3_name = s3.name.clone();
        drop(s3);
        net.teardown(&a1).await.unwrap();
        net.teardown(&a1).await.unwrap();
        assert_eq!(
            net.garbage_collect().await.unwrap(),
            1,
            "{s3_name}'s address"
        );
        let held: Vec<String> = net
            .leases()
            .unwrap()
            .iter()
            .map(|(ip, _)| ip.to_string())
            .collect();
        assert_eq!(held, vec![ip2.clone()], "only s2 still holds an address");
        let (present, _) =
            node.try_exec(&["ip", "link", "show", &berth_net::host_interface_name("s1")]);
        assert!(!present, "the host end of s1 was removed");
        let (present, _) = s1.try_exec(&["ip", "link", "show", "eth0"]);
        assert!(!present, "eth0 left s1 with its pair");

        // A new sandbox does not get s1's address back at once.
        let s4 = TestNetns::new("bns");
        let ip4 = ipv4(&net.setup(&attachment("s4", &s4)).await.unwrap());
        assert_eq!(ip4, "10.42.7.5");

        // A different podCIDR releases every address outside it.
        net.set_pod_cidr("10.42.8.0/24").await.unwrap();
        assert_eq!(net.leases().unwrap().len(), 0);
        let baddr = node.exec(&["ip", "-o", "-4", "addr", "show", "dev", &bridge]);
        assert!(
            baddr.contains("10.42.8.1/24") && !baddr.contains("10.42.7.1"),
            "{baddr}"
        );
    });
}

#[test]
fn bad_input_is_refused_with_the_field_named() {
    require_root();
    let node = TestNetns::new("bnn");
    let state = tempfile::tempdir().unwrap();
    let cfg = config(state.path(), &unique_name("bb"));
    let missing = NetworkAttachment {
        sandbox_id: "gone".into(),
        pod_name: "p".into(),
        pod_namespace: "default".into(),
        pod_uid: "u".into(),
        netns: "/run/netns/does-not-exist-berth".into(),
        port_mappings: vec![],
    };
    block_on_in(&node, move || async move {
        let net = BridgeNetwork::new(cfg).unwrap();
        let e = net.set_pod_cidr("fd00::/64").await.unwrap_err();
        assert!(e.to_string().contains("podCIDR"), "{e}");
        let e = net.set_pod_cidr("192.168.0.0/24").await.unwrap_err();
        assert!(e.to_string().contains("spec.podCIDR"), "{e}");
        net.set_pod_cidr("10.42.1.0/24").await.unwrap();
        let e = net.setup(&missing).await.unwrap_err();
        assert!(e.to_string().contains("does-not-exist-berth"), "{e}");
        assert!(net.leases().unwrap().is_empty(), "nothing half-written");
    });
}

/// Two nodes on one link: each routes the other's podCIDR via its node IP, so pods reach
/// pods across nodes with their own addresses; departed nodes' routes go away.
#[test]
fn pods_reach_pods_on_other_nodes_through_peer_routes() {
    require_root();
    let n1 = Arc::new(TestNetns::new("bnn"));
    let n2 = Arc::new(TestNetns::new("bnn"));
    let (h1, h2) = (unique_name("bl"), unique_name("bl"));
    support::run(
        "ip",
        &[
            "link", "add", &h1, "netns", &n1.name, "type", "veth", "peer", "name", &h2, "netns",
            &n2.name,
        ],
    );
    n1.exec(&["ip", "addr", "add", "172.31.250.1/24", "dev", &h1]);
    n1.exec(&["ip", "link", "set", &h1, "up"]);
    n2.exec(&["ip", "addr", "add", "172.31.250.2/24", "dev", &h2]);
    n2.exec(&["ip", "link", "set", &h2, "up"]);
    let p1 = TestNetns::new("bns");
    let p2 = TestNetns::new("bns");
    let (st1, st2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (c1, c2) = (
        config(st1.path(), &unique_name("bb")),
        config(st2.path(), &unique_name("bb")),
    );
    let (a1, a2) = (attachment("p1", &p1), attachment("p2", &p2));
    let peer = |node: &str, cidr: &str, ip: &str| berth_net::PeerRoute {
        node: node.into(),
        pod_cidr: cidr.parse().unwrap(),
        node_ip: ip.parse().unwrap(),
    };
    let (r1, r2) = (
        vec![
            peer("n2", "10.42.2.0/24", "172.31.250.2"),
            peer("bad", "10.42.9.0/24", "192.0.2.1"),
        ],
        vec![peer("n1", "10.42.1.0/24", "172.31.250.1")],
    );
    // Each node's network lives on a runtime inside its namespace, on its own thread.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<String>();
    let n2c = n2.clone();
    let node2 = std::thread::spawn(move || {
        block_on_in(&n2c, move || async move {
            let net = BridgeNetwork::new(c2).unwrap();
            net.set_pod_cidr("10.42.2.0/24").await.unwrap();
            let ip = ipv4(&net.setup(&a2).await.unwrap());
            net.sync_peer_routes(&r2).await.unwrap();
            ready_tx.send(ip).unwrap();
            let _ = tokio::task::spawn_blocking(move || rx.recv()).await;
        })
    });
    let ip2 = ready_rx.recv().unwrap();
    let n1c = n1.clone();
    block_on_in(&n1c, move || async move {
        let net = BridgeNetwork::new(c1).unwrap();
        net.set_pod_cidr("10.42.1.0/24").await.unwrap();
        let ip1 = ipv4(&net.setup(&a1).await.unwrap());
        // The unreachable peer is skipped; the good one is routed.
        assert_eq!(net.sync_peer_routes(&r1).await.unwrap(), 1);
        assert_eq!(net.sync_peer_routes(&r1).await.unwrap(), 0, "converged");
        let routes = n1.exec(&["ip", "-4", "route", "show", "proto", "98"]);
        assert!(routes.contains("10.42.2.0/24 via 172.31.250.2"), "{routes}");
        assert!(tcp_reaches(&p1, &p2, &ip2, 9000), "pod to pod across nodes");
        assert!(tcp_reaches(&p2, &p1, &ip1, 9001), "and back");
        // The peer departs: its route goes; the service route stays.
        assert_eq!(net.sync_peer_routes(&[]).await.unwrap(), 1);
        let routes = n1.exec(&["ip", "-4", "route", "show", "proto", "98"]);
        assert!(!routes.contains("10.42.2.0"), "{routes}");
        assert!(routes.contains("10.43.0.0/16"), "{routes}");
        // Nothing is removed while a sandbox holds an address; then everything is.
        assert!(!net.remove_if_unused().await.unwrap());
        net.teardown(&a1).await.unwrap();
        assert!(net.remove_if_unused().await.unwrap());
        let routes = n1.exec(&["ip", "-4", "route", "show", "proto", "98"]);
        assert!(routes.trim().is_empty(), "{routes}");
        let links = n1.exec(&["ip", "-o", "link"]);
        assert_eq!(
            links.lines().count(),
            2,
            "only lo and the uplink are left: {links}"
        );
    });
    tx.send(()).unwrap();
    node2.join().unwrap();
}
