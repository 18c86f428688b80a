//! The proxy on loopback: backends on 127.0.0.1/127.0.0.2, a dead endpoint on 127.0.0.3,
//! requests through two worker threads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use std::convert::Infallible;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{IngressConfig, IngressProxy};
use crate::ingress::routes::RouteTable;
use crate::ingress::tls::SniResolver;
use crate::ingress_class::IngressClassFilter;

/// An HTTP server answering `<name> <x-forwarded-for> <path>`; on `/echo` with
/// `<name> body=<request body>`, on `/chunked` with `abcde` in three chunks.
async fn backend(addr: SocketAddr, name: &'static str) -> SocketAddr {
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let at = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let xff = req
                        .headers()
                        .get("x-forwarded-for")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_string();
                    let path = req.uri().path().to_string();
                    async move {
                        let body: BoxBody<Bytes, Infallible> = match path.as_str() {
                            "/echo" => {
                                let got = req.into_body().collect().await.unwrap().to_bytes();
                                let text = format!("{name} body={}", String::from_utf8_lossy(&got));
                                Full::new(Bytes::from(text)).boxed()
                            }
                            "/chunked" => StreamBody::new(futures::stream::iter(
                                ["ab", "c", "de"].map(|p| Ok(Frame::data(Bytes::from(p)))),
                            ))
                            .boxed(),
                            _ => Full::new(Bytes::from(format!("{name} {xff} {path}"))).boxed(),
                        };
                        Ok::<_, Infallible>(Response::new(body))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    at
}

fn table(endpoints: &[SocketAddr]) -> RouteTable {
    let port = endpoints[0].port();
    let ing = Arc::new(
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "d"},
            "spec": {"ingressClassName": "berth", "rules": [{"host": "web.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}))
        .unwrap(),
    );
    let svc = Arc::new(
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "d"},
            "spec": {"clusterIP": "10.43.0.9", "ports": [{"name": "http", "port": 80}]}}))
        .unwrap(),
    );
    let eps: Vec<_> = endpoints
        .iter()
        .map(|e| json!({"addresses": [e.ip().to_string()], "conditions": {"ready": true}}))
        .collect();
    let slice = Arc::new(
        serde_json::from_value(json!({"metadata": {"name": "web-x", "namespace": "d",
            "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port}], "endpoints": eps}))
        .unwrap(),
    );
    let (t, errs) = RouteTable::build(
        &[ing],
        &IngressClassFilter::new("berth", &[]),
        &[svc],
        &[slice],
    );
    assert!(errs.is_empty(), "{errs:?}");
    t
}

async fn get(
    client: &Client<HttpConnector, Empty<Bytes>>,
    proxy: SocketAddr,
    host: &str,
    path: &str,
) -> (StatusCode, String) {
    let req = Request::get(format!("http://{proxy}{path}"))
        .header(http::header::HOST, host)
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn two_workers_round_robin_retry_and_release_the_port_on_shutdown() {
    let a = backend("127.0.0.1:0".parse().unwrap(), "a").await;
    let b = backend(SocketAddr::new("127.0.0.2".parse().unwrap(), a.port()), "b").await;
    // Nothing listens here: connecting is refused and the request goes to the next endpoint.
    let dead = SocketAddr::new("127.0.0.3".parse().unwrap(), a.port());

    let Started {
        at,
        stop,
        proxy,
        served,
    } = start(&[a, b, dead], 2).await;

    // Fresh connections each time, so both workers accept some.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..30 {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let (status, body) = get(&client, at, "web.test", &format!("/r{i}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut words = body.split(' ');
        let name = words.next().unwrap().to_string();
        assert_eq!(words.next(), Some("127.0.0.1"), "X-Forwarded-For: {body}");
        assert_eq!(words.next(), Some(format!("/r{i}").as_str()));
        *seen.entry(name).or_default() += 1;
    }
    assert_eq!(seen.len(), 2, "both live endpoints serve: {seen:?}");
    assert_eq!(seen.values().sum::<usize>(), 30);

    // Keep-alive: one connection, many requests.
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for _ in 0..10 {
        assert_eq!(get(&client, at, "web.test", "/").await.0, StatusCode::OK);
    }
    let (status, body) = get(&client, at, "other.test", "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Only a dead endpoint: every attempt is refused, 502.
    proxy.set_routes(table(&[dead]));
    let (status, _) = get(&client, at, "web.test", "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    drop(client);

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .expect("the workers stop")
        .unwrap();
    let refused = tokio::net::TcpStream::connect(at).await;
    assert!(refused.is_err(), "the port is released after shutdown");
}

/// A serving proxy on loopback.
struct Started {
    at: SocketAddr,
    stop: CancellationToken,
    proxy: Arc<IngressProxy>,
    served: tokio::task::JoinHandle<()>,
}

/// A proxy with `workers` worker threads, routing `web.test` to `endpoints`.
async fn start(endpoints: &[SocketAddr], workers: usize) -> Started {
    let proxy = IngressProxy::new(
        IngressConfig {
            http: Some("127.0.0.1:0".parse().unwrap()),
            https: None,
            workers,
            ..IngressConfig::default()
        },
        SniResolver::default(),
    );
    let listeners = proxy.bind().unwrap();
    let at = listeners.http_addr().unwrap();
    assert_eq!(listeners.https_addr(), None);
    proxy.set_routes(table(endpoints));
    let stop = CancellationToken::new();
    let served = tokio::spawn(proxy.clone().serve(listeners, stop.clone()));
    Started {
        at,
        stop,
        proxy,
        served,
    }
}

/// Sends `raw` on a new connection and reads until the proxy closes it.
async fn raw(at: SocketAddr, raw: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut got = String::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_string(&mut got))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    got
}

/// Reads from `s` until `buf` contains `until`.
async fn read_until(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, until: &str) {
    while !String::from_utf8_lossy(buf).contains(until) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut chunk))
            .await
            .expect("an answer")
            .unwrap();
        assert!(
            n > 0,
            "closed before {until:?}: {}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn pipelined_requests_with_length_and_chunked_bodies_and_a_chunked_response() {
    let a = backend("127.0.0.1:0".parse().unwrap(), "a").await;
    let Started { at, stop, .. } = start(&[a], 1).await;
    let got = raw(
        at,
        "POST /echo HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\n\r\nhello\
         POST /echo HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n\
         GET /chunked HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let first = got.find("a body=hello").expect(&got);
    let second = got.find("a body=abcde").expect(&got);
    let third = got.rfind("HTTP/1.1 200 OK").expect(&got);
    assert!(first < second && second < third, "{got}");
    let last = &got[third..];
    assert!(
        last.contains("transfer-encoding: chunked\r\n")
            || last.contains("Transfer-Encoding: chunked\r\n"),
        "{last}"
    );
    assert!(last.contains("Connection: close\r\n"), "{last}");
    assert!(
        last.ends_with("\r\n\r\n2\r\nab\r\n1\r\nc\r\n2\r\nde\r\n0\r\n\r\n"),
        "{last:?}"
    );
    assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 3, "{got}");

    // HTTP/1.0 cannot read chunks: the data alone, then the connection closes.
    let got = raw(at, "GET /chunked HTTP/1.0\r\nHost: web.test\r\n\r\n").await;
    assert!(
        !got.to_ascii_lowercase().contains("transfer-encoding"),
        "{got}"
    );
    assert!(
        got.contains("Connection: close\r\n") && got.ends_with("\r\n\r\nabcde"),
        "{got:?}"
    );

    // Malformed: answered and closed.
    let got = raw(at, "GET / HTTP/1.1\r\n\r\n").await;
    assert!(
        got.starts_with("HTTP/1.1 400 Bad Request\r\n") && got.contains("without Host"),
        "{got}"
    );
    let got = raw(
        at,
        "POST /echo HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got}");
    stop.cancel();
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let a = backend("127.0.0.1:0".parse().unwrap(), "a").await;
    let Started { at, stop, .. } = start(&[a], 1).await;
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    s.write_all(b"PUT /echo HTTP/1.1\r\nHost: web.test\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, "HTTP/1.1 100 Continue\r\n\r\n").await;
    s.write_all(b"data").await.unwrap();
    read_until(&mut s, &mut buf, "a body=data").await;
    stop.cancel();
}

#[tokio::test]
async fn an_upgrade_becomes_a_tunnel() {
    // An endpoint that switches to echoing bytes back.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ep = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        read_until(&mut s, &mut buf, "\r\n\r\n").await;
        let head = String::from_utf8_lossy(&buf).to_string();
        assert!(
            head.contains("Connection: upgrade\r\nUpgrade: echo\r\n"),
            "{head}"
        );
        s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    });
    let Started { at, stop, .. } = start(&[ep], 1).await;
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, "\r\n\r\n").await;
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    buf.clear();
    s.write_all(b"ping").await.unwrap();
    read_until(&mut s, &mut buf, "ping").await;
    stop.cancel();
}

#[tokio::test]
async fn a_pooled_connection_the_endpoint_closed_is_replaced_unseen() {
    // An endpoint that answers one request per connection and closes it without saying so:
    // whether the relay sees the close while the connection is idle or only when it reuses
    // it, every request is answered.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ep = l.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                read_until(&mut s, &mut buf, "\r\n\r\n").await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    let Started { at, stop, .. } = start(&[ep], 1).await;
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..20 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n")
            .await
            .unwrap();
        read_until(&mut s, &mut buf, "\r\n\r\nok").await;
        assert!(
            String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200 OK\r\n"),
            "request {i}"
        );
        buf.clear();
    }
    assert!(accepted.load(std::sync::atomic::Ordering::Relaxed) >= 20);
    stop.cancel();
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_too() {
    let a = backend("127.0.0.1:0".parse().unwrap(), "a").await;
    let Started { at, stop, .. } = start(&[a], 1).await;
    let tcp = tokio::net::TcpStream::connect(at).await.unwrap();
    let (mut client, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://web.test/h2")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = client.send_request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "a 127.0.0.1 /h2");
    stop.cancel();
}

#[tokio::test]
async fn a_body_that_arrives_later_is_streamed_through() {
    let a = backend("127.0.0.1:0".parse().unwrap(), "a").await;
    let Started { at, stop, .. } = start(&[a], 1).await;
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    let body = "x".repeat(100_000);
    s.write_all(
        format!(
            "POST /echo HTTP/1.1\r\nHost: web.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            &body[..10]
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // More than one read takes: the relay forwards the head and streams the rest.
    s.write_all(&body.as_bytes()[10..]).await.unwrap();
    let mut got = String::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_string(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(
        got.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        &got[..got.len().min(200)]
    );
    assert!(got.ends_with(&format!("a body={body}")));
    stop.cancel();
}
