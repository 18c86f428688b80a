//! The API server's configuration.

use std::net::{IpAddr, SocketAddr};

use ipnet::Ipv4Net;

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
        }
    }
}
