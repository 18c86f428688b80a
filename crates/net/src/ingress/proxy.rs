//! The Ingress reverse proxy: HTTP/1.1 and HTTP/2 (TLS with ALPN, or cleartext with prior
//! knowledge) in, HTTP/1.1 with pooled keep-alive connections out to the chosen Service
//! endpoint. A request whose connection to an endpoint cannot be made is retried on the next
//! endpoint (when its body is small enough to send again). Each request is logged to the
//! access log (`berth::ingress::access`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{NetError, Result};
use crate::ingress::routes::RouteTable;
use crate::ingress::tls::SniResolver;

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Bodies up to this size are buffered so the request can be retried on another endpoint.
const RETRY_BODY_LIMIT: u64 = 64 * 1024;

/// How the proxy listens and behaves.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    /// Cleartext listener (`0.0.0.0:80`); `None`: none.
    pub http: Option<SocketAddr>,
    /// TLS listener (`0.0.0.0:443`); `None`: none.
    pub https: Option<SocketAddr>,
    /// The IngressClass served (`berth`).
    pub class: String,
    /// Log every request.
    pub access_log: bool,
    /// Connecting to an endpoint gives up after this.
    pub connect_timeout: Duration,
    /// Endpoints tried per request.
    pub max_attempts: usize,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            http: Some(SocketAddr::from(([0, 0, 0, 0], 80))),
            https: Some(SocketAddr::from(([0, 0, 0, 0], 443))),
            class: "berth".into(),
            access_log: true,
            connect_timeout: Duration::from_secs(2),
            max_attempts: 3,
        }
    }
}

/// The proxy; its routes and certificates are swapped by [`IngressProxy::update`].
pub struct IngressProxy {
    config: IngressConfig,
    routes: RwLock<Arc<RouteTable>>,
    certs: SniResolver,
    client: Client<HttpConnector, ProxyBody>,
}

/// Listeners bound by [`IngressProxy::bind`].
pub struct IngressListeners {
    pub http: Option<TcpListener>,
    pub https: Option<TcpListener>,
}

fn full(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|n: Infallible| match n {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

fn strip_hop_by_hop(h: &mut http::HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in HOP_BY_HOP.iter().chain(named.iter()) {
        h.remove(n);
    }
    h.remove(header::UPGRADE);
}

impl IngressProxy {
    pub fn new(config: IngressConfig, certs: SniResolver) -> Arc<IngressProxy> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Arc::new(IngressProxy {
            config,
            routes: RwLock::new(Arc::new(RouteTable::default())),
            certs,
            client,
        })
    }

    pub fn config(&self) -> &IngressConfig {
        &self.config
    }

    /// Replaces the routing table.
    pub fn set_routes(&self, routes: RouteTable) {
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(routes);
    }

    pub fn certs(&self) -> &SniResolver {
        &self.certs
    }

    /// Binds the configured listeners.
    pub async fn bind(&self) -> Result<IngressListeners> {
        let bind = |a: Option<SocketAddr>, what: &'static str| async move {
            match a {
                None => Ok(None),
                Some(a) => TcpListener::bind(a)
                    .await
                    .map(Some)
                    .map_err(|e| NetError::io(what, a.to_string(), e)),
            }
        };
        Ok(IngressListeners {
            http: bind(self.config.http, "binding the Ingress HTTP port on").await?,
            https: bind(self.config.https, "binding the Ingress HTTPS port on").await?,
        })
    }

    /// Serves on the listeners until `shutdown`.
    pub async fn serve(self: Arc<Self>, listeners: IngressListeners, shutdown: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(l) = listeners.http {
            tasks.spawn(self.clone().accept_loop(l, None, shutdown.clone()));
        }
        if let Some(l) = listeners.https {
            let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(self.certs.clone()));
            tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
            tasks.spawn(
                self.clone()
                    .accept_loop(l, Some(acceptor), shutdown.clone()),
            );
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: CancellationToken,
    ) {
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "ingress accept");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let me = self.clone();
            let tls = tls.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let scheme = if tls.is_some() { "https" } else { "http" };
                let svc = hyper::service::service_fn(move |req| {
                    let me = me.clone();
                    async move { Ok::<_, Infallible>(me.handle(req, peer, scheme).await) }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                let served = match tls {
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(stream), svc);
                        tokio::select! { r = conn => r, _ = stop.cancelled() => Ok(()) }
                    }
                    Some(acceptor) => {
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls_stream)) => {
                                let conn = builder.serve_connection(TokioIo::new(tls_stream), svc);
                                tokio::select! { r = conn => r, _ = stop.cancelled() => Ok(()) }
                            }
                            _ => Ok(()),
                        }
                    }
                };
                if let Err(e) = served {
                    tracing::trace!(error = %e, "ingress connection");
                }
            });
        }
    }

    /// Routes and forwards one request.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
        scheme: &'static str,
    ) -> Response<ProxyBody> {
        let start = Instant::now();
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let version = req.version();
        let routes = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (resp, backend, endpoint) = match routes.route(&host, &path) {
            None => (
                full(StatusCode::NOT_FOUND, "404 page not found\n"),
                None,
                None,
            ),
            Some(m) if m.backend.endpoints.is_empty() => (
                full(StatusCode::SERVICE_UNAVAILABLE, "no ready endpoint\n"),
                Some(m.backend.name.clone()),
                None,
            ),
            Some(m) => {
                let (r, ep) = self.forward(req, &host, client, scheme, &m.backend).await;
                (r, Some(m.backend.name.clone()), ep)
            }
        };
        if self.config.access_log {
            tracing::info!(
                target: "berth::ingress::access",
                client = %client.ip(),
                method = %method,
                host = %host,
                path = %path,
                proto = ?version,
                status = resp.status().as_u16(),
                backend = backend.as_deref().unwrap_or("-"),
                endpoint = endpoint.map(|e| e.to_string()).as_deref().unwrap_or("-"),
                ms = format_args!("{:.3}", start.elapsed().as_secs_f64() * 1e3),
            );
        }
        resp
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        host: &str,
        client: SocketAddr,
        scheme: &'static str,
        backend: &crate::ingress::routes::Backend,
    ) -> (Response<ProxyBody>, Option<SocketAddr>) {
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if !parts.headers.contains_key(header::HOST)
            && let Ok(h) = HeaderValue::from_str(host)
        {
            parts.headers.insert(header::HOST, h);
        }
        let xff = match parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) => format!("{prev}, {}", client.ip()),
            None => client.ip().to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            parts.headers.insert("x-forwarded-for", v);
        }
        parts
            .headers
            .insert("x-forwarded-proto", HeaderValue::from_static(scheme));
        if let Ok(v) = HeaderValue::from_str(host) {
            parts.headers.insert("x-forwarded-host", v);
        }
        parts.version = http::Version::HTTP_11;
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        // A body we can send again, or the stream itself (one attempt).
        let hint = body.size_hint();
        let (retry_body, mut stream_body): (Option<Bytes>, Option<Incoming>) =
            if body.is_end_stream() {
                (Some(Bytes::new()), None)
            } else if hint.upper().is_some_and(|u| u <= RETRY_BODY_LIMIT) {
                match body.collect().await {
                    Ok(b) => (Some(b.to_bytes()), None),
                    Err(_) => {
                        return (
                            full(StatusCode::BAD_REQUEST, "request body could not be read\n"),
                            None,
                        );
                    }
                }
            } else {
                (None, Some(body))
            };
        let mut last = None;
        for endpoint in backend.order().take(self.config.max_attempts.max(1)) {
            let Ok(uri) = Uri::builder()
                .scheme("http")
                .authority(endpoint.to_string())
                .path_and_query(path_and_query.as_str())
                .build()
            else {
                return (full(StatusCode::BAD_REQUEST, "bad request target\n"), None);
            };
            let body: ProxyBody = match (&retry_body, stream_body.take()) {
                (Some(b), _) => Full::new(b.clone())
                    .map_err(|n: Infallible| match n {})
                    .boxed(),
                (None, Some(s)) => s.boxed(),
                (None, None) => break,
            };
            let mut out = Request::from_parts(parts.clone(), body);
            *out.uri_mut() = uri;
            match self.client.request(out).await {
                Ok(resp) => {
                    let (mut rp, rb) = resp.into_parts();
                    strip_hop_by_hop(&mut rp.headers);
                    return (Response::from_parts(rp, rb.boxed()), Some(endpoint));
                }
                Err(e) if e.is_connect() && retry_body.is_some() => {
                    tracing::debug!(%endpoint, error = %e, "ingress: endpoint refused, trying the next");
                    last = Some(endpoint);
                    continue;
                }
                Err(e) => {
                    tracing::debug!(%endpoint, error = %e, "ingress: backend request failed");
                    return (
                        full(StatusCode::BAD_GATEWAY, "bad gateway\n"),
                        Some(endpoint),
                    );
                }
            }
        }
        (
            full(StatusCode::BAD_GATEWAY, "no endpoint could be reached\n"),
            last,
        )
    }
}
