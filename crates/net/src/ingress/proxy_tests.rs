//! The proxy on loopback: backends on 127.0.0.1/127.0.0.2, a dead endpoint on 127.0.0.3,
//! requests through two worker threads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{IngressConfig, IngressProxy};
use crate::ingress::routes::RouteTable;
use crate::ingress::tls::SniResolver;
use crate::ingress_class::IngressClassFilter;

/// An HTTP server answering `<name> <x-forwarded-for> <path>`.
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
                    let text = format!("{name} {xff} {}", req.uri().path());
                    async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            text,
                        ))))
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

    let proxy = IngressProxy::new(
        IngressConfig {
            http: Some("127.0.0.1:0".parse().unwrap()),
            https: None,
            workers: 2,
            ..IngressConfig::default()
        },
        SniResolver::default(),
    );
    let listeners = proxy.bind().unwrap();
    let at = listeners.http_addr().unwrap();
    assert_eq!(listeners.https_addr(), None);
    proxy.set_routes(table(&[a, b, dead]));
    let stop = CancellationToken::new();
    let served = tokio::spawn(proxy.clone().serve(listeners, stop.clone()));

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
