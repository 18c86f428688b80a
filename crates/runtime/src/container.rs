//! The runtime's operations on containers, by id, against a state root: create, start, run,
//! state, list, kill, delete, pause, resume, pids, stats. Each call is a short blocking
//! operation; none keeps a container's process as its own child except `run` in the
//! foreground.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroups::{CgroupMode, Stats};
use crate::error::{Result, RuntimeError};
use crate::init::StartMode;
use crate::launch::{self, ShimSpec, Stdio, Undo};
use crate::spec::{Bundle, check_id};
use crate::state::{self, ContainerState, ExitInfo, FIFO, StateDir, Status};

/// The runtime: a state root (like runc's `--root`) and the cgroup version to use.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    cgroup_mode: CgroupMode,
}

/// Options of `create` (and of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Unix socket that receives the terminal's master (`process.terminal`).
    pub console_socket: Option<PathBuf>,
    /// File to write the container's pid to.
    pub pid_file: Option<PathBuf>,
    /// Where stdout/stderr go (detached containers only).
    pub stdio: Stdio,
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("tmp-berth");
    std::fs::write(&tmp, pid.to_string()).map_err(|e| RuntimeError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| RuntimeError::io("rename", &tmp, e))
}

fn connect_console(path: &Path) -> Result<OwnedFd> {
    std::os::unix::net::UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(|e| RuntimeError::io("connect console socket", path, e))
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>, cgroup_mode: CgroupMode) -> Runtime {
        Runtime {
            root: root.into(),
            cgroup_mode,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn seccomp_cache(&self) -> PathBuf {
        self.root.join(".seccomp")
    }

    fn dir(&self, id: &str) -> Result<StateDir> {
        check_id(id)?;
        Ok(StateDir::new(&self.root, id))
    }

    /// Creates the container: namespaces, cgroup, filesystem, all ready; its program waits
    /// for [`Runtime::start`]. A shim becomes its parent and outlives the caller.
    pub fn create(&self, id: &str, bundle: &Path, opts: &CreateOptions) -> Result<ContainerState> {
        let sd = self.dir(id)?;
        let b = Bundle::load(bundle)?;
        sd.create()?;
        let mut undo = Undo {
            cgroup: None,
            state: Some(&sd),
            pids: vec![],
        };
        let console = opts
            .console_socket
            .as_deref()
            .map(connect_console)
            .transpose()?;
        let fifo = sd.dir.join(FIFO);
        let fifo_c = CString::new(fifo.as_os_str().as_bytes()).unwrap_or_default();
        // SAFETY: mkfifo with a NUL-terminated path.
        if unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o622) } != 0 {
            return Err(RuntimeError::io(
                "mkfifo",
                &fifo,
                std::io::Error::last_os_error(),
            ));
        }
        let dirfd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&sd.dir)
            .map(OwnedFd::from)
            .map_err(|e| RuntimeError::io("open", &sd.dir, e))?;
        let mut p = launch::prepare(
            id,
            &b,
            self.cgroup_mode,
            &self.seccomp_cache(),
            StartMode::Fifo(dirfd),
            console,
        )?;
        undo.cgroup = Some(p.cgroup.clone());
        let image = crate::shim_image::open(&self.root)?;
        let devnull = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| RuntimeError::io("open", "/dev/null", e))?;
        let log = match &opts.stdio {
            Stdio::Log(l) => Some(l),
            Stdio::Inherit => None,
        };
        let shim = ShimSpec {
            image: &image,
            exit_file: sd.dir.join(state::EXIT_FILE),
            log,
            oom_file: p.cgroup.oom_file(),
            devnull,
        };
        let pid = launch::spawn_with_shim(&mut p, &shim)?;
        undo.pids.push(pid);
        let mut record = p.record;
        record.pid = pid;
        record.pid_start = state::proc_stat(pid).map(|s| s.1).unwrap_or(0);
        record.log_path = log.map(|l| l.path.clone());
        record.shim = state::proc_ppid(pid).and_then(|s| Some((s, state::proc_stat(s)?.1)));
        sd.write(&record)?;
        if let Some(pf) = &opts.pid_file {
            write_pid_file(pf, pid)?;
        }
        undo.disarm();
        Ok(sd.view(&record))
    }

    /// Lets a created container's program run.
    pub fn start(&self, id: &str) -> Result<()> {
        let sd = self.dir(id)?;
        let r = sd.read()?;
        let status = sd.status(&r);
        if status != Status::Created {
            return Err(RuntimeError::InvalidState {
                id: id.into(),
                status: status.to_string(),
                action: "start (it is not created)",
            });
        }
        let fifo = sd.dir.join(FIFO);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo)
            .map_err(|e| RuntimeError::io("open", &fifo, e))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut pfd = libc::pollfd {
                fd: f.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, 100) };
            if n > 0 {
                let mut b = [0u8; 1];
                // SAFETY: reading one byte into a stack buffer.
                if unsafe { libc::read(f.as_raw_fd(), b.as_mut_ptr().cast(), 1) } == 1 {
                    break;
                }
            }
            if !state::alive(r.pid, r.pid_start) {
                return Err(RuntimeError::InvalidState {
                    id: id.into(),
                    status: "stopped".into(),
                    action: "start",
                });
            }
            if Instant::now() > deadline {
                return Err(RuntimeError::sys(
                    "start",
                    std::io::Error::from(std::io::ErrorKind::TimedOut),
                ));
            }
        }
        std::fs::remove_file(&fifo).map_err(|e| RuntimeError::io("remove", &fifo, e))
    }

    /// Creates and runs a container in the foreground as the caller's child, with the
    /// caller's stdio; forwards termination signals; deletes it after it exits unless `keep`.
    /// Returns how it exited.
    pub fn run(
        &self,
        id: &str,
        bundle: &Path,
        opts: &CreateOptions,
        keep: bool,
    ) -> Result<ExitInfo> {
        let sd = self.dir(id)?;
        let b = Bundle::load(bundle)?;
        sd.create()?;
        let mut undo = Undo {
            cgroup: None,
            state: Some(&sd),
            pids: vec![],
        };
        let console = opts
            .console_socket
            .as_deref()
            .map(connect_console)
            .transpose()?;
        let p = launch::prepare(
            id,
            &b,
            self.cgroup_mode,
            &self.seccomp_cache(),
            StartMode::Immediate,
            console,
        )?;
        undo.cgroup = Some(p.cgroup.clone());
        let signals = crate::signals::Forwarder::block()?;
        let pid = launch::spawn_direct(&p)?;
        undo.pids.push(pid);
        let mut record = p.record;
        record.pid = pid;
        record.pid_start = state::proc_stat(pid).map(|s| s.1).unwrap_or(0);
        sd.write(&record)?;
        if let Some(pf) = &opts.pid_file {
            write_pid_file(pf, pid)?;
        }
        let status = signals.wait_forwarding(pid)?;
        drop(signals);
        undo.pids.clear();
        let info =
            ExitInfo::from_wait_status(status, state::now_rfc3339(), p.cgroup.oom_kills() as i64);
        if keep {
            sd.write_exit(status, &info)?;
            undo.disarm();
        } else {
            undo.disarm();
            p.cgroup.remove(Duration::from_secs(10))?;
            sd.remove()?;
        }
        Ok(info)
    }

    /// The runc-style state of one container.
    pub fn state(&self, id: &str) -> Result<ContainerState> {
        let sd = self.dir(id)?;
        let r = sd.read()?;
        Ok(sd.view(&r))
    }

    /// How the container exited, once it has.
    pub fn exit_info(&self, id: &str) -> Result<Option<ExitInfo>> {
        let sd = self.dir(id)?;
        sd.read()?;
        Ok(sd.exit_info())
    }

    /// Every container under the root.
    pub fn list(&self) -> Result<Vec<ContainerState>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(RuntimeError::io("read", &self.root, e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || check_id(&name).is_err() {
                continue;
            }
            let sd = StateDir::new(&self.root, &name);
            match sd.read() {
                Ok(r) => out.push(sd.view(&r)),
                Err(err) if err.is_not_found() => {}
                Err(err) => tracing::warn!(id = %name, error = %err, "unreadable container state"),
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Sends `signal` to the container's init, or with `all` to every process in it.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let sd = self.dir(id)?;
        let r = sd.read()?;
        let status = sd.status(&r);
        if status == Status::Stopped {
            return Err(RuntimeError::InvalidState {
                id: id.into(),
                status: status.to_string(),
                action: "kill (container not running)",
            });
        }
        if all {
            return r.cgroup.signal_all(signal);
        }
        signal_pid(r.pid, r.pid_start, signal)
    }

    /// Removes a stopped (or created) container; with `force`, kills a running one first.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let sd = self.dir(id)?;
        let r = match sd.read() {
            Ok(r) => r,
            Err(e) if e.is_not_found() && sd.dir.exists() && force => return sd.remove(),
            Err(e) => return Err(e),
        };
        let status = sd.status(&r);
        match status {
            Status::Stopped => {}
            Status::Created | Status::Creating => r.cgroup.signal_all(libc::SIGKILL)?,
            Status::Running | Status::Paused if force => r.cgroup.signal_all(libc::SIGKILL)?,
            Status::Running | Status::Paused => {
                return Err(RuntimeError::InvalidState {
                    id: id.into(),
                    status: status.to_string(),
                    action: "delete (it is not stopped; use force)",
                });
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while state::alive(r.pid, r.pid_start) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        // The shim records the exit into this directory: let it finish first.
        let shim_deadline = Instant::now() + Duration::from_secs(2);
        while status != Status::Stopped
            && sd.exit_info().is_none()
            && Instant::now() < shim_deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        r.cgroup.remove(Duration::from_secs(10))?;
        sd.remove()
    }

    /// Freezes every process of a running container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let sd = self.dir(id)?;
        let r = sd.read()?;
        let status = sd.status(&r);
        if status != Status::Running {
            return Err(RuntimeError::InvalidState {
                id: id.into(),
                status: status.to_string(),
                action: "pause (it is not running)",
            });
        }
        r.cgroup.set_frozen(true)
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let sd = self.dir(id)?;
        let r = sd.read()?;
        let status = sd.status(&r);
        if status != Status::Paused {
            return Err(RuntimeError::InvalidState {
                id: id.into(),
                status: status.to_string(),
                action: "resume (it is not paused)",
            });
        }
        r.cgroup.set_frozen(false)
    }

    /// Host pids of every process in the container.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let sd = self.dir(id)?;
        sd.read()?.cgroup.pids()
    }

    /// CPU, memory and pids usage of the container.
    pub fn stats(&self, id: &str) -> Result<Stats> {
        let sd = self.dir(id)?;
        Ok(sd.read()?.cgroup.stats())
    }

    /// The memory cgroup's OOM-kill count.
    pub fn oom_kills(&self, id: &str) -> Result<u64> {
        let sd = self.dir(id)?;
        Ok(sd.read()?.cgroup.oom_kills())
    }

    pub(crate) fn record(&self, id: &str) -> Result<(StateDir, state::Record)> {
        let sd = self.dir(id)?;
        let r = sd.read()?;
        Ok((sd, r))
    }
}

/// Signals `pid` through a pidfd after checking it is still the process that started at
/// `start`, so a recycled pid is never hit.
pub(crate) fn signal_pid(pid: i32, start: u64, signal: i32) -> Result<()> {
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(RuntimeError::sys(
            format!("pidfd_open {pid}"),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd was just returned by pidfd_open.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if !state::alive(pid, start) {
        return Err(RuntimeError::sys(
            format!("kill {pid}"),
            std::io::Error::from_raw_os_error(libc::ESRCH),
        ));
    }
    // SAFETY: pidfd_send_signal with a valid pidfd and no siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r != 0 {
        return Err(RuntimeError::sys(
            format!("kill {pid}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}
