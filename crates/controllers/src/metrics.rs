//! Where the autoscaler reads resource usage: the `metrics.k8s.io` API through the client
//! ([`MetricsApiSource`]) or any other [`MetricsSource`] (simulated nodes feed one
//! directly, since serving `metrics.k8s.io` needs an API-server hook).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::core::{Selector, SelectorExt};

use crate::error::{Error, Result};
use crate::resources::{int_value, milli_value};

/// Usage of one pod (summed over its containers).
#[derive(Clone, Debug, PartialEq)]
pub struct PodUsage {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub milli_cpu: i64,
    pub memory: i64,
}

/// A source of pod resource usage.
pub trait MetricsSource: Send + Sync + 'static {
    /// Usage of the pods of `namespace` that `selector` selects.
    fn pod_usage<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a Selector,
    ) -> BoxFuture<'a, Result<Vec<PodUsage>>>;
}

/// Reads `metrics.k8s.io/v1beta1` PodMetrics through the API server.
pub struct MetricsApiSource {
    client: Client,
}

impl MetricsApiSource {
    pub fn shared(client: Client) -> Arc<dyn MetricsSource> {
        Arc::new(MetricsApiSource { client })
    }
}

impl MetricsSource for MetricsApiSource {
    fn pod_usage<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a Selector,
    ) -> BoxFuture<'a, Result<Vec<PodUsage>>> {
        Box::pin(async move {
            let ar = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics"),
                "pods",
            );
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
            let list = api
                .list(&ListParams::default().labels(&selector.to_string()))
                .await
                .map_err(|e| Error::api(format!("reading pod metrics in {namespace}"), e))?;
            let mut out = Vec::new();
            for item in list.items {
                let labels = item.metadata.labels.clone().unwrap_or_default();
                if !selector.matches(&labels) {
                    continue;
                }
                let mut u = PodUsage {
                    name: item.metadata.name.clone().unwrap_or_default(),
                    labels,
                    milli_cpu: 0,
                    memory: 0,
                };
                for c in item
                    .data
                    .get("containers")
                    .and_then(|c| c.as_array())
                    .into_iter()
                    .flatten()
                {
                    let q = |k: &str| {
                        c.pointer(&format!("/usage/{k}"))
                            .and_then(|v| v.as_str())
                            .map(|s| {
                                k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                                    s.to_string(),
                                )
                            })
                    };
                    if let Some(cpu) = q("cpu") {
                        u.milli_cpu += milli_value(&cpu).unwrap_or(0);
                    }
                    if let Some(mem) = q("memory") {
                        u.memory += int_value(&mem).unwrap_or(0);
                    }
                }
                out.push(u);
            }
            Ok(out)
        })
    }
}
