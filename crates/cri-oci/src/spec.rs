//! A container's OCI runtime spec from its CRI config, its image and its sandbox: process
//! (args, env, cwd, user, capabilities, `noNewPrivileges`), mounts (the standard set, the
//! sandbox's `resolv.conf`/`hostname`, the pod's volumes), namespaces (new pid and mount;
//! the sandbox's pinned net/ipc/uts by path), cgroup path and limits, masked paths and the
//! seccomp profile.

use std::collections::BTreeMap;
use std::path::Path;

use berth_cri::{ContainerConfig, CriError, Result, SeccompProfile};
use berth_image::RuntimeConfig;
use serde_json::{Value, json};

use crate::netns::NsKind;
use crate::sandbox::{SandboxDir, SandboxRecord};

/// Every capability Linux defines, by number.
const ALL_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The default set of container runtimes (containerd, CRI-O).
const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn normalize_cap(c: &str, field: &str) -> Result<String> {
    let n = c.trim().to_ascii_uppercase();
    let n = n.strip_prefix("CAP_").unwrap_or(&n).to_string();
    if n == "ALL" || ALL_CAPS.contains(&n.as_str()) {
        Ok(n)
    } else {
        Err(CriError::InvalidArgument {
            field: field.into(),
            message: format!("unknown capability {c:?}"),
        })
    }
}

/// The capability names (`CAP_...`) a container gets.
pub fn capabilities(c: &ContainerConfig) -> Result<Vec<String>> {
    let s = &c.security;
    if s.privileged {
        return Ok(ALL_CAPS.iter().map(|c| format!("CAP_{c}")).collect());
    }
    let add: Vec<String> = s
        .add_capabilities
        .iter()
        .map(|c| normalize_cap(c, "securityContext.capabilities.add"))
        .collect::<Result<_>>()?;
    let drop: Vec<String> = s
        .drop_capabilities
        .iter()
        .map(|c| normalize_cap(c, "securityContext.capabilities.drop"))
        .collect::<Result<_>>()?;
    let mut caps: Vec<String> = if add.iter().any(|c| c == "ALL") {
        ALL_CAPS.iter().map(|c| c.to_string()).collect()
    } else {
        let mut v: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
        v.extend(add);
        v
    };
    if drop.iter().any(|c| c == "ALL") {
        caps.clear();
        // `drop: [ALL]` with `add: [X]` keeps X (Kubernetes applies add after drop ALL).
        caps.extend(
            s.add_capabilities
                .iter()
                .filter_map(|c| normalize_cap(c, "").ok())
                .filter(|c| c != "ALL"),
        );
    } else {
        caps.retain(|c| !drop.contains(c));
    }
    caps.sort();
    caps.dedup();
    Ok(caps.into_iter().map(|c| format!("CAP_{c}")).collect())
}

/// Looks `name` up in a passwd/group style file: (id, primary gid).
fn lookup(file: &Path, name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| {
            let id = f[2].parse().ok()?;
            let gid = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
            Some((id, gid))
        })?
    })
}

/// The uid and gid a container runs as: `runAsUser`/`runAsGroup`, else the image's user
/// (names resolved in the container's own `/etc/passwd` and `/etc/group`), else root.
pub fn user(c: &ContainerConfig, image_user: Option<&str>, rootfs: &Path) -> Result<(u32, u32)> {
    let bad = |m: String| CriError::InvalidArgument {
        field: "securityContext".into(),
        message: m,
    };
    let (mut uid, mut gid, named) = (0u32, 0u32, None::<String>);
    let mut named = named;
    if let Some(u) = image_user {
        let (user, group) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u, None),
        };
        match user.parse::<u32>() {
            Ok(n) => {
                uid = n;
                gid = lookup_gid_of_uid(rootfs, n).unwrap_or(0);
            }
            Err(_) => match lookup(&rootfs.join("etc/passwd"), user) {
                Some((u2, g2)) => {
                    uid = u2;
                    gid = g2;
                    named = Some(user.to_string());
                }
                None => {
                    return Err(bad(format!(
                        "unable to find user {user}: no matching entries in passwd file"
                    )));
                }
            },
        }
        if let Some(g) = group {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => lookup(&rootfs.join("etc/group"), g)
                    .map(|x| x.0)
                    .ok_or_else(|| bad(format!("unable to find group {g}")))?,
            };
        }
    }
    if let Some(u) = c.security.run_as_user {
        uid = u;
        gid = lookup_gid_of_uid(rootfs, u).unwrap_or(0);
        named = None;
    }
    if let Some(g) = c.security.run_as_group {
        gid = g;
    }
    if c.security.run_as_non_root && uid == 0 {
        return Err(bad(match named {
            Some(n) => format!("container has runAsNonRoot and image has user {n} which is root"),
            None => "container has runAsNonRoot and image will run as root".into(),
        }));
    }
    Ok((uid, gid))
}

fn lookup_gid_of_uid(rootfs: &Path, uid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(rootfs.join("etc/passwd")).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[2].parse::<u32>().ok() == Some(uid))
            .then(|| f[3].parse().ok())
            .flatten()
    })
}

/// Image environment overridden by the container's, by name, in order.
pub fn environment(image: &RuntimeConfig, c: &ContainerConfig) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let pairs = image
        .env
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .chain(c.env.iter().cloned());
    for (k, v) in pairs {
        if !values.contains_key(&k) {
            order.push(k.clone());
        }
        values.insert(k, v);
    }
    order
        .into_iter()
        .map(|k| format!("{k}={}", values[&k]))
        .collect()
}

/// The OCI spec (`config.json`) of a container.
pub struct SpecInput<'a> {
    pub id: &'a str,
    pub config: &'a ContainerConfig,
    pub image: &'a RuntimeConfig,
    pub sandbox: &'a SandboxRecord,
    pub sandbox_dir: &'a SandboxDir,
    /// The mounted root filesystem (for user lookups).
    pub rootfs: &'a Path,
    pub annotations: BTreeMap<String, String>,
}

pub fn build(i: SpecInput<'_>) -> Result<Value> {
    let c = i.config;
    let s = &c.security;
    let command = (!c.command.is_empty()).then_some(c.command.as_slice());
    let args_override = (!c.args.is_empty()).then_some(c.args.as_slice());
    let args = i.image.args(command, args_override);
    if args.is_empty() {
        return Err(CriError::InvalidArgument {
            field: "command".into(),
            message: "no command specified (the image has no entrypoint or cmd)".into(),
        });
    }
    let (uid, gid) = user(c, i.image.user.as_deref(), i.rootfs)?;
    let caps = capabilities(c)?;
    let cwd = c
        .working_dir
        .as_ref()
        .map(|p| p.display().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| i.image.working_dir.clone());
    let mut process = json!({
        "terminal": false,
        "user": {"uid": uid, "gid": gid},
        "args": args,
        "env": environment(i.image, c),
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": !s.allow_privilege_escalation && !s.privileged,
    });
    if !s.supplemental_groups.is_empty() {
        process["user"]["additionalGids"] = json!(s.supplemental_groups);
    }
    if let Some(adj) = c.resources.oom_score_adj.filter(|a| *a > 0) {
        process["oomScoreAdj"] = json!(adj);
    }
    let sys_ro = !s.privileged;
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": if sys_ro { json!(["nosuid", "noexec", "nodev", "ro"]) } else { json!(["nosuid", "noexec", "nodev"]) }}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    let user_mounts: Vec<&Path> = c
        .mounts
        .iter()
        .map(|m| m.container_path.as_path())
        .collect();
    for (dst, src) in [
        ("/etc/resolv.conf", i.sandbox_dir.resolv_conf()),
        ("/etc/hostname", i.sandbox_dir.hostname_file()),
    ] {
        if !user_mounts.contains(&Path::new(dst)) {
            mounts.push(json!({"destination": dst, "type": "bind", "source": src, "options": ["rbind", if s.read_only_root_filesystem { "ro" } else { "rw" }]}));
        }
    }
    for m in &c.mounts {
        if !m.container_path.is_absolute() {
            return Err(CriError::InvalidArgument {
                field: "volumeMounts.mountPath".into(),
                message: format!("{} must be an absolute path", m.container_path.display()),
            });
        }
        let mut opts = vec!["rbind"];
        if m.readonly {
            opts.push("ro");
        }
        mounts.push(json!({"destination": m.container_path, "type": "bind", "source": m.host_path, "options": opts}));
    }
    let mut namespaces = vec![json!({"type": "pid"}), json!({"type": "mount"})];
    for k in i.sandbox.kinds() {
        let t = match k {
            NsKind::Net => "network",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
        };
        namespaces.push(json!({"type": t, "path": i.sandbox_dir.ns(*k)}));
    }
    let r = &c.resources;
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if s.privileged {
        resources["devices"] = json!([{"allow": true, "access": "rwm"}]);
    }
    let mut cpu = serde_json::Map::new();
    if let Some(v) = r.cpu_shares {
        cpu.insert("shares".into(), json!(v));
    }
    if let Some(v) = r.cpu_quota_us {
        cpu.insert("quota".into(), json!(v));
    }
    if let Some(v) = r.cpu_period_us {
        cpu.insert("period".into(), json!(v));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(v) = r.memory_limit_bytes {
        resources["memory"] = json!({"limit": v});
    }
    if let Some(v) = r.pids_limit {
        resources["pids"] = json!({"limit": v});
    }
    let mut linux = json!({
        "cgroupsPath": format!("{}/{}", i.sandbox.cgroup_parent.trim_end_matches('/'), i.id),
        "namespaces": namespaces,
        "resources": resources,
    });
    if !s.privileged {
        linux["maskedPaths"] = json!(MASKED);
        linux["readonlyPaths"] = json!(READONLY);
    }
    if s.seccomp == SeccompProfile::RuntimeDefault && !s.privileged {
        linux["seccomp"] = serde_json::to_value(berth_runtime::default_seccomp_profile())
            .map_err(CriError::internal)?;
    }
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": "rootfs", "readonly": s.read_only_root_filesystem},
        "mounts": mounts,
        "annotations": i.annotations,
        "linux": linux,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_cri::SecurityContext;

    fn cfg(sec: SecurityContext) -> ContainerConfig {
        ContainerConfig {
            name: "c".into(),
            security: sec,
            ..Default::default()
        }
    }

    #[test]
    fn capabilities_follow_add_drop_and_privileged() {
        let d = capabilities(&cfg(SecurityContext::default())).unwrap();
        assert!(d.contains(&"CAP_CHOWN".to_string()) && !d.contains(&"CAP_NET_ADMIN".to_string()));
        let c = capabilities(&cfg(SecurityContext {
            add_capabilities: vec!["NET_ADMIN".into()],
            drop_capabilities: vec!["CHOWN".into()],
            ..Default::default()
        }))
        .unwrap();
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()) && !c.contains(&"CAP_CHOWN".to_string()));
        let only = capabilities(&cfg(SecurityContext {
            add_capabilities: vec!["NET_BIND_SERVICE".into()],
            drop_capabilities: vec!["ALL".into()],
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(only, vec!["CAP_NET_BIND_SERVICE".to_string()]);
        let p = capabilities(&cfg(SecurityContext {
            privileged: true,
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(p.len(), ALL_CAPS.len());
        assert!(
            capabilities(&cfg(SecurityContext {
                add_capabilities: vec!["BOGUS".into()],
                ..Default::default()
            }))
            .unwrap_err()
            .is_invalid_argument()
        );
    }

    #[test]
    fn users_resolve_from_the_image_and_run_as_non_root_is_enforced() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/home:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let c = cfg(SecurityContext::default());
        assert_eq!(user(&c, Some("web"), root.path()).unwrap(), (1000, 1001));
        assert_eq!(
            user(&c, Some("web:staff"), root.path()).unwrap(),
            (1000, 50)
        );
        assert_eq!(user(&c, Some("1000"), root.path()).unwrap(), (1000, 1001));
        assert_eq!(user(&c, None, root.path()).unwrap(), (0, 0));
        assert!(user(&c, Some("nobody"), root.path()).is_err());
        let nonroot = cfg(SecurityContext {
            run_as_non_root: true,
            ..Default::default()
        });
        assert!(user(&nonroot, None, root.path()).is_err());
        assert!(user(&nonroot, Some("web"), root.path()).is_ok());
        let as_user = cfg(SecurityContext {
            run_as_user: Some(2000),
            run_as_group: Some(3000),
            run_as_non_root: true,
            ..Default::default()
        });
        assert_eq!(user(&as_user, None, root.path()).unwrap(), (2000, 3000));
    }

    #[test]
    fn container_env_overrides_the_image_by_name() {
        let image = RuntimeConfig {
            env: vec!["PATH=/bin".into(), "A=1".into()],
            ..Default::default()
        };
        let c = ContainerConfig {
            env: vec![("A".into(), "2".into()), ("B".into(), "3".into())],
            ..Default::default()
        };
        assert_eq!(environment(&image, &c), ["PATH=/bin", "A=2", "B=3"]);
    }
}
