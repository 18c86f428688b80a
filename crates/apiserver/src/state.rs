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
}

pub type SharedState = Arc<ApiState>;
