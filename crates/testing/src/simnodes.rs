//! Simulated nodes: fake kubelets in the style of KWOK. Each registers a Node (with
//! capacity, addresses and a Ready condition) and renews its Lease in `kube-node-lease`;
//! pods bound to it are reported Running with IPs and ready containers, run-to-completion
//! pods (restartPolicy other than Always) finish after a short run, graceful deletions are
//! completed, and fake resource usage is served to the autoscaler through a
//! [`MetricsSource`]. Everything goes through a kube client, like a real node agent.
//!
//! Pods can steer the simulation with annotations: `sim.berth.dev/run-seconds` (how long a
//! run-to-completion pod runs), `sim.berth.dev/exit-code` (non-zero: the pod fails) and
//! `sim.berth.dev/cpu-usage` (a quantity reported as the pod's CPU usage) and
//! `sim.berth.dev/fail-attempts` (the first N such pods of one owner fail).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_controllers::{MetricsSource, PodUsage, milli_value};
use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::{Selector, SelectorExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

pub const ANNOTATION_RUN_SECONDS: &str = "sim.berth.dev/run-seconds";
pub const ANNOTATION_EXIT_CODE: &str = "sim.berth.dev/exit-code";
pub const ANNOTATION_CPU_USAGE: &str = "sim.berth.dev/cpu-usage";
/// The first N run-to-completion pods of the same owner fail (exit code 1).
pub const ANNOTATION_FAIL_ATTEMPTS: &str = "sim.berth.dev/fail-attempts";
pub const SIMULATED_LABEL: &str = "node.berth.dev/simulated";

/// Settings of a set of simulated nodes.
#[derive(Clone, Debug)]
pub struct SimulatedNodesConfig {
    pub count: usize,
    pub name_prefix: String,
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    /// Lease renewal interval.
    pub heartbeat: Duration,
    /// How long run-to-completion pods run unless annotated otherwise.
    pub run_duration: Duration,
    /// Report pods Running/Succeeded (off for scheduler benchmarks: binding only).
    pub run_pods: bool,
    /// Nodes are spread over this many zones (`topology.kubernetes.io/zone`).
    pub zones: usize,
    /// Concurrent status writes.
    pub write_concurrency: usize,
}

impl Default for SimulatedNodesConfig {
    fn default() -> Self {
        SimulatedNodesConfig {
            count: 3,
            name_prefix: "sim-node-".into(),
            cpu: "16".into(),
            memory: "64Gi".into(),
            pods: 110,
            heartbeat: Duration::from_secs(2),
            run_duration: Duration::from_secs(1),
            run_pods: true,
            zones: 3,
            write_concurrency: 32,
        }
    }
}

impl SimulatedNodesConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: &str| {
            Err(Error::Config {
                field,
                reason: reason.into(),
            })
        };
        if self.name_prefix.is_empty() {
            return bad("name_prefix", "must not be empty");
        }
        if self.heartbeat.is_zero() {
            return bad("heartbeat", "must be positive");
        }
        if self.zones == 0 || self.write_concurrency == 0 {
            return bad("zones/write_concurrency", "must be at least 1");
        }
        for (field, q) in [("cpu", &self.cpu), ("memory", &self.memory)] {
            if berth_controllers::parse_quantity(q).is_err() {
                return bad(field, "is not a quantity");
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct NodeCtl {
    index: usize,
    heartbeating: bool,
    next_ip: u32,
}

#[derive(Clone)]
struct SimPod {
    namespace: String,
    name: String,
    node: String,
    containers: Vec<String>,
    labels: BTreeMap<String, String>,
    cpu_annotation: Option<i64>,
}

#[derive(Default)]
struct Shared {
    nodes: Mutex<HashMap<String, NodeCtl>>,
    /// Running pods by uid.
    pods: Mutex<HashMap<String, SimPod>>,
    /// CPU usage rules: (namespace, selector) → millicores.
    usage: Mutex<Vec<(String, Selector, i64)>>,
    next_index: Mutex<usize>,
    /// Failures handed out per owner uid (for `sim.berth.dev/fail-attempts`).
    failures: Mutex<HashMap<String, u32>>,
}

/// A handle to steer running simulated nodes (from tests or the binary).
#[derive(Clone)]
pub struct SimulatedNodesHandle {
    shared: Arc<Shared>,
    client: Client,
    config: SimulatedNodesConfig,
    shutdown: CancellationToken,
}

/// The simulated nodes component.
pub struct SimulatedNodes {
    handle: SimulatedNodesHandle,
}

impl SimulatedNodes {
    pub fn new(config: SimulatedNodesConfig, client: Client) -> Result<SimulatedNodes> {
        config.validate()?;
        Ok(SimulatedNodes {
            handle: SimulatedNodesHandle {
                shared: Arc::new(Shared::default()),
                client,
                config,
                shutdown: CancellationToken::new(),
            },
        })
    }

    pub fn handle(&self) -> SimulatedNodesHandle {
        self.handle.clone()
    }

    /// How many nodes `run` registers.
    pub fn node_count(&self) -> usize {
        self.handle.config.count
    }

    /// Registers the nodes, then runs them until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let h = self.handle;
        let stop = h.shutdown.clone();
        let link = {
            let stop = stop.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                stop.cancel();
            })
        };
        for i in 0..h.config.count {
            let name = format!("{}{i}", h.config.name_prefix);
            h.add_node(&name).await?;
        }
        h.clone().run_pods(stop.clone()).await;
        link.abort();
        Ok(())
    }
}

impl SimulatedNodesHandle {
    fn lock_nodes(&self) -> std::sync::MutexGuard<'_, HashMap<String, NodeCtl>> {
        self.shared.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Names of the simulated nodes.
    pub fn node_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock_nodes().keys().cloned().collect();
        v.sort();
        v
    }

    /// Registers one more node and starts its heartbeat.
    pub async fn add_node(&self, name: &str) -> Result<()> {
        let index = {
            let mut n = self
                .shared
                .next_index
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let i = *n;
            *n += 1;
            i
        };
        self.register(name, index).await?;
        self.lock_nodes().insert(
            name.to_string(),
            NodeCtl {
                index,
                heartbeating: true,
                next_ip: 0,
            },
        );
        let me = self.clone();
        let name = name.to_string();
        tokio::spawn(async move { me.heartbeat(name).await });
        Ok(())
    }

    /// Stops renewing a node's lease (the node "dies" as far as the control plane sees).
    pub fn stop_heartbeat(&self, name: &str) {
        if let Some(n) = self.lock_nodes().get_mut(name) {
            n.heartbeating = false;
        }
    }

    /// Resumes a node's heartbeat (it reports Ready again).
    pub fn resume_heartbeat(&self, name: &str) {
        if let Some(n) = self.lock_nodes().get_mut(name) {
            n.heartbeating = true;
        }
    }

    /// Reports `milli_cpu` of CPU usage for the pods of `namespace` with `labels`.
    pub fn set_cpu_usage(&self, namespace: &str, labels: &[(&str, &str)], milli_cpu: i64) {
        let sel: Selector = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut rules = self.shared.usage.lock().unwrap_or_else(|p| p.into_inner());
        rules.retain(|(ns, s, _)| !(ns == namespace && s.to_string() == sel.to_string()));
        rules.push((namespace.to_string(), sel, milli_cpu));
    }

    /// The metrics source the autoscaler can read directly.
    pub fn metrics(&self) -> Arc<dyn MetricsSource> {
        Arc::new(SimMetrics {
            shared: self.shared.clone(),
        })
    }

    /// The same usage as a provider for the API server's `metrics.k8s.io` (so `kubectl top`
    /// and the autoscaler reading that API see it).
    pub fn metrics_provider(&self) -> Arc<dyn berth_apiserver::metrics::MetricsProvider> {
        Arc::new(SimMetrics {
            shared: self.shared.clone(),
        })
    }

    fn node_ip(index: usize) -> String {
        format!("10.250.{}.{}", index / 250, index % 250 + 1)
    }

    async fn register(&self, name: &str, index: usize) -> Result<()> {
        let c = &self.config;
        let nodes: Api<Node> = Api::all(self.client.clone());
        let zone = format!("zone-{}", index % c.zones);
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64", SIMULATED_LABEL: "true",
                "topology.kubernetes.io/zone": zone,
            }},
            "spec": {}
        }))
        .map_err(|e| Error::Config {
            field: "name_prefix",
            reason: e.to_string(),
        })?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(Error::api(format!("registering node {name}"), e)),
        }
        self.post_ready(name, index).await
    }

    async fn post_ready(&self, name: &str, index: usize) -> Result<()> {
        let c = &self.config;
        let nodes: Api<Node> = Api::all(self.client.clone());
        let now = Time(jiff::Timestamp::now());
        let resources = json!({"cpu": c.cpu, "memory": c.memory, "pods": c.pods.to_string(), "ephemeral-storage": "100Gi"});
        let cond = |t: &str, s: &str, reason: &str, msg: &str| {
            json!({"type": t, "status": s, "reason": reason, "message": msg,
                   "lastHeartbeatTime": now, "lastTransitionTime": now})
        };
        let status = json!({"status": {
            "capacity": resources, "allocatable": resources,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": Self::node_ip(index)}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "amd64", "bootID": "", "containerRuntimeVersion": "berth-sim://0.1",
                "kernelVersion": "simulated", "kubeProxyVersion": "", "kubeletVersion": "v1.33.0-berth-sim",
                "machineID": name, "operatingSystem": "linux", "osImage": "berth simulated node", "systemUUID": name},
        }});
        nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(|e| Error::api(format!("reporting status of node {name}"), e))?;
        Ok(())
    }

    async fn heartbeat(self, name: String) {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut was_beating = true;
        loop {
            let (beating, index) = match self.lock_nodes().get(&name) {
                Some(n) => (n.heartbeating, n.index),
                None => return,
            };
            if beating {
                let now = MicroTime(jiff::Timestamp::now());
                let patch = json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}});
                match leases
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        let lease: Lease = serde_json::from_value(json!({
                            "metadata": {"name": name, "namespace": "kube-node-lease"},
                            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}
                        }))
                        .unwrap_or_default();
                        if let Err(e) = leases.create(&PostParams::default(), &lease).await {
                            tracing::debug!(node = %name, error = %e, "simulated node: cannot create its lease");
                        }
                    }
                    Err(e) => {
                        tracing::debug!(node = %name, error = %e, "simulated node: cannot renew its lease")
                    }
                }
                // Back from silence, or marked not ready by the node lifecycle: report Ready.
                let not_ready = match nodes.get_opt(&name).await {
                    Ok(Some(n)) => !n
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True"),
                    _ => false,
                };
                if (!was_beating || not_ready)
                    && let Err(e) = self.post_ready(&name, index).await
                {
                    tracing::debug!(node = %name, error = %e, "simulated node: cannot report ready");
                }
            }
            was_beating = beating;
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.heartbeat) => {}
            }
        }
    }

    fn is_mine(&self, node: &str) -> bool {
        self.lock_nodes().contains_key(node)
    }

    fn is_beating(&self, node: &str) -> bool {
        self.lock_nodes().get(node).is_some_and(|n| n.heartbeating)
    }

    fn allocate_ip(&self, node: &str) -> String {
        let mut nodes = self.lock_nodes();
        let Some(n) = nodes.get_mut(node) else {
            return String::new();
        };
        let ip = n.next_ip % 253 + 2;
        n.next_ip += 1;
        format!("10.{}.{}.{ip}", 42 + n.index / 256, n.index % 256)
    }

    async fn run_pods(self, stop: CancellationToken) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let stream = watcher::watcher(pods, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        let writes = Arc::new(Semaphore::new(self.config.write_concurrency));
        let mut started: HashSet<String> = HashSet::new();
        loop {
            let ev = tokio::select! {
                _ = stop.cancelled() => return,
                ev = stream.next() => ev,
            };
            let pod = match ev {
                None => return,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "simulated nodes: pod watch error");
                    continue;
                }
                Some(Ok(Event::Apply(p))) | Some(Ok(Event::InitApply(p))) => p,
                Some(Ok(Event::Delete(p))) => {
                    if let Some(uid) = p.uid() {
                        started.remove(&uid);
                        self.shared
                            .pods
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&uid);
                    }
                    continue;
                }
                Some(Ok(_)) => continue,
            };
            let Some(node) = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| self.is_mine(n))
            else {
                continue;
            };
            let uid = pod.uid().unwrap_or_default();
            if !self.is_beating(&node) {
                // A silent node's kubelet is gone: nothing happens to its pods.
                continue;
            }
            if pod.metadata.deletion_timestamp.is_some() {
                let me = self.clone();
                let permit = writes.clone();
                tokio::spawn(async move {
                    let _p = permit.acquire_owned().await;
                    me.finish_deletion(&pod).await;
                });
                continue;
            }
            if !self.config.run_pods || started.contains(&uid) {
                continue;
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
            if matches!(phase.as_deref(), Some("Succeeded") | Some("Failed")) {
                continue;
            }
            started.insert(uid.clone());
            let ann = pod.annotations();
            self.shared
                .pods
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    uid,
                    SimPod {
                        namespace: pod.namespace().unwrap_or_default(),
                        name: pod.name_any(),
                        node: node.clone(),
                        containers: pod
                            .spec
                            .iter()
                            .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
                            .collect(),
                        labels: pod.labels().clone(),
                        cpu_annotation: ann
                            .get(ANNOTATION_CPU_USAGE)
                            .and_then(|q| milli_value(&Quantity(q.clone())).ok()),
                    },
                );
            let me = self.clone();
            let permit = writes.clone();
            tokio::spawn(async move {
                let ip = me.allocate_ip(&node);
                {
                    let _p = permit.clone().acquire_owned().await;
                    if phase.as_deref() != Some("Running") {
                        me.report_running(&pod, &node, &ip).await;
                    }
                }
                let always = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.restart_policy.as_deref())
                    .is_none_or(|r| r == "Always");
                if !always {
                    let run = pod
                        .annotations()
                        .get(ANNOTATION_RUN_SECONDS)
                        .and_then(|s| s.parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(Duration::from_secs_f64)
                        .unwrap_or(me.config.run_duration);
                    tokio::select! {
                        _ = me.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(run) => {}
                    }
                    let _p = permit.acquire_owned().await;
                    me.report_finished(&pod).await;
                }
            });
        }
    }

    fn node_index(&self, node: &str) -> usize {
        self.lock_nodes().get(node).map(|n| n.index).unwrap_or(0)
    }

    async fn report_running(&self, pod: &Pod, node: &str, ip: &str) {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let now = Time(jiff::Timestamp::now());
        let host_ip = Self::node_ip(self.node_index(node));
        let containers: Vec<serde_json::Value> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .map(|c| {
                let image = c.image.clone().unwrap_or_default();
                json!({"name": c.name, "image": image, "imageID": format!("sim://{image}"),
                       "containerID": format!("sim://{}-{}", pod.uid().unwrap_or_default(), c.name),
                       "ready": true, "started": true, "restartCount": 0,
                       "state": {"running": {"startedAt": now}}})
            })
            .collect();
        let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
        let patch = json!({"status": {
            "phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "podIP": ip, "podIPs": [{"ip": ip}], "startTime": now,
            "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
            "containerStatuses": containers,
        }});
        if let Err(e) = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::debug!(pod = %pod.name_any(), error = %e, "simulated node: cannot report a running pod");
        }
    }

    async fn report_finished(&self, pod: &Pod) {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let mut code: i32 = pod
            .annotations()
            .get(ANNOTATION_EXIT_CODE)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if let Some(n) = pod
            .annotations()
            .get(ANNOTATION_FAIL_ATTEMPTS)
            .and_then(|c| c.parse::<u32>().ok())
        {
            let owner = pod
                .owner_references()
                .first()
                .map(|r| r.uid.clone())
                .unwrap_or_default();
            let mut f = self
                .shared
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let done = f.entry(owner).or_insert(0);
            if *done < n {
                *done += 1;
                code = 1;
            }
        }
        let now = Time(jiff::Timestamp::now());
        let (phase, reason) = if code == 0 {
            ("Succeeded", "Completed")
        } else {
            ("Failed", "Error")
        };
        let containers: Vec<serde_json::Value> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .map(|c| {
                json!({"name": c.name, "image": c.image, "imageID": format!("sim://{}", c.image.clone().unwrap_or_default()),
                       "containerID": format!("sim://{}-{}", pod.uid().unwrap_or_default(), c.name),
                       "ready": false, "started": false, "restartCount": 0,
                       "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": now, "finishedAt": now}}})
            })
            .collect();
        let cond = |t: &str, s: &str| json!({"type": t, "status": s, "lastProbeTime": null, "lastTransitionTime": now, "reason": if s == "False" { "PodCompleted" } else { "" }});
        let patch = json!({"status": {
            "phase": phase,
            "conditions": [cond("PodReadyToStartContainers", "False"), cond("Initialized", "True"), cond("Ready", "False"), cond("ContainersReady", "False"), cond("PodScheduled", "True")],
            "containerStatuses": containers,
        }});
        if let Err(e) = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::debug!(pod = %pod.name_any(), error = %e, "simulated node: cannot report a finished pod");
        }
    }

    /// Completes a graceful deletion: the containers are gone, so the pod object goes.
    async fn finish_deletion(&self, pod: &Pod) {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&pod.name_any(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                tracing::debug!(pod = %pod.name_any(), error = %e, "simulated node: cannot finish a deletion")
            }
        }
    }
}

struct SimMetrics {
    shared: Arc<Shared>,
}

impl SimMetrics {
    /// (pod, millicores) of every running simulated pod.
    fn usage(&self) -> Vec<(SimPod, i64)> {
        let rules = self
            .shared
            .usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let pods = self.shared.pods.lock().unwrap_or_else(|p| p.into_inner());
        pods.values()
            .map(|p| {
                let rule = rules
                    .iter()
                    .rev()
                    .find(|(ns, s, _)| *ns == p.namespace && s.matches(&p.labels))
                    .map(|(_, _, m)| *m);
                (p.clone(), rule.or(p.cpu_annotation).unwrap_or(0))
            })
            .collect()
    }
}

/// A fixed memory figure per simulated container (usage is not simulated for memory).
const SIM_CONTAINER_MEMORY: u64 = 16 * 1024 * 1024;

#[async_trait::async_trait]
impl berth_apiserver::metrics::MetricsProvider for SimMetrics {
    async fn nodes(&self) -> Vec<berth_apiserver::metrics::NodeUsage> {
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut per_node: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (p, milli) in self.usage() {
            let e = per_node.entry(p.node.clone()).or_default();
            e.0 += milli.max(0) as u64 * 1_000_000;
            e.1 += SIM_CONTAINER_MEMORY * p.containers.len() as u64;
        }
        let names: Vec<String> = self
            .shared
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        names
            .into_iter()
            .map(|n| {
                let (cpu, mem) = per_node.get(&n).copied().unwrap_or_default();
                berth_apiserver::metrics::NodeUsage {
                    name: n,
                    timestamp: now.clone(),
                    window_seconds: 30.0,
                    cpu_nanocores: cpu,
                    memory_bytes: mem,
                }
            })
            .collect()
    }

    async fn pods(&self, namespace: Option<&str>) -> Vec<berth_apiserver::metrics::PodUsage> {
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        self.usage()
            .into_iter()
            .filter(|(p, _)| namespace.is_none_or(|ns| ns == p.namespace))
            .map(|(p, milli)| {
                let n = p.containers.len().max(1) as u64;
                let per = milli.max(0) as u64 * 1_000_000 / n;
                berth_apiserver::metrics::PodUsage {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    timestamp: now.clone(),
                    window_seconds: 30.0,
                    containers: p
                        .containers
                        .iter()
                        .map(|c| (c.clone(), per, SIM_CONTAINER_MEMORY))
                        .collect(),
                }
            })
            .collect()
    }
}

impl MetricsSource for SimMetrics {
    fn pod_usage<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a Selector,
    ) -> BoxFuture<'a, berth_controllers::Result<Vec<PodUsage>>> {
        Box::pin(async move {
            Ok(self
                .usage()
                .into_iter()
                .filter(|(p, _)| p.namespace == namespace && selector.matches(&p.labels))
                .map(|(p, milli_cpu)| PodUsage {
                    name: p.name,
                    labels: p.labels,
                    milli_cpu,
                    memory: (SIM_CONTAINER_MEMORY * p.containers.len() as u64) as i64,
                })
                .collect())
        })
    }
}
