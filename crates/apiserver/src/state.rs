//! The shared state every request handler sees.

use std::sync::Arc;

use berth_store::Store;

use crate::cache::WatchCache;
use crate::config::ApiConfig;
use crate::resources::Resources;

pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub cache: Arc<WatchCache>,
    pub resources: Resources,
    pub config: ApiConfig,
    pub auth: crate::auth::Authenticator,
    pub crds: crate::crd::Crds,
    pub openapi: crate::openapi::OpenApiCache,
    /// Source of `metrics.k8s.io`, when one is plugged in.
    pub metrics: std::sync::RwLock<Option<std::sync::Arc<dyn crate::metrics::MetricsProvider>>>,
    /// Node joins (`/cacerts`, `/v1-berth/node-join`), when enabled.
    pub node_join: std::sync::RwLock<Option<Arc<crate::join::NodeJoin>>>,
    /// The client of node agents (streaming subresources, node proxy), when configured.
    pub kubelet: std::sync::RwLock<Option<Arc<crate::kubelet::KubeletClient>>>,
}

impl ApiState {
    pub fn metrics_provider(&self) -> Option<std::sync::Arc<dyn crate::metrics::MetricsProvider>> {
        self.metrics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub type SharedState = Arc<ApiState>;
