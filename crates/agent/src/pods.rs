//! The pod manager: watches the pods bound to this node and gives each its worker; relists
//! the runtime (PLEG, as kubelet calls it) to wake the workers whose containers changed, and
//! hands sandboxes of pods the API no longer has to a worker that removes them.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;

use crate::context::NodeContext;
use crate::worker::{PodWorker, WorkerHandle};

/// Pods this agent is running, by UID (shared with the streaming server and metrics).
pub type PodIndex = Arc<std::sync::RwLock<HashMap<String, Arc<Pod>>>>;

pub struct PodManager {
    ctx: Arc<NodeContext>,
    workers: HashMap<String, WorkerHandle>,
    index: PodIndex,
    /// Set once the first pod list was taken.
    synced: tokio::sync::watch::Sender<bool>,
}

fn uid_of(p: &Pod) -> Option<String> {
    p.metadata.uid.clone().filter(|u| !u.is_empty())
}

impl PodManager {
    pub fn new(
        ctx: Arc<NodeContext>,
        index: PodIndex,
        synced: tokio::sync::watch::Sender<bool>,
    ) -> PodManager {
        PodManager {
            ctx,
            workers: HashMap::new(),
            index,
            synced,
        }
    }

    fn dispatch(&mut self, pod: Pod, shutdown: &CancellationToken) {
        let Some(uid) = uid_of(&pod) else { return };
        let pod = Arc::new(pod);
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid.clone(), pod.clone());
        match self.workers.get(&uid) {
            Some(w) if !w.task.is_finished() => {
                w.desired.send_replace(Some(pod));
            }
            _ => {
                let w =
                    PodWorker::spawn(self.ctx.clone(), uid.clone(), Some(pod), shutdown.clone());
                self.workers.insert(uid, w);
            }
        }
    }

    fn gone(&mut self, uid: &str, shutdown: &CancellationToken) {
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
        match self.workers.get(uid) {
            Some(w) if !w.task.is_finished() => {
                w.desired.send_replace(None);
            }
            _ => {
                let w = PodWorker::spawn(self.ctx.clone(), uid.to_string(), None, shutdown.clone());
                self.workers.insert(uid.to_string(), w);
            }
        }
    }

    /// Runs until `shutdown`; containers are left running.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let api: Api<Pod> = Api::all(self.ctx.client.clone());
        let cfg = watcher::Config::default()
            .fields(&format!("spec.nodeName={}", self.ctx.config.node_name));
        let mut events = watcher::watcher(api, cfg).boxed();
        let mut relist = tokio::time::interval(self.ctx.config.relist_interval);
        relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut listing: Option<HashSet<String>> = None;
        let mut synced = false;
        let mut signatures: HashMap<String, u64> = HashMap::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                ev = events.next() => match ev {
                    Some(Ok(Event::Apply(p))) => self.dispatch(p, &shutdown),
                    Some(Ok(Event::Delete(p))) => {
                        if let Some(uid) = uid_of(&p) {
                            self.gone(&uid, &shutdown);
                        }
                    }
                    Some(Ok(Event::Init)) => listing = Some(HashSet::new()),
                    Some(Ok(Event::InitApply(p))) => {
                        if let (Some(l), Some(uid)) = (listing.as_mut(), uid_of(&p)) {
                            l.insert(uid);
                        }
                        self.dispatch(p, &shutdown);
                    }
                    Some(Ok(Event::InitDone)) => {
                        if let Some(seen) = listing.take() {
                            let stale: Vec<String> = self
                                .index
                                .read()
                                .unwrap_or_else(|p| p.into_inner())
                                .keys()
                                .filter(|u| !seen.contains(*u))
                                .cloned()
                                .collect();
                            for uid in stale {
                                self.gone(&uid, &shutdown);
                            }
                        }
                        synced = true;
                        let _ = self.synced.send(true);
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "pod watch failed; retrying"),
                    None => break,
                },
                _ = relist.tick() => {
                    self.relist(synced, &mut signatures, &shutdown).await;
                    self.workers.retain(|_, w| !w.task.is_finished());
                }
            }
        }
        for (_, w) in self.workers.drain() {
            let _ = w.task.await;
        }
    }

    /// Wakes workers whose containers changed; adopts sandboxes of unknown pods for removal.
    async fn relist(
        &mut self,
        synced: bool,
        signatures: &mut HashMap<String, u64>,
        shutdown: &CancellationToken,
    ) {
        let snap = match self.ctx.runtime.snapshot().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "relisting the runtime failed");
                return;
            }
        };
        let mut by_pod: HashMap<String, std::collections::hash_map::DefaultHasher> = HashMap::new();
        let sandbox_pod: HashMap<&str, &str> = snap
            .sandboxes
            .iter()
            .map(|s| (s.id.as_str(), s.uid.as_str()))
            .collect();
        for s in &snap.sandboxes {
            let h = by_pod.entry(s.uid.clone()).or_default();
            (&s.id, s.state == berth_cri::SandboxState::Ready).hash(h);
        }
        for c in &snap.containers {
            if let Some(uid) = sandbox_pod.get(c.sandbox_id.as_str()) {
                let h = by_pod.entry(uid.to_string()).or_default();
                (&c.id, format!("{:?}", c.state), c.exit_code).hash(h);
            }
        }
        let mut seen = HashSet::new();
        for (uid, h) in by_pod {
            let sig = h.finish();
            seen.insert(uid.clone());
            let changed = signatures.insert(uid.clone(), sig) != Some(sig);
            match self.workers.get(&uid) {
                Some(w) if !w.task.is_finished() => {
                    if changed {
                        w.wake.notify_one();
                    }
                }
                _ => {
                    let known = self
                        .index
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .contains_key(&uid);
                    if synced && !known {
                        tracing::info!(pod = %uid, "removing the sandbox of a pod this node no longer runs");
                        self.gone(&uid, shutdown);
                    }
                }
            }
        }
        signatures.retain(|u, _| seen.contains(u));
    }
}
