//! Schema checks of objects against OpenAPI v3 schemas: unknown fields (for
//! `fieldValidation` on every kind), and for custom resources the structural-schema rules
//! Kubernetes applies — validation (types, required, enums, bounds, lengths, patterns, item
//! counts), defaulting (`default`) and pruning of unknown fields.
//!
//! Built-in kinds use the component schemas of `berth_patch`; custom resources the
//! `openAPIV3Schema` of their CRD version (with `metadata` as `ObjectMeta`). `$ref`s resolve
//! against the built-in components.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use berth_api::{FieldError, FieldErrors, ResourceInfo};
use serde_json::{Map, Value};

use crate::state::ApiState;

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn components() -> &'static Map<String, Value> {
    berth_patch::component_schemas()
}

/// The component name of a built-in kind's schema.
pub fn component_for(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    static INDEX: LazyLock<HashMap<(String, String, String), String>> = LazyLock::new(|| {
        let mut m = HashMap::new();
        for (name, s) in components() {
            if let Some(gvks) = s
                .get("x-kubernetes-group-version-kind")
                .and_then(|v| v.as_array())
            {
                for gvk in gvks {
                    let g = gvk["group"].as_str().unwrap_or("").to_string();
                    let v = gvk["version"].as_str().unwrap_or("").to_string();
                    let k = gvk["kind"].as_str().unwrap_or("").to_string();
                    m.entry((g, v, k)).or_insert_with(|| name.clone());
                }
            }
        }
        m
    });
    INDEX
        .get(&(group.to_string(), version.to_string(), kind.to_string()))
        .map(|s| s.as_str())
}

/// Follows `$ref` (also the `allOf: [{$ref}]` wrapping) to the schema it names.
fn resolve(s: &Value) -> &Value {
    let mut cur = s;
    for _ in 0..32 {
        if let Some(r) = cur.get("$ref").and_then(|r| r.as_str()) {
            match r.rsplit('/').next().and_then(|n| components().get(n)) {
                Some(t) => cur = t,
                None => return cur,
            }
        } else if let Some([only]) = cur
            .get("allOf")
            .and_then(|a| a.as_array())
            .map(|a| a.as_slice())
        {
            cur = only;
        } else {
            return cur;
        }
    }
    cur
}

fn preserves_unknown(s: &Value) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields")
        .and_then(|v| v.as_bool())
        == Some(true)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Paths of fields of `obj` that `schema` does not declare.
fn unknown(schema: &Value, obj: &Value, path: &str, root: bool, out: &mut Vec<String>) {
    let s = resolve(schema);
    match obj {
        Value::Object(map) => {
            let props = s.get("properties").and_then(|p| p.as_object());
            let additional = s.get("additionalProperties");
            if props.is_none() && additional.is_none() {
                return; // free-form object
            }
            for (k, v) in map {
                if root && (k == "apiVersion" || k == "kind") {
                    continue;
                }
                let sub = props.and_then(|p| p.get(k)).or(match additional {
                    Some(Value::Bool(true)) | None => None,
                    Some(a) if a.is_object() => Some(a),
                    _ => None,
                });
                match sub {
                    Some(sub) => unknown(sub, v, &join(path, k), false, out),
                    None if additional == Some(&Value::Bool(true)) || preserves_unknown(s) => {}
                    None => out.push(join(path, k)),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    unknown(item, v, &format!("{path}[{i}]"), false, out);
                }
            }
        }
        _ => {}
    }
}

/// The root schema of an object of `res` in `version`, for the object's own checks.
fn root_schema(st: &ApiState, res: &ResourceInfo, version: &str) -> Option<Value> {
    if res.custom {
        return crate::crd::schema_of(st, res, version);
    }
    component_for(&res.group, version, &res.kind).map(|n| components()[n].clone())
}

/// Paths of fields in `obj` (storage version) its schema does not know.
pub fn unknown_fields(st: &ApiState, res: &ResourceInfo, obj: &Value) -> Vec<String> {
    let version = obj
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .and_then(|v| v.rsplit('/').next())
        .unwrap_or(&res.storage_version)
        .to_string();
    let Some(schema) = root_schema(st, res, &version) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    unknown(&schema, obj, "", true, &mut out);
    out
}

/// A compiled-once cache of regular expressions from CRD schemas.
fn regex(pattern: &str) -> Option<regex::Regex> {
    static CACHE: LazyLock<Mutex<HashMap<String, Option<regex::Regex>>>> =
        LazyLock::new(Default::default);
    let mut c = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    c.entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .clone()
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Validates `obj` against a structural schema, Kubernetes style.
pub fn validate_value(schema: &Value, obj: &Value, path: &str, errs: &mut FieldErrors) {
    let s = resolve(schema);
    let shown = if path.is_empty() {
        "<root>".to_string()
    } else {
        path.to_string()
    };
    if obj.is_null() {
        if s.get("nullable").and_then(|v| v.as_bool()) != Some(true) && s.get("type").is_some() {
            errs.push(FieldError::invalid(
                &shown,
                "null",
                format!(
                    "{shown} in body must be of type {}: \"null\"",
                    s["type"].as_str().unwrap_or("object")
                ),
            ));
        }
        return;
    }
    let int_or_string = s
        .get("x-kubernetes-int-or-string")
        .and_then(|v| v.as_bool())
        == Some(true);
    if let Some(t) = s.get("type").and_then(|t| t.as_str()) {
        let actual = type_of(obj);
        let ok = actual == t
            || (t == "number" && actual == "integer")
            || (int_or_string && (actual == "integer" || actual == "string"));
        if !ok && !int_or_string {
            errs.push(FieldError {
                kind: berth_api::FieldErrorType::Invalid,
                field: shown.clone(),
                value: Some(format!("\"{actual}\"")),
                detail: format!("{shown} in body must be of type {t}: \"{actual}\""),
            });
            return;
        }
    }
    if let Some(en) = s.get("enum").and_then(|e| e.as_array())
        && !en.contains(obj)
    {
        let allowed: Vec<String> = en.iter().map(|v| v.to_string()).collect();
        errs.push(FieldError {
            kind: berth_api::FieldErrorType::NotSupported,
            field: shown.clone(),
            value: Some(obj.to_string()),
            detail: format!("supported values: {}", allowed.join(", ")),
        });
    }
    match obj {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = s.get("minimum").and_then(|v| v.as_f64()) {
                let excl = s.get("exclusiveMinimum").and_then(|v| v.as_bool()) == Some(true);
                if x < min || (excl && x == min) {
                    errs.push(FieldError::invalid(
                        &shown,
                        n,
                        format!("{shown} in body should be greater than or equal to {min}"),
                    ));
                }
            }
            if let Some(max) = s.get("maximum").and_then(|v| v.as_f64()) {
                let excl = s.get("exclusiveMaximum").and_then(|v| v.as_bool()) == Some(true);
                if x > max || (excl && x == max) {
                    errs.push(FieldError::invalid(
                        &shown,
                        n,
                        format!("{shown} in body should be less than or equal to {max}"),
                    ));
                }
            }
        }
        Value::String(text) => {
            let len = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(|v| v.as_u64())
                && len < min
            {
                errs.push(FieldError::invalid(
                    &shown,
                    text,
                    format!("{shown} in body should be at least {min} chars long"),
                ));
            }
            if let Some(max) = s.get("maxLength").and_then(|v| v.as_u64())
                && len > max
            {
                errs.push(FieldError::too_long(&shown, max as usize));
            }
            if let Some(p) = s.get("pattern").and_then(|v| v.as_str())
                && regex(p).is_some_and(|re| !re.is_match(text))
            {
                errs.push(FieldError::invalid(
                    &shown,
                    text,
                    format!("{shown} in body should match '{p}'"),
                ));
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = s.get("minItems").and_then(|v| v.as_u64())
                && n < min
            {
                errs.push(FieldError::invalid(
                    &shown,
                    n,
                    format!("{shown} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = s.get("maxItems").and_then(|v| v.as_u64())
                && n > max
            {
                errs.push(FieldError {
                    kind: berth_api::FieldErrorType::TooMany,
                    field: shown.clone(),
                    value: None,
                    detail: format!("must have at most {max} items"),
                });
            }
            if let Some(item) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    validate_value(item, v, &format!("{path}[{i}]"), errs);
                }
            }
        }
        Value::Object(map) => {
            if let Some(req) = s.get("required").and_then(|r| r.as_array()) {
                for r in req.iter().filter_map(|r| r.as_str()) {
                    if !map.contains_key(r) {
                        errs.push(FieldError::required(join(path, r), ""));
                    }
                }
            }
            let props = s.get("properties").and_then(|p| p.as_object());
            for (k, v) in map {
                if path.is_empty() && (k == "apiVersion" || k == "kind" || k == "metadata") {
                    continue;
                }
                let sub = props
                    .and_then(|p| p.get(k))
                    .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()));
                if let Some(sub) = sub {
                    validate_value(sub, v, &join(path, k), errs);
                }
            }
            if let Some(max) = s.get("maxProperties").and_then(|v| v.as_u64())
                && map.len() as u64 > max
            {
                errs.push(FieldError::invalid(
                    &shown,
                    map.len(),
                    format!("{shown} in body should have at most {max} properties"),
                ));
            }
        }
        _ => {}
    }
}

/// Fills `default`s of the schema into absent fields (recursively).
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    let s = resolve(schema);
    match obj {
        Value::Object(map) => {
            if let Some(props) = s.get("properties").and_then(|p| p.as_object()) {
                for (k, sub) in props {
                    let sub_r = resolve(sub);
                    if !map.contains_key(k)
                        && let Some(d) = sub_r.get("default")
                    {
                        map.insert(k.clone(), d.clone());
                    }
                    if let Some(v) = map.get_mut(k) {
                        apply_defaults(sub, v);
                    }
                }
            } else if let Some(add) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for v in map.values_mut() {
                    apply_defaults(add, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = s.get("items") {
                for v in items {
                    apply_defaults(item, v);
                }
            }
        }
        _ => {}
    }
}

/// Removes fields the schema does not declare (unless it preserves unknown fields).
pub fn prune(schema: &Value, obj: &mut Value, root: bool) {
    let s = resolve(schema);
    if preserves_unknown(s) && s.get("properties").is_none() {
        return;
    }
    match obj {
        Value::Object(map) => {
            let props = s.get("properties").and_then(|p| p.as_object());
            let additional = s.get("additionalProperties");
            if props.is_none() && additional.is_none() {
                if !preserves_unknown(s)
                    && !root
                    && s.get("type").and_then(|t| t.as_str()) == Some("object")
                {
                    map.clear();
                }
                return;
            }
            let keep_unknown = preserves_unknown(s) || additional == Some(&Value::Bool(true));
            map.retain(|k, _| {
                (root && (k == "apiVersion" || k == "kind" || k == "metadata"))
                    || props.is_some_and(|p| p.contains_key(k))
                    || additional.is_some_and(|a| a.is_object())
                    || keep_unknown
            });
            for (k, v) in map.iter_mut() {
                if root && k == "metadata" {
                    continue;
                }
                if let Some(sub) = props
                    .and_then(|p| p.get(k))
                    .or_else(|| additional.filter(|a| a.is_object()))
                {
                    prune(sub, v, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = s.get("items") {
                for v in items {
                    prune(item, v, false);
                }
            }
        }
        _ => {}
    }
}

/// The schema Kubernetes uses for a custom resource: the CRD's, with `metadata` typed as
/// ObjectMeta.
pub fn custom_root(open_api_v3_schema: &Value) -> Value {
    let mut s = open_api_v3_schema.clone();
    if let Some(props) = s.get_mut("properties").and_then(|p| p.as_object_mut()) {
        props.insert(
            "metadata".into(),
            serde_json::json!({"$ref": format!("#/components/schemas/{OBJECT_META}")}),
        );
    }
    s
}

/// Validation of custom resources against their CRD's schema (built-in kinds are validated
/// by `berth_api::validation`).
pub fn validate_custom(st: &ApiState, res: &ResourceInfo, obj: &Value) -> FieldErrors {
    let mut errs = FieldErrors::default();
    if !res.custom {
        return errs;
    }
    if let Some(schema) = crate::crd::schema_of(st, res, &res.storage_version) {
        validate_value(&schema, obj, "", &mut errs);
    }
    errs
}

/// Defaulting and pruning of a custom resource, before validation.
pub fn default_and_prune_custom(st: &ApiState, res: &ResourceInfo, obj: &mut Value) {
    if !res.custom {
        return;
    }
    if let Some(schema) = crate::crd::schema_of(st, res, &res.storage_version) {
        prune(&schema, obj, true);
        apply_defaults(&schema, obj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment_schema() -> Value {
        components()[component_for("apps", "v1", "Deployment").expect("deployment schema")].clone()
    }

    #[test]
    fn unknown_fields_of_builtins_are_found_with_paths() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "bogus": 1},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "b", "imagePullPolicyy": "x"}]}}}});
        let mut out = Vec::new();
        unknown(&deployment_schema(), &d, "", true, &mut out);
        assert_eq!(
            out,
            vec![
                "metadata.bogus".to_string(),
                "spec.template.spec.containers[0].imagePullPolicyy".to_string()
            ]
        );
        let mut none = Vec::new();
        unknown(
            &deployment_schema(),
            &json!({"metadata": {"labels": {"any": "thing"}}, "spec": {"selector": {"matchLabels": {"a": "b"}}}}),
            "",
            true,
            &mut none,
        );
        assert!(none.is_empty(), "{none:?}");
    }

    fn crd_schema() -> Value {
        custom_root(&json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["cronSpec"], "properties": {
                "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "image": {"type": "string"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}))
    }

    #[test]
    fn custom_resources_are_validated_defaulted_and_pruned() {
        let s = crd_schema();
        let mut obj = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "c"},
            "spec": {"cronSpec": "* * * * */5", "image": "x", "extra": 1, "free": {"a": {"b": 1}}}});
        prune(&s, &mut obj, true);
        apply_defaults(&s, &mut obj);
        assert!(obj["spec"].get("extra").is_none());
        assert_eq!(obj["spec"]["free"]["a"]["b"], 1);
        assert_eq!(obj["spec"]["replicas"], 1);
        let mut errs = FieldErrors::default();
        validate_value(&s, &obj, "", &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        let bad = json!({"metadata": {"name": "c"}, "spec": {"cronSpec": "nope", "replicas": 20, "image": 5}});
        let mut errs = FieldErrors::default();
        validate_value(&s, &bad, "", &mut errs);
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.cronSpec", "spec.replicas", "spec.image"]);
        let mut errs = FieldErrors::default();
        validate_value(&s, &json!({"spec": {}}), "", &mut errs);
        assert_eq!(errs.0[0].field, "spec.cronSpec");
    }
}
