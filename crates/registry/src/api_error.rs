//! The one place where registry errors become HTTP responses with OCI error JSON
//! (`{"errors":[{"code","message","detail"}]}`).

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::error::RegistryError;

fn status_code_detail(e: &RegistryError) -> (StatusCode, &'static str, Value) {
    use RegistryError as E;
    match e {
        E::DigestInvalid { digest, reason } => (
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            json!({"digest": digest, "reason": reason}),
        ),
        E::DigestMismatch { expected, actual } => (
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            json!({"expected": expected, "actual": actual}),
        ),
        E::BlobUnknown { digest } => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN", json!(digest)),
        E::UploadUnknown { id } => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", json!(id)),
        E::RangeInvalid { offset, range, .. } => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            json!({"range": range, "offset": offset}),
        ),
        E::UploadInvalid { id, reason } => (
            StatusCode::BAD_REQUEST,
            "BLOB_UPLOAD_INVALID",
            json!({"id": id, "reason": reason}),
        ),
        E::NameInvalid { name, reason } => (
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            json!({"name": name, "reason": reason}),
        ),
        E::NameUnknown { name } => (StatusCode::NOT_FOUND, "NAME_UNKNOWN", json!({"name": name})),
        E::TagInvalid { tag, reason } => (
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            json!({"tag": tag, "reason": reason}),
        ),
        E::ManifestUnknown { name, reference } => (
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            json!({"name": name, "reference": reference}),
        ),
        E::ManifestInvalid { reason } => {
            (StatusCode::BAD_REQUEST, "MANIFEST_INVALID", json!(reason))
        }
        E::ManifestTooLarge { size, limit } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "MANIFEST_INVALID",
            json!({"size": size, "limit": limit}),
        ),
        E::ManifestBlobUnknown { .. } => (
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
            Value::Null,
        ),
        E::PaginationInvalid { param, reason } => (
            StatusCode::BAD_REQUEST,
            "PAGINATION_NUMBER_INVALID",
            json!({"param": param, "reason": reason}),
        ),
        E::BodyInvalid { reason } => (
            StatusCode::BAD_REQUEST,
            "BLOB_UPLOAD_INVALID",
            json!(reason),
        ),
        E::Unsupported { operation } => (
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            json!(operation),
        ),
        E::Unauthorized { scope, .. } => (
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            json!({"scope": scope}),
        ),
        E::Denied { scope, .. } => (StatusCode::FORBIDDEN, "DENIED", json!({"scope": scope})),
        E::Config { .. } | E::Crypto { .. } | E::Io { .. } | E::Locked { .. } => {
            (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", Value::Null)
        }
    }
}

/// The response for `e`; `head` omits the body (but keeps its length).
pub(crate) fn response(e: &RegistryError, head: bool) -> Response {
    let (status, code, detail) = status_code_detail(e);
    let message = if e.is_internal() {
        "internal error".to_owned()
    } else {
        e.to_string()
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "request failed");
    } else {
        tracing::debug!(error = %e, "request rejected");
    }
    let errors: Vec<Value> = match e {
        RegistryError::ManifestBlobUnknown { missing, .. } => missing
            .iter()
            .map(|d| json!({"code": code, "message": "manifest references a blob unknown to the repository", "detail": d}))
            .collect(),
        _ => vec![json!({"code": code, "message": message, "detail": detail})],
    };
    let body = serde_json::to_vec(&json!({ "errors": errors })).expect("error JSON");
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(header::CONTENT_LENGTH, body.len());
    match e {
        RegistryError::Unauthorized { challenge, .. } | RegistryError::Denied { challenge, .. }
            if !challenge.is_empty() =>
        {
            if let Ok(v) = HeaderValue::from_str(challenge) {
                b = b.header(header::WWW_AUTHENTICATE, v);
            }
        }
        RegistryError::RangeInvalid { offset, .. } => {
            b = b.header(header::RANGE, format!("0-{}", offset.saturating_sub(1)));
        }
        _ => {}
    }
    b.body(if head {
        Body::empty()
    } else {
        Body::from(body)
    })
    .expect("valid error response")
}
