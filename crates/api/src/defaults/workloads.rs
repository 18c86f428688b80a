//! Defaults of the workload kinds: deployments, replica sets, stateful sets, daemon sets,
//! jobs (with the selector Kubernetes generates for them) and cron jobs. Their pod
//! templates get the PodSpec defaults.

use serde_json::{Map, Value, json};

use super::pod::{claim_spec, template};
use super::{child, default_str, existing, is_empty, items, set_default};

fn spec_of(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    child(obj.as_object_mut()?, "spec")
}

pub fn deployment(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    set_default(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        default_str(strategy, "type", "RollingUpdate");
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            set_default(ru, "maxUnavailable", json!("25%"));
            set_default(ru, "maxSurge", json!("25%"));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    template(spec);
}

pub fn replica_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    set_default(spec, "replicas", json!(1));
    template(spec);
}

pub fn daemon_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    if let Some(strategy) = child(spec, "updateStrategy") {
        default_str(strategy, "type", "RollingUpdate");
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            set_default(ru, "maxUnavailable", json!(1));
            set_default(ru, "maxSurge", json!(0));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    template(spec);
}

pub fn stateful_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = child(spec, "updateStrategy") {
        if is_empty(strategy, "type") {
            strategy.insert("type".into(), json!("RollingUpdate"));
            set_default(strategy, "rollingUpdate", json!({}));
        }
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(ru) = existing(strategy, "rollingUpdate")
        {
            set_default(ru, "partition", json!(0));
        }
    }
    if let Some(policy) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        default_str(policy, "whenDeleted", "Retain");
        default_str(policy, "whenScaled", "Retain");
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    template(spec);
    for claim in items(spec, "volumeClaimTemplates") {
        default_str(claim, "apiVersion", "v1");
        default_str(claim, "kind", "PersistentVolumeClaim");
        if let Some(s) = child(claim, "spec") {
            claim_spec(s);
        }
        if let Some(status) = child(claim, "status") {
            default_str(status, "phase", "Pending");
        }
    }
}

fn pod_failure_policy(spec: &mut Map<String, Value>) {
    if let Some(policy) = existing(spec, "podFailurePolicy") {
        for rule in items(policy, "rules") {
            for pattern in items(rule, "onPodConditions") {
                default_str(pattern, "status", "True");
            }
        }
    }
}

/// Labels Kubernetes puts on a job's pods and selects them by.
pub const JOB_NAME_LABELS: [&str; 2] = ["job-name", "batch.kubernetes.io/job-name"];
pub const CONTROLLER_UID_LABELS: [&str; 2] =
    ["controller-uid", "batch.kubernetes.io/controller-uid"];

pub fn job(obj: &mut Value) {
    let name = crate::meta::name(obj).unwrap_or_default().to_string();
    let uid = crate::meta::meta_str(obj, "uid")
        .unwrap_or_default()
        .to_string();
    let Some(o) = obj.as_object_mut() else { return };
    let Some(spec) = child(o, "spec") else { return };
    let unset = |s: &Map<String, Value>, k: &str| matches!(s.get(k), None | Some(Value::Null));
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    if unset(spec, "backoffLimit") {
        let limit = if unset(spec, "backoffLimitPerIndex") {
            6
        } else {
            i32::MAX as i64
        };
        spec.insert("backoffLimit".into(), json!(limit));
    }
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    pod_failure_policy(spec);
    if unset(spec, "podReplacementPolicy") {
        let policy = if unset(spec, "podFailurePolicy") {
            "TerminatingOrFailed"
        } else {
            "Failed"
        };
        spec.insert("podReplacementPolicy".into(), json!(policy));
    }
    set_default(spec, "manualSelector", json!(false));
    template(spec);
    if spec.get("manualSelector") != Some(&json!(true)) && !uid.is_empty() {
        generate_selector(spec, &name, &uid);
    }
    // A job without labels takes its pod template's (Kubernetes applies this default again
    // whenever it reads the job back, so the generated labels end up there too).
    let template_labels = spec
        .get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.is_object())
        .cloned();
    if let Some(labels) = template_labels
        && let Some(meta) = child(o, "metadata")
        && is_empty(meta, "labels")
    {
        meta.insert("labels".into(), labels);
    }
}

/// The labels and selector Kubernetes generates for a job without a manual selector.
fn generate_selector(spec: &mut Map<String, Value>, name: &str, uid: &str) {
    if let Some(labels) = child(spec, "template")
        .and_then(|t| child(t, "metadata"))
        .and_then(|m| child(m, "labels"))
    {
        for key in JOB_NAME_LABELS {
            labels.entry(key).or_insert_with(|| json!(name));
        }
        for key in CONTROLLER_UID_LABELS {
            labels.entry(key).or_insert_with(|| json!(uid));
        }
    }
    if let Some(match_labels) = child(spec, "selector").and_then(|s| child(s, "matchLabels")) {
        match_labels
            .entry(CONTROLLER_UID_LABELS[1])
            .or_insert_with(|| json!(uid));
    }
}

pub fn cron_job(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    default_str(spec, "concurrencyPolicy", "Allow");
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) = child(spec, "jobTemplate").and_then(|t| child(t, "spec")) {
        pod_failure_policy(job_spec);
        template(job_spec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults_match_kubernetes() {
        let mut d = json!({"metadata": {"name": "my-deployment"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "my-app"}},
            "template": {"metadata": {"labels": {"app": "my-app"}}, "spec": {"containers": [{"name": "my-container", "image": "my-image:latest"}]}}}});
        deployment(&mut d);
        let s = &d["spec"];
        assert_eq!(s["replicas"], 3);
        assert_eq!(
            s["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(s["revisionHistoryLimit"], 10);
        assert_eq!(s["progressDeadlineSeconds"], 600);
        assert_eq!(
            s["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
        assert_eq!(s["template"]["spec"]["restartPolicy"], "Always");
        let mut recreate = json!({"spec": {"strategy": {"type": "Recreate"}}});
        deployment(&mut recreate);
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(recreate["spec"]["replicas"], 1);
    }

    #[test]
    fn replica_daemon_and_stateful_sets() {
        let mut rs = json!({"spec": {}});
        replica_set(&mut rs);
        assert_eq!(rs["spec"]["replicas"], 1);
        let mut ds = json!({"spec": {"template": {"spec": {"containers": []}}}});
        daemon_set(&mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
        let mut sts = json!({"spec": {"serviceName": "web", "volumeClaimTemplates": [{"metadata": {"name": "www"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
        stateful_set(&mut sts);
        let s = &sts["spec"];
        assert_eq!(s["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            s["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            s["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            (s["replicas"].clone(), s["revisionHistoryLimit"].clone()),
            (json!(1), json!(10))
        );
        let claim = &s["volumeClaimTemplates"][0];
        assert_eq!(
            (claim["apiVersion"].clone(), claim["kind"].clone()),
            (json!("v1"), json!("PersistentVolumeClaim"))
        );
        assert_eq!(claim["spec"]["volumeMode"], "Filesystem");
        assert_eq!(claim["status"], json!({"phase": "Pending"}));
        let mut on_delete = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        stateful_set(&mut on_delete);
        assert_eq!(
            on_delete["spec"]["updateStrategy"],
            json!({"type": "OnDelete"})
        );
    }

    #[test]
    fn jobs_get_counts_policies_and_a_generated_selector() {
        let mut j = json!({"metadata": {"name": "pi", "uid": "3f1c"}, "spec": {"template": {"spec": {
            "containers": [{"name": "pi", "image": "perl:5.34"}], "restartPolicy": "Never"}}}});
        job(&mut j);
        let s = &j["spec"];
        assert_eq!(
            (
                s["completions"].clone(),
                s["parallelism"].clone(),
                s["backoffLimit"].clone()
            ),
            (json!(1), json!(1), json!(6))
        );
        assert_eq!(s["completionMode"], "NonIndexed");
        assert_eq!(s["suspend"], false);
        assert_eq!(s["manualSelector"], false);
        assert_eq!(s["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(
            s["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "3f1c"}})
        );
        assert_eq!(
            s["template"]["metadata"]["labels"],
            json!({"job-name": "pi", "batch.kubernetes.io/job-name": "pi", "controller-uid": "3f1c", "batch.kubernetes.io/controller-uid": "3f1c"})
        );
        assert_eq!(s["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(j["metadata"]["labels"], s["template"]["metadata"]["labels"]);
        let once = j.clone();
        job(&mut j);
        assert_eq!(j, once);

        let mut labelled = json!({"metadata": {"name": "w", "uid": "u"}, "spec": {"parallelism": 3,
            "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
            "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "w", "image": "w:1"}], "restartPolicy": "Never"}}}});
        job(&mut labelled);
        assert_eq!(
            labelled["metadata"]["labels"],
            json!({"app": "w", "job-name": "w", "batch.kubernetes.io/job-name": "w", "controller-uid": "u", "batch.kubernetes.io/controller-uid": "u"})
        );
        assert!(labelled["spec"].get("completions").is_none());
        assert_eq!(labelled["spec"]["podReplacementPolicy"], "Failed");
        assert_eq!(
            labelled["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
            "True"
        );

        let mut manual = json!({"metadata": {"name": "m", "uid": "u"}, "spec": {"manualSelector": true, "selector": {"matchLabels": {"x": "y"}},
            "template": {"metadata": {"labels": {"x": "y"}}}}});
        job(&mut manual);
        assert_eq!(
            manual["spec"]["selector"],
            json!({"matchLabels": {"x": "y"}})
        );
        assert_eq!(
            manual["spec"]["template"]["metadata"]["labels"],
            json!({"x": "y"})
        );
    }

    #[test]
    fn cron_jobs() {
        let mut cj = json!({"spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "OnFailure"}}}}}});
        cron_job(&mut cj);
        let s = &cj["spec"];
        assert_eq!(s["concurrencyPolicy"], "Allow");
        assert_eq!(s["suspend"], false);
        assert_eq!(
            (
                s["successfulJobsHistoryLimit"].clone(),
                s["failedJobsHistoryLimit"].clone()
            ),
            (json!(3), json!(1))
        );
        assert_eq!(
            s["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
            "ClusterFirst"
        );
        // The job template does not get a job's defaults.
        assert!(s["jobTemplate"]["spec"].get("backoffLimit").is_none());
    }
}
