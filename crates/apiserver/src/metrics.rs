//! The resource metrics API (`metrics.k8s.io/v1beta1`: NodeMetrics and PodMetrics), which
//! `kubectl top` and the HorizontalPodAutoscaler controller read. The numbers come from a
//! [`MetricsProvider`] the binary plugs in (node agents' cgroup statistics, or simulated
//! nodes); the API server adds what it knows (pod labels for `labelSelector`) and serves the
//! group only while a provider is set, as a cluster without metrics-server does.

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::StatusCode;
use axum::response::Response;
use berth_api::{LabelSelector, ResourceInfo, Scope};
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::handler::json_response;
use crate::request::{ResourceRequest, Verb};
use crate::state::ApiState;

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";

/// Usage of one node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeUsage {
    pub name: String,
    /// RFC 3339 time of the sample.
    pub timestamp: String,
    /// Sampling window in seconds.
    pub window_seconds: f64,
    /// CPU in nanocores.
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
}

/// Usage of one pod's containers.
#[derive(Clone, Debug, PartialEq)]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    pub timestamp: String,
    pub window_seconds: f64,
    /// (container name, CPU nanocores, memory bytes)
    pub containers: Vec<(String, u64, u64)>,
}

/// Where metrics come from.
#[async_trait]
pub trait MetricsProvider: Send + Sync + 'static {
    async fn nodes(&self) -> Vec<NodeUsage>;
    /// Pods of a namespace, or of every namespace.
    async fn pods(&self, namespace: Option<&str>) -> Vec<PodUsage>;
}

/// The resources of the group, for discovery.
pub fn resources() -> Vec<ResourceInfo> {
    let mk = |kind: &str, plural: &str, scope| ResourceInfo {
        group: GROUP.into(),
        versions: vec![VERSION.into()],
        storage_version: VERSION.into(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        plural: plural.into(),
        singular: String::new(),
        scope,
        short_names: vec![],
        categories: vec![],
        subresources: vec![],
        verbs: vec!["get".into(), "list".into()],
        custom: false,
    };
    vec![
        mk("NodeMetrics", "nodes", Scope::Cluster),
        mk("PodMetrics", "pods", Scope::Namespaced),
    ]
}

fn quantity_cpu(nanocores: u64) -> String {
    if nanocores.is_multiple_of(1_000_000) {
        format!("{}m", nanocores / 1_000_000)
    } else {
        format!("{nanocores}n")
    }
}

fn quantity_memory(bytes: u64) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{}Ki", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

fn window(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}s", s as u64)
    } else {
        format!("{s}s")
    }
}

fn node_json(n: &NodeUsage, labels: Option<Value>) -> Value {
    let mut meta = json!({"name": n.name, "creationTimestamp": n.timestamp});
    if let Some(l) = labels {
        meta["labels"] = l;
    }
    json!({"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": meta,
           "timestamp": n.timestamp, "window": window(n.window_seconds),
           "usage": {"cpu": quantity_cpu(n.cpu_nanocores), "memory": quantity_memory(n.memory_bytes)}})
}

fn pod_json(p: &PodUsage, labels: Option<Value>) -> Value {
    let mut meta =
        json!({"name": p.name, "namespace": p.namespace, "creationTimestamp": p.timestamp});
    if let Some(l) = labels {
        meta["labels"] = l;
    }
    let containers: Vec<Value> = p
        .containers
        .iter()
        .map(|(name, cpu, mem)| json!({"name": name, "usage": {"cpu": quantity_cpu(*cpu), "memory": quantity_memory(*mem)}}))
        .collect();
    json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": meta,
           "timestamp": p.timestamp, "window": window(p.window_seconds), "containers": containers})
}

fn labels_of(st: &ApiState, key: &str, prefix: &str) -> Option<Value> {
    st.cache
        .resource(prefix)
        .get(key)
        .and_then(|o| o.labels.clone())
        .map(Value::Object)
}

/// Serves `/apis/metrics.k8s.io/v1beta1/...`.
pub async fn serve(
    st: &ApiState,
    provider: &Arc<dyn MetricsProvider>,
    rr: &ResourceRequest,
    label_selector: Option<&str>,
) -> Result<Response> {
    if !matches!(rr.verb, Verb::Get | Verb::List) || rr.subresource.is_some() {
        return Err(ApiError::MethodNotAllowed);
    }
    let selector = match label_selector {
        Some(s) => LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
        None => LabelSelector::everything(),
    };
    let matches = |v: &Value| {
        selector.matches_json(v.pointer("/metadata/labels").and_then(|l| l.as_object()))
    };
    match rr.resource.as_str() {
        "nodes" => {
            let items: Vec<Value> = provider
                .nodes()
                .await
                .iter()
                .filter(|n| rr.name.as_deref().is_none_or(|name| name == n.name))
                .map(|n| {
                    node_json(
                        n,
                        labels_of(
                            st,
                            &format!("/registry/core/nodes/{}", n.name),
                            "/registry/core/nodes/",
                        ),
                    )
                })
                .filter(|v| matches(v))
                .collect();
            respond(rr, items, "NodeMetricsList", "nodes")
        }
        "pods" => {
            let items: Vec<Value> = provider
                .pods(rr.namespace.as_deref())
                .await
                .iter()
                .filter(|p| rr.name.as_deref().is_none_or(|name| name == p.name))
                .map(|p| {
                    let key = format!("/registry/core/pods/{}/{}", p.namespace, p.name);
                    pod_json(p, labels_of(st, &key, "/registry/core/pods/"))
                })
                .filter(|v| matches(v))
                .collect();
            respond(rr, items, "PodMetricsList", "pods")
        }
        _ => Err(ApiError::NotFoundPath),
    }
}

fn respond(
    rr: &ResourceRequest,
    mut items: Vec<Value>,
    list_kind: &str,
    plural: &str,
) -> Result<Response> {
    if let Some(name) = &rr.name {
        return match items.pop() {
            Some(one) => Ok(json_response(StatusCode::OK, &one)),
            None => Err(ApiError::NotFound {
                qualified_resource: format!("{plural}.{GROUP}"),
                group: GROUP.into(),
                kind_plural: plural.into(),
                name: name.clone(),
            }),
        };
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": list_kind, "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_like_metrics_server() {
        assert_eq!(quantity_cpu(250_000_000), "250m");
        assert_eq!(quantity_cpu(1_234_567), "1234567n");
        assert_eq!(quantity_memory(10 * 1024 * 1024), "10240Ki");
        assert_eq!(window(10.0), "10s");
    }
}
