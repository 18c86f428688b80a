//! `berth server`: one cluster node — the embedded store, the API server, the control-plane
//! controllers and (in later steps) the registry and the in-process agent — supervised
//! together: started in order, all stopped on the first failure or on SIGTERM/SIGINT, in
//! reverse order.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_apiserver::{ApiConfig, ApiServer, Authenticator, Identity, pki};
use berth_store::Store;
use tokio_util::sync::CancellationToken;

use crate::datadir::DataDir;

/// Flags follow k3s's names where k3s has one.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Directory holding the cluster's state, certificates and kubeconfig.
    #[arg(long, short = 'd', env = "BERTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Do not run the node agent on this machine (control plane only).
    #[arg(long)]
    pub disable_agent: bool,
    /// Address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    pub https_listen_port: u16,
    /// Address advertised to clients (kubeconfig, discovery); default: loopback when bound to
    /// all interfaces.
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    /// Extra names and IPs for the serving certificate.
    #[arg(long = "tls-san")]
    pub tls_san: Vec<String>,
    /// Pod network.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: ipnet::Ipv4Net,
    /// Service ClusterIP range.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: ipnet::Ipv4Net,
    /// Cluster DNS service IP.
    #[arg(long, default_value = "10.43.0.10")]
    pub cluster_dns: IpAddr,
    /// NodePort range.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// The store: `etcd://host:2379[,host:2379...]` for an etcd cluster; default: the
    /// embedded store in the data dir.
    #[arg(long)]
    pub datastore_endpoint: Option<String>,
    /// Components not to run (e.g. `--disable registry`).
    #[arg(long)]
    pub disable: Vec<String>,
    /// Name of this node.
    #[arg(long)]
    pub node_name: Option<String>,
    /// Development: run N simulated nodes (fake kubelets that accept pods and report them
    /// running) so the control plane can be tried without containers.
    #[arg(long, default_value_t = 0)]
    pub simulated_nodes: usize,
    /// Seconds new pods tolerate a not-ready node before eviction (Kubernetes: 300).
    #[arg(long, default_value_t = berth_apiserver::DEFAULT_TOLERATION_SECONDS)]
    pub default_not_ready_toleration_seconds: i64,
    /// Seconds new pods tolerate an unreachable node before eviction (Kubernetes: 300).
    #[arg(long, default_value_t = berth_apiserver::DEFAULT_TOLERATION_SECONDS)]
    pub default_unreachable_toleration_seconds: i64,
    /// Port of the cluster's registry (0: any free port); `--disable registry` turns it off.
    #[arg(long, default_value_t = 5000)]
    pub registry_port: u16,
    /// Port of the in-process node agent's HTTPS endpoint (0: any free port).
    #[arg(long, default_value_t = 10250)]
    pub agent_port: u16,
    #[command(flatten)]
    pub net: crate::net_node::ServerNetArgs,
}

fn parse_port_range(s: &str) -> anyhow::Result<(u16, u16)> {
    let (a, b) = s
        .split_once('-')
        .with_context(|| format!("--service-node-port-range {s:?}: expected FROM-TO"))?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    anyhow::ensure!(
        a <= b,
        "--service-node-port-range {s:?}: FROM must not exceed TO"
    );
    Ok((a, b))
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let data = DataDir::resolve(args.data_dir.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("berth-server")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args, data))
}

async fn serve(args: ServerArgs, data: DataDir) -> anyhow::Result<()> {
    let _lock = data.lock_server()?;
    let node_port_range = parse_port_range(&args.service_node_port_range)?;
    let advertise_ip = args
        .advertise_address
        .unwrap_or(if args.bind_address.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            args.bind_address
        });
    let bind = SocketAddr::new(args.bind_address, args.https_listen_port);
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| {
        format!("cannot listen on {bind} (is another server running? use --https-listen-port)")
    })?;
    let bound = listener.local_addr()?;
    let advertise = SocketAddr::new(advertise_ip, bound.port());

    // PKI and credentials.
    let pki = pki::ClusterPki::load_or_create(&data.tls_dir())?;
    let config = ApiConfig {
        bind,
        advertise,
        service_cidr: args.service_cidr,
        node_port_range,
        cluster_dns: args.cluster_dns,
        default_not_ready_toleration_seconds: args.default_not_ready_toleration_seconds,
        default_unreachable_toleration_seconds: args.default_unreachable_toleration_seconds,
    };
    let mut dns: Vec<String> = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut ips: Vec<IpAddr> = vec![
        IpAddr::from([127, 0, 0, 1]),
        config.kubernetes_service_ip(),
        advertise_ip,
    ];
    if !args.bind_address.is_unspecified() {
        ips.push(args.bind_address);
    }
    if let Ok(h) = nix::unistd::gethostname() {
        dns.push(h.to_string_lossy().into_owned());
    }
    for san in &args.tls_san {
        match san.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(san.clone()),
        }
    }
    let serving = pki.serving_cert("apiserver", &dns, &ips)?;
    let admin = pki.client_cert("admin", "system:admin", &["system:masters"])?;
    let server_url = format!("https://{advertise}");
    let kubeconfig = pki::kubeconfig(&server_url, &pki.ca.cert_pem, &admin, "default", "default");
    pki::write_file(&data.kubeconfig_path(), kubeconfig.as_bytes(), 0o600)?;
    let token = data.node_token()?;

    let auth = Authenticator::new();
    auth.add_token(
        token.clone(),
        Identity::new(
            "system:node-bootstrap",
            &["system:bootstrappers", "system:authenticated"],
        ),
    );

    // Store.
    let store: Arc<dyn Store> =
        crate::datastore::open(&data, args.datastore_endpoint.as_deref()).await?;

    // API server.
    let api = ApiServer::new(config, store.clone(), auth).await?;
    let tls = berth_apiserver::tls_config(&serving, &pki.ca.cert_pem)?;

    let shutdown = CancellationToken::new();
    let serving_task =
        tokio::spawn(
            api.clone()
                .serve(listener, tls, shutdown.clone(), Duration::from_secs(5)),
        );

    berth_apiserver::bootstrap(&api)
        .await
        .context("bootstrapping the cluster's built-in objects")?;
    // Controllers (in-process kube clients of this server).
    let mut control_plane = crate::control_plane::start(
        &api,
        &pki.ca.cert_pem,
        &args.disable,
        args.simulated_nodes,
        args.cluster_cidr,
        shutdown.clone(),
    )?;
    let network = crate::net_node::start_cluster_network(
        crate::net_node::ClusterNet {
            client: api.client(berth_apiserver::Identity::system("network")),
            cluster_cidr: args.cluster_cidr,
            service_cidr: args.service_cidr,
            cluster_dns: args.cluster_dns,
            disable: &args.disable,
            args: &args.net,
        },
        shutdown.clone(),
    )
    .await?;
    let registry = if args.disable.iter().any(|d| d == "registry") {
        None
    } else {
        let (task, addr) = crate::cluster_registry::start(
            &data,
            &pki,
            crate::cluster_registry::Settings {
                bind: args.bind_address,
                port: args.registry_port,
                advertise: advertise_ip,
                dns: &dns,
                ips: &ips,
                node_token: &token,
            },
            shutdown.clone(),
        )
        .await?;
        tracing::info!(address = %addr, "cluster registry is ready");
        Some(task)
    };
    let agent = crate::agent::start_in_server(
        crate::agent::InServer {
            api: &api,
            pki: &pki,
            data_root: data.root(),
            bound,
            bind_address: args.bind_address,
            token: &token,
            node_name: args.node_name.clone(),
            agent_port: args.agent_port,
            cluster_dns: args.cluster_dns,
            disable_agent: args.disable_agent,
            net: &args.net.node,
        },
        shutdown.clone(),
    )
    .await?;
    tracing::info!(address = %bound, kubeconfig = %data.kubeconfig_path().display(), "berth server is ready");
    data.write_ready(bound)?;

    tokio::select! {
        _ = crate::signals::terminated() => {}
        why = control_plane.failed() => tracing::error!("{why}; shutting down"),
    }
    tracing::info!("shutting down");
    shutdown.cancel();
    control_plane.stop().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), network).await;
    if let Some(task) = agent {
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    }
    if let Some(task) = registry {
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "cluster registry stopped with an error"),
            Err(_) => tracing::warn!("cluster registry did not stop within 10s"),
            _ => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), serving_task).await;
    tracing::info!("stopped");
    Ok(())
}

/// Prints the admin kubeconfig of a data dir (`berth kubeconfig`).
pub fn print_kubeconfig(data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let data = DataDir::resolve(data_dir)?;
    let path = data.kubeconfig_path();
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (has `berth server` run with this --data-dir?)",
            path.display()
        )
    })?;
    print!("{text}");
    Ok(())
}
