//! Pod and pod template validation: Kubernetes' `ValidatePodSpec` (containers, init and
//! ephemeral containers, volumes, policies, tolerations, affinity, DNS config, spread
//! constraints, ...), the pod-only checks, the pod template checks of workloads, and the
//! rules of a pod update (only images, active deadline, additional tolerations and a few
//! more may change).

use std::collections::BTreeSet;

use serde_json::Value;

use super::containers::{container_common, host_ports, lifecycle, probe, security_context};
use super::field::*;
use super::resources::resource_requirements;
use super::volumes::volumes;
use crate::FieldErrors;

/// What kind of object a pod spec belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SpecOf {
    Pod,
    Template,
}

fn tolerations(errs: &mut FieldErrors, list: &[Value], path: &str) {
    for (i, t) in list.iter().enumerate() {
        let p = index(path, i);
        let k = str_of(t, "key");
        if !k.is_empty() {
            qualified_name(errs, k, &child(&p, "key"));
        }
        let op = str_of(t, "operator");
        if k.is_empty() && op != "Exists" {
            errs.push(invalid(
                child(&p, "operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        let effect = str_of(t, "effect");
        if !absent(t, "tolerationSeconds") && effect != "NoExecute" {
            errs.push(invalid(
                child(&p, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = label_value_errors(str_of(t, "value"));
                if !msgs.is_empty() {
                    errs.push(invalid(
                        child(&p, "operator"),
                        str_of(t, "value"),
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !empty(t, "value") {
                    errs.push(invalid_raw(
                        child(&p, "operator"),
                        render(t),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(not_supported(
                child(&p, "operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
        {
            errs.push(not_supported(
                child(&p, "effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
}

fn node_selector_requirement(errs: &mut FieldErrors, rq: &Value, path: &str) {
    let values = arr(rq, "values");
    match str_of(rq, "operator") {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.push(required(
                    child(path, "values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                errs.push(forbidden(
                    child(path, "values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        "Gt" | "Lt" => {
            if values.len() != 1 {
                errs.push(required(
                    child(path, "values"),
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                ));
            }
        }
        op => errs.push(invalid(
            child(path, "operator"),
            op,
            "not a valid selector operator",
        )),
    }
    qualified_name(errs, str_of(rq, "key"), &child(path, "key"));
}

fn node_selector_terms(errs: &mut FieldErrors, terms: &[Value], path: &str) {
    for (i, term) in terms.iter().enumerate() {
        let p = index(path, i);
        for (j, rq) in arr(term, "matchExpressions").iter().enumerate() {
            node_selector_requirement(errs, rq, &index(&child(&p, "matchExpressions"), j));
        }
        for (j, rq) in arr(term, "matchFields").iter().enumerate() {
            let fp = index(&child(&p, "matchFields"), j);
            if !matches!(str_of(rq, "operator"), "In" | "NotIn") {
                errs.push(invalid(
                    child(&fp, "operator"),
                    str_of(rq, "operator"),
                    "not a valid selector operator",
                ));
            } else if arr(rq, "values").len() != 1 {
                errs.push(required(
                    child(&fp, "values"),
                    "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                ));
            }
            if str_of(rq, "key") != "metadata.name" {
                errs.push(invalid(
                    child(&fp, "key"),
                    str_of(rq, "key"),
                    "not a valid field selector key",
                ));
            }
        }
    }
}

fn pod_affinity_terms(errs: &mut FieldErrors, terms: &[Value], path: &str, weighted: bool) {
    for (i, t) in terms.iter().enumerate() {
        let mut p = index(path, i);
        let mut term = t;
        if weighted {
            if let Some(w) = int_of(t, "weight").filter(|w| !(1..=100).contains(w)) {
                errs.push(invalid_num(
                    child(&p, "weight"),
                    w,
                    "must be in the range 1-100",
                ));
            }
            p = child(&p, "podAffinityTerm");
            term = t.get("podAffinityTerm").unwrap_or(&Value::Null);
        }
        label_selector(errs, term.get("labelSelector"), &child(&p, "labelSelector"));
        label_selector(
            errs,
            term.get("namespaceSelector"),
            &child(&p, "namespaceSelector"),
        );
        for (j, ns) in arr(term, "namespaces").iter().enumerate() {
            let ns = ns.as_str().unwrap_or_default();
            dns1123_label(errs, ns, index(&child(&p, "namespaces"), j));
        }
        let tk = str_of(term, "topologyKey");
        if tk.is_empty() {
            errs.push(required(child(&p, "topologyKey"), "can not be empty"));
        } else {
            qualified_name(errs, tk, &child(&p, "topologyKey"));
        }
    }
}

fn affinity(errs: &mut FieldErrors, spec: &Value, path: &str) {
    let Some(a) = spec.get("affinity").filter(|v| v.is_object()) else {
        return;
    };
    if let Some(na) = a.get("nodeAffinity").filter(|v| v.is_object()) {
        let np = child(path, "nodeAffinity");
        if let Some(req) = na
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .filter(|v| v.is_object())
        {
            let rp = child(&np, "requiredDuringSchedulingIgnoredDuringExecution");
            let terms = arr(req, "nodeSelectorTerms");
            if terms.is_empty() {
                errs.push(required(
                    child(&rp, "nodeSelectorTerms"),
                    "must have at least one node selector term",
                ));
            }
            node_selector_terms(errs, terms, &child(&rp, "nodeSelectorTerms"));
        }
        for (i, pref) in arr(na, "preferredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .enumerate()
        {
            let pp = index(
                &child(&np, "preferredDuringSchedulingIgnoredDuringExecution"),
                i,
            );
            if let Some(w) = int_of(pref, "weight").filter(|w| !(1..=100).contains(w)) {
                errs.push(invalid_num(
                    child(&pp, "weight"),
                    w,
                    "must be in the range 1-100",
                ));
            }
            if let Some(pref_term) = pref.get("preference") {
                node_selector_terms(
                    errs,
                    std::slice::from_ref(pref_term),
                    &child(&pp, "preference"),
                );
            }
        }
    }
    for which in ["podAffinity", "podAntiAffinity"] {
        let Some(pa) = a.get(which).filter(|v| v.is_object()) else {
            continue;
        };
        let pp = child(path, which);
        pod_affinity_terms(
            errs,
            arr(pa, "requiredDuringSchedulingIgnoredDuringExecution"),
            &child(&pp, "requiredDuringSchedulingIgnoredDuringExecution"),
            false,
        );
        pod_affinity_terms(
            errs,
            arr(pa, "preferredDuringSchedulingIgnoredDuringExecution"),
            &child(&pp, "preferredDuringSchedulingIgnoredDuringExecution"),
            true,
        );
    }
}

fn dns_config(errs: &mut FieldErrors, spec: &Value, path: &str) {
    let cfg = spec.get("dnsConfig").filter(|v| !v.is_null());
    if str_of(spec, "dnsPolicy") == "None" {
        match cfg {
            None => {
                errs.push(required(
                    path,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
                return;
            }
            Some(c) if arr(c, "nameservers").is_empty() => {
                errs.push(required(
                    child(path, "nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ));
                return;
            }
            _ => {}
        }
    }
    let Some(cfg) = cfg else { return };
    let ns = arr(cfg, "nameservers");
    if ns.len() > 3 {
        errs.push(invalid_raw(
            child(path, "nameservers"),
            go_strings(cfg.get("nameservers")),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, n) in ns.iter().enumerate() {
        valid_ip(
            errs,
            n.as_str().unwrap_or_default(),
            index(&child(path, "nameservers"), i),
        );
    }
    let searches = arr(cfg, "searches");
    if searches.len() > 32 {
        errs.push(invalid_raw(
            child(path, "searches"),
            go_strings(cfg.get("searches")),
            "must not have more than 32 search paths",
        ));
    }
    for (i, s) in searches.iter().enumerate() {
        let s = s.as_str().unwrap_or_default();
        dns1123_subdomain(
            errs,
            s.strip_suffix('.').unwrap_or(s),
            index(&child(path, "searches"), i),
        );
    }
    for (i, o) in arr(cfg, "options").iter().enumerate() {
        if empty(o, "name") {
            errs.push(required(
                index(&child(path, "options"), i),
                "must not be empty",
            ));
        }
    }
}

fn topology_spread(errs: &mut FieldErrors, spec: &Value, path: &str) {
    let mut seen = BTreeSet::new();
    for (i, c) in arr(spec, "topologySpreadConstraints").iter().enumerate() {
        let p = index(path, i);
        let skew = int_of(c, "maxSkew").unwrap_or(0);
        if skew <= 0 {
            errs.push(invalid_num(
                child(&p, "maxSkew"),
                skew,
                "must be greater than zero",
            ));
        }
        let tk = str_of(c, "topologyKey");
        if tk.is_empty() {
            errs.push(required(child(&p, "topologyKey"), "can not be empty"));
        } else {
            qualified_name(errs, tk, &child(&p, "topologyKey"));
        }
        let wu = str_of(c, "whenUnsatisfiable");
        if !["DoNotSchedule", "ScheduleAnyway"].contains(&wu) {
            errs.push(not_supported(
                child(&p, "whenUnsatisfiable"),
                wu,
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if !seen.insert((tk, wu)) {
            errs.push(duplicate_raw(
                index(path, i),
                format!("{{{}, {}}}", quote(tk), quote(wu)),
            ));
        }
        label_selector(errs, c.get("labelSelector"), &child(&p, "labelSelector"));
        if let Some(m) = int_of(c, "minDomains").filter(|m| *m <= 0) {
            errs.push(invalid_num(
                child(&p, "minDomains"),
                m,
                "must be greater than 0",
            ));
        }
    }
}

/// Kubernetes' `ValidatePodSpec`.
pub fn pod_spec(errs: &mut FieldErrors, spec: &Value, path: &str, of: SpecOf) {
    let grace = int_of(spec, "terminationGracePeriodSeconds");
    if absent(spec, "terminationGracePeriodSeconds") {
        errs.push(required(child(path, "terminationGracePeriodSeconds"), ""));
    }
    let vols = volumes(errs, spec, &child(path, "volumes"));

    let containers = arr(spec, "containers");
    let cpath = child(path, "containers");
    if containers.is_empty() {
        errs.push(required(&cpath, ""));
    }
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = index(&cpath, i);
        container_common(errs, c, &vols, &p);
        let name = str_of(c, "name");
        if !names.insert(name) {
            errs.push(duplicate(child(&p, "name"), name));
        }
        lifecycle(errs, c, grace, &p);
        for which in ["livenessProbe", "readinessProbe", "startupProbe"] {
            probe(errs, c, which, grace, &p);
        }
        if !absent(c, "restartPolicy") {
            errs.push(forbidden(
                child(&p, "restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
        if of == SpecOf::Pod && str_of(c, "image").trim() != str_of(c, "image") {
            errs.push(invalid(
                child(&p, "image"),
                str_of(c, "image"),
                "must not have leading or trailing whitespace",
            ));
        }
    }
    host_ports(errs, containers, &cpath, &mut BTreeSet::new());

    let ipath = child(path, "initContainers");
    for (i, c) in arr(spec, "initContainers").iter().enumerate() {
        let p = index(&ipath, i);
        container_common(errs, c, &vols, &p);
        let mut sidecar = false;
        if let Some(rp) = c.get("restartPolicy").filter(|v| !v.is_null()) {
            let rp = rp.as_str().unwrap_or_default();
            if rp == "Always" {
                sidecar = true;
            } else {
                errs.push(not_supported(child(&p, "restartPolicy"), rp, &["Always"]));
            }
        }
        let name = str_of(c, "name");
        if !name.is_empty() && !names.insert(name) {
            errs.push(duplicate(child(&p, "name"), name));
        }
        host_ports(errs, std::slice::from_ref(c), &ipath, &mut BTreeSet::new());
        if sidecar {
            lifecycle(errs, c, grace, &p);
            for which in ["livenessProbe", "readinessProbe", "startupProbe"] {
                probe(errs, c, which, grace, &p);
            }
        } else {
            for k in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if !absent(c, k) {
                    errs.push(forbidden(
                        child(&p, k),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
        if of == SpecOf::Pod && str_of(c, "image").trim() != str_of(c, "image") {
            errs.push(invalid(
                child(&p, "image"),
                str_of(c, "image"),
                "must not have leading or trailing whitespace",
            ));
        }
    }

    let epath = child(path, "ephemeralContainers");
    for (i, c) in arr(spec, "ephemeralContainers").iter().enumerate() {
        let p = index(&epath, i);
        container_common(errs, c, &vols, &p);
        let name = str_of(c, "name");
        if !names.insert(name) {
            errs.push(duplicate(child(&p, "name"), name));
        }
        for k in [
            "ports",
            "resources",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "lifecycle",
        ] {
            if !empty(c, k) {
                errs.push(forbidden(
                    child(&p, k),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
    }

    if spec.get("hostNetwork").and_then(|v| v.as_bool()) == Some(true) {
        for (i, c) in containers.iter().enumerate() {
            for (j, port) in arr(c, "ports").iter().enumerate() {
                let hp = int_of(port, "hostPort").unwrap_or(0);
                let cp = int_of(port, "containerPort").unwrap_or(0);
                if (of == SpecOf::Pod || hp != 0) && hp != cp {
                    errs.push(invalid_num(
                        child(&index(&child(&index(&cpath, i), "ports"), j), "hostPort"),
                        hp,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }

    match str_of(spec, "restartPolicy") {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(required(child(path, "restartPolicy"), "")),
        other => errs.push(not_supported(
            child(path, "restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    match str_of(spec, "dnsPolicy") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(required(child(path, "dnsPolicy"), "")),
        other => errs.push(not_supported(
            child(path, "dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    labels(errs, spec.get("nodeSelector"), &child(path, "nodeSelector"));
    let sc = spec.get("securityContext").filter(|v| v.is_object());
    security_context(errs, sc, &child(path, "securityContext"));
    if let Some(fs) = sc
        .and_then(|s| int_of(s, "fsGroup"))
        .filter(|g| !(0..=2_147_483_647).contains(g))
    {
        errs.push(invalid_num(
            child(&child(path, "securityContext"), "fsGroup"),
            fs,
            "must be between 0 and 2147483647, inclusive",
        ));
    }
    for (i, s) in arr(spec, "imagePullSecrets").iter().enumerate() {
        if s.as_object().is_some_and(|m| m.keys().any(|k| k != "name")) {
            errs.push(invalid_raw(
                index(&child(path, "imagePullSecrets"), i),
                render(s),
                "only name may be set",
            ));
        }
    }
    affinity(errs, spec, &child(path, "affinity"));
    dns_config(errs, spec, &child(path, "dnsConfig"));
    for (i, g) in arr(spec, "readinessGates").iter().enumerate() {
        qualified_name(
            errs,
            str_of(g, "conditionType"),
            &child(&index(&child(path, "readinessGates"), i), "conditionType"),
        );
    }
    let mut gates = BTreeSet::new();
    for (i, g) in arr(spec, "schedulingGates").iter().enumerate() {
        let gp = index(&child(path, "schedulingGates"), i);
        let n = str_of(g, "name");
        qualified_name(errs, n, &gp);
        if !gates.insert(n) {
            errs.push(duplicate(gp, n));
        }
    }
    topology_spread(errs, spec, &child(path, "topologySpreadConstraints"));
    for (k, sub) in [
        ("serviceAccountName", true),
        ("nodeName", true),
        ("priorityClassName", true),
        ("hostname", false),
        ("subdomain", false),
    ] {
        let v = str_of(spec, k);
        if v.is_empty() {
            continue;
        }
        if sub {
            dns1123_subdomain(errs, v, child(path, k));
        } else {
            dns1123_label(errs, v, child(path, k));
        }
    }
    if let Some(ads) =
        int_of(spec, "activeDeadlineSeconds").filter(|a| !(1..=2_147_483_647).contains(a))
    {
        errs.push(invalid_num(
            child(path, "activeDeadlineSeconds"),
            ads,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    tolerations(errs, arr(spec, "tolerations"), &child(path, "tolerations"));
    for (i, ha) in arr(spec, "hostAliases").iter().enumerate() {
        let hp = index(&child(path, "hostAliases"), i);
        valid_ip(errs, str_of(ha, "ip"), child(&hp, "ip"));
        for (j, h) in arr(ha, "hostnames").iter().enumerate() {
            dns1123_subdomain(
                errs,
                h.as_str().unwrap_or_default(),
                index(&child(&hp, "hostnames"), j),
            );
        }
    }
    if let Some(rc) = spec.get("runtimeClassName").and_then(|v| v.as_str()) {
        dns1123_subdomain(errs, rc, child(path, "runtimeClassName"));
    }
    if let Some(pp) = spec.get("preemptionPolicy").filter(|v| !v.is_null()) {
        match pp.as_str().unwrap_or_default() {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(required(child(path, "preemptionPolicy"), "")),
            other => errs.push(not_supported(
                child(path, "preemptionPolicy"),
                other,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if let Some(oh) = spec.get("overhead").filter(|v| !v.is_null()) {
        let wrapped = serde_json::json!({ "limits": oh });
        resource_requirements(errs, &wrapped, &child(path, "overhead"));
    }
    if let Some(os) = spec.get("os").filter(|v| v.is_object()) {
        match str_of(os, "name") {
            "linux" | "windows" => {}
            "" => errs.push(required(child(&child(path, "os"), "name"), "")),
            other => errs.push(not_supported(
                child(&child(path, "os"), "name"),
                other,
                &["linux", "windows"],
            )),
        }
    }
}

/// Kubernetes' `ValidatePodTemplateSpec` (the template of a workload at `path`).
pub fn pod_template(errs: &mut FieldErrors, template: Option<&Value>, path: &str) {
    let Some(t) = template.filter(|t| t.is_object()) else {
        errs.push(required(path, ""));
        return;
    };
    let meta = t.get("metadata").unwrap_or(&Value::Null);
    labels(errs, meta.get("labels"), &child(path, "labels"));
    annotations(errs, meta.get("annotations"), &child(path, "annotations"));
    let spec = t.get("spec").unwrap_or(&Value::Null);
    pod_spec(errs, spec, &child(path, "spec"), SpecOf::Template);
    if !empty(spec, "ephemeralContainers") {
        errs.push(forbidden(
            child(&child(path, "spec"), "ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// `ValidateAnnotations`: qualified keys (case-insensitive), at most 256 KiB in total.
pub fn annotations(errs: &mut FieldErrors, m: Option<&Value>, path: &str) {
    let Some(m) = m.and_then(|v| v.as_object()) else {
        return;
    };
    let mut total = 0;
    for (k, v) in m {
        for msg in qualified_name_errors(&k.to_lowercase()) {
            errs.push(invalid(path, k, msg));
        }
        total += k.len() + v.as_str().map_or(0, |s| s.len());
    }
    if total > 256 * 1024 {
        errs.push(crate::FieldError::too_long(path, 256 * 1024));
    }
}

/// A pod template's labels (for selector checks).
pub fn template_labels(owner_spec: &Value) -> Option<&serde_json::Map<String, Value>> {
    owner_spec
        .pointer("/template/metadata/labels")
        .and_then(|l| l.as_object())
}

/// Whether two JSON objects are equal when the keys in `skip` are ignored.
fn eq_except(a: &Value, b: &Value, skip: &[&str]) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) => {
            let keys: BTreeSet<&String> = x
                .keys()
                .chain(y.keys())
                .filter(|k| !skip.contains(&k.as_str()))
                .collect();
            keys.into_iter()
                .all(|k| x.get(k).filter(|v| !v.is_null()) == y.get(k).filter(|v| !v.is_null()))
        }
        _ => a == b,
    }
}

const UPDATABLE: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Kubernetes' `ValidatePodUpdate` rules for the spec.
pub fn pod_update(errs: &mut FieldErrors, new: &Value, old: &Value) {
    let (ns, os) = (
        new.get("spec").unwrap_or(&Value::Null),
        old.get("spec").unwrap_or(&Value::Null),
    );
    if ns == os {
        return;
    }
    for k in ["containers", "initContainers"] {
        if arr(ns, k).len() != arr(os, k).len() {
            errs.push(forbidden(
                child("spec", k),
                "pod updates may not add or remove containers",
            ));
            return;
        }
    }
    match (
        int_of(ns, "activeDeadlineSeconds"),
        int_of(os, "activeDeadlineSeconds"),
    ) {
        (Some(n), _) if !(0..=2_147_483_647).contains(&n) => {
            errs.push(invalid_num(
                "spec.activeDeadlineSeconds",
                n,
                "must be between 0 and 2147483647, inclusive",
            ));
            return;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(invalid_num(
                "spec.activeDeadlineSeconds",
                n,
                "must be less than or equal to previous value",
            ));
            return;
        }
        (None, Some(_)) => errs.push(invalid_raw(
            "spec.activeDeadlineSeconds",
            "null".into(),
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    // Tolerations may only be added (and their tolerationSeconds changed).
    let new_tolerations = arr(ns, "tolerations");
    for t in arr(os, "tolerations") {
        if !new_tolerations
            .iter()
            .any(|n| eq_except(n, t, &["tolerationSeconds"]))
        {
            errs.push(forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    // Scheduling gates may only be removed.
    let old_gates: BTreeSet<&str> = arr(os, "schedulingGates")
        .iter()
        .map(|g| str_of(g, "name"))
        .collect();
    for (i, g) in arr(ns, "schedulingGates").iter().enumerate() {
        let n = str_of(g, "name");
        if !old_gates.contains(n) {
            errs.push(forbidden(
                child(&index("spec.schedulingGates", i), "name"),
                format!("only deletion is allowed, but found new scheduling gate '{n}'"),
            ));
        }
    }
    let mut changed: Vec<String> = Vec::new();
    for k in ["containers", "initContainers"] {
        for (i, (a, b)) in arr(ns, k).iter().zip(arr(os, k)).enumerate() {
            if !eq_except(a, b, &["image"]) {
                changed.push(format!("spec.{k}[{i}]"));
            }
        }
    }
    let grace_relaxed = int_of(os, "terminationGracePeriodSeconds").is_some_and(|g| g < 0)
        && int_of(ns, "terminationGracePeriodSeconds") == Some(1);
    let mut skip = vec![
        "containers",
        "initContainers",
        "activeDeadlineSeconds",
        "tolerations",
        "schedulingGates",
    ];
    if grace_relaxed {
        skip.push("terminationGracePeriodSeconds");
    }
    // Binding an unscheduled pod sets `spec.nodeName` (berth's `pods/binding` goes through
    // the update path).
    if empty(os, "nodeName") {
        skip.push("nodeName");
    }
    if let (Some(a), Some(b)) = (ns.as_object(), os.as_object()) {
        let keys: BTreeSet<&String> = a
            .keys()
            .chain(b.keys())
            .filter(|k| !skip.contains(&k.as_str()))
            .collect();
        for k in keys {
            if a.get(k).filter(|v| !v.is_null()) != b.get(k).filter(|v| !v.is_null()) {
                changed.push(format!("spec.{k}"));
            }
        }
    }
    if !changed.is_empty() {
        errs.push(forbidden(
            "spec",
            format!("{UPDATABLE}\n  changed: {}", changed.join(", ")),
        ));
    }
}

/// A Pod: its spec and the pod-only rules; on update, what may change.
pub fn validate_pod(errs: &mut FieldErrors, pod: &Value, old: Option<&Value>) {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    pod_spec(errs, spec, "spec", SpecOf::Pod);
    if empty(spec, "serviceAccountName") {
        for (vi, v) in arr(spec, "volumes").iter().enumerate() {
            for (si, s) in v
                .get("projected")
                .map(|p| arr(p, "sources"))
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                if !absent(s, "serviceAccountToken") {
                    errs.push(forbidden(
                        format!("spec.volumes[{vi}].projected.sources[{si}].serviceAccountToken"),
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    if let Some(old) = old {
        pod_update(errs, pod, old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaulted_pod(spec: Value) -> Value {
        let mut p = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec});
        crate::defaults::apply("", "Pod", &mut p);
        p
    }

    fn errors(p: &Value, old: Option<&Value>) -> Vec<String> {
        let mut errs = FieldErrors::default();
        validate_pod(&mut errs, p, old);
        errs.0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn a_defaulted_pod_is_valid() {
        let p = defaulted_pod(
            json!({"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "name": "http"}],
            "env": [{"name": "A", "value": "1"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}},
            "livenessProbe": {"httpGet": {"port": "http"}}, "readinessProbe": {"tcpSocket": {"port": 80}},
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}}],
            "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}, {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
            "volumes": [{"name": "data"}, {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "a", "path": "a.conf"}]}}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}}]}}}),
        );
        assert_eq!(errors(&p, None), Vec::<String>::new());
    }

    #[test]
    fn container_errors_have_kubernetes_paths_and_messages() {
        let p = defaulted_pod(json!({"containers": [
            {"name": "Web_1", "image": "", "ports": [{"containerPort": 70000, "protocol": "HTTP"}, {"containerPort": 0}]},
            {"name": "b", "image": "x", "imagePullPolicy": "Sometimes", "env": [{"name": "A=B"}, {"name": ""}],
             "volumeMounts": [{"name": "missing", "mountPath": "/m"}],
             "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1", "nvidia.com/gpu": "1"}},
             "livenessProbe": {"exec": {"command": ["x"]}, "httpGet": {"port": 80}, "successThreshold": 2}},
            {"name": "b", "image": "x", "readinessProbe": {}}]}));
        let e = errors(&p, None);
        let want = [
            "spec.containers[0].name: Invalid value: \"Web_1\": a lowercase RFC 1123 label must consist of",
            "spec.containers[0].image: Required value",
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[0].ports[1].containerPort: Required value",
            "spec.containers[1].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            "spec.containers[1].env[1].name: Required value",
            "spec.containers[1].volumeMounts[0].name: Not found: \"missing\"",
            "spec.containers[1].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            "spec.containers[1].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            "spec.containers[1].livenessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
            "spec.containers[1].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.containers[2].name: Duplicate value: \"b\"",
            "spec.containers[2].readinessProbe: Required value: must specify a handler type",
        ];
        for w in want {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
        assert_eq!(e.len(), want.len(), "{e:#?}");
    }

    #[test]
    fn spec_level_errors() {
        let p = defaulted_pod(
            json!({"containers": [], "restartPolicy": "Sometimes", "dnsPolicy": "None",
            "volumes": [{"name": "a", "emptyDir": {}, "hostPath": {"path": "/x"}}, {"name": "a", "secret": {}}],
            "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}, {"operator": "Equal"}],
            "activeDeadlineSeconds": 0, "hostname": "Bad_Host"}),
        );
        let e = errors(&p, None);
        for w in [
            "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[1].secret.secretName: Required value",
            "spec.containers: Required value",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            "spec.hostname: Invalid value: \"Bad_Host\"",
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            "spec.tolerations[0].operator: Invalid value: ",
            "spec.tolerations[1].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty",
        ] {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
    }

    #[test]
    fn init_containers_and_sidecars() {
        let p = defaulted_pod(json!({"containers": [{"name": "a", "image": "x"}],
            "initContainers": [{"name": "a", "image": "y", "livenessProbe": {"exec": {"command": ["x"]}}}, {"name": "s", "image": "z", "restartPolicy": "OnFailure"}]}));
        let e = errors(&p, None);
        assert!(
            e.contains(&"spec.initContainers[0].name: Duplicate value: \"a\"".to_string()),
            "{e:#?}"
        );
        assert!(e.contains(&"spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always".to_string()));
        assert!(e.contains(&"spec.initContainers[1].restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"".to_string()));
    }

    #[test]
    fn pod_updates_may_change_images_and_add_tolerations_only() {
        let mut old = defaulted_pod(json!({"containers": [{"name": "a", "image": "x:1"}]}));
        // As the API server's admission adds them to new pods.
        old["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]);
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("x:2");
        new["spec"]["tolerations"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"}));
        new["spec"]["activeDeadlineSeconds"] = json!(60);
        assert_eq!(errors(&new, Some(&old)), Vec::<String>::new());
        let mut bad = old.clone();
        bad["spec"]["restartPolicy"] = json!("Never");
        bad["spec"]["containers"][0]["command"] = json!(["sh"]);
        let e = errors(&bad, Some(&old));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"));
        assert!(e[0].contains("spec.containers[0]") && e[0].contains("spec.restartPolicy"));
        let mut bound = old.clone();
        bound["spec"]["nodeName"] = json!("n1");
        assert_eq!(errors(&bound, Some(&old)), Vec::<String>::new());
        let mut moved = bound.clone();
        moved["spec"]["nodeName"] = json!("n2");
        assert_eq!(errors(&moved, Some(&bound)).len(), 1);
        let mut removed = old.clone();
        removed["spec"]["tolerations"] = json!([]);
        assert_eq!(errors(&removed, Some(&old)), vec!["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds".to_string()]);
    }
}
