//! The Ingress proxy's HTTP/1.x path: a relay in the manner of an event-loop proxy. A
//! request head is parsed in place and rewritten in one pass, sent with the body bytes that
//! came with it on a pooled upstream connection, and the response head is rewritten the same
//! way and written with the body bytes that came with it: four system calls per small
//! exchange and no per-request tasks, channels or header maps (a pooled `hyper` client and
//! server cost the proxy a fifth of its throughput against nginx in `bench/network`; ADR 0012
//! §8). Bodies stream through unchanged (or de-chunked for HTTP/1.0 clients); `Upgrade`
//! exchanges (WebSocket) become a byte tunnel after the `101`.
//!
//! A request whose endpoint refuses the connection is sent to the next one; one whose reused
//! connection turns out closed before any response byte is sent again on a new connection
//! when its whole body is still at hand. `Expect: 100-continue` is answered here.

mod chunked;
pub(super) mod head;
mod pool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use self::chunked::Chunked;
use self::head::{Forwarding, Framing, HeadError, MAX_HEAD, Request, RequestInfo};
pub(crate) use self::pool::Pool;
use super::proxy::IngressProxy;
use super::routes::Backend;

/// Reads take up to this much at a time.
const READ_SIZE: usize = 16 * 1024;
/// A client connection waiting this long for (the rest of) a request head is closed.
const CLIENT_IDLE: Duration = Duration::from_secs(75);

/// One client connection's state, reused from request to request.
struct Conn<'a, S> {
    proxy: &'a IngressProxy,
    pool: &'a Pool,
    io: &'a mut S,
    client_ip: String,
    scheme: &'static str,
    /// Bytes from the client not yet relayed.
    buf: BytesMut,
    /// Bytes from upstream not yet relayed.
    ubuf: BytesMut,
    info: RequestInfo,
    /// The request head for upstream.
    up_head: Vec<u8>,
    /// What goes to the client next.
    out: Vec<u8>,
}

/// How an exchange ended, for the access log and the connection.
struct Outcome {
    status: u16,
    backend: Option<Arc<Backend>>,
    endpoint: Option<SocketAddr>,
    keep: bool,
}

impl Outcome {
    fn own(status: u16, backend: Option<Arc<Backend>>, keep: bool) -> Outcome {
        Outcome {
            status,
            backend,
            endpoint: None,
            keep,
        }
    }
}

/// Why an upstream exchange failed.
enum Failed {
    /// Nothing came back on a reused connection; sending again is safe.
    Stale,
    /// The endpoint could not be reached or failed before a response: 502 is still possible.
    Upstream,
    /// The client's body is malformed (nothing has been answered yet): 400.
    BadBody,
    /// The client went away, or the response broke off after its head: the client
    /// connection ends (the status logged: 499 before a response, else the response's).
    Broken(u16),
}

/// Reads more from `io` into `buf`: the number of bytes, 0 at the end of the stream.
async fn read_more<R: AsyncRead + Unpin>(io: &mut R, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < READ_SIZE / 4 {
        buf.reserve(READ_SIZE);
    }
    io.read_buf(buf).await
}

/// Serves HTTP/1.x on a client connection whose first bytes (if any) are in `buf`.
pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    proxy: &IngressProxy,
    pool: &Pool,
    peer: SocketAddr,
    scheme: &'static str,
    io: &mut S,
    buf: BytesMut,
) {
    let mut c = Conn {
        proxy,
        pool,
        io,
        client_ip: peer.ip().to_string(),
        scheme,
        buf,
        ubuf: BytesMut::with_capacity(READ_SIZE),
        info: RequestInfo::default(),
        up_head: Vec::with_capacity(1024),
        out: Vec::with_capacity(1024),
    };
    loop {
        let req = match c.read_head().await {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                head::own_response(&mut c.out, e.status, status_text(e.status), e.reason, true);
                let _ = c.write_out().await;
                tracing::debug!(client = %peer, reason = e.reason, "ingress: request refused");
                break;
            }
        };
        let start = Instant::now();
        c.buf.advance(req.len);
        let outcome = c.exchange(&req).await;
        if proxy.config().access_log {
            c.log(&req, &outcome, start);
        }
        if !outcome.keep {
            break;
        }
    }
    let _ = c.io.shutdown().await;
}

fn status_text(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|c| c.canonical_reason())
        .unwrap_or("Error")
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<'_, S> {
    /// The next request head; `None` when the client is done (or idle too long).
    async fn read_head(&mut self) -> Result<Option<Request>, HeadError> {
        let fwd = Forwarding {
            client_ip: &self.client_ip,
            scheme: self.scheme,
        };
        loop {
            if !self.buf.is_empty() {
                if let Some(r) =
                    head::parse_request(&self.buf, &fwd, &mut self.info, &mut self.up_head)?
                {
                    return Ok(Some(r));
                }
                if self.buf.len() >= MAX_HEAD {
                    return Err(HeadError {
                        status: 431,
                        reason: "request head too large",
                    });
                }
            }
            match tokio::time::timeout(CLIENT_IDLE, read_more(self.io, &mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Ok(None),
            }
        }
    }

    async fn write_out(&mut self) -> std::io::Result<()> {
        self.io.write_all(&self.out).await?;
        self.io.flush().await
    }

    /// A response of the relay's own. The connection stays open if the client wants it and
    /// `consumed` (no body of the request is left unread).
    async fn own(
        &mut self,
        req: &Request,
        consumed: bool,
        status: u16,
        text: &str,
        backend: Option<Arc<Backend>>,
    ) -> Outcome {
        let keep = req.keep_alive && consumed;
        head::own_response(&mut self.out, status, status_text(status), text, !keep);
        let written = self.write_out().await.is_ok();
        Outcome::own(status, backend, keep && written)
    }

    /// Routes one request and relays it.
    async fn exchange(&mut self, req: &Request) -> Outcome {
        let routes = self.proxy.routes();
        let Some(m) = routes.route(&self.info.host, &self.info.path) else {
            return self
                .own(
                    req,
                    req.framing == Framing::None,
                    404,
                    "404 page not found\n",
                    None,
                )
                .await;
        };
        let backend = m.backend;
        if backend.endpoints.is_empty() {
            return self
                .own(
                    req,
                    req.framing == Framing::None,
                    503,
                    "no ready endpoint\n",
                    Some(backend),
                )
                .await;
        }
        self.forward(req, backend).await
    }

    async fn forward(&mut self, req: &Request, backend: Arc<Backend>) -> Outcome {
        // The body bytes already here, and whether they are all of it.
        let mut body = BodyIn::new(req.framing);
        let at_hand = match body.scan(&self.buf) {
            Ok(n) => n,
            Err(reason) => {
                tracing::debug!(reason, "ingress: request body");
                return self
                    .own(req, false, 400, "malformed request body\n", Some(backend))
                    .await;
            }
        };
        let whole = body.done();
        if req.expect_continue && !whole && at_hand == 0 {
            self.out.clear();
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            if self.write_out().await.is_err() {
                return Outcome::own(499, Some(backend), false);
            }
        }
        let attempts = self.proxy.config().max_attempts.max(1);
        let mut last = None;
        let order = backend.clone();
        for endpoint in order.order().take(attempts) {
            last = Some(endpoint);
            loop {
                let (up, reused) = match self.pool.take(endpoint) {
                    Some(s) => (s, true),
                    None => match self.pool.connect(endpoint).await {
                        Ok(s) => (s, false),
                        Err(e) => {
                            tracing::debug!(%endpoint, error = %e, "ingress: endpoint unreachable, trying the next");
                            break;
                        }
                    },
                };
                match self.relay(req, up, at_hand, &mut body, whole).await {
                    Ok((status, reusable_up, keep)) => {
                        if let Some(up) = reusable_up {
                            self.pool.put(endpoint, up);
                        }
                        return Outcome {
                            status,
                            backend: Some(backend),
                            endpoint: Some(endpoint),
                            keep,
                        };
                    }
                    Err(Failed::Stale) if reused => continue,
                    Err(Failed::Stale | Failed::Upstream) => {
                        // Nothing was answered yet.
                        if whole {
                            self.buf.advance(at_hand);
                        }
                        let mut o = self
                            .own(req, whole, 502, "bad gateway\n", Some(backend))
                            .await;
                        o.endpoint = Some(endpoint);
                        return o;
                    }
                    Err(Failed::BadBody) => {
                        return self
                            .own(req, false, 400, "malformed request body\n", Some(backend))
                            .await;
                    }
                    Err(Failed::Broken(status)) => {
                        return Outcome {
                            status,
                            backend: Some(backend),
                            endpoint: Some(endpoint),
                            keep: false,
                        };
                    }
                }
            }
        }
        if whole {
            self.buf.advance(at_hand);
        }
        let mut o = self
            .own(
                req,
                whole,
                502,
                "no endpoint could be reached\n",
                Some(backend),
            )
            .await;
        o.endpoint = last;
        o
    }

    /// One attempt on `up`: the request, then the response. On success: the status, the
    /// upstream connection if it can be reused, whether the client connection stays open.
    async fn relay(
        &mut self,
        req: &Request,
        mut up: TcpStream,
        at_hand: usize,
        body: &mut BodyIn,
        whole: bool,
    ) -> Result<(u16, Option<TcpStream>, bool), Failed> {
        // The head and the body bytes at hand, in one write.
        let sent = write_two(&mut up, &self.up_head, &self.buf[..at_hand]).await;
        if sent.is_err() {
            return Err(if whole {
                Failed::Stale
            } else {
                Failed::Upstream
            });
        }
        if !whole {
            // No second attempt for a streamed body: what was sent is gone.
            self.buf.advance(at_hand);
            self.stream_body(&mut up, body).await?;
        }

        // Response heads: interim ones are passed on, then the final one.
        self.ubuf.clear();
        let resp = loop {
            if !self.ubuf.is_empty() {
                match head::parse_response(&self.ubuf, req, &mut self.out) {
                    Ok(Some(r)) => {
                        self.ubuf.advance(r.len);
                        if r.interim() {
                            if !self.out.is_empty() && self.write_out().await.is_err() {
                                return Err(Failed::Broken(499));
                            }
                            continue;
                        }
                        break r;
                    }
                    Ok(None) if self.ubuf.len() < MAX_HEAD => {}
                    Ok(None) | Err(_) => {
                        tracing::debug!("ingress: malformed response head from upstream");
                        return Err(Failed::Upstream);
                    }
                }
            }
            match read_more(&mut up, &mut self.ubuf).await {
                Ok(n) if n > 0 => {}
                // Nothing at all: a reused connection the endpoint had closed.
                Ok(_) | Err(_) if self.ubuf.is_empty() && whole => return Err(Failed::Stale),
                _ => return Err(Failed::Upstream),
            }
        };

        if whole {
            // Committed: the body sent is consumed.
            self.buf.advance(at_hand);
        }
        if resp.status == 101 {
            // The client's and the endpoint's bytes after the heads, then a tunnel.
            self.out.extend_from_slice(&self.ubuf);
            self.ubuf.clear();
            if self.write_out().await.is_err() || up.write_all(&self.buf).await.is_err() {
                return Err(Failed::Broken(101));
            }
            self.buf.clear();
            let _ = tokio::io::copy_bidirectional(self.io, &mut up).await;
            return Ok((101, None, false));
        }

        let clean = self
            .relay_body(&mut up, resp.framing, resp.dechunk)
            .await
            .map_err(|()| Failed::Broken(resp.status))?;
        let keep = !resp.close && req.keep_alive;
        let reuse = (resp.reusable && clean).then_some(up);
        Ok((resp.status, reuse, keep))
    }

    /// The rest of a request body, from the client to `up`.
    async fn stream_body(&mut self, up: &mut TcpStream, body: &mut BodyIn) -> Result<(), Failed> {
        while !body.done() {
            match read_more(self.io, &mut self.buf).await {
                Ok(n) if n > 0 => {}
                _ => return Err(Failed::Broken(499)),
            }
            let n = body.scan(&self.buf).map_err(|reason| {
                tracing::debug!(reason, "ingress: request body");
                Failed::BadBody
            })?;
            if up.write_all(&self.buf[..n]).await.is_err() {
                return Err(Failed::Upstream);
            }
            self.buf.advance(n);
        }
        Ok(())
    }

    /// The response body after the head in `out`: written with the head; `true` when it
    /// ended exactly where its framing says (the connection can carry another exchange).
    async fn relay_body(
        &mut self,
        up: &mut TcpStream,
        framing: Framing,
        dechunk: bool,
    ) -> Result<bool, ()> {
        let mut chunks = Chunked::default();
        let mut left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        loop {
            // What of `ubuf` belongs to the body goes out (after the head, the first time).
            let done = match framing {
                Framing::None => true,
                Framing::Length(_) => {
                    let take = self
                        .ubuf
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.out.extend_from_slice(&self.ubuf[..take]);
                    self.ubuf.advance(take);
                    left -= take as u64;
                    left == 0
                }
                Framing::Chunked => {
                    let out = &mut self.out;
                    let n = chunks
                        .feed(&self.ubuf, &mut |d| {
                            if dechunk {
                                out.extend_from_slice(d);
                            }
                        })
                        .map_err(|e| {
                            tracing::debug!(error = %e, "ingress: response body");
                        })?;
                    if !dechunk {
                        self.out.extend_from_slice(&self.ubuf[..n]);
                    }
                    self.ubuf.advance(n);
                    chunks.is_done()
                }
                Framing::UntilClose => {
                    self.out.extend_from_slice(&self.ubuf);
                    self.ubuf.clear();
                    false
                }
            };
            if !self.out.is_empty() && self.write_out().await.is_err() {
                return Err(());
            }
            self.out.clear();
            if done {
                // Bytes beyond the response: the connection is out of step, not reused.
                return Ok(self.ubuf.is_empty());
            }
            self.ubuf.clear();
            match read_more(up, &mut self.ubuf).await {
                Ok(n) if n > 0 => {}
                Ok(_) if framing == Framing::UntilClose => return Ok(false),
                _ => return Err(()),
            }
        }
    }

    fn log(&self, req: &Request, o: &Outcome, start: Instant) {
        // One preformatted line (client "METHOD host/path proto" status backend endpoint
        // time): a single formatting pass, where a field per value costs one each.
        tracing::info!(
            target: "berth::ingress::access",
            "{} \"{} {}{} HTTP/1.{}\" {} {} {} {:.3}ms",
            self.client_ip,
            self.info.method,
            self.info.host,
            self.info.path,
            req.version,
            o.status,
            OrDash(o.backend.as_ref().map(|b| b.name.as_str())),
            OrDash(o.endpoint),
            start.elapsed().as_secs_f64() * 1e3,
        );
    }
}

/// A value, or `-` without one (access log).
pub(super) struct OrDash<T>(pub Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OrDash<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Writes `a` then `b`, in one system call when the socket takes both.
async fn write_two(up: &mut TcpStream, a: &[u8], b: &[u8]) -> std::io::Result<()> {
    let mut done = 0;
    let total = a.len() + b.len();
    while done < total {
        let n = if done < a.len() {
            let slices = [std::io::IoSlice::new(&a[done..]), std::io::IoSlice::new(b)];
            up.write_vectored(&slices).await?
        } else {
            up.write(&b[done - a.len()..]).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        done += n;
    }
    Ok(())
}

/// A request body arriving from the client.
enum BodyIn {
    None,
    Length(u64),
    Chunked(Chunked),
}

impl BodyIn {
    fn new(framing: Framing) -> BodyIn {
        match framing {
            Framing::Length(n) => BodyIn::Length(n),
            Framing::Chunked => BodyIn::Chunked(Chunked::default()),
            Framing::None | Framing::UntilClose => BodyIn::None,
        }
    }

    /// Follows the bytes in `buf` (not seen before): how many belong to the body.
    fn scan(&mut self, buf: &[u8]) -> Result<usize, &'static str> {
        match self {
            BodyIn::None => Ok(0),
            BodyIn::Length(left) => {
                let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                Ok(n)
            }
            BodyIn::Chunked(c) => c.feed(buf, &mut |_| {}).map_err(|e| e.0),
        }
    }

    fn done(&self) -> bool {
        match self {
            BodyIn::None => true,
            BodyIn::Length(left) => *left == 0,
            BodyIn::Chunked(c) => c.is_done(),
        }
    }
}
