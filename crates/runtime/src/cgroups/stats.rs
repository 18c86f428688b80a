//! Per-container CPU, memory and pids statistics read from the cgroup files.

use std::path::Path;

use serde::Serialize;

use super::read_file;

/// CPU usage in nanoseconds and CFS throttling.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CpuStats {
    pub usage_ns: u64,
    pub user_ns: u64,
    pub system_ns: u64,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

/// Memory usage in bytes. `working_set` is usage minus inactive file cache (as kubelet does).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MemoryStats {
    pub usage: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
    pub max_usage: u64,
    pub working_set: u64,
    pub rss: u64,
    pub cache: u64,
    pub failcnt: u64,
    pub oom_kills: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PidsStats {
    pub current: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

/// A snapshot of one container's resource usage.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
}

fn num(dir: &Path, file: &str) -> u64 {
    read_file(dir, file)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `None` for "max" or for v1's "unlimited" (a value near i64::MAX).
fn limit(dir: &Path, file: &str) -> Option<u64> {
    let s = read_file(dir, file)?;
    let v: u64 = s.trim().parse().ok()?;
    (v < (1u64 << 62)).then_some(v)
}

/// Looks up `key value` lines of a flat-keyed file.
fn keyed(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

pub(super) fn read_v1<'a>(dir_of: impl Fn(&str) -> Option<&'a Path>) -> Stats {
    let mut s = Stats::default();
    if let Some(d) = dir_of("cpuacct") {
        s.cpu.usage_ns = num(d, "cpuacct.usage");
        let st = read_file(d, "cpuacct.stat").unwrap_or_default();
        // cpuacct.stat counts USER_HZ ticks (100 per second on Linux).
        s.cpu.user_ns = keyed(&st, "user") * 10_000_000;
        s.cpu.system_ns = keyed(&st, "system") * 10_000_000;
    }
    if let Some(d) = dir_of("cpu") {
        let st = read_file(d, "cpu.stat").unwrap_or_default();
        s.cpu.periods = keyed(&st, "nr_periods");
        s.cpu.throttled_periods = keyed(&st, "nr_throttled");
        s.cpu.throttled_ns = keyed(&st, "throttled_time");
    }
    if let Some(d) = dir_of("memory") {
        let st = read_file(d, "memory.stat").unwrap_or_default();
        s.memory.usage = num(d, "memory.usage_in_bytes");
        s.memory.limit = limit(d, "memory.limit_in_bytes");
        s.memory.max_usage = num(d, "memory.max_usage_in_bytes");
        s.memory.failcnt = num(d, "memory.failcnt");
        s.memory.rss = keyed(&st, "total_rss");
        s.memory.cache = keyed(&st, "total_cache");
        s.memory.working_set = s
            .memory
            .usage
            .saturating_sub(keyed(&st, "total_inactive_file"));
        s.memory.oom_kills = keyed(
            &read_file(d, "memory.oom_control").unwrap_or_default(),
            "oom_kill",
        );
    }
    if let Some(d) = dir_of("pids") {
        s.pids.current = num(d, "pids.current");
        s.pids.limit = limit(d, "pids.max");
    }
    s
}

pub(super) fn read_v2(d: &Path) -> Stats {
    let mut s = Stats::default();
    let cpu = read_file(d, "cpu.stat").unwrap_or_default();
    s.cpu.usage_ns = keyed(&cpu, "usage_usec") * 1000;
    s.cpu.user_ns = keyed(&cpu, "user_usec") * 1000;
    s.cpu.system_ns = keyed(&cpu, "system_usec") * 1000;
    s.cpu.periods = keyed(&cpu, "nr_periods");
    s.cpu.throttled_periods = keyed(&cpu, "nr_throttled");
    s.cpu.throttled_ns = keyed(&cpu, "throttled_usec") * 1000;
    let st = read_file(d, "memory.stat").unwrap_or_default();
    let events = read_file(d, "memory.events").unwrap_or_default();
    s.memory.usage = num(d, "memory.current");
    s.memory.limit = limit(d, "memory.max");
    s.memory.max_usage = num(d, "memory.peak");
    s.memory.rss = keyed(&st, "anon");
    s.memory.cache = keyed(&st, "file");
    s.memory.working_set = s.memory.usage.saturating_sub(keyed(&st, "inactive_file"));
    s.memory.failcnt = keyed(&events, "max");
    s.memory.oom_kills = keyed(&events, "oom_kill");
    s.pids.current = num(d, "pids.current");
    s.pids.limit = limit(d, "pids.max");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_parse() {
        let t = "cache 10\nrss 20\ntotal_rss 30\n";
        assert_eq!(keyed(t, "rss"), 20);
        assert_eq!(keyed(t, "total_rss"), 30);
        assert_eq!(keyed(t, "absent"), 0);
    }

    #[test]
    fn limits_treat_max_and_huge_as_unlimited() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), "max\n").unwrap();
        std::fs::write(d.path().join("b"), "9223372036854771712\n").unwrap();
        std::fs::write(d.path().join("c"), "67108864\n").unwrap();
        assert_eq!(limit(d.path(), "a"), None);
        assert_eq!(limit(d.path(), "b"), None);
        assert_eq!(limit(d.path(), "c"), Some(67_108_864));
    }
}
