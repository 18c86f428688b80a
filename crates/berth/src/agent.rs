//! The node agent in the binary: `berth agent` (join another machine to a cluster),
//! `berth token` (print the full join token), and the agent `berth server` runs in-process —
//! through the same join (the token, `/cacerts`, the join endpoint), with an in-process kube
//! client carrying the node identity of the certificate it received.
//!
//! Wiring chosen here: berth's runtime and image store behind the CRI seam
//! ([`berth_cri_oci::OciContainerRuntime`]), berth's bridge pod network and node networking
//! (`net_node`), and image pulls from the cluster registry with the node token.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_agent::{Agent, AgentConfig, Credentials, JoinToken};
use berth_cri::ContainerRuntime;
use berth_cri_oci::{OciContainerRuntime, OciRuntimeConfig};
use tokio_util::sync::CancellationToken;

/// Flags follow k3s's agent where k3s has one.
#[derive(clap::Args, Debug, Clone)]
pub struct AgentArgs {
    /// The server to join (`https://host:port`).
    #[arg(long, env = "BERTH_URL")]
    pub server: String,
    /// The join token (`berth token` on the server prints it).
    #[arg(long, env = "BERTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the join token.
    #[arg(long, env = "BERTH_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Directory for the agent's state (`/var/lib/berth` as root).
    #[arg(long, short = 'd', env = "BERTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Name of this node (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// This node's address (default: the address that reaches the server).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// Labels for the Node (`key=value`).
    #[arg(long = "node-label")]
    pub node_labels: Vec<String>,
    /// Port of the agent's HTTPS endpoint (0: any free port).
    #[arg(long, default_value_t = 10250)]
    pub agent_port: u16,
    /// Cluster DNS servers for pods.
    #[arg(long, default_value = "10.43.0.10")]
    pub cluster_dns: Vec<IpAddr>,
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    #[command(flatten)]
    pub net: crate::net_node::NodeNetArgs,
}

fn data_root(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let root = match dir {
        Some(d) => d,
        None if nix::unistd::geteuid().is_root() => PathBuf::from("/var/lib/berth"),
        None => {
            PathBuf::from(std::env::var_os("HOME").context("HOME is not set; pass --data-dir")?)
                .join(".berth")
        }
    };
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    root.canonicalize()
        .with_context(|| format!("cannot resolve {}", root.display()))
}

fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_default()
}

fn parse_labels(labels: &[String]) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--node-label {l:?}: expected key=value"))
        })
        .collect()
}

/// The runtime behind the agent: berth's OCI runtime and image store.
fn container_runtime(
    data: &Path,
    credentials: &Credentials,
    token: &str,
    cred_dir: &Path,
    network: Arc<dyn berth_cri::PodNetwork>,
) -> anyhow::Result<Arc<dyn ContainerRuntime>> {
    let ca_file = cred_dir.join("ca.crt");
    std::fs::create_dir_all(cred_dir)?;
    std::fs::write(&ca_file, &credentials.ca)
        .with_context(|| format!("cannot write {}", ca_file.display()))?;
    let registry = credentials.registry.clone();
    let token = token.to_string();
    let endpoint: berth_cri_oci::EndpointFn = Arc::new(move |host: &str| {
        let mut cfg = berth_image::EndpointConfig {
            host: host.to_string(),
            ..Default::default()
        };
        if registry.as_deref() == Some(host) {
            // The cluster registry: cluster TLS, the node token pulls.
            cfg.ca_file = Some(ca_file.clone());
            cfg.username = Some("node".into());
            cfg.password = Some(token.clone());
        }
        cfg
    });
    let berth_binary = std::env::current_exe().context("cannot find the berth executable")?;
    let rt = OciContainerRuntime::new(
        OciRuntimeConfig {
            root: data.join("agent").join("cri"),
            images: data.join("images"),
            berth_binary,
            default_registry: credentials.registry.clone(),
            endpoint,
            log_max_size: 10 * 1024 * 1024,
            log_max_files: 5,
        },
        network,
    )
    .context("starting the container runtime")?;
    Ok(Arc::new(rt))
}

/// Joins (or reuses the credentials of an earlier join), retrying while the server starts.
async fn credentials(
    server: &str,
    token: &JoinToken,
    node: &str,
    ip: IpAddr,
    dir: &Path,
    shutdown: &CancellationToken,
) -> anyhow::Result<Credentials> {
    if let Some(c) = Credentials::load(dir)? {
        return Ok(c);
    }
    let hostnames: Vec<String> = [default_node_name()]
        .into_iter()
        .filter(|h| !h.is_empty() && berth_agent::validate_node_name(h).is_ok())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match berth_agent::join(server, token, node, &[ip], &hostnames).await {
            Ok(c) => {
                c.save(dir, server)?;
                return Ok(c);
            }
            Err(e) if e.is_retryable() && Instant::now() < deadline && !shutdown.is_cancelled() => {
                tracing::warn!(error = %e, "cannot join yet; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The host of an `https://host[:port][/...]` URL.
fn server_host(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("https://")
        .with_context(|| format!("--server {url:?}: expected https://host:port"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.is_empty() {
        bail!("--server {url:?} has no host");
    }
    Ok(host.to_string())
}

/// `berth agent`: joins the cluster at `--server` and runs this machine's pods.
pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    keep_memory_small();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("berth-agent")
        // Runtime calls block briefly; a bounded pool keeps bursts from spawning (and
        // keeping the memory of) one thread per pod.
        .max_blocking_threads(32)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args))
}

/// The agent runs for the life of the node next to its pods: it re-executes itself once with
/// mimalloc's eager arena commit off, which the allocator reads at its first allocation
/// (before `main`), saving ~12 MB of resident memory on an otherwise small process.
fn keep_memory_small() {
    const EAGER: &str = "MIMALLOC_ARENA_EAGER_COMMIT";
    if std::env::var_os(EAGER).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(EAGER, "0")
        .exec();
    // Only reached if the exec failed: carry on with the defaults.
    tracing::debug!(error = %err, "cannot re-execute with a smaller allocator arena");
}

async fn run_async(args: AgentArgs) -> anyhow::Result<()> {
    let data = data_root(args.data_dir.clone())?;
    let token_text = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read --token-file {}", f.display()))?,
        (None, None) => bail!("a join token is needed: --token, --token-file or BERTH_TOKEN"),
    };
    let token = JoinToken::parse(&token_text)?;
    let host = server_host(&args.server)?;
    let server_ip: IpAddr = match Some(host.as_str()) {
        Some(h) => match h.parse() {
            Ok(ip) => ip,
            Err(_) => tokio::net::lookup_host((h, 443))
                .await
                .with_context(|| format!("cannot resolve {h}"))?
                .next()
                .map(|a| a.ip())
                .with_context(|| format!("{h} has no address"))?,
        },
        None => bail!("--server {:?} has no host", args.server),
    };
    let node_ip = args
        .node_ip
        .or_else(|| berth_agent::source_address_for(server_ip))
        .context("cannot tell this node's address; pass --node-ip")?;
    let node = args.node_name.clone().unwrap_or_else(default_node_name);
    berth_agent::validate_node_name(&node)
        .map_err(|e| anyhow::anyhow!("node name {node:?}: {e} (pass --node-name)"))?;
    let shutdown = CancellationToken::new();
    let cred_dir = data.join("agent").join("credentials");
    let creds = credentials(&args.server, &token, &node, node_ip, &cred_dir, &shutdown).await?;
    let kube_cfg = creds.kube_config(&args.server).await?;
    let client = kube::Client::try_from(kube_cfg).context("API client")?;
    let networking =
        crate::net_node::prepare_node(&client, &node, &data, &args.net, &shutdown).await?;
    let runtime = container_runtime(
        &data,
        &creds,
        &token.secret,
        &cred_dir,
        networking.pod_network.clone(),
    )?;
    let mut config = AgentConfig::new(node, data.join("agent"), node_ip);
    config.port = args.agent_port;
    config.cluster_dns = args.cluster_dns.clone();
    config.cluster_domain = args.cluster_domain.clone();
    config.node_labels = parse_labels(&args.node_labels)?;
    let agent = Agent::new(config, client, runtime, creds)?;
    let task = tokio::spawn(agent.run(shutdown.clone()));
    let net_task = networking.spawn(shutdown.clone());
    crate::signals::terminated().await;
    tracing::info!("stopping the agent (containers keep running)");
    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(15), task).await {
        Ok(Ok(r)) => r?,
        Ok(Err(e)) => bail!("the agent panicked: {e}"),
        Err(_) => tracing::warn!("the agent did not stop within 15s"),
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), net_task).await;
    Ok(())
}

/// `berth token`: the full join token of a server's data dir.
pub fn print_token(data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let root = data_root(data_dir)?;
    let secret_path = root.join("server").join("token");
    let ca_path = root.join("server").join("tls").join("ca.crt");
    let secret = std::fs::read_to_string(&secret_path).with_context(|| {
        format!(
            "cannot read {} (has `berth server` run with this --data-dir?)",
            secret_path.display()
        )
    })?;
    let ca = std::fs::read_to_string(&ca_path)
        .with_context(|| format!("cannot read {}", ca_path.display()))?;
    println!("{}", JoinToken::format(&ca, secret.trim()));
    Ok(())
}

/// What `berth server` hands its in-process agent.
pub struct InServer<'a> {
    pub api: &'a berth_apiserver::ApiServer,
    pub pki: &'a berth_apiserver::pki::ClusterPki,
    pub data_root: &'a Path,
    /// Where the API server listens, and the address it advertises.
    pub bound: SocketAddr,
    pub bind_address: IpAddr,
    pub token: &'a str,
    pub node_name: Option<String>,
    pub agent_port: u16,
    pub cluster_dns: IpAddr,
    pub disable_agent: bool,
    pub net: &'a crate::net_node::NodeNetArgs,
}

/// Enables node joins and the API server's access to agents (streaming, node proxy, metrics),
/// then, unless disabled, joins this machine and runs its agent. Returns the agent's task.
pub async fn start_in_server(
    s: InServer<'_>,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<berth_agent::Result<()>>>> {
    let registry = std::fs::read(s.data_root.join("registry-endpoint.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["address"].as_str().map(String::from));
    s.api.enable_node_join(
        berth_apiserver::NodeJoin::new(s.pki.ca.clone()).with_registry(registry.clone()),
    );
    let kubelet_client = s.pki.client_cert(
        "apiserver-kubelet-client",
        "system:apiserver",
        &["system:masters"],
    )?;
    s.api
        .set_kubelet_client(berth_apiserver::KubeletClient::new(
            &kubelet_client,
            &s.pki.ca.cert_pem,
        )?);
    s.api
        .set_metrics_provider(Arc::new(berth_apiserver::KubeletMetrics::new(
            s.api.state(),
        )));
    if s.disable_agent {
        return Ok(None);
    }
    // Joining goes through the server's own HTTPS endpoint, like a remote agent's.
    let connect_ip = if s.bind_address.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        s.bind_address
    };
    let url = format!("https://{}", SocketAddr::new(connect_ip, s.bound.port()));
    let node_ip = if s.bind_address.is_unspecified() {
        berth_agent::source_address_for(IpAddr::from([192, 0, 2, 1])).unwrap_or(connect_ip)
    } else {
        s.bind_address
    };
    let node = s.node_name.clone().unwrap_or_else(default_node_name);
    berth_agent::validate_node_name(&node)
        .map_err(|e| anyhow::anyhow!("node name {node:?}: {e} (pass --node-name)"))?;
    let ca = &s.pki.ca.cert_pem;
    let token = JoinToken::parse(&JoinToken::format(ca, s.token))?;
    let cred_dir = s.data_root.join("agent").join("credentials");
    let mut creds = credentials(&url, &token, &node, node_ip, &cred_dir, &shutdown).await?;
    // The registry may listen elsewhere than at the first join (`--registry-port 0`).
    creds.registry = registry;
    // The in-process client carries the identity of the node's certificate.
    let der = {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(creds.client_certificate.as_bytes())
            .context("the node's client certificate")?
    };
    let identity = berth_apiserver::Identity::from_certificate(der.as_ref())
        .context("the node's client certificate names no user")?;
    let client = s.api.client(identity);
    let networking =
        crate::net_node::prepare_node(&client, &node, s.data_root, s.net, &shutdown).await?;
    let runtime = container_runtime(
        s.data_root,
        &creds,
        &token.secret,
        &cred_dir,
        networking.pod_network.clone(),
    )?;
    let mut config = AgentConfig::new(node, s.data_root.join("agent"), node_ip);
    config.port = s.agent_port;
    config.cluster_dns = vec![s.cluster_dns];
    config.node_labels.insert(
        "node-role.kubernetes.io/control-plane".into(),
        "true".into(),
    );
    let agent = Agent::new(config, client, runtime, creds)?;
    let mut ready = agent.ready();
    let net_task = networking.spawn(shutdown.clone());
    let task = tokio::spawn(async move {
        let r = agent.run(shutdown).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), net_task).await;
        r
    });
    // Wait until the node is registered, so `ready` means a usable node.
    let _ = tokio::time::timeout(Duration::from_secs(60), ready.wait_for(|r| r.is_some())).await;
    Ok(Some(task))
}
