//! The Pod printer: READY, STATUS (the aggregate reason Kubernetes computes from the phase,
//! init containers, container states and deletion), RESTARTS with the time of the last
//! restart, and the wide columns IP, NODE, NOMINATED NODE, READINESS GATES.

use serde_json::{Value, json};

use super::cells::{condition_true, str_at};
use super::{AGE, Column, NAME, Printer, age, docs, human_duration, name};

pub fn for_kind(group: &str, kind: &str) -> Option<&'static dyn Printer> {
    match (group, kind) {
        ("", "Pod") => Some(&POD),
        _ => None,
    }
}

pub struct PodPrinter;
static POD: PodPrinter = PodPrinter;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    Column::new(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    Column::new(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    Column::new("IP", "string", docs::POD_IP).wide(),
    Column::new("Node", "string", docs::NODE_NAME).wide(),
    Column::new("Nominated Node", "string", docs::NOMINATED_NODE_NAME).wide(),
    Column::new("Readiness Gates", "string", docs::READINESS_GATES).wide(),
];

fn list<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(|x| x.as_array())
        .map(|a| a.as_slice())
        .unwrap_or_default()
}

/// The later of two RFC 3339 timestamps (None when neither parses).
fn later(cur: Option<jiff::Timestamp>, ts: Option<&Value>) -> Option<jiff::Timestamp> {
    let t = ts
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<jiff::Timestamp>().ok());
    match (cur, t) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn last_terminated_at(status: &Value) -> Option<&Value> {
    status.pointer("/lastState/terminated/finishedAt")
}

/// An init container whose `restartPolicy` is `Always` (a sidecar).
fn is_restartable(init: Option<&Value>) -> bool {
    init.is_some_and(|c| str_at(c, "restartPolicy") == "Always")
}

fn terminated_reason(t: &Value, prefix: &str) -> String {
    let reason = str_at(t, "reason");
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = t.get("signal").and_then(|v| v.as_i64()).unwrap_or(0);
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        let code = t.get("exitCode").and_then(|v| v.as_i64()).unwrap_or(0);
        format!("{prefix}ExitCode:{code}")
    }
}

/// The row values Kubernetes computes for a pod: (ready, status, restarts).
pub fn pod_summary(pod: &Value, now: jiff::Timestamp) -> (String, String, String) {
    let spec_containers = list(pod, "/spec/containers");
    let init_specs = list(pod, "/spec/initContainers");
    let conditions = pod.pointer("/status/conditions");
    let mut total = spec_containers.len();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<jiff::Timestamp> = None;
    let mut last_sidecar_restart: Option<jiff::Timestamp> = None;

    let phase = super::s(pod, "/status/phase");
    let mut reason = phase.to_string();
    let status_reason = super::s(pod, "/status/reason");
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    for c in conditions
        .and_then(|c| c.as_array())
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        if str_at(c, "type") == "PodScheduled" && str_at(c, "reason") == "SchedulingGated" {
            reason = "SchedulingGated".into();
        }
    }

    let init_by_name = |n: &str| init_specs.iter().find(|c| str_at(c, "name") == n);
    total += init_specs
        .iter()
        .filter(|c| is_restartable(Some(c)))
        .count();

    let init_statuses = list(pod, "/status/initContainerStatuses");
    let mut initializing = false;
    for (i, st) in init_statuses.iter().enumerate() {
        let cname = str_at(st, "name");
        let restartable = is_restartable(init_by_name(cname));
        let count = st.get("restartCount").and_then(|v| v.as_i64()).unwrap_or(0);
        restarts += count;
        last_restart = later(last_restart, last_terminated_at(st));
        if restartable {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, last_terminated_at(st));
        }
        let terminated = st.pointer("/state/terminated");
        let waiting_reason = st
            .pointer("/state/waiting/reason")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let exit_code = terminated
            .and_then(|t| t.get("exitCode"))
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        if terminated.is_some_and(|t| t.is_object()) && exit_code == 0 {
            continue;
        }
        if restartable && st.get("started").and_then(|v| v.as_bool()) == Some(true) {
            if st.get("ready").and_then(|v| v.as_bool()) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated.filter(|t| t.is_object()) {
            reason = terminated_reason(t, "Init:");
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{}/{}", i, init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for st in list(pod, "/status/containerStatuses").iter().rev() {
            restarts += st.get("restartCount").and_then(|v| v.as_i64()).unwrap_or(0);
            last_restart = later(last_restart, last_terminated_at(st));
            let waiting_reason = st
                .pointer("/state/waiting/reason")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let terminated = st.pointer("/state/terminated").filter(|t| t.is_object());
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = terminated_reason(t, "");
            } else if st.get("ready").and_then(|v| v.as_bool()) == Some(true)
                && st.pointer("/state/running").is_some_and(|r| r.is_object())
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if crate::meta::is_deleting(pod) {
        if status_reason == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Failed" && phase != "Succeeded" {
            reason = "Terminating".into();
        }
    }

    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => {
            format!(
                "{restarts} ({} ago)",
                human_duration((now - t).get_seconds())
            )
        }
        _ => restarts.to_string(),
    };
    (format!("{ready}/{total}"), reason, restarts_str)
}

impl Printer for PodPrinter {
    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn cells(&self, pod: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let (ready, status, restarts) = pod_summary(pod, now);
        let none = |v: &str| {
            if v.is_empty() {
                "<none>".to_string()
            } else {
                v.to_string()
            }
        };
        let ip = list(pod, "/status/podIPs")
            .first()
            .map(|p| str_at(p, "ip"))
            .unwrap_or("");
        let gates = list(pod, "/spec/readinessGates");
        let readiness_gates = if gates.is_empty() {
            "<none>".to_string()
        } else {
            let conds = list(pod, "/status/conditions");
            let true_count = gates
                .iter()
                .filter(|g| {
                    let t = str_at(g, "conditionType");
                    conds
                        .iter()
                        .find(|c| str_at(c, "type") == t)
                        .is_some_and(|c| str_at(c, "status") == "True")
                })
                .count();
            format!("{true_count}/{}", gates.len())
        };
        vec![
            name(pod),
            json!(ready),
            json!(status),
            json!(restarts),
            age(pod, now),
            json!(none(ip)),
            json!(none(super::s(pod, "/spec/nodeName"))),
            json!(none(super::s(pod, "/status/nominatedNodeName"))),
            json!(readiness_gates),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2025-03-01T12:00:00Z".parse().unwrap()
    }

    fn pod(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "p", "creationTimestamp": "2025-03-01T11:00:00Z"}, "spec": spec, "status": status})
    }

    fn row(p: &Value) -> Vec<Value> {
        POD.cells(p, now())
    }

    #[test]
    fn running_pod_row() {
        let p = pod(
            json!({"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"}),
            json!({"phase": "Running", "podIPs": [{"ip": "10.42.0.5"}], "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2025-03-01T11:00:00Z"}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"running": {"startedAt": "2025-03-01T11:00:00Z"}}}
            ]}),
        );
        assert_eq!(
            row(&p),
            vec![
                json!("p"),
                json!("1/2"),
                json!("Running"),
                json!("0"),
                json!("60m"),
                json!("10.42.0.5"),
                json!("n1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn pending_pod_without_status_details() {
        let p = pod(
            json!({"containers": [{"name": "a"}]}),
            json!({"phase": "Pending"}),
        );
        let r = row(&p);
        assert_eq!(r[1], json!("0/1"));
        assert_eq!(r[2], json!("Pending"));
        assert_eq!(r[5], json!("<none>"));
        assert_eq!(r[6], json!("<none>"));
    }

    #[test]
    fn waiting_reasons_and_restarts_with_last_time() {
        let p = pod(
            json!({"containers": [{"name": "a"}]}),
            json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 3,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-03-01T11:55:00Z"}}}
            ]}),
        );
        let r = row(&p);
        assert_eq!(r[2], json!("CrashLoopBackOff"));
        assert_eq!(r[3], json!("3 (5m ago)"));
        let creating = pod(
            json!({"containers": [{"name": "a"}]}),
            json!({"phase": "Pending", "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        assert_eq!(row(&creating)[2], json!("ContainerCreating"));
    }

    #[test]
    fn init_container_progress_and_failures() {
        let spec = json!({"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]});
        let running_first = pod(
            spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "ready": false, "restartCount": 0, "state": {"running": {}}},
                {"name": "i2", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
            ]}),
        );
        assert_eq!(row(&running_first)[2], json!("Init:0/2"));
        let second = pod(
            spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "i2", "restartCount": 0, "state": {"running": {}}}
            ]}),
        );
        assert_eq!(row(&second)[2], json!("Init:1/2"));
        let failed = pod(
            spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "restartCount": 2, "state": {"terminated": {"exitCode": 2}}}
            ]}),
        );
        assert_eq!(row(&failed)[2], json!("Init:ExitCode:2"));
        assert_eq!(row(&failed)[3], json!("2"));
        let backoff = pod(
            spec,
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}),
        );
        assert_eq!(row(&backoff)[2], json!("Init:CrashLoopBackOff"));
    }

    #[test]
    fn sidecars_count_as_containers() {
        let p = pod(
            json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "a"}]}),
            json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
                   "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 1, "state": {"running": {}}}],
                   "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
        );
        let r = row(&p);
        assert_eq!(r[1], json!("2/2"));
        assert_eq!(r[2], json!("Running"));
        assert_eq!(r[3], json!("1"));
    }

    #[test]
    fn completed_terminating_and_signals() {
        let done = pod(
            json!({"containers": [{"name": "a"}], "restartPolicy": "Never"}),
            json!({"phase": "Succeeded", "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
        );
        assert_eq!(row(&done)[2], json!("Completed"));
        assert_eq!(row(&done)[1], json!("0/1"));
        let killed = pod(
            json!({"containers": [{"name": "a"}]}),
            json!({"phase": "Failed", "containerStatuses": [{"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
        );
        assert_eq!(row(&killed)[2], json!("Signal:9"));
        let mut deleting = pod(
            json!({"containers": [{"name": "a"}]}),
            json!({"phase": "Running", "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
        );
        deleting["metadata"]["deletionTimestamp"] = json!("2025-03-01T11:59:00Z");
        assert_eq!(row(&deleting)[2], json!("Terminating"));
        deleting["status"]["reason"] = json!("NodeLost");
        assert_eq!(row(&deleting)[2], json!("Unknown"));
        // A finished pod being deleted keeps its terminal status.
        let mut gone = done.clone();
        gone["metadata"]["deletionTimestamp"] = json!("2025-03-01T11:59:00Z");
        assert_eq!(row(&gone)[2], json!("Completed"));
    }

    #[test]
    fn completed_container_with_another_running_is_running() {
        let p = pod(
            json!({"containers": [{"name": "a"}, {"name": "b"}]}),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}], "containerStatuses": [
                {"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}
            ]}),
        );
        assert_eq!(row(&p)[2], json!("NotReady"));
    }

    #[test]
    fn evicted_reason_and_readiness_gates() {
        let p = pod(
            json!({"containers": [{"name": "a"}], "readinessGates": [{"conditionType": "x/ready"}, {"conditionType": "y"}]}),
            json!({"phase": "Failed", "reason": "Evicted", "conditions": [{"type": "x/ready", "status": "True"}]}),
        );
        let r = row(&p);
        assert_eq!(r[2], json!("Evicted"));
        assert_eq!(r[8], json!("1/2"));
        let gated = pod(
            json!({"containers": [{"name": "a"}]}),
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
        );
        assert_eq!(row(&gated)[2], json!("SchedulingGated"));
    }
}
