//! The per-pod worker: one task per pod bound to this node, level-triggered. Each sync reads
//! the desired pod (from the watch) and what the runtime has for it (`pod_snapshot`), decides
//! what to do — create the sandbox, set up volumes, pull images, run init containers in
//! order, start or restart containers (restart policy, crash-loop back-off, failed liveness
//! or startup probes, changed specs), run lifecycle hooks, terminate gracefully on deletion —
//! and writes the pod's status when it changed. The only memory kept between syncs is what
//! can be lost (back-off timers, probe tasks), so a restarted agent continues from the runtime.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_cri::{ContainerState, ContainerStatus as CriContainer, Mount, RegistryAuth};
use futures::future::join_all;
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::context::NodeContext;
use crate::events::InvolvedObject;
use crate::handlers::{self, Outcome, Target};
use crate::objects::Lookup;
use crate::podspec::{self, Backoff, RestartPolicy};
use crate::probes::Prober;
use crate::status::{self, PodRuntime, StatusInput, Waiting};
use crate::volumes::{self, PodVolumes, VolumeContext};

/// How long a sync waits at most before looking again (sooner when woken).
const RETRY: Duration = Duration::from_secs(2);
const TERMINATION_MESSAGE_MAX: usize = 4096;

/// The handle the pod manager keeps for a worker.
pub struct WorkerHandle {
    pub desired: watch::Sender<Option<Arc<Pod>>>,
    pub wake: Arc<Notify>,
    pub task: tokio::task::JoinHandle<()>,
}

struct CrashLoop {
    backoff: Backoff,
    /// The exited instance the current delay applies to, and when it may restart.
    instance: Option<(String, Instant)>,
    restarts: u32,
}

pub struct PodWorker {
    uid: String,
    ctx: Arc<NodeContext>,
    desired: watch::Receiver<Option<Arc<Pod>>>,
    wake: Arc<Notify>,
    last_pod: Option<Arc<Pod>>,
    crash: HashMap<String, CrashLoop>,
    image_backoff: HashMap<String, (Backoff, Instant, String)>,
    waiting: Waiting,
    prober: Prober,
    messages: HashMap<String, String>,
    last_status: Option<PodStatus>,
    volumes: Option<PodVolumes>,
    volumes_at: Option<Instant>,
    failed: Option<(String, String)>,
    next_wake: Option<Instant>,
    hosts_written: Option<String>,
    deleted_from_api: bool,
}

fn obj_of(pod: &Pod) -> InvolvedObject {
    InvolvedObject::pod(
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default(),
    )
}

fn field_path(c: &Container, init: bool) -> String {
    if init {
        format!("spec.initContainers{{{}}}", c.name)
    } else {
        format!("spec.containers{{{}}}", c.name)
    }
}

fn is_terminal(pod: &Pod, last: Option<&PodStatus>) -> bool {
    let p = last
        .and_then(|s| s.phase.as_deref())
        .or_else(|| pod.status.as_ref().and_then(|s| s.phase.as_deref()));
    matches!(p, Some("Succeeded") | Some("Failed"))
}

fn registry_host(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// Credentials for `image` from the pod's `imagePullSecrets` (dockerconfigjson / dockercfg).
async fn pull_auth(pod: &Pod, image: &str, lookup: &mut Lookup) -> Option<RegistryAuth> {
    let host = registry_host(image)?;
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    for s in pod
        .spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
    {
        let Ok(Some(secret)) = lookup.secret(&ns, &s.name).await else {
            continue;
        };
        let data = Lookup::secret_data(&secret);
        let find = |key: &str| data.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let auths: serde_json::Value = if let Some(b) = find(".dockerconfigjson") {
            serde_json::from_slice::<serde_json::Value>(&b)
                .ok()
                .map(|v| v["auths"].clone())
                .unwrap_or_default()
        } else if let Some(b) = find(".dockercfg") {
            serde_json::from_slice(&b).unwrap_or_default()
        } else {
            continue;
        };
        let Some(map) = auths.as_object() else {
            continue;
        };
        for (k, v) in map {
            let key = k
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default();
            if key != host {
                continue;
            }
            let (mut user, mut pass) = (
                v["username"].as_str().map(String::from),
                v["password"].as_str().map(String::from),
            );
            if let Some(a) = v["auth"].as_str() {
                use base64::Engine;
                if let Ok(dec) = base64::engine::general_purpose::STANDARD.decode(a)
                    && let Some((u, p)) = String::from_utf8_lossy(&dec).split_once(':')
                {
                    user = Some(u.to_string());
                    pass = Some(p.to_string());
                }
            }
            if let (Some(username), Some(password)) = (user, pass) {
                return Some(RegistryAuth::Basic { username, password });
            }
        }
    }
    None
}

/// Runs a lifecycle hook; `Err` carries the failure message.
async fn run_hook(h: &LifecycleHandler, t: &Target, timeout: Duration) -> Result<(), String> {
    let outcome = if let Some(a) = &h.exec {
        handlers::exec(t, a, timeout).await
    } else if let Some(a) = &h.http_get {
        handlers::http_get(t, a, timeout).await
    } else if let Some(a) = &h.tcp_socket {
        handlers::tcp(t, a, timeout).await
    } else if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(timeout)).await;
        Outcome::Success
    } else {
        Outcome::Success
    };
    match outcome {
        Outcome::Success => Ok(()),
        Outcome::Failure(m) => Err(m),
    }
}

impl PodWorker {
    pub fn spawn(
        ctx: Arc<NodeContext>,
        uid: String,
        pod: Option<Arc<Pod>>,
        shutdown: CancellationToken,
    ) -> WorkerHandle {
        let (tx, rx) = watch::channel(pod);
        let wake = Arc::new(Notify::new());
        let w = PodWorker {
            uid,
            ctx,
            desired: rx,
            wake: wake.clone(),
            last_pod: None,
            crash: HashMap::new(),
            image_backoff: HashMap::new(),
            waiting: Waiting::new(),
            prober: Prober::default(),
            messages: HashMap::new(),
            last_status: None,
            volumes: None,
            volumes_at: None,
            failed: None,
            next_wake: None,
            hosts_written: None,
            deleted_from_api: false,
        };
        let task = tokio::spawn(w.run(shutdown));
        WorkerHandle {
            desired: tx,
            wake,
            task,
        }
    }

    async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let pod = self.desired.borrow_and_update().clone();
            self.next_wake = None;
            match self.sync(pod).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(pod = %self.uid, error = %e, "pod sync failed");
                    self.later(RETRY);
                }
            }
            let deadline = self
                .next_wake
                .unwrap_or_else(|| Instant::now() + self.ctx.config.resync_interval);
            tokio::select! {
                // The agent stops; containers keep running and are adopted on restart.
                _ = shutdown.cancelled() => break,
                r = self.desired.changed() => {
                    if r.is_err() {
                        // The manager dropped us: nothing more to do.
                        break;
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        self.prober.stop_all();
    }

    fn later(&mut self, d: Duration) {
        let at = Instant::now() + d;
        self.next_wake = Some(self.next_wake.map_or(at, |n| n.min(at)));
    }

    /// One sync; `Ok(true)` once the pod is gone and cleaned up.
    async fn sync(&mut self, pod: Option<Arc<Pod>>) -> crate::Result<bool> {
        let rt = PodRuntime::new(self.ctx.runtime.pod_snapshot(&self.uid).await?);
        let Some(pod) = pod else {
            return self.cleanup(rt).await;
        };
        self.last_pod = Some(pod.clone());
        if pod.metadata.deletion_timestamp.is_some() {
            self.terminate(&pod, &rt).await?;
            return Ok(false);
        }
        if self.failed.is_none()
            && let Some((vol, limit)) = volumes::over_limit(&pod, &self.ctx.config.pods_dir())
        {
            let msg = format!("Usage of EmptyDir volume \"{vol}\" exceeds the limit \"{limit}\". ");
            self.ctx.recorder.warning(&obj_of(&pod), "Evicted", &msg);
            self.failed = Some(("Evicted".into(), msg));
        }
        if self.failed.is_some() || is_terminal(&pod, self.last_status.as_ref()) {
            self.kill_all(&pod, &rt, podspec::grace_period(&pod), None)
                .await;
            let rt = PodRuntime::new(self.ctx.runtime.pod_snapshot(&self.uid).await?);
            if let Some(sb) = rt.ready_sandbox() {
                self.ctx.runtime.stop_sandbox(&sb.id).await?;
            }
            let rt = PodRuntime::new(self.ctx.runtime.pod_snapshot(&self.uid).await?);
            self.prober.stop_all();
            self.write_status(&pod, &rt).await;
            return Ok(false);
        }
        self.run_pod(&pod, rt).await?;
        Ok(false)
    }

    /// The pod object is gone: stop and remove everything it had on this node.
    async fn cleanup(&mut self, rt: PodRuntime) -> crate::Result<bool> {
        self.deleted_from_api = true;
        let grace = self
            .last_pod
            .as_ref()
            .map(|p| podspec::grace_period(p).min(Duration::from_secs(2)))
            .unwrap_or(Duration::ZERO);
        if let Some(p) = self.last_pod.clone() {
            self.kill_all(&p, &rt, grace, None).await;
        } else {
            for c in rt.running() {
                let _ = self.ctx.runtime.stop_container(&c.id, grace).await;
            }
        }
        self.prober.stop_all();
        for sb in &rt.sandboxes {
            self.ctx.runtime.remove_sandbox(&sb.id).await?;
        }
        let pods_dir = self.ctx.config.pods_dir();
        let uid = self.uid.clone();
        tokio::task::spawn_blocking(move || volumes::teardown(&pods_dir, &uid))
            .await
            .map_err(crate::AgentError::internal)?
            .map_err(crate::AgentError::internal)?;
        if let Some(p) = &self.last_pod {
            let logs = self.ctx.pod_log_dir(p);
            let _ = std::fs::remove_dir_all(logs);
        } else if let Ok(entries) = std::fs::read_dir(self.ctx.config.logs_dir()) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!("_{}", self.uid))
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        tracing::debug!(pod = %self.uid, "pod removed from the node");
        Ok(true)
    }

    /// Graceful termination of a pod being deleted; then the final delete.
    async fn terminate(&mut self, pod: &Pod, rt: &PodRuntime) -> crate::Result<()> {
        let grace = podspec::grace_period(pod);
        self.kill_all(pod, rt, grace, Some("Stopping container"))
            .await;
        let rt = PodRuntime::new(self.ctx.runtime.pod_snapshot(&self.uid).await?);
        if rt.running().next().is_some() {
            self.later(Duration::from_secs(1));
            return Ok(());
        }
        for sb in &rt.sandboxes {
            self.ctx.runtime.stop_sandbox(&sb.id).await?;
        }
        self.prober.stop_all();
        let rt = PodRuntime::new(self.ctx.runtime.pod_snapshot(&self.uid).await?);
        self.write_status(pod, &rt).await;
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &dp)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                tracing::warn!(pod = %self.uid, error = %e, "cannot complete the pod's deletion");
                self.later(RETRY);
            }
        }
        Ok(())
    }

    /// Stops every running container of the pod (preStop hooks first), concurrently.
    async fn kill_all(&self, pod: &Pod, rt: &PodRuntime, grace: Duration, event: Option<&str>) {
        let spec = pod.spec.clone().unwrap_or_default();
        let kills = rt.running().map(|c| {
            let spec_c = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .find(|s| s.name == c.name)
                .cloned();
            self.kill_container(
                pod,
                c,
                spec_c,
                grace,
                event.map(|e| format!("{e} {}", c.name)),
            )
        });
        join_all(kills).await;
    }

    async fn kill_container(
        &self,
        pod: &Pod,
        c: &CriContainer,
        spec: Option<Container>,
        grace: Duration,
        event: Option<String>,
    ) {
        let started = Instant::now();
        if let Some(msg) = event {
            let fp = spec
                .as_ref()
                .map(|s| field_path(s, pod_is_init(pod, &s.name)))
                .unwrap_or_default();
            self.ctx
                .recorder
                .normal(&obj_of(pod).container(fp), "Killing", msg);
        }
        if c.state == ContainerState::Running
            && let Some(s) = &spec
            && let Some(h) = s.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
        {
            let t = Target {
                runtime: self.ctx.runtime.clone(),
                sandbox_id: c.sandbox_id.clone(),
                container_id: c.id.clone(),
                container: s.clone(),
            };
            if let Err(m) = run_hook(h, &t, grace).await {
                self.ctx.recorder.warning(
                    &obj_of(pod).container(field_path(s, false)),
                    "FailedPreStopHook",
                    format!("PreStopHook failed: {m}"),
                );
            }
        }
        let left = grace.saturating_sub(started.elapsed());
        if let Err(e) = self.ctx.runtime.stop_container(&c.id, left).await {
            tracing::warn!(container = %c.id, error = %e, "cannot stop container");
        }
    }

    async fn run_pod(&mut self, pod: &Pod, mut rt: PodRuntime) -> crate::Result<()> {
        let spec = pod.spec.clone().unwrap_or_default();
        let obj = obj_of(pod);
        // 1. The sandbox.
        if rt.ready_sandbox().is_none() {
            let had_running = rt.running().next().is_some();
            let old: Vec<String> = rt.sandboxes.iter().map(|s| s.id.clone()).collect();
            if !old.is_empty() {
                if had_running {
                    self.ctx.recorder.normal(
                        &obj,
                        "SandboxChanged",
                        "Pod sandbox changed, it will be killed and re-created.",
                    );
                }
                self.kill_all(pod, &rt, Duration::ZERO, None).await;
                for id in &old {
                    self.ctx.runtime.remove_sandbox(id).await?;
                }
            }
            let attempt = rt.sandboxes.first().map(|s| s.attempt + 1).unwrap_or(0);
            let cfg = crate::containers::sandbox_config(&self.ctx, pod, attempt);
            let t = Instant::now();
            let made = self.ctx.runtime.run_sandbox(&cfg).await;
            tracing::debug!(pod = %self.uid, elapsed_ms = t.elapsed().as_millis() as u64, "run_sandbox");
            if let Err(e) = made {
                self.ctx.recorder.warning(
                    &obj,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {e}"),
                );
                self.later(RETRY);
                self.write_status(pod, &rt).await;
                return Ok(());
            }
            self.hosts_written = None;
            self.volumes_at = None;
            rt = PodRuntime::new(self.ctx.runtime.pod_snapshot(&self.uid).await?);
        }
        let Some(sandbox) = rt.ready_sandbox().cloned() else {
            self.later(RETRY);
            return Ok(());
        };
        // 2. Volumes (and their refresh) and /etc/hosts.
        let mut lookup = Lookup::new(self.ctx.client.clone(), self.ctx.services.clone());
        let host_ip = self.ctx.host_ip();
        let pod_ip = if spec.host_network.unwrap_or(false) {
            host_ip.clone()
        } else {
            sandbox.ip.map(|i| i.to_string()).unwrap_or_default()
        };
        if self
            .volumes_at
            .is_none_or(|t| t.elapsed() >= self.ctx.config.resync_interval)
        {
            let vctx = VolumeContext {
                pods_dir: &self.ctx.config.pods_dir(),
                host_ip: &host_ip,
                pod_ip: &pod_ip,
                node_alloc: self.ctx.node_alloc,
                node_memory: self.ctx.node_memory,
            };
            match volumes::setup(pod, &vctx, &mut lookup).await {
                Ok(v) => {
                    self.volumes = Some(v);
                    self.volumes_at = Some(Instant::now());
                }
                Err(e) => {
                    self.ctx
                        .recorder
                        .warning(&obj, "FailedMount", e.to_string());
                    if self.volumes.is_none() {
                        self.later(RETRY);
                        self.write_status(pod, &rt).await;
                        return Ok(());
                    }
                }
            }
        }
        let hosts_path = volumes::pod_dir(&self.ctx.config.pods_dir(), &self.uid).join("etc-hosts");
        let hosts = crate::dns::hosts_file(
            pod,
            &sandbox.ip.into_iter().collect::<Vec<_>>(),
            &self.ctx.config.cluster_domain,
        );
        if self.hosts_written.as_deref() != Some(hosts.as_str()) {
            if let Some(d) = hosts_path.parent() {
                std::fs::create_dir_all(d).map_err(|e| crate::AgentError::io("create", d, e))?;
            }
            std::fs::write(&hosts_path, &hosts)
                .map_err(|e| crate::AgentError::io("write", &hosts_path, e))?;
            self.hosts_written = Some(hosts);
        }
        // 3. Probes of running containers (also after an agent restart).
        self.sync_probes(pod, &rt, &sandbox.id);
        let policy = RestartPolicy::of(&spec);
        self.waiting.clear();
        // 4. Init containers, in order.
        let mut initialized = true;
        for c in spec.init_containers.iter().flatten() {
            let history = rt.history(&c.name);
            match history.first() {
                Some(x) if x.state == ContainerState::Exited && x.exit_code == Some(0) => continue,
                Some(x) if x.state == ContainerState::Running => {
                    initialized = false;
                    break;
                }
                Some(x) if x.state == ContainerState::Created => {
                    initialized = false;
                    self.start_created(pod, c, x, true).await;
                    break;
                }
                Some(x) => {
                    initialized = false;
                    if policy == RestartPolicy::Never {
                        break;
                    }
                    let x = (*x).clone();
                    self.restart_after_exit(pod, c, &x, &sandbox.id, &pod_ip, true, &mut lookup)
                        .await;
                    break;
                }
                None => {
                    initialized = false;
                    let attempt = self.next_attempt(&rt, pod, &c.name, true);
                    self.start_container(pod, c, attempt, &sandbox.id, &pod_ip, true, &mut lookup)
                        .await;
                    break;
                }
            }
        }
        // 5. Regular containers.
        if !initialized {
            for c in &spec.containers {
                self.waiting
                    .entry(c.name.clone())
                    .or_insert(("PodInitializing".into(), String::new()));
            }
        } else {
            for c in &spec.containers {
                let history = rt.history(&c.name);
                match history.first().map(|x| (*x).clone()) {
                    None => {
                        let attempt = self.next_attempt(&rt, pod, &c.name, false);
                        self.start_container(
                            pod,
                            c,
                            attempt,
                            &sandbox.id,
                            &pod_ip,
                            false,
                            &mut lookup,
                        )
                        .await;
                    }
                    Some(x) if x.state == ContainerState::Created => {
                        self.start_created(pod, c, &x, false).await;
                    }
                    Some(x) if x.state == ContainerState::Running => {
                        let probe = self.prober.state(&x.id);
                        let why = if probe.liveness_failed.is_some() {
                            Some(format!(
                                "Container {} failed liveness probe, will be restarted",
                                c.name
                            ))
                        } else if probe.startup_failed.is_some() {
                            Some(format!(
                                "Container {} failed startup probe, will be restarted",
                                c.name
                            ))
                        } else if x
                            .annotations
                            .get(podspec::ANN_HASH)
                            .is_some_and(|h| *h != podspec::container_hash(c))
                        {
                            Some(format!(
                                "Container {} definition changed, will be restarted",
                                c.name
                            ))
                        } else {
                            None
                        };
                        if let Some(msg) = why {
                            let grace = c
                                .liveness_probe
                                .as_ref()
                                .and_then(|p| p.termination_grace_period_seconds)
                                .map(|s| Duration::from_secs(s.max(0) as u64))
                                .unwrap_or_else(|| podspec::grace_period(pod));
                            self.kill_container(pod, &x, Some(c.clone()), grace, Some(msg))
                                .await;
                            self.wake.notify_one();
                        }
                    }
                    Some(x) => {
                        if policy.restarts(x.exit_code.unwrap_or(1)) {
                            self.restart_after_exit(
                                pod,
                                c,
                                &x,
                                &sandbox.id,
                                &pod_ip,
                                false,
                                &mut lookup,
                            )
                            .await;
                        }
                    }
                }
            }
        }
        let rt = PodRuntime::new(self.ctx.runtime.pod_snapshot(&self.uid).await?);
        self.sync_probes(pod, &rt, &sandbox.id);
        self.read_termination_messages(pod, &rt);
        self.write_status(pod, &rt).await;
        Ok(())
    }

    fn sync_probes(&mut self, pod: &Pod, rt: &PodRuntime, sandbox_id: &str) {
        let spec = pod.spec.clone().unwrap_or_default();
        let running: HashSet<String> = rt
            .containers
            .iter()
            .filter(|c| c.state == ContainerState::Running && c.sandbox_id == sandbox_id)
            .map(|c| c.id.clone())
            .collect();
        self.prober.retain(&running);
        for c in rt.containers.iter().filter(|c| running.contains(&c.id)) {
            let Some(s) = spec.containers.iter().find(|s| s.name == c.name) else {
                continue;
            };
            let was_ready = pod
                .status
                .as_ref()
                .and_then(|st| st.container_statuses.as_ref())
                .and_then(|l| l.iter().find(|x| x.name == c.name))
                .is_some_and(|x| {
                    x.ready
                        && x.container_id.as_deref()
                            == Some(podspec::container_id_uri(&c.id).as_str())
                });
            self.prober.ensure(
                Target {
                    runtime: self.ctx.runtime.clone(),
                    sandbox_id: sandbox_id.to_string(),
                    container_id: c.id.clone(),
                    container: s.clone(),
                },
                was_ready,
                self.wake.clone(),
                self.ctx.recorder.clone(),
                obj_of(pod),
            );
        }
    }

    /// The attempt number of the next instance of a container.
    fn next_attempt(&self, rt: &PodRuntime, pod: &Pod, name: &str, init: bool) -> u32 {
        if let Some(c) = rt.all_instances(name).first() {
            return c.attempt + 1;
        }
        let st = pod.status.as_ref();
        let list = if init {
            st.and_then(|s| s.init_container_statuses.as_ref())
        } else {
            st.and_then(|s| s.container_statuses.as_ref())
        };
        list.and_then(|l| l.iter().find(|c| c.name == name))
            .filter(|c| c.container_id.is_some())
            .map(|c| c.restart_count as u32 + 1)
            .unwrap_or(0)
    }

    #[allow(clippy::too_many_arguments)]
    async fn restart_after_exit(
        &mut self,
        pod: &Pod,
        c: &Container,
        exited: &CriContainer,
        sandbox_id: &str,
        pod_ip: &str,
        init: bool,
        lookup: &mut Lookup,
    ) {
        let now = Instant::now();
        let entry = self.crash.entry(c.name.clone()).or_insert(CrashLoop {
            backoff: Backoff::default(),
            instance: None,
            restarts: 0,
        });
        let restart_at = match &entry.instance {
            Some((id, at)) if *id == exited.id => *at,
            _ => {
                let ran = match (exited.started_at_ns, exited.finished_at_ns) {
                    (Some(s), Some(f)) if f > s => Duration::from_nanos((f - s) as u64),
                    _ => Duration::ZERO,
                };
                let delay = if entry.restarts == 0 && ran < podspec::BACKOFF_RESET {
                    Duration::ZERO
                } else {
                    entry.backoff.next(ran)
                };
                entry.restarts += 1;
                let at = now + delay;
                entry.instance = Some((exited.id.clone(), at));
                at
            }
        };
        if now < restart_at {
            let delay = entry.backoff.current();
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
            self.waiting.insert(
                c.name.clone(),
                (
                    "CrashLoopBackOff".into(),
                    format!(
                        "back-off {}s restarting failed container={} pod={name}_{ns}({})",
                        delay.as_secs(),
                        c.name,
                        self.uid
                    ),
                ),
            );
            self.ctx.recorder.warning(
                &obj_of(pod).container(field_path(c, init)),
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {name}_{ns}({})",
                    c.name, self.uid
                ),
            );
            self.later(restart_at - now);
            return;
        }
        self.start_container(pod, c, exited.attempt + 1, sandbox_id, pod_ip, init, lookup)
            .await;
    }

    async fn start_created(&mut self, pod: &Pod, c: &Container, x: &CriContainer, init: bool) {
        let obj = obj_of(pod).container(field_path(c, init));
        match self.ctx.runtime.start_container(&x.id).await {
            Ok(()) => {
                self.ctx
                    .recorder
                    .normal(&obj, "Started", format!("Started container {}", c.name))
            }
            Err(e) => {
                self.ctx
                    .recorder
                    .warning(&obj, "Failed", format!("Error: {e}"));
                let _ = self.ctx.runtime.remove_container(&x.id).await;
                self.later(RETRY);
            }
        }
    }

    /// Pulls the container's image as its policy says; `Err` = (waiting reason, message).
    async fn ensure_image(
        &mut self,
        pod: &Pod,
        c: &Container,
        lookup: &mut Lookup,
    ) -> Result<(), (String, String)> {
        let image = c.image.clone().unwrap_or_default();
        let obj = obj_of(pod).container(field_path(c, pod_is_init(pod, &c.name)));
        if image.is_empty() {
            return Err((
                "InvalidImageName".into(),
                "the container has no image".into(),
            ));
        }
        let tagless =
            !image.rsplit('/').next().unwrap_or(&image).contains(':') && !image.contains('@');
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            if tagless || image.ends_with(":latest") {
                "Always".into()
            } else {
                "IfNotPresent".into()
            }
        });
        if let Some((_, at, msg)) = self.image_backoff.get(&image)
            && Instant::now() < *at
        {
            let m = format!("Back-off pulling image \"{image}\": {msg}");
            self.ctx.recorder.normal(&obj, "BackOff", m.clone());
            let at = *at;
            self.later(at - Instant::now());
            return Err(("ImagePullBackOff".into(), m));
        }
        let present = self.ctx.runtime.image_status(&image).await.ok().flatten();
        if policy == "Never" {
            return match present {
                Some(_) => Ok(()),
                None => {
                    let m = format!(
                        "Container image \"{image}\" is not present with pull policy of Never"
                    );
                    self.ctx
                        .recorder
                        .warning(&obj, "ErrImageNeverPull", m.clone());
                    self.later(RETRY);
                    Err(("ErrImageNeverPull".into(), m))
                }
            };
        }
        if policy == "IfNotPresent" && present.is_some() {
            self.ctx.recorder.normal(
                &obj,
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            );
            return Ok(());
        }
        self.ctx
            .recorder
            .normal(&obj, "Pulling", format!("Pulling image \"{image}\""));
        let auth = pull_auth(pod, &image, lookup).await;
        let started = Instant::now();
        match self.ctx.runtime.pull_image(&image, auth.as_ref()).await {
            Ok(r) => {
                self.image_backoff.remove(&image);
                let secs = started.elapsed().as_secs_f64();
                self.ctx.recorder.normal(
                    &obj,
                    "Pulled",
                    format!("Successfully pulled image \"{image}\" in {secs:.3}s ({secs:.3}s including waiting). Image size: {} bytes.", r.size_bytes),
                );
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                self.ctx.recorder.warning(
                    &obj,
                    "Failed",
                    format!("Failed to pull image \"{image}\": {msg}"),
                );
                self.ctx
                    .recorder
                    .warning(&obj, "Failed", "Error: ErrImagePull");
                let entry = self.image_backoff.entry(image.clone()).or_insert((
                    Backoff::default(),
                    Instant::now(),
                    String::new(),
                ));
                let d = entry.0.next(Duration::ZERO);
                entry.1 = Instant::now() + d;
                entry.2 = msg.clone();
                self.later(d);
                Err(("ErrImagePull".into(), msg))
            }
        }
    }

    fn termination_file(&self, c: &Container, attempt: u32) -> std::path::PathBuf {
        volumes::pod_dir(&self.ctx.config.pods_dir(), &self.uid)
            .join("containers")
            .join(&c.name)
            .join(attempt.to_string())
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_container(
        &mut self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
        sandbox_id: &str,
        pod_ip: &str,
        init: bool,
        lookup: &mut Lookup,
    ) {
        let obj = obj_of(pod).container(field_path(c, init));
        let t = Instant::now();
        if let Err((reason, msg)) = self.ensure_image(pod, c, lookup).await {
            self.waiting.insert(c.name.clone(), (reason, msg));
            return;
        }
        let master = self.ctx.master_service();
        let env_in = crate::envvars::EnvInput {
            pod,
            container: c,
            host_ip: &self.ctx.host_ip(),
            pod_ip,
            node_alloc: self.ctx.node_alloc,
            master: master.as_ref(),
        };
        let env = match crate::envvars::resolve(&env_in, lookup).await {
            Ok(e) => e,
            Err(e) => {
                self.ctx
                    .recorder
                    .warning(&obj, "Failed", format!("Error: {}", e.0));
                self.waiting
                    .insert(c.name.clone(), ("CreateContainerConfigError".into(), e.0));
                self.later(RETRY);
                return;
            }
        };
        let env_map: HashMap<String, String> = env.iter().cloned().collect();
        let mut mounts = Vec::new();
        let vols = self.volumes.clone().unwrap_or_default();
        for m in c.volume_mounts.iter().flatten() {
            match volumes::mount_source(m, &vols, &env_map) {
                Ok((host, ro)) => mounts.push(Mount {
                    container_path: m.mount_path.clone().into(),
                    host_path: host,
                    readonly: ro,
                }),
                Err(e) => {
                    self.ctx
                        .recorder
                        .warning(&obj, "Failed", format!("Error: {e}"));
                    self.waiting
                        .insert(c.name.clone(), ("CreateContainerConfigError".into(), e));
                    self.later(RETRY);
                    return;
                }
            }
        }
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if !host_network
            && !mounts
                .iter()
                .any(|m| m.container_path.as_os_str() == "/etc/hosts")
        {
            mounts.push(Mount {
                container_path: "/etc/hosts".into(),
                host_path: volumes::pod_dir(&self.ctx.config.pods_dir(), &self.uid)
                    .join("etc-hosts"),
                readonly: false,
            });
        }
        let term_path = c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        let term_file = self.termination_file(c, attempt);
        if let Some(d) = term_file.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let _ = std::fs::write(&term_file, b"");
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&term_file, std::fs::Permissions::from_mode(0o666));
        }
        mounts.push(Mount {
            container_path: term_path.into(),
            host_path: term_file,
            readonly: false,
        });
        let cfg = crate::containers::container_config(crate::containers::ContainerInput {
            pod,
            container: c,
            attempt,
            init,
            env,
            mounts,
            node_memory: self.ctx.node_memory,
        });
        let t_prep = t.elapsed();
        let t = Instant::now();
        let created = self.ctx.runtime.create_container(sandbox_id, &cfg).await;
        let t_create = t.elapsed();
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                let reason = if e.is_invalid_argument() {
                    "CreateContainerConfigError"
                } else {
                    "CreateContainerError"
                };
                self.ctx
                    .recorder
                    .warning(&obj, "Failed", format!("Error: {e}"));
                self.waiting
                    .insert(c.name.clone(), (reason.into(), e.to_string()));
                self.later(RETRY);
                return;
            }
        };
        self.ctx
            .recorder
            .normal(&obj, "Created", format!("Created container: {}", c.name));
        let t = Instant::now();
        let started = self.ctx.runtime.start_container(&id).await;
        tracing::debug!(
            pod = %self.uid,
            container = %c.name,
            prepare_ms = t_prep.as_millis() as u64,
            create_ms = t_create.as_millis() as u64,
            start_ms = t.elapsed().as_millis() as u64,
            "container started"
        );
        if let Err(e) = started {
            self.ctx
                .recorder
                .warning(&obj, "Failed", format!("Error: {e}"));
            self.waiting
                .insert(c.name.clone(), ("RunContainerError".into(), e.to_string()));
            let _ = self.ctx.runtime.remove_container(&id).await;
            self.later(RETRY);
            return;
        }
        self.ctx
            .recorder
            .normal(&obj, "Started", format!("Started container {}", c.name));
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let t = Target {
                runtime: self.ctx.runtime.clone(),
                sandbox_id: sandbox_id.to_string(),
                container_id: id.clone(),
                container: c.clone(),
            };
            if let Err(m) = run_hook(
                h,
                &t,
                podspec::grace_period(pod).max(Duration::from_secs(30)),
            )
            .await
            {
                self.ctx.recorder.warning(
                    &obj,
                    "FailedPostStartHook",
                    format!("PostStartHook failed: {m}"),
                );
                let cri = CriContainer {
                    id: id.clone(),
                    sandbox_id: sandbox_id.to_string(),
                    name: c.name.clone(),
                    attempt,
                    image: Default::default(),
                    state: ContainerState::Running,
                    created_at_ns: 0,
                    started_at_ns: None,
                    finished_at_ns: None,
                    exit_code: None,
                    reason: None,
                    message: None,
                    log_path: Default::default(),
                    labels: Default::default(),
                    annotations: Default::default(),
                };
                self.kill_container(pod, &cri, Some(c.clone()), podspec::grace_period(pod), None)
                    .await;
            }
        }
    }

    /// Reads the termination messages of exited containers (once each).
    fn read_termination_messages(&mut self, pod: &Pod, rt: &PodRuntime) {
        let spec = pod.spec.clone().unwrap_or_default();
        for x in rt
            .containers
            .iter()
            .filter(|x| x.state == ContainerState::Exited)
        {
            if self.messages.contains_key(&x.id) {
                continue;
            }
            let Some(c) = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .find(|c| c.name == x.name)
            else {
                continue;
            };
            let mut msg = std::fs::read(self.termination_file(c, x.attempt))
                .map(|b| {
                    String::from_utf8_lossy(&b[..b.len().min(TERMINATION_MESSAGE_MAX)]).into_owned()
                })
                .unwrap_or_default();
            if msg.is_empty()
                && c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
                && x.exit_code != Some(0)
            {
                msg = crate::logs::tail_text(&x.log_path, 80, 2048);
            }
            self.messages.insert(x.id.clone(), msg);
        }
        let known: HashSet<&String> = rt.containers.iter().map(|c| &c.id).collect();
        self.messages.retain(|k, _| known.contains(k));
    }

    async fn write_status(&mut self, pod: &Pod, rt: &PodRuntime) {
        if self.deleted_from_api {
            return;
        }
        // Our last write is the truth for what we own, until the watch shows it.
        let mut base = pod.clone();
        if let Some(ls) = &self.last_status {
            let mut st = ls.clone();
            let foreign: Vec<_> = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|c| !ls.conditions.iter().flatten().any(|o| o.type_ == c.type_))
                .collect();
            st.conditions = Some(
                ls.conditions
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .chain(foreign)
                    .collect(),
            );
            base.status = Some(st);
        }
        let probes = self.prober.view();
        let status = status::compute(&StatusInput {
            pod: &base,
            rt,
            waiting: &self.waiting,
            probes: &probes,
            messages: &self.messages,
            host_ip: &self.ctx.host_ip(),
            now: jiff::Timestamp::now(),
            failed: self.failed.as_ref(),
        });
        if self.last_status.as_ref() == Some(&status)
            && pod.status.as_ref().and_then(|s| s.phase.as_ref()) == status.phase.as_ref()
        {
            return;
        }
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        let t = Instant::now();
        let written = api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await;
        tracing::debug!(pod = %name, phase = ?status.phase, elapsed_ms = t.elapsed().as_millis() as u64, "status written");
        match written {
            Ok(_) => self.last_status = Some(status),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(pod = %name, error = %e, "cannot update the pod status");
                self.later(RETRY);
            }
        }
    }
}

fn pod_is_init(pod: &Pod, name: &str) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|l| l.iter().any(|c| c.name == name))
}
