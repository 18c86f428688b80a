//! Conversion between the versions a resource is served in and the version it is stored
//! in. Only HorizontalPodAutoscaler has several: stored as `autoscaling/v2`, served also as
//! `v2beta2` (structurally identical) and `v1` (one CPU utilization target).

use berth_api::ResourceInfo;
use serde_json::{Map, Value, json};

use crate::error::Result;

fn is_hpa(res: &ResourceInfo) -> bool {
    res.group == "autoscaling" && res.kind == "HorizontalPodAutoscaler"
}

/// Annotation that carries v2 metrics through a v1 round trip (as Kubernetes does).
const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

/// Converts an object in `version` to the storage version.
pub fn to_storage(res: &ResourceInfo, version: &str, mut obj: Value) -> Result<Value> {
    if version == res.storage_version {
        return Ok(obj);
    }
    if res.custom {
        obj["apiVersion"] = json!(res.api_version(&res.storage_version));
        return Ok(obj);
    }
    if is_hpa(res) {
        obj["apiVersion"] = json!("autoscaling/v2");
        if version == "v1" {
            obj = hpa_v1_to_v2(obj);
        }
    }
    Ok(obj)
}

/// Converts a stored object to `version`.
pub fn from_storage(res: &ResourceInfo, version: &str, mut obj: Value) -> Result<Value> {
    if version == res.storage_version {
        return Ok(obj);
    }
    if res.custom {
        obj["apiVersion"] = json!(res.api_version(version));
        return Ok(obj);
    }
    if is_hpa(res) {
        obj["apiVersion"] = json!(format!("autoscaling/{version}"));
        if version == "v1" {
            obj = hpa_v2_to_v1(obj);
        }
    }
    Ok(obj)
}

fn annotations(obj: &mut Value) -> &mut Map<String, Value> {
    let m = berth_api::meta::metadata_mut(obj);
    if !m.get("annotations").is_some_and(|a| a.is_object()) {
        m.insert("annotations".into(), json!({}));
    }
    m.get_mut("annotations")
        .and_then(|a| a.as_object_mut())
        .expect("annotations object")
}

fn take_annotation(obj: &mut Value, key: &str) -> Option<Value> {
    let m = berth_api::meta::metadata_mut(obj);
    let ann = m.get_mut("annotations")?.as_object_mut()?;
    let v = ann.remove(key)?;
    if ann.is_empty() {
        m.remove("annotations");
    }
    v.as_str().and_then(|s| serde_json::from_str(s).ok())
}

fn is_cpu_utilization(m: &Value) -> bool {
    m["type"] == "Resource"
        && m["resource"]["name"] == "cpu"
        && m["resource"]["target"]["type"] == "Utilization"
}

fn hpa_v1_to_v2(mut obj: Value) -> Value {
    let extra_metrics = take_annotation(&mut obj, METRICS_ANNOTATION);
    let conditions = take_annotation(&mut obj, CONDITIONS_ANNOTATION);
    let current_extra = take_annotation(&mut obj, CURRENT_METRICS_ANNOTATION);
    let spec = obj.get_mut("spec").and_then(|s| s.as_object_mut());
    if let Some(spec) = spec {
        let mut metrics: Vec<Value> = extra_metrics
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        if let Some(t) = spec.remove("targetCPUUtilizationPercentage") {
            metrics.retain(|m| !is_cpu_utilization(m));
            metrics.insert(0, json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": t}}}));
        }
        if !metrics.is_empty() {
            spec.insert("metrics".into(), Value::Array(metrics));
        }
    }
    if let Some(status) = obj.get_mut("status").and_then(|s| s.as_object_mut()) {
        let mut current: Vec<Value> = current_extra
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        if let Some(c) = status.remove("currentCPUUtilizationPercentage") {
            current.insert(0, json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": c}}}));
        }
        if !current.is_empty() {
            status.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(c) = conditions {
            status.insert("conditions".into(), c);
        }
    }
    obj
}

fn hpa_v2_to_v1(mut obj: Value) -> Value {
    let mut extra = Vec::new();
    if let Some(spec) = obj.get_mut("spec").and_then(|s| s.as_object_mut()) {
        spec.remove("behavior");
        if let Some(Value::Array(metrics)) = spec.remove("metrics") {
            for m in metrics {
                if is_cpu_utilization(&m) && !spec.contains_key("targetCPUUtilizationPercentage") {
                    spec.insert(
                        "targetCPUUtilizationPercentage".into(),
                        m["resource"]["target"]["averageUtilization"].clone(),
                    );
                } else {
                    extra.push(m);
                }
            }
        }
    }
    let mut current_extra = Vec::new();
    let mut conditions = None;
    if let Some(status) = obj.get_mut("status").and_then(|s| s.as_object_mut()) {
        if let Some(Value::Array(current)) = status.remove("currentMetrics") {
            for m in current {
                if m["type"] == "Resource"
                    && m["resource"]["name"] == "cpu"
                    && !m["resource"]["current"]["averageUtilization"].is_null()
                    && !status.contains_key("currentCPUUtilizationPercentage")
                {
                    status.insert(
                        "currentCPUUtilizationPercentage".into(),
                        m["resource"]["current"]["averageUtilization"].clone(),
                    );
                } else {
                    current_extra.push(m);
                }
            }
        }
        conditions = status.remove("conditions");
    }
    if !extra.is_empty() {
        annotations(&mut obj).insert(
            METRICS_ANNOTATION.into(),
            json!(Value::Array(extra).to_string()),
        );
    }
    if !current_extra.is_empty() {
        annotations(&mut obj).insert(
            CURRENT_METRICS_ANNOTATION.into(),
            json!(Value::Array(current_extra).to_string()),
        );
    }
    if let Some(c) = conditions {
        annotations(&mut obj).insert(CONDITIONS_ANNOTATION.into(), json!(c.to_string()));
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa() -> ResourceInfo {
        (*berth_api::builtin_resources()
            .into_iter()
            .find(|r| r.kind == "HorizontalPodAutoscaler")
            .unwrap())
        .clone()
    }

    #[test]
    fn v1_round_trips_through_v2() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}, "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 80}});
        let v2 = to_storage(&hpa(), "v1", v1.clone()).unwrap();
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        let back = from_storage(&hpa(), "v1", v2).unwrap();
        assert_eq!(back, v1);
    }

    #[test]
    fn v2_only_metrics_survive_a_v1_round_trip() {
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 50}}}]}});
        let v1 = from_storage(&hpa(), "v1", v2.clone()).unwrap();
        assert!(v1["metadata"]["annotations"][METRICS_ANNOTATION].is_string());
        assert_eq!(to_storage(&hpa(), "v1", v1).unwrap(), v2);
        let beta = from_storage(&hpa(), "v2beta2", v2.clone()).unwrap();
        assert_eq!(beta["apiVersion"], "autoscaling/v2beta2");
        assert_eq!(to_storage(&hpa(), "v2beta2", beta).unwrap(), v2);
    }
}
