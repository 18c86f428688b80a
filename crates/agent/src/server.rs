//! The agent's HTTPS endpoint (kubelet's port): the API server relays `kubectl logs`, `exec`,
//! `attach`, `cp` and `port-forward` here, and reads `/stats/summary` for the metrics API;
//! `/metrics` is Prometheus text. TLS with the serving certificate from the join; clients
//! must present a certificate of the cluster CA in group `system:masters` (the API server's),
//! except for `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use berth_cri::ContainerState;
use bytes::Bytes;
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Pod;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::context::NodeContext;
use crate::error::{AgentError, Result};
use crate::logs::LogOptions;
use crate::pods::PodIndex;
use crate::remotecommand::{self, Options};
use crate::stats::Stats;
use crate::status::PodRuntime;

/// Who may use the endpoint: the API server (group `system:masters`).
const ALLOWED_GROUP: &str = "system:masters";

#[derive(Clone)]
pub struct ServerState {
    pub ctx: Arc<NodeContext>,
    pub index: PodIndex,
    pub stats: Arc<Stats>,
}

#[derive(Clone, Debug)]
struct Peer {
    user: String,
    groups: Vec<String>,
}

fn peer_of(der: &[u8]) -> Option<Peer> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let user = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = cert
        .subject()
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    Some(Peer { user, groups })
}

/// A `metav1.Status` error response, as kubectl prints them.
fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    let message = message.into();
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code.as_u16()});
    let mut r = (code, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn bad_request(message: impl Into<String>) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn bad(message: impl Into<String>) -> Box<Response> {
    Box::new(bad_request(message))
}

fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_deref().unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl ServerState {
    fn pod(&self, ns: &str, name: &str) -> std::result::Result<Arc<Pod>, Box<Response>> {
        self.index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(ns)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .cloned()
            .ok_or_else(|| {
                Box::new(status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!(
                        "pod {ns}/{name} is not running on node {}",
                        self.ctx.config.node_name
                    ),
                ))
            })
    }

    async fn runtime_view(&self, pod: &Pod) -> std::result::Result<PodRuntime, Box<Response>> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.ctx
            .runtime
            .pod_snapshot(&uid)
            .await
            .map(PodRuntime::new)
            .map_err(|e| {
                Box::new(status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    e.to_string(),
                ))
            })
    }

    /// The running instance of a container, or a kubectl-style error.
    async fn running(
        &self,
        ns: &str,
        name: &str,
        container: &str,
    ) -> std::result::Result<(Arc<Pod>, berth_cri::ContainerStatus), Box<Response>> {
        let pod = self.pod(ns, name)?;
        let rt = self.runtime_view(&pod).await?;
        match rt.history(container).first() {
            Some(c) if c.state == ContainerState::Running => Ok((pod.clone(), (*c).clone())),
            Some(_) => Err(bad(format!(
                "container {container} is not running in pod {name}"
            ))),
            None => Err(bad(format!(
                "container {container} not found in pod {name}"
            ))),
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn pods(State(s): State<ServerState>) -> Response {
    let items: Vec<Pod> = s
        .index
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .map(|p| (**p).clone())
        .collect();
    axum::Json(json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}))
        .into_response()
}

async fn summary(State(s): State<ServerState>) -> Response {
    axum::Json(s.stats.summary()).into_response()
}

async fn metrics(State(s): State<ServerState>) -> Response {
    let n = s.index.read().unwrap_or_else(|p| p.into_inner()).len();
    let mut r = s.stats.prometheus(n).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

fn parse_log_options(
    q: &[(String, String)],
) -> std::result::Result<(LogOptions, bool), Box<Response>> {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let flag = |k: &str| get(k).is_some_and(|v| matches!(v, "true" | "1" | ""));
    let num = |k: &str| -> std::result::Result<Option<i64>, Box<Response>> {
        match get(k) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| bad(format!("invalid {k} {v:?}: must be an integer"))),
        }
    };
    let tail = num("tailLines")?;
    let since_s = num("sinceSeconds")?;
    let limit = num("limitBytes")?;
    if tail.is_some_and(|t| t < 0) {
        return Err(bad("tailLines must be greater than or equal to 0"));
    }
    if since_s.is_some_and(|t| t < 1) {
        return Err(bad("sinceSeconds must be greater than 0"));
    }
    if limit.is_some_and(|t| t < 1) {
        return Err(bad("limitBytes must be greater than 0"));
    }
    let since_t = match get("sinceTime") {
        Some(t) => Some(
            t.parse::<jiff::Timestamp>()
                .map_err(|e| bad(format!("invalid sinceTime {t:?}: {e}")))?,
        ),
        None => None,
    };
    if since_s.is_some() && since_t.is_some() {
        return Err(bad(
            "at most one of sinceTime or sinceSeconds may be specified",
        ));
    }
    let since = since_t
        .or_else(|| since_s.map(|s| jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s)));
    Ok((
        LogOptions {
            follow: flag("follow"),
            timestamps: flag("timestamps"),
            tail_lines: tail.map(|t| t as u64),
            since,
            limit_bytes: limit.map(|l| l as u64),
        },
        flag("previous"),
    ))
}

async fn container_logs(
    State(s): State<ServerState>,
    Path((ns, name, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_pairs(&q);
    let (mut opts, previous) = match parse_log_options(&q) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let pod = match s.pod(&ns, &name) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let rt = match s.runtime_view(&pod).await {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let instances = rt.all_instances(&container);
    let chosen = if previous {
        match instances.get(1) {
            Some(c) => (*c).clone(),
            None => {
                return bad_request(format!(
                    "previous terminated container {container:?} in pod {name:?} not found"
                ));
            }
        }
    } else {
        match instances.first() {
            Some(c) => (*c).clone(),
            None => {
                let waiting = pod
                    .status
                    .as_ref()
                    .and_then(|st| {
                        st.container_statuses
                            .iter()
                            .chain(st.init_container_statuses.iter())
                            .flatten()
                            .find(|c| c.name == container)
                    })
                    .and_then(|c| c.state.as_ref())
                    .and_then(|st| st.waiting.as_ref())
                    .and_then(|w| w.reason.clone())
                    .unwrap_or_else(|| "ContainerCreating".into());
                return bad_request(format!(
                    "container {container:?} in pod {name:?} is waiting to start: {waiting}"
                ));
            }
        }
    };
    if previous || chosen.state != ContainerState::Running {
        opts.follow = false;
    }
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let runtime = s.ctx.runtime.clone();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let cid = chosen.id.clone();
    tokio::spawn(crate::logs::stream(
        chosen.log_path.clone(),
        opts,
        tx,
        move || {
            let (runtime, uid, cid) = (runtime.clone(), uid.clone(), cid.clone());
            async move {
                runtime
                    .pod_snapshot(&uid)
                    .await
                    .map(|snap| {
                        snap.containers
                            .iter()
                            .any(|c| c.id == cid && c.state == ContainerState::Running)
                    })
                    .unwrap_or(false)
            }
        },
    ));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

fn is_websocket(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn is_spdy(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"))
}

/// Upgrades to plain SPDY with `protocol`; the session's incoming bytes and outgoing frames.
fn spdy_upgrade(
    mut req: Request,
    protocol: &str,
) -> (Response, mpsc::Receiver<crate::spdy::Stream>) {
    let (acc_tx, acc_rx) = mpsc::channel(16);
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        let io = TokioIo::new(up);
        let (mut rd, mut wr) = tokio::io::split(io);
        let (in_tx, in_rx) = mpsc::channel::<Bytes>(16);
        let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(64);
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = rd.read(&mut buf).await {
                if n == 0 || in_tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    break;
                }
            }
        });
        let writer = tokio::spawn(async move {
            while let Some(f) = out_rx.recv().await {
                if wr.write_all(&f).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        if let Err(e) = crate::spdy::serve(in_rx, out_tx, acc_tx).await {
            tracing::debug!(error = %e, "SPDY session ended");
        }
        reader.abort();
        let _ = writer.await;
    });
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    if let Ok(v) = HeaderValue::from_str(protocol) {
        h.insert("X-Stream-Protocol-Version", v);
    }
    (r, acc_rx)
}

/// A SPDY session tunnelled in WebSocket binary messages.
fn spdy_over_websocket(ws: axum::extract::ws::WebSocket) -> mpsc::Receiver<crate::spdy::Stream> {
    use axum::extract::ws::Message;
    use futures::SinkExt;
    let (acc_tx, acc_rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        let (in_tx, in_rx) = mpsc::channel::<Bytes>(16);
        let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(64);
        let reader = tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                match m {
                    Message::Binary(b) if in_tx.send(b.clone()).await.is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        });
        let writer = tokio::spawn(async move {
            while let Some(f) = out_rx.recv().await {
                if sink.send(Message::Binary(f)).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        if let Err(e) = crate::spdy::serve(in_rx, out_tx, acc_tx).await {
            tracing::debug!(error = %e, "SPDY session ended");
        }
        reader.abort();
        let _ = writer.await;
    });
    acc_rx
}

async fn exec(
    State(s): State<ServerState>,
    Path((ns, name, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    let opts = Options::from_query(&query_pairs(&q));
    if opts.command.is_empty() {
        return bad_request("you must specify at least one command for the container");
    }
    if !opts.stdin && !opts.stdout && !opts.stderr {
        return bad_request("you must specify at least one of stdin, stdout, stderr");
    }
    let (_, c) = match s.running(&ns, &name, &container).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let runtime = s.ctx.runtime.clone();
    if is_websocket(&req) {
        let (mut parts, _) = req.into_parts();
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws.protocols([remotecommand::V5, remotecommand::V4]),
            Err(e) => return e.into_response(),
        };
        let v5 = ws
            .selected_protocol()
            .is_some_and(|p| p == remotecommand::V5);
        return ws.on_upgrade(move |socket| async move {
            let (input, out, writer) = remotecommand::over_websocket(socket, v5, &opts).await;
            remotecommand::run_exec(runtime, c.id, opts, input, out).await;
            let _ = writer.await;
        });
    }
    if is_spdy(&req) {
        let (resp, accepted) = spdy_upgrade(req, remotecommand::V4);
        tokio::spawn(async move {
            if let Some((input, out, writer)) = remotecommand::over_spdy(accepted, &opts).await {
                remotecommand::run_exec(runtime, c.id, opts, input, out).await;
                let _ = writer.await;
            }
        });
        return resp;
    }
    bad_request("exec needs a WebSocket (v5.channel.k8s.io) or SPDY/3.1 upgrade")
}

async fn attach(
    State(s): State<ServerState>,
    Path((ns, name, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    let opts = Options::from_query(&query_pairs(&q));
    if opts.stdin {
        return bad_request(format!(
            "attaching to the stdin of container {container} is not supported: berth containers' stdin is not kept open; attach without -i (output only) or use exec"
        ));
    }
    let (_, c) = match s.running(&ns, &name, &container).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let log = c.log_path.clone();
    let (runtime, uid_cid) = (s.ctx.runtime.clone(), (c.sandbox_id.clone(), c.id.clone()));
    let pump = move |out: mpsc::Sender<remotecommand::Out>| async move {
        // Attach shows what the container writes from now on (its log, followed).
        let (tx, mut rx) = mpsc::channel::<Bytes>(16);
        let offset_opts = LogOptions {
            follow: true,
            tail_lines: Some(0),
            ..Default::default()
        };
        let cid = uid_cid.1.clone();
        let rt2 = runtime.clone();
        let follower = tokio::spawn(crate::logs::stream(log, offset_opts, tx, move || {
            let (rt, cid) = (rt2.clone(), cid.clone());
            async move {
                rt.snapshot()
                    .await
                    .map(|s| {
                        s.containers
                            .iter()
                            .any(|c| c.id == cid && c.state == ContainerState::Running)
                    })
                    .unwrap_or(false)
            }
        }));
        while let Some(b) = rx.recv().await {
            if out.send(remotecommand::Out::Stdout(b)).await.is_err() {
                follower.abort();
                return;
            }
        }
        let _ = out
            .send(remotecommand::Out::Status(remotecommand::status_success()))
            .await;
    };
    if is_websocket(&req) {
        let (mut parts, _) = req.into_parts();
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws.protocols([remotecommand::V5, remotecommand::V4]),
            Err(e) => return e.into_response(),
        };
        let v5 = ws
            .selected_protocol()
            .is_some_and(|p| p == remotecommand::V5);
        return ws.on_upgrade(move |socket| async move {
            let (_input, out, writer) = remotecommand::over_websocket(socket, v5, &opts).await;
            pump(out).await;
            let _ = writer.await;
        });
    }
    if is_spdy(&req) {
        let (resp, accepted) = spdy_upgrade(req, remotecommand::V4);
        tokio::spawn(async move {
            if let Some((_input, out, writer)) = remotecommand::over_spdy(accepted, &opts).await {
                pump(out).await;
                let _ = writer.await;
            }
        });
        return resp;
    }
    bad_request("attach needs a WebSocket (v5.channel.k8s.io) or SPDY/3.1 upgrade")
}

async fn port_forward(
    State(s): State<ServerState>,
    Path((ns, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let pod = match s.pod(&ns, &name) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let rt = match s.runtime_view(&pod).await {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let Some(sandbox) = rt.ready_sandbox().map(|s| s.id.clone()) else {
        return bad_request(format!("pod {name} has no running sandbox"));
    };
    let runtime = s.ctx.runtime.clone();
    let tunneled = format!("SPDY/3.1+{}", crate::portforward::PROTOCOL);
    if is_websocket(&req) {
        let (mut parts, _) = req.into_parts();
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws.protocols([tunneled]),
            Err(e) => return e.into_response(),
        };
        if ws.selected_protocol().is_none() {
            return bad_request(
                "port-forward over WebSocket needs the SPDY/3.1+portforward.k8s.io protocol",
            );
        }
        return ws.on_upgrade(move |socket| async move {
            let accepted = spdy_over_websocket(socket);
            crate::portforward::serve(runtime, sandbox, name, accepted).await;
        });
    }
    if is_spdy(&req) {
        let (resp, accepted) = spdy_upgrade(req, crate::portforward::PROTOCOL);
        tokio::spawn(crate::portforward::serve(runtime, sandbox, name, accepted));
        return resp;
    }
    bad_request("port-forward needs a SPDY/3.1 or WebSocket upgrade")
}

pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/pods", get(pods))
        .route("/stats/summary", get(summary))
        .route("/metrics", get(metrics))
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/exec/{ns}/{pod}/{container}", any(exec))
        .route("/attach/{ns}/{pod}/{container}", any(attach))
        .route("/portForward/{ns}/{pod}", any(port_forward))
        .with_state(state)
}

/// TLS settings: the node's serving certificate; client certificates of the cluster CA.
pub fn tls_config(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    let bad = |m: String| AgentError::Tls { message: m };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(format!("serving certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| bad(format!("serving key: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| bad(format!("CA: {e}")))?)
            .map_err(|e| bad(format!("CA: {e}")))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| bad(format!("client verifier: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| bad(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Serves HTTPS on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer_addr): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "agent endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    _ => return,
                };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| peer_of(c.as_ref()));
            let allowed = peer
                .as_ref()
                .is_some_and(|p| p.groups.iter().any(|g| g == ALLOWED_GROUP));
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut router = router.clone();
                    let peer = peer.clone();
                    async move {
                        if !allowed && req.uri().path() != "/healthz" {
                            let who = peer.map(|p| p.user).unwrap_or_else(|| "anonymous".into());
                            return Ok::<_, std::convert::Infallible>(status(
                                StatusCode::FORBIDDEN,
                                "Forbidden",
                                format!("{who} may not use the node agent's endpoint"),
                            ));
                        }
                        use tower::Service;
                        router.call(req.map(Body::new)).await
                    }
                });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
            if let Err(e) = conn.await {
                tracing::debug!(peer = %peer_addr, error = %e, "agent endpoint connection ended");
            }
        });
    }
}
