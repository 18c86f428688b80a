//! The agent's validated configuration.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{AgentError, Result};

/// When dead containers and unused images are removed.
#[derive(Debug, Clone, PartialEq)]
pub struct HousekeepingPolicy {
    /// How often housekeeping runs.
    pub interval: Duration,
    /// Exited containers kept per (pod, container name), the newest first (at least 1, so
    /// `logs --previous` works).
    pub max_dead_per_container: usize,
    /// Exited containers kept on the node in total.
    pub max_dead_containers: usize,
    /// Dead containers younger than this are kept.
    pub min_dead_age: Duration,
    /// Image garbage collection starts above this use of the image filesystem (percent)…
    pub image_gc_high_percent: u8,
    /// …and removes unused images, least recently used first, until use is below this.
    pub image_gc_low_percent: u8,
    /// Images unused for less than this are kept.
    pub image_min_age: Duration,
}

impl Default for HousekeepingPolicy {
    fn default() -> Self {
        HousekeepingPolicy {
            interval: Duration::from_secs(60),
            max_dead_per_container: 1,
            max_dead_containers: 240,
            min_dead_age: Duration::from_secs(0),
            image_gc_high_percent: 85,
            image_gc_low_percent: 80,
            image_min_age: Duration::from_secs(120),
        }
    }
}

/// Settings of a node agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The Node's name.
    pub node_name: String,
    /// The agent's own directory (pods' volumes, logs, credentials).
    pub dir: PathBuf,
    /// The node's address (InternalIP) and where the agent's HTTPS endpoint listens.
    pub node_ip: IpAddr,
    /// Port of the agent's HTTPS endpoint (0: any free port).
    pub port: u16,
    /// Cluster DNS servers for `dnsPolicy: ClusterFirst` pods.
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// Labels the Node gets at registration (besides the well-known ones).
    pub node_labels: BTreeMap<String, String>,
    pub max_pods: u32,
    /// Lease renewal period; the lease lasts 40 s (at least four periods).
    pub heartbeat: Duration,
    /// How often node status is recomputed (and written when it changed).
    pub status_interval: Duration,
    /// How often the runtime is relisted to notice container changes.
    pub relist_interval: Duration,
    /// How often running pods are re-synchronised even without events (volumes, probes).
    pub resync_interval: Duration,
    /// Memory kept free: below it the node reports MemoryPressure.
    pub eviction_memory_available: u64,
    /// Free space of the node filesystem below this percentage: DiskPressure.
    pub eviction_disk_available_percent: u8,
    pub housekeeping: HousekeepingPolicy,
}

impl AgentConfig {
    /// A configuration with Kubernetes' defaults for everything but identity and place.
    pub fn new(node_name: impl Into<String>, dir: impl Into<PathBuf>, node_ip: IpAddr) -> Self {
        AgentConfig {
            node_name: node_name.into(),
            dir: dir.into(),
            node_ip,
            port: 10250,
            cluster_dns: vec![IpAddr::from([10, 43, 0, 10])],
            cluster_domain: "cluster.local".into(),
            node_labels: BTreeMap::new(),
            max_pods: 110,
            // berth's node lifecycle declares a node lost after 8 s of silence (ADR 0007).
            heartbeat: Duration::from_secs(2),
            status_interval: Duration::from_secs(10),
            relist_interval: Duration::from_secs(1),
            resync_interval: Duration::from_secs(10),
            eviction_memory_available: 100 * 1024 * 1024,
            eviction_disk_available_percent: 10,
            housekeeping: HousekeepingPolicy::default(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, message: String| AgentError::Config {
            field: field.into(),
            message,
        };
        if let Err(e) = validate_node_name(&self.node_name) {
            return Err(bad("node name", format!("{:?}: {e}", self.node_name)));
        }
        if self.max_pods == 0 {
            return Err(bad("max pods", "must be at least 1".into()));
        }
        if self.heartbeat.is_zero() || self.status_interval.is_zero() {
            return Err(bad("heartbeat", "intervals must be positive".into()));
        }
        let h = &self.housekeeping;
        if h.image_gc_low_percent > h.image_gc_high_percent || h.image_gc_high_percent > 100 {
            return Err(bad(
                "image GC thresholds",
                format!(
                    "low {}% must not exceed high {}% (≤ 100)",
                    h.image_gc_low_percent, h.image_gc_high_percent
                ),
            ));
        }
        if h.max_dead_per_container == 0 {
            return Err(bad(
                "housekeeping",
                "at least one dead container per container is kept (for logs --previous)".into(),
            ));
        }
        Ok(())
    }

    /// Where the agent's HTTPS endpoint listens.
    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(self.node_ip, self.port)
    }

    pub fn pods_dir(&self) -> PathBuf {
        self.dir.join("pods")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    pub fn credentials_dir(&self) -> PathBuf {
        self.dir.join("credentials")
    }
}

/// A DNS-1123 subdomain of at most 253 characters (a Node name).
pub fn validate_node_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("must be 1 to 253 characters".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(
                "must consist of lower case alphanumeric characters, '-' or '.', and start \
                 and end with an alphanumeric character"
                    .into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_and_thresholds_are_checked() {
        let ok = AgentConfig::new("node-1.example", "/tmp/x", IpAddr::from([127, 0, 0, 1]));
        assert!(ok.validate().is_ok());
        for bad in ["", "Node", "-a", "a_b", "a..b"] {
            let c = AgentConfig::new(bad, "/tmp/x", IpAddr::from([127, 0, 0, 1]));
            assert!(c.validate().is_err(), "{bad:?}");
        }
        let mut c = ok.clone();
        c.housekeeping.image_gc_low_percent = 90;
        assert!(c.validate().is_err());
    }
}
