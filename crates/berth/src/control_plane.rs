//! Wiring of the control plane's in-process clients in `berth server`: the controllers, the
//! scheduler and (for development, `--simulated-nodes N`) simulated nodes talk to this
//! server's router through kube clients — the same code path as remote clients, without a
//! TCP hop.

use std::future::Future;
use std::pin::Pin;

use berth_apiserver::{ApiServer, Identity};
use berth_controllers::{
    CONTROLLERS, ControlPlane, ControlPlaneConfig, MetricsApiSource, NodeIpamConfig,
};
use berth_scheduler::{Scheduler, SchedulerConfig};
use berth_testing::{SimulatedNodes, SimulatedNodesConfig};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

type Outcome = (&'static str, Result<(), String>);

/// The running control-plane components.
pub struct ControlPlaneHandle {
    tasks: JoinSet<Outcome>,
}

fn boxed<E: std::fmt::Display>(
    name: &'static str,
    f: impl Future<Output = Result<(), E>> + Send + 'static,
) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
    Box::pin(async move { (name, f.await.map_err(|e| e.to_string())) })
}

/// Starts the components not disabled with `--disable NAME` (`scheduler`, `controllers`
/// for all controllers, or one controller's name), and `simulated_nodes` simulated nodes.
pub fn start(
    api: &ApiServer,
    root_ca_pem: &str,
    disable: &[String],
    simulated_nodes: usize,
    cluster_cidr: ipnet::Ipv4Net,
    shutdown: CancellationToken,
) -> anyhow::Result<ControlPlaneHandle> {
    let disabled = |name: &str| disable.iter().any(|d| d == name);
    let mut tasks = JoinSet::new();
    let mut metrics = None;
    if simulated_nodes > 0 {
        let config = SimulatedNodesConfig {
            count: simulated_nodes,
            ..Default::default()
        };
        let sim = SimulatedNodes::new(config, api.client(Identity::system("simulated-nodes")))?;
        // Their usage is served as metrics.k8s.io (kubectl top, the autoscaler).
        api.set_metrics_provider(sim.handle().metrics_provider());
        metrics = Some(MetricsApiSource::shared(
            api.client(Identity::system("controllers")),
        ));
        tasks.spawn(boxed("simulated nodes", sim.run(shutdown.clone())));
    }
    if !disabled("controllers") {
        let config = ControlPlaneConfig {
            root_ca_pem: Some(root_ca_pem.to_string()),
            node_ipam: NodeIpamConfig {
                cluster_cidr: cluster_cidr.to_string(),
                ..Default::default()
            },
            disabled: CONTROLLERS
                .iter()
                .filter(|c| disabled(c))
                .map(|c| c.to_string())
                .collect(),
            ..Default::default()
        };
        let client = api.client(Identity::system("controllers"));
        let metrics = metrics.unwrap_or_else(|| MetricsApiSource::shared(client.clone()));
        let cp = ControlPlane::new(config, client)?.with_metrics(metrics);
        tasks.spawn(boxed("controllers", cp.run(shutdown.clone())));
    }
    if !disabled("scheduler") {
        let sched = Scheduler::new(
            SchedulerConfig::default(),
            api.client(Identity::system("kube-scheduler")),
        )?;
        tasks.spawn(boxed("scheduler", sched.run(shutdown)));
    }
    Ok(ControlPlaneHandle { tasks })
}

impl ControlPlaneHandle {
    /// Resolves if a component stops on its own (a failure: components only stop on
    /// shutdown), with what went wrong.
    pub async fn failed(&mut self) -> String {
        match self.tasks.join_next().await {
            Some(Ok((name, Ok(())))) => format!("the {name} stopped"),
            Some(Ok((name, Err(e)))) => format!("the {name} failed: {e}"),
            Some(Err(e)) => format!("a control-plane component panicked: {e}"),
            None => std::future::pending().await,
        }
    }

    /// Waits (bounded) for the components to stop after shutdown was signalled.
    pub async fn stop(mut self) {
        let all = async { while self.tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), all).await;
    }
}
