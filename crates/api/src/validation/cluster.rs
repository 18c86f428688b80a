//! Validation of cluster configuration kinds: RBAC roles and bindings, priority classes,
//! storage classes and CustomResourceDefinitions.

use std::collections::BTreeSet;

use serde_json::Value;

use super::field::*;
use crate::FieldErrors;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn policy_rule(errs: &mut FieldErrors, rule: &Value, namespaced: bool, path: &str) {
    if empty(rule, "verbs") {
        errs.push(required(
            child(path, "verbs"),
            "verbs must contain at least one value",
        ));
    }
    if !empty(rule, "nonResourceURLs") {
        let urls = go_strings(rule.get("nonResourceURLs"));
        if namespaced {
            errs.push(invalid_raw(
                child(path, "nonResourceURLs"),
                urls.clone(),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if !empty(rule, "apiGroups") || !empty(rule, "resources") || !empty(rule, "resourceNames") {
            errs.push(invalid_raw(
                child(path, "nonResourceURLs"),
                urls,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if empty(rule, "apiGroups") {
        errs.push(required(
            child(path, "apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if empty(rule, "resources") {
        errs.push(required(
            child(path, "resources"),
            "resource rules must supply at least one resource",
        ));
    }
}

pub fn role(errs: &mut FieldErrors, r: &Value, namespaced: bool) {
    for (i, rule) in arr(r, "rules").iter().enumerate() {
        policy_rule(errs, rule, namespaced, &index("rules", i));
    }
    if let Some(agg) = r
        .get("aggregationRule")
        .filter(|v| !v.is_null())
        .filter(|_| !namespaced)
    {
        let selectors = arr(agg, "clusterRoleSelectors");
        if selectors.is_empty() {
            errs.push(required(
                "aggregationRule.clusterRoleSelectors",
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        for (i, s) in selectors.iter().enumerate() {
            label_selector(
                errs,
                Some(s),
                &index("aggregationRule.clusterRoleSelectors", i),
            );
        }
    }
}

fn subject(errs: &mut FieldErrors, s: &Value, namespaced: bool, path: &str) {
    let name = str_of(s, "name");
    if name.is_empty() {
        errs.push(required(child(path, "name"), ""));
    }
    let group = str_of(s, "apiGroup");
    match str_of(s, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                dns1123_subdomain(errs, name, child(path, "name"));
            }
            if !group.is_empty() {
                errs.push(not_supported(child(path, "apiGroup"), group, &[""]));
            }
            if !namespaced && empty(s, "namespace") {
                errs.push(required(child(path, "namespace"), ""));
            }
        }
        "User" | "Group" => {
            if group != RBAC_GROUP {
                errs.push(not_supported(child(path, "apiGroup"), group, &[RBAC_GROUP]));
            }
        }
        other => errs.push(not_supported(
            child(path, "kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

fn render_role_ref(r: Option<&Value>) -> String {
    let r = r.unwrap_or(&Value::Null);
    format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        quote(str_of(r, "apiGroup")),
        quote(str_of(r, "kind")),
        quote(str_of(r, "name"))
    )
}

pub fn binding(errs: &mut FieldErrors, b: &Value, namespaced: bool, old: Option<&Value>) {
    let role_ref = b.get("roleRef").unwrap_or(&Value::Null);
    let group = str_of(role_ref, "apiGroup");
    if group != RBAC_GROUP {
        errs.push(not_supported("roleRef.apiGroup", group, &[RBAC_GROUP]));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    let kind = str_of(role_ref, "kind");
    if !kinds.contains(&kind) {
        errs.push(not_supported("roleRef.kind", kind, kinds));
    }
    let name = str_of(role_ref, "name");
    if name.is_empty() {
        errs.push(required("roleRef.name", ""));
    } else if let Err(msg) = crate::names::validate_path_segment(name) {
        errs.push(invalid("roleRef.name", name, msg));
    }
    for (i, s) in arr(b, "subjects").iter().enumerate() {
        subject(errs, s, namespaced, &index("subjects", i));
    }
    if let Some(old) = old
        && old.get("roleRef") != b.get("roleRef")
    {
        errs.push(invalid_raw(
            "roleRef",
            render_role_ref(b.get("roleRef")),
            "cannot change roleRef",
        ));
    }
}

pub fn priority_class(errs: &mut FieldErrors, pc: &Value, old: Option<&Value>) {
    let name = crate::meta::name(pc).unwrap_or_default();
    let value = int_of(pc, "value").unwrap_or(0);
    if name.starts_with("system-") {
        let known = match name {
            "system-node-critical" => Some(2_000_001_000),
            "system-cluster-critical" => Some(2_000_000_000),
            _ => None,
        };
        let problem = match known {
            None => Some(format!("{name} is not a known system priority class")),
            Some(v) if v != value => Some(format!("value of {name} PriorityClass must be {v}")),
            Some(_) if pc.get("globalDefault").and_then(|g| g.as_bool()) == Some(true) => Some(
                format!("globalDefault of {name} PriorityClass must be false"),
            ),
            Some(_) => None,
        };
        if let Some(p) = problem {
            errs.push(forbidden(
                "metadata.name",
                format!("priority class names with 'system-' prefix are reserved for system use only. error: {p}"),
            ));
        }
    } else if value > 1_000_000_000 {
        errs.push(forbidden(
            "value",
            "maximum allowed value of a user defined priority is 1000000000",
        ));
    }
    if let Some(p) = pc.get("preemptionPolicy").filter(|v| !v.is_null()) {
        match p.as_str().unwrap_or_default() {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(required("preemptionPolicy", "")),
            other => errs.push(not_supported(
                "preemptionPolicy",
                other,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if let Some(old) = old {
        if int_of(old, "value") != int_of(pc, "value") {
            errs.push(forbidden("value", "may not be changed in an update."));
        }
        immutable(errs, pc, old, "preemptionPolicy", "", render_opt);
    }
}

pub fn storage_class(errs: &mut FieldErrors, sc: &Value, old: Option<&Value>) {
    let provisioner = str_of(sc, "provisioner");
    if provisioner.is_empty() {
        errs.push(required("provisioner", ""));
    } else {
        qualified_name(errs, &provisioner.to_lowercase(), "provisioner");
    }
    if let Some(params) = sc.get("parameters").and_then(|v| v.as_object()) {
        if params.len() > 512 {
            errs.push(crate::FieldError::too_long("parameters", 512));
        }
        let mut total = 0;
        for (k, v) in params {
            if k.is_empty() {
                errs.push(invalid("parameters", "", "field can not be empty."));
            }
            total += k.len() + v.as_str().map_or(0, |s| s.len());
        }
        if total > 256 * 1024 {
            errs.push(crate::FieldError::too_long("parameters", 256 * 1024));
        }
    }
    match sc
        .get("reclaimPolicy")
        .filter(|v| !v.is_null())
        .and_then(|v| v.as_str())
    {
        None | Some("Delete" | "Retain") => {}
        Some(other) => errs.push(not_supported("reclaimPolicy", other, &["Delete", "Retain"])),
    }
    match sc
        .get("volumeBindingMode")
        .filter(|v| !v.is_null())
        .and_then(|v| v.as_str())
    {
        None => errs.push(required("volumeBindingMode", "")),
        Some("Immediate" | "WaitForFirstConsumer") => {}
        Some(other) => errs.push(not_supported(
            "volumeBindingMode",
            other,
            &["Immediate", "WaitForFirstConsumer"],
        )),
    }
    if let Some(old) = old {
        if sc.get("parameters").filter(|v| !v.is_null())
            != old.get("parameters").filter(|v| !v.is_null())
        {
            errs.push(forbidden(
                "parameters",
                "updates to parameters are forbidden.",
            ));
        }
        if str_of(sc, "provisioner") != str_of(old, "provisioner") {
            errs.push(forbidden(
                "provisioner",
                "updates to provisioner are forbidden.",
            ));
        }
        if str_of(sc, "reclaimPolicy") != str_of(old, "reclaimPolicy") {
            errs.push(forbidden(
                "reclaimPolicy",
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        immutable(errs, sc, old, "volumeBindingMode", "", render_opt);
    }
}

fn dns1035_joined(v: &str) -> Option<String> {
    crate::names::validate_dns1035_label(v).err()
}

pub fn crd(errs: &mut FieldErrors, c: &Value, old: Option<&Value>) {
    let spec = c.get("spec").unwrap_or(&Value::Null);
    let group = str_of(spec, "group");
    let names = spec.get("names").unwrap_or(&Value::Null);
    let plural = str_of(names, "plural");
    let name = crate::meta::name(c).unwrap_or_default();
    if name != format!("{plural}.{group}") {
        errs.push(invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errs.push(required("spec.group", ""));
    } else if let Err(msg) = crate::names::validate_dns1123_subdomain(group) {
        errs.push(invalid("spec.group", group, msg));
    } else if !group.contains('.') {
        errs.push(invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    match str_of(spec, "scope") {
        "" => errs.push(required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(not_supported(
            "spec.scope",
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = arr(spec, "versions");
    if versions.is_empty() {
        errs.push(required("spec.versions", "must have at least one version"));
    }
    let mut seen = BTreeSet::new();
    let mut unique = true;
    let mut storage = 0;
    for (i, v) in versions.iter().enumerate() {
        let vp = index("spec.versions", i);
        let vname = str_of(v, "name");
        if v.get("storage").and_then(|s| s.as_bool()) == Some(true) {
            storage += 1;
        }
        if !seen.insert(vname) {
            unique = false;
        }
        if let Some(msg) = dns1035_joined(vname) {
            errs.push(invalid(child(&vp, "name"), vname, msg));
        }
        if v.pointer("/schema/openAPIV3Schema")
            .is_none_or(|s| s.is_null())
        {
            errs.push(required(
                child(&child(&vp, "schema"), "openAPIV3Schema"),
                "schemas are required",
            ));
        }
    }
    let rendered_versions = || {
        format!(
            "[]apiextensions.CustomResourceDefinitionVersion{{...{} versions}}",
            versions.len()
        )
    };
    if !unique {
        errs.push(invalid_raw(
            "spec.versions",
            rendered_versions(),
            "must contain unique version names",
        ));
    }
    if !versions.is_empty() && storage != 1 {
        errs.push(invalid_raw(
            "spec.versions",
            rendered_versions(),
            "must have exactly one version marked as storage version",
        ));
    }
    if plural.is_empty() {
        errs.push(required("spec.names.plural", ""));
    }
    for k in ["plural", "singular"] {
        let v = str_of(names, k);
        if !v.is_empty()
            && let Some(msg) = dns1035_joined(v)
        {
            errs.push(invalid(child("spec.names", k), v, msg));
        }
    }
    let kind = str_of(names, "kind");
    if kind.is_empty() {
        errs.push(required("spec.names.kind", ""));
    }
    for k in ["kind", "listKind"] {
        let v = str_of(names, k);
        if !v.is_empty()
            && let Some(msg) = dns1035_joined(&v.to_lowercase())
        {
            errs.push(invalid(
                child("spec.names", k),
                v,
                format!("may have mixed case, but should otherwise match: {msg}"),
            ));
        }
    }
    if !kind.is_empty() && kind == str_of(names, "listKind") {
        errs.push(invalid(
            "spec.names.listKind",
            kind,
            "kind and listKind may not be the same",
        ));
    }
    for k in ["shortNames", "categories"] {
        for (i, v) in arr(names, k).iter().enumerate() {
            let v = v.as_str().unwrap_or_default();
            if let Some(msg) = dns1035_joined(v) {
                errs.push(invalid(index(&child("spec.names", k), i), v, msg));
            }
        }
    }
    if let Some(conv) = spec.get("conversion").filter(|v| !v.is_null()) {
        match str_of(conv, "strategy") {
            "None" => {
                if !absent(conv, "webhook") {
                    errs.push(forbidden(
                        "spec.conversion.webhook",
                        "should not be set when strategy is not set to Webhook",
                    ));
                }
            }
            "Webhook" => {
                let hook = conv.get("webhook").filter(|v| !v.is_null());
                if hook.is_none_or(|h| absent(h, "clientConfig")) {
                    errs.push(required(
                        "spec.conversion.webhook.clientConfig",
                        "required when strategy is set to Webhook",
                    ));
                }
                if hook.is_none_or(|h| empty(h, "conversionReviewVersions")) {
                    errs.push(required(
                        "spec.conversion.webhook.conversionReviewVersions",
                        "must include at least one of v1, v1beta1",
                    ));
                }
            }
            "" => errs.push(required("spec.conversion.strategy", "")),
            other => errs.push(not_supported(
                "spec.conversion.strategy",
                other,
                &["None", "Webhook"],
            )),
        }
    }
    if let Some(old) = old {
        let ospec = old.get("spec").unwrap_or(&Value::Null);
        immutable(errs, spec, ospec, "group", "spec", render_opt);
        immutable(errs, spec, ospec, "scope", "spec", render_opt);
        let oplural = ospec
            .pointer("/names/plural")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if plural != oplural {
            errs.push(invalid("spec.names.plural", plural, IMMUTABLE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(f: impl FnOnce(&mut FieldErrors)) -> Vec<String> {
        let mut e = FieldErrors::default();
        f(&mut e);
        e.0.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn rbac() {
        let r = json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, {"apiGroups": [""], "resources": ["pods"]},
            {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]});
        assert_eq!(
            errs(|e| role(e, &r, true)),
            vec![
                "rules[1].verbs: Required value: verbs must contain at least one value".to_string(),
                "rules[2].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs".to_string(),
            ]
        );
        assert_eq!(
            errs(|e| role(
                e,
                &json!({"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
                false
            )),
            Vec::<String>::new()
        );
        let mut b = json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "sa"}, {"kind": "Robot", "name": "x"}]});
        crate::defaults::apply(RBAC_GROUP, "ClusterRoleBinding", &mut b);
        assert_eq!(
            errs(|e| binding(e, &b, false, None)),
            vec![
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"".to_string(),
                "subjects[1].namespace: Required value".to_string(),
                "subjects[2].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"".to_string(),
            ]
        );
        let mut changed = b.clone();
        changed["roleRef"]["name"] = json!("other");
        changed["roleRef"]["kind"] = json!("ClusterRole");
        let e = errs(|e| binding(e, &changed, true, Some(&b)));
        assert!(e.contains(&"roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"other\"}: cannot change roleRef".to_string()), "{e:#?}");
    }

    #[test]
    fn priority_and_storage_classes() {
        let pc = json!({"metadata": {"name": "high"}, "value": 2000000000, "preemptionPolicy": "Sometimes"});
        assert_eq!(
            errs(|e| priority_class(e, &pc, None)),
            vec![
                "value: Forbidden: maximum allowed value of a user defined priority is 1000000000".to_string(),
                "preemptionPolicy: Unsupported value: \"Sometimes\": supported values: \"PreemptLowerPriority\", \"Never\"".to_string(),
            ]
        );
        let sys = json!({"metadata": {"name": "system-node-critical"}, "value": 2000001000});
        assert_eq!(
            errs(|e| priority_class(e, &sys, None)),
            Vec::<String>::new()
        );
        let mut sc = json!({"provisioner": "berth.dev/local-path"});
        crate::defaults::apply("storage.k8s.io", "StorageClass", &mut sc);
        assert_eq!(errs(|e| storage_class(e, &sc, None)), Vec::<String>::new());
        let mut changed = sc.clone();
        changed["provisioner"] = json!("other.dev/x");
        assert_eq!(
            errs(|e| storage_class(e, &changed, Some(&sc))),
            vec!["provisioner: Forbidden: updates to provisioner are forbidden.".to_string()]
        );
    }

    #[test]
    fn crds() {
        let mut c = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
        crate::defaults::apply("apiextensions.k8s.io", "CustomResourceDefinition", &mut c);
        assert_eq!(errs(|e| crd(e, &c, None)), Vec::<String>::new());
        let bad = json!({"metadata": {"name": "widgets"}, "spec": {"group": "example", "scope": "Global",
            "names": {"plural": "Widgets", "kind": "Widget", "listKind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {}}}, {"name": "v1", "served": true, "storage": false}]}});
        let e = errs(|e| crd(e, &bad, None));
        for w in [
            "metadata.name: Invalid value: \"widgets\": must be spec.names.plural+\".\"+spec.group",
            "spec.group: Invalid value: \"example\": should be a domain with at least one dot",
            "spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"",
            "spec.versions[1].schema.openAPIV3Schema: Required value: schemas are required",
            "spec.versions: Invalid value: ",
            "spec.names.plural: Invalid value: \"Widgets\"",
            "spec.names.listKind: Invalid value: \"Widget\": kind and listKind may not be the same",
        ] {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
        assert!(
            e.iter()
                .any(|x| x.ends_with("must have exactly one version marked as storage version"))
        );
        assert!(
            e.iter()
                .any(|x| x.ends_with("must contain unique version names"))
        );
    }
}
