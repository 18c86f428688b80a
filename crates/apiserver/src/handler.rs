//! The entry point of every API request: authentication, parsing the path into a target,
//! and dispatch to discovery, non-resource endpoints or the resource handlers.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::{ResourceRef, Subresource};
use bytes::Bytes;
use serde_json::Value;

use crate::auth::Identity;
use crate::error::{ApiError, Result};
use crate::query::Query;
use crate::request::{self, ResourceRequest, Target, Verb};
use crate::state::SharedState;

/// Everything a resource handler needs to know about one request.
pub struct Ctx {
    pub state: SharedState,
    pub identity: Identity,
    pub req: ResourceRequest,
    pub res: ResourceRef,
    pub query: Query,
    pub headers: HeaderMap,
    /// The connection upgrade of the request, for relayed streaming subresources.
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Ctx {
    pub fn namespace(&self) -> Option<&str> {
        if self.res.namespaced() {
            self.req.namespace.as_deref()
        } else {
            None
        }
    }

    pub fn key(&self, name: &str) -> String {
        self.res.key(self.namespace(), name)
    }

    /// The storage prefix of the collection this request addresses.
    pub fn collection_prefix(&self) -> String {
        match self.namespace() {
            Some(ns) => self.res.namespace_prefix(ns),
            None => self.res.key_prefix(),
        }
    }

    pub fn name(&self) -> &str {
        self.req.name.as_deref().unwrap_or("")
    }

    /// The field manager of a write: `?fieldManager=`, else from the User-Agent.
    pub fn field_manager(&self) -> String {
        if let Some(m) = &self.query.field_manager {
            return m.clone();
        }
        self.headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    }

    /// Whether the request is a server-side apply.
    pub fn is_apply(&self) -> bool {
        self.req.verb == crate::request::Verb::Patch
            && self
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("application/apply-patch"))
    }

    pub fn not_found(&self, name: &str) -> ApiError {
        ApiError::NotFound {
            qualified_resource: self.res.qualified_plural(),
            group: self.res.group.clone(),
            kind_plural: self.res.plural.clone(),
            name: name.to_string(),
        }
    }

    pub fn conflict(&self, name: &str, message: String) -> ApiError {
        ApiError::Conflict {
            qualified_resource: self.res.qualified_plural(),
            group: self.res.group.clone(),
            kind_plural: self.res.plural.clone(),
            name: name.to_string(),
            message,
        }
    }

    pub fn api_version(&self) -> String {
        self.res.api_version(&self.req.version)
    }
}

/// The axum handler for every path.
pub async fn handle(State(state): State<SharedState>, req: Request) -> Response {
    let identity = match state.auth.authenticate(&req) {
        Some(id) => id,
        None => {
            if is_public(req.uri().path()) {
                Identity::anonymous()
            } else {
                return ApiError::Unauthorized.into_response();
            }
        }
    };
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = match dispatch(state, identity, req).await {
        Ok(r) => r,
        Err(e) => {
            if e.code().is_server_error() {
                tracing::error!(%method, %path, error = %e, "request failed");
            }
            e.into_response()
        }
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    resp
}

fn is_public(path: &str) -> bool {
    matches!(path, "/livez" | "/readyz" | "/healthz")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

async fn dispatch(state: SharedState, identity: Identity, req: Request) -> Result<Response> {
    let (mut parts, body) = req.into_parts();
    let query = Query::parse(parts.uri.query())?;
    let target = request::parse(&parts.method, parts.uri.path(), query.watch);
    match target {
        Target::CoreVersions => crate::discovery::core_versions(&state, &parts.headers),
        Target::Groups => crate::discovery::groups(&state, &parts.headers),
        Target::Group(g) => crate::discovery::group(&state, &g),
        Target::GroupVersion { group, version } => {
            crate::discovery::group_version(&state, &group, &version)
        }
        Target::NonResource(path) => crate::nonresource::serve(&state, &path, &parts.headers).await,
        Target::Resource(rr) if rr.group == crate::metrics::GROUP => {
            let provider = state.metrics_provider().ok_or(ApiError::NotFoundPath)?;
            if rr.version != crate::metrics::VERSION {
                return Err(ApiError::NotFoundPath);
            }
            crate::metrics::serve(&state, &provider, &rr, query.label_selector.as_deref()).await
        }
        Target::Resource(rr) => {
            let res = state
                .resources
                .lookup(&rr.group, &rr.version, &rr.resource)
                .ok_or(ApiError::NotFoundPath)?;
            if res.namespaced()
                && rr.namespace.is_none()
                && !matches!(rr.verb, Verb::List | Verb::Watch)
            {
                return Err(ApiError::NotFoundPath);
            }
            let body = read_body(body).await?;
            let ctx = Ctx {
                state,
                identity,
                req: rr,
                res,
                query,
                headers: parts.headers,
                upgrade: parts.extensions.remove::<hyper::upgrade::OnUpgrade>(),
            };
            resource(ctx, body).await
        }
    }
}

async fn read_body(body: Body) -> Result<Bytes> {
    axum::body::to_bytes(body, crate::codec::MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge {
            message: format!("limit is {}", crate::codec::MAX_BODY),
        })
}

async fn resource(ctx: Ctx, body: Bytes) -> Result<Response> {
    tracing::trace!(user = %ctx.identity.user, verb = ctx.req.verb.as_str(), resource = %ctx.res.plural, "resource request");
    if let Some(sub) = ctx.req.subresource.clone() {
        let Some(s) = Subresource::parse(&sub).filter(|s| ctx.res.has_subresource(*s)) else {
            return Err(ApiError::NotFoundPath);
        };
        return crate::subresource::serve(ctx, s, body).await;
    }
    match ctx.req.verb {
        Verb::Get => crate::read::get(ctx).await,
        Verb::List => crate::read::list(ctx).await,
        Verb::Watch => crate::watch::watch(ctx).await,
        Verb::Create => crate::write::create(ctx, body).await,
        Verb::Update => crate::write::update(ctx, body).await,
        Verb::Patch => crate::write::patch(ctx, body).await,
        Verb::Delete => crate::delete::delete(ctx, body).await,
        Verb::DeleteCollection => crate::delete::delete_collection(ctx, body).await,
    }
}

/// A JSON response.
pub fn json_response(code: StatusCode, value: &Value) -> Response {
    json_bytes(
        code,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

pub fn json_bytes(code: StatusCode, body: Bytes) -> Response {
    let mut r = (code, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A response in the negotiated output form (JSON, YAML, Table or metadata only).
pub fn object_response(ctx: &Ctx, code: StatusCode, obj: &Value) -> Result<Response> {
    match crate::negotiate::output(&ctx.headers)? {
        crate::negotiate::Output::Json => Ok(json_response(code, obj)),
        crate::negotiate::Output::Yaml => {
            let text = serde_saphyr::to_string(obj).map_err(ApiError::internal)?;
            let mut r = (code, text).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/yaml"),
            );
            Ok(r)
        }
        crate::negotiate::Output::Table => {
            let table = crate::table::table_for(ctx, std::slice::from_ref(obj), None, None);
            Ok(json_response(code, &table))
        }
        crate::negotiate::Output::PartialMetadata => {
            Ok(json_response(code, &crate::table::partial_metadata(obj)))
        }
    }
}

/// Adds `Warning` headers (fieldValidation=Warn and similar).
pub fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}
