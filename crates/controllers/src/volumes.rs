//! PersistentVolume binding and the local provisioner: a pending claim is bound to the
//! smallest Available volume that fits (class, size, access modes, selector); failing
//! that, a claim of the `local-path` class (or of no class) gets a new hostPath volume
//! provisioned for it (`<root>/pvc-<uid>_<namespace>_<name>`, created by the node agent on
//! first use). When a claim goes, its volume becomes Released, and provisioned volumes
//! with the Delete reclaim policy are deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};
use crate::resources::int_value;

pub const PROVISIONER: &str = "berth.dev/local-path";
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

/// Settings of volume binding.
#[derive(Clone, Debug)]
pub struct VolumeConfig {
    /// Where provisioned hostPath volumes live on nodes.
    pub root: String,
    /// Claim classes the local provisioner serves ("" = claims without a class).
    pub classes: Vec<String>,
}

impl Default for VolumeConfig {
    fn default() -> Self {
        VolumeConfig {
            root: "/var/lib/berth/storage".into(),
            classes: vec!["".into(), "local-path".into()],
        }
    }
}

struct Ctx {
    client: Client,
    recorder: EventRecorder,
    config: VolumeConfig,
}

/// The volume binding component (claims and volumes).
pub struct VolumeController {
    ctx: Arc<Ctx>,
}

impl VolumeController {
    pub fn new(config: VolumeConfig, client: Client, recorder: EventRecorder) -> Self {
        VolumeController {
            ctx: Arc::new(Ctx {
                client,
                recorder,
                config,
            }),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let client = self.ctx.client.clone();
        let claims = Controller::new(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            watcher::Config::default(),
        )
        .watches(
            Api::<PersistentVolume>::all(client.clone()),
            watcher::Config::default(),
            |pv: PersistentVolume| {
                pv.spec.and_then(|s| s.claim_ref).and_then(|r| {
                    Some(ObjectRef::<PersistentVolumeClaim>::new(&r.name?).within(&r.namespace?))
                })
            },
        )
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile_claim, error_policy, self.ctx.clone())
        .for_each(|_| futures::future::ready(()));
        let volumes = Controller::new(
            Api::<PersistentVolume>::all(client.clone()),
            watcher::Config::default(),
        )
        .watches(
            Api::<PersistentVolumeClaim>::all(client),
            watcher::Config::default(),
            |pvc: PersistentVolumeClaim| {
                pvc.spec
                    .and_then(|s| s.volume_name)
                    .map(|v| ObjectRef::<PersistentVolume>::new(&v))
            },
        )
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile_volume, error_policy_pv, self.ctx.clone())
        .for_each(|_| futures::future::ready(()));
        futures::join!(claims, volumes);
        Ok(())
    }
}

fn error_policy(c: Arc<PersistentVolumeClaim>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(claim = %c.name_any(), error = %err, "volume binding: will retry");
    Action::requeue(Duration::from_secs(2))
}

fn error_policy_pv(v: Arc<PersistentVolume>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(volume = %v.name_any(), error = %err, "volume binding: will retry");
    Action::requeue(Duration::from_secs(2))
}

fn requested(c: &PersistentVolumeClaim) -> i64 {
    c.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| int_value(q).ok())
        .unwrap_or(0)
}

fn capacity(v: &PersistentVolume) -> i64 {
    v.spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| int_value(q).ok())
        .unwrap_or(0)
}

fn claim_class(c: &PersistentVolumeClaim) -> String {
    c.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

fn fits(v: &PersistentVolume, c: &PersistentVolumeClaim) -> bool {
    let vs = v.spec.clone().unwrap_or_default();
    let cs = c.spec.clone().unwrap_or_default();
    let free = vs.claim_ref.is_none()
        && v.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Available" || p == "Pending");
    let class_ok = vs.storage_class_name.clone().unwrap_or_default() == claim_class(c);
    let modes_ok = cs
        .access_modes
        .unwrap_or_default()
        .iter()
        .all(|m| vs.access_modes.clone().unwrap_or_default().contains(m));
    let mode_ok = vs
        .volume_mode
        .clone()
        .unwrap_or_else(|| "Filesystem".into())
        == cs
            .volume_mode
            .clone()
            .unwrap_or_else(|| "Filesystem".into());
    let selector_ok = match cs.selector {
        None => true,
        Some(sel) => Selector::try_from(sel).is_ok_and(|s| s.matches(v.labels())),
    };
    free && class_ok && modes_ok && mode_ok && selector_ok && capacity(v) >= requested(c)
}

async fn set_claim_bound(ctx: &Ctx, c: &PersistentVolumeClaim, v: &PersistentVolume) -> Result<()> {
    let api: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &c.namespace().unwrap_or_default());
    let vs = v.spec.clone().unwrap_or_default();
    let status = json!({"status": {"phase": "Bound", "accessModes": vs.access_modes, "capacity": vs.capacity}});
    match api
        .patch_status(
            &c.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if has_code(&e, 404) => Ok(()),
        Err(e) => Err(Error::api(
            format!("marking claim {} bound", c.name_any()),
            e,
        )),
    }
}

async fn set_volume_phase(ctx: &Ctx, v: &PersistentVolume, phase: &str) -> Result<()> {
    if v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(phase) {
        return Ok(());
    }
    let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    match api
        .patch_status(
            &v.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"phase": phase}})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if has_code(&e, 404) => Ok(()),
        Err(e) => Err(Error::api(format!("updating volume {}", v.name_any()), e)),
    }
}

async fn reconcile_claim(c: Arc<PersistentVolumeClaim>, ctx: Arc<Ctx>) -> Result<Action> {
    if c.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = c.namespace().unwrap_or_default();
    let name = c.name_any();
    let uid = c.uid().unwrap_or_default();
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let claim_ref = json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns, "name": name, "uid": uid,
                           "resourceVersion": c.resource_version()});
    // Already bound (or pre-bound to a named volume).
    if let Some(vname) = c
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty())
    {
        let Some(v) = pvs
            .get_opt(&vname)
            .await
            .map_err(|e| Error::api("reading a volume", e))?
        else {
            return Ok(Action::requeue(Duration::from_secs(5)));
        };
        let bound_to = v
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .and_then(|r| r.uid.clone());
        if bound_to.is_none() {
            pvs.patch(
                &vname,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"claimRef": claim_ref}})),
            )
            .await
            .map_err(|e| Error::api(format!("binding volume {vname}"), e))?;
        }
        set_volume_phase(&ctx, &v, "Bound").await?;
        if c.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
            set_claim_bound(&ctx, &c, &v).await?;
        }
        return Ok(Action::await_change());
    }
    let mut candidates: Vec<PersistentVolume> = pvs
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::api("listing volumes", e))?
        .items
        .into_iter()
        .filter(|v| fits(v, &c))
        .collect();
    candidates.sort_by_key(capacity);
    let volume = if let Some(v) = candidates.into_iter().next() {
        // Claim the volume first (optimistic concurrency on its resourceVersion).
        let patch = json!({"metadata": {"resourceVersion": v.resource_version()}, "spec": {"claimRef": claim_ref}});
        match pvs
            .patch(
                &v.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(v) => v,
            Err(e) if has_code(&e, 409) => return Ok(Action::requeue(Duration::from_millis(100))),
            Err(e) => return Err(Error::api(format!("binding volume {}", v.name_any()), e)),
        }
    } else if ctx.config.classes.contains(&claim_class(&c)) {
        let class = if claim_class(&c).is_empty() {
            "local-path".to_string()
        } else {
            claim_class(&c)
        };
        let vname = format!("pvc-{uid}");
        let size = c
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage").cloned());
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": vname, "annotations": {PROVISIONED_BY: PROVISIONER}},
            "spec": {
                "capacity": {"storage": size.map(|q| q.0).unwrap_or_else(|| "1Gi".into())},
                "accessModes": c.spec.as_ref().and_then(|s| s.access_modes.clone()).unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": if claim_class(&c).is_empty() { String::new() } else { class },
                "volumeMode": c.spec.as_ref().and_then(|s| s.volume_mode.clone()).unwrap_or_else(|| "Filesystem".into()),
                "hostPath": {"path": format!("{}/pvc-{uid}_{ns}_{name}", ctx.config.root), "type": "DirectoryOrCreate"},
                "claimRef": claim_ref,
            }
        }))
        .map_err(|e| Error::invalid(&name, "spec", e.to_string()))?;
        match pvs.create(&PostParams::default(), &pv).await {
            Ok(v) => {
                ctx.recorder.normal(
                    &InvolvedObject::of(c.as_ref()),
                    "ProvisioningSucceeded",
                    &format!("Successfully provisioned volume {vname}"),
                );
                v
            }
            Err(e) if has_code(&e, 409) => pvs
                .get(&vname)
                .await
                .map_err(|e| Error::api("reading a volume", e))?,
            Err(e) => {
                return Err(Error::api(
                    format!("provisioning a volume for claim {name}"),
                    e,
                ));
            }
        }
    } else {
        ctx.recorder.normal(
            &InvolvedObject::of(c.as_ref()),
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set",
        );
        return Ok(Action::requeue(Duration::from_secs(15)));
    };
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let annotations: BTreeMap<String, String> = BTreeMap::from([(
        "pv.kubernetes.io/bind-completed".to_string(),
        "yes".to_string(),
    )]);
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"annotations": annotations}, "spec": {"volumeName": volume.name_any()}})))
        .await
        .map_err(|e| Error::api(format!("binding claim {name}"), e))?;
    set_volume_phase(&ctx, &volume, "Bound").await?;
    set_claim_bound(&ctx, &c, &volume).await?;
    Ok(Action::await_change())
}

async fn reconcile_volume(v: Arc<PersistentVolume>, ctx: Arc<Ctx>) -> Result<Action> {
    if v.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let spec = v.spec.clone().unwrap_or_default();
    let Some(r) = spec.claim_ref.clone() else {
        set_volume_phase(&ctx, &v, "Available").await?;
        return Ok(Action::await_change());
    };
    let (Some(ns), Some(name)) = (r.namespace.clone(), r.name.clone()) else {
        return Ok(Action::await_change());
    };
    let claim = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&name)
        .await
        .map_err(|e| Error::api("reading a claim", e))?;
    let claim_alive = claim
        .as_ref()
        .is_some_and(|c| r.uid.is_none() || c.uid() == r.uid);
    if claim_alive {
        return Ok(Action::await_change());
    }
    // The claim is gone: release, and delete what we provisioned.
    let ours = v.annotations().get(PROVISIONED_BY).map(String::as_str) == Some(PROVISIONER);
    if ours
        && spec
            .persistent_volume_reclaim_policy
            .as_deref()
            .unwrap_or("Delete")
            == "Delete"
    {
        match Api::<PersistentVolume>::all(ctx.client.clone())
            .delete(&v.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(e) if has_code(&e, 404) => {}
            Err(e) => return Err(Error::api(format!("deleting volume {}", v.name_any()), e)),
        }
        return Ok(Action::await_change());
    }
    set_volume_phase(&ctx, &v, "Released").await?;
    Ok(Action::await_change())
}
