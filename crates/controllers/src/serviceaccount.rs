//! The service-account controller: every active namespace has a `default` ServiceAccount
//! (recreated when deleted) and, when the cluster CA is known, the `kube-root-ca.crt`
//! ConfigMap that pods use to verify the API server (kept equal to the CA).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};

pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

struct Ctx {
    client: Client,
    root_ca: Option<String>,
    recorder: EventRecorder,
}

/// The service-account controller component.
pub struct ServiceAccountController {
    ctx: Arc<Ctx>,
}

impl ServiceAccountController {
    /// `root_ca` is the PEM of the cluster CA; without it no `kube-root-ca.crt` is published.
    pub fn new(
        client: Client,
        root_ca: Option<String>,
        recorder: EventRecorder,
    ) -> ServiceAccountController {
        ServiceAccountController {
            ctx: Arc::new(Ctx {
                client,
                root_ca,
                recorder,
            }),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let client = self.ctx.client.clone();
        let by_namespace = |ns: Option<String>| ns.map(|n| ObjectRef::<Namespace>::new(&n));
        let mut controller = Controller::new(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        )
        .watches(
            Api::<ServiceAccount>::all(client.clone()),
            watcher::Config::default().fields(&format!("metadata.name={DEFAULT_SERVICE_ACCOUNT}")),
            move |sa| by_namespace(sa.namespace()),
        );
        if self.ctx.root_ca.is_some() {
            controller = controller.watches(
                Api::<ConfigMap>::all(client),
                watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIGMAP}")),
                move |cm| by_namespace(cm.namespace()),
            );
        }
        controller
            .graceful_shutdown_on(shutdown.cancelled_owned())
            .run(reconcile, error_policy, self.ctx)
            .for_each(|_| futures::future::ready(()))
            .await;
        Ok(())
    }
}

fn error_policy(ns: Arc<Namespace>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), error = %err, "service-account controller: will retry");
    Action::requeue(Duration::from_secs(2))
}

fn is_active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action> {
    if !is_active(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    ensure_service_account(&ctx, &name).await?;
    if let Some(ca) = &ctx.root_ca {
        ensure_root_ca(&ctx, &name, ca).await?;
    }
    Ok(Action::await_change())
}

async fn ensure_service_account(ctx: &Ctx, namespace: &str) -> Result<()> {
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), namespace);
    let present = api
        .get_opt(DEFAULT_SERVICE_ACCOUNT)
        .await
        .map_err(|e| Error::api(format!("getting serviceaccount {namespace}/default"), e))?;
    if present.is_some() {
        return Ok(());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT_SERVICE_ACCOUNT.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(created) => {
            ctx.recorder.normal(
                &InvolvedObject::of(&created),
                "Created",
                &format!("created service account {namespace}/{DEFAULT_SERVICE_ACCOUNT}"),
            );
            Ok(())
        }
        // Raced with another writer, or the namespace started terminating.
        Err(e) if has_code(&e, 409) || has_code(&e, 403) || has_code(&e, 404) => Ok(()),
        Err(e) => Err(Error::api(
            format!("creating serviceaccount {namespace}/default"),
            e,
        )),
    }
}

async fn ensure_root_ca(ctx: &Ctx, namespace: &str, ca: &str) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    let current = api.get_opt(ROOT_CA_CONFIGMAP).await.map_err(|e| {
        Error::api(
            format!("getting configmap {namespace}/{ROOT_CA_CONFIGMAP}"),
            e,
        )
    })?;
    match current {
        Some(cm) => {
            let has = cm
                .data
                .as_ref()
                .and_then(|d| d.get("ca.crt"))
                .map(String::as_str);
            if has == Some(ca) {
                return Ok(());
            }
            let patch = json!({"data": {"ca.crt": ca}});
            match api
                .patch(
                    ROOT_CA_CONFIGMAP,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if has_code(&e, 404) || has_code(&e, 403) => Ok(()),
                Err(e) => Err(Error::api(
                    format!("updating configmap {namespace}/{ROOT_CA_CONFIGMAP}"),
                    e,
                )),
            }
        }
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(ROOT_CA_CONFIGMAP.into()),
                    namespace: Some(namespace.into()),
                    annotations: Some(BTreeMap::from([(
                        "kubernetes.io/description".to_string(),
                        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.".to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([("ca.crt".to_string(), ca.to_string())])),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => Ok(()),
                Err(e) if has_code(&e, 409) || has_code(&e, 403) || has_code(&e, 404) => Ok(()),
                Err(e) => Err(Error::api(
                    format!("creating configmap {namespace}/{ROOT_CA_CONFIGMAP}"),
                    e,
                )),
            }
        }
    }
}
