//! The cluster's own registry inside `berth server` (on by default, `--disable registry`):
//! the OCI distribution API on `--registry-port` (5000) with a serving certificate from the
//! cluster CA, token auth that accepts the cluster's credentials, and the endpoint file
//! (`<data-dir>/registry-endpoint.json`) through which `berth push|pull` resolve unqualified
//! image names (`mywebapp:latest`) to it.
//!
//! Credentials: the admin registry password (generated once, kept in the data dir, written to
//! the endpoint file next to the admin kubeconfig) may push, pull and delete everything; the
//! node join token may pull (node agents pulling pod images).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use berth_registry::{
    Actions, AuthConfig, AuthMode, FsBlobDriver, Identity, Registry, RegistryConfig, RegistryDeps,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::datadir::DataDir;

/// The registry's view of the cluster's credentials.
struct ClusterCredentials {
    admin_password: String,
    node_token: String,
}

impl ClusterCredentials {
    fn identify(&self, secret: &str) -> Option<Identity> {
        if constant_time_eq(secret.as_bytes(), self.admin_password.as_bytes()) {
            return Some(Identity {
                name: "admin".into(),
                groups: vec!["system:masters".into()],
            });
        }
        if constant_time_eq(secret.as_bytes(), self.node_token.as_bytes()) {
            return Some(Identity {
                name: "system:node-bootstrap".into(),
                groups: vec!["system:nodes".into()],
            });
        }
        None
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[async_trait]
impl berth_registry::Authenticator for ClusterCredentials {
    async fn basic(
        &self,
        _username: &str,
        password: &str,
    ) -> berth_registry::Result<Option<Identity>> {
        Ok(self.identify(password))
    }

    async fn bearer(&self, token: &str) -> berth_registry::Result<Option<Identity>> {
        Ok(self.identify(token))
    }

    fn permitted(&self, who: &Identity, _repository: &str) -> Actions {
        if who.groups.iter().any(|g| g == "system:masters") {
            Actions::ALL
        } else if who.groups.iter().any(|g| g == "system:nodes") {
            Actions::PULL
        } else {
            Actions::NONE
        }
    }

    fn may_list_catalog(&self, who: &Identity) -> bool {
        who.groups.iter().any(|g| g == "system:masters")
    }
}

/// A secret generated once and kept in the data dir.
fn persistent_secret(data: &DataDir, name: &str, bytes: usize) -> anyhow::Result<String> {
    let path = data.server_dir().join(name);
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    let secret = hex::encode(raw);
    berth_apiserver::pki::write_file(&path, format!("{secret}\n").as_bytes(), 0o600)?;
    Ok(secret)
}

/// Where and how the cluster registry serves.
pub struct Settings<'a> {
    pub bind: IpAddr,
    pub port: u16,
    pub advertise: IpAddr,
    /// Names and addresses for its serving certificate.
    pub dns: &'a [String],
    pub ips: &'a [IpAddr],
    pub node_token: &'a str,
}

/// Starts the cluster registry; returns its task and advertised address.
pub async fn start(
    data: &DataDir,
    pki: &berth_apiserver::pki::ClusterPki,
    s: Settings<'_>,
    shutdown: CancellationToken,
) -> anyhow::Result<(JoinHandle<anyhow::Result<()>>, SocketAddr)> {
    let Settings {
        bind,
        port,
        advertise,
        dns,
        ips,
        node_token,
    } = s;
    pki.serving_cert("registry", dns, ips)?;
    let tls_dir = data.tls_dir();
    let tls =
        berth_registry::tls_config(&tls_dir.join("registry.crt"), &tls_dir.join("registry.key"))?;
    let root = data.root().join("registry");
    let credentials = Arc::new(ClusterCredentials {
        admin_password: persistent_secret(data, "registry-admin-password", 24)?,
        node_token: node_token.to_string(),
    });
    let token_key = hex::decode(persistent_secret(data, "registry-token-key", 32)?)
        .context("registry token key is not hex")?;
    let config = RegistryConfig::new(&root, SocketAddr::new(bind, port));
    let deps = RegistryDeps {
        driver: Arc::new(FsBlobDriver::new(root.join("blobs"), None)?),
        auth: AuthConfig {
            mode: AuthMode::Token {
                realm: None,
                service: "berth-registry".into(),
            },
            anonymous_pull: false,
            authenticator: Some(credentials.clone()),
        },
        tls: Some(tls),
        token_key: Some(token_key),
    };
    let registry = Registry::new(config, deps).with_context(|| {
        format!("starting the cluster registry on port {port} (use --registry-port, or --disable registry)")
    })?;
    let addr = SocketAddr::new(advertise, registry.local_addr().port());
    let mut ready = registry.ready();
    let task =
        tokio::spawn(async move { registry.run(shutdown).await.map_err(anyhow::Error::from) });
    tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|r| *r))
        .await
        .context("the cluster registry did not become ready")?
        .context("the cluster registry stopped")?;
    let endpoint = serde_json::json!({
        "address": addr.to_string(),
        "plainHttp": false,
        "caFile": tls_dir.join("ca.crt"),
        "username": "admin",
        "password": credentials.admin_password,
    });
    berth_apiserver::pki::write_file(
        &data.root().join("registry-endpoint.json"),
        serde_json::to_string_pretty(&endpoint)?.as_bytes(),
        0o600,
    )?;
    Ok((task, addr))
}
