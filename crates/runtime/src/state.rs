//! The state directory: one directory per container under the runtime root (like runc's
//! `--root`), holding `state.json` (written once at create), `exec.fifo` (until started) and
//! `exit` (written by the shim when the container exits). A container's status is derived
//! from these and from the live process, so any process can list and adopt containers.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, LinuxSeccomp, Process};
use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::error::{Result, RuntimeError};

pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const FIFO: &str = "exec.fifo";
pub(crate) const EXIT_FILE: &str = "exit";

/// Lifecycle status, as the OCI runtime spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What `create` records about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` (clock ticks since boot), to tell it from a recycled pid.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub cgroup: Cgroup,
    /// The container's process spec: defaults for exec.
    pub process: Process,
    /// Namespaces the container has (type, joined path or none).
    pub namespaces: Vec<(LinuxNamespaceType, Option<PathBuf>)>,
    pub seccomp: Option<LinuxSeccomp>,
    pub log_path: Option<PathBuf>,
    /// The shim's pid and start time (detached containers).
    #[serde(default)]
    pub shim: Option<(i32, u64)>,
}

/// How a container exited (from the shim's exit file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitInfo {
    /// The exit code, or 128 + signal number when a signal killed it.
    pub code: i32,
    pub signal: Option<i32>,
    /// RFC 3339 time of the exit.
    pub exited_at: String,
    /// The memory cgroup's OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// `OOMKilled`, `Completed` or `Error`, as Kubernetes reports it.
    pub reason: &'static str,
}

impl ExitInfo {
    pub(crate) fn from_wait_status(st: i32, exited_at: String, oom_kills: i64) -> ExitInfo {
        let (code, signal) = if libc::WIFSIGNALED(st) {
            (128 + libc::WTERMSIG(st), Some(libc::WTERMSIG(st)))
        } else {
            (libc::WEXITSTATUS(st), None)
        };
        let oom_killed = oom_kills > 0;
        let reason = if oom_killed {
            "OOMKilled"
        } else if code == 0 {
            "Completed"
        } else {
            "Error"
        };
        ExitInfo {
            code,
            signal,
            exited_at,
            oom_killed,
            reason,
        }
    }

    fn parse(text: &str) -> Option<ExitInfo> {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('=').map(str::to_owned))
        };
        let st: i32 = field("status")?.parse().ok()?;
        let oom: i64 = field("oom_kill").and_then(|v| v.parse().ok()).unwrap_or(0);
        Some(ExitInfo::from_wait_status(
            st,
            field("exited_at").unwrap_or_default(),
            oom,
        ))
    }
}

/// The runc-compatible view of a container (`state` prints it as JSON).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub oci_version: String,
    pub id: String,
    /// 0 once stopped.
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// berth's addition for stopped containers: how it exited, when the shim recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
}

/// One container's directory.
pub(crate) struct StateDir {
    pub id: String,
    pub dir: PathBuf,
}

/// (state letter, start time) of a live process; `None` if it is gone.
pub(crate) fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    let start = f.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The parent pid of a live process.
pub(crate) fn proc_ppid(pid: i32) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
}

/// Whether `pid` still is the process that started at `start` (and not a zombie).
pub(crate) fn alive(pid: i32, start: u64) -> bool {
    pid > 0 && proc_stat(pid).is_some_and(|(s, t)| t == start && s != 'Z' && s != 'X')
}

impl StateDir {
    pub fn new(root: &Path, id: &str) -> StateDir {
        StateDir {
            id: id.into(),
            dir: root.join(id),
        }
    }

    /// Claims the id: fails with `AlreadyExists` if the directory is there.
    pub fn create(&self) -> Result<()> {
        if let Some(parent) = self.dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| RuntimeError::io("create", parent, e))?;
        }
        match std::fs::create_dir(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(RuntimeError::AlreadyExists {
                    id: self.id.clone(),
                })
            }
            Err(e) => Err(RuntimeError::io("create", &self.dir, e)),
        }
    }

    pub fn write(&self, r: &Record) -> Result<()> {
        let tmp = self.dir.join("state.json.tmp");
        let bytes = serde_json::to_vec(r).map_err(|e| RuntimeError::CorruptState {
            id: self.id.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&tmp, bytes).map_err(|e| RuntimeError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, self.dir.join(STATE_FILE))
            .map_err(|e| RuntimeError::io("rename", &tmp, e))
    }

    pub fn read(&self) -> Result<Record> {
        let path = self.dir.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound {
                    id: self.id.clone(),
                });
            }
            Err(e) => return Err(RuntimeError::io("read", &path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| RuntimeError::CorruptState {
            id: self.id.clone(),
            message: e.to_string(),
        })
    }

    /// Records an exit the way the shim does (for `run --keep`, which has no shim).
    pub fn write_exit(&self, wait_status: i32, info: &ExitInfo) -> Result<()> {
        let path = self.dir.join(EXIT_FILE);
        let body = format!(
            "status={wait_status}\nexited_at={}\noom_kill={}\n",
            info.exited_at,
            i32::from(info.oom_killed)
        );
        std::fs::write(&path, body).map_err(|e| RuntimeError::io("write", &path, e))
    }

    pub fn exit_info(&self) -> Option<ExitInfo> {
        std::fs::read_to_string(self.dir.join(EXIT_FILE))
            .ok()
            .and_then(|t| ExitInfo::parse(&t))
    }

    pub fn status(&self, r: &Record) -> Status {
        let exited = || self.dir.join(EXIT_FILE).exists();
        if exited() {
            return Status::Stopped;
        }
        if !alive(r.pid, r.pid_start) {
            // The init is gone; its shim is writing the exit record: give it a moment, so a
            // stopped container always comes with its exit status.
            if let Some((pid, start)) = r.shim {
                let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
                while alive(pid, start) && !exited() && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            return Status::Stopped;
        }
        if self.dir.join(FIFO).exists() {
            return Status::Created;
        }
        if r.cgroup.is_frozen() {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn view(&self, r: &Record) -> ContainerState {
        let status = self.status(r);
        ContainerState {
            oci_version: "1.0.2".into(),
            id: r.id.clone(),
            pid: if status == Status::Stopped { 0 } else { r.pid },
            status,
            bundle: r.bundle.clone(),
            rootfs: r.rootfs.clone(),
            created: r.created.clone(),
            owner: String::new(),
            annotations: r.annotations.clone(),
            exit: if status == Status::Stopped {
                self.exit_info()
            } else {
                None
            },
        }
    }

    /// Removes the directory. A shim may be writing the exit record into it at the same
    /// moment (after a failed or forced stop): retry briefly until the directory is gone; once
    /// it is, the shim's writes fail harmlessly.
    pub fn remove(&self) -> Result<()> {
        let mut tries = 0;
        loop {
            match std::fs::remove_dir_all(&self.dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(_) if tries < 200 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => return Err(RuntimeError::io("remove", &self.dir, e)),
            }
        }
    }
}

/// Now, as RFC 3339 with nanoseconds (UTC).
pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_files_parse_codes_signals_and_oom() {
        let e =
            ExitInfo::parse("status=768\nexited_at=2026-01-01T00:00:00.000000001Z\noom_kill=-1\n")
                .unwrap();
        assert_eq!(
            (e.code, e.signal, e.oom_killed, e.reason),
            (3, None, false, "Error")
        );
        let e = ExitInfo::parse("status=9\nexited_at=x\noom_kill=1\n").unwrap();
        assert_eq!((e.code, e.signal, e.reason), (137, Some(9), "OOMKilled"));
        assert!(ExitInfo::parse("garbage").is_none());
    }

    #[test]
    fn own_process_is_alive_and_has_a_start_time() {
        let me = std::process::id() as i32;
        let (_, start) = proc_stat(me).unwrap();
        assert!(alive(me, start));
        assert!(!alive(me, start + 1));
    }
}
