//! The API server component: builds the shared state (watch cache over the store), the
//! router, in-process clients, and serves HTTPS with client-certificate authentication.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use berth_store::Store;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticator, Identity};
use crate::cache::WatchCache;
use crate::config::ApiConfig;
use crate::pki::CertPair;
use crate::resources::Resources;
use crate::state::{ApiState, SharedState};

/// Errors of starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot load the watch cache from the store: {0}")]
    Cache(Box<crate::error::ApiError>),
    #[error("invalid TLS material: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The API server.
#[derive(Clone)]
pub struct ApiServer {
    state: SharedState,
}

impl ApiServer {
    /// Loads the cache from `store` and starts following it.
    pub async fn new(
        config: ApiConfig,
        store: Arc<dyn Store>,
        auth: Authenticator,
    ) -> Result<ApiServer, ServerError> {
        let (cache, follow) = WatchCache::start(store.clone(), Arc::new(selectable_for_prefix))
            .await
            .map_err(|e| ServerError::Cache(Box::new(e)))?;
        tokio::spawn(follow);
        let state = Arc::new(ApiState {
            store,
            cache,
            resources: Resources::new(),
            config,
            auth,
            crds: crate::crd::Crds::default(),
            openapi: crate::openapi::OpenApiCache::default(),
            metrics: Default::default(),
            node_join: Default::default(),
            kubelet: Default::default(),
        });
        {
            let cache = state.cache.clone();
            state.auth.set_uid_lookup(Box::new(move |key: &str| {
                let rc = cache.resource_for_key(key)?;
                let obj = rc.get(key)?.value();
                obj.pointer("/metadata/uid")
                    .and_then(|u| u.as_str())
                    .map(String::from)
            }));
        }
        crate::crd::refresh(&state);
        tokio::spawn(crate::crd::run(state.clone()));
        Ok(ApiServer { state })
    }

    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// Plugs in the source of `metrics.k8s.io` (and makes the group discoverable).
    pub fn set_metrics_provider(&self, provider: Arc<dyn crate::metrics::MetricsProvider>) {
        *self
            .state
            .metrics
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(provider);
        self.state.resources.set_extra(crate::metrics::resources());
    }

    /// The HTTP router (authentication is by request extension or bearer token).
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                crate::join::CACERTS_PATH,
                axum::routing::get(crate::join::cacerts),
            )
            .route(
                crate::join::JOIN_PATH,
                axum::routing::post(crate::join::join),
            )
            .fallback(crate::handler::handle)
            .with_state(self.state.clone())
    }

    /// A kube client that talks to this server in-process as `identity`.
    pub fn client(&self, identity: Identity) -> kube::Client {
        let router = self.router();
        let svc = tower::ServiceBuilder::new()
            .map_request(move |mut req: axum::http::Request<kube::client::Body>| {
                req.extensions_mut().insert(identity.clone());
                req
            })
            .service(router);
        kube::Client::new(svc, "default")
    }

    /// Serves HTTPS on `listener` until `shutdown`, then lets open requests finish for up
    /// to `grace`.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Arc<ServerConfig>,
        shutdown: CancellationToken,
        grace: Duration,
    ) {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let router = self.router();
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
                _ = shutdown.cancelled() => break,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let router = router.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let identity = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| Identity::from_certificate(c.as_ref()));
                let svc = hyper::service::service_fn(
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        if let Some(id) = &identity {
                            req.extensions_mut().insert(id.clone());
                        } else {
                            req.extensions_mut().remove::<Identity>();
                        }
                        let mut router = router.clone();
                        async move {
                            use tower::Service;
                            router.call(req.map(axum::body::Body::new)).await
                        }
                    },
                );
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
                let conn = watcher.watch(conn.into_owned());
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::info!("closing connections still open after the shutdown grace period");
        }
    }
}

/// The selectable fields of the resource a storage prefix belongs to.
fn selectable_for_prefix(prefix: &str) -> &'static [&'static str] {
    let mut parts = prefix.trim_matches('/').split('/');
    let _registry = parts.next();
    let group = parts.next().unwrap_or("");
    let plural = parts.next().unwrap_or("");
    let group = if group == "core" { "" } else { group };
    berth_api::meta::selectable_fields(group, plural)
}

/// TLS settings of the API server: its serving certificate, and client certificates signed by
/// the cluster CA accepted (but not required: bearer tokens authenticate too).
pub fn tls_config(serving: &CertPair, ca_pem: &str) -> Result<Arc<ServerConfig>, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| ServerError::Tls(format!("serving certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes())
        .map_err(|e| ServerError::Tls(format!("serving key: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let c = c.map_err(|e| ServerError::Tls(format!("CA certificate: {e}")))?;
        roots
            .add(c)
            .map_err(|e| ServerError::Tls(format!("CA certificate: {e}")))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| ServerError::Tls(format!("client verifier: {e}")))?;
    let mut cfg = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
