//! berth-agent: the node agent (berth's kubelet). It joins a cluster with the join token
//! ([`join`]), registers the Node and keeps its status and Lease fresh, runs the pods bound to
//! the node through the [`berth_cri::ContainerRuntime`] seam (one level-triggered worker per
//! pod: sandbox, volumes, images, init and regular containers, probes, hooks, restarts,
//! graceful termination, status), serves logs, exec, attach and port-forward on its own TLS
//! endpoint for the API server to relay, samples container usage for the metrics API, and
//! cleans up dead containers, unused images and orphaned pod directories.
//!
//! Depends on `cri` (the trait) and talks to the API only through kube-rs clients; the
//! binary wires the runtime implementation and the client (in-process in `berth server`, TLS
//! with the node's certificate in `berth agent`).
//!
//! Decisions (ADR "node agent and CRI adapter"):
//! - Workers compute actions from (desired pod, runtime snapshot) only; everything in memory
//!   (back-off timers, probe results) may be lost, so the agent can restart at any time and
//!   adopts running containers unchanged.
//! - Runtime changes are noticed by relisting every second (PLEG) and waking only the workers
//!   whose containers changed; probes wake their worker directly.
//! - The streaming endpoints speak the client protocols themselves (WebSocket v5/v4 channels,
//!   SPDY/3.1 plain or tunnelled): the API server relays bytes without interpreting them.

mod atomic_dir;
mod bootstrap;
mod config;
mod containers;
mod context;
mod dns;
mod envvars;
mod error;
mod events;
mod handlers;
mod hostinfo;
mod housekeeping;
mod logs;
mod node;
mod objects;
mod pods;
mod podspec;
mod portforward;
mod probes;
mod quantity;
mod remotecommand;
mod server;
mod spdy;
mod stats;
mod status;
mod volumes;
mod worker;

pub use bootstrap::{Credentials, JoinToken, ca_hash, join};
pub use config::{AgentConfig, HousekeepingPolicy, validate_node_name};
pub use error::{AgentError, Result};
pub use hostinfo::source_address_for;
pub use node::KUBELET_VERSION;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_cri::ContainerRuntime;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often container usage is sampled for metrics.
const STATS_INTERVAL: Duration = Duration::from_secs(10);

/// The node agent component.
pub struct Agent {
    config: AgentConfig,
    client: kube::Client,
    runtime: Arc<dyn ContainerRuntime>,
    credentials: Credentials,
    ready: watch::Sender<Option<SocketAddr>>,
}

impl Agent {
    /// An agent for `config`, talking to the API through `client` and running containers
    /// through `runtime`; `credentials` come from the join (serving certificate, pod CIDR).
    pub fn new(
        config: AgentConfig,
        client: kube::Client,
        runtime: Arc<dyn ContainerRuntime>,
        credentials: Credentials,
    ) -> Result<Agent> {
        config.validate()?;
        Ok(Agent {
            config,
            client,
            runtime,
            credentials,
            ready: watch::channel(None).0,
        })
    }

    /// Becomes `Some(endpoint)` once the node is registered and the endpoint serves.
    pub fn ready(&self) -> watch::Receiver<Option<SocketAddr>> {
        self.ready.subscribe()
    }

    /// Runs until `shutdown`. Containers keep running after the agent stops.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let cfg = self.config.clone();
        for d in [cfg.pods_dir(), cfg.logs_dir()] {
            std::fs::create_dir_all(&d).map_err(|e| AgentError::io("create", &d, e))?;
        }
        let listener = tokio::net::TcpListener::bind(cfg.listen())
            .await
            .map_err(|e| AgentError::io("listen on", cfg.listen().to_string(), e))?;
        let endpoint = listener
            .local_addr()
            .map_err(|e| AgentError::io("listen on", cfg.listen().to_string(), e))?;
        let tls = server::tls_config(
            &self.credentials.serving_certificate,
            &self.credentials.serving_key,
            &self.credentials.ca,
        )?;
        let recorder = events::Recorder::new(self.client.clone(), &cfg.node_name);
        let facts = hostinfo::HostFacts::read();
        let node = Arc::new(node::NodeStatusManager::new(
            self.client.clone(),
            cfg.clone(),
            self.runtime.clone(),
            recorder.clone(),
            endpoint.port(),
        ));
        // Registration waits for the API server (it may still be starting).
        let registered = loop {
            match node.register().await {
                Ok(r) => break r,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register the node yet; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        };
        // Services, for pods' environment variables.
        let (services, writer) = reflector::store::<Service>();
        let svc_stream = reflector(
            writer,
            watcher(
                Api::<Service>::all(self.client.clone()),
                watcher::Config::default(),
            ),
        )
        .default_backoff()
        .for_each(|_| futures::future::ready(()));
        let ctx = Arc::new(context::NodeContext {
            client: self.client.clone(),
            runtime: self.runtime.clone(),
            config: cfg.clone(),
            recorder,
            services: Some(services),
            node_alloc: (
                i128::from(facts.cpus) * 1000,
                i128::from(
                    facts
                        .memory_bytes
                        .saturating_sub(cfg.eviction_memory_available),
                ),
            ),
            node_memory: facts.memory_bytes,
        });
        let index: pods::PodIndex = Arc::default();
        let stats = stats::Stats::new(self.runtime.clone(), &cfg.node_name, STATS_INTERVAL);
        let router = server::router(server::ServerState {
            ctx: ctx.clone(),
            index: index.clone(),
            stats: stats.clone(),
        });
        let (synced_tx, synced_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(server::serve(listener, tls, router, shutdown.clone()));
        tasks.spawn(node.clone().run_status(shutdown.clone()));
        tasks.spawn(
            node.clone()
                .run_lease(registered.uid.clone(), shutdown.clone()),
        );
        tasks.spawn(node.clone().run_pod_cidr(shutdown.clone()));
        tasks.spawn(stats.clone().run(shutdown.clone()));
        {
            let s = shutdown.clone();
            tasks.spawn(async move {
                tokio::select! {
                    _ = s.cancelled() => {}
                    _ = svc_stream => {}
                }
            });
        }
        // Housekeeping starts once the pod list is known (else every pod would look orphaned).
        tasks.spawn(
            pods::PodManager::new(ctx.clone(), index.clone(), synced_tx).run(shutdown.clone()),
        );
        tasks.spawn(
            housekeeping::Housekeeper::new(ctx.clone(), index.clone())
                .run(synced_rx, shutdown.clone()),
        );
        let _ = self.ready.send(Some(endpoint));
        tracing::info!(node = %cfg.node_name, %endpoint, "node agent is ready");
        shutdown.cancelled().await;
        let all = async { while tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(10), all).await;
        Ok(())
    }
}
