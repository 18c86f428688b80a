//! `meta.k8s.io/v1` Table responses (what `kubectl get` prints) and PartialObjectMetadata.
//! Built-in kinds print through `berth_api::printers`; custom resources through their CRD's
//! `additionalPrinterColumns` (JSONPath cells, `date` columns rendered as ages), as
//! Kubernetes does.

use serde_json::{Map, Value, json};

use crate::handler::Ctx;

/// Columns and cells of one resource's rows.
enum Columns {
    Builtin(&'static dyn berth_api::printers::Printer),
    /// A custom resource's `additionalPrinterColumns`.
    Custom(Vec<Value>),
}

impl Columns {
    fn of(ctx: &Ctx) -> Columns {
        if ctx.res.custom {
            let cols = ctx
                .state
                .crds
                .get(&ctx.res.group, &ctx.res.plural)
                .and_then(|d| d.columns.get(&ctx.req.version).cloned())
                .unwrap_or_default();
            return Columns::Custom(cols);
        }
        Columns::Builtin(berth_api::printers::for_kind(&ctx.res.group, &ctx.res.kind))
    }

    fn has_age(cols: &[Value]) -> bool {
        cols.iter().any(|c| c["name"] == "Age")
    }

    fn definitions(&self) -> Vec<Value> {
        let def = |c: &berth_api::printers::Column| json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority});
        match self {
            Columns::Builtin(p) => p.columns().iter().map(def).collect(),
            Columns::Custom(cols) => {
                let mut defs = vec![def(&berth_api::printers::NAME)];
                for c in cols {
                    defs.push(json!({
                        "name": c["name"],
                        "type": c["type"],
                        "format": c.get("format").cloned().unwrap_or(json!("")),
                        "description": c.get("description").cloned().unwrap_or(json!("")),
                        "priority": c.get("priority").cloned().unwrap_or(json!(0)),
                    }));
                }
                if !Self::has_age(cols) {
                    defs.push(def(&berth_api::printers::AGE));
                }
                defs
            }
        }
    }

    fn cells(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        match self {
            Columns::Builtin(p) => p.cells(obj, now),
            Columns::Custom(cols) => {
                let mut cells = vec![berth_api::printers::name(obj)];
                for c in cols {
                    let path = c["jsonPath"].as_str().unwrap_or("");
                    cells.push(custom_cell(
                        obj,
                        path,
                        c["type"].as_str().unwrap_or("string"),
                        now,
                    ));
                }
                if !Self::has_age(cols) {
                    cells.push(berth_api::printers::age(obj, now));
                }
                cells
            }
        }
    }
}

/// One cell of a custom column: the JSONPath's value(s), dates rendered as ages.
fn custom_cell(obj: &Value, path: &str, ty: &str, now: jiff::Timestamp) -> Value {
    use jsonpath_rust::JsonPath;
    let expr = if path.starts_with('$') {
        path.to_string()
    } else {
        format!("${path}")
    };
    let found: Vec<Value> = obj
        .query(&expr)
        .map(|v| v.into_iter().cloned().collect())
        .unwrap_or_default();
    match found.as_slice() {
        [] => Value::Null,
        [one] if ty == "date" => json!(berth_api::printers::since(one.as_str(), now)),
        [one] => one.clone(),
        many => json!(
            many.iter()
                .map(|v| v
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string()))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// A Table of `objs` with the columns of the addressed resource.
pub fn table_for(
    ctx: &Ctx,
    objs: &[Value],
    rv: Option<i64>,
    continue_token: Option<&str>,
) -> Value {
    let now = jiff::Timestamp::now();
    let printer = Columns::of(ctx);
    let include = ctx.query.include_object.as_deref().unwrap_or("Metadata");
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let mut row = json!({"cells": printer.cells(o, now)});
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
        "columnDefinitions": printer.definitions(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_cells_follow_json_paths() {
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let obj = json!({"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"cronSpec": "* * * * */5", "replicas": 3},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]}});
        assert_eq!(
            custom_cell(&obj, ".spec.cronSpec", "string", now),
            json!("* * * * */5")
        );
        assert_eq!(
            custom_cell(&obj, ".spec.replicas", "integer", now),
            json!(3)
        );
        assert_eq!(
            custom_cell(&obj, ".metadata.creationTimestamp", "date", now),
            json!("10m")
        );
        assert_eq!(
            custom_cell(
                &obj,
                ".status.conditions[?(@.type=='Ready')].status",
                "string",
                now
            ),
            json!("True")
        );
        assert_eq!(
            custom_cell(&obj, ".spec.missing", "string", now),
            Value::Null
        );
    }
}
