//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets as
//! Kubernetes does, so `kubectl rollout status|history|undo|pause|resume|restart` work.
//!
//! - The new ReplicaSet is the one whose template equals the Deployment's (ignoring the
//!   `pod-template-hash` label); it is created as `<name>-<hash>` when missing, labelled with
//!   the hash and annotated with the revision (one more than the highest so far; a
//!   ReplicaSet brought back by `rollout undo` gets a new revision), the change cause and
//!   the desired/max replicas.
//! - RollingUpdate scales the new ReplicaSet up while the total stays within
//!   `replicas + maxSurge`, and old ones down while the available pods stay at least
//!   `replicas - maxUnavailable` (unhealthy old pods first). Recreate scales old ones to
//!   zero and waits for their pods to go before scaling the new one up.
//! - Paused Deployments are only scaled; old ReplicaSets beyond `revisionHistoryLimit` are
//!   deleted; status carries the counters `rollout status` reads and the Available and
//!   Progressing conditions (with `ProgressDeadlineExceeded`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};
use crate::pods::{adopt, controller_ref, controller_uid, is_active, selector_string};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";

/// Annotations of a Deployment that are not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

struct Ctx {
    client: Client,
    recorder: EventRecorder,
}

/// The Deployment controller component.
pub struct DeploymentController {
    ctx: Arc<Ctx>,
    concurrency: u16,
}

impl DeploymentController {
    pub fn new(client: Client, recorder: EventRecorder, concurrency: u16) -> Self {
        DeploymentController {
            ctx: Arc::new(Ctx { client, recorder }),
            concurrency,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let client = self.ctx.client.clone();
        Controller::new(
            Api::<Deployment>::all(client.clone()),
            watcher::Config::default(),
        )
        .owns(Api::<ReplicaSet>::all(client), watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(self.concurrency))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, self.ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
        Ok(())
    }
}

fn error_policy(d: Arc<Deployment>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(deployment = %d.name_any(), error = %err, "deployment controller: will retry");
    if err.is_invalid_object() {
        return Action::await_change();
    }
    Action::requeue(Duration::from_secs(1))
}

/// FNV-1a over the template, encoded like Kubernetes' SafeEncodeString.
pub fn template_hash(template: &PodTemplateSpec, collision_count: i32) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    let mut h: u32 = 0x811c9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= *b as u32;
            h = h.wrapping_mul(0x01000193);
        }
    };
    feed(text.as_bytes());
    if collision_count > 0 {
        feed(&collision_count.to_le_bytes());
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|c| ALPHABET[(c as usize) % ALPHABET.len()] as char)
        .collect()
}

/// A template with the hash label removed (for comparisons).
fn without_hash(t: &PodTemplateSpec) -> serde_json::Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(|l| l.as_object_mut())
    {
        labels.remove(HASH_LABEL);
        if labels.is_empty() {
            v["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }
    }
    if let Some(m) = v.get_mut("metadata").and_then(|m| m.as_object_mut())
        && m.is_empty()
    {
        v.as_object_mut().map(|o| o.remove("metadata"));
    }
    v
}

pub fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// Resolves maxSurge/maxUnavailable against `replicas` (surge rounds up, unavailable down);
/// both zero is turned into unavailable 1, as Kubernetes does.
pub fn resolve_fenceposts(
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
    replicas: i32,
) -> (i32, i32) {
    let resolve = |v: Option<&IntOrString>, default: &str, round_up: bool| -> i32 {
        let v = v.cloned().unwrap_or(IntOrString::String(default.into()));
        match v {
            IntOrString::Int(i) => i.max(0),
            IntOrString::String(s) => {
                let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(25.0);
                let x = pct * replicas as f64 / 100.0;
                (if round_up { x.ceil() } else { x.floor() }) as i32
            }
        }
    };
    let s = resolve(surge, "25%", true);
    let mut u = resolve(unavailable, "25%", false);
    if s == 0 && u == 0 {
        u = 1;
    }
    (s, u)
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action> {
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let who = format!("deployment {ns}/{name}");
    let uid = d.uid().unwrap_or_default();
    let spec = d.spec.clone().unwrap_or_default();
    let selector = selector_string(&who, Some(&spec.selector))?;
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let mut sets: Vec<ReplicaSet> = Vec::new();
    for rs in rs_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Error::api(format!("listing replicasets of {who}"), e))?
        .items
    {
        match controller_uid(&rs.metadata) {
            Some(u) if u == uid => sets.push(rs),
            None if rs.metadata.deletion_timestamp.is_none()
                && adopt(&rs_api, &rs, d.as_ref()).await? =>
            {
                sets.push(rs)
            }
            _ => {}
        }
    }
    sets.retain(|rs| rs.metadata.deletion_timestamp.is_none());
    let desired = without_hash(&spec.template);
    let new_idx = sets.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| without_hash(t) == desired)
    });
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let paused = spec.paused.unwrap_or(false);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.clone());
    let (max_surge, max_unavailable) = if recreate {
        (0, replicas)
    } else {
        resolve_fenceposts(
            rolling.as_ref().and_then(|r| r.max_surge.as_ref()),
            rolling.as_ref().and_then(|r| r.max_unavailable.as_ref()),
            replicas,
        )
    };
    let max_revision = sets.iter().map(revision_of).max().unwrap_or(0);

    // The new ReplicaSet: found, revised, or created (not while paused).
    let mut new_rs: Option<ReplicaSet> = new_idx.map(|i| sets.remove(i));
    let mut created_new = false;
    if !paused {
        match new_rs.take() {
            Some(rs) => {
                new_rs =
                    Some(sync_new_revision(&ctx, &d, rs, max_revision, replicas, max_surge).await?)
            }
            None => {
                let initial = if recreate {
                    0
                } else {
                    new_rs_replicas(replicas, max_surge, &sets, None)
                };
                new_rs = Some(create_new_rs(&ctx, &d, max_revision + 1, initial, max_surge).await?);
                created_new = true;
            }
        }
    }
    let olds = sets;
    let mut progressed = created_new;

    if paused || rollout_done(new_rs.as_ref(), &olds, replicas) {
        // Only scaling: the current ReplicaSet (new, or the newest active one) follows
        // spec.replicas.
        let target = new_rs.clone().or_else(|| {
            olds.iter()
                .filter(|r| spec_replicas(r) > 0)
                .max_by_key(|r| revision_of(r))
                .cloned()
        });
        if let Some(t) = target
            && spec_replicas(&t) != replicas
            && (paused || olds.iter().all(|o| spec_replicas(o) == 0))
        {
            scale(&ctx, &d, &t, replicas, max_surge).await?;
            progressed = true;
        }
    } else if recreate {
        let old_active: i32 = olds.iter().map(spec_replicas).sum();
        for o in olds.iter().filter(|o| spec_replicas(o) > 0) {
            scale(&ctx, &d, o, 0, max_surge).await?;
            progressed = true;
        }
        let old_pods = if old_active == 0 {
            count_active_pods(&ctx, &ns, &olds).await?
        } else {
            1
        };
        if old_pods == 0
            && let Some(n) = &new_rs
            && spec_replicas(n) != replicas
        {
            scale(&ctx, &d, n, replicas, max_surge).await?;
            progressed = true;
        }
    } else if let Some(n) = &new_rs {
        // RollingUpdate: scale up the new ReplicaSet within maxSurge...
        let target = new_rs_replicas(replicas, max_surge, &olds, Some(n));
        if target != spec_replicas(n) {
            scale(&ctx, &d, n, target, max_surge).await?;
            progressed = true;
        }
        // ...and old ones down while availability allows.
        let n_now = spec_replicas(n).max(target);
        if scale_down_old(
            &ctx,
            &d,
            &olds,
            n,
            n_now,
            replicas,
            max_unavailable,
            max_surge,
        )
        .await?
        {
            progressed = true;
        }
    }

    cleanup_history(&ctx, &d, &olds).await?;
    let requeue = write_status(
        &ctx,
        &d,
        new_rs.as_ref(),
        &olds,
        replicas,
        max_unavailable,
        paused,
        progressed,
    )
    .await?;
    Ok(match requeue {
        Some(r) => Action::requeue(r),
        None => Action::await_change(),
    })
}

fn rollout_done(new_rs: Option<&ReplicaSet>, olds: &[ReplicaSet], _replicas: i32) -> bool {
    new_rs.is_some()
        && olds.iter().all(|o| spec_replicas(o) == 0)
        && new_rs.is_some_and(|n| {
            let s = n.status.clone().unwrap_or_default();
            s.replicas == spec_replicas(n)
        })
}

/// Kubernetes' NewRSNewReplicas for RollingUpdate.
fn new_rs_replicas(
    replicas: i32,
    max_surge: i32,
    olds: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> i32 {
    let new_current = new_rs.map(spec_replicas).unwrap_or(0);
    if new_current >= replicas {
        return replicas;
    }
    // An old ReplicaSet counts with the pods it still has while it scales down (its status
    // follows once its controller has deleted them), so the surge bounds pods, not only
    // specs: scaling up before the old pods are gone would run more than maxSurge extra.
    let current_total: i32 = olds
        .iter()
        .map(|o| spec_replicas(o).max(status_replicas(o)))
        .sum::<i32>()
        + new_current;
    let max_total = replicas + max_surge;
    if current_total >= max_total {
        return new_current;
    }
    let up = (max_total - current_total).min(replicas - new_current);
    new_current + up
}

#[allow(clippy::too_many_arguments)]
async fn scale_down_old(
    ctx: &Ctx,
    d: &Deployment,
    olds: &[ReplicaSet],
    new_rs: &ReplicaSet,
    new_replicas: i32,
    replicas: i32,
    max_unavailable: i32,
    max_surge: i32,
) -> Result<bool> {
    let old_total: i32 = olds.iter().map(spec_replicas).sum();
    if old_total == 0 {
        return Ok(false);
    }
    let all = old_total + new_replicas;
    let min_available = replicas - max_unavailable;
    let new_unavailable = (new_replicas - available(new_rs)).max(0);
    let mut max_down = all - min_available - new_unavailable;
    if max_down <= 0 {
        return Ok(false);
    }
    let mut sorted: Vec<&ReplicaSet> = olds.iter().filter(|o| spec_replicas(o) > 0).collect();
    sorted.sort_by_key(|o| o.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let mut changed = false;
    let mut current: BTreeMap<String, i32> = sorted
        .iter()
        .map(|o| (o.name_any(), spec_replicas(o)))
        .collect();
    // Unhealthy old pods first: they do not count towards availability.
    for o in &sorted {
        if max_down <= 0 {
            break;
        }
        let cur = current[&o.name_any()];
        let unhealthy = (cur - available(o)).max(0);
        let down = unhealthy.min(max_down);
        if down > 0 {
            scale(ctx, d, o, cur - down, max_surge).await?;
            current.insert(o.name_any(), cur - down);
            max_down -= down;
            changed = true;
        }
    }
    // Then healthy ones, as far as availability allows.
    let available_total: i32 = olds.iter().map(available).sum::<i32>() + available(new_rs);
    let mut budget = (available_total - min_available).min(max_down);
    for o in &sorted {
        if budget <= 0 {
            break;
        }
        let cur = current[&o.name_any()];
        let down = cur.min(budget);
        if down > 0 {
            scale(ctx, d, o, cur - down, max_surge).await?;
            budget -= down;
            changed = true;
        }
    }
    Ok(changed)
}

async fn count_active_pods(ctx: &Ctx, ns: &str, olds: &[ReplicaSet]) -> Result<usize> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let mut n = 0;
    for o in olds {
        let uid = o.uid().unwrap_or_default();
        let Some(sel) = o.spec.as_ref().map(|s| &s.selector) else {
            continue;
        };
        let sel = selector_string(&o.name_any(), Some(sel))?;
        n += api
            .list(&ListParams::default().labels(&sel))
            .await
            .map_err(|e| Error::api("listing pods of old replicasets", e))?
            .items
            .iter()
            .filter(|p| controller_uid(&p.metadata) == Some(uid.as_str()))
            // Terminating pods still run: Recreate waits for them too.
            .filter(|p| is_active(p) || p.metadata.deletion_timestamp.is_some())
            .count();
    }
    Ok(n)
}

fn copied_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.annotations()
        .iter()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn create_new_rs(
    ctx: &Ctx,
    d: &Deployment,
    revision: i64,
    replicas: i32,
    max_surge: i32,
) -> Result<ReplicaSet> {
    let ns = d.namespace().unwrap_or_default();
    let spec = d.spec.clone().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let mut collision = d
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let desired_replicas = spec.replicas.unwrap_or(1);
    for _ in 0..5 {
        let hash = template_hash(&spec.template, collision);
        let mut template = spec.template.clone();
        let tmeta = template.metadata.get_or_insert_with(Default::default);
        tmeta
            .labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut selector: LabelSelector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(HASH_LABEL.into(), hash.clone());
        let mut annotations = copied_annotations(d);
        annotations.insert(REVISION.into(), revision.to_string());
        annotations.insert(DESIRED_REPLICAS.into(), desired_replicas.to_string());
        annotations.insert(
            MAX_REPLICAS.into(),
            (desired_replicas + max_surge).to_string(),
        );
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", d.name_any())),
                namespace: Some(ns.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                owner_references: Some(vec![controller_ref(d)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        match api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                ctx.recorder.normal(
                    &InvolvedObject::of(d),
                    "ScalingReplicaSet",
                    &format!(
                        "Scaled up replica set {} from 0 to {replicas}",
                        created.name_any()
                    ),
                );
                return Ok(created);
            }
            Err(e) if has_code(&e, 409) => {
                // Same name: ours with an equal template is the new one; else a collision.
                if let Some(existing) = api
                    .get_opt(&rs.name_any())
                    .await
                    .map_err(|e| Error::api("reading a replicaset", e))?
                    && controller_uid(&existing.metadata) == d.uid().as_deref()
                    && existing
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.as_ref())
                        .is_some_and(|t| without_hash(t) == without_hash(&spec.template))
                {
                    return Ok(existing);
                }
                collision += 1;
                let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
                let _ = dapi
                    .patch_status(
                        &d.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": {"collisionCount": collision}})),
                    )
                    .await;
            }
            Err(e) => {
                return Err(Error::api(
                    format!("creating a replicaset for deployment {}", d.name_any()),
                    e,
                ));
            }
        }
    }
    Err(Error::Contended {
        action: format!("naming a new replicaset for deployment {}", d.name_any()),
    })
}

/// Makes an existing new ReplicaSet the latest revision (after `rollout undo`) and keeps
/// its copied annotations current.
async fn sync_new_revision(
    ctx: &Ctx,
    d: &Deployment,
    rs: ReplicaSet,
    max_revision: i64,
    replicas: i32,
    max_surge: i32,
) -> Result<ReplicaSet> {
    let current = revision_of(&rs);
    let mut annotations = rs.annotations().clone();
    let mut changed = false;
    if current < max_revision || current == 0 {
        let next = max_revision.max(current) + 1;
        if current > 0 {
            let mut history: Vec<String> = annotations
                .get(REVISION_HISTORY)
                .map(|h| h.split(',').map(String::from).collect())
                .unwrap_or_default();
            history.push(current.to_string());
            annotations.insert(REVISION_HISTORY.into(), history.join(","));
        }
        annotations.insert(REVISION.into(), next.to_string());
        changed = true;
    }
    for (k, v) in copied_annotations(d) {
        if annotations.get(&k) != Some(&v) {
            annotations.insert(k, v);
            changed = true;
        }
    }
    for (k, v) in [
        (DESIRED_REPLICAS, replicas.to_string()),
        (MAX_REPLICAS, (replicas + max_surge).to_string()),
    ] {
        if annotations.get(k) != Some(&v) {
            annotations.insert(k.into(), v);
            changed = true;
        }
    }
    if !changed {
        return Ok(rs);
    }
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"annotations": annotations}});
    api.patch(
        &rs.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|e| Error::api(format!("updating replicaset {}", rs.name_any()), e))
}

async fn scale(ctx: &Ctx, d: &Deployment, rs: &ReplicaSet, to: i32, max_surge: i32) -> Result<()> {
    let from = spec_replicas(rs);
    if from == to {
        return Ok(());
    }
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let patch = json!({
        "metadata": {"annotations": {DESIRED_REPLICAS: replicas.to_string(), MAX_REPLICAS: (replicas + max_surge).to_string()}},
        "spec": {"replicas": to}
    });
    api.patch(
        &rs.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|e| Error::api(format!("scaling replicaset {}", rs.name_any()), e))?;
    let verb = if to > from { "up" } else { "down" };
    ctx.recorder.normal(
        &InvolvedObject::of(d),
        "ScalingReplicaSet",
        &format!(
            "Scaled {verb} replica set {} from {from} to {to}",
            rs.name_any()
        ),
    );
    Ok(())
}

/// Deletes old ReplicaSets beyond `revisionHistoryLimit` (those scaled to zero with no
/// pods left), oldest revision first.
async fn cleanup_history(ctx: &Ctx, d: &Deployment, olds: &[ReplicaSet]) -> Result<()> {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0) as usize;
    let mut idle: Vec<&ReplicaSet> = olds
        .iter()
        .filter(|o| spec_replicas(o) == 0 && o.status.as_ref().is_none_or(|s| s.replicas == 0))
        .collect();
    if idle.len() <= limit {
        return Ok(());
    }
    idle.sort_by_key(|o| revision_of(o));
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    for o in &idle[..idle.len() - limit] {
        match api.delete(&o.name_any(), &DeleteParams::background()).await {
            Ok(_) => {}
            Err(e) if has_code(&e, 404) => {}
            Err(e) => {
                return Err(Error::api(
                    format!("deleting old replicaset {}", o.name_any()),
                    e,
                ));
            }
        }
    }
    Ok(())
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Time,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_status(
    ctx: &Ctx,
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    olds: &[ReplicaSet],
    replicas: i32,
    max_unavailable: i32,
    paused: bool,
    progressed: bool,
) -> Result<Option<Duration>> {
    let now = jiff::Timestamp::now();
    let all: Vec<&ReplicaSet> = new_rs.into_iter().chain(olds.iter()).collect();
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let total: i32 = all.iter().map(|r| st(r).replicas).sum();
    let updated = new_rs.map(|r| st(r).replicas).unwrap_or(0);
    let ready: i32 = all.iter().map(|r| st(r).ready_replicas.unwrap_or(0)).sum();
    let avail: i32 = all
        .iter()
        .map(|r| st(r).available_replicas.unwrap_or(0))
        .sum();
    let old = d.status.clone().unwrap_or_default();
    let old_conds = old.conditions.clone().unwrap_or_default();
    let find = |t: &str| old_conds.iter().find(|c| c.type_ == t).cloned();
    let mut conds: Vec<DeploymentCondition> = Vec::new();

    let available_ok = avail >= replicas - max_unavailable;
    let (a_status, a_reason, a_msg) = if available_ok {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    conds.push(merge_condition(
        find("Available"),
        condition("Available", a_status, a_reason, a_msg.into(), Time(now)),
    ));

    let complete = new_rs.is_some_and(|n| {
        updated == replicas
            && total == replicas
            && avail >= replicas
            && spec_replicas(n) == replicas
    }) && olds.iter().all(|o| st(o).replicas == 0);
    let new_name = new_rs.map(|r| r.name_any()).unwrap_or_default();
    let deadline = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    let prev = find("Progressing");
    let mut requeue = None;
    let progressing = if paused {
        condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            Time(now),
        )
    } else if complete {
        condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            Time(now),
        )
    } else if prev
        .as_ref()
        .is_some_and(|p| p.reason.as_deref() == Some("DeploymentPaused"))
    {
        condition(
            "Progressing",
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed".into(),
            Time(now),
        )
    } else {
        let last_progress = prev
            .as_ref()
            .filter(|p| !progressed && p.status == "True")
            .and_then(|p| p.last_update_time.as_ref().map(|t| t.0))
            .unwrap_or(now);
        let elapsed = now.duration_since(last_progress).as_secs();
        let exceeded = elapsed >= deadline as i64
            || prev.as_ref().is_some_and(|p| {
                p.reason.as_deref() == Some("ProgressDeadlineExceeded") && !progressed
            });
        if exceeded {
            condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                Time(now),
            )
        } else {
            requeue = Some(Duration::from_secs(
                (deadline as i64 - elapsed).max(1) as u64
            ));
            let mut c = condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{new_name}\" is progressing."),
                Time(last_progress),
            );
            c.last_transition_time = Some(Time(now));
            c
        }
    };
    conds.push(merge_condition(prev, progressing));
    let status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(avail),
        unavailable_replicas: Some((replicas - avail).max(0)),
        conditions: Some(conds),
        collision_count: old.collision_count,
        terminating_replicas: None,
    };
    let comparable = |s: &DeploymentStatus| {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if let Some(cs) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
            for c in cs {
                if let Some(o) = c.as_object_mut() {
                    o.remove("lastUpdateTime");
                    o.remove("lastTransitionTime");
                }
            }
        }
        v
    };
    let revision = new_rs.map(revision_of).filter(|r| *r > 0);
    let revision_changed =
        revision.is_some_and(|r| d.annotations().get(REVISION) != Some(&r.to_string()));
    let api: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    if revision_changed && let Some(r) = revision {
        let patch = json!({"metadata": {"annotations": {REVISION: r.to_string()}}});
        match api
            .patch(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(Error::api("annotating a deployment's revision", e)),
        }
    }
    if comparable(&status) != comparable(&old) || progressed {
        let patch = json!({"status": status});
        match api
            .patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if has_code(&e, 404) => {}
            Err(e) => {
                return Err(Error::api(
                    format!("updating the status of deployment {}", d.name_any()),
                    e,
                ));
            }
        }
    }
    Ok(if complete || paused {
        None
    } else {
        Some(
            requeue
                .unwrap_or(Duration::from_secs(5))
                .min(Duration::from_secs(5)),
        )
    })
}

/// Keeps a condition's transition time when its status did not change.
fn merge_condition(
    prev: Option<DeploymentCondition>,
    mut new: DeploymentCondition,
) -> DeploymentCondition {
    if let Some(p) = prev
        && p.status == new.status
    {
        new.last_transition_time = p.last_transition_time;
        if p.reason == new.reason && p.message == new.message {
            new.last_update_time = p.last_update_time;
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetStatus;

    #[test]
    fn fenceposts_follow_kubernetes_rounding() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(resolve_fenceposts(None, None, 4), (1, 1));
        assert_eq!(resolve_fenceposts(None, None, 10), (3, 2));
        assert_eq!(
            resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 3),
            (0, 1)
        );
        assert_eq!(
            resolve_fenceposts(Some(&pct("50%")), Some(&pct("0%")), 3),
            (2, 0)
        );
    }

    #[test]
    fn hash_is_stable_and_collision_count_changes_it() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        }))
        .unwrap();
        let a = template_hash(&t, 0);
        assert_eq!(a, template_hash(&t, 0));
        assert_ne!(a, template_hash(&t, 1));
        assert!(a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        let mut labelled = t.clone();
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), a);
        assert_eq!(without_hash(&labelled), without_hash(&t));
    }

    #[test]
    fn new_replicas_respect_max_surge() {
        let rs = |n: i32| ReplicaSet {
            spec: Some(ReplicaSetSpec {
                replicas: Some(n),
                ..Default::default()
            }),
            ..Default::default()
        };
        // 3 replicas, surge 1, old at 3: new may go to 1.
        assert_eq!(new_rs_replicas(3, 1, &[rs(3)], Some(&rs(0))), 1);
        // total at the ceiling: stay.
        assert_eq!(new_rs_replicas(3, 1, &[rs(3)], Some(&rs(1))), 1);
        // old shrank: grow.
        assert_eq!(new_rs_replicas(3, 1, &[rs(1)], Some(&rs(1))), 3);
        assert_eq!(new_rs_replicas(3, 1, &[], Some(&rs(5))), 3);
        // old scaled down in spec but its pods not yet deleted (status 3): wait for them.
        let mut shrinking = rs(1);
        shrinking.status = Some(ReplicaSetStatus {
            replicas: 3,
            ..Default::default()
        });
        assert_eq!(new_rs_replicas(3, 1, &[shrinking], Some(&rs(1))), 1);
    }
}
