//! The metrics API's source on a cluster of node agents: each Ready node's agent is asked for
//! its usage summary (`/stats/summary`, CPU rates and working sets sampled from cgroups) over
//! the authenticated agent connection, concurrently with a short timeout; answers are reused
//! for a few seconds so `kubectl top` and the autoscaler do not multiply agent requests.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use serde::Deserialize;

use crate::metrics::{MetricsProvider, NodeUsage, PodUsage};
use crate::state::ApiState;

const CACHE_FOR: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    name: String,
    usage_nano_cores: u64,
    working_set_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pod {
    namespace: String,
    name: String,
    containers: Vec<Container>,
}

/// An agent's `/stats/summary`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    node_name: String,
    time: String,
    window_seconds: f64,
    node_usage_nano_cores: u64,
    node_working_set_bytes: u64,
    pods: Vec<Pod>,
}

/// Metrics from node agents.
pub struct KubeletMetrics {
    state: std::sync::Weak<ApiState>,
    cache: Mutex<Option<(Instant, Arc<Vec<Summary>>)>>,
}

impl KubeletMetrics {
    pub fn new(state: &Arc<ApiState>) -> KubeletMetrics {
        KubeletMetrics {
            state: Arc::downgrade(state),
            cache: Mutex::new(None),
        }
    }

    async fn summaries(&self) -> Arc<Vec<Summary>> {
        if let Some((at, s)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return s.clone();
        }
        let Some(state) = self.state.upgrade() else {
            return Arc::default();
        };
        let Some(client) = state.kubelet_client() else {
            return Arc::default();
        };
        let nodes = state.cache.resource("/registry/core/nodes/");
        let (all, _, _) = nodes.list("/registry/core/nodes/", None, 0, |_| true);
        let ready: Vec<String> = all
            .iter()
            .filter(|n| {
                n.value()
                    .pointer("/status/conditions")
                    .and_then(|c| c.as_array())
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            })
            .map(|n| n.name.clone())
            .collect();
        let fetches = ready.into_iter().map(|node| {
            let (state, client) = (state.clone(), client.clone());
            async move {
                let addr = crate::kubelet::node_endpoint(&state, &node).ok()?;
                let req = http::Request::get("/stats/summary")
                    .header(http::header::HOST, addr.to_string())
                    .body(Body::empty())
                    .ok()?;
                let resp = tokio::time::timeout(TIMEOUT, client.send(addr, req))
                    .await
                    .ok()?
                    .ok()?;
                if !resp.status().is_success() {
                    return None;
                }
                let body = tokio::time::timeout(
                    TIMEOUT,
                    axum::body::to_bytes(Body::new(resp.into_body()), 16 << 20),
                )
                .await
                .ok()?
                .ok()?;
                match serde_json::from_slice::<Summary>(&body) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::debug!(%node, error = %e, "unreadable usage summary");
                        None
                    }
                }
            }
        });
        let got: Vec<Summary> = futures::future::join_all(fetches)
            .await
            .into_iter()
            .flatten()
            .filter(|s| !s.time.is_empty())
            .collect();
        let got = Arc::new(got);
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), got.clone()));
        got
    }
}

#[async_trait]
impl MetricsProvider for KubeletMetrics {
    async fn nodes(&self) -> Vec<NodeUsage> {
        self.summaries()
            .await
            .iter()
            .map(|s| NodeUsage {
                name: s.node_name.clone(),
                timestamp: s.time.clone(),
                window_seconds: s.window_seconds,
                cpu_nanocores: s.node_usage_nano_cores,
                memory_bytes: s.node_working_set_bytes,
            })
            .collect()
    }

    async fn pods(&self, namespace: Option<&str>) -> Vec<PodUsage> {
        self.summaries()
            .await
            .iter()
            .flat_map(|s| {
                s.pods
                    .iter()
                    .filter(|p| namespace.is_none_or(|n| n == p.namespace))
                    .map(|p| PodUsage {
                        namespace: p.namespace.clone(),
                        name: p.name.clone(),
                        timestamp: s.time.clone(),
                        window_seconds: s.window_seconds,
                        containers: p
                            .containers
                            .iter()
                            .map(|c| (c.name.clone(), c.usage_nano_cores, c.working_set_bytes))
                            .collect(),
                    })
            })
            .collect()
    }
}
