//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`).

use serde_json::Value;

use crate::error::{ApiError, Result};

pub fn decode(body: &[u8]) -> Result<Value> {
    let _ = body;
    Err(ApiError::UnsupportedMediaType {
        accepted: "application/json, application/yaml".into(),
    })
}
