//! The pod network used until a real one is plugged in: sandboxes keep only their loopback
//! interface (brought up when the namespace is created), so pods have no IP of their own and
//! reach each other only through port-forwarding. It is always ready.

use std::net::IpAddr;

use berth_cri::{NetworkAttachment, PodNetwork, Result};

/// Loopback-only pod networking.
#[derive(Debug, Default)]
pub struct LoopbackNetwork;

#[async_trait::async_trait]
impl PodNetwork for LoopbackNetwork {
    async fn set_pod_cidr(&self, _cidr: &str) -> Result<()> {
        Ok(())
    }

    async fn setup(&self, _attachment: &NetworkAttachment) -> Result<Vec<IpAddr>> {
        Ok(vec![])
    }

    async fn teardown(&self, _attachment: &NetworkAttachment) -> Result<()> {
        Ok(())
    }

    fn ready(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}
