//! The in-process TestCluster: the real API server over an in-memory store, bootstrapped,
//! with the control plane's controllers (and, as configured, the scheduler and simulated
//! nodes) running against it through in-process clients. No sockets, no root.

use std::sync::Arc;
use std::time::Duration;

use berth_apiserver::{ApiConfig, ApiServer, Authenticator, Identity};
use berth_controllers::{ControlPlane, ControlPlaneConfig};
use berth_scheduler::{Scheduler, SchedulerConfig};
use berth_store::{MemoryStore, Store};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::simnodes::{SimulatedNodes, SimulatedNodesConfig, SimulatedNodesHandle};

/// What a [`TestCluster`] runs.
#[derive(Clone, Debug)]
pub struct TestClusterOptions {
    /// Controllers to run (`None`: none at all).
    pub controllers: Option<ControlPlaneConfig>,
    /// The scheduler (`None`: pods stay pending).
    pub scheduler: Option<SchedulerConfig>,
    /// Simulated nodes (`None`: no nodes).
    pub nodes: Option<SimulatedNodesConfig>,
}

impl Default for TestClusterOptions {
    /// Controllers only (no scheduler, no nodes).
    fn default() -> Self {
        TestClusterOptions {
            controllers: Some(fast_control_plane()),
            scheduler: None,
            nodes: None,
        }
    }
}

impl TestClusterOptions {
    /// Controllers, the scheduler and `n` simulated nodes with fast heartbeats.
    pub fn with_nodes(n: usize) -> TestClusterOptions {
        TestClusterOptions {
            controllers: Some(fast_control_plane()),
            scheduler: Some(SchedulerConfig::default()),
            nodes: Some(fast_nodes(n)),
        }
    }
}

/// Simulated nodes tuned for tests: frequent heartbeats, short runs.
pub fn fast_nodes(n: usize) -> SimulatedNodesConfig {
    SimulatedNodesConfig {
        count: n,
        heartbeat: Duration::from_millis(300),
        run_duration: Duration::from_millis(300),
        ..Default::default()
    }
}

/// Control-plane settings tuned for tests: short re-discovery and re-check intervals.
pub fn fast_control_plane() -> ControlPlaneConfig {
    let mut c = ControlPlaneConfig::default();
    c.gc.discovery_interval = Duration::from_millis(500);
    c.namespace.recheck = Duration::from_millis(200);
    c.node_lifecycle.monitor_period = Duration::from_millis(200);
    // Short, but long enough that a test machine under load does not lose nodes.
    c.node_lifecycle.grace_period = Duration::from_secs(5);
    c.node_lifecycle.default_toleration_cap = Some(Duration::ZERO);
    c.job.backoff_base = Duration::from_millis(200);
    c.hpa.sync_period = Duration::from_millis(300);
    c.hpa.downscale_window = Duration::from_secs(1);
    c.root_ca_pem = Some(TEST_CA_PEM.to_string());
    c
}

/// A stand-in CA certificate for `kube-root-ca.crt` in tests (never used to verify).
pub const TEST_CA_PEM: &str =
    "-----BEGIN CERTIFICATE-----\nTUlJQnRlc3QtY2E=\n-----END CERTIFICATE-----\n";

/// How long start-up waits for components to sync.
const READY_WAIT: Duration = Duration::from_secs(30);

/// An API server with controllers, in this process.
pub struct TestCluster {
    api: ApiServer,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    nodes: Option<SimulatedNodesHandle>,
}

impl TestCluster {
    /// Starts the API server on a fresh in-memory store, bootstraps it, and starts the
    /// configured components.
    pub async fn start(options: TestClusterOptions) -> Result<TestCluster> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        // A non-loopback advertise address: the `kubernetes` Endpoints may not point at
        // loopback (the API server validates that).
        let config = ApiConfig {
            advertise: "10.255.255.1:6443".parse().expect("valid address"),
            ..ApiConfig::default()
        };
        let api = ApiServer::new(config, store, Authenticator::new())
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
            nodes: None,
        };
        let sim = match options.nodes {
            Some(cfg) => Some(SimulatedNodes::new(
                cfg,
                cluster.component_client("simulated-nodes"),
            )?),
            None => None,
        };
        if let Some(cfg) = options.controllers {
            let mut cp =
                ControlPlane::new(cfg, cluster.component_client("controllers")).map_err(|e| {
                    Error::Start {
                        component: "controllers",
                        reason: e.to_string(),
                    }
                })?;
            if let Some(sim) = &sim {
                cp = cp.with_metrics(sim.handle().metrics());
            }
            let stop = cluster.shutdown.clone();
            cluster.tasks.push(tokio::spawn(async move {
                if let Err(e) = cp.run(stop).await {
                    tracing::error!(error = %e, "test cluster: control plane failed");
                }
            }));
        }
        if let Some(cfg) = options.scheduler {
            let sched =
                Scheduler::new(cfg, cluster.component_client("scheduler")).map_err(|e| {
                    Error::Start {
                        component: "scheduler",
                        reason: e.to_string(),
                    }
                })?;
            let mut ready = sched.ready();
            let stop = cluster.shutdown.clone();
            cluster.tasks.push(tokio::spawn(async move {
                if let Err(e) = sched.run(stop).await {
                    tracing::error!(error = %e, "test cluster: scheduler failed");
                }
            }));
            tokio::time::timeout(READY_WAIT, ready.wait_for(|r| *r))
                .await
                .map_err(|_| Error::Start {
                    component: "scheduler",
                    reason: "its snapshot did not sync".into(),
                })?
                .map_err(|_| Error::Start {
                    component: "scheduler",
                    reason: "it stopped".into(),
                })?;
        }
        if let Some(sim) = sim {
            cluster
                .api
                .set_metrics_provider(sim.handle().metrics_provider());
            let expected = sim.node_count();
            cluster.nodes = Some(sim.handle());
            let stop = cluster.shutdown.clone();
            cluster.tasks.push(tokio::spawn(async move {
                if let Err(e) = sim.run(stop).await {
                    tracing::error!(error = %e, "test cluster: simulated nodes failed");
                }
            }));
            cluster.wait_nodes_ready(expected).await?;
        }
        Ok(cluster)
    }

    /// Waits until `n` nodes report Ready.
    pub async fn wait_nodes_ready(&self, n: usize) -> Result<()> {
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(self.client());
        let deadline = tokio::time::Instant::now() + READY_WAIT;
        loop {
            let list = nodes
                .list(&Default::default())
                .await
                .map_err(|e| Error::api("listing nodes", e))?;
            let ready = list
                .items
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            if ready >= n {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Start {
                    component: "simulated nodes",
                    reason: format!("{ready} of {n} nodes ready"),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The simulated nodes, if the cluster has them.
    pub fn nodes(&self) -> Option<&SimulatedNodesHandle> {
        self.nodes.as_ref()
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
