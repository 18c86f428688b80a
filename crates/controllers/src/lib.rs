//! berth's control-plane controllers: one module per controller, each a level-triggered
//! reconciler that reads desired and observed state through the API server, acts, and
//! writes status.
//!
//! Shape and reasons:
//! - Controllers are kube-rs clients only (DESIGN §2, §3): they never import the API server or
//!   the store. In `berth server` they get an in-process client (same code path as a remote
//!   client, no TCP); tests wire them the same way.
//! - Per-resource controllers use kube-rs `Controller` (watch → cache → debounced queue →
//!   bounded concurrency, never two reconciles of one object at once). The garbage collector
//!   spans every resource, so it keeps its own graph and deduplicating work queue.
//! - Resources are discovered (`catalog`), not hard-coded, so custom resources get garbage
//!   collection and namespace cleanup too.
//! - Events are recorded through one non-blocking recorder (`events`) shared by components.
//! - Components look alike: a validated config, `new(config, deps)`, `async fn run(self,
//!   shutdown)`. [`ControlPlane`] starts them all and stops them together.

mod catalog;
mod cron;
mod cronjob;
mod daemonset;
mod deployment;
mod endpoints;
mod error;
mod events;
mod gc;
mod hpa;
mod job;
mod metrics;
mod namespace;
mod nodeipam;
mod nodelifecycle;
mod pods;
mod queue;
mod release;
mod replicaset;
mod resources;
mod revisions;
mod scaling;
mod serviceaccount;
mod statefulset;
mod volumes;

use std::sync::Arc;

use futures::FutureExt;
use kube::Client;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use catalog::{CatalogEntry, ResourceCatalog};
pub use cron::{Schedule, time_zone};
pub use cronjob::CronJobController;
pub use daemonset::DaemonSetController;
pub use deployment::{DeploymentController, REVISION, template_hash};
pub use endpoints::EndpointsController;
pub use error::{Error, Result};
pub use events::{EventRecorder, EventType, InvolvedObject};
pub use gc::{GarbageCollector, GcConfig};
pub use hpa::{HpaConfig, HpaController};
pub use job::{JobConfig, JobController};
pub use metrics::{MetricsApiSource, MetricsSource, PodUsage};
pub use namespace::{NAMESPACE_FINALIZER, NamespaceConfig, NamespaceController};
pub use nodeipam::{NodeIpamConfig, NodeIpamController};
pub use nodelifecycle::{
    NodeLifecycleConfig, NodeLifecycleController, TAINT_NOT_READY, TAINT_UNREACHABLE,
};
pub use queue::WorkQueue;
pub use replicaset::ReplicaSetController;
pub use resources::{ResourceAmounts, int_value, milli_value, parse_quantity, pod_requests};
pub use serviceaccount::{DEFAULT_SERVICE_ACCOUNT, ROOT_CA_CONFIGMAP, ServiceAccountController};
pub use statefulset::StatefulSetController;
pub use volumes::{PROVISIONER, VolumeConfig, VolumeController};

/// The component name controllers record events as.
pub const COMPONENT: &str = "berth-controller-manager";

/// Settings of the control plane's controllers.
#[derive(Clone, Debug, Default)]
pub struct ControlPlaneConfig {
    pub gc: GcConfig,
    pub namespace: NamespaceConfig,
    pub node_lifecycle: NodeLifecycleConfig,
    pub node_ipam: NodeIpamConfig,
    pub job: JobConfig,
    pub hpa: HpaConfig,
    pub volumes: VolumeConfig,
    /// PEM of the cluster CA, published as `kube-root-ca.crt` in every namespace.
    pub root_ca_pem: Option<String>,
    /// Controllers not to run, by name (`garbage-collector`, `namespace`, `serviceaccount`).
    pub disabled: Vec<String>,
}

/// Names of the controllers [`ControlPlane`] runs.
pub const CONTROLLERS: &[&str] = &[
    "garbage-collector",
    "namespace",
    "serviceaccount",
    "replicaset",
    "deployment",
    "nodelifecycle",
    "nodeipam",
    "job",
    "cronjob",
    "daemonset",
    "statefulset",
    "endpoints",
    "horizontalpodautoscaling",
    "persistentvolume-binder",
];

impl ControlPlaneConfig {
    pub fn validate(&self) -> Result<()> {
        self.gc.validate()?;
        self.node_lifecycle.validate()?;
        self.node_ipam.validate()?;
        for d in &self.disabled {
            if !CONTROLLERS.contains(&d.as_str()) {
                return Err(Error::Config {
                    field: "disabled",
                    reason: format!(
                        "unknown controller {d:?} (known: {})",
                        CONTROLLERS.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    fn enabled(&self, name: &str) -> bool {
        !self.disabled.iter().any(|d| d == name)
    }
}

/// All controllers, run together.
pub struct ControlPlane {
    config: ControlPlaneConfig,
    client: Client,
    metrics: Option<Arc<dyn MetricsSource>>,
}

impl ControlPlane {
    pub fn new(config: ControlPlaneConfig, client: Client) -> Result<ControlPlane> {
        config.validate()?;
        Ok(ControlPlane {
            config,
            client,
            metrics: None,
        })
    }

    /// Where the autoscaler reads pod usage (default: the `metrics.k8s.io` API).
    pub fn with_metrics(mut self, metrics: Arc<dyn MetricsSource>) -> ControlPlane {
        self.metrics = Some(metrics);
        self
    }

    /// Runs every enabled controller until `shutdown`; if one fails, the others are
    /// stopped and its error returned.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let stop = shutdown.child_token();
        let recorder = EventRecorder::new(self.client.clone(), COMPONENT);
        let catalog = Arc::new(ResourceCatalog::new());
        let mut tasks: JoinSet<(&'static str, Result<()>)> = JoinSet::new();
        let cfg = &self.config;
        if cfg.enabled("garbage-collector") {
            let gc = GarbageCollector::new(
                cfg.gc.clone(),
                self.client.clone(),
                catalog.clone(),
                recorder.clone(),
            )?;
            let s = stop.clone();
            tasks.spawn(gc.run(s).map(|r| ("garbage-collector", r)));
        }
        if cfg.enabled("namespace") {
            let c = NamespaceController::new(
                cfg.namespace.clone(),
                self.client.clone(),
                catalog.clone(),
                recorder.clone(),
            );
            let s = stop.clone();
            tasks.spawn(c.run(s).map(|r| ("namespace", r)));
        }
        if cfg.enabled("serviceaccount") {
            let c = ServiceAccountController::new(
                self.client.clone(),
                cfg.root_ca_pem.clone(),
                recorder.clone(),
            );
            let s = stop.clone();
            tasks.spawn(c.run(s).map(|r| ("serviceaccount", r)));
        }
        if cfg.enabled("replicaset") {
            let c = ReplicaSetController::new(self.client.clone(), recorder.clone(), 16);
            let s = stop.clone();
            tasks.spawn(c.run(s).map(|r| ("replicaset", r)));
        }
        if cfg.enabled("deployment") {
            let c = DeploymentController::new(self.client.clone(), recorder.clone(), 8);
            let s = stop.clone();
            tasks.spawn(c.run(s).map(|r| ("deployment", r)));
        }
        if cfg.enabled("nodelifecycle") {
            let c = NodeLifecycleController::new(
                cfg.node_lifecycle.clone(),
                self.client.clone(),
                recorder.clone(),
            )?;
            let s = stop.clone();
            tasks.spawn(c.run(s).map(|r| ("nodelifecycle", r)));
        }
        if cfg.enabled("nodeipam") {
            let c = NodeIpamController::new(
                cfg.node_ipam.clone(),
                self.client.clone(),
                recorder.clone(),
            )?;
            let s = stop.clone();
            tasks.spawn(c.run(s).map(|r| ("nodeipam", r)));
        }
        if cfg.enabled("job") {
            let c = JobController::new(cfg.job.clone(), self.client.clone(), recorder.clone());
            let s = stop.clone();
            tasks.spawn(c.run(s).map(|r| ("job", r)));
        }
        if cfg.enabled("cronjob") {
            let c = CronJobController::new(self.client.clone(), recorder.clone());
            let s = stop.clone();
            tasks.spawn(c.run(s).map(|r| ("cronjob", r)));
        }
        if cfg.enabled("daemonset") {
            let c = DaemonSetController::new(self.client.clone(), recorder.clone());
            let s = stop.clone();
            tasks.spawn(c.run(s).map(|r| ("daemonset", r)));
        }
        if cfg.enabled("statefulset") {
            let c = StatefulSetController::new(self.client.clone(), recorder.clone());
            let s = stop.clone();
            tasks.spawn(c.run(s).map(|r| ("statefulset", r)));
        }
        if cfg.enabled("endpoints") {
            let c = EndpointsController::new(self.client.clone());
            let s = stop.clone();
            tasks.spawn(c.run(s).map(|r| ("endpoints", r)));
        }
        if cfg.enabled("horizontalpodautoscaling") {
            let metrics = self
                .metrics
                .clone()
                .unwrap_or_else(|| MetricsApiSource::shared(self.client.clone()));
            let c = HpaController::new(
                cfg.hpa.clone(),
                self.client.clone(),
                recorder.clone(),
                metrics,
            );
            let s = stop.clone();
            tasks.spawn(c.run(s).map(|r| ("horizontalpodautoscaling", r)));
        }
        if cfg.enabled("persistentvolume-binder") {
            let c =
                VolumeController::new(cfg.volumes.clone(), self.client.clone(), recorder.clone());
            let s = stop.clone();
            tasks.spawn(c.run(s).map(|r| ("persistentvolume-binder", r)));
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let failure = match joined {
                Ok((_, Ok(()))) if stop.is_cancelled() => None,
                Ok((name, Ok(()))) => Some(Error::Stopped {
                    name,
                    reason: "ended before shutdown".into(),
                }),
                Ok((_, Err(e))) => Some(e),
                Err(e) => Some(Error::Stopped {
                    name: "control-plane",
                    reason: format!("a controller task panicked: {e}"),
                }),
            };
            if let Some(e) = failure {
                tracing::error!(error = %e, "a controller failed; stopping the control plane");
                stop.cancel();
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Runs the control plane's controllers with `client` until `shutdown`.
pub async fn run_control_plane(
    client: Client,
    config: ControlPlaneConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    ControlPlane::new(config, client)?.run(shutdown).await
}
