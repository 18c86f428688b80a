//! HorizontalPodAutoscaler (autoscaling/v2) defaults: `minReplicas` 1, a CPU utilization
//! target of 80% when no metric is given, and — when a `behavior` is given — Kubernetes'
//! default scaling rules for whatever part of it is left out.

use serde_json::{Map, Value, json};

use super::resources::quantity;
use super::{child, existing, is_empty, items, set_default};

fn scale_up_rules() -> Value {
    json!({
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}
        ]
    })
}

/// Scale-down has no default stabilization window: the controller's flag (5 minutes)
/// applies.
fn scale_down_rules() -> Value {
    json!({
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]
    })
}

/// Fills the unset parts of one direction's rules from `defaults`.
fn rules(behavior: &mut Map<String, Value>, key: &str, defaults: Value) {
    let Some(rules) = child(behavior, key) else {
        return;
    };
    if let Value::Object(d) = defaults {
        for (k, v) in d {
            set_default(rules, &k, v);
        }
    }
}

pub fn hpa(obj: &mut Value) {
    let Some(spec) = obj.as_object_mut().and_then(|o| child(o, "spec")) else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    if is_empty(spec, "metrics") {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    if let Some(behavior) = existing(spec, "behavior") {
        rules(behavior, "scaleUp", scale_up_rules());
        rules(behavior, "scaleDown", scale_down_rules());
    }
    for metric in items(spec, "metrics") {
        for source in [
            "resource",
            "containerResource",
            "pods",
            "object",
            "external",
        ] {
            if let Some(target) = existing(metric, source).and_then(|s| existing(s, "target")) {
                for k in ["value", "averageValue"] {
                    if let Some(v) = target.get_mut(k) {
                        quantity(v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_hpa_and_defaults() {
        // hpa-mywebapp.yaml of the seed workflow, converted to autoscaling/v2.
        let mut h = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "mywebapp"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mywebapp"}, "minReplicas": 3, "maxReplicas": 10,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}});
        let before = h.clone();
        hpa(&mut h);
        assert_eq!(h, before);
        let mut bare = json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5}});
        hpa(&mut bare);
        assert_eq!(bare["spec"]["minReplicas"], 1);
        assert_eq!(
            bare["spec"]["metrics"][0]["resource"]["target"],
            json!({"type": "Utilization", "averageUtilization": 80})
        );
        assert!(bare["spec"].get("behavior").is_none());
    }

    #[test]
    fn behavior_is_completed_not_replaced() {
        let mut h = json!({"spec": {"maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
            "metrics": [{"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": 1000}}}]}});
        hpa(&mut h);
        let b = &h["spec"]["behavior"];
        assert_eq!(b["scaleUp"], scale_up_rules());
        assert_eq!(b["scaleDown"]["stabilizationWindowSeconds"], 60);
        assert_eq!(
            b["scaleDown"]["policies"],
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}])
        );
        assert_eq!(
            h["spec"]["metrics"][0]["pods"]["target"]["averageValue"],
            "1k"
        );
    }
}
