//! Turning a request body into an object of the addressed resource in its storage version:
//! decoding by media type, checking `apiVersion`/`kind`, and field validation
//! (`fieldValidation=Strict|Warn|Ignore`).

use axum::http::header;
use berth_api::ResourceInfo;
use serde_json::Value;

use crate::codec::{BodyType, FieldProblems, decode_object};
use crate::error::{ApiError, Result};
use crate::handler::Ctx;
use crate::query::FieldValidation;

/// The body's media type, or 415 for one the server cannot read.
pub fn body_type(ctx: &Ctx) -> Result<BodyType> {
    let ct = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    BodyType::from_content_type(ct).ok_or_else(|| ApiError::UnsupportedMediaType {
        accepted: "application/json, application/yaml, application/vnd.kubernetes.protobuf".into(),
    })
}

/// Decodes an object body of any supported media type, without schema checks.
pub fn decode_any(body: &[u8], ty: BodyType, problems: &mut FieldProblems) -> Result<Value> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request(
            "the request body is empty: an object is required",
        ));
    }
    let v = match ty {
        BodyType::Protobuf => berth_protobuf_decode(body)?,
        _ => decode_object(body, ty, problems)?,
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "the request body must be an object, got {}",
            type_name(&v)
        )));
    }
    Ok(v)
}

fn berth_protobuf_decode(body: &[u8]) -> Result<Value> {
    crate::protobuf::decode(body)
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks `apiVersion` and `kind` against what the endpoint serves (filling them in when
/// absent) and converts the object to the storage version.
pub fn check_type(
    res: &ResourceInfo,
    version: &str,
    obj: &mut Value,
    expected_kind: Option<&str>,
) -> Result<()> {
    let kind = expected_kind.unwrap_or(&res.kind);
    let api_version = res.api_version(version);
    match obj.get("kind").and_then(|k| k.as_str()) {
        None | Some("") => obj["kind"] = Value::String(kind.to_string()),
        Some(k) if k == kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind of the provided object ({k}) does not match the kind of the request ({kind})"
            )));
        }
    }
    match obj.get("apiVersion").and_then(|k| k.as_str()) {
        None | Some("") => obj["apiVersion"] = Value::String(api_version),
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    Ok(())
}

/// Applies the request's field validation to problems found while decoding. Returns the
/// warnings to send (for `Warn`).
pub fn field_validation(
    ctx: &Ctx,
    res: &ResourceInfo,
    obj: &Value,
    mut problems: FieldProblems,
) -> Result<Vec<String>> {
    let mode = ctx.query.field_validation.unwrap_or(FieldValidation::Warn);
    if mode == FieldValidation::Ignore {
        return Ok(vec![]);
    }
    problems
        .unknown
        .extend(crate::schema::unknown_fields(&ctx.state, res, obj));
    if problems.is_empty() {
        return Ok(vec![]);
    }
    let msgs = problems.messages();
    match mode {
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            msgs.join(", ")
        ))),
        _ => Ok(msgs),
    }
}

/// Decodes the body of a create/update into a checked object of the addressed resource, in
/// its storage version, with the warnings field validation produced.
pub fn object_from_body(ctx: &Ctx, body: &[u8]) -> Result<(Value, Vec<String>)> {
    let ty = body_type(ctx)?;
    if !matches!(ty, BodyType::Json | BodyType::Yaml | BodyType::Protobuf) {
        return Err(ApiError::UnsupportedMediaType {
            accepted: "application/json, application/yaml, application/vnd.kubernetes.protobuf"
                .into(),
        });
    }
    let mut problems = FieldProblems::default();
    let mut obj = decode_any(body, ty, &mut problems)?;
    check_type(&ctx.res, &ctx.req.version, &mut obj, None)?;
    let warnings = field_validation(ctx, &ctx.res, &obj, problems)?;
    let obj = crate::versions::to_storage(&ctx.res, &ctx.req.version, obj)?;
    Ok((obj, warnings))
}
