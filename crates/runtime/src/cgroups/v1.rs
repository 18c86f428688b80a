//! cgroup v1: one directory per hierarchy; limits go to the controller's own files.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::{Cgroup, read_file, write_file};
use crate::error::{Result, RuntimeError};

/// A new cpuset cgroup starts with no CPUs or memory nodes; copy the parent's.
pub(super) fn inherit_cpuset(dir: &Path) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if read_file(dir, f).is_some_and(|v| v.trim().is_empty())
            && let Some(v) = read_file(parent, f)
        {
            write_file(dir, f, v.trim())?;
        }
    }
    Ok(())
}

/// Devices every container may use, whatever its rules (as runc allows them).
const DEFAULT_DEVICES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let t = match d.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "c",
        Some(LinuxDeviceType::B) => "b",
        Some(LinuxDeviceType::P) => "p",
        Some(LinuxDeviceType::A) | None => "a",
    };
    if t == "a" && d.major().is_none() && d.minor().is_none() {
        return "a".into();
    }
    let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
    let access = d.access().clone().unwrap_or_else(|| "rwm".into());
    format!("{t} {}:{} {access}", n(d.major()), n(d.minor()))
}

fn write_rules(dir: &Path, file: &str, rules: &[String]) -> Result<()> {
    let path = dir.join(file);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| RuntimeError::cgroup(&path, e.to_string()))?;
    for r in rules {
        f.write_all(r.as_bytes())
            .map_err(|e| RuntimeError::cgroup(&path, format!("write {r:?}: {e}")))?;
    }
    Ok(())
}

pub(super) fn apply(cg: &Cgroup, r: &LinuxResources) -> Result<()> {
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(RuntimeError::spec(
            "linux.resources.unified",
            "needs cgroup v2, this host uses v1",
        ));
    }
    if let Some(m) = r.memory() {
        let d = cg
            .dir_of("memory")
            .ok_or_else(|| RuntimeError::spec("linux.resources.memory", "no memory cgroup"))?;
        if let Some(l) = m.limit() {
            write_file(d, "memory.limit_in_bytes", &l.to_string())?;
        }
        if let Some(s) = m.swap() {
            if d.join("memory.memsw.limit_in_bytes").exists() {
                write_file(d, "memory.memsw.limit_in_bytes", &s.to_string())?;
            } else if s != -1 && Some(s) != m.limit() {
                return Err(RuntimeError::spec(
                    "linux.resources.memory.swap",
                    "swap accounting is not enabled",
                ));
            }
        }
        if let Some(v) = m.reservation() {
            write_file(d, "memory.soft_limit_in_bytes", &v.to_string())?;
        }
        if let Some(v) = m.swappiness()
            && v <= 100
        {
            write_file(d, "memory.swappiness", &v.to_string())?;
        }
        if m.disable_oom_killer() == Some(true) {
            write_file(d, "memory.oom_control", "1")?;
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(d) = cg.dir_of("cpu") {
            if let Some(s) = c.shares() {
                write_file(d, "cpu.shares", &s.to_string())?;
            }
            if let Some(p) = c.period() {
                write_file(d, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = c.quota() {
                write_file(d, "cpu.cfs_quota_us", &q.to_string())?;
            }
            if let Some(b) = c.burst() {
                write_file(d, "cpu.cfs_burst_us", &b.to_string())?;
            }
            if let Some(p) = c.realtime_period() {
                write_file(d, "cpu.rt_period_us", &p.to_string())?;
            }
            if let Some(q) = c.realtime_runtime() {
                write_file(d, "cpu.rt_runtime_us", &q.to_string())?;
            }
        } else if c.shares().is_some() || c.quota().is_some() {
            return Err(RuntimeError::spec("linux.resources.cpu", "no cpu cgroup"));
        }
        if let Some(d) = cg.dir_of("cpuset") {
            if let Some(v) = c.cpus() {
                write_file(d, "cpuset.cpus", v)?;
            }
            if let Some(v) = c.mems() {
                write_file(d, "cpuset.mems", v)?;
            }
        }
    }
    if let Some(p) = r.pids() {
        let d = cg
            .dir_of("pids")
            .ok_or_else(|| RuntimeError::spec("linux.resources.pids", "no pids cgroup"))?;
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        write_file(d, "pids.max", &v)?;
    }
    if let Some(rules) = r.devices()
        && let Some(d) = cg.dir_of("devices")
    {
        // Deny everything first, then replay the spec's rules in order, then the defaults.
        write_file(d, "devices.deny", "a")?;
        let mut allow = Vec::new();
        for rule in rules {
            let text = device_rule(rule);
            if rule.allow() {
                allow.push(text);
            } else if text != "a" {
                write_rules(d, "devices.allow", &std::mem::take(&mut allow))?;
                write_rules(d, "devices.deny", &[text])?;
            }
        }
        allow.extend(DEFAULT_DEVICES.iter().map(|s| s.to_string()));
        write_rules(d, "devices.allow", &allow)?;
    }
    Ok(())
}

pub(super) fn set_frozen(dir: &Path, frozen: bool) -> Result<()> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        write_file(dir, "freezer.state", want)?;
        if read_file(dir, "freezer.state").is_some_and(|s| s.trim() == want) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(RuntimeError::cgroup(
                dir,
                format!("freezer did not reach {want}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_rules_render_like_the_kernel_expects() {
        let r: LinuxDeviceCgroup =
            serde_json::from_value(serde_json::json!({"allow": false, "access": "rwm"})).unwrap();
        assert_eq!(device_rule(&r), "a");
        let r: LinuxDeviceCgroup = serde_json::from_value(
            serde_json::json!({"allow": true, "type": "c", "major": 10, "access": "rw"}),
        )
        .unwrap();
        assert_eq!(device_rule(&r), "c 10:* rw");
    }
}
