//! `metadata.managedFields` bookkeeping for writes that are not server-side apply.

use serde_json::Value;

use crate::error::Result;
use crate::handler::Ctx;

/// Records the write of `new` (replacing `old`) by the request's field manager.
pub fn record(
    ctx: &Ctx,
    old: Option<&Value>,
    new: &mut Value,
    subresource: Option<&str>,
) -> Result<()> {
    let _ = (ctx, old, new, subresource);
    Ok(())
}
