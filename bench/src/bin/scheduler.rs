//! Scheduler throughput: (1) the scheduling cycle alone, pods/s with the snapshot in
//! memory (filters + scores + assume, no I/O), and (2) create → bound through the real API
//! server over the embedded store: N nodes and P pods created by concurrent clients, bound
//! by berth's scheduler through `pods/binding`; pods/s from the first create until every pod
//! is bound.
//!
//! `cargo build --release -p berth-bench --bin scheduler && ./target/release/scheduler
//!  [--nodes 5000] [--pods 30000] [--rounds 3] [--events] [--cycle-only]`
//!
//! The reference, kube-scheduler, is not installable here (no Debian package, no network
//! beyond the package registries), so the ratio is taken against its published
//! scheduler_perf floor at 5,000 nodes (680–810 pods/s); issue target ≥ 10,000 pods/s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_apiserver::{ApiConfig, ApiServer, Authenticator, Identity};
use berth_bench::{Stats, load_average};
use berth_scheduler::{Decision, PodInfo, Scheduler, SchedulerConfig, Snapshot, schedule};
use berth_store::Store;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// kube-scheduler's scheduler_perf threshold at 5,000 nodes (upper end of 680–810 pods/s).
const KUBE_SCHEDULER_PUBLISHED: f64 = 810.0;

struct Args {
    nodes: usize,
    pods: usize,
    rounds: usize,
    events: bool,
    cycle_only: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        nodes: 5000,
        pods: 30_000,
        rounds: 3,
        events: false,
        cycle_only: false,
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
            "--pods" => a.pods = num("--pods")?,
            "--rounds" => a.rounds = num("--rounds")?,
            "--events" => a.events = true,
            "--cycle-only" => a.cycle_only = true,
            other => bail!(
                "unknown flag {other} (known: --nodes N --pods N --rounds N --events --cycle-only)"
            ),
        }
    }
    if a.nodes == 0 || a.pods == 0 || a.rounds == 0 {
        bail!("--nodes, --pods and --rounds must be at least 1");
    }
    Ok(a)
}

fn node(i: usize) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": format!("bench-node-{i}"), "labels": {
            "kubernetes.io/hostname": format!("bench-node-{i}"),
            "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
        "status": {"allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .expect("valid node")
}

fn pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("p-{i}"), "namespace": "default", "labels": {"app": format!("a{}", i % 50)}},
        "spec": {"containers": [{"name": "c", "image": "pause", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
    }))
    .expect("valid pod")
}

/// The scheduling cycle alone: pods/s.
fn cycle_alone(nodes: usize, pods: usize) -> f64 {
    let mut snap = Snapshot::default();
    for i in 0..nodes {
        snap.upsert_node(&node(i));
    }
    let infos: Vec<PodInfo> = (0..pods).map(|i| PodInfo::from_pod(&pod(i))).collect();
    let start = Instant::now();
    let mut next = 0usize;
    for p in infos {
        let (d, examined) = schedule(&p, &snap, next % nodes);
        next += examined;
        match d {
            Decision::Node(n) => snap.assume(p, &n),
            Decision::Unschedulable { message } => panic!("benchmark pod did not fit: {message}"),
        }
    }
    pods as f64 / start.elapsed().as_secs_f64()
}

/// Create → bound through the API server and the embedded store: (create pods/s, bound
/// pods/s).
async fn end_to_end(args: &Args) -> Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(berth_store_sqlite::SqliteStore::open(
        dir.path().join("state.db"),
        Default::default(),
    )?);
    let config = ApiConfig {
        advertise: "10.255.255.1:6443".parse()?,
        ..ApiConfig::default()
    };
    let api = ApiServer::new(config, store, Authenticator::new()).await?;
    berth_apiserver::bootstrap(&api).await?;
    let admin = api.client(Identity::system("bench"));
    let nodes: Api<Node> = Api::all(admin.clone());
    futures::stream::iter(0..args.nodes)
        .map(|i| {
            let nodes = nodes.clone();
            async move {
                let n = node(i);
                nodes.create(&PostParams::default(), &n).await?;
                let status = json!({"status": n.status});
                nodes
                    .patch_status(
                        &format!("bench-node-{i}"),
                        &PatchParams::default(),
                        &Patch::Merge(&status),
                    )
                    .await?;
                Ok::<_, kube::Error>(())
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let shutdown = CancellationToken::new();
    let sched = Scheduler::new(
        SchedulerConfig {
            scheduled_events: args.events,
            bind_concurrency: 256,
            batch: 256,
            ..Default::default()
        },
        api.client(Identity::system("kube-scheduler")),
    )?;
    let mut ready = sched.ready();
    let sched_task = tokio::spawn(sched.run(shutdown.clone()));
    ready.wait_for(|r| *r).await?;

    // Count bindings as the watch shows them.
    let pods_api: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let total = args.pods;
    let counter = tokio::spawn({
        let pods_api = pods_api.clone();
        async move {
            let mut bound = std::collections::HashSet::new();
            let stream = watcher::watcher(pods_api, watcher::Config::default());
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                if let Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) = ev
                    && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
                {
                    bound.insert(p.metadata.name.unwrap_or_default());
                    if bound.len() >= total {
                        return Instant::now();
                    }
                }
            }
            Instant::now()
        }
    });
    let start = Instant::now();
    futures::stream::iter(0..args.pods)
        .map(|i| {
            let pods_api = pods_api.clone();
            async move { pods_api.create(&PostParams::default(), &pod(i)).await }
        })
        .buffer_unordered(128)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let created = start.elapsed();
    let done = tokio::time::timeout(Duration::from_secs(600), counter).await??;
    let bound = done.duration_since(start);
    shutdown.cancel();
    let _ = sched_task.await;
    Ok((
        args.pods as f64 / created.as_secs_f64(),
        args.pods as f64 / bound.as_secs_f64(),
    ))
}

fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "scheduler: {} nodes, {} pods, {} rounds; load average {}",
        args.nodes,
        args.pods,
        args.rounds,
        load_average()
    );
    let mut cycle = Vec::new();
    let mut created = Vec::new();
    let mut bound = Vec::new();
    for round in 0..args.rounds {
        let c = cycle_alone(args.nodes, args.pods);
        let (cr, b) = if args.cycle_only {
            (f64::NAN, f64::NAN)
        } else {
            rt.block_on(end_to_end(&args))?
        };
        println!(
            "round {round}: cycle alone {c:.0} pods/s; create {cr:.0} pods/s; create→bound {b:.0} pods/s"
        );
        cycle.push(c);
        created.push(cr);
        bound.push(b);
    }
    let (c, cr, b) = (Stats::of(&cycle), Stats::of(&created), Stats::of(&bound));
    println!("load average after: {}", load_average());
    println!("median scheduling cycle alone: {:.0} pods/s", c.median);
    println!(
        "median pod creation through the API server: {:.0} pods/s",
        cr.median
    );
    println!(
        "median create→bound (API server + embedded store): {:.0} pods/s",
        b.median
    );
    println!(
        "ratio create→bound / kube-scheduler published floor ({KUBE_SCHEDULER_PUBLISHED:.0} pods/s at 5,000 nodes): {:.2}",
        b.median / KUBE_SCHEDULER_PUBLISHED
    );
    Ok(())
}
