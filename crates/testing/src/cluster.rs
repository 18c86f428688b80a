//! The in-process TestCluster: the real API server over an in-memory store, bootstrapped,
//! with the control plane's controllers (and, as configured, the scheduler and simulated
//! nodes) running against it through in-process clients. No sockets, no root.

use std::sync::Arc;
use std::time::Duration;

use berth_apiserver::{ApiConfig, ApiServer, Authenticator, Identity};
use berth_controllers::{ControlPlane, ControlPlaneConfig};
use berth_store::{MemoryStore, Store};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// What a [`TestCluster`] runs.
#[derive(Clone, Debug)]
pub struct TestClusterOptions {
    /// Controllers to run (`None`: none at all).
    pub controllers: Option<ControlPlaneConfig>,
}

impl Default for TestClusterOptions {
    fn default() -> Self {
        TestClusterOptions {
            controllers: Some(fast_control_plane()),
        }
    }
}

/// Control-plane settings tuned for tests: short re-discovery and re-check intervals.
pub fn fast_control_plane() -> ControlPlaneConfig {
    let mut c = ControlPlaneConfig::default();
    c.gc.discovery_interval = Duration::from_millis(500);
    c.namespace.recheck = Duration::from_millis(200);
    c.root_ca_pem = Some(TEST_CA_PEM.to_string());
    c
}

/// A stand-in CA certificate for `kube-root-ca.crt` in tests (never used to verify).
pub const TEST_CA_PEM: &str =
    "-----BEGIN CERTIFICATE-----\nTUlJQnRlc3QtY2E=\n-----END CERTIFICATE-----\n";

/// An API server with controllers, in this process.
pub struct TestCluster {
    api: ApiServer,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl TestCluster {
    /// Starts the API server on a fresh in-memory store, bootstraps it, and starts the
    /// configured components.
    pub async fn start(options: TestClusterOptions) -> Result<TestCluster> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let api = ApiServer::new(ApiConfig::default(), store, Authenticator::new())
            .await
            .map_err(|e| Error::Start {
                component: "api server",
                reason: e.to_string(),
            })?;
        berth_apiserver::bootstrap(&api)
            .await
            .map_err(|e| Error::Start {
                component: "bootstrap",
                reason: e.to_string(),
            })?;
        let shutdown = CancellationToken::new();
        let mut cluster = TestCluster {
            api,
            shutdown,
            tasks: Vec::new(),
        };
        if let Some(cfg) = options.controllers {
            let cp =
                ControlPlane::new(cfg, cluster.component_client("controllers")).map_err(|e| {
                    Error::Start {
                        component: "controllers",
                        reason: e.to_string(),
                    }
                })?;
            let stop = cluster.shutdown.clone();
            cluster.tasks.push(tokio::spawn(async move {
                if let Err(e) = cp.run(stop).await {
                    tracing::error!(error = %e, "test cluster: control plane failed");
                }
            }));
        }
        Ok(cluster)
    }

    /// A client with cluster-admin rights (as `kubectl` with the admin kubeconfig).
    pub fn client(&self) -> kube::Client {
        self.api.client(Identity::new(
            "admin",
            &["system:masters", "system:authenticated"],
        ))
    }

    /// A client acting as a system component.
    pub fn component_client(&self, component: &str) -> kube::Client {
        self.api.client(Identity::system(component))
    }

    pub fn api_server(&self) -> &ApiServer {
        &self.api
    }

    /// A token that stops with the cluster (for components a test starts itself).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs `task` until the cluster stops.
    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    /// Stops every component and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
