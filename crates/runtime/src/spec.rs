//! Reading and checking an OCI bundle: config.json (with errors that name the field) and the
//! root filesystem. Fields this runtime cannot honour are rejected, never silently ignored.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Result, RuntimeError};

/// A bundle directory with its parsed and checked configuration.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    /// Absolute path of the root filesystem.
    pub rootfs: PathBuf,
    pub spec: Spec,
}

impl Bundle {
    /// Reads `<dir>/config.json` and checks it together with the root filesystem.
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir =
            std::path::absolute(dir).map_err(|e| RuntimeError::io("resolve bundle", dir, e))?;
        let path = dir.join("config.json");
        let bytes = std::fs::read(&path).map_err(|e| RuntimeError::io("read", &path, e))?;
        let spec = parse_spec(&bytes, "config.json")?;
        Bundle::from_spec(dir, spec)
    }

    /// Checks `spec` for a bundle at `dir` (its relative root path resolves against `dir`).
    pub fn from_spec(dir: PathBuf, spec: Spec) -> Result<Bundle> {
        check(&spec)?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| RuntimeError::spec("root", "is required"))?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            dir.join(root.path())
        };
        match std::fs::metadata(&rootfs) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(RuntimeError::spec(
                    "root.path",
                    format!("{} is not a directory", rootfs.display()),
                ));
            }
            Err(e) => {
                return Err(RuntimeError::spec(
                    "root.path",
                    format!("rootfs {}: {e}", rootfs.display()),
                ));
            }
        }
        Ok(Bundle { dir, rootfs, spec })
    }
}

/// Parses JSON into a runtime `Spec`, naming the offending field on error.
pub fn parse_spec(bytes: &[u8], file: &str) -> Result<Spec> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| RuntimeError::InvalidSpec {
        file: file.into(),
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

fn unsupported(field: &str) -> RuntimeError {
    RuntimeError::spec(field, "is not supported by berth's runtime")
}

fn check(spec: &Spec) -> Result<()> {
    if spec.version().is_empty() {
        return Err(RuntimeError::spec("ociVersion", "is required"));
    }
    if !spec.version().starts_with("1.") {
        return Err(RuntimeError::spec(
            "ociVersion",
            format!("unsupported version {:?}", spec.version()),
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::spec("process", "is required"))?;
    check_process(process, "process")?;
    if spec
        .hooks()
        .as_ref()
        .is_some_and(|h| *h != Default::default())
    {
        return Err(unsupported("hooks"));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(RuntimeError::spec(
                format!("mounts[{i}].destination"),
                "must be an absolute path",
            ));
        }
        if m.destination()
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(RuntimeError::spec(
                format!("mounts[{i}].destination"),
                "must not contain \"..\"",
            ));
        }
    }
    let Some(linux) = spec.linux() else {
        return Err(RuntimeError::spec("linux", "is required"));
    };
    let mut seen = Vec::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if seen.contains(&ns.typ()) {
            return Err(RuntimeError::spec(
                format!("linux.namespaces[{i}]"),
                format!("duplicate namespace {:?}", ns.typ()),
            ));
        }
        seen.push(ns.typ());
        if ns.typ() == LinuxNamespaceType::Time {
            return Err(unsupported(&format!("linux.namespaces[{i}] (time)")));
        }
        if let Some(p) = ns.path()
            && !p.is_absolute()
        {
            return Err(RuntimeError::spec(
                format!("linux.namespaces[{i}].path"),
                "must be absolute",
            ));
        }
    }
    let has_userns = seen.contains(&LinuxNamespaceType::User);
    if has_userns {
        return Err(unsupported("linux.namespaces (user)"));
    }
    if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(RuntimeError::spec(
            "linux.uidMappings",
            "requires a user namespace",
        ));
    }
    if !seen.contains(&LinuxNamespaceType::Mount) {
        return Err(RuntimeError::spec(
            "linux.namespaces",
            "a mount namespace is required",
        ));
    }
    if let Some(p) = linux.cgroups_path()
        && p.components().any(|c| c == std::path::Component::ParentDir)
    {
        return Err(RuntimeError::spec(
            "linux.cgroupsPath",
            "must not contain \"..\"",
        ));
    }
    if let Some(p) = linux.rootfs_propagation() {
        crate::mounts::propagation_flags(p).ok_or_else(|| {
            RuntimeError::spec(
                "linux.rootfsPropagation",
                format!("unknown propagation {p:?}"),
            )
        })?;
    }
    if linux.intel_rdt().is_some() {
        return Err(unsupported("linux.intelRdt"));
    }
    if linux.personality().is_some() {
        return Err(unsupported("linux.personality"));
    }
    if linux.memory_policy().is_some() {
        return Err(unsupported("linux.memoryPolicy"));
    }
    if linux.time_offsets().is_some() {
        return Err(unsupported("linux.timeOffsets"));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(unsupported("linux.netDevices"));
    }
    if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(unsupported("linux.mountLabel"));
    }
    if let Some(r) = linux.resources() {
        if r.block_io().is_some() {
            return Err(unsupported("linux.resources.blockIO"));
        }
        if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
            return Err(unsupported("linux.resources.hugepageLimits"));
        }
        if r.network().is_some() {
            return Err(unsupported("linux.resources.network"));
        }
        if r.rdma().as_ref().is_some_and(|h| !h.is_empty()) {
            return Err(unsupported("linux.resources.rdma"));
        }
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() || !d.path().starts_with("/dev") {
            return Err(RuntimeError::spec(
                format!("linux.devices[{i}].path"),
                "must be an absolute path under /dev",
            ));
        }
    }
    Ok(())
}

/// Checks a process description (the container's, or one to exec); `field` prefixes errors.
pub fn check_process(p: &oci_spec::runtime::Process, field: &str) -> Result<()> {
    match p.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => {
            return Err(RuntimeError::spec(
                format!("{field}.args"),
                "must name a program",
            ));
        }
    }
    if !p.cwd().is_absolute() {
        return Err(RuntimeError::spec(
            format!("{field}.cwd"),
            "must be an absolute path",
        ));
    }
    for (i, e) in p.env().iter().flatten().enumerate() {
        if !e.contains('=') || e.contains('\0') {
            return Err(RuntimeError::spec(
                format!("{field}.env[{i}]"),
                format!("{e:?} is not KEY=value"),
            ));
        }
    }
    if p.apparmor_profile().as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(RuntimeError::spec(
            format!("{field}.apparmorProfile"),
            "AppArmor is not available",
        ));
    }
    if p.selinux_label().as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(unsupported(&format!("{field}.selinuxLabel")));
    }
    if p.scheduler().is_some() {
        return Err(unsupported(&format!("{field}.scheduler")));
    }
    if p.io_priority().is_some() {
        return Err(unsupported(&format!("{field}.ioPriority")));
    }
    if p.exec_cpu_affinity().is_some() {
        return Err(unsupported(&format!("{field}.execCPUAffinity")));
    }
    if p.command_line().is_some() {
        return Err(unsupported(&format!("{field}.commandLine")));
    }
    Ok(())
}

/// Checks a container id the way runc does: `[A-Za-z0-9_.-]+`, not `.` or `..`, ≤ 1024 bytes.
pub fn check_id(id: &str) -> Result<()> {
    let bad = |reason| {
        Err(RuntimeError::InvalidId {
            id: id.into(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("must not be empty");
    }
    if id.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        return bad("must not be . or ..");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        return bad("only letters, digits, '_', '.' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["/bin/true"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}
        })
    }

    fn bundle_with(v: serde_json::Value) -> Result<Bundle> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        std::fs::write(dir.path().join("config.json"), v.to_string()).unwrap();
        let r = Bundle::load(dir.path());
        drop(dir);
        r
    }

    #[test]
    fn minimal_bundle_loads() {
        let b = bundle_with(minimal()).unwrap();
        assert!(b.rootfs.ends_with("rootfs"));
    }

    #[test]
    fn type_errors_name_the_field() {
        let mut v = minimal();
        v["linux"]["resources"] = serde_json::json!({"memory": {"limit": "lots"}});
        let e = bundle_with(v).unwrap_err();
        assert!(e.is_invalid_spec());
        assert!(
            e.to_string().contains("linux.resources.memory.limit"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        let mut v = minimal();
        v["process"]["args"] = serde_json::json!([]);
        assert!(
            bundle_with(v)
                .unwrap_err()
                .to_string()
                .contains("process.args")
        );
        let mut v = minimal();
        v["mounts"] = serde_json::json!([{"destination": "proc", "type": "proc"}]);
        assert!(
            bundle_with(v)
                .unwrap_err()
                .to_string()
                .contains("mounts[0].destination")
        );
        let mut v = minimal();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}, {"type": "mount"}]);
        assert!(
            bundle_with(v)
                .unwrap_err()
                .to_string()
                .contains("linux.namespaces[1]")
        );
        let mut v = minimal();
        v["process"]["capabilities"] = serde_json::json!({"bounding": ["CAP_NOPE"]});
        assert!(
            bundle_with(v)
                .unwrap_err()
                .to_string()
                .contains("process.capabilities.bounding")
        );
        let mut v = minimal();
        v["linux"]["resources"] = serde_json::json!({"blockIO": {"weight": 10}});
        assert!(
            bundle_with(v)
                .unwrap_err()
                .to_string()
                .contains("linux.resources.blockIO")
        );
    }

    #[test]
    fn missing_rootfs_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), minimal().to_string()).unwrap();
        let e = Bundle::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("root.path"), "{e}");
    }

    #[test]
    fn ids_follow_runc_rules() {
        assert!(check_id("abc-1.2_3").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ü"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }
}
