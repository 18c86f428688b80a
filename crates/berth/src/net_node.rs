//! berth's networking in the binary: on the server, the cluster-wide part (published
//! network settings, the `kube-dns` Service, berth's IngressClass, the load-balancer status
//! controller); on every node (the server's in-process agent and `berth agent`), the pod
//! network behind the runtime and the node component (routes, Service and NetworkPolicy
//! rules, cluster DNS, the Ingress proxy).
//!
//! Cluster-wide choices are made once, on the server (`--disable ingress|servicelb|dns`,
//! `--disable-network-policy`, the CIDRs), and reach agents through the API: the settings
//! ConfigMap, the presence of the `kube-dns` Service and of berth's IngressClass.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_net::{
    BridgeNetwork, ClusterNetworkSettings, DnsSettings, IngressConfig, LoadBalancerConfig,
    LoadBalancerController, NodeNetwork, NodeNetworkConfig, PodNetworkConfig,
};
use tokio_util::sync::CancellationToken;

/// Node-level networking flags (server and agent).
#[derive(clap::Args, Debug, Clone)]
pub struct NodeNetArgs {
    /// Where the cluster DNS finds its upstream resolvers.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// MTU of the pod network (default: the MTU of the default route's interface).
    #[arg(long)]
    pub pod_mtu: Option<u32>,
    /// Port of the Ingress proxy's HTTP listener.
    #[arg(long, default_value_t = 80)]
    pub ingress_http_port: u16,
    /// Port of the Ingress proxy's HTTPS listener.
    #[arg(long, default_value_t = 443)]
    pub ingress_https_port: u16,
    /// Address the Ingress proxy listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub ingress_bind_address: IpAddr,
}

/// Server-only (cluster-wide) networking flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerNetArgs {
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Do not enforce NetworkPolicy.
    #[arg(long)]
    pub disable_network_policy: bool,
    #[command(flatten)]
    pub node: NodeNetArgs,
}

/// What the server's cluster-wide networking needs.
pub struct ClusterNet<'a> {
    pub client: kube::Client,
    pub cluster_cidr: ipnet::Ipv4Net,
    pub service_cidr: ipnet::Ipv4Net,
    pub cluster_dns: IpAddr,
    pub disable: &'a [String],
    pub args: &'a ServerNetArgs,
}

fn disabled(list: &[String], names: &[&str]) -> bool {
    list.iter().any(|d| names.contains(&d.as_str()))
}

/// Publishes the settings and cluster objects, and starts the load-balancer status
/// controller; returns its task.
pub async fn start_cluster_network(
    c: ClusterNet<'_>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<berth_net::Result<()>>> {
    let IpAddr::V4(dns4) = c.cluster_dns else {
        anyhow::bail!(
            "--cluster-dns {}: berth's service network is IPv4",
            c.cluster_dns
        );
    };
    anyhow::ensure!(
        c.service_cidr.contains(&dns4),
        "--cluster-dns {dns4} is outside --service-cidr {}",
        c.service_cidr
    );
    let settings = ClusterNetworkSettings {
        cluster_cidr: c.cluster_cidr,
        service_cidr: c.service_cidr,
        cluster_dns: dns4,
        cluster_domain: c.args.cluster_domain.clone(),
        network_policy: !c.args.disable_network_policy,
    };
    settings.publish(&c.client).await?;
    let dns = (!disabled(c.disable, &["dns", "coredns"])).then_some(c.cluster_dns);
    let ingress = (!disabled(c.disable, &["ingress", "traefik"])).then_some("berth");
    berth_net::ensure_cluster_objects(&c.client, dns, ingress).await?;
    let lb = LoadBalancerController::new(
        LoadBalancerConfig {
            service_lb: !disabled(c.disable, &["servicelb"]),
            ingress_class: ingress.map(str::to_string),
        },
        c.client.clone(),
    );
    Ok(tokio::spawn(lb.run(shutdown)))
}

/// A node's networking, ready to hand its pod network to the runtime and then run.
pub struct NodeNetworking {
    pub pod_network: Arc<BridgeNetwork>,
    component: NodeNetwork,
}

/// Reads the cluster's settings (waiting for the server to publish them) and builds the
/// node's pod network and networking component.
pub async fn prepare_node(
    client: &kube::Client,
    node_name: &str,
    data_root: &Path,
    args: &NodeNetArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<NodeNetworking> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let settings = loop {
        match ClusterNetworkSettings::fetch(client).await {
            Ok(Some(s)) => break s,
            Ok(None) | Err(_) if Instant::now() < deadline && !shutdown.is_cancelled() => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(None) => anyhow::bail!(
                "the server has not published the cluster network settings (kube-system/berth-network)"
            ),
            Err(e) => return Err(e).context("reading the cluster network settings"),
        }
    };
    let pod_network = BridgeNetwork::new(PodNetworkConfig {
        bridge: "berth0".into(),
        state_dir: data_root.join("agent").join("net"),
        mtu: args.pod_mtu,
        cluster_cidr: settings.cluster_cidr,
        service_cidr: settings.service_cidr,
    })?;
    let mut config = NodeNetworkConfig::new(node_name);
    config.cluster_cidr = settings.cluster_cidr;
    config.service_cidr = settings.service_cidr;
    config.cluster_dns = settings.cluster_dns;
    config.network_policy = settings.network_policy;
    config.dns = Some(DnsSettings {
        port: 53,
        domain: settings.cluster_domain.clone(),
        resolv_conf: args.resolv_conf.clone(),
    });
    config.ingress = Some(IngressConfig {
        http: (args.ingress_http_port != 0)
            .then(|| std::net::SocketAddr::new(args.ingress_bind_address, args.ingress_http_port)),
        https: (args.ingress_https_port != 0)
            .then(|| std::net::SocketAddr::new(args.ingress_bind_address, args.ingress_https_port)),
        ..IngressConfig::default()
    });
    let component = NodeNetwork::new(config, client.clone(), Some(pod_network.clone()))?;
    Ok(NodeNetworking {
        pod_network,
        component,
    })
}

impl NodeNetworking {
    /// Runs the node component until `shutdown`.
    pub fn spawn(
        self,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<berth_net::Result<()>> {
        tokio::spawn(self.component.run(shutdown))
    }
}
