//! Resource quantities in defaulted objects: Kubernetes rounds every resource list value up
//! to milli-units (`SetDefaults_ResourceList`) and always writes quantities back in their
//! canonical form (`0.5` → `500m`, `1.5Gi` → `1536Mi`, numbers → strings). Values that do not
//! parse are left for validation to report.

use serde_json::{Map, Value};

use crate::validation::Quantity;

/// Rounds and canonicalizes every value of a resource list.
pub fn resource_list(list: &mut Map<String, Value>) {
    for v in list.values_mut() {
        if let Ok(q) = Quantity::from_json(v) {
            *v = Value::String(q.rounded_up(-3).canonical());
        }
    }
}

/// Canonicalizes one quantity field (no rounding).
pub fn quantity(v: &mut Value) {
    if let Ok(q) = Quantity::from_json(v) {
        *v = Value::String(q.canonical());
    }
}

/// Rounds and canonicalizes the resource lists `keys` of `obj` (e.g. `limits`, `requests`).
pub fn resource_lists(obj: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if let Some(list) = obj.get_mut(*k).and_then(|v| v.as_object_mut()) {
            resource_list(list);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_are_rounded_and_canonical() {
        let mut l = json!({"cpu": 0.5, "memory": "1.5Gi", "ephemeral-storage": "1000", "x": "0.0001", "bad": "1Qi"});
        resource_list(l.as_object_mut().unwrap());
        assert_eq!(
            l,
            json!({"cpu": "500m", "memory": "1536Mi", "ephemeral-storage": "1k", "x": "1m", "bad": "1Qi"})
        );
        let mut q = json!(2000);
        quantity(&mut q);
        assert_eq!(q, json!("2k"));
    }
}
