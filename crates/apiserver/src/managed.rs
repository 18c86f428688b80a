//! `metadata.managedFields` bookkeeping for writes that are not server-side apply (apply
//! maintains them itself): the writer's field manager becomes the owner of what it changed.

use berth_api::Subresource;
use serde_json::Value;

use crate::error::Result;
use crate::handler::Ctx;

/// The fields an endpoint resets and nobody may own through it.
pub fn reset_fields(ctx: &Ctx, subresource: Option<&str>) -> &'static [&'static str] {
    match subresource {
        Some("status") => &["spec"],
        Some(_) => &[],
        None if ctx.res.has_subresource(Subresource::Status) => &["status"],
        None => &[],
    }
}

/// Records the write of `new` (replacing `old`) by the request's field manager.
pub fn record(
    ctx: &Ctx,
    old: Option<&Value>,
    new: &mut Value,
    subresource: Option<&str>,
) -> Result<()> {
    if ctx.is_apply() {
        return Ok(());
    }
    let manager = ctx.field_manager();
    let api_version = ctx.api_version();
    let time = crate::codec::now_rfc3339();
    let schema = crate::patch::schema_for(ctx, &ctx.res.kind, &ctx.res.storage_version);
    let options = berth_patch::UpdateOptions {
        manager: &manager,
        api_version: &api_version,
        subresource,
        time: &time,
        reset_fields: reset_fields(ctx, subresource),
    };
    berth_patch::record_update(old, new, &options, &schema);
    Ok(())
}
