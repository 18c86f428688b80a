//! Manifest, tag-list, catalog and referrers routes.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{Method, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;

use crate::auth::Actions;
use crate::digest::Digest;
use crate::error::{RegistryError, Result};
use crate::http::{Ctx, json_response, query, query_get};
use crate::manifest::OCI_INDEX;
use crate::service::ManifestRef;

pub(crate) async fn manifest(
    ctx: &Ctx<'_>,
    repo: &str,
    reference: &str,
    req: Request,
) -> Result<Response> {
    let r = ManifestRef::parse(reference)?;
    let svc = ctx.svc();
    let method = req.method().clone();
    match method {
        Method::GET | Method::HEAD => {
            ctx.require(repo, Actions::PULL)?;
            let (d, mt, body) = svc.get_manifest(repo, &r).await?;
            let etag = format!("\"{d}\"");
            let b = Response::builder()
                .header(header::CONTENT_TYPE, mt)
                .header("docker-content-digest", d.to_string())
                .header(header::ETAG, &etag)
                .header(header::CONTENT_LENGTH, body.len());
            if req
                .headers()
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                == Some(etag.as_str())
            {
                return Ok(b
                    .status(StatusCode::NOT_MODIFIED)
                    .body(Body::empty())
                    .expect("response"));
            }
            let body = if method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(body)
            };
            Ok(b.status(StatusCode::OK).body(body).expect("response"))
        }
        Method::PUT => {
            ctx.require(repo, Actions::PUSH)?;
            let limit = svc.settings.max_manifest_bytes;
            let ct = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or("").trim().to_owned());
            let tags: Vec<String> = query(&req)
                .into_iter()
                .filter(|(k, _)| k == "tag")
                .map(|(_, v)| v)
                .collect();
            let body = read_limited(req.into_body(), limit).await?;
            let (d, subject) = svc
                .put_manifest(repo, &r, ct.as_deref(), &tags, body)
                .await?;
            let mut b = Response::builder()
                .status(StatusCode::CREATED)
                .header(header::LOCATION, format!("/v2/{repo}/manifests/{d}"))
                .header("docker-content-digest", d.to_string())
                .header(header::CONTENT_LENGTH, 0);
            if let Some(s) = subject {
                b = b.header("oci-subject", s.to_string());
            }
            Ok(b.body(Body::empty()).expect("response"))
        }
        Method::DELETE => {
            ctx.require(repo, Actions::DELETE)?;
            svc.delete_manifest(repo, &r).await?;
            Ok(Response::builder()
                .status(StatusCode::ACCEPTED)
                .header(header::CONTENT_LENGTH, 0)
                .body(Body::empty())
                .expect("response"))
        }
        m => Err(RegistryError::Unsupported {
            operation: format!("method {m} on manifests"),
        }),
    }
}

/// How much of an oversized body is read (and discarded) before answering 413, so the
/// client gets the answer instead of a reset connection.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Reads a body of at most `limit` bytes; a larger one is drained and refused.
async fn read_limited(mut body: Body, limit: u64) -> Result<bytes::Bytes> {
    let mut buf = bytes::BytesMut::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| RegistryError::BodyInvalid {
            reason: format!("reading the manifest: {e}"),
        })?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total <= limit {
                buf.extend_from_slice(&data);
            } else if total > limit + DRAIN_LIMIT {
                break;
            }
        }
    }
    if total > limit {
        return Err(RegistryError::ManifestTooLarge { size: total, limit });
    }
    Ok(buf.freeze())
}

/// Applies `n`/`last` pagination to a sorted list; returns the page and whether more follow.
fn paginate(all: Vec<String>, req: &Request) -> Result<(Vec<String>, Option<usize>, bool)> {
    let q = query(req);
    let n = match query_get(&q, "n") {
        None => None,
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| RegistryError::PaginationInvalid {
                    param: "n".into(),
                    reason: format!("{v:?} is not a non-negative integer"),
                })?,
        ),
    };
    let mut items: Vec<String> = match query_get(&q, "last") {
        Some(last) => all.into_iter().filter(|t| t.as_str() > last).collect(),
        None => all,
    };
    let more = n.is_some_and(|n| items.len() > n);
    if let Some(n) = n {
        items.truncate(n);
    }
    Ok((items, n, more))
}

fn link_header(path: &str, n: Option<usize>, last: Option<&String>) -> Option<String> {
    let last = last?;
    let enc: String = form_urlencoded::byte_serialize(last.as_bytes()).collect();
    Some(format!(
        "<{path}?n={}&last={enc}>; rel=\"next\"",
        n.unwrap_or(0)
    ))
}

fn paged_response(body: serde_json::Value, link: Option<String>) -> Response {
    let mut r = json_response(StatusCode::OK, serde_json::to_vec(&body).expect("JSON"));
    if let Some(l) = link
        && let Ok(v) = l.parse()
    {
        r.headers_mut().insert(header::LINK, v);
    }
    r
}

pub(crate) async fn tags(ctx: &Ctx<'_>, repo: &str, req: Request) -> Result<Response> {
    if req.method() != Method::GET {
        return Err(RegistryError::Unsupported {
            operation: format!("method {} on tags/list", req.method()),
        });
    }
    let all = ctx
        .svc()
        .meta
        .tags(repo)?
        .ok_or_else(|| RegistryError::NameUnknown {
            name: repo.to_owned(),
        })?;
    let (page, n, more) = paginate(all, &req)?;
    let link = if more {
        link_header(&format!("/v2/{repo}/tags/list"), n, page.last())
    } else {
        None
    };
    Ok(paged_response(json!({"name": repo, "tags": page}), link))
}

pub(crate) async fn catalog(ctx: &Ctx<'_>, req: Request) -> Result<Response> {
    if req.method() != Method::GET {
        return Err(RegistryError::Unsupported {
            operation: format!("method {} on _catalog", req.method()),
        });
    }
    if let Some(a) = &ctx.app.auth
        && !a.may_list_catalog(&ctx.grant)
    {
        return Err(ctx.challenge(Some("registry:catalog:*".into()), true));
    }
    let all: Vec<String> = ctx
        .svc()
        .meta
        .repositories()?
        .into_iter()
        .filter(|r| match &ctx.app.auth {
            None => true,
            Some(a) => a.catalog_shows(&ctx.grant, r),
        })
        .collect();
    let (page, n, more) = paginate(all, &req)?;
    let link = if more {
        link_header("/v2/_catalog", n, page.last())
    } else {
        None
    };
    Ok(paged_response(json!({"repositories": page}), link))
}

pub(crate) async fn referrers(
    ctx: &Ctx<'_>,
    repo: &str,
    digest: &str,
    req: Request,
) -> Result<Response> {
    if req.method() != Method::GET {
        return Err(RegistryError::Unsupported {
            operation: format!("method {} on referrers", req.method()),
        });
    }
    let subject: Digest = digest.parse()?;
    let q = query(&req);
    let filter = query_get(&q, "artifactType");
    let manifests = ctx.svc().referrers(repo, &subject, filter)?;
    let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    let bytes = serde_json::to_vec(&body).expect("JSON");
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, OCI_INDEX)
        .header(header::CONTENT_LENGTH, bytes.len());
    if filter.is_some() {
        b = b.header("oci-filters-applied", "artifactType");
    }
    Ok(b.body(Body::from(bytes)).expect("response"))
}
