//! Streaming subresources (logs, exec, attach, port-forward, proxy) are served by the node
//! agent that runs the pod; the API server forwards them.

use axum::response::Response;
use berth_api::Subresource;
use bytes::Bytes;

use crate::error::{ApiError, Result};
use crate::handler::Ctx;

pub async fn serve(ctx: Ctx, sub: Subresource, body: Bytes) -> Result<Response> {
    let _ = body;
    Err(ApiError::ServiceUnavailable {
        message: format!(
            "{}/{} of {} \"{}\": no node agent connection is available",
            ctx.res.plural,
            sub.name(),
            ctx.res.plural,
            ctx.name()
        ),
    })
}
