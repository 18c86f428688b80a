//! Streaming subresources are served by the node agent that runs the pod; the API server
//! finds that agent and relays the request and its response byte for byte, upgrades
//! included (WebSocket `v5.channel.k8s.io` for exec/attach, SPDY or SPDY-over-WebSocket for
//! port-forward), as kube-apiserver's upgrade-aware proxy does.
//!
//! | API path | agent path |
//! |---|---|
//! | `pods/{p}/log` | `/containerLogs/{ns}/{p}/{container}` |
//! | `pods/{p}/exec`, `attach` | `/exec/{ns}/{p}/{container}`, `/attach/...` |
//! | `pods/{p}/portforward` | `/portForward/{ns}/{p}` |
//! | `nodes/{n}/proxy/{rest}` | `/{rest}` |

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use berth_api::Subresource;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::handler::Ctx;
use crate::request::Verb;

pub async fn serve(mut ctx: Ctx, sub: Subresource, body: Bytes) -> Result<Response> {
    let client = ctx
        .state
        .kubelet_client()
        .ok_or_else(|| ApiError::ServiceUnavailable {
            message: format!(
                "{}/{} of {} {:?}: no node agent connection is available",
                ctx.res.plural,
                sub.name(),
                ctx.res.plural,
                ctx.name()
            ),
        })?;
    let name = ctx.name().to_string();
    let (node, path) = match (ctx.res.plural.as_str(), sub) {
        ("pods", Subresource::Log | Subresource::Exec | Subresource::Attach) => {
            let pod = pod(&ctx, &name).await?;
            let node = node_of(&pod, &name)?;
            let container = container_of(&ctx, &pod, &name)?;
            let verb = match sub {
                Subresource::Log => "containerLogs",
                Subresource::Exec => "exec",
                _ => "attach",
            };
            let ns = ctx.namespace().unwrap_or_default();
            (node, format!("/{verb}/{ns}/{name}/{container}"))
        }
        ("pods", Subresource::PortForward) => {
            let pod = pod(&ctx, &name).await?;
            let node = node_of(&pod, &name)?;
            let ns = ctx.namespace().unwrap_or_default();
            (node, format!("/portForward/{ns}/{name}"))
        }
        ("nodes", Subresource::Proxy) => {
            let rest = ctx.req.rest.clone().unwrap_or_default();
            (name.clone(), format!("/{}", rest.trim_start_matches('/')))
        }
        _ => {
            return Err(ApiError::ServiceUnavailable {
                message: format!(
                    "{}/{} is not served yet: it needs the pod network",
                    ctx.res.plural,
                    sub.name()
                ),
            });
        }
    };
    let addr = crate::kubelet::node_endpoint(&ctx.state, &node)?;
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(ctx.query.raw.iter())
        .finish();
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let method = method_of(ctx.req.verb);
    let mut req = http::Request::builder()
        .method(method)
        .uri(&uri)
        .body(Body::from(body))
        .map_err(|e| ApiError::bad_request(format!("proxy request: {e}")))?;
    let upgrading = ctx
        .headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"));
    for (k, v) in ctx.headers.iter() {
        let hop = matches!(
            k.as_str(),
            "authorization" | "host" | "proxy-authorization" | "keep-alive" | "te" | "trailer"
        ) || (!upgrading && matches!(k.as_str(), "connection" | "upgrade"));
        if !hop && !k.as_str().starts_with("impersonate-") {
            req.headers_mut().append(k.clone(), v.clone());
        }
    }
    if let Ok(h) = HeaderValue::from_str(&addr.to_string()) {
        req.headers_mut().insert(header::HOST, h);
    }
    let mut resp = client.send(addr, req).await?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let client_side = ctx.upgrade.take().ok_or_else(|| {
            ApiError::bad_request("this connection cannot be upgraded (use HTTP/1.1)")
        })?;
        let agent_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (c, a) = match tokio::try_join!(client_side, agent_side) {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade of a proxied stream failed");
                    return;
                }
            };
            let (mut c, mut a) = (TokioIo::new(c), TokioIo::new(a));
            if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut a).await {
                tracing::debug!(error = %e, "proxied stream ended");
            }
        });
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (parts, incoming) = resp.into_parts();
    Ok(Response::from_parts(parts, Body::new(incoming)))
}

async fn pod(ctx: &Ctx, name: &str) -> Result<Value> {
    crate::read::read_object(ctx, name, true)
        .await?
        .ok_or_else(|| ctx.not_found(name))
}

fn node_of(pod: &Value, name: &str) -> Result<String> {
    pod.pointer("/spec/nodeName")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())
        .map(String::from)
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))
}

/// The container a request names, or the pod's only (or default) container.
fn container_of(ctx: &Ctx, pod: &Value, name: &str) -> Result<String> {
    let names = |list: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(|c| c.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let init = names("initContainers");
    let ephemeral = names("ephemeralContainers");
    let asked = ctx
        .query
        .raw
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty());
    match asked {
        Some(c) => {
            if containers.contains(&c) || init.contains(&c) || ephemeral.contains(&c) {
                Ok(c)
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        None => {
            if let Some(d) = pod
                .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
                .and_then(|d| d.as_str())
                .filter(|d| containers.iter().any(|c| c == d))
            {
                return Ok(d.to_string());
            }
            if containers.len() == 1 {
                return Ok(containers[0].clone());
            }
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// The HTTP method of the original request, from its verb.
fn method_of(verb: Verb) -> http::Method {
    match verb {
        Verb::Create => http::Method::POST,
        Verb::Update => http::Method::PUT,
        Verb::Patch => http::Method::PATCH,
        Verb::Delete | Verb::DeleteCollection => http::Method::DELETE,
        Verb::Get | Verb::List | Verb::Watch => http::Method::GET,
    }
}
