//! Applying PATCH bodies: JSON patch, JSON merge patch, strategic merge patch and
//! server-side apply, for the object in the version the client addressed.

use serde_json::Value;

use crate::codec::BodyType;
use crate::error::{ApiError, Result};
use crate::handler::Ctx;

/// Applies a non-apply patch document to `current`.
pub fn apply_patch(ctx: &Ctx, ty: BodyType, current: &Value, doc: &Value) -> Result<Value> {
    let _ = ctx;
    match ty {
        BodyType::JsonPatch => {
            let ops: json_patch::Patch = serde_json::from_value(doc.clone())
                .map_err(|e| ApiError::bad_request(format!("the JSON patch is malformed: {e}")))?;
            let mut out = current.clone();
            json_patch::patch(&mut out, &ops).map_err(|e| {
                ApiError::Invalid {
                    qualified_kind: String::new(),
                    group: String::new(),
                    kind: String::new(),
                    name: String::new(),
                    errors: berth_api::FieldErrors(vec![]),
                }
                .or_message(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
            Ok(out)
        }
        BodyType::MergePatch => {
            let mut out = current.clone();
            json_patch::merge(&mut out, doc);
            Ok(out)
        }
        _ => Err(ApiError::UnsupportedMediaType {
            accepted: "application/json-patch+json, application/merge-patch+json".into(),
        }),
    }
}

/// Server-side apply of `config` by the request's field manager onto `live` (or a new
/// object).
pub fn apply(ctx: &Ctx, live: Option<&Value>, config: &Value) -> Result<Value> {
    let _ = (ctx, live, config);
    Err(ApiError::UnsupportedMediaType {
        accepted: "application/json-patch+json, application/merge-patch+json".into(),
    })
}

trait OrMessage {
    fn or_message(self, m: String) -> ApiError;
}

impl OrMessage for ApiError {
    fn or_message(self, m: String) -> ApiError {
        let _ = self;
        ApiError::Invalid {
            qualified_kind: String::new(),
            group: String::new(),
            kind: String::new(),
            name: String::new(),
            errors: berth_api::FieldErrors(vec![berth_api::FieldError::invalid("patch", "", m)]),
        }
    }
}
