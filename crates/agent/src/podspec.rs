//! Facts derived from a pod's spec: QoS class, the hash that tells whether a running container
//! still matches its spec, grace periods, restart decisions and crash-loop back-off.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use sha2::{Digest, Sha256};

use crate::quantity;

pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const ANN_HASH: &str = "io.kubernetes.container.hash";
pub const ANN_INIT: &str = "io.kubernetes.container.init";
pub const ANN_TERMINATION_PATH: &str = "io.kubernetes.container.terminationMessagePath";
pub const ANN_TERMINATION_POLICY: &str = "io.kubernetes.container.terminationMessagePolicy";

/// Kubernetes' QoS classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    pub fn as_str(self) -> &'static str {
        match self {
            Qos::Guaranteed => "Guaranteed",
            Qos::Burstable => "Burstable",
            Qos::BestEffort => "BestEffort",
        }
    }
}

fn amount(r: Option<&ResourceRequirements>, limits: bool, name: &str) -> Option<i128> {
    let r = r?;
    let list = if limits {
        r.limits.as_ref()
    } else {
        r.requests.as_ref()
    }?;
    let q = list.get(name)?;
    quantity::parse_milli(&q.0).ok()
}

/// The QoS class of a pod, as Kubernetes computes it.
pub fn qos(spec: &PodSpec) -> Qos {
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let r = c.resources.as_ref();
        for res in ["cpu", "memory"] {
            let req = amount(r, false, res);
            let lim = amount(r, true, res);
            if req.is_some_and(|v| v != 0) || lim.is_some_and(|v| v != 0) {
                any = true;
            }
            match (req, lim) {
                (_, None) => guaranteed = false,
                (Some(q), Some(l)) if q != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        Qos::BestEffort
    } else if guaranteed {
        Qos::Guaranteed
    } else {
        Qos::Burstable
    }
}

/// A hash of what requires a restart when it changes (image, command, env, ports, ...).
pub fn container_hash(c: &Container) -> String {
    let mut c = c.clone();
    // Fields that can change without a restart.
    c.resources = None;
    c.readiness_probe = None;
    c.startup_probe = None;
    let bytes = serde_json::to_vec(&c).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..8])
}

/// The grace period a deletion uses: `deletionGracePeriodSeconds`, else the spec's
/// `terminationGracePeriodSeconds` (30 s by default).
pub fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

/// Restart policy: `Always` (default), `OnFailure` or `Never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn of(spec: &PodSpec) -> RestartPolicy {
        match spec.restart_policy.as_deref() {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `code` is started again.
    pub fn restarts(self, code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// Kubernetes' crash-loop back-off: 10 s doubling to 5 min, reset after 10 min of running.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    /// Current delay (zero: none yet).
    delay: Duration,
}

pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

impl Backoff {
    /// The delay before the next restart of a container that ran for `ran`, advancing it.
    pub fn next(&mut self, ran: Duration) -> Duration {
        if ran >= BACKOFF_RESET || self.delay.is_zero() {
            self.delay = BACKOFF_INITIAL;
        } else {
            self.delay = (self.delay * 2).min(BACKOFF_MAX);
        }
        self.delay
    }

    pub fn current(&self) -> Duration {
        self.delay
    }
}

/// The short id kubectl shows: `berth://<id>`.
pub fn container_id_uri(id: &str) -> String {
    format!("berth://{id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn container(req: &[(&str, &str)], lim: &[(&str, &str)]) -> Container {
        let m = |v: &[(&str, &str)]| {
            (!v.is_empty()).then(|| {
                v.iter()
                    .map(|(k, q)| (k.to_string(), Quantity(q.to_string())))
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: m(req),
                limits: m(lim),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn qos_classes() {
        let spec = |c: Container| PodSpec {
            containers: vec![c],
            ..Default::default()
        };
        assert_eq!(qos(&spec(container(&[], &[]))), Qos::BestEffort);
        assert_eq!(
            qos(&spec(container(&[], &[("cpu", "1"), ("memory", "1Gi")]))),
            Qos::Guaranteed
        );
        assert_eq!(
            qos(&spec(container(
                &[("cpu", "100m"), ("memory", "128Mi")],
                &[("cpu", "200m"), ("memory", "256Mi")]
            ))),
            Qos::Burstable
        );
        assert_eq!(
            qos(&spec(container(&[("cpu", "100m")], &[]))),
            Qos::Burstable
        );
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let s = Duration::from_secs(1);
        assert_eq!(b.next(s), Duration::from_secs(10));
        assert_eq!(b.next(s), Duration::from_secs(20));
        for _ in 0..10 {
            b.next(s);
        }
        assert_eq!(b.current(), BACKOFF_MAX);
        assert_eq!(b.next(Duration::from_secs(601)), BACKOFF_INITIAL);
    }

    #[test]
    fn hashes_ignore_resources_but_not_images() {
        let mut a = container(&[("cpu", "1")], &[]);
        a.image = Some("a:1".into());
        let mut b = a.clone();
        b.resources = None;
        assert_eq!(container_hash(&a), container_hash(&b));
        b.image = Some("a:2".into());
        assert_ne!(container_hash(&a), container_hash(&b));
        assert!(RestartPolicy::OnFailure.restarts(1) && !RestartPolicy::OnFailure.restarts(0));
    }
}
