//! OpenAPI v3 documents (`/openapi/v3` and one document per group version), generated from
//! the schemas of the served types (`berth_patch::component_schemas`, which carry the
//! `x-kubernetes-*` patch metadata kubectl computes strategic merge patches from) and from
//! the schemas of custom resources. kubectl needs them to validate by default (`apply`,
//! `create -f`: it checks that PATCH declares `fieldValidation`), for client-side apply's
//! strategic merge metadata, and for `explain`.
//!
//! Documents are built on first request and cached until the set of served resources
//! changes; the index links each with a content hash so clients cache them safely.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::{ResourceRef, Subresource};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, Result};
use crate::state::ApiState;

/// A document's bytes and content hash.
type Document = (Bytes, String);

/// Cached documents of one resource-set generation.
#[derive(Default)]
pub struct OpenApiCache {
    inner: Mutex<(u64, HashMap<String, Document>)>,
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn group_versions(st: &ApiState) -> Vec<(String, String)> {
    let mut out = vec![(String::new(), "v1".to_string())];
    for (g, versions) in st.resources.groups() {
        for v in versions {
            out.push((g.clone(), v));
        }
    }
    out
}

fn hash_of(bytes: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016X}{:08X}", h.finish(), bytes.len())
}

/// The document of one group version (built and cached), with its hash.
fn document(st: &ApiState, group: &str, version: &str) -> Option<Document> {
    let key = gv_path(group, version);
    let generation = st.resources.generation();
    {
        let mut c = st.openapi.inner.lock().unwrap_or_else(|p| p.into_inner());
        if c.0 != generation {
            *c = (generation, HashMap::new());
        }
        if let Some(d) = c.1.get(&key) {
            return Some(d.clone());
        }
    }
    let resources = st.resources.in_group_version(group, version);
    if resources.is_empty() {
        return None;
    }
    let doc = build_document(st, group, version, &resources);
    let bytes = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    let hash = hash_of(&bytes);
    let mut c = st.openapi.inner.lock().unwrap_or_else(|p| p.into_inner());
    if c.0 == generation {
        c.1.insert(key, (bytes.clone(), hash.clone()));
    }
    Some((bytes, hash))
}

pub fn serve_v3(st: &ApiState, path: &str, headers: &HeaderMap) -> Result<Response> {
    let _ = headers;
    let rest = path.trim_start_matches("/openapi/v3").trim_matches('/');
    if rest.is_empty() {
        let mut paths = Map::new();
        for (g, v) in group_versions(st) {
            if let Some((_, hash)) = document(st, &g, &v) {
                let p = gv_path(&g, &v);
                paths.insert(
                    p.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
                );
            }
        }
        return Ok(crate::handler::json_response(
            StatusCode::OK,
            &json!({"paths": paths}),
        ));
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let (group, version) = match parts.as_slice() {
        ["api", v] => (String::new(), v.to_string()),
        ["apis", g, v] => (g.to_string(), v.to_string()),
        _ => return Err(ApiError::NotFoundPath),
    };
    let (bytes, hash) = document(st, &group, &version).ok_or(ApiError::NotFoundPath)?;
    let mut r = (StatusCode::OK, bytes).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, immutable"),
    );
    Ok(r)
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

fn query(name: &str, description: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut p = vec![
        query(
            "dryRun",
            "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
            "string",
        ),
        query(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
            "string",
        ),
        query(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
            "string",
        ),
    ];
    if patch {
        p.push(query("force", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people.", "boolean"));
    }
    p
}

fn list_params() -> Vec<Value> {
    [
        ("allowWatchBookmarks", "boolean"),
        ("continue", "string"),
        ("fieldSelector", "string"),
        ("labelSelector", "string"),
        ("limit", "integer"),
        ("resourceVersion", "string"),
        ("resourceVersionMatch", "string"),
        ("sendInitialEvents", "boolean"),
        ("timeoutSeconds", "integer"),
        ("watch", "boolean"),
    ]
    .iter()
    .map(|(n, t)| query(n, "", t))
    .collect()
}

fn body(schema: &Value, types: &[&str]) -> Value {
    let mut content = Map::new();
    for t in types {
        content.insert(t.to_string(), json!({"schema": schema}));
    }
    json!({"content": content, "required": true})
}

fn ok(schema: &Value) -> Value {
    json!({"200": {"description": "OK", "content": {"application/json": {"schema": schema}, "application/yaml": {"schema": schema}}}, "401": {"description": "Unauthorized"}})
}

fn operation(
    action: &str,
    id: &str,
    gvk: &Value,
    params: Vec<Value>,
    body: Option<Value>,
    resp: &Value,
) -> Value {
    let mut op = json!({
        "operationId": id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "responses": ok(resp),
    });
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    if let Some(b) = body {
        op["requestBody"] = b;
    }
    op
}

fn camel(s: &str) -> String {
    let mut out = String::new();
    let mut up = true;
    for c in s.chars() {
        if c == '.' || c == '-' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn build_document(st: &ApiState, group: &str, version: &str, resources: &[ResourceRef]) -> Value {
    let comps = berth_patch::component_schemas();
    let mut schemas: BTreeMap<String, Value> = BTreeMap::new();
    let mut roots: BTreeSet<String> = BTreeSet::new();
    for n in [
        "Patch",
        "DeleteOptions",
        "Status",
        "WatchEvent",
        "APIResourceList",
        "ObjectMeta",
        "ListMeta",
    ] {
        roots.insert(format!("{META}.{n}"));
    }
    let base = format!("/{}", gv_path(group, version));
    let mut paths = Map::new();
    let gv_camel = camel(&format!(
        "{}{}",
        if group.is_empty() { "core" } else { group },
        version
    ))
    .replace("K8sIo", "");
    for r in resources {
        let gvk = json!({"group": group, "version": version, "kind": r.kind});
        let (obj_schema, list_schema) = if r.custom {
            let name = format!("{}.{}.{}", reverse_domain(group), version, r.kind);
            if let Some(s) = crate::crd::schema_of(st, r, version) {
                let mut s = s;
                s["x-kubernetes-group-version-kind"] = json!([gvk.clone()]);
                collect_refs(&s, &mut roots);
                schemas.insert(name.clone(), s);
            }
            let list_name = format!("{name}List");
            schemas.insert(list_name.clone(), json!({
                "type": "object",
                "description": format!("{}List is a list of {}", r.kind, r.kind),
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                    "metadata": schema_ref(&format!("{META}.ListMeta")),
                    "items": {"type": "array", "items": schema_ref(&name)},
                },
                "x-kubernetes-group-version-kind": [{"group": group, "version": version, "kind": r.list_kind}],
            }));
            (schema_ref(&name), schema_ref(&list_name))
        } else {
            let Some(name) = crate::schema::component_for(group, version, &r.kind) else {
                continue;
            };
            roots.insert(name.to_string());
            let list = crate::schema::component_for(group, version, &r.list_kind).map(String::from);
            if let Some(l) = &list {
                roots.insert(l.clone());
            }
            (
                schema_ref(name),
                list.map(|l| schema_ref(&l))
                    .unwrap_or_else(|| json!({"type": "object"})),
            )
        };
        let id = format!("{}{}", gv_camel, r.kind);
        let patch_types: Vec<&str> = if r.custom {
            vec![
                "application/apply-patch+yaml",
                "application/json-patch+json",
                "application/merge-patch+json",
            ]
        } else {
            vec![
                "application/apply-patch+yaml",
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ]
        };
        let patch_body = body(&schema_ref(&format!("{META}.Patch")), &patch_types);
        let obj_body = body(&obj_schema, &["application/json", "application/yaml"]);
        let (collection, item) = if r.namespaced() {
            (
                format!("{base}/namespaces/{{namespace}}/{}", r.plural),
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural),
            )
        } else {
            (
                format!("{base}/{}", r.plural),
                format!("{base}/{}/{{name}}", r.plural),
            )
        };
        let path_params = |named: bool| -> Vec<Value> {
            let mut p = Vec::new();
            if named {
                p.push(json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}));
            }
            if r.namespaced() {
                p.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}));
            }
            p.push(query(
                "pretty",
                "If 'true', then the output is pretty printed.",
                "string",
            ));
            p
        };
        let mut coll = json!({
            "get": operation("list", &format!("list{id}"), &gvk, list_params(), None, &list_schema),
            "post": operation("post", &format!("create{id}"), &gvk, write_params(false), Some(obj_body.clone()), &obj_schema),
            "delete": operation("deletecollection", &format!("deletecollection{id}"), &gvk, list_params(), Some(body(&schema_ref(&format!("{META}.DeleteOptions")), &["application/json"])), &schema_ref(&format!("{META}.Status"))),
        });
        coll["parameters"] = Value::Array(path_params(false));
        paths.insert(collection, coll);
        let mut one = json!({
            "get": operation("get", &format!("read{id}"), &gvk, vec![], None, &obj_schema),
            "put": operation("put", &format!("replace{id}"), &gvk, write_params(false), Some(obj_body.clone()), &obj_schema),
            "patch": operation("patch", &format!("patch{id}"), &gvk, write_params(true), Some(patch_body.clone()), &obj_schema),
            "delete": operation("delete", &format!("delete{id}"), &gvk, vec![query("gracePeriodSeconds", "", "integer"), query("propagationPolicy", "", "string")], Some(body(&schema_ref(&format!("{META}.DeleteOptions")), &["application/json"])), &obj_schema),
        });
        one["parameters"] = Value::Array(path_params(true));
        paths.insert(item.clone(), one);
        for s in &r.subresources {
            let (sub_schema, sub_gvk) = match s {
                Subresource::Status => (obj_schema.clone(), gvk.clone()),
                Subresource::Scale => {
                    roots.insert("io.k8s.api.autoscaling.v1.Scale".into());
                    (
                        schema_ref("io.k8s.api.autoscaling.v1.Scale"),
                        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
                    )
                }
                _ => continue,
            };
            let sid = format!("{id}{}", camel(s.name()));
            let mut sub = json!({
                "get": operation("get", &format!("read{sid}"), &sub_gvk, vec![], None, &sub_schema),
                "put": operation("put", &format!("replace{sid}"), &sub_gvk, write_params(false), Some(body(&sub_schema, &["application/json", "application/yaml"])), &sub_schema),
                "patch": operation("patch", &format!("patch{sid}"), &sub_gvk, write_params(true), Some(patch_body.clone()), &sub_schema),
            });
            sub["parameters"] = Value::Array(path_params(true));
            paths.insert(format!("{item}/{}", s.name()), sub);
        }
    }
    // The transitive closure of referenced built-in components.
    let mut todo: Vec<String> = roots.into_iter().collect();
    while let Some(n) = todo.pop() {
        if schemas.contains_key(&n) {
            continue;
        }
        if let Some(s) = comps.get(&n) {
            let mut refs = BTreeSet::new();
            collect_refs(s, &mut refs);
            schemas.insert(n, s.clone());
            todo.extend(refs.into_iter().filter(|r| !schemas.contains_key(r)));
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::nonresource::KUBE_MAJOR, crate::nonresource::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn reverse_domain(group: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').collect();
    parts.reverse();
    parts.join(".")
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Some(name) = x.as_str().and_then(|s| s.rsplit('/').next()) {
                        out.insert(name.to_string());
                    }
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}
