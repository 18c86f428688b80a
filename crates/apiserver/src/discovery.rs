//! API discovery: the legacy documents (`/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`) and
//! aggregated discovery (`apidiscovery.k8s.io/v2`), which lets kubectl learn everything in
//! two requests. Both are built from the resource registry.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::{ResourceRef, Subresource};
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::handler::json_response;
use crate::state::ApiState;

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',').next().is_some_and(|first| {
                let f = first.replace(' ', "");
                f.contains("g=apidiscovery.k8s.io")
                    && f.contains("v=v2")
                    && f.contains("as=APIGroupDiscoveryList")
            })
        })
}

fn aggregated_response(body: Value) -> Response {
    let mut r = (
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(AGGREGATED));
    r
}

pub fn core_versions(st: &ApiState, headers: &HeaderMap) -> Result<Response> {
    if wants_aggregated(headers) {
        let item = group_discovery(st, "");
        return Ok(aggregated_response(json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": [item],
        })));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": st.config.advertise_address()}],
        }),
    ))
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs[0]})
}

pub fn groups(st: &ApiState, headers: &HeaderMap) -> Result<Response> {
    let groups = st.resources.groups();
    if wants_aggregated(headers) {
        let items: Vec<Value> = groups.iter().map(|(g, _)| group_discovery(st, g)).collect();
        return Ok(aggregated_response(json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        })));
    }
    let list: Vec<Value> = groups.iter().map(|(g, v)| group_json(g, v)).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list}),
    ))
}

pub fn group(st: &ApiState, group: &str) -> Result<Response> {
    let (g, versions) = st
        .resources
        .groups()
        .into_iter()
        .find(|(g, _)| g == group)
        .ok_or(ApiError::NotFoundPath)?;
    let mut body = group_json(&g, &versions);
    body["kind"] = json!("APIGroup");
    body["apiVersion"] = json!("v1");
    Ok(json_response(StatusCode::OK, &body))
}

pub fn group_version(st: &ApiState, group: &str, version: &str) -> Result<Response> {
    let resources = st.resources.in_group_version(group, version);
    if resources.is_empty() {
        return Err(ApiError::NotFoundPath);
    }
    let mut list = Vec::new();
    for r in &resources {
        let mut main = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced(),
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            main["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            main["categories"] = json!(r.categories);
        }
        list.push(main);
        for s in &r.subresources {
            let mut sub = json!({
                "name": format!("{}/{}", r.plural, s.name()),
                "singularName": "",
                "namespaced": r.namespaced(),
                "kind": r.kind,
                "verbs": s.verbs(),
            });
            if let Some((g, v, k)) = s.kind() {
                if !k.is_empty() {
                    sub["kind"] = json!(k);
                }
                if !(g.is_empty() && v == "v1" && k.is_empty()) && *s != Subresource::Log {
                    sub["group"] = json!(g);
                    sub["version"] = json!(v);
                }
                if k.is_empty() {
                    sub["kind"] = json!(stream_kind(*s));
                }
            }
            list.push(sub);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    ))
}

/// Kind names Kubernetes lists for streaming subresources.
fn stream_kind(s: Subresource) -> &'static str {
    match s {
        Subresource::Log => "Pod",
        Subresource::Exec => "PodExecOptions",
        Subresource::Attach => "PodAttachOptions",
        Subresource::PortForward => "PodPortForwardOptions",
        Subresource::Proxy => "PodProxyOptions",
        _ => "",
    }
}

fn resource_discovery(r: &ResourceRef, version: &str) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": version, "kind": r.kind},
        "scope": if r.namespaced() { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    let subs: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            let (g, ver, k) = match s.kind() {
                Some((g, ver, k)) if !k.is_empty() => (g.to_string(), ver.to_string(), k.to_string()),
                Some(_) => (String::new(), "v1".to_string(), stream_kind(*s).to_string()),
                None => (r.group.clone(), version.to_string(), r.kind.clone()),
            };
            json!({"subresource": s.name(), "responseKind": {"group": g, "version": ver, "kind": k}, "verbs": s.verbs()})
        })
        .collect();
    if !subs.is_empty() {
        v["subresources"] = Value::Array(subs);
    }
    v
}

fn group_discovery(st: &ApiState, group: &str) -> Value {
    let versions: Vec<String> = if group.is_empty() {
        vec!["v1".into()]
    } else {
        st.resources
            .groups()
            .into_iter()
            .find(|(g, _)| g == group)
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = st
                .resources
                .in_group_version(group, v)
                .iter()
                .map(|r| resource_discovery(r, v))
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let mut meta = json!({});
    if !group.is_empty() {
        meta = json!({"name": group});
    }
    json!({"metadata": meta, "versions": vs})
}
