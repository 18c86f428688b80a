//! The object caches a node's networking reads: one watch per kind, shared by the Service
//! proxy, the routes, the DNS server and the Ingress proxy.

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, NetworkPolicy};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::watch::Watched;

/// Which optional kinds to watch.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreKinds {
    pub pods: bool,
    pub policies: bool,
    pub ingresses: bool,
}

/// The caches, each bumping its own generation counter.
pub struct Stores {
    pub services: Watched<Service>,
    pub slices: Watched<EndpointSlice>,
    pub nodes: Watched<Node>,
    pub pods: Option<Watched<Pod>>,
    pub namespaces: Option<Watched<Namespace>>,
    pub policies: Option<Watched<NetworkPolicy>>,
    pub ingresses: Option<Watched<Ingress>>,
    pub ingress_classes: Option<Watched<IngressClass>>,
    pub tls_secrets: Option<Watched<Secret>>,
    /// Services, slices: what the Service rules, DNS and Ingress depend on.
    pub service_gen: watch::Receiver<u64>,
    /// Nodes.
    pub node_gen: watch::Receiver<u64>,
    /// Pods, namespaces, policies.
    pub policy_gen: watch::Receiver<u64>,
    /// Ingresses, classes, TLS secrets.
    pub ingress_gen: watch::Receiver<u64>,
}

impl Stores {
    pub fn start(client: &Client, kinds: StoreKinds, shutdown: &CancellationToken) -> Stores {
        let (svc_tx, service_gen) = watch::channel(0u64);
        let (node_tx, node_gen) = watch::channel(0u64);
        let (pol_tx, policy_gen) = watch::channel(0u64);
        let (ing_tx, ingress_gen) = watch::channel(0u64);
        let cfg = watcher::Config::default;
        let services = Watched::start(
            Api::all(client.clone()),
            cfg(),
            svc_tx.clone(),
            shutdown.clone(),
        );
        let slices = Watched::start(
            Api::all(client.clone()),
            cfg(),
            svc_tx.clone(),
            shutdown.clone(),
        );
        let nodes = Watched::start(Api::all(client.clone()), cfg(), node_tx, shutdown.clone());
        let pods = (kinds.pods || kinds.policies).then(|| {
            Watched::start(
                Api::all(client.clone()),
                cfg(),
                pol_tx.clone(),
                shutdown.clone(),
            )
        });
        let namespaces = kinds.policies.then(|| {
            Watched::start(
                Api::all(client.clone()),
                cfg(),
                pol_tx.clone(),
                shutdown.clone(),
            )
        });
        let policies = kinds.policies.then(|| {
            Watched::start(
                Api::all(client.clone()),
                cfg(),
                pol_tx.clone(),
                shutdown.clone(),
            )
        });
        let ingresses = kinds.ingresses.then(|| {
            Watched::start(
                Api::all(client.clone()),
                cfg(),
                ing_tx.clone(),
                shutdown.clone(),
            )
        });
        let ingress_classes = kinds.ingresses.then(|| {
            Watched::start(
                Api::all(client.clone()),
                cfg(),
                ing_tx.clone(),
                shutdown.clone(),
            )
        });
        let tls_secrets = kinds.ingresses.then(|| {
            Watched::start(
                Api::all(client.clone()),
                cfg().fields("type=kubernetes.io/tls"),
                ing_tx.clone(),
                shutdown.clone(),
            )
        });
        Stores {
            services,
            slices,
            nodes,
            pods,
            namespaces,
            policies,
            ingresses,
            ingress_classes,
            tls_secrets,
            service_gen,
            node_gen,
            policy_gen,
            ingress_gen,
        }
    }

    /// Waits for every cache's first complete list.
    pub async fn ready(&self) {
        self.services.ready().await;
        self.slices.ready().await;
        self.nodes.ready().await;
        if let Some(w) = &self.pods {
            w.ready().await;
        }
        if let Some(w) = &self.namespaces {
            w.ready().await;
        }
        if let Some(w) = &self.policies {
            w.ready().await;
        }
        if let Some(w) = &self.ingresses {
            w.ready().await;
        }
        if let Some(w) = &self.ingress_classes {
            w.ready().await;
        }
        if let Some(w) = &self.tls_secrets {
            w.ready().await;
        }
    }
}
