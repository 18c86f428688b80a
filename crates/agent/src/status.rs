//! A pod's status from its spec and what the runtime reports, exactly as kubectl expects it:
//! phase, conditions (PodReadyToStartContainers, Initialized, ContainersReady, Ready; others
//! kept), container statuses with state, lastState, restartCount, ready/started, image and
//! container IDs, pod and host IPs, start time and QoS class. Pure: the worker supplies the
//! runtime view, probe results and waiting reasons.

use std::collections::HashMap;

use berth_cri::{ContainerState, ContainerStatus as CriContainer, SandboxState, SandboxStatus};
use k8s_openapi::api::core::v1::{
    Container, ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::podspec::{self, RestartPolicy};

/// What the runtime has for one pod, newest first.
#[derive(Debug, Clone, Default)]
pub struct PodRuntime {
    pub sandboxes: Vec<SandboxStatus>,
    pub containers: Vec<CriContainer>,
}

impl PodRuntime {
    pub fn new(mut snap: berth_cri::Snapshot) -> PodRuntime {
        snap.sandboxes
            .sort_by_key(|s| std::cmp::Reverse((s.attempt, s.created_at_ns)));
        snap.containers
            .sort_by_key(|c| std::cmp::Reverse((c.attempt, c.created_at_ns)));
        PodRuntime {
            sandboxes: snap.sandboxes,
            containers: snap.containers,
        }
    }

    /// The newest sandbox.
    pub fn sandbox(&self) -> Option<&SandboxStatus> {
        self.sandboxes.first()
    }

    pub fn ready_sandbox(&self) -> Option<&SandboxStatus> {
        self.sandbox().filter(|s| s.state == SandboxState::Ready)
    }

    /// Instances of container `name` in the current sandbox, newest first.
    pub fn history(&self, name: &str) -> Vec<&CriContainer> {
        let Some(sb) = self.sandbox() else {
            return vec![];
        };
        self.containers
            .iter()
            .filter(|c| c.name == name && c.sandbox_id == sb.id)
            .collect()
    }

    /// Instances of `name` in any sandbox, newest first (for restart counts and logs).
    pub fn all_instances(&self, name: &str) -> Vec<&CriContainer> {
        self.containers.iter().filter(|c| c.name == name).collect()
    }

    pub fn running(&self) -> impl Iterator<Item = &CriContainer> {
        self.containers
            .iter()
            .filter(|c| matches!(c.state, ContainerState::Running | ContainerState::Created))
    }
}

/// Probe results of one running container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeView {
    pub ready: bool,
    pub started: bool,
}

/// Why a container is waiting (reason, message), as the worker last decided.
pub type Waiting = HashMap<String, (String, String)>;

/// Everything the status is computed from.
pub struct StatusInput<'a> {
    pub pod: &'a Pod,
    pub rt: &'a PodRuntime,
    pub waiting: &'a Waiting,
    /// By container id; containers without probes of a kind count as passing it.
    pub probes: &'a HashMap<String, ProbeView>,
    /// Termination messages by container id.
    pub messages: &'a HashMap<String, String>,
    pub host_ip: &'a str,
    pub now: jiff::Timestamp,
    /// Set when the agent failed the pod itself (eviction): (reason, message).
    pub failed: Option<&'a (String, String)>,
}

fn time_ns(ns: i64) -> Option<Time> {
    jiff::Timestamp::from_nanosecond(ns as i128).ok().map(Time)
}

fn terminated(c: &CriContainer, message: Option<&String>) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: c.exit_code.unwrap_or(0),
        reason: c.reason.clone().or_else(|| Some("Error".into())),
        message: message
            .cloned()
            .or_else(|| c.message.clone())
            .filter(|m| !m.is_empty()),
        started_at: c.started_at_ns.and_then(time_ns),
        finished_at: c.finished_at_ns.and_then(time_ns),
        container_id: Some(podspec::container_id_uri(&c.id)),
        signal: None,
    }
}

fn image_id(c: &CriContainer) -> String {
    if c.image.digest.is_empty() {
        return String::new();
    }
    let r = &c.image.reference;
    let repo = match r.rsplit_once(':') {
        Some((a, b)) if !b.contains('/') => a,
        _ => r.as_str(),
    };
    let repo = repo.split('@').next().unwrap_or(repo);
    format!("{repo}@{}", c.image.digest)
}

fn previous_status<'a>(pod: &'a Pod, name: &str, init: bool) -> Option<&'a ContainerStatus> {
    let st = pod.status.as_ref()?;
    let list = if init {
        st.init_container_statuses.as_ref()
    } else {
        st.container_statuses.as_ref()
    }?;
    list.iter().find(|c| c.name == name)
}

fn container_status(i: &StatusInput<'_>, spec: &Container, init: bool) -> ContainerStatus {
    let history = i.rt.history(&spec.name);
    let prev = previous_status(i.pod, &spec.name, init);
    let mut st = ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        ..Default::default()
    };
    let waiting = i.waiting.get(&spec.name);
    let Some(latest) = history.first() else {
        // Nothing in this sandbox yet: keep the counts the pod already had.
        let (reason, message) = waiting
            .cloned()
            .unwrap_or_else(|| ("ContainerCreating".into(), String::new()));
        st.state = Some(K8sState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason),
                message: (!message.is_empty()).then_some(message),
            }),
            ..Default::default()
        });
        st.restart_count =
            i.rt.all_instances(&spec.name)
                .first()
                .map(|c| c.attempt as i32 + 1)
                .or_else(|| prev.map(|p| p.restart_count))
                .unwrap_or(0);
        st.last_state = prev.and_then(|p| p.last_state.clone());
        st.started = Some(false);
        return st;
    };
    st.container_id = Some(podspec::container_id_uri(&latest.id));
    st.image_id = image_id(latest);
    st.restart_count = latest.attempt as i32;
    let probe = i.probes.get(&latest.id).copied().unwrap_or_default();
    match latest.state {
        ContainerState::Running => {
            st.state = Some(K8sState {
                running: Some(ContainerStateRunning {
                    started_at: latest.started_at_ns.and_then(time_ns),
                }),
                ..Default::default()
            });
            st.ready = probe.ready;
            st.started = Some(probe.started);
            if let Some(older) = history.get(1) {
                st.last_state = Some(K8sState {
                    terminated: Some(terminated(older, i.messages.get(&older.id))),
                    ..Default::default()
                });
            }
        }
        ContainerState::Exited | ContainerState::Unknown => {
            let term = terminated(latest, i.messages.get(&latest.id));
            st.started = Some(false);
            match waiting {
                Some((reason, message)) => {
                    st.state = Some(K8sState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(reason.clone()),
                            message: (!message.is_empty()).then(|| message.clone()),
                        }),
                        ..Default::default()
                    });
                    st.last_state = Some(K8sState {
                        terminated: Some(term),
                        ..Default::default()
                    });
                }
                None => {
                    st.state = Some(K8sState {
                        terminated: Some(term),
                        ..Default::default()
                    });
                    if let Some(older) = history.get(1) {
                        st.last_state = Some(K8sState {
                            terminated: Some(terminated(older, i.messages.get(&older.id))),
                            ..Default::default()
                        });
                    }
                }
            }
        }
        ContainerState::Created => {
            let (reason, message) = waiting
                .cloned()
                .unwrap_or_else(|| ("ContainerCreating".into(), String::new()));
            st.state = Some(K8sState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason),
                    message: (!message.is_empty()).then_some(message),
                }),
                ..Default::default()
            });
            st.started = Some(false);
        }
    }
    if st.last_state.is_none() {
        st.last_state = Some(K8sState::default());
    }
    st
}

fn state_kind(s: &ContainerStatus) -> (&'static str, Option<i32>) {
    let Some(state) = &s.state else {
        return ("waiting", None);
    };
    if state.running.is_some() {
        ("running", None)
    } else if let Some(t) = &state.terminated {
        ("terminated", Some(t.exit_code))
    } else if s
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .is_some()
    {
        // Waiting to restart after having run: counts as stopped.
        ("stopped-waiting", None)
    } else {
        ("waiting", None)
    }
}

/// Kubernetes' `getPhase`.
pub fn phase(
    policy: RestartPolicy,
    init: &[ContainerStatus],
    regular: &[ContainerStatus],
) -> &'static str {
    let mut init_failed = false;
    let mut initialized = true;
    for s in init {
        match state_kind(s) {
            ("terminated", Some(0)) => {}
            ("terminated", Some(_)) => {
                initialized = false;
                init_failed = true;
            }
            ("stopped-waiting", _) => {
                initialized = false;
                if let Some(t) = s.last_state.as_ref().and_then(|l| l.terminated.as_ref())
                    && t.exit_code != 0
                {
                    init_failed = true;
                }
            }
            _ => initialized = false,
        }
    }
    if !initialized {
        return if init_failed && policy == RestartPolicy::Never {
            "Failed"
        } else {
            "Pending"
        };
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in regular {
        match state_kind(s) {
            ("running", _) => running += 1,
            ("terminated", code) => {
                stopped += 1;
                if code == Some(0) {
                    succeeded += 1;
                }
            }
            ("stopped-waiting", _) => stopped += 1,
            _ => waiting += 1,
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        return match policy {
            RestartPolicy::Always => "Running",
            RestartPolicy::OnFailure if stopped == succeeded => "Succeeded",
            RestartPolicy::OnFailure => "Running",
            RestartPolicy::Never if stopped == succeeded => "Succeeded",
            RestartPolicy::Never => "Failed",
        };
    }
    "Pending"
}

const OWNED: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

fn condition(
    previous: &[PodCondition],
    ty: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
    now: &Time,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == ty && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    PodCondition {
        type_: ty.into(),
        status: status.into(),
        reason,
        message,
        last_transition_time: Some(since),
        last_probe_time: None,
        observed_generation: None,
    }
}

/// The pod status.
pub fn compute(i: &StatusInput<'_>) -> PodStatus {
    let spec = i.pod.spec.clone().unwrap_or_default();
    let policy = RestartPolicy::of(&spec);
    let previous = i.pod.status.clone().unwrap_or_default();
    let prev_conds = previous.conditions.clone().unwrap_or_default();
    let now = Time(i.now);
    let init: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(i, c, true))
        .collect();
    let regular: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(i, c, false))
        .collect();
    let mut phase = phase(policy, &init, &regular).to_string();
    let (mut reason, mut message) = (None, None);
    // A terminal phase never goes back (Kubernetes forbids it).
    if matches!(
        previous.phase.as_deref(),
        Some("Succeeded") | Some("Failed")
    ) {
        phase = previous.phase.clone().unwrap_or(phase);
        reason = previous.reason.clone();
        message = previous.message.clone();
    }
    if let Some((r, m)) = i.failed {
        phase = "Failed".into();
        reason = Some(r.clone());
        message = Some(m.clone());
    }
    let terminal = phase == "Succeeded" || phase == "Failed";
    let sandbox_ready = i.rt.ready_sandbox().is_some();
    let not_init: Vec<&str> = init
        .iter()
        .filter(|s| !matches!(state_kind(s), ("terminated", Some(0))))
        .map(|s| s.name.as_str())
        .collect();
    let not_ready: Vec<&str> = regular
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let gates_ok = spec.readiness_gates.iter().flatten().all(|g| {
        prev_conds
            .iter()
            .any(|c| c.type_ == g.condition_type && c.status == "True")
    });
    let mut conditions: Vec<PodCondition> = prev_conds
        .iter()
        .filter(|c| !OWNED.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    conditions.push(condition(
        &prev_conds,
        "PodReadyToStartContainers",
        sandbox_ready,
        None,
        None,
        &now,
    ));
    let list = |v: &[&str]| format!("[{}]", v.join(" "));
    conditions.push(if not_init.is_empty() {
        condition(&prev_conds, "Initialized", true, None, None, &now)
    } else {
        condition(
            &prev_conds,
            "Initialized",
            false,
            Some("ContainersNotInitialized".into()),
            Some(format!(
                "containers with incomplete status: {}",
                list(&not_init)
            )),
            &now,
        )
    });
    let (cr_ok, cr_reason, cr_msg) = if terminal {
        (false, Some("PodCompleted".to_string()), None)
    } else if not_ready.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: {}",
                list(&not_ready)
            )),
        )
    };
    conditions.push(condition(
        &prev_conds,
        "ContainersReady",
        cr_ok,
        cr_reason.clone(),
        cr_msg.clone(),
        &now,
    ));
    let (ready, r_reason, r_msg) = if cr_ok && !gates_ok {
        (
            false,
            Some("ReadinessGatesNotReady".to_string()),
            Some("the status of pod readiness gates is not \"True\"".to_string()),
        )
    } else {
        (cr_ok, cr_reason, cr_msg)
    };
    conditions.push(condition(
        &prev_conds,
        "Ready",
        ready,
        r_reason,
        r_msg,
        &now,
    ));
    let pod_ips: Vec<PodIP> =
        i.rt.sandbox()
            .and_then(|s| s.ip)
            .map(|ip| vec![PodIP { ip: ip.to_string() }])
            .unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let pod_ips = if host_network && !i.host_ip.is_empty() {
        vec![PodIP {
            ip: i.host_ip.to_string(),
        }]
    } else {
        pod_ips
    };
    PodStatus {
        phase: Some(phase),
        reason,
        message,
        conditions: Some(conditions),
        host_ip: (!i.host_ip.is_empty()).then(|| i.host_ip.to_string()),
        host_ips: (!i.host_ip.is_empty()).then(|| {
            vec![HostIP {
                ip: i.host_ip.to_string(),
            }]
        }),
        pod_ip: pod_ips.first().map(|p| p.ip.clone()),
        pod_ips: (!pod_ips.is_empty()).then_some(pod_ips),
        start_time: previous.start_time.clone().or(Some(now)),
        qos_class: previous
            .qos_class
            .clone()
            .or_else(|| Some(podspec::qos(&spec).as_str().into())),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(regular),
        nominated_node_name: previous.nominated_node_name.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_cri::ImageRef;

    fn cri(
        id: &str,
        name: &str,
        attempt: u32,
        state: ContainerState,
        code: Option<i32>,
    ) -> CriContainer {
        CriContainer {
            id: id.into(),
            sandbox_id: "sb".into(),
            name: name.into(),
            attempt,
            image: ImageRef {
                reference: "reg:5000/web:1".into(),
                digest: "sha256:abc".into(),
                id: "sha256:def".into(),
                size_bytes: 0,
                user: None,
            },
            state,
            created_at_ns: attempt as i64,
            started_at_ns: Some(1_700_000_000_000_000_000),
            finished_at_ns: code.map(|_| 1_700_000_001_000_000_000),
            exit_code: code,
            reason: code.map(|c| {
                if c == 0 {
                    "Completed".into()
                } else {
                    "Error".into()
                }
            }),
            message: None,
            log_path: Default::default(),
            labels: Default::default(),
            annotations: Default::default(),
        }
    }

    fn pod(policy: &str, init: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {
                "restartPolicy": policy,
                "initContainers": if init { serde_json::json!([{"name": "init", "image": "web:1"}]) } else { serde_json::json!([]) },
                "containers": [{"name": "web", "image": "web:1"}]
            },
            "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}
        }))
        .unwrap()
    }

    fn rt(containers: Vec<CriContainer>) -> PodRuntime {
        PodRuntime::new(berth_cri::Snapshot {
            sandboxes: vec![SandboxStatus {
                id: "sb".into(),
                name: "p".into(),
                namespace: "default".into(),
                uid: "u1".into(),
                attempt: 0,
                state: SandboxState::Ready,
                ip: None,
                created_at_ns: 0,
                labels: Default::default(),
                annotations: Default::default(),
            }],
            containers,
        })
    }

    fn status(
        p: &Pod,
        r: &PodRuntime,
        waiting: &Waiting,
        probes: &HashMap<String, ProbeView>,
    ) -> PodStatus {
        compute(&StatusInput {
            pod: p,
            rt: r,
            waiting,
            probes,
            messages: &HashMap::new(),
            host_ip: "10.0.0.1",
            now: jiff::Timestamp::now(),
            failed: None,
        })
    }

    #[test]
    fn running_and_ready_pod() {
        let p = pod("Always", false);
        let r = rt(vec![cri("c1", "web", 0, ContainerState::Running, None)]);
        let mut probes = HashMap::new();
        probes.insert(
            "c1".to_string(),
            ProbeView {
                ready: true,
                started: true,
            },
        );
        let s = status(&p, &r, &Waiting::new(), &probes);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert!(c.ready && c.started == Some(true));
        assert_eq!(c.container_id.as_deref(), Some("berth://c1"));
        assert_eq!(c.image_id, "reg:5000/web@sha256:abc");
        let conds = s.conditions.unwrap();
        let get = |t: &str| conds.iter().find(|c| c.type_ == t).unwrap().status.clone();
        assert_eq!(get("Ready"), "True");
        assert_eq!(get("PodScheduled"), "True");
        assert_eq!(get("Initialized"), "True");
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    }

    #[test]
    fn crash_loop_is_running_phase_with_last_state() {
        let p = pod("Always", false);
        let r = rt(vec![
            cri("c2", "web", 1, ContainerState::Exited, Some(1)),
            cri("c1", "web", 0, ContainerState::Exited, Some(1)),
        ]);
        let mut w = Waiting::new();
        w.insert(
            "web".into(),
            ("CrashLoopBackOff".into(), "back-off 10s".into()),
        );
        let s = status(&p, &r, &w, &HashMap::new());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(c.restart_count, 1);
        assert_eq!(
            c.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        assert_eq!(
            c.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
    }

    #[test]
    fn never_policy_phases() {
        let p = pod("Never", false);
        let ok = rt(vec![cri("c1", "web", 0, ContainerState::Exited, Some(0))]);
        assert_eq!(
            status(&p, &ok, &Waiting::new(), &HashMap::new())
                .phase
                .as_deref(),
            Some("Succeeded")
        );
        let bad = rt(vec![cri("c1", "web", 0, ContainerState::Exited, Some(2))]);
        let s = status(&p, &bad, &Waiting::new(), &HashMap::new());
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
    }

    #[test]
    fn init_containers_gate_initialized() {
        let p = pod("Always", true);
        let r = rt(vec![cri("i1", "init", 0, ContainerState::Running, None)]);
        let s = status(&p, &r, &Waiting::new(), &HashMap::new());
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let conds = s.conditions.unwrap();
        let init = conds.iter().find(|c| c.type_ == "Initialized").unwrap();
        assert_eq!(init.status, "False");
        assert_eq!(
            init.message.as_deref(),
            Some("containers with incomplete status: [init]")
        );
        let app = &s.container_statuses.unwrap()[0];
        assert_eq!(
            app.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ContainerCreating")
        );
    }
}
