//! Applying PATCH bodies — JSON patch, JSON merge patch, strategic merge patch and
//! server-side apply — with the schema of the addressed kind and version (built-in kinds from
//! `berth_patch`, custom resources from their CRD).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use berth_patch::SchemaRef;
use serde_json::Value;

use crate::codec::BodyType;
use crate::error::{ApiError, Result};
use crate::handler::Ctx;

/// The patch schema of the object a request addresses.
pub fn schema_for(ctx: &Ctx, kind: &str, version: &str) -> SchemaRef {
    if ctx.res.custom {
        // Compiled once per CRD schema (keyed by its text).
        static CACHE: LazyLock<Mutex<HashMap<String, SchemaRef>>> = LazyLock::new(Default::default);
        if let Some(details) = ctx.state.crds.get(&ctx.res.group, &ctx.res.plural)
            && let Some(s) = details.schemas.get(version)
        {
            let key = s.to_string();
            let mut c = CACHE.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = c.get(&key) {
                return r.clone();
            }
            if let Ok(r) = berth_patch::from_crd_openapi(s) {
                if c.len() > 256 {
                    c.clear();
                }
                c.insert(key, r.clone());
                return r;
            }
        }
        return SchemaRef::untyped();
    }
    berth_patch::builtin(&ctx.res.group, version, kind).unwrap_or_else(SchemaRef::untyped)
}

/// Applies a non-apply patch document to `current` (in the request's version).
pub fn apply_patch(ctx: &Ctx, ty: BodyType, current: &Value, doc: &Value) -> Result<Value> {
    match ty {
        BodyType::JsonPatch => {
            let ops: json_patch::Patch = serde_json::from_value(doc.clone())
                .map_err(|e| ApiError::bad_request(format!("the JSON patch is malformed: {e}")))?;
            let mut out = current.clone();
            json_patch::patch(&mut out, &ops).map_err(|e| ApiError::Unprocessable {
                message: format!("the JSON patch cannot be applied: {e}"),
            })?;
            Ok(out)
        }
        BodyType::MergePatch => {
            let mut out = current.clone();
            json_patch::merge(&mut out, doc);
            Ok(out)
        }
        BodyType::StrategicMergePatch => {
            if ctx.res.custom {
                return Err(ApiError::UnsupportedMediaType {
                    accepted: "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (strategic merge patch is not supported for custom resources)".into(),
                });
            }
            let kind = current.get("kind").and_then(|k| k.as_str()).unwrap_or(&ctx.res.kind).to_string();
            let version = current
                .get("apiVersion")
                .and_then(|v| v.as_str())
                .and_then(|v| v.rsplit('/').next())
                .unwrap_or(&ctx.req.version)
                .to_string();
            let schema = schema_for(ctx, &kind, &version);
            Ok(berth_patch::strategic_merge(current, doc, &schema)?)
        }
        _ => Err(ApiError::UnsupportedMediaType {
            accepted: "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml".into(),
        }),
    }
}

/// Server-side apply of `config` by the request's field manager onto `live` (or a new
/// object), both in the request's version.
pub fn apply(ctx: &Ctx, live: Option<&Value>, config: &Value) -> Result<Value> {
    let manager = ctx.query.field_manager.clone().unwrap_or_default();
    let api_version = ctx.api_version();
    let time = crate::codec::now_rfc3339();
    let subresource = ctx.req.subresource.as_deref();
    let options = berth_patch::ApplyOptions {
        manager: &manager,
        force: ctx.query.force,
        api_version: &api_version,
        subresource,
        time: &time,
        reset_fields: crate::managed::reset_fields(ctx, subresource),
    };
    let schema = schema_for(ctx, &ctx.res.kind, &ctx.req.version);
    Ok(berth_patch::apply(live, config, &options, &schema)?)
}
