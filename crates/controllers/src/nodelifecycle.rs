//! Node lifecycle: turns missing heartbeats (the node's Lease in `kube-node-lease`, or its
//! Ready condition's heartbeat) into `Ready=Unknown` conditions and the
//! `node.kubernetes.io/unreachable` (or `not-ready`) NoSchedule and NoExecute taints, then
//! evicts pods from nodes with NoExecute taints they do not tolerate — at once, or after
//! their `tolerationSeconds`. Pods bound to nodes that no longer exist are deleted.
//!
//! berth's default failover is fast: a node is declared lost 8 s after its last heartbeat
//! (Kubernetes: 50 s) and pods without a matching toleration are evicted at once; the
//! 300 s not-ready/unreachable tolerations the API server adds to every pod count as 2 s
//! (`default_toleration_cap`), so replacements are bound elsewhere within about 11 s. To avoid an eviction storm, nodes enter eviction through a rate limiter,
//! slower when most nodes are unhealthy, and not at all when every node of a multi-node
//! cluster went silent at once (then the control plane, not the nodes, is likely cut off).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};

pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";

/// How long a pod's node may be missing before the pod is deleted.
const MISSING_NODE_QUARANTINE: Duration = Duration::from_secs(10);

/// Settings of the node lifecycle controller.
#[derive(Clone, Debug)]
pub struct NodeLifecycleConfig {
    /// How often nodes are checked.
    pub monitor_period: Duration,
    /// Silence after which a node is declared lost.
    pub grace_period: Duration,
    /// Nodes entering eviction per second (normal).
    pub eviction_rate: f64,
    /// Nodes entering eviction per second when at least `unhealthy_threshold` of the nodes
    /// are unhealthy (0 for clusters of at most `large_cluster_size` nodes).
    pub secondary_eviction_rate: f64,
    pub unhealthy_threshold: f64,
    pub large_cluster_size: usize,
    /// berth's failover for pods that carry only the API server's default not-ready and
    /// unreachable tolerations (`tolerationSeconds: 300`, added to every pod as
    /// Kubernetes' DefaultTolerationSeconds does): those tolerations count for this long
    /// instead. `None` honours them as written (Kubernetes' 5-minute failover).
    pub default_toleration_cap: Option<Duration>,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            monitor_period: Duration::from_secs(1),
            grace_period: Duration::from_secs(8),
            eviction_rate: 1.0,
            secondary_eviction_rate: 0.01,
            unhealthy_threshold: 0.55,
            large_cluster_size: 50,
            default_toleration_cap: Some(Duration::from_secs(2)),
        }
    }
}

impl NodeLifecycleConfig {
    pub fn validate(&self) -> Result<()> {
        if self.monitor_period.is_zero() || self.grace_period.is_zero() {
            return Err(Error::Config {
                field: "node_lifecycle",
                reason: "monitor and grace periods must be positive".into(),
            });
        }
        if self.eviction_rate.is_nan()
            || self.eviction_rate <= 0.0
            || self.secondary_eviction_rate < 0.0
        {
            return Err(Error::Config {
                field: "node_lifecycle.eviction_rate",
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }
}

/// A token bucket (burst 1).
struct Limiter {
    tokens: f64,
    last: Instant,
}

impl Limiter {
    fn take(&mut self, rate: f64) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(1.0);
        self.last = now;
        if rate > 0.0 && self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the controller remembers per node.
struct Observed {
    heartbeat: Option<String>,
    changed_at: Instant,
    /// Eviction started (passed the rate limiter) during the current unhealthy episode.
    evicting: bool,
}

/// The node lifecycle controller component.
pub struct NodeLifecycleController {
    config: NodeLifecycleConfig,
    client: Client,
    recorder: EventRecorder,
}

impl NodeLifecycleController {
    pub fn new(
        config: NodeLifecycleConfig,
        client: Client,
        recorder: EventRecorder,
    ) -> Result<Self> {
        config.validate()?;
        Ok(NodeLifecycleController {
            config,
            client,
            recorder,
        })
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let nodes = spawn_store(Api::<Node>::all(self.client.clone()), &shutdown);
        let leases = spawn_store(
            Api::<Lease>::namespaced(self.client.clone(), "kube-node-lease"),
            &shutdown,
        );
        let pods = spawn_store(Api::<Pod>::all(self.client.clone()), &shutdown);
        let synced = async {
            nodes.wait_until_ready().await.is_ok()
                && leases.wait_until_ready().await.is_ok()
                && pods.wait_until_ready().await.is_ok()
        };
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            ok = synced => if !ok { return Ok(()) },
        }
        let mut observed: HashMap<String, Observed> = HashMap::new();
        let mut missing: HashMap<String, Instant> = HashMap::new();
        let mut limiter = Limiter {
            tokens: 1.0,
            last: Instant::now(),
        };
        loop {
            if let Err(e) = self
                .tick(
                    &nodes,
                    &leases,
                    &pods,
                    &mut observed,
                    &mut limiter,
                    &mut missing,
                )
                .await
            {
                tracing::warn!(error = %e, "node lifecycle: check failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.config.monitor_period) => {}
            }
        }
    }

    async fn tick(
        &self,
        nodes: &Store<Node>,
        leases: &Store<Lease>,
        pods: &Store<Pod>,
        observed: &mut HashMap<String, Observed>,
        limiter: &mut Limiter,
        missing: &mut HashMap<String, Instant>,
    ) -> Result<()> {
        let leases: HashMap<String, Arc<Lease>> = leases
            .state()
            .into_iter()
            .map(|l| (l.name_any(), l))
            .collect();
        let nodes = nodes.state();
        let now = Instant::now();
        let mut unhealthy: Vec<Arc<Node>> = Vec::new();
        observed.retain(|n, _| nodes.iter().any(|x| x.name_any() == *n));
        for node in &nodes {
            let name = node.name_any();
            let beat = heartbeat(node, leases.get(&name).map(|l| l.as_ref()));
            let o = observed.entry(name.clone()).or_insert(Observed {
                heartbeat: beat.clone(),
                changed_at: now,
                evicting: false,
            });
            if o.heartbeat != beat {
                o.heartbeat = beat;
                o.changed_at = now;
            }
            let silent = now.duration_since(o.changed_at) > self.config.grace_period;
            let ready = ready_status(node);
            if silent && ready != "Unknown" {
                self.mark_unknown(node).await?;
            }
            let effective = if silent { "Unknown" } else { ready.as_str() };
            self.sync_taints(node, effective).await?;
            if effective == "True" {
                o.evicting = false;
            } else {
                unhealthy.push(node.clone());
            }
        }
        // Which unhealthy nodes may evict now (no storm).
        let total = nodes.len();
        let unhealthy_count = unhealthy.len();
        let rate = eviction_rate(&self.config, total, unhealthy_count);
        for node in &unhealthy {
            let Some(o) = observed.get_mut(&node.name_any()) else {
                continue;
            };
            if !o.evicting && limiter.take(rate) {
                o.evicting = true;
            }
        }
        // Pods: evict from evicting nodes; delete pods of nodes that are gone.
        let node_taints: HashMap<String, Vec<Taint>> = nodes
            .iter()
            .map(|n| {
                let evicting = observed.get(&n.name_any()).is_some_and(|o| o.evicting);
                let taints = n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.clone())
                    .unwrap_or_default()
                    .into_iter()
                    // Taints of our own making take effect once the node passed the limiter.
                    .filter(|t| {
                        t.effect == "NoExecute" && (evicting || !is_lifecycle_taint(&t.key))
                    })
                    .collect();
                (n.name_any(), taints)
            })
            .collect();
        let wall = jiff::Timestamp::now();
        for pod in pods.state() {
            let Some(node) = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty())
            else {
                continue;
            };
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match node_taints.get(&node) {
                None => {
                    // Quarantine: the node may be registering.
                    let since = *missing.entry(node.clone()).or_insert(now);
                    if now.duration_since(since) >= MISSING_NODE_QUARANTINE {
                        self.delete_pod(
                            &pod,
                            Some(0),
                            "PodGC",
                            &format!("Node {node} no longer exists"),
                        )
                        .await?;
                    }
                }
                Some(taints)
                    if !taints.is_empty()
                        && eviction_due(&pod, taints, wall, self.config.default_toleration_cap) =>
                {
                    self.delete_pod(
                        &pod,
                        None,
                        "TaintManagerEviction",
                        &format!(
                            "Marking for deletion Pod {}/{}",
                            pod.namespace().unwrap_or_default(),
                            pod.name_any()
                        ),
                    )
                    .await?;
                }
                _ => {}
            }
        }
        missing.retain(|n, _| !node_taints.contains_key(n));
        Ok(())
    }

    async fn mark_unknown(&self, node: &Node) -> Result<()> {
        let now = Time(jiff::Timestamp::now());
        let conds: Vec<serde_json::Value> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                let relevant = matches!(
                    c.type_.as_str(),
                    "Ready" | "MemoryPressure" | "DiskPressure" | "PIDPressure"
                );
                let mut v = serde_json::to_value(&c).unwrap_or_default();
                if relevant && c.status != "Unknown" {
                    v["status"] = json!("Unknown");
                    v["reason"] = json!("NodeStatusUnknown");
                    v["message"] = json!("Kubelet stopped posting node status.");
                    v["lastTransitionTime"] = json!(now);
                }
                v
            })
            .collect();
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"status": {"conditions": conds}});
        match api
            .patch_status(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if has_code(&e, 404) => return Ok(()),
            Err(e) => {
                return Err(Error::api(
                    format!("marking node {} unknown", node.name_any()),
                    e,
                ));
            }
        }
        self.recorder.normal(
            &InvolvedObject::of(node),
            "NodeNotReady",
            &format!("Node {} status is now: NodeNotReady", node.name_any()),
        );
        tracing::info!(node = %node.name_any(), "node stopped posting status: marked Unknown");
        Ok(())
    }

    async fn sync_taints(&self, node: &Node, ready: &str) -> Result<()> {
        let current = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let wanted_key = match ready {
            "True" => None,
            "Unknown" => Some(TAINT_UNREACHABLE),
            _ => Some(TAINT_NOT_READY),
        };
        let mut next: Vec<Taint> = current
            .iter()
            .filter(|t| !is_lifecycle_taint(&t.key) || Some(t.key.as_str()) == wanted_key)
            .cloned()
            .collect();
        if let Some(key) = wanted_key {
            for effect in ["NoSchedule", "NoExecute"] {
                if !next.iter().any(|t| t.key == key && t.effect == effect) {
                    next.push(Taint {
                        key: key.into(),
                        effect: effect.into(),
                        value: None,
                        time_added: (effect == "NoExecute").then(|| Time(jiff::Timestamp::now())),
                    });
                }
            }
        }
        if next == current {
            return Ok(());
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"metadata": {"resourceVersion": node.resource_version()}, "spec": {"taints": next}});
        match api
            .patch(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Stale copy or gone: the next tick sees the current node.
            Err(e) if has_code(&e, 404) || has_code(&e, 409) => Ok(()),
            Err(e) => Err(Error::api(
                format!("updating the taints of node {}", node.name_any()),
                e,
            )),
        }
    }

    async fn delete_pod(
        &self,
        pod: &Pod,
        grace: Option<i64>,
        reason: &str,
        message: &str,
    ) -> Result<()> {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let params = DeleteParams {
            grace_period_seconds: grace.map(|g| g as u32),
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&pod.name_any(), &params).await {
            Ok(_) => {
                self.recorder
                    .normal(&InvolvedObject::of(pod), reason, message);
                Ok(())
            }
            Err(e) if has_code(&e, 404) || has_code(&e, 409) => Ok(()),
            Err(e) => Err(Error::api(format!("evicting pod {}", pod.name_any()), e)),
        }
    }
}

/// Nodes per second that may enter eviction, given how many nodes are unhealthy: the normal
/// rate; the secondary rate (0 in small clusters) once the unhealthy share passes the
/// threshold; none when every node of a multi-node cluster is unhealthy (the control plane
/// has probably lost them, not the other way round).
fn eviction_rate(config: &NodeLifecycleConfig, total: usize, unhealthy: usize) -> f64 {
    if total >= 2 && unhealthy == total {
        0.0
    } else if total > 0 && unhealthy as f64 / total as f64 >= config.unhealthy_threshold {
        if total > config.large_cluster_size {
            config.secondary_eviction_rate
        } else {
            0.0
        }
    } else {
        config.eviction_rate
    }
}

fn is_lifecycle_taint(key: &str) -> bool {
    key == TAINT_UNREACHABLE || key == TAINT_NOT_READY
}

fn spawn_store<K>(api: Api<K>, shutdown: &CancellationToken) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
        .default_backoff();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                ev = stream.next() => if ev.is_none() { return },
            }
        }
    });
    reader
}

/// The latest heartbeat of a node: its lease renewal and its Ready condition's heartbeat.
fn heartbeat(node: &Node, lease: Option<&Lease>) -> Option<String> {
    let renew = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0.to_string());
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0.to_string());
    Some(format!(
        "{}|{}",
        renew.unwrap_or_default(),
        ready.unwrap_or_default()
    ))
}

fn ready_status(node: &Node) -> String {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "Unknown".into())
}

fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty())
        && e != taint.effect
    {
        return false;
    }
    let op = t.operator.as_deref().unwrap_or("Equal");
    match t.key.as_deref().filter(|k| !k.is_empty()) {
        None => op == "Exists",
        Some(k) if k != taint.key => false,
        Some(_) => {
            op == "Exists"
                || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
    }
}

/// The shape of the tolerations the API server adds to every pod.
fn is_default_toleration(t: &Toleration) -> bool {
    matches!(
        t.key.as_deref(),
        Some(TAINT_UNREACHABLE) | Some(TAINT_NOT_READY)
    ) && t.operator.as_deref() == Some("Exists")
        && t.effect.as_deref() == Some("NoExecute")
        && t.toleration_seconds == Some(300)
}

/// Whether a pod on a node with these NoExecute taints must go now.
fn eviction_due(pod: &Pod, taints: &[Taint], now: jiff::Timestamp, cap: Option<Duration>) -> bool {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    for taint in taints {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return true;
        }
        // The shortest tolerationSeconds among matching tolerations bounds the stay.
        let limit = matching
            .iter()
            .filter_map(|t| match cap {
                Some(c) if is_default_toleration(t) => Some(c.as_secs() as i64),
                _ => t.toleration_seconds,
            })
            .min();
        if let Some(secs) = limit {
            let since = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
            if now.duration_since(since).as_secs() >= secs {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"nodeName": "n", "containers": [{"name": "c"}], "tolerations": tolerations}
        }))
        .unwrap()
    }

    fn taint(key: &str, added: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            value: None,
            time_added: Some(Time(added.parse().unwrap())),
        }
    }

    #[test]
    fn eviction_honours_tolerations() {
        let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let t = [taint(TAINT_UNREACHABLE, "2026-01-01T00:00:30Z")];
        assert!(eviction_due(&pod(json!([])), &t, now, None));
        let forever =
            pod(json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]));
        assert!(!eviction_due(&forever, &t, now, None));
        let short = pod(
            json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]),
        );
        assert!(eviction_due(&short, &t, now, None));
        let long = pod(
            json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
        );
        assert!(!eviction_due(&long, &t, now, None));
        // The API server's default tolerations count for berth's failover time.
        let defaulted = pod(
            json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
        );
        assert!(!eviction_due(&defaulted, &t, now, None));
        assert!(eviction_due(
            &defaulted,
            &t,
            now,
            Some(Duration::from_secs(2))
        ));
        assert!(!eviction_due(
            &defaulted,
            &t,
            now,
            Some(Duration::from_secs(60))
        ));
    }

    #[test]
    fn no_eviction_storm() {
        let c = NodeLifecycleConfig::default();
        assert_eq!(eviction_rate(&c, 3, 1), c.eviction_rate);
        // Most of a small cluster down: stop; of a large one: slow down.
        assert_eq!(eviction_rate(&c, 3, 2), 0.0);
        assert_eq!(eviction_rate(&c, 100, 60), c.secondary_eviction_rate);
        assert_eq!(eviction_rate(&c, 100, 40), c.eviction_rate);
        // Everything silent at once: nothing is evicted.
        assert_eq!(eviction_rate(&c, 5000, 5000), 0.0);
        // A lone node that goes silent: its pods have nowhere to go.
        assert_eq!(eviction_rate(&c, 1, 1), 0.0);
    }

    #[test]
    fn limiter_has_burst_one() {
        let mut l = Limiter {
            tokens: 1.0,
            last: Instant::now(),
        };
        assert!(l.take(1.0));
        assert!(!l.take(1.0));
        assert!(!l.take(0.0));
    }
}
