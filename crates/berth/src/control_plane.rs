//! Wiring of the control plane's in-process clients in `berth server`: the controllers
//! (and, as they land, the scheduler and simulated nodes) talk to this server's router
//! through kube clients, the same code path as remote clients, without a TCP hop.

use berth_apiserver::{ApiServer, Identity};
use berth_controllers::{CONTROLLERS, ControlPlane, ControlPlaneConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The running control-plane components.
pub struct ControlPlaneHandle {
    controllers: Option<JoinHandle<Result<(), berth_controllers::Error>>>,
}

/// Starts the components not disabled with `--disable NAME` (a controller name, or
/// `controllers` for all of them).
pub fn start(
    api: &ApiServer,
    root_ca_pem: &str,
    disable: &[String],
    shutdown: CancellationToken,
) -> anyhow::Result<ControlPlaneHandle> {
    let disabled = |name: &str| disable.iter().any(|d| d == name);
    let mut handle = ControlPlaneHandle { controllers: None };
    if !disabled("controllers") {
        let config = ControlPlaneConfig {
            root_ca_pem: Some(root_ca_pem.to_string()),
            disabled: CONTROLLERS
                .iter()
                .filter(|c| disabled(c))
                .map(|c| c.to_string())
                .collect(),
            ..Default::default()
        };
        let cp = ControlPlane::new(config, api.client(Identity::system("controllers")))?;
        handle.controllers = Some(tokio::spawn(cp.run(shutdown)));
    }
    Ok(handle)
}

impl ControlPlaneHandle {
    /// Resolves if a component stops on its own (a failure: components only stop on
    /// shutdown), with what went wrong.
    pub async fn failed(&mut self) -> String {
        match self.controllers.as_mut() {
            Some(task) => {
                let out = match task.await {
                    Ok(Ok(())) => "the controllers stopped".to_string(),
                    Ok(Err(e)) => format!("the controllers failed: {e}"),
                    Err(e) => format!("the controllers panicked: {e}"),
                };
                self.controllers = None;
                out
            }
            None => std::future::pending().await,
        }
    }

    /// Waits (bounded) for the components to stop after shutdown was signalled.
    pub async fn stop(self) {
        if let Some(task) = self.controllers {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
        }
    }
}
