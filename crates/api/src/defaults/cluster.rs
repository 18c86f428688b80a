//! Defaults of cluster configuration kinds: storage classes, priority classes, RBAC bindings
//! and CustomResourceDefinitions.

use serde_json::{Value, json};

use super::{child, default_str, existing, items, set_default};

pub fn storage_class(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    set_default(o, "reclaimPolicy", json!("Delete"));
    set_default(o, "volumeBindingMode", json!("Immediate"));
}

pub fn priority_class(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    set_default(o, "preemptionPolicy", json!("PreemptLowerPriority"));
}

pub fn binding(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    if let Some(role_ref) = existing(o, "roleRef") {
        default_str(role_ref, "apiGroup", "rbac.authorization.k8s.io");
    }
    for subject in items(o, "subjects") {
        let group = match subject.get("kind").and_then(|k| k.as_str()) {
            Some("User" | "Group") => "rbac.authorization.k8s.io",
            Some("ServiceAccount") => "",
            _ => continue,
        };
        if subject
            .get("apiGroup")
            .and_then(|g| g.as_str())
            .is_none_or(|g| g.is_empty())
        {
            subject.insert("apiGroup".into(), json!(group));
        }
    }
}

pub fn crd(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    let storage = o
        .get("spec")
        .and_then(|s| s.get("versions"))
        .and_then(|v| v.as_array())
        .and_then(|a| {
            a.iter()
                .find(|v| v.get("storage").and_then(|s| s.as_bool()) == Some(true))
        })
        .and_then(|v| v.get("name"))
        .cloned();
    let Some(spec) = child(o, "spec") else { return };
    if let Some(names) = child(spec, "names") {
        let kind = names
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_string();
        default_str(names, "singular", &kind.to_lowercase());
        if !kind.is_empty() {
            default_str(names, "listKind", &format!("{kind}List"));
        }
    }
    set_default(spec, "conversion", json!({"strategy": "None"}));
    if let Some(service) = existing(spec, "conversion")
        .and_then(|c| existing(c, "webhook"))
        .and_then(|w| existing(w, "clientConfig"))
        .and_then(|c| existing(c, "service"))
    {
        set_default(service, "port", json!(443));
    }
    if let Some(storage) = storage
        && let Some(status) = child(o, "status")
    {
        let empty = status
            .get("storedVersions")
            .and_then(|v| v.as_array())
            .is_none_or(|a| a.is_empty());
        if empty {
            status.insert("storedVersions".into(), json!([storage]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_bindings() {
        let mut sc = json!({"provisioner": "berth.dev/local-path"});
        storage_class(&mut sc);
        assert_eq!(
            sc,
            json!({"provisioner": "berth.dev/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"})
        );
        let mut pc = json!({"value": 1000});
        priority_class(&mut pc);
        assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
        let mut b = json!({"roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "d"}, {"kind": "Group", "name": "g", "apiGroup": "x"}]});
        binding(&mut b);
        assert_eq!(b["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(b["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(b["subjects"][1]["apiGroup"], "");
        assert_eq!(b["subjects"][2]["apiGroup"], "x");
    }

    #[test]
    fn crds() {
        let mut c = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": false}, {"name": "v1", "served": true, "storage": true}]}});
        crd(&mut c);
        assert_eq!(
            c["spec"]["names"],
            json!({"plural": "widgets", "kind": "Widget", "singular": "widget", "listKind": "WidgetList"})
        );
        assert_eq!(c["spec"]["conversion"], json!({"strategy": "None"}));
        assert_eq!(c["status"]["storedVersions"], json!(["v1"]));
        let mut hook = json!({"spec": {"conversion": {"strategy": "Webhook", "webhook": {"clientConfig": {"service": {"name": "s", "namespace": "n"}}}}}});
        crd(&mut hook);
        assert_eq!(
            hook["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"],
            443
        );
    }
}
