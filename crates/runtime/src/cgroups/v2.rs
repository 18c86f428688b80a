//! cgroup v2: one directory; controllers must be enabled in every ancestor's subtree_control.

use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use super::{read_file, write_file};
use crate::error::{Result, RuntimeError};

/// Enables, in `dir`'s `cgroup.subtree_control`, the controllers berth drives that `dir` has.
pub(super) fn enable_controllers(dir: &Path) -> Result<()> {
    let Some(available) = read_file(dir, "cgroup.controllers") else {
        return Ok(());
    };
    let enabled = read_file(dir, "cgroup.subtree_control").unwrap_or_default();
    let want: Vec<String> = available
        .split_whitespace()
        .filter(|c| matches!(*c, "cpu" | "cpuset" | "memory" | "pids" | "io"))
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    write_file(dir, "cgroup.subtree_control", &want.join(" "))
}

fn has(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

fn need(dir: &Path, file: &str, field: &str) -> Result<()> {
    if has(dir, file) {
        Ok(())
    } else {
        Err(RuntimeError::spec(
            field,
            format!("the cgroup v2 controller for {file} is not available"),
        ))
    }
}

/// runc's conversion of cpu shares (2..262144) to a v2 weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        0
    } else {
        1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
    }
}

pub(super) fn apply(dir: &Path, r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            need(dir, "memory.max", "linux.resources.memory.limit")?;
            write_file(
                dir,
                "memory.max",
                &if l < 0 { "max".into() } else { l.to_string() },
            )?;
            if let Some(s) = m.swap()
                && has(dir, "memory.swap.max")
            {
                let v = if s < 0 {
                    "max".into()
                } else {
                    (s - l).max(0).to_string()
                };
                write_file(dir, "memory.swap.max", &v)?;
            }
        }
        if let Some(v) = m.reservation() {
            need(dir, "memory.low", "linux.resources.memory.reservation")?;
            write_file(dir, "memory.low", &v.to_string())?;
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            need(dir, "cpu.weight", "linux.resources.cpu.shares")?;
            write_file(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
        }
        if c.quota().is_some() || c.period().is_some() {
            need(dir, "cpu.max", "linux.resources.cpu.quota")?;
            let q = c
                .quota()
                .filter(|q| *q > 0)
                .map_or("max".to_string(), |q| q.to_string());
            write_file(
                dir,
                "cpu.max",
                &format!("{q} {}", c.period().unwrap_or(100_000)),
            )?;
        }
        if let Some(v) = c.cpus() {
            need(dir, "cpuset.cpus", "linux.resources.cpu.cpus")?;
            write_file(dir, "cpuset.cpus", v)?;
        }
        if let Some(v) = c.mems() {
            need(dir, "cpuset.mems", "linux.resources.cpu.mems")?;
            write_file(dir, "cpuset.mems", v)?;
        }
    }
    if let Some(p) = r.pids() {
        need(dir, "pids.max", "linux.resources.pids.limit")?;
        write_file(
            dir,
            "pids.max",
            &if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            },
        )?;
    }
    for (k, v) in r.unified().iter().flatten() {
        if k.contains('/') || k.starts_with("cgroup.") {
            return Err(RuntimeError::spec(
                format!("linux.resources.unified.{k}"),
                "not a controller file",
            ));
        }
        need(dir, k, &format!("linux.resources.unified.{k}"))?;
        write_file(dir, k, v)?;
    }
    let denies_devices = r.devices().iter().flatten().any(|d| !d.allow());
    if denies_devices {
        tracing::debug!("cgroup v2: device rules are not enforced (no eBPF device filter)");
    }
    Ok(())
}

pub(super) fn set_frozen(dir: &Path, frozen: bool) -> Result<()> {
    write_file(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if read_file(dir, "cgroup.events").is_some_and(|s| s.lines().any(|l| l.trim() == want)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(RuntimeError::cgroup(
                dir,
                format!("cgroup.events did not report {want}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_convert_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }
}
