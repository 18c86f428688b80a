//! Cell formatting shared by several printers: label maps, label selectors, container
//! lists, access modes and flags, each written the way Kubernetes' printers write them.

use serde_json::{Map, Value};

use crate::selector::{LabelSelector, Op};

/// `k1=v1,k2=v2` sorted by key, or `<none>` (Kubernetes' `labels.FormatLabels`).
pub fn format_labels(labels: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<(&str, &str)> = labels
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort_unstable();
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(",")
}

/// The string form of a structured label selector (`app=web,tier in (a,b)`), requirements
/// sorted by key; "" for a missing or empty selector. `None` when the selector is invalid.
pub fn label_selector_string(sel: Option<&Value>) -> Option<String> {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return Some(String::new());
    };
    let parsed = LabelSelector::from_structured(sel).ok()?;
    let mut reqs = parsed.requirements;
    reqs.sort_by(|a, b| a.key.cmp(&b.key));
    let parts: Vec<String> = reqs
        .iter()
        .map(|r| {
            let mut values = r.values.clone();
            values.sort();
            let joined = values.join(",");
            match r.op {
                Op::Equals => format!("{}={}", r.key, joined),
                Op::NotEquals => format!("{}!={}", r.key, joined),
                Op::In => format!("{} in ({})", r.key, joined),
                Op::NotIn => format!("{} notin ({})", r.key, joined),
                Op::Exists => r.key.clone(),
                Op::DoesNotExist => format!("!{}", r.key),
                Op::GreaterThan => format!("{}>{}", r.key, joined),
                Op::LessThan => format!("{}<{}", r.key, joined),
            }
        })
        .collect();
    Some(parts.join(","))
}

/// A structured selector as printed in tables: its string form, `<none>` when empty,
/// `<error>` when invalid (Kubernetes' `metav1.FormatLabelSelector`).
pub fn format_label_selector(sel: Option<&Value>) -> String {
    match label_selector_string(sel) {
        Some(s) if s.is_empty() => "<none>".into(),
        Some(s) => s,
        None => "<error>".into(),
    }
}

/// The container names and images of a pod spec, each joined with `,`.
pub fn containers(pod_spec: Option<&Value>) -> (String, String) {
    let list = pod_spec
        .and_then(|s| s.get("containers"))
        .and_then(|c| c.as_array())
        .map(|a| a.as_slice())
        .unwrap_or_default();
    let names: Vec<&str> = list.iter().map(|c| str_at(c, "name")).collect();
    let images: Vec<&str> = list.iter().map(|c| str_at(c, "image")).collect();
    (names.join(","), images.join(","))
}

/// A string field of an object, or "".
pub fn str_at<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

/// `RWO,ROX,RWX,RWOP` in that order, for the modes present.
pub fn access_modes(modes: Option<&Value>) -> String {
    let have: Vec<&str> = modes
        .and_then(|m| m.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if have.contains(&mode) {
            out.push(short);
        }
    }
    out.join(",")
}

/// An int-or-string value as text.
pub fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// `True`, `False` or `<unset>` (Kubernetes' `printBoolPtr`).
pub fn bool_word(v: Option<&Value>) -> &'static str {
    match v.and_then(|b| b.as_bool()) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

/// The condition of `type` in a `conditions` list has status `True`.
pub fn condition_true(conditions: Option<&Value>, kind: &str) -> bool {
    conditions
        .and_then(|c| c.as_array())
        .and_then(|a| a.iter().find(|c| str_at(c, "type") == kind))
        .is_some_and(|c| str_at(c, "status") == "True")
}

/// `a,b,c + 2 more...` when more than `max` entries, `<unset>` when none.
pub fn list_with_more(list: &[String], max: usize) -> String {
    if list.is_empty() {
        return "<unset>".into();
    }
    if list.len() > max {
        format!("{} + {} more...", list[..max].join(","), list.len() - max)
    } else {
        list.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_and_selectors_print_like_kubernetes() {
        let labels = json!({"tier": "web", "app": "x"});
        assert_eq!(format_labels(labels.as_object()), "app=x,tier=web");
        assert_eq!(format_labels(None), "<none>");
        let sel = json!({"matchLabels": {"z": "1", "app": "web"}, "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "legacy", "operator": "DoesNotExist"},
            {"key": "b", "operator": "Exists"},
            {"key": "c", "operator": "NotIn", "values": ["x"]}
        ]});
        assert_eq!(
            format_label_selector(Some(&sel)),
            "app=web,b,c notin (x),env in (dev,prod),!legacy,z=1"
        );
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_label_selector(None), "<none>");
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "Near"}]});
        assert_eq!(format_label_selector(Some(&bad)), "<error>");
        assert_eq!(label_selector_string(None), Some(String::new()));
    }

    #[test]
    fn modes_flags_and_lists() {
        assert_eq!(
            access_modes(Some(&json!(["ReadWriteMany", "ReadWriteOnce"]))),
            "RWO,RWX"
        );
        assert_eq!(bool_word(Some(&json!(false))), "False");
        assert_eq!(bool_word(None), "<unset>");
        assert_eq!(int_or_string(&json!("25%")), "25%");
        assert_eq!(int_or_string(&json!(2)), "2");
        let l: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(list_with_more(&l, 3), "a,b,c + 2 more...");
        assert_eq!(list_with_more(&[], 3), "<unset>");
        let spec =
            json!({"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y"}]});
        assert_eq!(containers(Some(&spec)), ("a,b".into(), "x:1,y".into()));
    }
}
