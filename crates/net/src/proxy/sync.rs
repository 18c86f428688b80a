//! Applying the node's rules: model → ruleset → one nftables transaction, skipped when
//! nothing changed.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::error::{NetError, Result};
use crate::nft::expr::Stmt;
use crate::nft::{NftTable, Ruleset};
use crate::proxy::model::{self, ModelOptions};
use crate::proxy::render::{self, FILTER_FORWARD_POLICY, RenderOptions};

/// What the node's Service rules depend on besides the objects.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub node_name: String,
    pub cluster_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    /// The nftables table (`ip berth`).
    pub table: String,
    /// Cluster DNS address and the node-local listener that answers it.
    pub cluster_dns: Option<(Ipv4Addr, SocketAddrV4)>,
}

impl ProxyConfig {
    pub fn validate(&self) -> Result<()> {
        if self.table.is_empty() || self.table.len() > 64 {
            return Err(NetError::Config {
                field: "table",
                reason: format!("{:?} is not a usable nftables table name", self.table),
            });
        }
        if self.node_name.is_empty() {
            return Err(NetError::Config {
                field: "node_name",
                reason: "must not be empty".into(),
            });
        }
        Ok(())
    }
}

/// The outcome of one sync.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// A transaction was applied (false: the rules were already right).
    pub applied: bool,
    pub service_ports: usize,
    pub rules: usize,
    pub elapsed: Duration,
    /// Objects (or fields) that were skipped, with the reason.
    pub skipped: Vec<NetError>,
}

/// The node's Service (and policy) rules.
pub struct ServiceRules {
    config: ProxyConfig,
    table: NftTable,
    applied: Option<Ruleset>,
}

impl ServiceRules {
    pub fn new(config: ProxyConfig) -> Result<ServiceRules> {
        config.validate()?;
        Ok(ServiceRules {
            table: NftTable::new(&config.table),
            config,
            applied: None,
        })
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Makes the table match the objects; `policy` are the rules of the forward policy chain.
    pub async fn sync<'a>(
        &mut self,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
        policy: Vec<Vec<Stmt>>,
        extra: Ruleset,
    ) -> Result<SyncReport> {
        let start = Instant::now();
        let (ports, skipped) = model::service_ports(
            services,
            slices,
            &ModelOptions {
                node_name: self.config.node_name.clone(),
                cluster_dns: self.config.cluster_dns,
            },
        );
        let mut rs = render::render(
            &ports,
            &RenderOptions {
                node_name: self.config.node_name.clone(),
                cluster_cidr: self.config.cluster_cidr,
                service_cidr: self.config.service_cidr,
            },
        );
        if let Some(c) = rs.chain_mut(FILTER_FORWARD_POLICY) {
            c.rules = policy;
        }
        rs.chains.extend(extra.chains);
        rs.sets.extend(extra.sets);
        let mut report = SyncReport {
            service_ports: ports.len(),
            rules: rs.rule_count(),
            skipped,
            ..Default::default()
        };
        if self.applied.as_ref() != Some(&rs) {
            self.table.apply(&rs).await?;
            self.applied = Some(rs);
            report.applied = true;
        }
        report.elapsed = start.elapsed();
        Ok(report)
    }

    /// Deletes the table.
    pub async fn remove(&mut self) -> Result<()> {
        self.applied = None;
        self.table.delete().await
    }

    /// The table as `nft list table` prints it.
    pub async fn list_text(&self) -> Result<String> {
        self.table.list_text().await
    }
}
