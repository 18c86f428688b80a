//! JSON merge patch (RFC 7386, `application/merge-patch+json`) over the `json-patch` crate.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::smp::kind_name;

/// Applies a JSON merge patch to `original`: objects merge recursively, `null` deletes,
/// everything else (lists included) replaces. Kubernetes accepts only object patches on
/// objects; anything else is a bad request here.
pub fn merge_patch(original: &Value, patch: &Value) -> Result<Value> {
    merge_patch_owned(original.clone(), patch)
}

/// [`merge_patch`] consuming `original`, which saves a deep copy.
pub fn merge_patch_owned(mut original: Value, patch: &Value) -> Result<Value> {
    if !patch.is_object() {
        return Err(Error::bad_patch(
            "",
            format!(
                "a merge patch must be a JSON object, got {}",
                kind_name(patch)
            ),
        ));
    }
    if !original.is_object() {
        return Err(Error::patch_failed(
            "",
            "the patched document is not a JSON object",
        ));
    }
    json_patch::merge(&mut original, patch);
    Ok(original)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{Strategy as _, prop_assert_eq, proptest};
    use serde_json::{Map, json};

    #[test]
    fn merges_replaces_and_deletes() {
        let out = merge_patch(
            &json!({"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": 1}),
            &json!({"a": {"b": null, "c": [3], "n": {"k": null, "v": 1}}, "d": null, "f": true}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"a": {"c": [3], "n": {"v": 1}}, "e": 1, "f": true})
        );
    }

    #[test]
    fn kubectl_label_annotate_scale_patches() {
        let live =
            json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 2}});
        let out = merge_patch(
            &live,
            &json!({"metadata": {"labels": {"tier": "frontend"}}}),
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app": "web", "tier": "frontend"})
        );
        let out = merge_patch(&live, &json!({"metadata": {"labels": {"app": null}}})).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({}));
        let out = merge_patch(
            &live,
            &json!({"metadata": {"annotations": {"note": "hello"}}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["annotations"], json!({"note": "hello"}));
        let out = merge_patch(&live, &json!({"spec": {"replicas": 5}})).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
    }

    #[test]
    fn non_object_patches_are_bad_requests() {
        let e = merge_patch(&json!({}), &json!([1])).unwrap_err();
        assert!(e.is_bad_request());
        assert!(e.to_string().contains("got list"), "{e}");
        assert!(
            merge_patch(&json!({}), &json!(null))
                .unwrap_err()
                .is_bad_request()
        );
        assert!(
            merge_patch(&json!([]), &json!({}))
                .unwrap_err()
                .is_unprocessable()
        );
    }

    /// The RFC 7386 patch that turns `from` into `to` (objects recurse; removals are nulls).
    fn diff(from: &Value, to: &Value) -> Value {
        match (from, to) {
            (Value::Object(f), Value::Object(t)) => {
                let mut patch = Map::new();
                for (k, v) in t {
                    match f.get(k) {
                        Some(old) if old == v => {}
                        Some(old) => {
                            patch.insert(k.clone(), diff(old, v));
                        }
                        None => {
                            patch.insert(k.clone(), v.clone());
                        }
                    }
                }
                for k in f.keys() {
                    if !t.contains_key(k) {
                        patch.insert(k.clone(), Value::Null);
                    }
                }
                Value::Object(patch)
            }
            (_, to) => to.clone(),
        }
    }

    fn document() -> impl proptest::strategy::Strategy<Value = Value> {
        let leaf = proptest::prop_oneof![
            (0i64..3).prop_map(Value::from),
            "[ab]".prop_map(Value::from),
            proptest::collection::vec(0i64..3, 0..2).prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            proptest::collection::btree_map("[a-c]", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
        .prop_map(|v| if v.is_object() { v } else { json!({"v": v}) })
    }

    proptest! {
        #[test]
        fn merge_patch_of_the_diff_reproduces_the_target(from in document(), to in document()) {
            prop_assert_eq!(merge_patch(&from, &diff(&from, &to)).unwrap(), to);
        }

        #[test]
        fn empty_merge_patch_is_identity(doc in document()) {
            prop_assert_eq!(merge_patch(&doc, &json!({})).unwrap(), doc);
        }
    }
}
