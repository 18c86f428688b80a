//! The Node object: registration (labels, pod CIDR), status (capacity and allocatable from the
//! host, addresses, nodeInfo, the agent endpoint, images, conditions Ready / MemoryPressure /
//! DiskPressure / PIDPressure) and the heartbeat Lease in `kube-node-lease`.
//!
//! Status is recomputed every `status_interval` and written when it changed (or once a
//! minute, refreshing `lastHeartbeatTime`); the Lease is renewed every `heartbeat`, which is
//! what the control plane watches to decide the node is alive.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_cri::ContainerRuntime;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::error::{AgentError, Result};
use crate::events::{InvolvedObject, Recorder};
use crate::hostinfo::{self, HostFacts};

pub const KUBELET_VERSION: &str = "v1.33.0+berth";
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Status is written at least this often even when nothing changed.
const STATUS_REFRESH: Duration = Duration::from_secs(60);
/// At most this many images are listed in the node status (as kubelet does).
const MAX_IMAGES: usize = 50;

/// What registration settled.
#[derive(Debug, Clone)]
pub struct Registered {
    pub uid: String,
}

/// The node's side of the Node object.
pub struct NodeStatusManager {
    client: kube::Client,
    config: AgentConfig,
    facts: HostFacts,
    runtime: Arc<dyn ContainerRuntime>,
    recorder: Recorder,
    /// The agent endpoint's port, as bound.
    port: u16,
}

fn quantity(v: impl ToString) -> Value {
    Value::String(v.to_string())
}

impl NodeStatusManager {
    pub fn new(
        client: kube::Client,
        config: AgentConfig,
        runtime: Arc<dyn ContainerRuntime>,
        recorder: Recorder,
        port: u16,
    ) -> NodeStatusManager {
        NodeStatusManager {
            client,
            config,
            facts: HostFacts::read(),
            runtime,
            recorder,
            port,
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        let arch = self.facts.architecture.clone();
        l.insert(
            "kubernetes.io/hostname".into(),
            self.config.node_name.clone(),
        );
        l.insert("kubernetes.io/os".into(), "linux".into());
        l.insert("kubernetes.io/arch".into(), arch.clone());
        l.insert("beta.kubernetes.io/os".into(), "linux".into());
        l.insert("beta.kubernetes.io/arch".into(), arch);
        l.insert("node.kubernetes.io/instance-type".into(), "berth".into());
        l.extend(self.config.node_labels.clone());
        l
    }

    /// Creates the Node, or adopts an existing one (labels merged). Its pod CIDR comes from
    /// the control plane's node IPAM.
    pub async fn register(&self) -> Result<Registered> {
        let api: Api<Node> = Api::all(self.client.clone());
        let name = &self.config.node_name;
        let labels = self.labels();
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
        }))
        .map_err(AgentError::internal)?;
        let created = match api.create(&PostParams::default(), &node).await {
            Ok(n) => {
                tracing::info!(node = %name, "registered the node");
                n
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let patch = json!({"metadata": {"labels": labels}});
                let n = api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| AgentError::api(format!("update node {name}"), e))?;
                tracing::info!(node = %name, "adopted the existing node");
                n
            }
            Err(e) => return Err(AgentError::api(format!("create node {name}"), e)),
        };
        self.recorder.normal(
            &InvolvedObject::node(name),
            "Starting",
            "Starting berth node agent.",
        );
        Ok(Registered {
            uid: created.metadata.uid.unwrap_or_default(),
        })
    }

    /// The node's status (without heartbeat times), for comparison and writing.
    async fn compute(&self, previous: &[Value]) -> Value {
        let f = &self.facts;
        let fs = hostinfo::fs_stats(&self.config.dir);
        let (mem_avail, mem_total) = hostinfo::memory_available();
        let (pids_used, pids_max) = hostinfo::pids();
        let reserved_mem = self.config.eviction_memory_available;
        let capacity = json!({
            "cpu": quantity(f.cpus),
            "memory": quantity(format!("{}Ki", f.memory_bytes / 1024)),
            "pods": quantity(self.config.max_pods),
            "ephemeral-storage": quantity(format!("{}Ki", fs.capacity / 1024)),
            "hugepages-1Gi": "0", "hugepages-2Mi": "0",
        });
        let alloc_storage = fs.capacity
            - fs.capacity * u64::from(self.config.eviction_disk_available_percent) / 100;
        let allocatable = json!({
            "cpu": quantity(f.cpus),
            "memory": quantity(format!("{}Ki", f.memory_bytes.saturating_sub(reserved_mem) / 1024)),
            "pods": quantity(self.config.max_pods),
            "ephemeral-storage": quantity(alloc_storage),
            "hugepages-1Gi": "0", "hugepages-2Mi": "0",
        });
        let status = self.runtime.status().await;
        let mem_pressure = mem_total > 0 && mem_avail < reserved_mem;
        let disk_pressure = fs.capacity > 0
            && fs.available * 100
                < fs.capacity * u64::from(self.config.eviction_disk_available_percent);
        let pid_pressure = pids_max > 0 && pids_used * 100 > pids_max * 95;
        let not_ready = match (&status.runtime_ready, &status.network_ready) {
            (Err(r), _) => Some(format!("container runtime is down: {r}")),
            (_, Err(n)) => Some(format!(
                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:{n}"
            )),
            _ => None,
        };
        let cond = |ty: &str,
                    bad: bool,
                    ok_reason: &str,
                    bad_reason: &str,
                    ok_msg: &str,
                    bad_msg: &str| {
            let (st, reason, msg) = if bad {
                ("True", bad_reason, bad_msg)
            } else {
                ("False", ok_reason, ok_msg)
            };
            (ty.to_string(), st, reason.to_string(), msg.to_string())
        };
        let mut conds = vec![
            cond(
                "MemoryPressure",
                mem_pressure,
                "KubeletHasSufficientMemory",
                "KubeletHasInsufficientMemory",
                "kubelet has sufficient memory available",
                "kubelet has insufficient memory available",
            ),
            cond(
                "DiskPressure",
                disk_pressure,
                "KubeletHasNoDiskPressure",
                "KubeletHasDiskPressure",
                "kubelet has no disk pressure",
                "kubelet has disk pressure",
            ),
            cond(
                "PIDPressure",
                pid_pressure,
                "KubeletHasSufficientPID",
                "KubeletHasInsufficientPID",
                "kubelet has sufficient PID available",
                "kubelet has insufficient PID available",
            ),
        ];
        match &not_ready {
            None => conds.push((
                "Ready".into(),
                "True",
                "KubeletReady".into(),
                "kubelet is posting ready status".into(),
            )),
            Some(m) => conds.push(("Ready".into(), "False", "KubeletNotReady".into(), m.clone())),
        }
        let now = jiff::Timestamp::now().to_string();
        let conditions: Vec<Value> = conds
            .into_iter()
            .map(|(ty, st, reason, msg)| {
                let since = previous
                    .iter()
                    .find(|c| c["type"] == ty.as_str() && c["status"] == st)
                    .and_then(|c| c["lastTransitionTime"].as_str().map(String::from))
                    .unwrap_or_else(|| now.clone());
                json!({"type": ty, "status": st, "reason": reason, "message": msg, "lastTransitionTime": since})
            })
            .collect();
        let mut images: Vec<Value> = match self.runtime.list_images().await {
            Ok(list) => list
                .into_iter()
                .map(|i| {
                    let mut names: Vec<String> = i
                        .names
                        .iter()
                        .map(|n| {
                            format!(
                                "{}@{}",
                                n.rsplit_once(':').map(|x| x.0).unwrap_or(n),
                                i.digest
                            )
                        })
                        .collect();
                    names.extend(i.names.iter().cloned());
                    names.sort();
                    names.dedup();
                    json!({"names": names, "sizeBytes": i.size_bytes})
                })
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list images for the node status");
                vec![]
            }
        };
        images.sort_by_key(|i| std::cmp::Reverse(i["sizeBytes"].as_u64().unwrap_or(0)));
        images.truncate(MAX_IMAGES);
        let v = self.runtime.version();
        let mut addresses =
            vec![json!({"type": "InternalIP", "address": self.config.node_ip.to_string()})];
        addresses.push(json!({"type": "Hostname", "address": if f.hostname.is_empty() { &self.config.node_name } else { &f.hostname }}));
        json!({
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": conditions,
            "addresses": addresses,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {
                "machineID": f.machine_id, "systemUUID": f.system_uuid, "bootID": f.boot_id,
                "kernelVersion": f.kernel_version, "osImage": f.os_image,
                "containerRuntimeVersion": format!("{}://{}", v.name, v.version),
                "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
                "operatingSystem": "linux", "architecture": f.architecture,
            },
            "images": images,
        })
    }

    /// Recomputes and writes the status until `shutdown`.
    pub async fn run_status(self: Arc<Self>, shutdown: CancellationToken) {
        let api: Api<Node> = Api::all(self.client.clone());
        let name = self.config.node_name.clone();
        let mut last: Option<Value> = None;
        let mut last_write = Instant::now() - STATUS_REFRESH;
        let mut was_ready: Option<bool> = None;
        let mut tick = tokio::time::interval(self.config.status_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let previous: Vec<Value> = last
                .as_ref()
                .and_then(|s| s["conditions"].as_array().cloned())
                .unwrap_or_default();
            let status = self.compute(&previous).await;
            // Someone else (the node lifecycle controller) may have changed our conditions.
            let overwritten = match api.get_status(&name).await {
                Ok(n) => {
                    let theirs: Vec<(String, String)> = n
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| (c.type_, c.status))
                        .collect();
                    let ours: Vec<(String, String)> = status["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| {
                            (
                                c["type"].as_str().unwrap_or_default().to_string(),
                                c["status"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect();
                    ours.iter().any(|o| !theirs.contains(o))
                }
                Err(_) => false,
            };
            if last.as_ref() == Some(&status)
                && last_write.elapsed() < STATUS_REFRESH
                && !overwritten
            {
                continue;
            }
            let now = jiff::Timestamp::now().to_string();
            let mut body = status.clone();
            if let Some(cs) = body["conditions"].as_array_mut() {
                for c in cs {
                    c["lastHeartbeatTime"] = json!(now);
                }
            }
            match api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": body})),
                )
                .await
            {
                Ok(_) => {
                    let ready = status["conditions"]
                        .as_array()
                        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                        .is_some_and(|c| c["status"] == "True");
                    if was_ready != Some(ready) {
                        let obj = InvolvedObject::node(&name);
                        if ready {
                            self.recorder.normal(
                                &obj,
                                "NodeReady",
                                format!("Node {name} status is now: NodeReady"),
                            );
                        } else {
                            self.recorder.normal(
                                &obj,
                                "NodeNotReady",
                                format!("Node {name} status is now: NodeNotReady"),
                            );
                        }
                        was_ready = Some(ready);
                    }
                    last = Some(status);
                    last_write = Instant::now();
                }
                Err(e) => tracing::warn!(node = %name, error = %e, "cannot update the node status"),
            }
        }
    }

    /// Hands the node's pod CIDR to the runtime whenever the Node's changes.
    pub async fn run_pod_cidr(self: Arc<Self>, shutdown: CancellationToken) {
        use futures::StreamExt;
        let api: Api<Node> = Api::all(self.client.clone());
        let cfg = kube::runtime::watcher::Config::default()
            .fields(&format!("metadata.name={}", self.config.node_name));
        let mut events = kube::runtime::watcher(api, cfg).boxed();
        let mut current = String::new();
        loop {
            let ev = tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = events.next() => ev,
            };
            let node = match ev {
                Some(Ok(kube::runtime::watcher::Event::Apply(n)))
                | Some(Ok(kube::runtime::watcher::Event::InitApply(n))) => n,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "node watch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                None => return,
                _ => continue,
            };
            let cidr = node.spec.and_then(|s| s.pod_cidr).unwrap_or_default();
            if !cidr.is_empty() && cidr != current {
                match self.runtime.update_runtime_config(&cidr).await {
                    Ok(()) => {
                        tracing::info!(pod_cidr = %cidr, "the node's pod CIDR");
                        current = cidr;
                    }
                    Err(e) => tracing::warn!(error = %e, "the pod network refused the pod CIDR"),
                }
            }
        }
    }

    /// Renews the node's Lease every heartbeat until `shutdown`.
    pub async fn run_lease(self: Arc<Self>, node_uid: String, shutdown: CancellationToken) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let name = self.config.node_name.clone();
        let duration = (self.config.heartbeat.as_secs() * 4).max(40) as i32;
        let mut tick = tokio::time::interval(self.config.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = MicroTime(jiff::Timestamp::now());
            let patch = json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": now}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => continue,
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "cannot renew the node lease");
                    continue;
                }
            }
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: name.clone(),
                        uid: node_uid.clone(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.clone()),
                    lease_duration_seconds: Some(duration),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            if let Err(e) = api.create(&PostParams::default(), &lease).await {
                tracing::warn!(node = %name, error = %e, "cannot create the node lease");
            }
        }
    }
}
