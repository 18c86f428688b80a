//! The scheduler component: watches nodes and pods into the snapshot, runs scheduling
//! cycles for pending pods, assumes each decision in the snapshot and binds through
//! `pods/<name>/binding` asynchronously (bounded concurrency), so the next cycle never waits
//! for the API server. Failures are reported as `FailedScheduling` events and as the pod's
//! `PodScheduled=False` condition, and retried with backoff when the cluster changes.
//!
//! One task owns the snapshot and the queue (no locks on the hot path); watch events are
//! applied before each batch of cycles.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use berth_controllers::{EventRecorder, InvolvedObject};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::algorithm::{Decision, schedule};
use crate::error::{Error, Result};
use crate::podinfo::{PodInfo, PodKey, pod_key};
use crate::queue::SchedulingQueue;
use crate::snapshot::Snapshot;

/// Settings of the scheduler.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Pods whose `spec.schedulerName` is this are ours.
    pub scheduler_name: String,
    /// Bindings in flight at once.
    pub bind_concurrency: usize,
    /// Scheduling cycles run between two checks for watch events.
    pub batch: usize,
    /// Record a `Scheduled` event per bound pod (as kube-scheduler does).
    pub scheduled_events: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            scheduler_name: "default-scheduler".into(),
            bind_concurrency: 64,
            batch: 64,
            scheduled_events: true,
        }
    }
}

impl SchedulerConfig {
    pub fn validate(&self) -> Result<()> {
        if self.scheduler_name.is_empty() {
            return Err(Error::Config {
                field: "scheduler_name",
                reason: "must not be empty".into(),
            });
        }
        if self.bind_concurrency == 0 || self.batch == 0 {
            return Err(Error::Config {
                field: "bind_concurrency/batch",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

struct BindResult {
    pod: PodInfo,
    node: String,
    outcome: std::result::Result<(), kube::Error>,
}

/// The scheduler.
pub struct Scheduler {
    config: SchedulerConfig,
    client: Client,
    recorder: EventRecorder,
    ready_tx: watch::Sender<bool>,
}

struct State {
    snapshot: Snapshot,
    queue: SchedulingQueue,
    attempts: HashMap<PodKey, u32>,
    /// Where the next node search starts.
    next_start: usize,
    pods_synced: bool,
    nodes_synced: bool,
    pods_relist: Option<HashSet<PodKey>>,
    nodes_relist: Option<HashSet<String>>,
}

impl Scheduler {
    pub fn new(config: SchedulerConfig, client: Client) -> Result<Scheduler> {
        config.validate()?;
        let recorder = EventRecorder::new(client.clone(), &config.scheduler_name);
        let (ready_tx, _) = watch::channel(false);
        Ok(Scheduler {
            config,
            client,
            recorder,
            ready_tx,
        })
    }

    /// Becomes true once the snapshot holds every node and pod (the first lists are done).
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready_tx.subscribe()
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let pods = watcher::watcher(
            Api::<Pod>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff();
        let nodes = watcher::watcher(
            Api::<Node>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff();
        futures::pin_mut!(pods);
        futures::pin_mut!(nodes);
        let (bind_tx, mut bind_rx) = mpsc::unbounded_channel::<BindResult>();
        let binds = Arc::new(Semaphore::new(self.config.bind_concurrency));
        let mut st = State {
            snapshot: Snapshot::default(),
            queue: SchedulingQueue::default(),
            attempts: HashMap::new(),
            next_start: 0,
            pods_synced: false,
            nodes_synced: false,
            pods_relist: None,
            nodes_relist: None,
        };
        let mut next_tick = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let can_schedule = st.pods_synced && st.nodes_synced && st.queue.has_active();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                ev = pods.next() => match ev {
                    Some(Ok(ev)) => self.on_pod_event(&mut st, ev),
                    Some(Err(e)) => tracing::debug!(error = %e, "scheduler: pod watch error"),
                    None => return Err(Error::Stopped { reason: "the pod watch ended".into() }),
                },
                ev = nodes.next() => match ev {
                    Some(Ok(ev)) => self.on_node_event(&mut st, ev),
                    Some(Err(e)) => tracing::debug!(error = %e, "scheduler: node watch error"),
                    None => return Err(Error::Stopped { reason: "the node watch ended".into() }),
                },
                Some(r) = bind_rx.recv() => self.on_bind_result(&mut st, r),
                _ = tokio::time::sleep_until(next_tick) => {
                    let due = st.queue.tick();
                    next_tick = due
                        .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1))
                        .min(tokio::time::Instant::now() + Duration::from_secs(1));
                }
                permit = binds.clone().acquire_owned(), if can_schedule => {
                    let Ok(permit) = permit else { break };
                    self.schedule_batch(&mut st, permit, &binds, &bind_tx);
                }
            }
            if st.pods_synced && st.nodes_synced && !*self.ready_tx.borrow() {
                self.ready_tx.send_replace(true);
                tracing::info!(
                    nodes = st.snapshot.node_count(),
                    pending = st.queue.len(),
                    "scheduler: snapshot synced"
                );
            }
        }
        Ok(())
    }

    fn ours(&self, info: &PodInfo) -> bool {
        info.scheduler_name == self.config.scheduler_name
    }

    fn on_pod_event(&self, st: &mut State, ev: Event<Pod>) {
        match ev {
            Event::Init => st.pods_relist = Some(HashSet::new()),
            Event::InitApply(pod) => {
                if let Some(seen) = st.pods_relist.as_mut() {
                    seen.insert(pod_key(&pod));
                }
                self.apply_pod(st, &pod);
            }
            Event::InitDone => {
                if let Some(seen) = st.pods_relist.take() {
                    for key in st.snapshot.placed_keys() {
                        if !seen.contains(&key) && !st.snapshot.is_assumed(&key) {
                            st.snapshot.remove_pod(&key);
                        }
                    }
                }
                st.pods_synced = true;
                st.queue.cluster_changed();
            }
            Event::Apply(pod) => self.apply_pod(st, &pod),
            Event::Delete(pod) => {
                let key = pod_key(&pod);
                st.snapshot.remove_pod(&key);
                st.queue.remove(&key);
                st.attempts.remove(&key);
                st.queue.cluster_changed();
            }
        }
    }

    fn apply_pod(&self, st: &mut State, pod: &Pod) {
        let key = pod_key(pod);
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let info = PodInfo::from_pod(pod);
        if matches!(phase, Some("Succeeded") | Some("Failed")) {
            if st.snapshot.is_placed(&key) {
                st.snapshot.remove_pod(&key);
                st.queue.cluster_changed();
            }
            st.queue.remove(&key);
            return;
        }
        if let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        {
            st.snapshot.place_bound(info, &node);
            st.queue.remove(&key);
            st.attempts.remove(&key);
            return;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            st.queue.remove(&key);
            return;
        }
        if !self.ours(&info) || st.snapshot.is_assumed(&key) {
            return;
        }
        st.queue.add_or_update(info);
    }

    fn on_node_event(&self, st: &mut State, ev: Event<Node>) {
        match ev {
            Event::Init => st.nodes_relist = Some(HashSet::new()),
            Event::InitApply(node) => {
                if let Some(seen) = st.nodes_relist.as_mut() {
                    seen.insert(node.name_any());
                }
                st.snapshot.upsert_node(&node);
            }
            Event::InitDone => {
                if let Some(seen) = st.nodes_relist.take() {
                    let gone: Vec<String> = st
                        .snapshot
                        .node_names()
                        .iter()
                        .filter(|n| !seen.contains(*n))
                        .cloned()
                        .collect();
                    for n in gone {
                        st.snapshot.remove_node(&n);
                    }
                }
                st.nodes_synced = true;
                st.queue.cluster_changed();
            }
            Event::Apply(node) => {
                st.snapshot.upsert_node(&node);
                st.queue.cluster_changed();
            }
            Event::Delete(node) => st.snapshot.remove_node(&node.name_any()),
        }
    }

    fn on_bind_result(&self, st: &mut State, r: BindResult) {
        let key = r.pod.key.clone();
        match r.outcome {
            Ok(()) => {
                st.attempts.remove(&key);
                if self.config.scheduled_events {
                    self.recorder.normal(
                        &involved(&r.pod),
                        "Scheduled",
                        &format!("Successfully assigned {key} to {}", r.node),
                    );
                }
            }
            Err(e) => {
                // The assumption is void unless the watch already shows the pod bound.
                if st.snapshot.is_assumed(&key) {
                    st.snapshot.remove_pod(&key);
                }
                let gone = matches!(&e, kube::Error::Api(s) if s.code == 404);
                let taken = matches!(&e, kube::Error::Api(s) if s.code == 409);
                if gone || taken {
                    st.attempts.remove(&key);
                    return;
                }
                tracing::warn!(pod = %key, node = %r.node, error = %e, "scheduler: binding failed; retrying");
                self.recorder.warning(
                    &involved(&r.pod),
                    "FailedScheduling",
                    &format!("Binding rejected: {e}"),
                );
                let n = st.attempts.entry(key).or_insert(0);
                *n += 1;
                let n = *n;
                st.queue.retry_later(r.pod, n);
            }
        }
    }

    fn schedule_batch(
        &self,
        st: &mut State,
        first_permit: tokio::sync::OwnedSemaphorePermit,
        binds: &Arc<Semaphore>,
        bind_tx: &mpsc::UnboundedSender<BindResult>,
    ) {
        let mut permit = Some(first_permit);
        for _ in 0..self.config.batch {
            let p = match permit.take() {
                Some(p) => p,
                None => match binds.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let Some(pod) = st.queue.pop() else { return };
            let total = st.snapshot.node_count().max(1);
            let (decision, examined) = schedule(&pod, &st.snapshot, st.next_start % total);
            st.next_start = (st.next_start + examined) % total;
            match decision {
                Decision::Node(node) => {
                    st.snapshot.assume(pod.clone(), &node);
                    let client = self.client.clone();
                    let tx = bind_tx.clone();
                    tokio::spawn(async move {
                        let outcome = bind(&client, &pod, &node).await;
                        drop(p);
                        let _ = tx.send(BindResult { pod, node, outcome });
                    });
                }
                Decision::Unschedulable { message } => {
                    drop(p);
                    let n = st.attempts.entry(pod.key.clone()).or_insert(0);
                    *n += 1;
                    let attempts = *n;
                    tracing::debug!(pod = %pod.key, %message, "scheduler: pod does not fit");
                    self.recorder
                        .warning(&involved(&pod), "FailedScheduling", &message);
                    if st.queue.unschedulable(pod.clone(), attempts, &message) {
                        let client = self.client.clone();
                        tokio::spawn(async move {
                            mark_unschedulable(&client, &pod, &message).await;
                        });
                    }
                }
            }
        }
    }
}

fn involved(pod: &PodInfo) -> InvolvedObject {
    let (ns, name) = pod.key.split_once('/').unwrap_or(("", &pod.key));
    InvolvedObject {
        api_version: "v1".into(),
        kind: "Pod".into(),
        namespace: Some(ns.to_string()),
        name: name.to_string(),
        uid: Some(pod.uid.clone()),
        ..Default::default()
    }
}

async fn bind(client: &Client, pod: &PodInfo, node: &str) -> std::result::Result<(), kube::Error> {
    let (ns, name) = pod.key.split_once('/').unwrap_or(("", &pod.key));
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            uid: Some(pod.uid.clone()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        name,
        &PostParams::default(),
        &binding,
    )
    .await
    .map(|_| ())
}

/// Sets the pod's `PodScheduled` condition to False with the failure message.
async fn mark_unschedulable(client: &Client, pod: &PodInfo, message: &str) {
    let (ns, name) = pod.key.split_once('/').unwrap_or(("", &pod.key));
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastProbeTime": null,
        "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    }]}});
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::debug!(pod = %pod.key, error = %e, "scheduler: cannot update the pod condition");
    }
}
