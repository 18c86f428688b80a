//! The API server's configuration.

use std::net::{IpAddr, SocketAddr};

use ipnet::Ipv4Net;

/// berth's default for how long pods tolerate a not-ready or unreachable node before they
/// are evicted: with node loss detected after ~8 s, replacement pods are bound elsewhere
/// within the 15 s failover target.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 2;

/// Settings of the API server component.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Where the HTTPS listener binds.
    pub bind: SocketAddr,
    /// Address clients should use (discovery's serverAddressByClientCIDRs, kubeconfig).
    pub advertise: SocketAddr,
    /// Service ClusterIP range.
    pub service_cidr: Ipv4Net,
    /// NodePort range (inclusive).
    pub node_port_range: (u16, u16),
    /// Cluster DNS service IP.
    pub cluster_dns: IpAddr,
    /// `tolerationSeconds` of the not-ready / unreachable NoExecute tolerations new pods get
    /// (Kubernetes' DefaultTolerationSeconds admission: 300 s; berth fails over faster).
    pub default_not_ready_toleration_seconds: i64,
    pub default_unreachable_toleration_seconds: i64,
}

impl ApiConfig {
    pub fn advertise_address(&self) -> String {
        self.advertise.to_string()
    }

    /// The first address of the service range: the `kubernetes` Service.
    pub fn kubernetes_service_ip(&self) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(
            u32::from(self.service_cidr.network()) + 1,
        ))
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            bind: "127.0.0.1:6443".parse().expect("valid"),
            advertise: "127.0.0.1:6443".parse().expect("valid"),
            service_cidr: "10.43.0.0/16".parse().expect("valid"),
            node_port_range: (30000, 32767),
            cluster_dns: "10.43.0.10".parse().expect("valid"),
            default_not_ready_toleration_seconds: DEFAULT_TOLERATION_SECONDS,
            default_unreachable_toleration_seconds: DEFAULT_TOLERATION_SECONDS,
        }
    }
}
