//! Node failover: how long from a node going silent until every pod it ran has a
//! replacement bound to another node, with berth's default node-lifecycle settings (grace
//! 8 s, monitor 1 s, NoExecute toleration capped at 2 s, eviction rate limits).
//!
//! The control plane (API server, controllers, scheduler) runs in this process with
//! simulated nodes heartbeating every 2 s (the agent's default lease renewal). A Deployment
//! spreads its replicas over the nodes; each round silences nodes (their leases stop being
//! renewed) and takes the time from the silence — from the moment the heartbeats stopped and
//! from the last lease renewal the control plane saw — until every replica is bound to a
//! node that still heartbeats, and until every one is Ready there.
//!
//! `cargo build --release -p berth-bench --bin failover && ./target/release/failover
//!  [--nodes 50] [--replicas 200] [--rounds 3] [--silent 1]`
//!
//! The reference is Kubernetes' default: node-monitor-grace-period 40 s (50 s before 1.32)
//! plus the default 300 s `tolerationSeconds` of `not-ready`/`unreachable`, about 5 min 40 s
//! before pods are evicted, then rescheduling. Target: ≤ 15 s by default.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use berth_bench::{Stats, load_average};
use berth_controllers::ControlPlaneConfig;
use berth_scheduler::SchedulerConfig;
use berth_testing::{SimulatedNodesConfig, TEST_CA_PEM, TestCluster, TestClusterOptions};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

/// Kubernetes' default: 40 s node-monitor grace period + 300 s default toleration.
const KUBERNETES_DEFAULT: Duration = Duration::from_secs(340);

struct Args {
    nodes: usize,
    replicas: usize,
    rounds: usize,
    silent: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        nodes: 50,
        replicas: 200,
        rounds: 3,
        silent: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = |name: &str| -> Result<usize> {
            it.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse()
                .with_context(|| format!("{name} must be a number"))
        };
        match flag.as_str() {
            "--nodes" => a.nodes = num("--nodes")?,
            "--replicas" => a.replicas = num("--replicas")?,
            "--rounds" => a.rounds = num("--rounds")?,
            "--silent" => a.silent = num("--silent")?,
            other => {
                bail!("unknown flag {other} (known: --nodes N --replicas N --rounds N --silent N)")
            }
        }
    }
    if a.nodes < 2 || a.replicas == 0 || a.rounds == 0 || a.silent == 0 {
        bail!("--nodes must be at least 2; --replicas, --rounds and --silent at least 1");
    }
    if a.silent * a.rounds >= a.nodes {
        bail!("--silent × --rounds must leave live nodes (fewer than --nodes)");
    }
    Ok(a)
}

fn deployment(replicas: usize) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "web", "image": "nginx:1.27",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
                    // Spread the replicas, so every node runs some.
                    "topologySpreadConstraints": [{"maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": {"app": "web"}}}]
                }
            }
        }
    }))?)
}

fn node_of(p: &Pod) -> Option<&str> {
    p.spec.as_ref()?.node_name.as_deref()
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Live replicas: (bound away from the silent nodes, of which Ready).
async fn replicas_elsewhere(pods: &Api<Pod>, silent: &BTreeSet<String>) -> Result<(usize, usize)> {
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items;
    let away: Vec<&Pod> = list
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| node_of(p).is_some_and(|n| !silent.contains(n)))
        .collect();
    Ok((away.len(), away.iter().filter(|p| ready(p)).count()))
}

struct Round {
    /// Pods the silent nodes ran.
    displaced: usize,
    /// Silence → all replicas bound elsewhere, from the stop of the heartbeats.
    bound: Duration,
    /// The same, from the last lease renewal the control plane recorded.
    bound_from_renewal: Duration,
    /// Silence → all replicas Ready elsewhere.
    ready: Duration,
}

async fn round(
    cluster: &TestCluster,
    args: &Args,
    silent: &mut BTreeSet<String>,
    victims: &[String],
) -> Result<Round> {
    let client = cluster.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes = cluster.nodes().context("simulated nodes")?;
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items;
    let displaced = list
        .iter()
        .filter(|p| node_of(p).is_some_and(|n| victims.iter().any(|v| v == n)))
        .count();
    for v in victims {
        nodes.stop_heartbeat(v);
    }
    let stopped = Instant::now();
    let stopped_wall = SystemTime::now();
    silent.extend(victims.iter().cloned());
    // The last renewal each victim made (one may land right after the stop was asked).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut last_renewal = None;
    for v in victims {
        let lease = leases.get(v).await?;
        if let Some(t) = lease.spec.and_then(|s| s.renew_time) {
            let t: SystemTime = t.0.into();
            last_renewal = Some(last_renewal.map_or(t, |l: SystemTime| l.max(t)));
        }
    }
    let lead = last_renewal
        .and_then(|t| stopped_wall.duration_since(t).ok())
        .unwrap_or_default();
    let mut bound = None;
    let deadline = stopped + Duration::from_secs(600);
    loop {
        let (away, ready) = replicas_elsewhere(&pods, silent).await?;
        if bound.is_none() && away >= args.replicas {
            bound = Some(stopped.elapsed());
        }
        if let Some(b) = bound
            && ready >= args.replicas
        {
            return Ok(Round {
                displaced,
                bound: b,
                bound_from_renewal: b + lead,
                ready: stopped.elapsed(),
            });
        }
        if Instant::now() > deadline {
            bail!("replicas not replaced within 600 s ({away} bound elsewhere, {ready} ready)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(args: &Args) -> Result<Vec<Round>> {
    let controllers = ControlPlaneConfig {
        root_ca_pem: Some(TEST_CA_PEM.to_string()),
        ..ControlPlaneConfig::default()
    };
    let cluster = TestCluster::start(TestClusterOptions {
        controllers: Some(controllers),
        scheduler: Some(SchedulerConfig::default()),
        nodes: Some(SimulatedNodesConfig {
            count: args.nodes,
            ..SimulatedNodesConfig::default()
        }),
    })
    .await?;
    let client = cluster.client();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment(args.replicas)?)
        .await?;
    let mut silent = BTreeSet::new();
    let started = Instant::now();
    while replicas_elsewhere(&pods, &silent).await?.1 < args.replicas {
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the Deployment did not become ready within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let names = cluster.nodes().context("simulated nodes")?.node_names();
    let mut rounds = Vec::new();
    for r in 0..args.rounds {
        let victims: Vec<String> = names[r * args.silent..(r + 1) * args.silent].to_vec();
        let res = round(&cluster, args, &mut silent, &victims).await?;
        println!(
            "round {r}: {} silent node(s) ran {} pods; all {} replicas bound elsewhere {:.2} s after the heartbeats stopped ({:.2} s after the last renewal), Ready {:.2} s",
            victims.len(),
            res.displaced,
            args.replicas,
            res.bound.as_secs_f64(),
            res.bound_from_renewal.as_secs_f64(),
            res.ready.as_secs_f64(),
        );
        rounds.push(res);
        // Let the control plane settle (rate limiter, evictions) before the next round.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    cluster.stop().await;
    Ok(rounds)
}

fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args()?;
    println!(
        "failover: {} simulated nodes (lease every 2 s), {} replicas, {} rounds of {} silent node(s); load average {}",
        args.nodes,
        args.replicas,
        args.rounds,
        args.silent,
        load_average()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rounds = rt.block_on(run(&args))?;
    let secs = |f: fn(&Round) -> Duration| {
        Stats::of(
            &rounds
                .iter()
                .map(|r| f(r).as_secs_f64())
                .collect::<Vec<_>>(),
        )
    };
    let (bound, renewal, ready) = (
        secs(|r| r.bound),
        secs(|r| r.bound_from_renewal),
        secs(|r| r.ready),
    );
    println!("load average after: {}", load_average());
    println!(
        "silence → replacements bound elsewhere: median {:.2} s, max {:.2} s (from the last renewal: median {:.2} s, max {:.2} s; target ≤ 15 s)",
        bound.median, bound.max, renewal.median, renewal.max
    );
    println!(
        "silence → replacements Ready: median {:.2} s, max {:.2} s",
        ready.median, ready.max
    );
    println!(
        "ratio to Kubernetes' default ({} s): {:.3}",
        KUBERNETES_DEFAULT.as_secs(),
        renewal.max / KUBERNETES_DEFAULT.as_secs_f64()
    );
    Ok(())
}
