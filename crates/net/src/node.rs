//! The per-node networking component: keeps the pod network's podCIDR and peer routes, the
//! Service and NetworkPolicy rules, the cluster DNS server and the Ingress proxy in step
//! with the API, level-triggered from shared watch caches.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::bridge::BridgeNetwork;
use crate::dns::index::DnsIndex;
use crate::dns::server::{DnsServer, SharedIndex, upstreams_from_resolv_conf};
use crate::error::{NetError, Result};
use crate::ingress::proxy::{IngressConfig, IngressProxy};
use crate::ingress::routes::RouteTable;
use crate::ingress::tls::{CertTable, SniResolver, self_signed};
use crate::ingress_class::{CONTROLLER, IngressClassFilter};
use crate::nft::{ChainSpec, Ruleset};
use crate::policy;
use crate::proxy::sync::{ProxyConfig, ServiceRules};
use crate::routes::PeerRoute;
use crate::stores::{StoreKinds, Stores};

/// How one node's networking runs.
#[derive(Debug, Clone)]
pub struct NodeNetworkConfig {
    pub node_name: String,
    pub cluster_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    /// The cluster DNS Service address (`10.43.0.10`).
    pub cluster_dns: Ipv4Addr,
    /// The nftables table (`berth`).
    pub table: String,
    /// Enforce NetworkPolicy.
    pub network_policy: bool,
    /// How often vanished sandboxes' addresses are collected.
    pub gc_interval: Duration,
    /// How often the rules are re-applied even without changes (repairs outside edits).
    pub resync_interval: Duration,
    /// Delete the table, routes and bridge on shutdown when no sandbox is left.
    pub cleanup_on_exit: bool,
    /// Serve cluster DNS on this node (needs the pod network).
    pub dns: Option<DnsSettings>,
    /// Run the Ingress proxy on this node.
    pub ingress: Option<IngressConfig>,
}

/// The node-local cluster DNS server.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// Port on the bridge address (53).
    pub port: u16,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// Where the upstream resolvers are listed (the host's `/etc/resolv.conf`).
    pub resolv_conf: PathBuf,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            port: 53,
            domain: "cluster.local".into(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
        }
    }
}

impl NodeNetworkConfig {
    pub fn new(node_name: &str) -> NodeNetworkConfig {
        NodeNetworkConfig {
            node_name: node_name.to_string(),
            cluster_cidr: "10.42.0.0/16".parse().expect("valid"),
            service_cidr: "10.43.0.0/16".parse().expect("valid"),
            cluster_dns: Ipv4Addr::new(10, 43, 0, 10),
            table: "berth".into(),
            network_policy: true,
            gc_interval: Duration::from_secs(30),
            resync_interval: Duration::from_secs(60),
            cleanup_on_exit: true,
            dns: Some(DnsSettings::default()),
            ingress: Some(IngressConfig::default()),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.node_name.is_empty() {
            return Err(NetError::Config {
                field: "node_name",
                reason: "must not be empty".into(),
            });
        }
        if !self.service_cidr.contains(&self.cluster_dns) {
            return Err(NetError::Config {
                field: "cluster_dns",
                reason: format!(
                    "{} is outside the service CIDR {}",
                    self.cluster_dns, self.service_cidr
                ),
            });
        }
        if self.gc_interval.is_zero() || self.resync_interval.is_zero() {
            return Err(NetError::Config {
                field: "intervals",
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }
}

/// What the node's networking last did (for readiness checks, tests and benchmarks).
#[derive(Debug, Clone, Default)]
pub struct NodeNetworkStatus {
    /// The caches have listed everything and the first rules are in place.
    pub synced: bool,
    /// The node's podCIDR as configured on the bridge.
    pub pod_cidr: Option<Ipv4Net>,
    /// Number of rule transactions applied so far.
    pub applies: u64,
    pub service_ports: usize,
    pub rules: usize,
    /// The address the node-local DNS server answers on (for the cluster DNS address).
    pub dns_listener: Option<SocketAddrV4>,
    pub last_error: Option<String>,
}

/// The component.
pub struct NodeNetwork {
    client: Client,
    config: NodeNetworkConfig,
    pod_network: Option<Arc<BridgeNetwork>>,
    status: watch::Sender<NodeNetworkStatus>,
}

/// The running DNS server.
struct DnsRunning {
    index: SharedIndex,
    listen: SocketAddrV4,
    stop: CancellationToken,
}

/// The running Ingress proxy.
struct IngressRunning {
    proxy: Arc<IngressProxy>,
    fallback: Arc<rustls::sign::CertifiedKey>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl IngressRunning {
    async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

fn internal_ipv4(node: &Node) -> Option<Ipv4Addr> {
    let addrs = node.status.as_ref()?.addresses.as_ref()?;
    addrs
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .chain(addrs.iter().filter(|a| a.type_ == "ExternalIP"))
        .find_map(|a| a.address.parse::<Ipv4Addr>().ok())
}

fn pod_cidr(node: &Node) -> Option<Ipv4Net> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidrs
        .iter()
        .flatten()
        .chain(spec.pod_cidr.iter())
        .find_map(|c| c.parse::<Ipv4Net>().ok())
}

impl NodeNetwork {
    /// `pod_network`: the node's pod network, when pods run here (the agent's); without it
    /// only Service, policy and Ingress work is done (no routes, no DNS).
    pub fn new(
        config: NodeNetworkConfig,
        client: Client,
        pod_network: Option<Arc<BridgeNetwork>>,
    ) -> Result<NodeNetwork> {
        config.validate()?;
        Ok(NodeNetwork {
            client,
            config,
            pod_network,
            status: watch::channel(NodeNetworkStatus::default()).0,
        })
    }

    pub fn status(&self) -> watch::Receiver<NodeNetworkStatus> {
        self.status.subscribe()
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let stores = Arc::new(Stores::start(
            &self.client,
            StoreKinds {
                pods: true,
                policies: self.config.network_policy,
                ingresses: self.config.ingress.is_some(),
            },
            &shutdown,
        ));
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = stores.ready() => {}
        }
        let mut dns: Option<DnsRunning> = None;
        let mut ingress: Option<IngressRunning> = None;
        let mut ingress_retry = tokio::time::Instant::now();
        let mut ing_gen = stores.ingress_gen.clone();
        let mut last_ingress_errors: BTreeSet<String> = BTreeSet::new();
        let mut rules = ServiceRules::new(self.proxy_config(None))?;
        let mut svc_gen = stores.service_gen.clone();
        let mut node_gen = stores.node_gen.clone();
        let mut pol_gen = stores.policy_gen.clone();
        let mut gc = tokio::time::interval(self.config.gc_interval);
        let mut resync = tokio::time::interval(self.config.resync_interval);
        gc.tick().await;
        resync.tick().await;
        let mut nodes_dirty = true;
        let mut last_errors: BTreeSet<String> = BTreeSet::new();
        loop {
            if nodes_dirty {
                match self.sync_nodes(&stores).await {
                    Ok(()) => nodes_dirty = false,
                    Err(e) => {
                        tracing::warn!(error = %e, "node network: syncing routes");
                        self.status
                            .send_modify(|s| s.last_error = Some(e.to_string()));
                    }
                }
            }
            let dns_on = self.dns_enabled(&stores);
            let dns_target = if dns_on { self.dns_target() } else { None };
            if rules.config().cluster_dns != dns_target {
                rules = ServiceRules::new(self.proxy_config(dns_target))?;
            }
            self.sync_dns(&stores, dns_target, &mut dns, &shutdown)
                .await;
            self.status
                .send_modify(|s| s.dns_listener = dns_target.map(|(_, l)| l));
            if tokio::time::Instant::now() >= ingress_retry
                && let Err(e) = self.manage_ingress(&stores, &mut ingress, &shutdown).await
            {
                tracing::warn!(error = %e, "ingress proxy cannot start (will retry)");
                self.status
                    .send_modify(|s| s.last_error = Some(e.to_string()));
                ingress_retry = tokio::time::Instant::now() + Duration::from_secs(10);
            }
            if let Some(r) = &ingress {
                self.sync_ingress(&stores, r, &mut last_ingress_errors);
            }
            match self.sync_rules(&stores, &mut rules, &mut last_errors).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "node network: applying rules (will retry)");
                    self.status
                        .send_modify(|s| s.last_error = Some(e.to_string()));
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = svc_gen.changed() => {}
                _ = pol_gen.changed() => {}
                _ = ing_gen.changed() => {}
                _ = node_gen.changed() => nodes_dirty = true,
                _ = tokio::time::sleep_until(ingress_retry), if ingress_retry > tokio::time::Instant::now() => {}
                _ = gc.tick() => {
                    if let Some(net) = &self.pod_network
                        && let Err(e) = net.garbage_collect().await
                    {
                        tracing::warn!(error = %e, "pod network: garbage collection");
                    }
                }
                _ = resync.tick() => {
                    rules = ServiceRules::new(self.proxy_config(rules.config().cluster_dns))?;
                    nodes_dirty = true;
                }
            }
        }
        if let Some(d) = dns {
            d.stop.cancel();
        }
        if let Some(r) = ingress {
            r.stop().await;
        }
        if self.config.cleanup_on_exit
            && let Some(net) = &self.pod_network
        {
            match net.remove_if_unused().await {
                Ok(true) => {
                    if let Err(e) = rules.remove().await {
                        tracing::warn!(error = %e, "removing the node's rules");
                    }
                }
                Ok(false) => tracing::info!(
                    "sandboxes still hold addresses: keeping the pod network and rules"
                ),
                Err(e) => tracing::warn!(error = %e, "removing the pod network"),
            }
        }
        Ok(())
    }

    /// Cluster DNS is on when the cluster has the `kube-system/kube-dns` Service at the
    /// cluster DNS address (`berth server --disable dns` leaves it out).
    fn dns_enabled(&self, stores: &Stores) -> bool {
        self.config.dns.is_some()
            && stores.services.all().iter().any(|s| {
                s.metadata.namespace.as_deref() == Some("kube-system")
                    && s.metadata.name.as_deref() == Some("kube-dns")
                    && s.spec.as_ref().and_then(|sp| sp.cluster_ip.as_deref())
                        == Some(self.config.cluster_dns.to_string().as_str())
            })
    }

    /// Runs the Ingress proxy while the cluster has an IngressClass of berth's controller
    /// (`berth server --disable ingress` leaves it out).
    async fn manage_ingress(
        &self,
        stores: &Stores,
        running: &mut Option<IngressRunning>,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let Some(base) = &self.config.ingress else {
            return Ok(());
        };
        let class = stores.ingress_classes.as_ref().and_then(|cs| {
            let all = cs.all();
            let ours: Vec<String> = all
                .iter()
                .filter(|c| {
                    c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
                })
                .filter_map(|c| c.metadata.name.clone())
                .collect();
            ours.iter()
                .find(|n| **n == base.class)
                .or(ours.first())
                .cloned()
        });
        match (
            running.as_ref().map(|r| r.proxy.config().class.clone()),
            class,
        ) {
            (None, None) => Ok(()),
            (Some(have), Some(want)) if have == want => Ok(()),
            (Some(_), want) => {
                if let Some(r) = running.take() {
                    r.stop().await;
                }
                tracing::info!(class = ?want, "ingress class changed");
                if want.is_some() {
                    Box::pin(self.manage_ingress(stores, running, shutdown)).await
                } else {
                    Ok(())
                }
            }
            (None, Some(class)) => {
                let mut cfg = base.clone();
                cfg.class = class;
                let proxy = IngressProxy::new(cfg, SniResolver::default());
                let listeners = proxy.bind()?;
                let (http, https) = (listeners.http_addr(), listeners.https_addr());
                let stop = shutdown.child_token();
                let task = tokio::spawn(proxy.clone().serve(listeners, stop.clone()));
                tracing::info!(?http, ?https, class = %proxy.config().class, "ingress proxy serving");
                *running = Some(IngressRunning {
                    proxy,
                    fallback: self_signed()?,
                    stop,
                    task,
                });
                Ok(())
            }
        }
    }

    fn proxy_config(&self, dns: Option<(Ipv4Addr, SocketAddrV4)>) -> ProxyConfig {
        ProxyConfig {
            node_name: self.config.node_name.clone(),
            cluster_cidr: self.config.cluster_cidr,
            service_cidr: self.config.service_cidr,
            table: self.config.table.clone(),
            cluster_dns: dns,
        }
    }

    /// Where cluster DNS is answered on this node, once the bridge has its address.
    fn dns_target(&self) -> Option<(Ipv4Addr, SocketAddrV4)> {
        let port = self.config.dns.as_ref()?.port;
        let (_, gw) = self.pod_network.as_ref()?.pod_cidr()?;
        Some((self.config.cluster_dns, SocketAddrV4::new(gw, port)))
    }

    async fn sync_nodes(&self, stores: &Stores) -> Result<()> {
        let nodes = stores.nodes.all();
        if let Some(net) = &self.pod_network {
            let own = nodes
                .iter()
                .find(|n| n.metadata.name.as_deref() == Some(self.config.node_name.as_str()));
            if let Some(cidr) = own.and_then(|n| pod_cidr(n))
                && net.pod_cidr().map(|(c, _)| c) != Some(cidr)
            {
                net.configure(cidr).await?;
                self.status.send_modify(|s| s.pod_cidr = Some(cidr));
            }
            let peers: Vec<PeerRoute> = nodes
                .iter()
                .filter(|n| n.metadata.name.as_deref() != Some(self.config.node_name.as_str()))
                .filter_map(|n| {
                    Some(PeerRoute {
                        node: n.metadata.name.clone()?,
                        pod_cidr: pod_cidr(n)?,
                        node_ip: internal_ipv4(n)?,
                    })
                })
                .collect();
            if net.pod_cidr().is_some() {
                net.sync_peer_routes(&peers).await?;
            }
        }
        Ok(())
    }

    /// Runs the DNS server on `target`'s listener (stops it when `None`); refreshes its index.
    async fn sync_dns(
        &self,
        stores: &Stores,
        target: Option<(Ipv4Addr, SocketAddrV4)>,
        dns: &mut Option<DnsRunning>,
        shutdown: &CancellationToken,
    ) {
        let Some(settings) = &self.config.dns else {
            return;
        };
        if dns.as_ref().map(|d| d.listen) != target.map(|(_, l)| l)
            && let Some(d) = dns.take()
        {
            d.stop.cancel();
        }
        let Some((vip, listen)) = target else { return };
        if dns.is_none() {
            let resolv = std::fs::read_to_string(&settings.resolv_conf).unwrap_or_else(|e| {
                tracing::warn!(path = %settings.resolv_conf.display(), error = %e, "cannot read the upstream resolvers: only cluster names will resolve");
                String::new()
            });
            let upstreams =
                upstreams_from_resolv_conf(&resolv, &[IpAddr::V4(vip), IpAddr::V4(*listen.ip())]);
            match DnsServer::bind(SocketAddr::V4(listen)).await {
                Ok((udp, tcp)) => {
                    let index = SharedIndex::default();
                    let stop = shutdown.child_token();
                    tokio::spawn(DnsServer::new(index.clone(), upstreams.clone()).serve(
                        udp,
                        tcp,
                        stop.clone(),
                    ));
                    tracing::info!(%listen, cluster_dns = %vip, upstreams = ?upstreams, "cluster DNS serving");
                    *dns = Some(DnsRunning {
                        index,
                        listen,
                        stop,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster DNS cannot start (will retry)");
                    return;
                }
            }
        }
        if let Some(d) = dns {
            let pods = stores.pods.as_ref().map(|p| p.all()).unwrap_or_default();
            let services = stores.services.all();
            let slices = stores.slices.all();
            d.index.set(DnsIndex::build(
                &settings.domain,
                services.iter().map(|s| s.as_ref()),
                slices.iter().map(|s| s.as_ref()),
                pods.iter().map(|p| p.as_ref()),
            ));
        }
    }

    /// Rebuilds the Ingress routes and certificates.
    fn sync_ingress(
        &self,
        stores: &Stores,
        running: &IngressRunning,
        last_errors: &mut BTreeSet<String>,
    ) {
        let (Some(ings), Some(classes), Some(secrets)) = (
            &stores.ingresses,
            &stores.ingress_classes,
            &stores.tls_secrets,
        ) else {
            return;
        };
        let proxy = &running.proxy;
        let filter = IngressClassFilter::new(&proxy.config().class, &classes.all());
        let (routes, mut errors) = RouteTable::build(
            &ings.all(),
            &filter,
            &stores.services.all(),
            &stores.slices.all(),
        );
        let (certs, cert_errors) =
            CertTable::build(&routes, &secrets.all(), running.fallback.clone());
        errors.extend(cert_errors);
        proxy.set_routes(routes);
        proxy.certs().set(certs);
        let msgs: BTreeSet<String> = errors.iter().map(|e| e.to_string()).collect();
        for m in msgs.difference(last_errors) {
            tracing::warn!("ingress: {m}");
        }
        *last_errors = msgs;
    }

    async fn sync_rules(
        &self,
        stores: &Stores,
        rules: &mut ServiceRules,
        last_errors: &mut BTreeSet<String>,
    ) -> Result<()> {
        let services = stores.services.all();
        let slices = stores.slices.all();
        let (dispatch, chains, mut errors) =
            match (&stores.pods, &stores.namespaces, &stores.policies) {
                (Some(pods), Some(nss), Some(pols)) => {
                    let r = policy::render(
                        &self.config.node_name,
                        &pods.all(),
                        &nss.all(),
                        &pols.all(),
                    );
                    (r.dispatch, r.chains, r.errors)
                }
                _ => (Vec::new(), Vec::<ChainSpec>::new(), Vec::new()),
            };
        let extra = Ruleset {
            chains,
            sets: Vec::new(),
        };
        let report = rules
            .sync(
                services.iter().map(|s| s.as_ref()),
                slices.iter().map(|s| s.as_ref()),
                dispatch,
                extra,
            )
            .await?;
        errors.extend(report.skipped);
        let msgs: BTreeSet<String> = errors.iter().map(|e| e.to_string()).collect();
        for m in msgs.difference(last_errors) {
            tracing::warn!("skipped: {m}");
        }
        *last_errors = msgs;
        if report.applied {
            tracing::debug!(
                service_ports = report.service_ports,
                rules = report.rules,
                elapsed_ms = report.elapsed.as_secs_f64() * 1e3,
                "rules applied"
            );
        }
        self.status.send_modify(|s| {
            s.synced = true;
            s.service_ports = report.service_ports;
            s.rules = report.rules;
            if report.applied {
                s.applies += 1;
            }
            s.last_error = None;
        });
        Ok(())
    }
}
