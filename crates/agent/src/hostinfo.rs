//! Facts about the host the node reports: CPUs, memory, disk, identity, kernel and OS, and the
//! usage samples behind node metrics and pressure conditions. Read from `/proc`, `/sys`,
//! `/etc` and `statvfs`; missing files give empty values, never errors.

use std::net::IpAddr;
use std::path::Path;

/// Static facts, read once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
    /// Kubernetes' name for the architecture (`amd64`, `arm64`).
    pub architecture: String,
    pub hostname: String,
}

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Kubernetes' (GOARCH) name of this machine's architecture.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// The `key=value` of os-release style text.
fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix('=')?;
        Some(v.trim().trim_matches('"').to_string())
    })
}

/// MemTotal / MemAvailable style values of `/proc/meminfo`, in bytes.
fn meminfo_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

impl HostFacts {
    pub fn read() -> HostFacts {
        let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        HostFacts {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            memory_bytes: meminfo_value(&meminfo, "MemTotal").unwrap_or(0),
            machine_id: read_trim("/etc/machine-id"),
            system_uuid: read_trim("/sys/class/dmi/id/product_uuid"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            kernel_version: read_trim("/proc/sys/kernel/osrelease"),
            os_image: os_release_value(&os, "PRETTY_NAME").unwrap_or_else(|| "Linux".into()),
            architecture: go_arch().into(),
            hostname: read_trim("/proc/sys/kernel/hostname").to_lowercase(),
        }
    }
}

/// Memory available to new work (`MemAvailable`) and the total, in bytes.
pub fn memory_available() -> (u64, u64) {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    (
        meminfo_value(&m, "MemAvailable").unwrap_or(0),
        meminfo_value(&m, "MemTotal").unwrap_or(0),
    )
}

/// Capacity and free space of the filesystem holding `path`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    pub capacity: u64,
    pub available: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

pub fn fs_stats(path: &Path) -> FsStats {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => FsStats {
            capacity: s.blocks() * s.fragment_size(),
            available: s.blocks_available() * s.fragment_size(),
            inodes: s.files(),
            inodes_free: s.files_available(),
        },
        Err(_) => FsStats::default(),
    }
}

/// Process ids in use and the maximum.
pub fn pids() -> (u64, u64) {
    let max: u64 = read_trim("/proc/sys/kernel/pid_max")
        .parse()
        .unwrap_or(32768);
    let used = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count() as u64
        })
        .unwrap_or(0);
    (used, max)
}

/// Cumulative CPU time of the whole host in nanoseconds (busy, from `/proc/stat`).
pub fn cpu_busy_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = v
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .take(8)
        .map(|(_, x)| *x)
        .sum();
    // /proc/stat counts in USER_HZ, which Linux fixes at 100 for every architecture.
    busy * 10_000_000
}

/// The address this host uses to reach `target` (a routing lookup; nothing is sent).
pub fn source_address_for(target: IpAddr) -> Option<IpAddr> {
    let bind: IpAddr = if target.is_ipv4() {
        IpAddr::from([0, 0, 0, 0])
    } else {
        IpAddr::from([0u16; 8])
    };
    let s = std::net::UdpSocket::bind((bind, 0)).ok()?;
    s.connect((target, 9)).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_os_release_and_meminfo() {
        let os = "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            os_release_value(os, "PRETTY_NAME").as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        let mi = "MemTotal:       24684032 kB\nMemAvailable:   22000000 kB\n";
        assert_eq!(meminfo_value(mi, "MemTotal"), Some(24684032 * 1024));
        assert_eq!(meminfo_value(mi, "MemFree"), None);
    }

    #[test]
    fn reads_this_host() {
        let f = HostFacts::read();
        assert!(f.cpus >= 1 && f.memory_bytes > 0);
        assert!(fs_stats(Path::new("/")).capacity > 0);
        assert!(cpu_busy_ns() > 0);
        let (used, max) = pids();
        assert!(used > 0 && max >= used);
        assert_eq!(
            source_address_for(IpAddr::from([127, 0, 0, 1])),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
    }
}
