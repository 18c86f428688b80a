//! The ReplicaSet controller: keeps `spec.replicas` active pods matching the selector
//! (adopting matching orphans), deletes surplus pods in Kubernetes' order, and reports
//! replicas, fully labeled, ready and available counts. Pods relabeled out of the selector
//! are released by [`crate::release`], fed by this controller's pod watch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};
use crate::pods::{
    Expectations, adopt, available_in, controller_ref, controller_uid, create_pod, delete_pod,
    deletion_order, is_active, is_available, is_ready, pod_from_template, selector_string,
};

/// Pods created or deleted by one reconcile at most.
const BURST: usize = 500;

struct Ctx {
    client: Client,
    recorder: EventRecorder,
    expectations: Expectations,
}

/// The ReplicaSet controller component.
pub struct ReplicaSetController {
    ctx: Arc<Ctx>,
    concurrency: u16,
}

impl ReplicaSetController {
    pub fn new(client: Client, recorder: EventRecorder, concurrency: u16) -> Self {
        ReplicaSetController {
            ctx: Arc::new(Ctx {
                client,
                recorder,
                expectations: Expectations::default(),
            }),
            concurrency,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let client = self.ctx.client.clone();
        let controller = Controller::new(
            Api::<ReplicaSet>::all(client.clone()),
            watcher::Config::default(),
        );
        let sets = controller.store();
        let (releases, queue) = tokio::sync::mpsc::unbounded_channel();
        let releaser = tokio::spawn(crate::release::run(client.clone(), queue, shutdown.clone()));
        controller
            .watches(
                Api::<Pod>::all(client),
                watcher::Config::default(),
                move |pod| crate::release::owners(pod, &sets, &releases),
            )
            .with_config(kube::runtime::controller::Config::default().concurrency(self.concurrency))
            .graceful_shutdown_on(shutdown.cancelled_owned())
            .run(reconcile, error_policy, self.ctx)
            .for_each(|_| futures::future::ready(()))
            .await;
        releaser.abort();
        Ok(())
    }
}

fn error_policy(rs: Arc<ReplicaSet>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(replicaset = %rs.name_any(), error = %err, "replicaset controller: will retry");
    if err.is_invalid_object() {
        return Action::await_change();
    }
    Action::requeue(Duration::from_secs(1))
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let uid = rs.uid().unwrap_or_default();
    if rs.metadata.deletion_timestamp.is_some() {
        ctx.expectations.forget(&uid);
        return Ok(Action::await_change());
    }
    let spec = rs.spec.clone().unwrap_or_default();
    let who = format!("replicaset {ns}/{name}");
    let selector_str = selector_string(&who, Some(&spec.selector))?;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let listed = pods_api
        .list(&ListParams::default().labels(&selector_str))
        .await
        .map_err(|e| Error::api(format!("listing pods of {who}"), e))?
        .items;
    // Adopt matching orphans; keep what we control.
    let mut owned = Vec::new();
    for p in listed {
        match controller_uid(&p.metadata) {
            Some(u) if u == uid => owned.push(p),
            Some(_) => {}
            None if p.metadata.deletion_timestamp.is_none()
                && adopt(&pods_api, &p, rs.as_ref()).await? =>
            {
                owned.push(p)
            }
            None => {}
        }
    }
    let wanted = spec.replicas.unwrap_or(1).max(0) as usize;
    let mut active: Vec<Pod> = owned.iter().filter(|p| is_active(p)).cloned().collect();
    let mut failure = None;
    if ctx.expectations.satisfied(&uid, &owned) {
        if active.len() < wanted {
            let missing = (wanted - active.len()).min(BURST);
            match create_pods(&ctx, &rs, missing).await {
                Ok(created) => {
                    ctx.expectations.expect(&uid, created, vec![]);
                }
                Err(e) => failure = Some(e),
            }
        } else if active.len() > wanted {
            let surplus = (active.len() - wanted).min(BURST);
            active.sort_by(deletion_order);
            let victims: Vec<Pod> = active.drain(..surplus).collect();
            let deleted = delete_pods(&ctx, &rs, &victims).await?;
            ctx.expectations.expect(&uid, vec![], deleted);
        }
    }
    let requeue = write_status(&ctx, &rs, &owned, failure.as_ref()).await?;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None if !ctx.expectations.satisfied(&uid, &owned) => {
            Action::requeue(Duration::from_millis(200))
        }
        None => Action::await_change(),
    })
}

async fn create_pods(ctx: &Ctx, rs: &ReplicaSet, n: usize) -> Result<Vec<String>> {
    let ns = rs.namespace().unwrap_or_default();
    let spec = rs.spec.clone().unwrap_or_default();
    let template = spec.template.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pod = pod_from_template(
        &template,
        &ns,
        controller_ref(rs),
        None,
        Some(format!("{}-", rs.name_any())),
        &BTreeMap::new(),
    );
    let owner = InvolvedObject::of(rs);
    let mut created = Vec::new();
    let mut first_error = None;
    // Slow start, as Kubernetes does: 1, 2, 4, ... so a broken template fails fast.
    let mut batch = 1;
    let mut remaining = n;
    while remaining > 0 && first_error.is_none() {
        let this = batch.min(remaining);
        let mut futs: FuturesUnordered<_> = (0..this)
            .map(|_| create_pod(&ctx.recorder, &owner, &api, &pod))
            .collect();
        while let Some(r) = futs.next().await {
            match r {
                Ok(p) => created.push(p.name_any()),
                Err(e) => {
                    if first_error.is_none() {
                        first_error = Some(Error::api(
                            format!("creating pods for replicaset {}", rs.name_any()),
                            e,
                        ));
                    }
                }
            }
        }
        remaining -= this;
        batch *= 2;
    }
    match first_error {
        Some(e) if created.is_empty() => Err(e),
        _ => Ok(created),
    }
}

async fn delete_pods(ctx: &Ctx, rs: &ReplicaSet, victims: &[Pod]) -> Result<Vec<String>> {
    let ns = rs.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = InvolvedObject::of(rs);
    let dp = DeleteParams::default();
    let mut futs: FuturesUnordered<_> = victims
        .iter()
        .map(|p| delete_pod(&ctx.recorder, &owner, &api, p, &dp))
        .collect();
    let mut deleted = Vec::new();
    while let Some(r) = futs.next().await {
        deleted.extend(r?);
    }
    Ok(deleted)
}

/// Writes the status; returns when to look again for pods becoming available.
async fn write_status(
    ctx: &Ctx,
    rs: &ReplicaSet,
    owned: &[Pod],
    failure: Option<&Error>,
) -> Result<Option<Duration>> {
    let spec = rs.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = jiff::Timestamp::now();
    let active: Vec<&Pod> = owned.iter().filter(|p| is_active(p)).collect();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.labels().get(k) == Some(v))
        })
        .count() as i32;
    let ready = active.iter().filter(|p| is_ready(p)).count() as i32;
    let available = active
        .iter()
        .filter(|p| is_available(p, min_ready, now))
        .count() as i32;
    let requeue = active
        .iter()
        .filter_map(|p| available_in(p, min_ready, now))
        .min();
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone().unwrap_or_default();
    conditions.retain(|c| c.type_ != "ReplicaFailure");
    if let Some(e) = failure {
        conditions.push(k8s_openapi::api::apps::v1::ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some(e.to_string()),
            last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
        });
    }
    let status = ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: rs.metadata.generation,
        conditions: if conditions.is_empty() {
            None
        } else {
            Some(conditions)
        },
        terminating_replicas: None,
    };
    let same = old.replicas == status.replicas
        && old.fully_labeled_replicas.unwrap_or(0) == fully_labeled
        && old.ready_replicas.unwrap_or(0) == ready
        && old.available_replicas.unwrap_or(0) == available
        && old.observed_generation == status.observed_generation
        && old.conditions.as_ref().map(|c| c.len()) == status.conditions.as_ref().map(|c| c.len());
    if !same {
        let api: Api<ReplicaSet> =
            Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
        let patch = json!({"status": status});
        match api
            .patch_status(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if has_code(&e, 404) => {}
            Err(e) => {
                return Err(Error::api(
                    format!("updating the status of replicaset {}", rs.name_any()),
                    e,
                ));
            }
        }
    }
    Ok(requeue)
}
