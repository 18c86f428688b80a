//! The endpoints controller: for every Service with a selector, the Endpoints object (ready
//! pods as `addresses`, others as `notReadyAddresses`) and one EndpointSlice
//! (`kubernetes.io/service-name` label, managed by this controller) listing the pods that
//! match, with the service's ports resolved against each pod's named container ports.
//! Services without a selector are left to their users, as in Kubernetes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, has_code};
use crate::pods::is_ready;

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Ready addresses, not-ready addresses and ports of one Endpoints subset.
type Subset = (Vec<Value>, Vec<Value>, Vec<Value>);

struct Ctx {
    client: Client,
}

/// The endpoints controller component.
pub struct EndpointsController {
    ctx: Arc<Ctx>,
}

impl EndpointsController {
    pub fn new(client: Client) -> Self {
        EndpointsController {
            ctx: Arc::new(Ctx { client }),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let client = self.ctx.client.clone();
        let controller = Controller::new(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        );
        let store = controller.store();
        controller
            .watches(
                Api::<Pod>::all(client),
                watcher::Config::default(),
                move |pod: Pod| {
                    let ns = pod.namespace().unwrap_or_default();
                    store
                        .state()
                        .iter()
                        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
                        .filter(|s| selects(s, pod.labels()))
                        .map(|s| ObjectRef::from_obj(s.as_ref()))
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

fn selector_of(svc: &Service) -> Option<BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .clone()
        .filter(|s| !s.is_empty())
}

fn selects(svc: &Service, labels: &BTreeMap<String, String>) -> bool {
    selector_of(svc).is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn error_policy(svc: Arc<Service>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(service = %svc.name_any(), error = %err, "endpoints controller: will retry");
    Action::requeue(Duration::from_secs(1))
}

/// The target port of a service port on a pod (named ports resolved).
fn target_port(port: &ServicePort, pod: &Pod) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(i)) => Some(*i),
        Some(IntOrString::String(name)) => pod.spec.as_ref()?.containers.iter().find_map(|c| {
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
        }),
    }
}

async fn upsert<K>(api: &Api<K>, name: &str, desired: Value, current: Option<K>) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match current {
        None => {
            let obj: K = serde_json::from_value(desired)
                .map_err(|e| Error::invalid(name, "endpoints", e.to_string()))?;
            match api.create(&PostParams::default(), &obj).await {
                Ok(_) => Ok(()),
                Err(e) if has_code(&e, 409) || has_code(&e, 403) => Ok(()),
                Err(e) => Err(Error::api(format!("creating endpoints {name}"), e)),
            }
        }
        Some(cur) => {
            let cur_v = serde_json::to_value(&cur).unwrap_or_default();
            let same = ["subsets", "endpoints", "ports", "addressType"]
                .iter()
                .all(|k| {
                    cur_v.get(*k).cloned().unwrap_or(Value::Null)
                        == desired.get(*k).cloned().unwrap_or(Value::Null)
                });
            if same {
                return Ok(());
            }
            let mut patch = desired;
            if let Some(o) = patch.as_object_mut() {
                for k in ["subsets", "endpoints", "ports"] {
                    o.entry(k).or_insert(Value::Null);
                }
            }
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if has_code(&e, 404) => Ok(()),
                Err(e) => Err(Error::api(format!("updating endpoints {name}"), e)),
            }
        }
    }
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action> {
    let Some(selector) = selector_of(&svc) else {
        return Ok(Action::await_change());
    };
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let sel: Selector = selector.clone().into_iter().collect();
    let pods: Vec<Pod> = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default().labels(&sel.to_string()))
        .await
        .map_err(|e| Error::api(format!("listing pods of service {ns}/{name}"), e))?
        .items
        .into_iter()
        .filter(|p| sel.matches(p.labels()))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.pod_ip.as_ref())
                .is_some_and(|ip| !ip.is_empty())
        })
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded") | Some("Failed")
            )
        })
        .collect();
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let address = |p: &Pod| {
        json!({"ip": p.status.as_ref().and_then(|s| s.pod_ip.clone()), "nodeName": p.spec.as_ref().and_then(|s| s.node_name.clone()),
               "targetRef": {"kind": "Pod", "namespace": ns, "name": p.name_any(), "uid": p.uid()}})
    };
    // Endpoints: one subset per distinct resolved port set.
    // resolved ports → (ready addresses, not-ready addresses, ports)
    let mut subsets: BTreeMap<String, Subset> = BTreeMap::new();
    for p in &pods {
        let resolved: Vec<Value> = ports
            .iter()
            .filter_map(|sp| target_port(sp, p).map(|tp| json!({"name": sp.name, "port": tp, "protocol": sp.protocol.clone().unwrap_or_else(|| "TCP".into())})))
            .collect();
        let key = serde_json::to_string(&resolved).unwrap_or_default();
        let entry = subsets
            .entry(key)
            .or_insert_with(|| (Vec::new(), Vec::new(), resolved));
        if is_ready(p) || publish_not_ready {
            entry.0.push(address(p));
        } else {
            entry.1.push(address(p));
        }
    }
    let subsets: Vec<Value> = subsets
        .into_values()
        .map(|(ready, not_ready, ports)| {
            let mut s = json!({"ports": ports});
            if !ready.is_empty() {
                s["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                s["notReadyAddresses"] = json!(not_ready);
            }
            s
        })
        .collect();
    let labels = svc.labels().clone();
    let ep_api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let current = ep_api
        .get_opt(&name)
        .await
        .map_err(|e| Error::api("reading endpoints", e))?;
    // Owned by the Service so they go with it (the garbage collector removes them).
    let owner = json!([{"apiVersion": "v1", "kind": "Service", "name": name, "uid": svc.uid(), "controller": true, "blockOwnerDeletion": true}]);
    let desired = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": owner},
        "subsets": if subsets.is_empty() { Value::Null } else { json!(subsets) }});
    upsert(&ep_api, &name, desired, current).await?;

    // EndpointSlice.
    let slice_name = format!("{name}-berth");
    let endpoints: Vec<Value> = pods
        .iter()
        .map(|p| {
            let ready = is_ready(p);
            json!({"addresses": [p.status.as_ref().and_then(|s| s.pod_ip.clone())],
                   "conditions": {"ready": ready || publish_not_ready, "serving": ready, "terminating": false},
                   "nodeName": p.spec.as_ref().and_then(|s| s.node_name.clone()),
                   "targetRef": {"kind": "Pod", "namespace": ns, "name": p.name_any(), "uid": p.uid()}})
        })
        .collect();
    let slice_ports: Vec<Value> = ports
        .iter()
        .map(|sp| {
            let port = pods.first().and_then(|p| target_port(sp, p)).or(match &sp.target_port {
                Some(IntOrString::Int(i)) => Some(*i),
                None => Some(sp.port),
                _ => None,
            });
            json!({"name": sp.name.clone().unwrap_or_default(), "port": port, "protocol": sp.protocol.clone().unwrap_or_else(|| "TCP".into())})
        })
        .collect();
    let mut slice_labels = labels.clone();
    slice_labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    slice_labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let es_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let current = es_api
        .get_opt(&slice_name)
        .await
        .map_err(|e| Error::api("reading endpointslice", e))?;
    let desired = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": slice_name, "namespace": ns, "labels": slice_labels, "ownerReferences": owner},
        "addressType": "IPv4", "endpoints": endpoints, "ports": slice_ports});
    upsert(&es_api, &slice_name, desired, current).await?;
    Ok(Action::await_change())
}
