//! The StatefulSet controller: pods `<name>-0 … <name>-(N-1)` with stable names and
//! hostnames, a PersistentVolumeClaim per `volumeClaimTemplates` entry and ordinal
//! (`<claim>-<name>-<ordinal>`, kept when pods go), ordered start (OrderedReady: each pod
//! waits for the previous ones to be Running and Ready) and reverse-ordered stop, and
//! RollingUpdate from the highest ordinal down to `partition`, one pod at a time.
//!
//! Each distinct template is kept as a ControllerRevision (`revisions`), so `kubectl rollout
//! history|undo statefulset` work. As on Kubernetes, a pod's `controller-revision-hash`
//! label and `status.currentRevision`/`updateRevision` hold the revision's *name*; pods
//! below the partition that must be recreated get the current revision's template, the
//! others the update revision's. History beyond `revisionHistoryLimit` that neither a pod
//! nor the status uses is pruned.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};
use crate::pods::{
    controller_ref, controller_uid, is_available, is_ready, phase, pod_from_template,
    selector_string,
};
use crate::revisions::{self, REVISION_HASH_LABEL};

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

struct Ctx {
    client: Client,
    recorder: EventRecorder,
}

/// The StatefulSet controller component.
pub struct StatefulSetController {
    ctx: Arc<Ctx>,
}

impl StatefulSetController {
    pub fn new(client: Client, recorder: EventRecorder) -> Self {
        StatefulSetController {
            ctx: Arc::new(Ctx { client, recorder }),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let client = self.ctx.client.clone();
        Controller::new(
            Api::<StatefulSet>::all(client.clone()),
            watcher::Config::default(),
        )
        .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .owns(
            Api::<ControllerRevision>::all(client),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, self.ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
        Ok(())
    }
}

fn error_policy(s: Arc<StatefulSet>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(statefulset = %s.name_any(), error = %err, "statefulset controller: will retry");
    if err.is_invalid_object() {
        return Action::await_change();
    }
    Action::requeue(Duration::from_secs(1))
}

fn ordinal(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

fn running_and_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && phase(p) == "Running" && is_ready(p)
}

async fn ensure_claims(ctx: &Ctx, set: &StatefulSet, ord: i32) -> Result<Vec<Volume>> {
    let ns = set.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let mut volumes = Vec::new();
    for tmpl in set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default()
    {
        let tname = tmpl.metadata.name.clone().unwrap_or_default();
        let claim = format!("{tname}-{}-{ord}", set.name_any());
        if api
            .get_opt(&claim)
            .await
            .map_err(|e| Error::api(format!("reading claim {claim}"), e))?
            .is_none()
        {
            let mut labels = tmpl.metadata.labels.clone().unwrap_or_default();
            if let Some(sel) = set
                .spec
                .as_ref()
                .and_then(|s| s.selector.match_labels.clone())
            {
                labels.extend(sel);
            }
            let pvc = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    annotations: tmpl.metadata.annotations.clone(),
                    ..Default::default()
                },
                spec: tmpl.spec.clone(),
                status: None,
            };
            match api.create(&PostParams::default(), &pvc).await {
                Ok(_) => ctx.recorder.normal(
                    &InvolvedObject::of(set),
                    "SuccessfulCreate",
                    &format!(
                        "create Claim {claim} Pod {}-{ord} in StatefulSet {} success",
                        set.name_any(),
                        set.name_any()
                    ),
                ),
                Err(e) if has_code(&e, 409) => {}
                Err(e) => return Err(Error::api(format!("creating claim {claim}"), e)),
            }
        }
        volumes.push(Volume {
            name: tname,
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim,
                read_only: None,
            }),
            ..Default::default()
        });
    }
    Ok(volumes)
}

/// The template and revision name of the pod with ordinal `ord`: below a RollingUpdate
/// partition the current revision's, otherwise the update revision's.
fn versioned_template(
    set: &StatefulSet,
    ord: i32,
    current: &ControllerRevision,
    update: &ControllerRevision,
) -> Result<(PodTemplateSpec, String)> {
    let spec = set.spec.clone().unwrap_or_default();
    let strategy = spec.update_strategy.unwrap_or_default();
    let partition = strategy
        .rolling_update
        .and_then(|r| r.partition)
        .unwrap_or(0);
    if strategy.type_.as_deref() != Some("OnDelete")
        && ord < partition
        && current.metadata.name != update.metadata.name
    {
        return Ok((revisions::revision_template(current)?, current.name_any()));
    }
    Ok((spec.template, update.name_any()))
}

async fn create_pod(
    ctx: &Ctx,
    set: &StatefulSet,
    ord: i32,
    mut template: PodTemplateSpec,
    revision: &str,
) -> Result<()> {
    let ns = set.namespace().unwrap_or_default();
    let name = format!("{}-{ord}", set.name_any());
    let spec = set.spec.clone().unwrap_or_default();
    let claims = ensure_claims(ctx, set, ord).await?;
    if let Some(ps) = template.spec.as_mut() {
        ps.hostname = Some(name.clone());
        if !spec.service_name.clone().unwrap_or_default().is_empty() {
            ps.subdomain = spec.service_name.clone();
        }
        let mut vols = ps.volumes.clone().unwrap_or_default();
        for c in claims {
            vols.retain(|v| v.name != c.name);
            vols.push(c);
        }
        if !vols.is_empty() {
            ps.volumes = Some(vols);
        }
    }
    let extra = BTreeMap::from([
        (POD_NAME_LABEL.to_string(), name.clone()),
        (POD_INDEX_LABEL.to_string(), ord.to_string()),
        (REVISION_HASH_LABEL.to_string(), revision.to_string()),
    ]);
    let pod = pod_from_template(
        &template,
        &ns,
        controller_ref(set),
        Some(name.clone()),
        None,
        &extra,
    );
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    match api.create(&PostParams::default(), &pod).await {
        Ok(_) => {
            ctx.recorder.normal(
                &InvolvedObject::of(set),
                "SuccessfulCreate",
                &format!(
                    "create Pod {name} in StatefulSet {} successful",
                    set.name_any()
                ),
            );
            Ok(())
        }
        Err(e) if has_code(&e, 409) => Ok(()),
        Err(e) => {
            ctx.recorder.warning(
                &InvolvedObject::of(set),
                "FailedCreate",
                &format!(
                    "create Pod {name} in StatefulSet {} failed error: {e}",
                    set.name_any()
                ),
            );
            Err(Error::api(format!("creating pod {name}"), e))
        }
    }
}

async fn delete_pod(ctx: &Ctx, set: &StatefulSet, pod: &Pod) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    match api.delete(&pod.name_any(), &DeleteParams::default()).await {
        Ok(_) => {
            ctx.recorder.normal(
                &InvolvedObject::of(set),
                "SuccessfulDelete",
                &format!(
                    "delete Pod {} in StatefulSet {} successful",
                    pod.name_any(),
                    set.name_any()
                ),
            );
            Ok(())
        }
        Err(e) if has_code(&e, 404) => Ok(()),
        Err(e) => Err(Error::api(format!("deleting pod {}", pod.name_any()), e)),
    }
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action> {
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let uid = set.uid().unwrap_or_default();
    let who = format!("statefulset {ns}/{name}");
    let spec = set.spec.clone().unwrap_or_default();
    let selector = selector_string(&who, Some(&spec.selector))?;
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
    let history = revisions::sync(
        &ctx.client,
        set.as_ref(),
        &revisions::Owner {
            selector: &spec.selector,
            template: &spec.template,
            collision_count: set
                .status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0),
        },
    )
    .await?;
    let update_rev = &history.current;
    let update_name = update_rev.name_any();
    // The revision the pods below the partition keep; the update revision at first.
    let current_rev = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref())
        .and_then(|n| history.find(n))
        .unwrap_or(update_rev);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut pods: BTreeMap<i32, Pod> = BTreeMap::new();
    for p in pods_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Error::api(format!("listing pods of {who}"), e))?
        .items
    {
        if controller_uid(&p.metadata) == Some(uid.as_str())
            && let Some(o) = ordinal(&name, &p.name_any())
        {
            pods.insert(o, p);
        }
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = jiff::Timestamp::now();
    let mut acted = false;
    // Failed pods are replaced.
    for p in pods
        .values()
        .filter(|p| phase(p) == "Failed" && p.metadata.deletion_timestamp.is_none())
    {
        delete_pod(&ctx, &set, p).await?;
        acted = true;
    }
    // Scale up in order.
    if !acted {
        for ord in 0..replicas {
            match pods.get(&ord) {
                None => {
                    let (template, revision) =
                        versioned_template(&set, ord, current_rev, update_rev)?;
                    create_pod(&ctx, &set, ord, template, &revision).await?;
                    acted = true;
                    if !parallel {
                        break;
                    }
                }
                Some(p) if !parallel && !running_and_ready(p) => {
                    // Wait for this one before the next.
                    acted = true;
                    break;
                }
                _ => {}
            }
        }
    }
    // Scale down in reverse order, one at a time (all at once when Parallel).
    if !acted {
        let surplus: Vec<&Pod> = pods.range(replicas..).map(|(_, p)| p).rev().collect();
        for p in surplus {
            if p.metadata.deletion_timestamp.is_some() {
                if !parallel {
                    acted = true;
                    break;
                }
                continue;
            }
            delete_pod(&ctx, &set, p).await?;
            acted = true;
            if !parallel {
                break;
            }
        }
    }
    // Rolling update from the highest ordinal down to the partition.
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if !acted && strategy.type_.as_deref() != Some("OnDelete") {
        let partition = strategy
            .rolling_update
            .and_then(|r| r.partition)
            .unwrap_or(0);
        for ord in (partition..replicas).rev() {
            let Some(p) = pods.get(&ord) else { continue };
            if p.labels().get(REVISION_HASH_LABEL) != Some(&update_name) {
                if p.metadata.deletion_timestamp.is_none() {
                    delete_pod(&ctx, &set, p).await?;
                }
                acted = true;
                break;
            }
            if !running_and_ready(p) {
                acted = true;
                break;
            }
        }
    }
    // Status.
    let current: Vec<&Pod> = pods
        .range(..replicas)
        .map(|(_, p)| p)
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let old = set.status.clone().unwrap_or_default();
    let updated = current
        .iter()
        .filter(|p| p.labels().get(REVISION_HASH_LABEL) == Some(&update_name))
        .count() as i32;
    let ready = current.iter().filter(|p| is_ready(p)).count() as i32;
    // The rollout is complete once every replica runs the update revision and is ready.
    let current_revision =
        if updated as usize == current.len() && updated == replicas && ready == replicas {
            update_name.clone()
        } else {
            current_rev.name_any()
        };
    let status = json!({
        "observedGeneration": set.metadata.generation,
        "replicas": pods.values().filter(|p| p.metadata.deletion_timestamp.is_none()).count(),
        "readyReplicas": ready,
        "availableReplicas": current.iter().filter(|p| is_available(p, min_ready, now)).count(),
        "currentReplicas": current.iter().filter(|p| p.labels().get(REVISION_HASH_LABEL) == Some(&current_revision)).count(),
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": update_name,
    });
    let oldv = serde_json::to_value(&old).unwrap_or_default();
    if status.as_object().is_some_and(|m| {
        m.iter()
            .any(|(k, v)| oldv.get(k).cloned().unwrap_or(json!(0)) != *v)
    }) {
        let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if has_code(&e, 404) => {}
            Err(e) => return Err(Error::api(format!("updating the status of {who}"), e)),
        }
    }
    // History beyond the limit that neither a pod nor the status uses.
    let mut live: std::collections::HashSet<String> = pods
        .values()
        .filter_map(|p| p.labels().get(REVISION_HASH_LABEL).cloned())
        .collect();
    live.insert(current_revision);
    live.insert(update_name);
    let expired = revisions::expired(
        &history.old,
        revisions::history_limit(spec.revision_history_limit),
        false,
        |r| live.contains(&r.name_any()),
    );
    revisions::delete(&ctx.client, &ns, &expired).await?;
    Ok(if acted {
        Action::requeue(Duration::from_millis(500))
    } else {
        Action::await_change()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_come_from_names() {
        assert_eq!(ordinal("web", "web-0"), Some(0));
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "web2-1"), None);
        assert_eq!(ordinal("web", "web-x"), None);
    }
}
