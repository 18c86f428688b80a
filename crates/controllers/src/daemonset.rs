//! The DaemonSet controller: one pod per eligible node (nodes added later included), pinned
//! with a node-affinity term on the node's name and the tolerations Kubernetes gives daemon
//! pods; pods of an outdated template are replaced by the RollingUpdate strategy at most
//! `maxUnavailable` at a time (OnDelete leaves them). Status carries the scheduled, ready,
//! available, updated and misscheduled counts. Each distinct template is kept as a
//! ControllerRevision (`revisions`), whose hash labels the pods, so `kubectl rollout
//! history|undo daemonset` work; history beyond `revisionHistoryLimit` is pruned.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};
use crate::pods::{
    Expectations, controller_ref, controller_uid, create_pod, delete_pod, is_active, is_available,
    is_ready, pod_from_template, selector_string,
};
use crate::revisions::{self, REVISION_HASH_LABEL};

struct Ctx {
    client: Client,
    recorder: EventRecorder,
    expectations: Expectations,
}

/// The DaemonSet controller component.
pub struct DaemonSetController {
    ctx: Arc<Ctx>,
}

impl DaemonSetController {
    pub fn new(client: Client, recorder: EventRecorder) -> Self {
        DaemonSetController {
            ctx: Arc::new(Ctx {
                client,
                recorder,
                expectations: Expectations::default(),
            }),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let client = self.ctx.client.clone();
        let controller = Controller::new(
            Api::<DaemonSet>::all(client.clone()),
            watcher::Config::default(),
        );
        // Any node change may change where daemons run: look at every DaemonSet.
        let store = controller.store();
        controller
            .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .owns(
                Api::<ControllerRevision>::all(client.clone()),
                watcher::Config::default(),
            )
            .watches(
                Api::<Node>::all(client),
                watcher::Config::default(),
                move |_node: Node| {
                    store
                        .state()
                        .iter()
                        .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                        .collect::<Vec<_>>()
                },
            )
            .graceful_shutdown_on(shutdown.cancelled_owned())
            .run(reconcile, error_policy, self.ctx)
            .for_each(|_| futures::future::ready(()))
            .await;
        Ok(())
    }
}

fn error_policy(ds: Arc<DaemonSet>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(daemonset = %ds.name_any(), error = %err, "daemonset controller: will retry");
    if err.is_invalid_object() {
        return Action::await_change();
    }
    Action::requeue(Duration::from_secs(1))
}

/// The tolerations Kubernetes adds to daemon pods.
fn daemon_tolerations() -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
}

fn tolerated(tols: &[Toleration], key: &str, value: Option<&str>, effect: &str) -> bool {
    tols.iter().any(|t| {
        t.effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == effect)
            && match t.key.as_deref().filter(|k| !k.is_empty()) {
                None => t.operator.as_deref() == Some("Exists"),
                Some(k) => {
                    k == key
                        && (t.operator.as_deref() == Some("Exists")
                            || t.value.as_deref().unwrap_or("") == value.unwrap_or(""))
                }
            }
    })
}

/// Whether the daemon should run on a node: node selector, required node affinity and
/// NoSchedule/NoExecute taints (with the daemon tolerations).
fn should_run(ds: &DaemonSet, node: &Node) -> bool {
    let spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    let labels = node.labels();
    if !spec
        .node_selector
        .unwrap_or_default()
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    if let Some(terms) = spec
        .affinity
        .and_then(|a| a.node_affinity)
        .and_then(|n| n.required_during_scheduling_ignored_during_execution)
        .map(|r| r.node_selector_terms)
    {
        let ok = terms.iter().any(|t| {
            t.match_expressions.iter().flatten().all(|r| {
                let v = labels.get(&r.key);
                let vals = r.values.clone().unwrap_or_default();
                match r.operator.as_str() {
                    "In" => v.is_some_and(|v| vals.contains(v)),
                    "NotIn" => v.is_none_or(|v| !vals.contains(v)),
                    "Exists" => v.is_some(),
                    "DoesNotExist" => v.is_none(),
                    _ => false,
                }
            })
        });
        if !ok {
            return false;
        }
    }
    let mut tols = spec.tolerations.unwrap_or_default();
    tols.extend(daemon_tolerations());
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|t| tolerated(&tols, &t.key, t.value.as_deref(), &t.effect))
}

fn pod_node(p: &Pod) -> Option<String> {
    if let Some(n) = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
    {
        return Some(n);
    }
    p.spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| f.key == "metadata.name")
        .and_then(|f| f.values.as_ref()?.first().cloned())
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action> {
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let uid = ds.uid().unwrap_or_default();
    let who = format!("daemonset {ns}/{name}");
    let spec = ds.spec.clone().unwrap_or_default();
    let selector = selector_string(&who, Some(&spec.selector))?;
    let history = revisions::sync(
        &ctx.client,
        ds.as_ref(),
        &revisions::Owner {
            selector: &spec.selector,
            template: &spec.template,
            collision_count: ds
                .status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0),
        },
    )
    .await?;
    let hash = history.hash();
    let nodes: Vec<Node> = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::api("listing nodes", e))?
        .items;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pods: Vec<Pod> = pods_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Error::api(format!("listing pods of {who}"), e))?
        .items
        .into_iter()
        .filter(|p| controller_uid(&p.metadata) == Some(uid.as_str()))
        .collect();
    let mut by_node: HashMap<String, Vec<&Pod>> = HashMap::new();
    for p in pods.iter().filter(|p| is_active(p)) {
        if let Some(n) = pod_node(p) {
            by_node.entry(n).or_default().push(p);
        }
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = jiff::Timestamp::now();
    let mut create_on: Vec<String> = Vec::new();
    let mut delete: Vec<&Pod> = Vec::new();
    let mut desired = 0;
    let mut misscheduled = 0;
    let mut outdated: Vec<&Pod> = Vec::new();
    for node in &nodes {
        let nn = node.name_any();
        let here = by_node.get(&nn).cloned().unwrap_or_default();
        if should_run(&ds, node) {
            desired += 1;
            if here.is_empty() {
                create_on.push(nn);
            } else {
                // Keep the oldest; extra daemons on one node go.
                let mut sorted = here.clone();
                sorted.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
                delete.extend(sorted.iter().skip(1));
                if sorted[0].labels().get(REVISION_HASH_LABEL) != Some(&hash) {
                    outdated.push(sorted[0]);
                }
            }
        } else if !here.is_empty() {
            misscheduled += here.len() as i32;
            delete.extend(here);
        }
    }
    // Pods on nodes that are gone.
    for (n, ps) in &by_node {
        if !nodes.iter().any(|x| x.name_any() == *n) {
            delete.extend(ps.iter().copied());
        }
    }
    // Rolling update: replace outdated pods, at most maxUnavailable unavailable at once.
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref() != Some("OnDelete") {
        let max_unavailable = match strategy.rolling_update.and_then(|r| r.max_unavailable) {
            Some(IntOrString::Int(i)) => i.max(1),
            Some(IntOrString::String(s)) => {
                let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(0.0);
                ((pct * desired as f64 / 100.0).floor() as i32).max(1)
            }
            None => 1,
        };
        let unavailable = by_node
            .values()
            .flatten()
            .filter(|p| !is_available(p, min_ready, now))
            .count() as i32
            + create_on.len() as i32;
        let budget = (max_unavailable - unavailable).max(0) as usize;
        // Unavailable outdated pods first (replacing them costs nothing).
        outdated.sort_by_key(|p| is_available(p, min_ready, now));
        let mut taken = 0;
        for p in outdated {
            if !is_available(p, min_ready, now) || taken < budget {
                if is_available(p, min_ready, now) {
                    taken += 1;
                }
                delete.push(p);
            }
        }
    }
    if ctx.expectations.satisfied(&uid, &pods) {
        let owner = InvolvedObject::of(ds.as_ref());
        let mut created = Vec::new();
        for node in &create_on {
            let mut template = spec.template.clone();
            let pspec = template.spec.get_or_insert_with(Default::default);
            let mut tols = pspec.tolerations.clone().unwrap_or_default();
            for t in daemon_tolerations() {
                if !tols.contains(&t) {
                    tols.push(t);
                }
            }
            pspec.tolerations = Some(tols);
            let affinity = pspec.affinity.get_or_insert_with(Default::default);
            affinity.node_affinity = Some(serde_json::from_value(json!({
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                ]}
            })).map_err(|e| Error::invalid(&who, "spec.template.spec.affinity", e.to_string()))?);
            let extra = BTreeMap::from([(REVISION_HASH_LABEL.to_string(), hash.clone())]);
            let pod = pod_from_template(
                &template,
                &ns,
                controller_ref(ds.as_ref()),
                None,
                Some(format!("{name}-")),
                &extra,
            );
            let p = create_pod(&ctx.recorder, &owner, &pods_api, &pod)
                .await
                .map_err(|e| Error::api(format!("creating a daemon pod on {node}"), e))?;
            created.push(p.name_any());
        }
        let mut deleted = Vec::new();
        for p in &delete {
            let dp = DeleteParams::default();
            deleted.extend(delete_pod(&ctx.recorder, &owner, &pods_api, p, &dp).await?);
        }
        ctx.expectations.expect(&uid, created, deleted);
    }
    // History no live pod uses, beyond the limit.
    let live: std::collections::HashSet<&str> = pods
        .iter()
        .filter_map(|p| p.labels().get(REVISION_HASH_LABEL).map(String::as_str))
        .collect();
    let expired = revisions::expired(
        &history.old,
        revisions::history_limit(spec.revision_history_limit),
        true,
        |r| live.contains(revisions::revision_hash(r).as_str()),
    );
    revisions::delete(&ctx.client, &ns, &expired).await?;
    // Status.
    let scheduled: Vec<&Pod> = by_node
        .iter()
        .filter(|(n, _)| nodes.iter().any(|x| x.name_any() == **n))
        .filter_map(|(_, ps)| ps.first().copied())
        .collect();
    let status = json!({
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": scheduled.len() as i32 - misscheduled,
        "numberMisscheduled": misscheduled,
        "numberReady": scheduled.iter().filter(|p| is_ready(p)).count(),
        "numberAvailable": scheduled.iter().filter(|p| is_available(p, min_ready, now)).count(),
        "numberUnavailable": (desired - scheduled.iter().filter(|p| is_available(p, min_ready, now)).count() as i32).max(0),
        "updatedNumberScheduled": scheduled.iter().filter(|p| p.labels().get(REVISION_HASH_LABEL) == Some(&hash)).count(),
        "observedGeneration": ds.metadata.generation,
    });
    let old = serde_json::to_value(ds.status.clone().unwrap_or_default()).unwrap_or_default();
    let changed = status.as_object().is_some_and(|m| {
        m.iter()
            .any(|(k, v)| old.get(k).cloned().unwrap_or(json!(0)) != *v)
    });
    if changed {
        let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
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
    let settling = !create_on.is_empty() || !delete.is_empty();
    Ok(if settling {
        Action::requeue(Duration::from_millis(500))
    } else {
        Action::requeue(Duration::from_secs(30))
    })
}
