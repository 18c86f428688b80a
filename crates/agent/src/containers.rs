//! From a pod's spec to the runtime's sandbox and container configurations: hostname, DNS,
//! ports and cgroup of the sandbox; command, args, environment, working directory, mounts,
//! security context (pod and container levels merged) and resources (CPU shares and quota,
//! memory limit, OOM score by QoS class) of each container.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_cri::{
    ContainerConfig, Mount, PortMapping, Protocol, Resources, SandboxConfig, SeccompProfile,
    SecurityContext,
};
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::context::NodeContext;
use crate::podspec::{self, Qos};
use crate::quantity;

const CPU_PERIOD_US: u64 = 100_000;

pub fn sandbox_config(ctx: &NodeContext, pod: &Pod, attempt: u32) -> SandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let (hostname, _) = crate::dns::hostname(pod, &ctx.config.cluster_domain);
    let mut port_mappings = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            port_mappings.push(PortMapping {
                protocol: match p.protocol.as_deref() {
                    Some("UDP") => Protocol::Udp,
                    Some("SCTP") => Protocol::Sctp,
                    _ => Protocol::Tcp,
                },
                container_port: u16::try_from(p.container_port).unwrap_or(0),
                host_port: p.host_port.and_then(|h| u16::try_from(h).ok()).unwrap_or(0),
                host_ip: p.host_ip.as_deref().and_then(|h| h.parse().ok()),
            });
        }
    }
    let mut labels = BTreeMap::new();
    labels.insert(podspec::LABEL_POD_UID.into(), uid.clone());
    labels.insert(
        podspec::LABEL_POD_NAME.into(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        podspec::LABEL_POD_NAMESPACE.into(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    SandboxConfig {
        name: pod.metadata.name.clone().unwrap_or_default(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        uid: uid.clone(),
        attempt,
        hostname,
        log_directory: ctx.pod_log_dir(pod),
        dns: crate::dns::dns_config(pod, &ctx.config.cluster_dns, &ctx.config.cluster_domain),
        port_mappings,
        host_network: spec.host_network.unwrap_or(false),
        cgroup_parent: ctx.pod_cgroup(&uid, podspec::qos(&spec)),
        labels,
        annotations: pod.metadata.annotations.clone().unwrap_or_default(),
    }
}

fn milli(c: &Container, limits: bool, name: &str) -> Option<i128> {
    let r = c.resources.as_ref()?;
    let list = if limits {
        r.limits.as_ref()
    } else {
        r.requests.as_ref()
    }?;
    quantity::parse_milli(&list.get(name)?.0).ok()
}

/// CPU, memory and OOM settings of a container.
pub fn resources(c: &Container, qos: Qos, node_memory: u64) -> Resources {
    let req_cpu = milli(c, false, "cpu").or_else(|| milli(c, true, "cpu"));
    let lim_cpu = milli(c, true, "cpu");
    let lim_mem = milli(c, true, "memory").map(|m| (m / 1000) as i64);
    let req_mem = milli(c, false, "memory").map(|m| (m / 1000) as u64);
    let shares = match req_cpu {
        Some(m) if m > 0 => ((m * 1024) / 1000).max(2) as u64,
        _ => 2,
    };
    let quota = lim_cpu
        .filter(|m| *m > 0)
        .map(|m| ((m * CPU_PERIOD_US as i128) / 1000).max(1000) as i64);
    let oom = match qos {
        Qos::Guaranteed => -997,
        Qos::BestEffort => 1000,
        Qos::Burstable => {
            let req = req_mem.unwrap_or(0);
            let adj = if node_memory > 0 {
                1000 - (1000 * req as i128 / node_memory as i128) as i32
            } else {
                999
            };
            adj.clamp(2, 999)
        }
    };
    Resources {
        cpu_shares: Some(shares),
        cpu_quota_us: quota,
        cpu_period_us: quota.map(|_| CPU_PERIOD_US),
        memory_limit_bytes: lim_mem.filter(|m| *m > 0),
        pids_limit: None,
        oom_score_adj: Some(oom),
    }
}

/// The pod's and the container's security contexts, merged (the container's wins).
pub fn security(pod: &Pod, c: &Container) -> SecurityContext {
    let ps = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let cs = c.security_context.clone().unwrap_or_default();
    let seccomp = cs
        .seccomp_profile
        .as_ref()
        .or(ps.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str());
    let mut groups: Vec<u32> = ps
        .supplemental_groups
        .iter()
        .flatten()
        .filter_map(|g| u32::try_from(*g).ok())
        .collect();
    if let Some(fs) = ps.fs_group.and_then(|g| u32::try_from(g).ok()) {
        groups.push(fs);
    }
    let caps = cs.capabilities.clone().unwrap_or_default();
    SecurityContext {
        run_as_user: cs
            .run_as_user
            .or(ps.run_as_user)
            .and_then(|u| u32::try_from(u).ok()),
        run_as_group: cs
            .run_as_group
            .or(ps.run_as_group)
            .and_then(|g| u32::try_from(g).ok()),
        run_as_non_root: cs.run_as_non_root.or(ps.run_as_non_root).unwrap_or(false),
        supplemental_groups: groups,
        privileged: cs.privileged.unwrap_or(false),
        read_only_root_filesystem: cs.read_only_root_filesystem.unwrap_or(false),
        allow_privilege_escalation: cs.allow_privilege_escalation.unwrap_or(true),
        add_capabilities: caps.add.unwrap_or_default(),
        drop_capabilities: caps.drop.unwrap_or_default(),
        seccomp: match seccomp {
            Some("RuntimeDefault") | Some("Localhost") => SeccompProfile::RuntimeDefault,
            _ => SeccompProfile::Unconfined,
        },
    }
}

/// Everything [`container_config`] needs besides the spec.
pub struct ContainerInput<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub attempt: u32,
    pub init: bool,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub node_memory: u64,
}

pub fn container_config(i: ContainerInput<'_>) -> ContainerConfig {
    let c = i.container;
    let spec = i.pod.spec.clone().unwrap_or_default();
    let env_map: std::collections::HashMap<String, String> = i.env.iter().cloned().collect();
    let expand = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter()
            .flatten()
            .map(|s| crate::envvars::expand(s, &env_map))
            .collect()
    };
    let mut labels = BTreeMap::new();
    labels.insert(
        podspec::LABEL_POD_UID.into(),
        i.pod.metadata.uid.clone().unwrap_or_default(),
    );
    labels.insert(
        podspec::LABEL_POD_NAME.into(),
        i.pod.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        podspec::LABEL_POD_NAMESPACE.into(),
        i.pod.metadata.namespace.clone().unwrap_or_default(),
    );
    labels.insert(podspec::LABEL_CONTAINER_NAME.into(), c.name.clone());
    let mut annotations = BTreeMap::new();
    annotations.insert(podspec::ANN_HASH.into(), podspec::container_hash(c));
    if i.init {
        annotations.insert(podspec::ANN_INIT.into(), "true".into());
    }
    annotations.insert(
        podspec::ANN_TERMINATION_PATH.into(),
        c.termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into()),
    );
    annotations.insert(
        podspec::ANN_TERMINATION_POLICY.into(),
        c.termination_message_policy
            .clone()
            .unwrap_or_else(|| "File".into()),
    );
    ContainerConfig {
        name: c.name.clone(),
        attempt: i.attempt,
        image: c.image.clone().unwrap_or_default(),
        command: expand(&c.command),
        args: expand(&c.args),
        working_dir: c
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .map(PathBuf::from),
        env: i.env,
        mounts: i.mounts,
        log_path: PathBuf::from(&c.name).join(format!("{}.log", i.attempt)),
        stdin: c.stdin.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        resources: resources(c, podspec::qos(&spec), i.node_memory),
        security: security(i.pod, c),
        labels,
        annotations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_map_to_shares_quota_and_limits() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}}
        }))
        .unwrap();
        let r = resources(&c, Qos::Burstable, 8 << 30);
        assert_eq!(r.cpu_shares, Some(102));
        assert_eq!(r.cpu_quota_us, Some(20_000));
        assert_eq!(r.cpu_period_us, Some(100_000));
        assert_eq!(r.memory_limit_bytes, Some(256 << 20));
        assert!(r.oom_score_adj.unwrap() > 900);
        let none = resources(&Container::default(), Qos::BestEffort, 8 << 30);
        assert_eq!(
            (none.cpu_shares, none.cpu_quota_us, none.oom_score_adj),
            (Some(2), None, Some(1000))
        );
    }

    #[test]
    fn container_security_overrides_the_pod() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"securityContext": {"runAsUser": 1000, "runAsNonRoot": true, "fsGroup": 2000},
                     "containers": [{"name": "c", "securityContext": {"runAsUser": 3000, "capabilities": {"drop": ["ALL"]}}}]}
        }))
        .unwrap();
        let s = security(&pod, &pod.spec.as_ref().unwrap().containers[0]);
        assert_eq!(s.run_as_user, Some(3000));
        assert!(s.run_as_non_root);
        assert_eq!(s.supplemental_groups, vec![2000]);
        assert_eq!(s.drop_capabilities, vec!["ALL".to_string()]);
        assert_eq!(s.seccomp, SeccompProfile::Unconfined);
    }
}
