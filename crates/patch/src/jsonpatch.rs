//! JSON patch (RFC 6902, `application/json-patch+json`) over the `json-patch` crate, with
//! Kubernetes' limit on the number of operations and errors that name the failing operation.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::smp::kind_name;

/// Kubernetes refuses JSON patches with more operations than this.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Applies a JSON patch (a list of operations) to `original`. Either every operation applies
/// or the result is an error naming the first failing operation (its index, op and path).
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value> {
    json_patch_owned(original.clone(), patch)
}

/// [`json_patch()`] consuming `original`, which saves a deep copy.
pub fn json_patch_owned(mut original: Value, patch: &Value) -> Result<Value> {
    let Value::Array(ops) = patch else {
        return Err(Error::bad_patch(
            "",
            format!(
                "a JSON patch must be a list of operations, got {}",
                kind_name(patch)
            ),
        ));
    };
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(Error::bad_patch(
            "",
            format!(
                "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                ops.len()
            ),
        ));
    }
    let mut parsed = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        let operation: json_patch::PatchOperation = serde_json::from_value(op.clone())
            .map_err(|e| Error::bad_patch(format!("operation {index}"), e.to_string()))?;
        parsed.push(operation);
    }
    json_patch::patch(&mut original, &parsed).map_err(|e| {
        let op = ops[e.operation]
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("?");
        Error::patch_failed(
            format!("operation {} ({op} {})", e.operation, e.path),
            e.kind.to_string(),
        )
    })?;
    Ok(original)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn applies_operations_in_order() {
        let out = json_patch(
            &json!({"spec": {"replicas": 2, "template": {"a": 1}}, "metadata": {"annotations": {"x": "1"}}}),
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {"op": "test", "path": "/spec/replicas", "value": 5},
                {"op": "replace", "path": "/spec/template", "value": {"b": 2}},
                {"op": "add", "path": "/metadata/annotations/y", "value": "2"},
                {"op": "remove", "path": "/metadata/annotations/x"},
                {"op": "copy", "from": "/spec/replicas", "path": "/spec/copy"},
                {"op": "move", "from": "/spec/copy", "path": "/spec/moved"}
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"replicas": 5, "template": {"b": 2}, "moved": 5}, "metadata": {"annotations": {"y": "2"}}})
        );
    }

    #[test]
    fn failures_name_the_operation_and_change_nothing() {
        let original = json!({"spec": {"replicas": 2}});
        let e = json_patch(
            &original,
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "remove", "path": "/spec/missing"}
            ]),
        )
        .unwrap_err();
        assert!(e.is_unprocessable());
        let text = e.to_string();
        assert!(
            text.contains("operation 1 (remove /spec/missing)"),
            "{text}"
        );
        let e = json_patch(
            &original,
            &json!([{"op": "test", "path": "/spec/replicas", "value": 9}]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("operation 0 (test /spec/replicas)"),
            "{e}"
        );
    }

    #[test]
    fn malformed_patches_are_bad_requests() {
        let e = json_patch(&json!({}), &json!({"op": "add"})).unwrap_err();
        assert!(e.is_bad_request());
        let e = json_patch(&json!({}), &json!([{"op": "frob", "path": "/a"}])).unwrap_err();
        assert!(e.is_bad_request());
        assert!(e.to_string().contains("operation 0"), "{e}");
        let e = json_patch(&json!({}), &json!([{"op": "add", "value": 1}])).unwrap_err();
        assert!(e.to_string().contains("path"), "{e}");
        let too_many = Value::Array(vec![
            json!({"op": "test", "path": "", "value": {}});
            MAX_JSON_PATCH_OPERATIONS + 1
        ]);
        let e = json_patch(&json!({}), &too_many).unwrap_err();
        assert!(e.to_string().contains("maximum operations"), "{e}");
    }

    #[test]
    fn kubectl_rollout_undo_shape() {
        // polymorphichelpers/rollback.go replaces the template and the annotations.
        let out = json_patch(
            &json!({"metadata": {"annotations": {"a": "1"}}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "new"}]}}}}),
            &json!([
                {"op": "replace", "path": "/spec/template", "value": {"spec": {"containers": [{"name": "c", "image": "old"}]}}},
                {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "1"}}
            ]),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "old"
        );
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"deployment.kubernetes.io/revision": "1"})
        );
    }
}
