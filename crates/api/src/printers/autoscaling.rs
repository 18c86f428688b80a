//! The HorizontalPodAutoscaler printer (objects are stored as autoscaling/v2): REFERENCE,
//! TARGETS (`cpu: 20%/80%`, `<unknown>` before the first measurement), MINPODS, MAXPODS,
//! REPLICAS.

use serde_json::{Value, json};

use super::cells::str_at;
use super::storage::quantity_text;
use super::{AGE, Column, NAME, Printer, age, docs, i, name, s};

pub fn for_kind(group: &str, kind: &str) -> Option<&'static dyn Printer> {
    match (group, kind) {
        ("autoscaling", "HorizontalPodAutoscaler") => Some(&HPA),
        _ => None,
    }
}

pub struct HpaPrinter;
static HPA: HpaPrinter = HpaPrinter;

fn q(v: Option<&Value>) -> String {
    match v {
        Some(v) if !v.is_null() => quantity_text(Some(v)),
        _ => "<nil>".into(),
    }
}

/// One metric's `current/target` text.
fn metric_text(spec: &Value, status: Option<&Value>) -> String {
    let unknown = || "<unknown>".to_string();
    let kind = str_at(spec, "type");
    let (field, named) = match kind {
        "External" => ("external", false),
        "Pods" => ("pods", false),
        "Object" => ("object", false),
        "Resource" => ("resource", true),
        "ContainerResource" => ("containerResource", true),
        _ => return "<unknown type>".into(),
    };
    let source = spec.get(field).unwrap_or(&Value::Null);
    let target = source.get("target").unwrap_or(&Value::Null);
    let current = status
        .and_then(|st| st.get(field))
        .filter(|v| v.is_object())
        .map(|c| c.get("current").unwrap_or(&Value::Null));
    let avg_target = target.get("averageValue").filter(|v| !v.is_null());
    match kind {
        "Pods" => {
            let cur = current.map_or_else(unknown, |c| q(c.get("averageValue")));
            format!("{cur}/{}", q(avg_target))
        }
        "External" | "Object" => {
            if let Some(avg) = avg_target {
                let cur = current
                    .and_then(|c| c.get("averageValue").filter(|v| !v.is_null()))
                    .map_or_else(unknown, |v| q(Some(v)));
                format!("{cur}/{} (avg)", q(Some(avg)))
            } else {
                let cur = current.map_or_else(unknown, |c| q(c.get("value")));
                format!("{cur}/{}", q(target.get("value")))
            }
        }
        _ => {
            debug_assert!(named);
            let resource = str_at(source, "name");
            if let Some(avg) = avg_target {
                let cur = current.map_or_else(unknown, |c| q(c.get("averageValue")));
                format!("{resource}: {cur}/{}", q(Some(avg)))
            } else {
                let cur = current
                    .and_then(|c| c.get("averageUtilization"))
                    .and_then(|v| v.as_i64())
                    .map_or_else(unknown, |u| format!("{u}%"));
                let tgt = target
                    .get("averageUtilization")
                    .and_then(|v| v.as_i64())
                    .map_or_else(|| "<auto>".to_string(), |u| format!("{u}%"));
                format!("{resource}: {cur}/{tgt}")
            }
        }
    }
}

/// The TARGETS cell: at most two metrics, then `+ N more...`; `<none>` without metrics.
pub fn format_metrics(hpa: &Value) -> String {
    let specs = hpa
        .pointer("/spec/metrics")
        .and_then(|v| v.as_array())
        .map(|a| a.as_slice())
        .unwrap_or_default();
    if specs.is_empty() {
        return "<none>".into();
    }
    let statuses = hpa
        .pointer("/status/currentMetrics")
        .and_then(|v| v.as_array())
        .map(|a| a.as_slice())
        .unwrap_or_default();
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(n, spec)| metric_text(spec, statuses.get(n)))
        .collect();
    const MAX: usize = 2;
    if list.len() > MAX {
        format!("{} + {} more...", list[..MAX].join(", "), list.len() - MAX)
    } else {
        list.join(", ")
    }
}

impl Printer for HpaPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Reference", "string", docs::HPA_SCALE_TARGET),
            Column::new("Targets", "string", docs::HPA_METRICS),
            Column::new("MinPods", "string", docs::HPA_MIN),
            Column::new("MaxPods", "string", docs::HPA_MAX),
            Column::new("Replicas", "string", docs::HPA_CURRENT),
            AGE,
        ];
        COLS
    }
    fn cells(&self, hpa: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let reference = format!(
            "{}/{}",
            s(hpa, "/spec/scaleTargetRef/kind"),
            s(hpa, "/spec/scaleTargetRef/name")
        );
        let min = hpa
            .pointer("/spec/minReplicas")
            .and_then(|v| v.as_i64())
            .map_or_else(|| "<unset>".to_string(), |m| m.to_string());
        vec![
            name(hpa),
            json!(reference),
            json!(format_metrics(hpa)),
            json!(min),
            json!(i(hpa, "/spec/maxReplicas")),
            json!(i(hpa, "/status/currentReplicas")),
            age(hpa, now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2025-03-01T12:00:00Z".parse().unwrap()
    }

    fn hpa(metrics: Value, status: Value) -> Value {
        json!({"metadata": {"name": "web", "creationTimestamp": "2025-03-01T11:00:00Z"},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 10, "metrics": metrics},
               "status": status})
    }

    fn cpu(util: i64) -> Value {
        json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": util}}})
    }

    #[test]
    fn targets_before_and_after_measurement() {
        let fresh = hpa(json!([cpu(80)]), json!({}));
        assert_eq!(
            HPA.cells(&fresh, now()),
            vec![
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: <unknown>/80%"),
                json!("3"),
                json!(10),
                json!(0),
                json!("60m")
            ]
        );
        let measured = hpa(
            json!([cpu(80)]),
            json!({"currentReplicas": 3, "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 20, "averageValue": "10m"}}}]}),
        );
        let c = HPA.cells(&measured, now());
        assert_eq!(
            (c[2].clone(), c[5].clone()),
            (json!("cpu: 20%/80%"), json!(3))
        );
    }

    #[test]
    fn value_metrics_and_more() {
        let mem = json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "0.5Gi"}}});
        let pods = json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}});
        let ext = json!({"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}});
        let h = hpa(
            json!([mem, pods, ext]),
            json!({"currentMetrics": [{"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "256Mi"}}}]}),
        );
        assert_eq!(
            format_metrics(&h),
            "memory: 256Mi/512Mi, <unknown>/1k + 1 more..."
        );
        let h2 = hpa(json!([ext]), json!({}));
        assert_eq!(format_metrics(&h2), "<unknown>/30");
        let mut none = hpa(json!([]), json!({}));
        none["spec"].as_object_mut().unwrap().remove("minReplicas");
        let c = HPA.cells(&none, now());
        assert_eq!(
            (c[2].clone(), c[3].clone()),
            (json!("<none>"), json!("<unset>"))
        );
    }
}
