//! Liveness, readiness and startup probes: one task per probe of each running container,
//! with Kubernetes' timing (initial delay, period, timeout, success and failure thresholds).
//! Liveness and readiness wait for the startup probe to pass. Results are shared with the pod
//! worker, which is woken whenever a result changes: readiness feeds status, a failed
//! liveness or startup probe makes the worker restart the container.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::events::{InvolvedObject, Recorder};
use crate::handlers::{self, Outcome, Target};
use crate::status::ProbeView;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    fn title(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// What the probes of one container found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeState {
    pub ready: bool,
    pub started: bool,
    /// The failed liveness probe's message (the container must restart).
    pub liveness_failed: Option<String>,
    pub startup_failed: Option<String>,
}

type States = Arc<Mutex<HashMap<String, ProbeState>>>;

/// The probes of one pod's containers.
#[derive(Default)]
pub struct Prober {
    states: States,
    tasks: HashMap<String, Vec<AbortHandle>>,
}

/// Runs one probe action.
pub async fn run_action(p: &Probe, t: &Target) -> Outcome {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(a) = &p.exec {
        handlers::exec(t, a, timeout).await
    } else if let Some(a) = &p.http_get {
        handlers::http_get(t, a, timeout).await
    } else if let Some(a) = &p.tcp_socket {
        handlers::tcp(t, a, timeout).await
    } else if p.grpc.is_some() {
        Outcome::Failure("gRPC probes are not supported by this node".into())
    } else {
        Outcome::Failure("the probe has no action".into())
    }
}

impl Prober {
    /// Probe results of every known container.
    pub fn view(&self) -> HashMap<String, ProbeView> {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    ProbeView {
                        ready: s.ready,
                        started: s.started,
                    },
                )
            })
            .collect()
    }

    pub fn state(&self, container_id: &str) -> ProbeState {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(container_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Starts the probes of a running container once. `was_ready`: the container was ready
    /// before (an agent restart), so readiness starts from there rather than from false.
    pub fn ensure(
        &mut self,
        target: Target,
        was_ready: bool,
        wake: Arc<Notify>,
        recorder: Recorder,
        obj: InvolvedObject,
    ) {
        let cid = target.container_id.clone();
        if self.tasks.contains_key(&cid) {
            return;
        }
        let c: &Container = &target.container;
        let has_startup = c.startup_probe.is_some();
        let has_readiness = c.readiness_probe.is_some();
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                cid.clone(),
                ProbeState {
                    started: !has_startup,
                    ready: if has_readiness {
                        was_ready
                    } else {
                        !has_startup
                    },
                    ..Default::default()
                },
            );
        let mut handles = Vec::new();
        for (kind, probe) in [
            (ProbeKind::Startup, c.startup_probe.clone()),
            (ProbeKind::Liveness, c.liveness_probe.clone()),
            (ProbeKind::Readiness, c.readiness_probe.clone()),
        ] {
            let Some(probe) = probe else { continue };
            let obj = obj.container(format!("spec.containers{{{}}}", c.name));
            let h = tokio::spawn(probe_loop(
                kind,
                probe,
                target.clone(),
                self.states.clone(),
                wake.clone(),
                recorder.clone(),
                obj,
                has_readiness,
            ));
            handles.push(h.abort_handle());
        }
        self.tasks.insert(cid, handles);
    }

    /// Stops the probes of containers not in `running`.
    pub fn retain(&mut self, running: &HashSet<String>) {
        self.tasks.retain(|cid, hs| {
            let keep = running.contains(cid);
            if !keep {
                for h in hs.iter() {
                    h.abort();
                }
            }
            keep
        });
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|cid, _| running.contains(cid));
    }

    pub fn stop_all(&mut self) {
        self.retain(&HashSet::new());
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[allow(clippy::too_many_arguments)]
async fn probe_loop(
    kind: ProbeKind,
    probe: Probe,
    target: Target,
    states: States,
    wake: Arc<Notify>,
    recorder: Recorder,
    obj: InvolvedObject,
    has_readiness: bool,
) {
    let cid = target.container_id.clone();
    let get = |f: &dyn Fn(&ProbeState) -> bool| {
        states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cid)
            .map(f)
            .unwrap_or(false)
    };
    let update = |f: &dyn Fn(&mut ProbeState)| {
        let mut s = states.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(st) = s.get_mut(&cid) {
            let before = st.clone();
            f(st);
            if *st != before {
                wake.notify_one();
            }
        }
    };
    let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    tokio::time::sleep(Duration::from_secs(
        probe.initial_delay_seconds.unwrap_or(0).max(0) as u64,
    ))
    .await;
    let (mut successes, mut failures) = (0, 0);
    loop {
        if kind != ProbeKind::Startup && !get(&|s| s.started) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        match run_action(&probe, &target).await {
            Outcome::Success => {
                failures = 0;
                successes += 1;
                if successes >= success_threshold {
                    match kind {
                        ProbeKind::Readiness => update(&|s| s.ready = true),
                        ProbeKind::Startup => {
                            update(&|s| {
                                s.started = true;
                                if !has_readiness {
                                    s.ready = true;
                                }
                            });
                            return;
                        }
                        ProbeKind::Liveness => {}
                    }
                }
            }
            Outcome::Failure(msg) => {
                successes = 0;
                failures += 1;
                recorder.warning(
                    &obj,
                    "Unhealthy",
                    format!("{} probe failed: {msg}", kind.title()),
                );
                if failures >= failure_threshold {
                    match kind {
                        ProbeKind::Readiness => update(&|s| s.ready = false),
                        ProbeKind::Liveness => {
                            let m = msg.clone();
                            update(&|s| s.liveness_failed = Some(m.clone()));
                            return;
                        }
                        ProbeKind::Startup => {
                            let m = msg.clone();
                            update(&|s| s.startup_failed = Some(m.clone()));
                            return;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}
