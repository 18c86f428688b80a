//! The Ingress reverse proxy: HTTP/1.1 and HTTP/2 (TLS with ALPN, or cleartext with prior
//! knowledge) in, HTTP/1.1 with pooled keep-alive connections out to the chosen Service
//! endpoint. HTTP/1.x clients are served by the relay in `h1`; this file holds the proxy's
//! configuration and state, and the `hyper` path HTTP/2 clients take. A request whose connection to an endpoint cannot be made is retried on the next
//! endpoint (when its body is small enough to send again). Each request is logged to the
//! access log (`berth::ingress::access`).
//! It runs on worker threads of its own (`workers`).

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
use hyper_util::rt::TokioExecutor;

use crate::error::{NetError, Result};
use crate::ingress::h1::OrDash;
use crate::ingress::h1::head::HOP_BY_HOP;
use crate::ingress::routes::RouteTable;
use crate::ingress::tls::SniResolver;

pub(super) type ProxyBody = BoxBody<Bytes, hyper::Error>;

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
    /// Worker threads; 0: one per CPU.
    pub workers: usize,
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
            workers: 0,
        }
    }
}

/// The proxy; its routes and certificates are swapped by [`IngressProxy::set_routes`] and
/// [`IngressProxy::certs`].
pub struct IngressProxy {
    config: IngressConfig,
    routes: RwLock<Arc<RouteTable>>,
    certs: SniResolver,
}

/// Upstream connections, one pool per worker thread.
pub(super) type Upstream = Client<HttpConnector, ProxyBody>;

/// Listeners bound by [`IngressProxy::bind`] (non-blocking; shared by the worker threads).
pub struct IngressListeners {
    pub http: Option<std::net::TcpListener>,
    pub https: Option<std::net::TcpListener>,
}

impl IngressListeners {
    /// The cleartext listener's address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The TLS listener's address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().and_then(|l| l.local_addr().ok())
    }
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

fn strip_hop_by_hop(h: &mut http::HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in &named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
}

impl IngressProxy {
    pub fn new(config: IngressConfig, certs: SniResolver) -> Arc<IngressProxy> {
        Arc::new(IngressProxy {
            config,
            routes: RwLock::new(Arc::new(RouteTable::default())),
            certs,
        })
    }

    /// A worker's upstream pool (its connection tasks run on the worker's runtime).
    pub(super) fn upstream(&self) -> Upstream {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(self.config.connect_timeout));
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector)
    }

    pub(super) fn workers(&self) -> usize {
        match self.config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    pub fn config(&self) -> &IngressConfig {
        &self.config
    }

    /// Replaces the routing table.
    pub fn set_routes(&self, routes: RouteTable) {
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(routes);
    }

    /// The routing table in force.
    pub(super) fn routes(&self) -> Arc<RouteTable> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn certs(&self) -> &SniResolver {
        &self.certs
    }

    /// Binds the configured listeners.
    pub fn bind(&self) -> Result<IngressListeners> {
        let bind = |a: Option<SocketAddr>, what: &'static str| match a {
            None => Ok(None),
            Some(a) => std::net::TcpListener::bind(a)
                .and_then(|l| l.set_nonblocking(true).map(|()| Some(l)))
                .map_err(|e| NetError::io(what, a.to_string(), e)),
        };
        Ok(IngressListeners {
            http: bind(self.config.http, "binding the Ingress HTTP port on")?,
            https: bind(self.config.https, "binding the Ingress HTTPS port on")?,
        })
    }

    pub(super) fn tls_acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(self.certs.clone()));
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(tls))
    }

    /// Routes and forwards one request.
    pub(super) async fn handle(
        &self,
        upstream: &Upstream,
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
        let routes = self.routes();
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
                let (r, ep) = self
                    .forward(upstream, req, &host, client, scheme, &m.backend)
                    .await;
                (r, Some(m.backend.name.clone()), ep)
            }
        };
        if self.config.access_log {
            // One preformatted line (client "METHOD host/path proto" status backend endpoint
            // time): a single formatting pass, where a field per value costs one each.
            tracing::info!(
                target: "berth::ingress::access",
                "{} \"{} {}{} {:?}\" {} {} {} {:.3}ms",
                client.ip(),
                method,
                host,
                path,
                version,
                resp.status().as_u16(),
                OrDash(backend.as_deref()),
                OrDash(endpoint),
                start.elapsed().as_secs_f64() * 1e3,
            );
        }
        resp
    }

    async fn forward(
        &self,
        upstream: &Upstream,
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
        let attempts: Vec<SocketAddr> = backend
            .order()
            .take(self.config.max_attempts.max(1))
            .collect();
        let mut head = Some(parts);
        for (i, &endpoint) in attempts.iter().enumerate() {
            // The last possible attempt takes the head; earlier ones send a copy.
            let final_attempt = i + 1 == attempts.len() || retry_body.is_none();
            let parts = match (final_attempt, &mut head) {
                (true, h) => h.take(),
                (false, Some(h)) => Some(h.clone()),
                (false, None) => None,
            };
            let Some(parts) = parts else { break };
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
            let mut out = Request::from_parts(parts, body);
            *out.uri_mut() = uri;
            match upstream.request(out).await {
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

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
