//! Blob routes: HEAD/GET (with `Range`), DELETE, and uploads (monolithic POST, POST+PUT,
//! chunked and streamed PATCH, status, cancel, cross-repository mount). Bodies are streamed
//! into the blob writer frame by frame; nothing parses them as forms.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode, header};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use crate::auth::Actions;
use crate::digest::Digest;
use crate::error::{RegistryError, Result};
use crate::http::{Ctx, query, query_get};
use crate::service::copy_body;

const STREAM_CHUNK: usize = 1 << 20;

fn unsupported_method(m: &Method) -> RegistryError {
    RegistryError::Unsupported {
        operation: format!("method {m} on this route"),
    }
}

/// Parses a `Range: bytes=…` header against a blob of `size` bytes: `None` to serve the
/// whole blob, `Some(Err(()))` when unsatisfiable.
pub(crate) fn parse_range(h: &str, size: u64) -> Option<std::result::Result<(u64, u64), ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || size == 0 {
            return Some(Err(()));
        }
        return Some(Ok((size - n.min(size), size - 1)));
    }
    let start: u64 = a.parse().ok()?;
    let end: u64 = if b.is_empty() {
        u64::MAX
    } else {
        b.parse().ok()?
    };
    if start >= size || start > end {
        return Some(Err(()));
    }
    Some(Ok((start, end.min(size - 1))))
}

pub(crate) async fn blob(
    ctx: &Ctx<'_>,
    repo: &str,
    digest: &str,
    req: Request,
) -> Result<Response> {
    let d: Digest = digest.parse()?;
    let method = req.method().clone();
    match method {
        Method::GET | Method::HEAD => {
            ctx.require(repo, Actions::PULL)?;
            let st = ctx.svc().blob_stat(repo, &d).await?;
            let etag = format!("\"{d}\"");
            let b = Response::builder()
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header("docker-content-digest", d.to_string())
                .header(header::ETAG, &etag)
                .header(header::ACCEPT_RANGES, "bytes")
                .header(header::CACHE_CONTROL, "max-age=31536000");
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
            let range = req
                .headers()
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|h| parse_range(h, st.size));
            let (status, start, len, b) = match range {
                None => (StatusCode::OK, 0, st.size, b),
                Some(Err(())) => {
                    return Ok(b
                        .status(StatusCode::RANGE_NOT_SATISFIABLE)
                        .header(header::CONTENT_RANGE, format!("bytes */{}", st.size))
                        .header(header::CONTENT_LENGTH, 0)
                        .body(Body::empty())
                        .expect("response"));
                }
                Some(Ok((s, e))) => (
                    StatusCode::PARTIAL_CONTENT,
                    s,
                    e - s + 1,
                    b.header(header::CONTENT_RANGE, format!("bytes {s}-{e}/{}", st.size)),
                ),
            };
            let b = b.status(status).header(header::CONTENT_LENGTH, len);
            if method == Method::HEAD {
                return Ok(b.body(Body::empty()).expect("response"));
            }
            let reader = ctx.svc().blob_reader(&d, start).await?;
            let stream = ReaderStream::with_capacity(reader.take(len), STREAM_CHUNK);
            Ok(b.body(Body::from_stream(stream)).expect("response"))
        }
        Method::DELETE => {
            ctx.require(repo, Actions::DELETE)?;
            ctx.svc().delete_blob(repo, &d).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        m => Err(unsupported_method(&m)),
    }
}

fn empty(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("response")
}

fn upload_location(repo: &str, id: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn accepted_upload(ctx: &Ctx<'_>, repo: &str, id: &str, size: u64, status: StatusCode) -> Response {
    let mut b = Response::builder()
        .status(status)
        .header(header::LOCATION, upload_location(repo, id))
        .header(header::RANGE, range_header(size))
        .header("docker-upload-uuid", id)
        .header(header::CONTENT_LENGTH, 0);
    let min = ctx.svc().settings.chunk_min_length;
    if min > 0 {
        b = b.header("oci-chunk-min-length", min);
    }
    b.body(Body::empty()).expect("response")
}

fn created_blob(repo: &str, d: &Digest) -> Response {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{repo}/blobs/{d}"))
        .header("docker-content-digest", d.to_string())
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("response")
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether the request has no body at all.
fn body_is_empty(req: &Request) -> bool {
    use axum::body::HttpBody as _;
    req.body().size_hint().exact() == Some(0) || content_length(req.headers()) == Some(0)
}

pub(crate) async fn upload_start(ctx: &Ctx<'_>, repo: &str, req: Request) -> Result<Response> {
    if req.method() != Method::POST {
        return Err(unsupported_method(req.method()));
    }
    ctx.require(repo, Actions::PUSH)?;
    let q = query(&req);
    if let Some(m) = query_get(&q, "mount") {
        let d: Digest = m.parse()?;
        if let Some(from) = query_get(&q, "from")
            && crate::names::validate_name(from).is_ok()
            && ctx.allowed(from).contains(Actions::PULL)
            && ctx.svc().mount(repo, from, &d).await?
        {
            return Ok(created_blob(repo, &d));
        }
        // Not mountable: fall back to a new session, as the spec prescribes.
        let id = ctx.svc().start_upload(repo).await?;
        return Ok(accepted_upload(ctx, repo, &id, 0, StatusCode::ACCEPTED));
    }
    if let Some(dg) = query_get(&q, "digest") {
        let d: Digest = dg.parse()?;
        let empty_digest = Digest::of(d.algorithm(), b"");
        if !body_is_empty(&req) || d == empty_digest {
            // Single-request monolithic upload.
            let mut w = ctx.svc().driver.writer().await?;
            if let Err(e) = copy_body(req.into_body(), w.as_mut()).await {
                let _ = w.cancel().await;
                return Err(e);
            }
            ctx.svc().commit(repo, w, &d).await?;
            return Ok(created_blob(repo, &d));
        }
    }
    let id = ctx.svc().start_upload(repo).await?;
    Ok(accepted_upload(ctx, repo, &id, 0, StatusCode::ACCEPTED))
}

/// Parses `Content-Range: <start>-<end>` (also accepting a `bytes ` prefix and `/total`).
fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let v = v.trim();
    let v = v
        .strip_prefix("bytes ")
        .or_else(|| v.strip_prefix("bytes="))
        .unwrap_or(v);
    let v = v.split('/').next()?;
    let (a, b) = v.split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

pub(crate) async fn upload(ctx: &Ctx<'_>, repo: &str, id: &str, req: Request) -> Result<Response> {
    let need = if req.method() == Method::GET {
        Actions::PULL
    } else {
        Actions::PUSH
    };
    ctx.require(repo, need)?;
    let svc = ctx.svc();
    let sess = svc.uploads.get(repo, id)?;
    let mut s = sess.lock().await;
    if s.repo != repo || s.writer.is_none() {
        return Err(RegistryError::UploadUnknown { id: id.to_owned() });
    }
    let method = req.method().clone();
    // Only requests that move data keep a session alive (status polls do not).
    if method != Method::GET {
        s.last_used = std::time::Instant::now();
    }
    match method {
        Method::GET => Ok(accepted_upload(
            ctx,
            repo,
            id,
            s.offset(),
            StatusCode::NO_CONTENT,
        )),
        Method::DELETE => {
            if let Some(w) = s.writer.take() {
                w.cancel().await?;
            }
            svc.uploads.remove(id);
            Ok(empty(StatusCode::NO_CONTENT))
        }
        Method::PATCH | Method::PUT => {
            let offset = s.offset();
            let headers = req.headers().clone();
            let cr = headers
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut expect_len = None;
            if let Some(cr) = &cr {
                let Some((start, end)) = parse_content_range(cr) else {
                    return Err(RegistryError::RangeInvalid {
                        id: id.into(),
                        range: cr.clone(),
                        offset,
                    });
                };
                let len = end - start + 1;
                if start != offset || content_length(&headers).is_some_and(|cl| cl != len) {
                    return Err(RegistryError::RangeInvalid {
                        id: id.into(),
                        range: cr.clone(),
                        offset,
                    });
                }
                expect_len = Some(len);
            }
            let digest = if method == Method::PUT {
                let q = query(&req);
                let dg = query_get(&q, "digest").ok_or_else(|| RegistryError::DigestInvalid {
                    digest: String::new(),
                    reason: "the digest query parameter is missing".into(),
                })?;
                Some(dg.parse::<Digest>()?)
            } else {
                None
            };
            let w = s.writer.as_mut().expect("checked above");
            let received = copy_body(req.into_body(), w.as_mut()).await;
            s.last_used = std::time::Instant::now();
            let received = received?;
            if let Some(len) = expect_len
                && received != len
            {
                return Err(RegistryError::UploadInvalid {
                    id: id.into(),
                    reason: format!("received {received} bytes, Content-Range announced {len}"),
                });
            }
            match digest {
                None => Ok(accepted_upload(
                    ctx,
                    repo,
                    id,
                    s.offset(),
                    StatusCode::ACCEPTED,
                )),
                Some(d) => {
                    svc.finish_upload(id, &mut s, &d).await?;
                    Ok(created_blob(repo, &d))
                }
            }
        }
        m => Err(unsupported_method(&m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=500-1499", 5000), Some(Ok((500, 1499))));
        assert_eq!(parse_range("bytes=500-", 5000), Some(Ok((500, 4999))));
        assert_eq!(parse_range("bytes=-500", 5000), Some(Ok((4500, 4999))));
        assert_eq!(
            parse_range("bytes=2000-50000", 5000),
            Some(Ok((2000, 4999)))
        );
        assert_eq!(parse_range("bytes=500-0", 5000), Some(Err(())));
        assert_eq!(parse_range("bytes=5000-10000", 5000), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 5000), None);
        assert_eq!(parse_range("items=0-1", 5000), None);
        assert_eq!(parse_content_range("0-999"), Some((0, 999)));
        assert_eq!(parse_content_range("bytes 10-19/*"), Some((10, 19)));
        assert_eq!(parse_content_range("9-1"), None);
    }
}
