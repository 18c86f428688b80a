//! Control groups for one container, on cgroup v1 (every mounted hierarchy, as on this
//! project's hybrid hosts) or v2 (one unified directory).
//!
//! Placement is chosen for start latency: on v1 the container's init moves itself by writing
//! `0` to each hierarchy's `tasks` file, which skips the global threadgroup lock (and its RCU
//! grace period, 5–20 ms) that writing a pid to `cgroup.procs` takes; on v2 the init is cloned
//! straight into its cgroup with `CLONE_INTO_CGROUP`.

mod stats;
mod v1;
mod v2;

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use stats::{CpuStats, MemoryStats, PidsStats, Stats};

use crate::error::{Result, RuntimeError};

/// Which cgroup version to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CgroupMode {
    /// v2 when the host is unified-only, else v1 (hybrid hosts keep their controllers on v1).
    #[default]
    Auto,
    V1,
    /// The unified hierarchy, even on a hybrid host (where it may have no controllers).
    V2,
}

/// One hierarchy directory of a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupDir {
    /// Controllers of the hierarchy (`["memory"]`, `["name=systemd"]`); empty on v2.
    pub controllers: Vec<String>,
    /// The container's directory in that hierarchy.
    pub dir: PathBuf,
}

/// A container's cgroup: its path and its directory in every hierarchy it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cgroup {
    pub version: u8,
    /// The absolute cgroup path (the spec's `linux.cgroupsPath`, resolved).
    pub path: String,
    pub dirs: Vec<CgroupDir>,
}

struct Hierarchy {
    controllers: Vec<String>,
    mountpoint: PathBuf,
}

/// The cgroup hierarchies (v1) and the unified mount point, read once per process: cgroup
/// file systems are mounted at boot, while `/proc/self/mountinfo` grows with every container
/// (reading and parsing it was 6.6 % of the CPU of a 100-pod burst on one node).
fn mounts() -> Result<&'static (Vec<Hierarchy>, Option<PathBuf>)> {
    static FOUND: std::sync::OnceLock<(Vec<Hierarchy>, Option<PathBuf>)> =
        std::sync::OnceLock::new();
    if let Some(m) = FOUND.get() {
        return Ok(m);
    }
    let m = read_mounts()?;
    Ok(FOUND.get_or_init(|| m))
}

fn read_mounts() -> Result<(Vec<Hierarchy>, Option<PathBuf>)> {
    let text = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| RuntimeError::io("read", "/proc/self/mountinfo", e))?;
    let mut v1 = Vec::new();
    let mut unified = None;
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mountpoint = left.split(' ').nth(4).unwrap_or_default();
        let mut r = right.split(' ');
        let (fstype, _source, opts) = (r.next(), r.next(), r.next().unwrap_or_default());
        match fstype {
            Some("cgroup2") => unified = Some(PathBuf::from(mountpoint)),
            Some("cgroup") => {
                let controllers: Vec<String> = opts
                    .split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro") && !o.contains("relatime") && *o != "noprefix"
                    })
                    .filter(|o| {
                        !o.starts_with("release_agent") && *o != "clone_children" && *o != "xattr"
                    })
                    .map(str::to_owned)
                    .collect();
                if !controllers.is_empty()
                    && !v1.iter().any(|h: &Hierarchy| h.controllers == controllers)
                {
                    v1.push(Hierarchy {
                        controllers,
                        mountpoint: PathBuf::from(mountpoint),
                    });
                }
            }
            _ => {}
        }
    }
    Ok((v1, unified))
}

/// The calling process's own cgroup path in the hierarchy holding `controller`
/// (`""` for the unified hierarchy).
fn own_path(controller: &str) -> String {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("/"),
        );
        if (controller.is_empty() && ctrls.is_empty()) || ctrls.split(',').any(|c| c == controller)
        {
            return path.to_owned();
        }
    }
    "/".into()
}

fn join(base: &Path, rel: &str) -> PathBuf {
    base.join(rel.trim_start_matches('/'))
}

/// v1 controllers a container always joins: limits, accounting, freezing, device rules.
const V1_CORE: [&str; 6] = ["cpu", "cpuacct", "memory", "pids", "freezer", "devices"];

/// Resolves the cgroup directories for `cgroups_path` (absolute, or relative to the caller's
/// own cgroup like runc) without creating anything. On v1 the container joins the
/// hierarchies of [`V1_CORE`] (and cpuset when `cpuset` is asked for); hierarchies it has no
/// settings for (blkio, name=systemd, ...) are left alone, which saves a directory each to
/// create and remove per container.
pub fn resolve(mode: CgroupMode, cgroups_path: &str, cpuset: bool) -> Result<Cgroup> {
    let (v1, unified) = mounts()?;
    let use_v2 = match mode {
        CgroupMode::V2 => true,
        CgroupMode::V1 => false,
        CgroupMode::Auto => v1.is_empty() && unified.is_some(),
    };
    if use_v2 {
        let root = unified.as_ref().ok_or_else(|| {
            RuntimeError::cgroup("/sys/fs/cgroup", "no cgroup v2 hierarchy is mounted")
        })?;
        let path = absolute(cgroups_path, "");
        return Ok(Cgroup {
            version: 2,
            dirs: vec![CgroupDir {
                controllers: vec![],
                dir: join(root, &path),
            }],
            path,
        });
    }
    if v1.is_empty() {
        return Err(RuntimeError::cgroup(
            "/sys/fs/cgroup",
            "no cgroup v1 hierarchy is mounted",
        ));
    }
    let path = absolute(cgroups_path, "memory");
    let dirs = v1
        .iter()
        .filter(|h| {
            h.controllers
                .iter()
                .any(|c| V1_CORE.contains(&c.as_str()) || (cpuset && c == "cpuset"))
        })
        .map(|h| {
            let p = if cgroups_path.starts_with('/') {
                path.clone()
            } else {
                absolute(cgroups_path, &h.controllers[0])
            };
            CgroupDir {
                dir: join(&h.mountpoint, &p),
                controllers: h.controllers.clone(),
            }
        })
        .collect();
    Ok(Cgroup {
        version: 1,
        path,
        dirs,
    })
}

fn absolute(p: &str, controller: &str) -> String {
    if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("{}/{}", own_path(controller).trim_end_matches('/'), p)
    }
}

pub(crate) fn write_file(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| RuntimeError::cgroup(&path, e.to_string()))?;
    f.write_all(value.as_bytes())
        .map_err(|e| RuntimeError::cgroup(&path, format!("write {value:?}: {e}")))
}

pub(crate) fn read_file(dir: &Path, file: &str) -> Option<String> {
    fs::read_to_string(dir.join(file)).ok()
}

impl Cgroup {
    /// Creates the directories and applies `resources`. On failure nothing is left behind.
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<()> {
        let mut created = Vec::new();
        let r = self.create_inner(resources, &mut created);
        if r.is_err() {
            for d in created.iter().rev() {
                let _ = fs::remove_dir(d);
            }
        }
        r
    }

    fn create_inner(
        &self,
        resources: Option<&LinuxResources>,
        created: &mut Vec<PathBuf>,
    ) -> Result<()> {
        for d in &self.dirs {
            if d.dir.exists() {
                return Err(RuntimeError::cgroup(
                    &d.dir,
                    "exists already (is another container using this cgroupsPath?)",
                ));
            }
            let mut missing = Vec::new();
            let mut p = d.dir.as_path();
            while !p.exists() {
                missing.push(p.to_path_buf());
                p = p.parent().unwrap_or(Path::new("/"));
            }
            for m in missing.iter().rev() {
                match fs::create_dir(m) {
                    Ok(()) => {}
                    // A parent another container created meanwhile (containers of one parent
                    // start concurrently); its settings below are idempotent.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && m != &d.dir => {}
                    Err(e) => return Err(RuntimeError::cgroup(m, format!("mkdir: {e}"))),
                }
                if m == &d.dir {
                    created.push(m.clone());
                }
                if d.controllers.iter().any(|c| c == "cpuset") {
                    v1::inherit_cpuset(m)?;
                }
                if self.version == 2 && m != &d.dir {
                    v2::enable_controllers(m)?;
                }
            }
            if self.version == 2 {
                v2::enable_controllers(d.dir.parent().unwrap_or(Path::new("/")))?;
            }
        }
        if let Some(r) = resources {
            if self.version == 1 {
                v1::apply(self, r)?;
            } else {
                v2::apply(&self.dirs[0].dir, r)?;
            }
        }
        Ok(())
    }

    /// Files the container's init writes `0` to (v1), opened in advance.
    pub(crate) fn open_tasks(&self) -> Result<Vec<OwnedFd>> {
        if self.version != 1 {
            return Ok(vec![]);
        }
        self.dirs
            .iter()
            .map(|d| {
                let p = d.dir.join("tasks");
                fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&p)
                    .map(OwnedFd::from)
                    .map_err(|e| RuntimeError::cgroup(&p, e.to_string()))
            })
            .collect()
    }

    /// The directory descriptor for `CLONE_INTO_CGROUP` (v2).
    pub(crate) fn open_dir(&self) -> Result<Option<OwnedFd>> {
        if self.version != 2 {
            return Ok(None);
        }
        let d = &self.dirs[0].dir;
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(d)
            .map(|f| Some(OwnedFd::from(f)))
            .map_err(|e| RuntimeError::cgroup(d, e.to_string()))
    }

    fn dir_of(&self, controller: &str) -> Option<&Path> {
        if self.version == 2 {
            return Some(&self.dirs[0].dir);
        }
        self.dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
            .map(|d| d.dir.as_path())
    }

    /// Any directory listing the member processes.
    fn procs_dir(&self) -> &Path {
        self.dir_of("pids")
            .or_else(|| self.dir_of("freezer"))
            .unwrap_or(&self.dirs[0].dir)
    }

    /// Process ids in the cgroup.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let p = self.procs_dir().join("cgroup.procs");
        match fs::read_to_string(&p) {
            Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(RuntimeError::cgroup(p, e.to_string())),
        }
    }

    /// The file whose `oom_kill` line counts the memory cgroup's OOM kills.
    pub fn oom_file(&self) -> Option<PathBuf> {
        if self.version == 2 {
            return Some(self.dirs[0].dir.join("memory.events"));
        }
        self.dir_of("memory").map(|d| d.join("memory.oom_control"))
    }

    /// How many processes the kernel's OOM killer killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        self.oom_file()
            .and_then(|f| fs::read_to_string(f).ok())
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|v| v.trim().parse().ok())
                })
            })
            .unwrap_or(0)
    }

    /// Freezes (`true`) or thaws every process, waiting until the kernel reports it done.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        if self.version == 2 {
            v2::set_frozen(&self.dirs[0].dir, frozen)
        } else {
            let d = self
                .dir_of("freezer")
                .ok_or_else(|| RuntimeError::cgroup(&self.path, "no freezer hierarchy"))?;
            v1::set_frozen(d, frozen)
        }
    }

    pub fn is_frozen(&self) -> bool {
        if self.version == 2 {
            read_file(&self.dirs[0].dir, "cgroup.freeze").is_some_and(|s| s.trim() == "1")
        } else {
            self.dir_of("freezer")
                .and_then(|d| read_file(d, "freezer.state"))
                .is_some_and(|s| s.trim() != "THAWED")
        }
    }

    /// Sends `signal` to every process in the cgroup. SIGKILL is race-free against forks
    /// (frozen first on v1, `cgroup.kill` on v2).
    pub fn signal_all(&self, signal: i32) -> Result<()> {
        if signal == libc::SIGKILL
            && self.version == 2
            && self.dirs[0].dir.join("cgroup.kill").exists()
        {
            return write_file(&self.dirs[0].dir, "cgroup.kill", "1");
        }
        let freeze =
            signal == libc::SIGKILL && self.dir_of("freezer").is_some() && !self.is_frozen();
        if freeze {
            self.set_frozen(true)?;
        }
        for pid in self.pids()? {
            // SAFETY: kill(2) with plain integers.
            unsafe { libc::kill(pid, signal) };
        }
        if freeze {
            self.set_frozen(false)?;
        }
        Ok(())
    }

    /// Resource usage, for `events --stats` and the node agent's metrics.
    pub fn stats(&self) -> Stats {
        if self.version == 2 {
            stats::read_v2(&self.dirs[0].dir)
        } else {
            stats::read_v1(|c| self.dir_of(c))
        }
    }

    /// Removes the container's directories, waiting up to `timeout` for exiting members.
    pub fn remove(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for d in &self.dirs {
            loop {
                match fs::remove_dir(&d.dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => return Err(RuntimeError::cgroup(&d.dir, format!("rmdir: {e}"))),
                }
            }
        }
        Ok(())
    }

    /// Writes `0` to each pre-opened `tasks` file: moves the calling (single-threaded)
    /// process. Async-signal-safe.
    pub(crate) fn join_self(task_fds: &[OwnedFd]) -> std::result::Result<(), i32> {
        for fd in task_fds {
            // SAFETY: writing one byte from a static buffer to an open descriptor.
            let r = unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) };
            if r != 1 {
                return Err(crate::caps::errno());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_absolute_and_relative_paths() {
        let Ok(cg) = resolve(CgroupMode::Auto, "/berth-test/x", false) else {
            return;
        };
        assert_eq!(cg.path, "/berth-test/x");
        assert!(cg.dirs.iter().all(|d| d.dir.ends_with("berth-test/x")));
        let rel = resolve(CgroupMode::Auto, "rel", false).unwrap();
        assert!(rel.path.ends_with("/rel"));
    }
}
