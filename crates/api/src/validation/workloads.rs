//! Validation of the workload kinds: deployments, replica sets, stateful sets, daemon sets,
//! jobs, cron jobs and controller revisions — selectors that must match their pod
//! templates, replica counts, update strategies, job restart policies and the fields that
//! may not change after creation.

use serde_json::Value;

use super::field::*;
use super::pod::{pod_template, template_labels};
use crate::FieldErrors;

fn spec_of(obj: &Value) -> &Value {
    obj.get("spec").unwrap_or(&Value::Null)
}

/// Selector present, valid, non-empty, and matching the template labels.
fn selector_and_template(
    errs: &mut FieldErrors,
    spec: &Value,
    what: &str,
    required_selector: bool,
) {
    let sel = spec.get("selector").filter(|s| !s.is_null());
    match sel {
        None if required_selector => errs.push(required("spec.selector", "")),
        None => {}
        Some(s) => {
            label_selector(errs, Some(s), "spec.selector");
            if selector_is_empty(s) {
                errs.push(invalid_raw(
                    "spec.selector",
                    go_label_selector(Some(s)),
                    format!("empty selector is invalid for {what}"),
                ));
            }
        }
    }
    let valid = sel.is_some_and(|s| crate::selector::LabelSelector::from_structured(s).is_ok());
    if sel.is_some() && !valid {
        errs.push(invalid_raw(
            "spec.selector",
            go_label_selector(sel),
            "invalid label selector",
        ));
    }
    if let Some(s) = sel.filter(|s| valid && !selector_is_empty(s))
        && !selector_matches(Some(s), template_labels(spec))
    {
        errs.push(invalid_raw(
            "spec.template.metadata.labels",
            go_map(spec.pointer("/template/metadata/labels")),
            "`selector` does not match template `labels`",
        ));
    }
}

/// Pod templates of long-running workloads must restart always and have no deadline.
fn always_restart(errs: &mut FieldErrors, spec: &Value, owner: &str) {
    let Some(t) = spec.pointer("/template/spec").filter(|t| t.is_object()) else {
        return;
    };
    let rp = str_of(t, "restartPolicy");
    if rp != "Always" && !rp.is_empty() {
        errs.push(not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["Always"],
        ));
    }
    if !absent(t, "activeDeadlineSeconds") {
        errs.push(forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {owner} is not Supported"),
        ));
    }
}

fn selector_immutable(errs: &mut FieldErrors, spec: &Value, old: Option<&Value>) {
    if let Some(old) = old {
        let ospec = spec_of(old);
        if spec.get("selector").filter(|v| !v.is_null())
            != ospec.get("selector").filter(|v| !v.is_null())
        {
            errs.push(invalid_raw(
                "spec.selector",
                go_label_selector(spec.get("selector")),
                IMMUTABLE,
            ));
        }
    }
}

pub fn deployment(errs: &mut FieldErrors, d: &Value, old: Option<&Value>) {
    let spec = spec_of(d);
    non_negative(errs, spec, "replicas", "spec");
    selector_and_template(errs, spec, "deployment", true);
    pod_template(errs, spec.get("template"), "spec.template");
    always_restart(errs, spec, "ReplicaSet");
    let strategy = spec.get("strategy").unwrap_or(&Value::Null);
    match str_of(strategy, "type") {
        "Recreate" => {
            if !absent(strategy, "rollingUpdate") {
                errs.push(forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match strategy.get("rollingUpdate").filter(|v| !v.is_null()) {
            None => errs.push(required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let unavailable = int_or_percent(
                    errs,
                    ru.get("maxUnavailable"),
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    false,
                );
                let surge = int_or_percent(
                    errs,
                    ru.get("maxSurge"),
                    "spec.strategy.rollingUpdate.maxSurge",
                    false,
                );
                if unavailable == 0 && surge == 0 {
                    errs.push(invalid_raw(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        render_opt(ru.get("maxUnavailable")),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                if let Some(Value::String(s)) = ru.get("maxUnavailable")
                    && s.strip_suffix('%')
                        .and_then(|d| d.parse::<i64>().ok())
                        .is_some_and(|p| p > 100)
                {
                    errs.push(invalid(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        s,
                        "must not be greater than 100%",
                    ));
                }
            }
        },
        other => errs.push(not_supported(
            "spec.strategy",
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
    non_negative(errs, spec, "minReadySeconds", "spec");
    non_negative(errs, spec, "revisionHistoryLimit", "spec");
    if let Some(pds) = int_of(spec, "progressDeadlineSeconds") {
        if pds < 0 {
            errs.push(invalid_num(
                "spec.progressDeadlineSeconds",
                pds,
                IS_NEGATIVE,
            ));
        }
        if pds <= int_of(spec, "minReadySeconds").unwrap_or(0) {
            errs.push(invalid_num(
                "spec.progressDeadlineSeconds",
                pds,
                "must be greater than minReadySeconds",
            ));
        }
    }
    selector_immutable(errs, spec, old);
}

pub fn replica_set(errs: &mut FieldErrors, rs: &Value, old: Option<&Value>) {
    let spec = spec_of(rs);
    non_negative(errs, spec, "replicas", "spec");
    non_negative(errs, spec, "minReadySeconds", "spec");
    selector_and_template(errs, spec, "deployment", true);
    pod_template(errs, spec.get("template"), "spec.template");
    always_restart(errs, spec, "ReplicaSet");
    selector_immutable(errs, spec, old);
}

pub fn daemon_set(errs: &mut FieldErrors, ds: &Value, old: Option<&Value>) {
    let spec = spec_of(ds);
    selector_and_template(errs, spec, "daemonset", true);
    pod_template(errs, spec.get("template"), "spec.template");
    always_restart(errs, spec, "DaemonSet");
    non_negative(errs, spec, "minReadySeconds", "spec");
    non_negative(errs, spec, "templateGeneration", "spec");
    non_negative(errs, spec, "revisionHistoryLimit", "spec");
    let strategy = spec.get("updateStrategy").unwrap_or(&Value::Null);
    match str_of(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => match strategy.get("rollingUpdate").filter(|v| !v.is_null()) {
            None => errs.push(required("spec.updateStrategy.rollingUpdate", "")),
            Some(ru) => {
                let unavailable = int_or_percent(
                    errs,
                    ru.get("maxUnavailable"),
                    "spec.updateStrategy.rollingUpdate.maxUnavailable",
                    true,
                );
                let surge = int_or_percent(
                    errs,
                    ru.get("maxSurge"),
                    "spec.updateStrategy.rollingUpdate.maxSurge",
                    true,
                );
                match (unavailable != 0, surge != 0) {
                    (true, true) => errs.push(invalid_raw(
                        "spec.updateStrategy.rollingUpdate.maxSurge",
                        render_opt(ru.get("maxSurge")),
                        "may not be set when maxUnavailable is non-zero",
                    )),
                    (false, false) => errs.push(required(
                        "spec.updateStrategy.rollingUpdate.maxUnavailable",
                        "cannot be 0 when maxSurge is 0",
                    )),
                    _ => {}
                }
            }
        },
        other => errs.push(not_supported(
            "spec.updateStrategy",
            other,
            &["RollingUpdate", "OnDelete"],
        )),
    }
    selector_immutable(errs, spec, old);
}

pub fn stateful_set(errs: &mut FieldErrors, sts: &Value, old: Option<&Value>) {
    let spec = spec_of(sts);
    match str_of(spec, "podManagementPolicy") {
        "" => errs.push(required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(invalid(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = spec.get("updateStrategy").unwrap_or(&Value::Null);
    match str_of(strategy, "type") {
        "" => errs.push(required("spec.updateStrategy", "")),
        "OnDelete" => {
            if !absent(strategy, "rollingUpdate") {
                errs.push(invalid_raw(
                    "spec.updateStrategy.rollingUpdate",
                    render_opt(strategy.get("rollingUpdate")),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = strategy.get("rollingUpdate").filter(|v| !v.is_null()) {
                non_negative(errs, ru, "partition", "spec.updateStrategy.rollingUpdate");
            }
        }
        other => errs.push(invalid(
            "spec.updateStrategy",
            other,
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(policy) = spec
        .get("persistentVolumeClaimRetentionPolicy")
        .filter(|v| !v.is_null())
    {
        for k in ["whenDeleted", "whenScaled"] {
            let v = str_of(policy, k);
            if !["Retain", "Delete"].contains(&v) {
                errs.push(not_supported(
                    child("spec.persistentVolumeClaimRetentionPolicy", k),
                    v,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    non_negative(errs, spec, "replicas", "spec");
    non_negative(errs, spec, "minReadySeconds", "spec");
    if let Some(ord) = spec.get("ordinals").filter(|v| !v.is_null()) {
        non_negative(errs, ord, "start", "spec.ordinals");
    }
    selector_and_template(errs, spec, "statefulset", true);
    pod_template(errs, spec.get("template"), "spec.template");
    always_restart(errs, spec, "StatefulSet");
    for (i, claim) in arr(spec, "volumeClaimTemplates").iter().enumerate() {
        let p = index("spec.volumeClaimTemplates", i);
        if let Some(name) = claim.pointer("/metadata/name").and_then(|v| v.as_str()) {
            dns1123_subdomain(errs, name, child(&child(&p, "metadata"), "name"));
        }
        super::storage::claim_spec(
            errs,
            claim.get("spec").unwrap_or(&Value::Null),
            &child(&p, "spec"),
        );
    }
    if let Some(old) = old {
        let ospec = spec_of(old);
        let mutable = [
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
        ];
        let differs = spec
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .chain(ospec.as_object().into_iter().flat_map(|m| m.keys()))
            .filter(|k| !mutable.contains(&k.as_str()))
            .any(|k| spec.get(k).filter(|v| !v.is_null()) != ospec.get(k).filter(|v| !v.is_null()));
        if differs {
            errs.push(forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
}

/// The checks of a job spec shared by jobs and cron job templates (at `path`).
fn job_spec(errs: &mut FieldErrors, spec: &Value, path: &str) {
    for k in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ] {
        non_negative(errs, spec, k, path);
    }
    if let Some(m) = spec.get("completionMode").filter(|v| !v.is_null()) {
        let m = m.as_str().unwrap_or_default();
        if !["NonIndexed", "Indexed"].contains(&m) {
            errs.push(not_supported(
                child(path, "completionMode"),
                m,
                &["NonIndexed", "Indexed"],
            ));
        }
        if m == "Indexed" {
            if absent(spec, "completions") {
                errs.push(required(
                    child(path, "completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = int_of(spec, "parallelism").filter(|p| *p > 100_000) {
                errs.push(invalid_num(
                    child(path, "parallelism"),
                    p,
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
        }
    }
    if let Some(p) = spec.get("podReplacementPolicy").filter(|v| !v.is_null()) {
        let p = p.as_str().unwrap_or_default();
        let allowed: &[&str] = if absent(spec, "podFailurePolicy") {
            &["TerminatingOrFailed", "Failed"]
        } else {
            &["Failed"]
        };
        if !allowed.contains(&p) {
            errs.push(not_supported(
                child(path, "podReplacementPolicy"),
                p,
                allowed,
            ));
        }
    }
    if let Some(pfp) = spec.get("podFailurePolicy").filter(|v| !v.is_null()) {
        for (i, rule) in arr(pfp, "rules").iter().enumerate() {
            let rp = index(&child(&child(path, "podFailurePolicy"), "rules"), i);
            let action = str_of(rule, "action");
            let actions = ["Count", "FailIndex", "FailJob", "Ignore"];
            if !actions.contains(&action) {
                errs.push(not_supported(child(&rp, "action"), action, &actions));
            }
            let has_exit = !absent(rule, "onExitCodes");
            let has_conds = !empty(rule, "onPodConditions");
            if has_exit && has_conds {
                errs.push(invalid_raw(
                    &rp,
                    render(rule),
                    "specifying both OnExitCodes and OnPodConditions is not supported",
                ));
            } else if !has_exit && !has_conds {
                errs.push(invalid_raw(
                    &rp,
                    render(rule),
                    "specifying one of OnExitCodes and OnPodConditions is required",
                ));
            }
        }
    }
    let tpath = child(path, "template");
    pod_template(errs, spec.get("template"), &tpath);
    let rp = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let rp_path = child(&child(&tpath, "spec"), "restartPolicy");
    if rp == "Always" || rp.is_empty() {
        errs.push(required(&rp_path, "valid values: \"OnFailure\", \"Never\""));
    } else if rp != "OnFailure" && rp != "Never" {
        errs.push(not_supported(&rp_path, rp, &["OnFailure", "Never"]));
    } else if !absent(spec, "podFailurePolicy") && rp != "Never" {
        errs.push(invalid(
            &rp_path,
            rp,
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
}

fn has_label(errs: &mut FieldErrors, job: &Value, label: &str, want: &str) {
    let path = "spec.template.metadata";
    match job
        .pointer("/spec/template/metadata/labels")
        .and_then(|l| l.get(label))
        .and_then(|v| v.as_str())
    {
        None => errs.push(required(
            key(&child(path, "labels"), label),
            &format!("must be '{want}'"),
        )),
        Some(v) if v != want => errs.push(invalid_raw(
            key(&child(path, "labels"), label),
            go_map(job.pointer("/spec/template/metadata/labels")),
            format!("must be '{want}'"),
        )),
        _ => {}
    }
}

pub fn job(errs: &mut FieldErrors, j: &Value, old: Option<&Value>) {
    let spec = spec_of(j);
    let name = crate::meta::name(j).unwrap_or_default();
    let uid = crate::meta::meta_str(j, "uid").unwrap_or_default();
    // The generated selector and labels must be the ones Kubernetes generates.
    let manual = spec.get("manualSelector").and_then(|v| v.as_bool()) == Some(true);
    if !manual && !absent(spec, "selector") && j.pointer("/spec/template/metadata/labels").is_some()
    {
        for (label, want) in [
            ("controller-uid", uid),
            ("job-name", name),
            ("batch.kubernetes.io/controller-uid", uid),
            ("batch.kubernetes.io/job-name", name),
        ] {
            has_label(errs, j, label, want);
        }
        let expected =
            serde_json::json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        let sel = spec.get("selector").unwrap_or(&Value::Null);
        let plain =
            sel.get("matchLabels") == expected.get("matchLabels") && empty(sel, "matchExpressions");
        if !plain {
            errs.push(invalid_raw(
                "spec.selector",
                go_label_selector(Some(sel)),
                "`selector` not auto-generated",
            ));
        }
    }
    job_spec(errs, spec, "spec");
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => errs.push(required("spec.selector", "")),
        Some(s) => {
            label_selector(errs, Some(s), "spec.selector");
            if crate::selector::LabelSelector::from_structured(s).is_ok()
                && !selector_matches(Some(s), template_labels(spec))
            {
                errs.push(invalid_raw(
                    "spec.template.metadata.labels",
                    go_map(spec.pointer("/template/metadata/labels")),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    if spec.get("completionMode").and_then(|v| v.as_str()) == Some("Indexed")
        && let Some(c) = int_of(spec, "completions").filter(|c| *c > 0)
    {
        let host = format!("{name}-{}", c - 1);
        if crate::names::validate_dns1123_label(&host).is_err() {
            errs.push(invalid(
                "metadata.name",
                name,
                format!("will not able to create pod with invalid DNS label: {host}"),
            ));
        }
    }
    let Some(old) = old else { return };
    let ospec = spec_of(old);
    immutable(errs, spec, ospec, "completions", "spec", render_opt);
    if spec.get("selector") != ospec.get("selector") {
        errs.push(invalid_raw(
            "spec.selector",
            go_label_selector(spec.get("selector")),
            IMMUTABLE,
        ));
    }
    if spec.get("template") != ospec.get("template") {
        // Suspended jobs that never started may change their scheduling directives only.
        let suspended = ospec.get("suspend").and_then(|v| v.as_bool()) == Some(true)
            && old.pointer("/status/startTime").is_none();
        let only_scheduling = suspended && {
            let a = spec.pointer("/template/spec").cloned().unwrap_or_default();
            let b = ospec.pointer("/template/spec").cloned().unwrap_or_default();
            let strip = |mut v: Value| {
                if let Some(m) = v.as_object_mut() {
                    for k in ["nodeSelector", "tolerations", "affinity", "schedulingGates"] {
                        m.shift_remove(k);
                    }
                }
                v
            };
            strip(a) == strip(b)
                && spec.pointer("/template/metadata") == ospec.pointer("/template/metadata")
        };
        if !only_scheduling {
            errs.push(invalid_raw(
                "spec.template",
                "core.PodTemplateSpec{...}".into(),
                IMMUTABLE,
            ));
        }
    }
    for k in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        immutable(errs, spec, ospec, k, "spec", render_opt);
    }
}

pub fn cron_job(errs: &mut FieldErrors, cj: &Value, old: Option<&Value>) {
    let spec = spec_of(cj);
    let schedule = str_of(spec, "schedule");
    let tz = spec.get("timeZone").filter(|v| !v.is_null());
    if schedule.is_empty() {
        errs.push(required("spec.schedule", ""));
    } else {
        if let Err(msg) = super::cron::parse_schedule(schedule) {
            errs.push(invalid("spec.schedule", schedule, msg));
        }
        let allow_tz = old.is_some_and(|o| str_of(spec_of(o), "schedule").contains("TZ"));
        if allow_tz && schedule.contains("TZ") && tz.is_some() {
            errs.push(invalid(
                "spec.schedule",
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && schedule.contains("TZ") {
            errs.push(invalid(
                "spec.schedule",
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    non_negative(errs, spec, "startingDeadlineSeconds", "spec");
    let tz_changed = old.is_none_or(|o| spec_of(o).get("timeZone").filter(|v| !v.is_null()) != tz);
    if let (Some(tz), true) = (tz, tz_changed) {
        let name = tz.as_str().unwrap_or_default();
        if let Some(msg) = super::time_zone_error(name) {
            errs.push(invalid("spec.timeZone", name, msg));
        }
    }
    match str_of(spec, "concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(required("spec.concurrencyPolicy", "")),
        other => errs.push(not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let job_spec_value = spec.pointer("/jobTemplate/spec").unwrap_or(&Value::Null);
    job_spec(errs, job_spec_value, "spec.jobTemplate.spec");
    if !absent(job_spec_value, "selector") {
        errs.push(invalid_raw(
            "spec.jobTemplate.spec.selector",
            go_label_selector(job_spec_value.get("selector")),
            "`selector` will be auto-generated",
        ));
    }
    if job_spec_value
        .get("manualSelector")
        .and_then(|v| v.as_bool())
        == Some(true)
    {
        errs.push(not_supported(
            "spec.jobTemplate.spec.manualSelector",
            "true",
            &["nil", "false"],
        ));
    }
    non_negative(errs, spec, "successfulJobsHistoryLimit", "spec");
    non_negative(errs, spec, "failedJobsHistoryLimit", "spec");
    if old.is_none() {
        let name = crate::meta::name(cj).unwrap_or_default();
        if name.len() > 52 {
            errs.push(invalid(
                "metadata.name",
                name,
                "must be no more than 52 characters",
            ));
        }
    }
}

pub fn controller_revision(errs: &mut FieldErrors, cr: &Value, old: Option<&Value>) {
    if absent(cr, "data") {
        errs.push(required("data", "data is mandatory"));
    }
    non_negative(errs, cr, "revision", "");
    if let Some(old) = old
        && cr.get("data") != old.get("data")
    {
        errs.push(invalid_raw(
            "data",
            "runtime.RawExtension{...}".into(),
            IMMUTABLE,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaulted(group: &str, kind: &str, mut v: Value) -> Value {
        crate::defaults::apply(group, kind, &mut v);
        v
    }

    fn errs(f: impl FnOnce(&mut FieldErrors)) -> Vec<String> {
        let mut e = FieldErrors::default();
        f(&mut e);
        e.0.iter().map(|x| x.to_string()).collect()
    }

    fn seed_deployment(name: &str, image: &str, extra: Value) -> Value {
        let mut container = json!({"name": name, "image": image});
        if let (Some(c), Some(x)) = (container.as_object_mut(), extra.as_object()) {
            for (k, v) in x {
                c.insert(k.clone(), v.clone());
            }
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}})
    }

    #[test]
    fn the_seed_deployments_validate_after_defaulting() {
        // deployment-my-app.yaml, deployment-my-flask-app.yaml and deployment-mywebapp.yaml.
        let seeds = [
            seed_deployment("my-app", "my-image:latest", json!({})),
            seed_deployment(
                "my-flask-app",
                "my-flask-app:latest",
                json!({"ports": [{"containerPort": 5000}]}),
            ),
            seed_deployment(
                "mywebapp",
                "mywebapp:latest",
                json!({"resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}}}),
            ),
        ];
        for d in seeds {
            let d = defaulted("apps", "Deployment", d);
            assert_eq!(
                errs(|e| deployment(e, &d, None)),
                Vec::<String>::new(),
                "{d}"
            );
        }
    }

    #[test]
    fn deployment_errors() {
        let mut d = defaulted(
            "apps",
            "Deployment",
            seed_deployment("web", "nginx", json!({})),
        );
        d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
        d["spec"]["replicas"] = json!(-1);
        assert_eq!(
            errs(|e| deployment(e, &d, None)),
            vec![
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0".to_string(),
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`".to_string(),
            ]
        );
        let mut no_sel = defaulted(
            "apps",
            "Deployment",
            seed_deployment("web", "nginx", json!({})),
        );
        no_sel["spec"]
            .as_object_mut()
            .unwrap()
            .shift_remove("selector");
        assert_eq!(
            errs(|e| deployment(e, &no_sel, None)),
            vec!["spec.selector: Required value".to_string()]
        );
        let mut strat = defaulted(
            "apps",
            "Deployment",
            seed_deployment("web", "nginx", json!({})),
        );
        strat["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}});
        assert_eq!(
            errs(|e| deployment(e, &strat, None)),
            vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0".to_string()]
        );
        strat["spec"]["strategy"] = json!({"type": "BlueGreen"});
        assert_eq!(
            errs(|e| deployment(e, &strat, None)),
            vec!["spec.strategy: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\"".to_string()]
        );
    }

    #[test]
    fn selectors_are_immutable() {
        let old = defaulted(
            "apps",
            "Deployment",
            seed_deployment("web", "nginx", json!({})),
        );
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "fe"}});
        new["spec"]["template"]["metadata"]["labels"] = json!({"app": "web", "tier": "fe"});
        assert_eq!(
            errs(|e| deployment(e, &new, Some(&old))),
            vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"fe\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable".to_string()]
        );
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(5);
        assert_eq!(
            errs(|e| deployment(e, &scaled, Some(&old))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn replica_daemon_and_stateful_sets() {
        let rs = defaulted(
            "apps",
            "ReplicaSet",
            json!({"spec": {"selector": {}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        );
        assert_eq!(
            errs(|e| replica_set(e, &rs, None)),
            vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment".to_string()]
        );
        let ds = defaulted(
            "apps",
            "DaemonSet",
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}}}}),
        );
        assert_eq!(
            errs(|e| daemon_set(e, &ds, None)),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"".to_string(),
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero".to_string(),
            ]
        );
        let sts = defaulted(
            "apps",
            "StatefulSet",
            json!({"spec": {"serviceName": "web", "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        );
        assert_eq!(errs(|e| stateful_set(e, &sts, None)), Vec::<String>::new());
        let mut renamed = sts.clone();
        renamed["spec"]["serviceName"] = json!("other");
        let e = errs(|e| stateful_set(e, &renamed, Some(&sts)));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with(
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas'"
        ));
        let mut scaled = sts.clone();
        scaled["spec"]["replicas"] = json!(3);
        assert_eq!(
            errs(|e| stateful_set(e, &scaled, Some(&sts))),
            Vec::<String>::new()
        );
    }

    fn job_obj(restart: &str) -> Value {
        defaulted(
            "batch",
            "Job",
            json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {
            "containers": [{"name": "pi", "image": "perl:5.34", "command": ["perl", "-e", "1"]}], "restartPolicy": restart}}}}),
        )
    }

    #[test]
    fn jobs() {
        assert_eq!(
            errs(|e| job(e, &job_obj("Never"), None)),
            Vec::<String>::new()
        );
        assert_eq!(
            errs(|e| job(e, &job_obj("Always"), None)),
            vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"".to_string()]
        );
        let old = job_obj("Never");
        let mut new = old.clone();
        new["spec"]["completions"] = json!(5);
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:5.36");
        assert_eq!(
            errs(|e| job(e, &new, Some(&old))),
            vec![
                "spec.completions: Invalid value: 5: field is immutable".to_string(),
                "spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable"
                    .to_string(),
            ]
        );
        let mut forged = job_obj("Never");
        forged["spec"]["selector"] =
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "someone-else"}});
        let e = errs(|e| job(e, &forged, None));
        assert!(
            e.iter()
                .any(|x| x.contains("`selector` not auto-generated")),
            "{e:#?}"
        );
        let mut suspended = job_obj("Never");
        suspended["spec"]["suspend"] = json!(true);
        let mut rescheduled = suspended.clone();
        rescheduled["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
        assert_eq!(
            errs(|e| job(e, &rescheduled, Some(&suspended))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn cron_jobs() {
        let cj = |schedule: &str, tz: Option<&str>| {
            let mut v = json!({"metadata": {"name": "hello"}, "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "OnFailure"}}}}}});
            if let Some(tz) = tz {
                v["spec"]["timeZone"] = json!(tz);
            }
            defaulted("batch", "CronJob", v)
        };
        assert_eq!(
            errs(|e| cron_job(e, &cj("*/5 * * * *", Some("Europe/Berlin")), None)),
            Vec::<String>::new()
        );
        assert_eq!(
            errs(|e| cron_job(e, &cj("@hourly", None), None)),
            Vec::<String>::new()
        );
        assert_eq!(
            errs(|e| cron_job(e, &cj("61 * * * *", None), None)),
            vec!["spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61".to_string()]
        );
        assert_eq!(
            errs(|e| cron_job(e, &cj("TZ=UTC 0 * * * *", None), None)),
            vec!["spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead".to_string()]
        );
        assert_eq!(
            errs(|e| cron_job(e, &cj("0 * * * *", Some("Mars/Base")), None)),
            vec![
                "spec.timeZone: Invalid value: \"Mars/Base\": unknown time zone Mars/Base"
                    .to_string()
            ]
        );
        assert_eq!(
            errs(|e| cron_job(e, &cj("0 * * * *", Some("Local")), None)),
            vec!["spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones".to_string()]
        );
    }
}
