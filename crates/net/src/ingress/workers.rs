//! The Ingress proxy's worker threads.
//!
//! One worker per CPU by default, each a single-threaded tokio runtime with its own upstream
//! connection pool, accepting from the same listening sockets: a request, its downstream
//! connection, its pooled upstream connection and its access-log line stay on one thread, as
//! in an event-loop proxy, instead of crossing the threads of a shared runtime (which cost a
//! third of the throughput in `bench/network`).
//!
//! Every listener wakes every worker, and the one that accepts keeps the connection unless
//! another worker serves fewer; then the socket is handed over once, before its first byte is
//! read. Long-lived keep-alive connections (what load balancers and benchmarks open) so end
//! up spread evenly instead of on whichever worker woke first.
//!
//! A connection's first bytes (or its TLS ALPN) choose its server: HTTP/2 goes to `hyper`,
//! HTTP/1.x to the relay in `h1`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::h1::{self, Pool};
use super::prefixed::Prefixed;
use super::proxy::{IngressListeners, IngressProxy, Upstream};

/// Connections each worker serves, to pick the least busy one.
struct Load(Vec<AtomicUsize>);

/// A worker's share of a connection; released when the connection ends.
struct Counted {
    load: Arc<Load>,
    worker: usize,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.load.0[self.worker].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Load {
    /// Counts a new connection for the least busy worker (`me` when it is among them).
    fn assign(self: &Arc<Self>, me: usize) -> Counted {
        let mut best = me;
        let mut least = self.0[me].load(Ordering::Relaxed);
        for (i, n) in self.0.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n < least {
                (best, least) = (i, n);
            }
        }
        self.0[best].fetch_add(1, Ordering::Relaxed);
        Counted {
            load: self.clone(),
            worker: best,
        }
    }
}

/// An accepted connection on its way to the worker that serves it.
struct Handoff {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    tls: bool,
    counted: Counted,
}

/// What every worker shares.
struct Shared {
    proxy: Arc<IngressProxy>,
    load: Arc<Load>,
    inboxes: Vec<mpsc::UnboundedSender<Handoff>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
}

impl IngressProxy {
    /// Serves on the listeners until `shutdown`: starts the worker threads and returns when
    /// they have all stopped (their open connections are closed with them).
    pub async fn serve(self: Arc<Self>, listeners: IngressListeners, shutdown: CancellationToken) {
        let n = self.workers();
        let mut clones = Vec::with_capacity(n);
        for i in 0..n {
            let clone = |l: &Option<std::net::TcpListener>| match l {
                None => Ok(None),
                Some(l) => l.try_clone().map(Some),
            };
            match (clone(&listeners.http), clone(&listeners.https)) {
                (Ok(h), Ok(s)) => clones.push((h, s)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, worker = i, "ingress: sharing the listeners");
                    break;
                }
            }
        }
        let (inboxes, receivers): (Vec<_>, Vec<_>) =
            clones.iter().map(|_| mpsc::unbounded_channel()).unzip();
        let shared = Arc::new(Shared {
            tls: listeners.https.as_ref().map(|_| self.tls_acceptor()),
            proxy: self,
            load: Arc::new(Load(clones.iter().map(|_| AtomicUsize::new(0)).collect())),
            inboxes,
            shutdown,
        });
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        for (i, ((http, https), inbox)) in clones.into_iter().zip(receivers).enumerate() {
            let shared = shared.clone();
            let done = done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ingress-{i}"))
                .spawn(move || {
                    let _done = done;
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(worker(shared, i, http, https, inbox)),
                        Err(e) => tracing::warn!(error = %e, "ingress: worker runtime"),
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, worker = i, "ingress: starting a worker thread");
            }
        }
        drop(done_tx);
        // Every worker holds a sender; `None` once the last one has stopped.
        let _ = done_rx.recv().await;
    }
}

async fn accept(
    l: &Option<tokio::net::TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// One worker: accepts from the listeners, takes connections handed to it, serves them.
async fn worker(
    shared: Arc<Shared>,
    me: usize,
    http: Option<std::net::TcpListener>,
    https: Option<std::net::TcpListener>,
    mut inbox: mpsc::UnboundedReceiver<Handoff>,
) {
    let upstream = shared.proxy.upstream();
    let pool = Arc::new(Pool::new(shared.proxy.config().connect_timeout));
    let register = |l: Option<std::net::TcpListener>| {
        l.and_then(|l| match tokio::net::TcpListener::from_std(l) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "ingress: registering a listener");
                None
            }
        })
    };
    let (http, https) = (register(http), register(https));
    loop {
        let (accepted, tls) = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            Some(h) = inbox.recv() => {
                match tokio::net::TcpStream::from_std(h.stream) {
                    Ok(s) => {
                        tokio::spawn(serve(shared.clone(), upstream.clone(), pool.clone(), s, h.peer, h.tls, h.counted));
                    }
                    Err(e) => tracing::debug!(error = %e, "ingress: taking a connection"),
                }
                continue;
            }
            r = accept(&http) => (r, false),
            r = accept(&https) => (r, true),
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "ingress accept");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let counted = shared.load.assign(me);
        if counted.worker == me {
            tokio::spawn(serve(
                shared.clone(),
                upstream.clone(),
                pool.clone(),
                stream,
                peer,
                tls,
                counted,
            ));
            continue;
        }
        let to = counted.worker;
        match stream.into_std() {
            Ok(stream) => {
                let handoff = Handoff {
                    stream,
                    peer,
                    tls,
                    counted,
                };
                if shared.inboxes[to].send(handoff).is_err() {
                    tracing::debug!(worker = to, "ingress: worker gone, connection dropped");
                }
            }
            Err(e) => tracing::debug!(error = %e, "ingress: handing a connection over"),
        }
    }
}

/// The first bytes of an HTTP/2 connection with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A new connection sending nothing (or no TLS handshake) for this long is closed.
const FIRST_BYTES: Duration = Duration::from_secs(60);

/// Serves one downstream connection: TLS first on the TLS port, then HTTP/2 (ALPN `h2`, or
/// the cleartext preface) through `hyper`, anything else through the HTTP/1.x relay.
async fn serve(
    shared: Arc<Shared>,
    upstream: Upstream,
    pool: Arc<Pool>,
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: bool,
    _counted: Counted,
) {
    let scheme = if tls { "https" } else { "http" };
    let work = async {
        if !tls {
            // Enough bytes to tell the HTTP/2 preface from an HTTP/1.x request line.
            let mut buf = BytesMut::with_capacity(16 * 1024);
            while buf.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&buf) {
                match tokio::time::timeout(FIRST_BYTES, stream.read_buf(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return,
                }
            }
            if buf.starts_with(H2_PREFACE) {
                http2(&shared, upstream, Prefixed::new(buf, stream), peer, scheme).await;
            } else {
                h1::serve(&shared.proxy, &pool, peer, scheme, &mut stream, buf).await;
            }
            return;
        }
        let Some(acceptor) = &shared.tls else { return };
        let Ok(Ok(mut tls_stream)) =
            tokio::time::timeout(FIRST_BYTES, acceptor.accept(stream)).await
        else {
            return;
        };
        if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            http2(&shared, upstream, tls_stream, peer, scheme).await;
        } else {
            let buf = BytesMut::with_capacity(16 * 1024);
            h1::serve(&shared.proxy, &pool, peer, scheme, &mut tls_stream, buf).await;
        }
    };
    tokio::select! {
        () = work => {}
        _ = shared.shutdown.cancelled() => {}
    }
}

/// Serves an HTTP/2 connection.
async fn http2<I>(
    shared: &Shared,
    upstream: Upstream,
    io: I,
    peer: SocketAddr,
    scheme: &'static str,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let proxy = shared.proxy.clone();
    let svc = hyper::service::service_fn(move |req| {
        let proxy = proxy.clone();
        let upstream = upstream.clone();
        async move { Ok::<_, Infallible>(proxy.handle(&upstream, req, peer, scheme).await) }
    });
    let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
    if let Err(e) = served {
        tracing::trace!(error = %e, "ingress connection");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_least_busy_worker_and_are_released() {
        let load = Arc::new(Load((0..3).map(|_| AtomicUsize::new(0)).collect()));
        // A burst accepted by worker 0 spreads over all three.
        let burst: Vec<Counted> = (0..6).map(|_| load.assign(0)).collect();
        let mut per = [0; 3];
        for c in &burst {
            per[c.worker] += 1;
        }
        assert_eq!(per, [2, 2, 2]);
        // Ties stay with the worker that accepted.
        let mine = load.assign(1);
        assert_eq!(mine.worker, 1);
        drop(burst);
        drop(mine);
        assert!(load.0.iter().all(|n| n.load(Ordering::Relaxed) == 0));
    }
}
