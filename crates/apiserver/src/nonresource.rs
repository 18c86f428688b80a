//! Non-resource endpoints: `/version`, health (`/livez`, `/readyz`, `/healthz`) and the
//! OpenAPI documents.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{ApiError, Result};
use crate::handler::json_response;
use crate::state::ApiState;

/// The Kubernetes version berth presents (the API level its behaviour follows).
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "32";

pub async fn serve(st: &ApiState, path: &str, headers: &HeaderMap) -> Result<Response> {
    match path {
        "/version" | "/version/" => Ok(json_response(
            StatusCode::OK,
            &json!({
                "major": KUBE_MAJOR,
                "minor": KUBE_MINOR,
                "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+berth-{}", env!("CARGO_PKG_VERSION")),
                "gitCommit": "",
                "gitTreeState": "clean",
                "buildDate": "",
                "goVersion": "",
                "compiler": "rustc",
                "platform": format!("{}/{}", std::env::consts::OS, arch()),
            }),
        )),
        "/livez" | "/healthz" | "/livez/ping" | "/healthz/ping" => {
            Ok((StatusCode::OK, "ok").into_response())
        }
        "/readyz" | "/readyz/ping" => match st.store.current_revision().await {
            Ok(rev)
                if st
                    .cache
                    .wait_for(rev, std::time::Duration::from_secs(2))
                    .await =>
            {
                Ok((StatusCode::OK, "ok").into_response())
            }
            Ok(_) => Ok((
                StatusCode::SERVICE_UNAVAILABLE,
                "[-]watch-cache failed: not synced\nreadyz check failed",
            )
                .into_response()),
            Err(e) => Ok((
                StatusCode::SERVICE_UNAVAILABLE,
                format!("[-]etcd failed: {e}\nreadyz check failed"),
            )
                .into_response()),
        },
        p if p == "/openapi/v3" || p.starts_with("/openapi/v3/") => {
            crate::openapi::serve_v3(st, p, headers)
        }
        _ => Err(ApiError::NotFoundPath),
    }
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
