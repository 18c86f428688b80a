//! The garbage collector: deletes objects whose owners are all gone, removes references to
//! owners that are gone while others remain, and completes the `orphan` and
//! `foregroundDeletion` finalizers that the API server adds for DELETE with
//! `propagationPolicy: Orphan|Foreground`.
//!
//! It keeps a dependency graph (`graph`) fed by metadata-only watches of every resource
//! discovery lists with list, watch and delete verbs (re-discovered periodically so custom
//! resources are covered). The graph is evidence that an owner exists; it is never trusted
//! for absence: watches of different resources are not ordered with each other, so before
//! deleting a dependent, every owner missing from the graph is looked up with a live GET by
//! name and compared by uid, and the DELETE carries the dependent's uid as a precondition.

mod graph;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::catalog::{CatalogEntry, ResourceCatalog, gc_can_track};
use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};
use crate::queue::WorkQueue;
use graph::{FOREGROUND, Graph, Node, ORPHAN};

/// Settings of the garbage collector.
#[derive(Clone, Debug)]
pub struct GcConfig {
    /// Concurrent workers processing graph changes.
    pub workers: usize,
    /// How often discovery runs to pick up new (custom) resources.
    pub discovery_interval: Duration,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            workers: 8,
            discovery_interval: Duration::from_secs(30),
        }
    }
}

impl GcConfig {
    pub fn validate(&self) -> Result<()> {
        if self.workers == 0 {
            return Err(Error::Config {
                field: "gc.workers",
                reason: "must be at least 1".into(),
            });
        }
        if self.discovery_interval.is_zero() {
            return Err(Error::Config {
                field: "gc.discovery_interval",
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }
}

/// The state of one owner reference of a dependent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OwnerState {
    /// The owner exists.
    Solid,
    /// The owner exists and is being deleted in the foreground.
    Waiting,
    /// The owner is gone (verified live).
    Dangling,
    /// The owner's kind is not served (yet): try again later.
    Unresolved,
    /// The reference can never be valid (a namespaced owner of a cluster-scoped object).
    Invalid,
}

/// What to do with a key after processing.
enum Outcome {
    Done,
    RetryAfter(Duration),
}

struct Shared {
    client: Client,
    catalog: Arc<ResourceCatalog>,
    graph: Mutex<Graph>,
    queue: Arc<WorkQueue<String>>,
    recorder: EventRecorder,
    failures: Mutex<HashMap<String, u32>>,
}

/// The garbage collector component.
pub struct GarbageCollector {
    config: GcConfig,
    shared: Arc<Shared>,
}

impl GarbageCollector {
    pub fn new(
        config: GcConfig,
        client: Client,
        catalog: Arc<ResourceCatalog>,
        recorder: EventRecorder,
    ) -> Result<GarbageCollector> {
        config.validate()?;
        Ok(GarbageCollector {
            config,
            shared: Arc::new(Shared {
                client,
                catalog,
                graph: Mutex::new(Graph::default()),
                queue: WorkQueue::new(),
                recorder,
                failures: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let mut workers = Vec::new();
        for _ in 0..self.config.workers {
            let shared = self.shared.clone();
            let stop = shutdown.clone();
            workers.push(tokio::spawn(async move { shared.work(stop).await }));
        }
        let mut watched: HashMap<String, CancellationToken> = HashMap::new();
        loop {
            match self.shared.catalog.refresh(&self.shared.client).await {
                Ok(()) => {
                    self.sync_watches(&mut watched, &shutdown);
                    tracing::debug!(
                        resources = watched.len(),
                        objects = self.shared.lock_graph().len(),
                        "garbage collector graph"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "garbage collector: discovery failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.discovery_interval) => {}
            }
        }
        for w in workers {
            let _ = w.await;
        }
        Ok(())
    }

    /// Starts watches of newly served resources and stops those of resources that went away.
    fn sync_watches(
        &self,
        watched: &mut HashMap<String, CancellationToken>,
        shutdown: &CancellationToken,
    ) {
        let entries: Vec<CatalogEntry> = self
            .shared
            .catalog
            .entries()
            .into_iter()
            .filter(gc_can_track)
            .collect();
        let current: HashSet<String> = entries.iter().map(|e| e.key()).collect();
        watched.retain(|key, token| {
            if current.contains(key) {
                return true;
            }
            token.cancel();
            let mut graph = self.shared.lock_graph();
            for uid in graph.uids_of_resource(key) {
                for a in graph.remove(&uid) {
                    self.shared.queue.add(a);
                }
            }
            false
        });
        for entry in entries {
            let key = entry.key();
            if watched.contains_key(&key) {
                continue;
            }
            let token = shutdown.child_token();
            watched.insert(key, token.clone());
            let shared = self.shared.clone();
            tokio::spawn(async move { shared.watch_resource(Arc::new(entry), token).await });
        }
    }
}

impl Shared {
    fn lock_graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queue_all(&self, uids: Vec<String>) {
        for uid in uids {
            self.queue.add(uid);
        }
    }

    async fn watch_resource(self: Arc<Self>, entry: Arc<CatalogEntry>, stop: CancellationToken) {
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), &entry.resource);
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        let mut known: HashSet<String> = HashSet::new();
        let mut relisted: Option<HashSet<String>> = None;
        loop {
            let ev = tokio::select! {
                _ = stop.cancelled() => return,
                ev = stream.next() => ev,
            };
            match ev {
                None => return,
                Some(Err(e)) => {
                    tracing::debug!(resource = %entry.key(), error = %e, "garbage collector watch error")
                }
                Some(Ok(Event::Init)) => relisted = Some(HashSet::new()),
                Some(Ok(Event::InitApply(obj))) => {
                    if let Some(node) = Node::from_meta(entry.clone(), &obj.metadata) {
                        if let Some(seen) = relisted.as_mut() {
                            seen.insert(node.uid.clone());
                        }
                        known.insert(node.uid.clone());
                        let att = self.lock_graph().upsert(node);
                        self.queue_all(att);
                    }
                }
                Some(Ok(Event::InitDone)) => {
                    if let Some(seen) = relisted.take() {
                        let gone: Vec<String> = known.difference(&seen).cloned().collect();
                        for uid in gone {
                            let att = self.lock_graph().remove(&uid);
                            self.queue_all(att);
                        }
                        known = seen;
                    }
                }
                Some(Ok(Event::Apply(obj))) => {
                    if let Some(node) = Node::from_meta(entry.clone(), &obj.metadata) {
                        known.insert(node.uid.clone());
                        let att = self.lock_graph().upsert(node);
                        self.queue_all(att);
                    }
                }
                Some(Ok(Event::Delete(obj))) => {
                    if let Some(uid) = obj.metadata.uid.as_deref() {
                        known.remove(uid);
                        let att = self.lock_graph().remove(uid);
                        self.queue_all(att);
                    }
                }
            }
        }
    }

    async fn work(self: Arc<Self>, stop: CancellationToken) {
        while let Some(uid) = self.queue.next(&stop).await {
            let outcome = self.process(&uid).await;
            let retry = match outcome {
                Ok(Outcome::Done) => {
                    self.failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&uid);
                    None
                }
                Ok(Outcome::RetryAfter(d)) => Some(d),
                Err(e) => {
                    let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
                    let n = f.entry(uid.clone()).or_insert(0);
                    *n += 1;
                    let delay = Duration::from_millis(100 * (1u64 << (*n).min(8)));
                    tracing::debug!(%uid, error = %e, retry_in = ?delay, "garbage collector: retrying");
                    Some(delay)
                }
            };
            self.queue.done(&uid);
            if let Some(d) = retry {
                self.queue.add_after(uid, d);
            }
        }
    }

    async fn process(&self, uid: &str) -> Result<Outcome> {
        let Some(node) = self.lock_graph().get(uid).cloned() else {
            return Ok(Outcome::Done);
        };
        if node.deleting && node.has_finalizer(ORPHAN) {
            self.orphan_dependents(&node).await?;
        }
        if node.deleting_in_foreground() {
            return self.delete_dependents(&node).await;
        }
        if !node.owners.is_empty() && !node.deleting {
            return self.attempt_to_delete(&node).await;
        }
        Ok(Outcome::Done)
    }

    fn api_for(&self, node: &Node) -> Api<DynamicObject> {
        match &node.namespace {
            Some(ns) if node.resource.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &node.resource.resource)
            }
            _ => Api::all_with(self.client.clone(), &node.resource.resource),
        }
    }

    fn involved(node: &Node) -> InvolvedObject {
        InvolvedObject {
            api_version: node.resource.resource.api_version.clone(),
            kind: node.resource.resource.kind.clone(),
            namespace: node.namespace.clone(),
            name: node.name.clone(),
            uid: Some(node.uid.clone()),
            ..Default::default()
        }
    }

    async fn owner_state(&self, dependent: &Node, r: &OwnerReference) -> Result<OwnerState> {
        if let Some(owner) = self.lock_graph().get(&r.uid) {
            return Ok(if owner.deleting_in_foreground() {
                OwnerState::Waiting
            } else {
                OwnerState::Solid
            });
        }
        let Some(entry) = self.catalog.resolve(&r.api_version, &r.kind) else {
            return Ok(OwnerState::Unresolved);
        };
        let api: Api<DynamicObject> = if entry.namespaced {
            match &dependent.namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &entry.resource),
                None => return Ok(OwnerState::Invalid),
            }
        } else {
            Api::all_with(self.client.clone(), &entry.resource)
        };
        let live = api
            .get_opt(&r.name)
            .await
            .map_err(|e| Error::api(format!("getting owner {} {}", r.kind, r.name), e))?;
        Ok(match live {
            Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                let foreground = o.metadata.deletion_timestamp.is_some()
                    && o.finalizers().iter().any(|f| f == FOREGROUND);
                if foreground {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                }
            }
            _ => OwnerState::Dangling,
        })
    }

    async fn attempt_to_delete(&self, node: &Node) -> Result<Outcome> {
        let mut states = Vec::with_capacity(node.owners.len());
        for r in &node.owners {
            states.push((r.clone(), self.owner_state(node, r).await?));
        }
        let count = |s: OwnerState| states.iter().filter(|(_, x)| *x == s).count();
        if count(OwnerState::Invalid) > 0 {
            self.recorder.warning(
                &Self::involved(node),
                "OwnerRefInvalidNamespace",
                "ownerRef refers to a namespaced owner, but the dependent is cluster-scoped",
            );
            return Ok(Outcome::Done);
        }
        if count(OwnerState::Unresolved) > 0 {
            return Ok(Outcome::RetryAfter(Duration::from_secs(30)));
        }
        let solid = count(OwnerState::Solid);
        let waiting = count(OwnerState::Waiting);
        let dangling = count(OwnerState::Dangling);
        if solid > 0 {
            if dangling == 0 && waiting == 0 {
                return Ok(Outcome::Done);
            }
            // Some owners remain: drop references to the gone ones, and stop blocking the
            // ones being deleted in the foreground.
            let gone: HashSet<String> = states
                .iter()
                .filter(|(_, s)| *s == OwnerState::Dangling)
                .map(|(r, _)| r.uid.clone())
                .collect();
            let waiting_uids: HashSet<String> = states
                .iter()
                .filter(|(_, s)| *s == OwnerState::Waiting)
                .map(|(r, _)| r.uid.clone())
                .collect();
            self.patch_owner_refs(node, |refs| {
                refs.retain(|r| !gone.contains(&r.uid));
                for r in refs.iter_mut() {
                    if waiting_uids.contains(&r.uid) {
                        r.block_owner_deletion = Some(false);
                    }
                }
            })
            .await?;
            return Ok(Outcome::Done);
        }
        let policy = if waiting > 0 {
            if self.lock_graph().has_dependents(&node.uid) {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            }
        } else if node.has_finalizer(ORPHAN) {
            PropagationPolicy::Orphan
        } else if node.has_finalizer(FOREGROUND) {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        let owners: Vec<String> = node
            .owners
            .iter()
            .map(|r| format!("{} {}", r.kind, r.name))
            .collect();
        tracing::info!(object = %node.describe(), owners = ?owners, ?policy, "garbage collector: deleting a dependent whose owners are gone");
        self.delete(node, policy).await?;
        Ok(Outcome::Done)
    }

    async fn delete(&self, node: &Node, policy: PropagationPolicy) -> Result<()> {
        let params = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(node.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.api_for(node).delete(&node.name, &params).await {
            Ok(_) => Ok(()),
            // Gone already, or replaced by a new object of the same name.
            Err(e) if has_code(&e, 404) || has_code(&e, 409) => Ok(()),
            Err(e) => Err(Error::api(format!("deleting {}", node.describe()), e)),
        }
    }

    /// Orphans the dependents of `owner` (removes their references to it), then removes the
    /// `orphan` finalizer.
    async fn orphan_dependents(&self, owner: &Node) -> Result<()> {
        let dependents = self.lock_graph().dependents_of(&owner.uid);
        for d in &dependents {
            self.patch_owner_refs(d, |refs| refs.retain(|r| r.uid != owner.uid))
                .await?;
        }
        if !dependents.is_empty() {
            self.recorder.normal(
                &Self::involved(owner),
                "OrphanedDependents",
                &format!("orphaned {} dependent(s)", dependents.len()),
            );
        }
        self.remove_finalizer(owner, ORPHAN).await
    }

    /// Deletes the dependents of an owner being deleted in the foreground; removes its
    /// `foregroundDeletion` finalizer once no dependent blocks it.
    async fn delete_dependents(&self, owner: &Node) -> Result<Outcome> {
        let dependents = self.lock_graph().dependents_of(&owner.uid);
        let mut blocking = 0;
        for d in &dependents {
            if !d.deleting {
                let policy = if self.lock_graph().has_dependents(&d.uid) {
                    PropagationPolicy::Foreground
                } else {
                    PropagationPolicy::Background
                };
                self.delete(d, policy).await?;
            }
            if d.owners
                .iter()
                .any(|r| r.uid == owner.uid && r.block_owner_deletion == Some(true))
            {
                blocking += 1;
            }
        }
        if blocking == 0 {
            self.remove_finalizer(owner, FOREGROUND).await?;
            return Ok(Outcome::Done);
        }
        // The removal of each dependent queues the owner again; the retry is a safety net.
        Ok(Outcome::RetryAfter(Duration::from_secs(15)))
    }

    /// Rewrites `node`'s ownerReferences with `change`, with optimistic concurrency.
    async fn patch_owner_refs(
        &self,
        node: &Node,
        change: impl Fn(&mut Vec<OwnerReference>),
    ) -> Result<()> {
        let api = self.api_for(node);
        for _ in 0..5 {
            let Some(live) = api
                .get_opt(&node.name)
                .await
                .map_err(|e| Error::api(format!("getting {}", node.describe()), e))?
            else {
                return Ok(());
            };
            if live.metadata.uid.as_deref() != Some(node.uid.as_str()) {
                return Ok(());
            }
            let before = live.metadata.owner_references.clone().unwrap_or_default();
            let mut refs = before.clone();
            change(&mut refs);
            if refs == before {
                return Ok(());
            }
            let refs = if refs.is_empty() {
                serde_json::Value::Null
            } else {
                json!(refs)
            };
            let patch = json!({"metadata": {
                "ownerReferences": refs,
                "resourceVersion": live.metadata.resource_version,
            }});
            match api
                .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if has_code(&e, 409) => continue,
                Err(e) if has_code(&e, 404) => return Ok(()),
                Err(e) => {
                    return Err(Error::api(
                        format!("updating the owner references of {}", node.describe()),
                        e,
                    ));
                }
            }
        }
        Err(Error::Contended {
            action: format!("updating the owner references of {}", node.describe()),
        })
    }

    async fn remove_finalizer(&self, node: &Node, finalizer: &str) -> Result<()> {
        let api = self.api_for(node);
        for _ in 0..5 {
            let Some(live) = api
                .get_opt(&node.name)
                .await
                .map_err(|e| Error::api(format!("getting {}", node.describe()), e))?
            else {
                return Ok(());
            };
            if live.metadata.uid.as_deref() != Some(node.uid.as_str()) {
                return Ok(());
            }
            let before = live.finalizers().to_vec();
            if !before.iter().any(|f| f == finalizer) {
                return Ok(());
            }
            let after: Vec<&String> = before.iter().filter(|f| *f != finalizer).collect();
            let patch = json!({"metadata": {
                "finalizers": if after.is_empty() { serde_json::Value::Null } else { json!(after) },
                "resourceVersion": live.metadata.resource_version,
            }});
            match api
                .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if has_code(&e, 409) => continue,
                Err(e) if has_code(&e, 404) => return Ok(()),
                Err(e) => {
                    return Err(Error::api(
                        format!("removing finalizer {finalizer} of {}", node.describe()),
                        e,
                    ));
                }
            }
        }
        Err(Error::Contended {
            action: format!("removing finalizer {finalizer} of {}", node.describe()),
        })
    }
}
