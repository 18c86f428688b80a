//! `meta.k8s.io/v1` Table responses (what `kubectl get` prints) and PartialObjectMetadata.

use serde_json::{Map, Value, json};

use crate::handler::Ctx;

/// A Table of `objs` with the columns of the addressed resource.
pub fn table_for(
    ctx: &Ctx,
    objs: &[Value],
    rv: Option<i64>,
    continue_token: Option<&str>,
) -> Value {
    let now = jiff::Timestamp::now();
    let printer = berth_api::printers::for_kind(&ctx.res.group, &ctx.res.kind);
    let columns: Vec<Value> = printer
        .columns()
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority})
        })
        .collect();
    let include = ctx.query.include_object.as_deref().unwrap_or("Metadata");
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let cells = printer.cells(o, now);
            let mut row = json!({"cells": cells});
            match include {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => row["object"] = partial_metadata(o),
            }
            row
        })
        .collect();
    let mut meta = Map::new();
    if let Some(rv) = rv {
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
    }
    if let Some(c) = continue_token {
        meta.insert("continue".into(), json!(c));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The PartialObjectMetadata form of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}
