//! HorizontalPodAutoscaler (autoscaling/v2) validation: the scale target, replica bounds,
//! metric sources and targets, and scaling behavior rules.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Quantity;
use super::field::*;
use crate::FieldErrors;

const METRIC_TYPES: &[&str] = &[
    "ContainerResource",
    "External",
    "Object",
    "Pods",
    "Resource",
];

fn path_segment(errs: &mut FieldErrors, v: &str, path: &str) {
    if let Err(msg) = crate::names::validate_path_segment(v) {
        errs.push(invalid(path, v, msg));
    }
}

fn object_reference(errs: &mut FieldErrors, r: &Value, path: &str) {
    for k in ["kind", "name"] {
        let v = str_of(r, k);
        if v.is_empty() {
            errs.push(required(child(path, k), ""));
        } else {
            path_segment(errs, v, &child(path, k));
        }
    }
}

fn metric_identifier(errs: &mut FieldErrors, m: Option<&Value>, path: &str) {
    let m = m.unwrap_or(&Value::Null);
    let name = str_of(m, "name");
    if name.is_empty() {
        errs.push(required(child(path, "name"), "must specify a metric name"));
    } else {
        path_segment(errs, name, &child(path, "name"));
    }
    label_selector(errs, m.get("selector"), &child(path, "selector"));
}

fn positive_quantity(errs: &mut FieldErrors, t: &Value, k: &str, path: &str) {
    if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
        match Quantity::from_json(v) {
            Ok(q) if q.cmp_value(&Quantity::from_int(0)) == std::cmp::Ordering::Greater => {}
            Ok(q) => errs.push(invalid_raw(
                child(path, k),
                q.canonical(),
                "must be positive",
            )),
            Err(e) => errs.push(invalid_raw(child(path, k), render(v), e.to_string())),
        }
    }
}

fn metric_target(errs: &mut FieldErrors, t: &Value, path: &str) {
    let ty = str_of(t, "type");
    if ty.is_empty() {
        errs.push(required(
            child(path, "type"),
            "must specify a metric target type",
        ));
    }
    if !["Utilization", "Value", "AverageValue"].contains(&ty) {
        errs.push(invalid(
            child(path, "type"),
            ty,
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    positive_quantity(errs, t, "value", path);
    positive_quantity(errs, t, "averageValue", path);
    if let Some(u) = int_of(t, "averageUtilization").filter(|u| *u < 1) {
        errs.push(invalid_num(
            child(path, "averageUtilization"),
            u,
            "must be greater than 0",
        ));
    }
}

fn resource_source(errs: &mut FieldErrors, src: &Value, path: &str, container: bool) {
    let name = str_of(src, "name");
    if name.is_empty() {
        errs.push(required(
            child(path, "name"),
            "must specify a resource name",
        ));
    } else {
        qualified_name(errs, name, &child(path, "name"));
    }
    if container {
        let c = str_of(src, "container");
        if c.is_empty() {
            errs.push(required(
                child(path, "container"),
                "must specify a container",
            ));
        } else {
            dns1123_label(errs, c, child(path, "container"));
        }
    }
    let t = src.get("target").unwrap_or(&Value::Null);
    let tp = child(path, "target");
    metric_target(errs, t, &tp);
    let (util, avg) = (!absent(t, "averageUtilization"), !absent(t, "averageValue"));
    if !util && !avg {
        errs.push(required(
            child(&tp, "averageUtilization"),
            "must set either a target raw value or a target utilization",
        ));
    }
    if util && avg {
        errs.push(forbidden(
            child(&tp, "averageValue"),
            "may not set both a target raw value and a target utilization",
        ));
    }
}

fn metric(errs: &mut FieldErrors, m: &Value, path: &str) {
    let ty = str_of(m, "type");
    if ty.is_empty() {
        errs.push(required(
            child(path, "type"),
            "must specify a metric source type",
        ));
    }
    let mut present = BTreeSet::new();
    for field in [
        "object",
        "external",
        "pods",
        "resource",
        "containerResource",
    ] {
        let Some(src) = m.get(field).filter(|v| !v.is_null()) else {
            continue;
        };
        present.insert(field);
        if present.len() > 1 {
            continue;
        }
        let sp = child(path, field);
        match field {
            "object" => {
                object_reference(
                    errs,
                    src.get("describedObject").unwrap_or(&Value::Null),
                    &child(&sp, "describedObject"),
                );
                metric_identifier(errs, src.get("metric"), &child(&sp, "metric"));
                let t = src.get("target").unwrap_or(&Value::Null);
                metric_target(errs, t, &child(&sp, "target"));
                if absent(t, "value") && absent(t, "averageValue") {
                    errs.push(required(
                        child(&child(&sp, "target"), "value"),
                        "must set either a target value or averageValue",
                    ));
                }
            }
            "external" => {
                metric_identifier(errs, src.get("metric"), &child(&sp, "metric"));
                let t = src.get("target").unwrap_or(&Value::Null);
                metric_target(errs, t, &child(&sp, "target"));
                match (absent(t, "value"), absent(t, "averageValue")) {
                    (true, true) => errs.push(required(
                        child(&child(&sp, "target"), "value"),
                        "must set either a target value for metric or a per-pod target",
                    )),
                    (false, false) => errs.push(forbidden(
                        child(&child(&sp, "target"), "value"),
                        "may not set both a target value for metric and a per-pod target",
                    )),
                    _ => {}
                }
            }
            "pods" => {
                metric_identifier(errs, src.get("metric"), &child(&sp, "metric"));
                let t = src.get("target").unwrap_or(&Value::Null);
                metric_target(errs, t, &child(&sp, "target"));
                if absent(t, "averageValue") {
                    errs.push(required(
                        child(&child(&sp, "target"), "averageValue"),
                        "must specify a positive target averageValue",
                    ));
                }
            }
            "resource" => resource_source(errs, src, &sp, false),
            _ => resource_source(errs, src, &sp, true),
        }
    }
    let expected = match ty {
        "Object" => "object",
        "Pods" => "pods",
        "Resource" => "resource",
        "External" => "external",
        "ContainerResource" => "containerResource",
        other => {
            errs.push(not_supported(child(path, "type"), other, METRIC_TYPES));
            ""
        }
    };
    if !expected.is_empty() && !present.contains(expected) {
        errs.push(required(
            child(path, expected),
            "must populate information for the given metric source",
        ));
    }
    if present.len() != 1 {
        for field in present.iter().filter(|f| **f != expected) {
            errs.push(forbidden(
                child(path, field),
                "must populate the given metric source only",
            ));
        }
    }
}

fn scaling_rules(errs: &mut FieldErrors, rules: Option<&Value>, path: &str) {
    let Some(rules) = rules.filter(|v| !v.is_null()) else {
        return;
    };
    if let Some(w) = int_of(rules, "stabilizationWindowSeconds") {
        if w < 0 {
            errs.push(invalid_num(
                child(path, "stabilizationWindowSeconds"),
                w,
                "must be greater than or equal to zero",
            ));
        }
        if w > 3600 {
            errs.push(invalid_num(
                child(path, "stabilizationWindowSeconds"),
                w,
                "must be less than or equal to 3600",
            ));
        }
    }
    if let Some(sp) = rules.get("selectPolicy").and_then(|v| v.as_str())
        && !["Disabled", "Max", "Min"].contains(&sp)
    {
        errs.push(not_supported(
            child(path, "selectPolicy"),
            sp,
            &["Disabled", "Max", "Min"],
        ));
    }
    let policies = arr(rules, "policies");
    if policies.is_empty() {
        errs.push(required(
            child(path, "policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        let pp = index(&child(path, "policies"), i);
        let ty = str_of(p, "type");
        if !["Pods", "Percent"].contains(&ty) {
            errs.push(not_supported(child(&pp, "type"), ty, &["Percent", "Pods"]));
        }
        let v = int_of(p, "value").unwrap_or(0);
        if v <= 0 {
            errs.push(invalid_num(
                child(&pp, "value"),
                v,
                "must be greater than zero",
            ));
        }
        let period = int_of(p, "periodSeconds").unwrap_or(0);
        if period <= 0 {
            errs.push(invalid_num(
                child(&pp, "periodSeconds"),
                period,
                "must be greater than zero",
            ));
        }
        if period > 1800 {
            errs.push(invalid_num(
                child(&pp, "periodSeconds"),
                period,
                "must be less than or equal to 1800",
            ));
        }
    }
}

pub fn hpa(errs: &mut FieldErrors, h: &Value) {
    let spec = h.get("spec").unwrap_or(&Value::Null);
    let min = int_of(spec, "minReplicas");
    if let Some(m) = min.filter(|m| *m < 1) {
        errs.push(invalid_num(
            "spec.minReplicas",
            m,
            "must be greater than or equal to 1",
        ));
    }
    let max = int_of(spec, "maxReplicas").unwrap_or(0);
    if max < 1 {
        errs.push(invalid_num(
            "spec.maxReplicas",
            max,
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|m| max < m) {
        errs.push(invalid_num(
            "spec.maxReplicas",
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    object_reference(
        errs,
        spec.get("scaleTargetRef").unwrap_or(&Value::Null),
        "spec.scaleTargetRef",
    );
    for (i, m) in arr(spec, "metrics").iter().enumerate() {
        metric(errs, m, &index("spec.metrics", i));
    }
    if let Some(b) = spec.get("behavior").filter(|v| !v.is_null()) {
        scaling_rules(errs, b.get("scaleUp"), "spec.behavior.scaleUp");
        scaling_rules(errs, b.get("scaleDown"), "spec.behavior.scaleDown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(h: &Value) -> Vec<String> {
        let mut e = FieldErrors::default();
        hpa(&mut e, h);
        e.0.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_seed_hpa_is_valid() {
        // hpa-mywebapp.yaml, as stored (autoscaling/v2).
        let mut h = json!({"metadata": {"name": "mywebapp"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mywebapp"},
            "minReplicas": 3, "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}});
        crate::defaults::apply("autoscaling", "HorizontalPodAutoscaler", &mut h);
        assert_eq!(errs(&h), Vec::<String>::new());
    }

    #[test]
    fn bounds_references_metrics_and_behavior() {
        let h = json!({"spec": {"scaleTargetRef": {"kind": "Deployment"}, "minReplicas": 0, "maxReplicas": 0,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}},
                        {"type": "Pods", "resource": {"name": "cpu"}},
                        {"type": "Custom"}],
            "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 3600}]}, "scaleDown": {"selectPolicy": "Avg", "policies": []}}}});
        let e = errs(&h);
        for w in [
            "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
            "spec.maxReplicas: Invalid value: 0: must be greater than 0",
            "spec.scaleTargetRef.name: Required value",
            "spec.metrics[0].resource.target.averageUtilization: Required value: must set either a target raw value or a target utilization",
            "spec.metrics[1].pods: Required value: must populate information for the given metric source",
            "spec.metrics[2].type: Unsupported value: \"Custom\"",
            "spec.behavior.scaleUp.policies[0].value: Invalid value: 0: must be greater than zero",
            "spec.behavior.scaleUp.policies[0].periodSeconds: Invalid value: 3600: must be less than or equal to 1800",
            "spec.behavior.scaleDown.selectPolicy: Unsupported value: \"Avg\"",
            "spec.behavior.scaleDown.policies: Required value: must specify at least one Policy",
        ] {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
        let inverted = json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "minReplicas": 5, "maxReplicas": 2,
            "metrics": [{"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "-1"}}}]}});
        assert_eq!(
            errs(&inverted),
            vec![
                "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`".to_string(),
                "spec.metrics[0].resource.target.averageValue: Invalid value: -1: must be positive".to_string(),
            ]
        );
    }
}
