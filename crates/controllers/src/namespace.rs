//! The namespace controller: when a namespace is being deleted, deletes every namespaced
//! object in it (all discovered namespaced resources, custom ones included), waits until
//! they are gone — reporting what remains and which finalizers hold it in the namespace's
//! status conditions, as Kubernetes does — and then finalizes the namespace (removes the
//! `kubernetes` entry of `spec.finalizers` through `namespaces/<name>/finalize`), after which
//! the API server deletes it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::verbs;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::catalog::{CatalogEntry, ResourceCatalog};
use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};

/// The finalizer the namespace controller owns.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// Settings of the namespace controller.
#[derive(Clone, Debug)]
pub struct NamespaceConfig {
    /// How soon a namespace whose content is still going away is looked at again.
    pub recheck: Duration,
    pub concurrency: u16,
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        NamespaceConfig {
            recheck: Duration::from_secs(1),
            concurrency: 4,
        }
    }
}

struct Ctx {
    client: Client,
    catalog: Arc<ResourceCatalog>,
    recorder: EventRecorder,
    config: NamespaceConfig,
}

/// The namespace controller component.
pub struct NamespaceController {
    ctx: Arc<Ctx>,
}

/// What is left in a namespace being emptied.
#[derive(Default, Debug, PartialEq, Eq)]
struct Remaining {
    /// resource (plural.group) → instances
    resources: BTreeMap<String, usize>,
    /// finalizer → instances carrying it
    finalizers: BTreeMap<String, usize>,
    /// deletion errors
    failures: Vec<String>,
}

impl NamespaceController {
    pub fn new(
        config: NamespaceConfig,
        client: Client,
        catalog: Arc<ResourceCatalog>,
        recorder: EventRecorder,
    ) -> NamespaceController {
        NamespaceController {
            ctx: Arc::new(Ctx {
                client,
                catalog,
                recorder,
                config,
            }),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.ctx.client.clone());
        let concurrency = self.ctx.config.concurrency;
        Controller::new(api, watcher::Config::default())
            .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
            .graceful_shutdown_on(shutdown.cancelled_owned())
            .run(reconcile, error_policy, self.ctx)
            .for_each(|_| futures::future::ready(()))
            .await;
        Ok(())
    }
}

fn error_policy(ns: Arc<Namespace>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), error = %err, "namespace controller: will retry");
    Action::requeue(Duration::from_secs(2))
}

fn has_kubernetes_finalizer(ns: &Namespace) -> bool {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == NAMESPACE_FINALIZER))
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action> {
    if ns.metadata.deletion_timestamp.is_none() || !has_kubernetes_finalizer(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    ctx.catalog.refresh(&ctx.client).await?;
    let remaining = delete_content(&ctx, &name).await?;
    write_conditions(&ctx, &ns, &remaining).await?;
    if !remaining.failures.is_empty() {
        ctx.recorder.warning(
            &InvolvedObject::of(ns.as_ref()),
            "NamespaceContentDeletionFailed",
            &remaining.failures.join("; "),
        );
    }
    if !remaining.resources.is_empty() || !remaining.failures.is_empty() {
        return Ok(Action::requeue(ctx.config.recheck));
    }
    finalize(&ctx, &ns).await?;
    tracing::info!(namespace = %name, "namespace emptied and finalized");
    Ok(Action::await_change())
}

fn deletable(e: &CatalogEntry) -> bool {
    e.namespaced
        && e.supports(verbs::LIST)
        && (e.supports(verbs::DELETE) || e.supports(verbs::DELETE_COLLECTION))
}

fn resource_name(e: &CatalogEntry) -> String {
    if e.resource.group.is_empty() {
        e.resource.plural.clone()
    } else {
        format!("{}.{}", e.resource.plural, e.resource.group)
    }
}

async fn delete_content(ctx: &Ctx, namespace: &str) -> Result<Remaining> {
    let mut remaining = Remaining::default();
    for entry in ctx.catalog.entries().into_iter().filter(deletable) {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), namespace, &entry.resource);
        let listed = api
            .list_metadata(&ListParams::default())
            .await
            .map_err(|e| {
                Error::api(
                    format!("listing {} in namespace {namespace}", resource_name(&entry)),
                    e,
                )
            })?;
        if listed.items.is_empty() {
            continue;
        }
        let live: Vec<_> = listed
            .items
            .iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
            .collect();
        if !live.is_empty() {
            let params = DeleteParams::background();
            if entry.supports(verbs::DELETE_COLLECTION) {
                if let Err(e) = api.delete_collection(&params, &ListParams::default()).await {
                    remaining
                        .failures
                        .push(format!("{}: {e}", resource_name(&entry)));
                }
            } else {
                for o in live {
                    match api.delete(&o.name_any(), &params).await {
                        Ok(_) => {}
                        Err(e) if has_code(&e, 404) => {}
                        Err(e) => remaining.failures.push(format!(
                            "{} {}: {e}",
                            resource_name(&entry),
                            o.name_any()
                        )),
                    }
                }
            }
        }
        // What is still there after the deletion (finalizers, graceful pod termination).
        let after = api
            .list_metadata(&ListParams::default())
            .await
            .map_err(|e| {
                Error::api(
                    format!("listing {} in namespace {namespace}", resource_name(&entry)),
                    e,
                )
            })?;
        if !after.items.is_empty() {
            remaining
                .resources
                .insert(resource_name(&entry), after.items.len());
            for o in &after.items {
                for f in o.finalizers() {
                    *remaining.finalizers.entry(f.clone()).or_default() += 1;
                }
            }
        }
    }
    Ok(remaining)
}

fn condition(type_: &str, on: bool, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.to_string(),
        status: if on { "True" } else { "False" }.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_transition_time: Some(Time(jiff::Timestamp::now())),
    }
}

/// The deletion conditions Kubernetes reports on a terminating namespace.
fn deletion_conditions(r: &Remaining) -> Vec<NamespaceCondition> {
    let content_remaining = if r.resources.is_empty() {
        condition(
            "NamespaceContentRemaining",
            false,
            "ContentRemoved",
            "All content successfully removed".into(),
        )
    } else {
        let list: Vec<String> = r
            .resources
            .iter()
            .map(|(k, n)| format!("{k} has {n} resource instances"))
            .collect();
        condition(
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", list.join(", ")),
        )
    };
    let finalizers_remaining = if r.finalizers.is_empty() {
        condition(
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        )
    } else {
        let list: Vec<String> = r
            .finalizers
            .iter()
            .map(|(k, n)| format!("{k} in {n} resource instances"))
            .collect();
        condition(
            "NamespaceFinalizersRemaining",
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                list.join(", ")
            ),
        )
    };
    let content_failure = if r.failures.is_empty() {
        condition(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        )
    } else {
        condition(
            "NamespaceDeletionContentFailure",
            true,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                r.failures.len(),
                r.failures.join(", ")
            ),
        )
    };
    vec![
        condition(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
        condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        content_failure,
        content_remaining,
        finalizers_remaining,
    ]
}

/// Writes the deletion conditions when they changed (keeping transition times of unchanged
/// ones).
async fn write_conditions(ctx: &Ctx, ns: &Namespace, r: &Remaining) -> Result<()> {
    let current = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut desired = deletion_conditions(r);
    let mut changed = false;
    for d in desired.iter_mut() {
        match current.iter().find(|c| c.type_ == d.type_) {
            Some(c) if c.status == d.status && c.reason == d.reason && c.message == d.message => {
                d.last_transition_time = c.last_transition_time.clone();
            }
            Some(c) if c.status == d.status => {
                d.last_transition_time = c.last_transition_time.clone();
                changed = true;
            }
            _ => changed = true,
        }
    }
    if !changed {
        return Ok(());
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let patch = json!({"status": {"conditions": desired}});
    match api
        .patch_status(
            &ns.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if has_code(&e, 404) => Ok(()),
        Err(e) => Err(Error::api(
            format!("updating the status of namespace {}", ns.name_any()),
            e,
        )),
    }
}

async fn finalize(ctx: &Ctx, ns: &Namespace) -> Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let mut body = ns.clone();
    if let Some(spec) = body.spec.as_mut() {
        spec.finalizers = spec
            .finalizers
            .take()
            .map(|f| f.into_iter().filter(|x| x != NAMESPACE_FINALIZER).collect());
    }
    match api
        .replace_subresource("finalize", &ns.name_any(), &PostParams::default(), &body)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if has_code(&e, 404) => Ok(()),
        Err(e) => Err(Error::api(
            format!("finalizing namespace {}", ns.name_any()),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_report_remaining_content_and_finalizers() {
        let mut r = Remaining::default();
        r.resources.insert("pods".into(), 2);
        r.finalizers.insert("example.com/hold".into(), 1);
        let c = deletion_conditions(&r);
        let get = |t: &str| c.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(get("NamespaceContentRemaining").status, "True");
        assert_eq!(
            get("NamespaceContentRemaining").message.as_deref(),
            Some("Some resources are remaining: pods has 2 resource instances")
        );
        assert_eq!(get("NamespaceFinalizersRemaining").status, "True");
        assert!(
            get("NamespaceFinalizersRemaining")
                .message
                .as_deref()
                .unwrap()
                .contains("example.com/hold in 1 resource instances")
        );
        let c = deletion_conditions(&Remaining::default());
        assert!(c.iter().all(|c| c.status == "False"));
    }
}
