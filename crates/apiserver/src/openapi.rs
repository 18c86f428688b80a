//! OpenAPI v3 documents (`/openapi/v3` and one document per group version).

use axum::http::HeaderMap;
use axum::response::Response;

use crate::error::{ApiError, Result};
use crate::state::ApiState;

pub fn serve_v3(st: &ApiState, path: &str, headers: &HeaderMap) -> Result<Response> {
    let _ = (st, path, headers);
    Err(ApiError::NotFoundPath)
}
