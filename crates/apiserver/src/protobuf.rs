//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded into the JSON
//! object Kubernetes would produce (kubectl 1.32 sends them for `create <kind>` and has no
//! JSON fallback).

use serde_json::Value;

use crate::error::{ApiError, Result};

pub fn decode(body: &[u8]) -> Result<Value> {
    berth_protobuf::decode(body).map_err(|e| {
        if e.is_unknown_kind() || e.is_unsupported() {
            ApiError::UnsupportedMediaType {
                accepted: format!("application/json, application/yaml ({e})"),
            }
        } else {
            ApiError::bad_request(format!("error decoding protobuf body: {e}"))
        }
    })
}
