//! Turning a checked bundle into a running init: the cgroup, the prepared [`InitPlan`], the
//! clone (directly as the caller's child, or under a shim), the status protocol, and undoing
//! everything if any step fails.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxNamespaceType;

use crate::cgroups::{Cgroup, CgroupMode};
use crate::error::{Result, RuntimeError};
use crate::init::{self, InitPlan, Msg, StartMode};
use crate::spec::Bundle;
use crate::state::{Record, StateDir};
use crate::{mounts, process, seccomp};

/// Where the container's stdout and stderr go.
#[derive(Debug, Clone, Default)]
pub enum Stdio {
    /// The caller's descriptors (runc's behaviour).
    #[default]
    Inherit,
    /// A CRI-format log file written by the shim.
    Log(LogConfig),
}

/// A CRI log file and its rotation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LogConfig {
    pub path: PathBuf,
    /// Rotate when the file would grow beyond this many bytes (0: never).
    pub max_size: u64,
    /// Files kept, the live one included (at least 1).
    pub max_files: u32,
}

pub(crate) struct Prepared {
    pub plan: InitPlan,
    pub cgroup: Cgroup,
    pub record: Record,
    pub pid_ns: Option<OwnedFd>,
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(RuntimeError::sys("pipe2", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn open_ns(path: &Path, field: String) -> Result<OwnedFd> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| RuntimeError::spec(field, format!("{}: {e}", path.display())))
}

fn ns_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80,
    }
}

/// Creates the cgroup and prepares everything the init needs. On error, nothing remains.
pub(crate) fn prepare(
    id: &str,
    b: &Bundle,
    mode: CgroupMode,
    seccomp_cache: &Path,
    start: StartMode,
    console: Option<OwnedFd>,
) -> Result<Prepared> {
    let spec = &b.spec;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| RuntimeError::spec("linux", "is required"))?;
    let mut clone_flags = 0u64;
    let mut unshare_cgroupns = false;
    let mut join = Vec::new();
    let mut pid_ns = None;
    let mut namespaces = Vec::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        namespaces.push((ns.typ(), ns.path().clone()));
        let flag = ns_flag(ns.typ());
        match (ns.typ(), ns.path()) {
            (LinuxNamespaceType::Mount, Some(_)) => {
                return Err(RuntimeError::spec(
                    format!("linux.namespaces[{i}].path"),
                    "joining a mount namespace is not supported",
                ));
            }
            (LinuxNamespaceType::Pid, Some(p)) => {
                pid_ns = Some(open_ns(p, format!("linux.namespaces[{i}].path"))?)
            }
            (_, Some(p)) => join.push((open_ns(p, format!("linux.namespaces[{i}].path"))?, flag)),
            (LinuxNamespaceType::Cgroup, None) => unshare_cgroupns = true,
            (_, None) => clone_flags |= flag as u64,
        }
    }
    let has_new = |t: LinuxNamespaceType| {
        linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == t && n.path().is_none())
    };
    let has_any = |t: LinuxNamespaceType| linux.namespaces().iter().flatten().any(|n| n.typ() == t);
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !has_any(LinuxNamespaceType::Uts)
    {
        return Err(RuntimeError::spec(
            "hostname",
            "setting a hostname needs a UTS namespace",
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::spec("process", "is required"))?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && console.is_none() {
        return Err(RuntimeError::spec(
            "process.terminal",
            "a terminal needs a console socket (--console-socket)",
        ));
    }
    let program = match linux.seccomp() {
        Some(s) => Some(seccomp::load_or_compile(s, seccomp_cache)?),
        None => None,
    };
    let process_plan = process::plan(process, program, "process")?;

    let wants_cpuset = linux
        .resources()
        .as_ref()
        .and_then(|r| r.cpu().as_ref())
        .is_some_and(|c| c.cpus().is_some() || c.mems().is_some());
    let cgroups_path = linux
        .cgroups_path()
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("/berth/{id}"));
    let cgroup = crate::cgroups::resolve(mode, &cgroups_path, wants_cpuset)?;
    let fs = mounts::plan(
        spec,
        &b.dir,
        &b.rootfs,
        &cgroup,
        has_new(LinuxNamespaceType::Network),
    )?;
    cgroup.create(linux.resources().as_ref())?;
    let opened = cgroup
        .open_tasks()
        .and_then(|t| Ok((t, cgroup.open_dir()?)));
    let (cgroup_tasks, cgroup_dir) = match opened {
        Ok(v) => v,
        Err(e) => {
            let _ = cgroup.remove(Duration::from_secs(1));
            return Err(e);
        }
    };
    let hostname = spec
        .hostname()
        .as_ref()
        .filter(|h| !h.is_empty())
        .map(|h| CString::new(h.as_str()).unwrap_or_default());
    let domainname = spec
        .domainname()
        .as_ref()
        .filter(|h| !h.is_empty())
        .map(|h| CString::new(h.as_str()).unwrap_or_default());
    let console_size = process
        .console_size()
        .map(|b| (b.height() as u16, b.width() as u16));
    let record = Record {
        id: id.into(),
        pid: 0,
        pid_start: 0,
        bundle: b.dir.clone(),
        rootfs: b.rootfs.clone(),
        created: crate::state::now_rfc3339(),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        cgroup: cgroup.clone(),
        process: process.clone(),
        namespaces,
        seccomp: linux.seccomp().clone(),
        log_path: None,
        shim: None,
    };
    Ok(Prepared {
        plan: InitPlan {
            clone_flags,
            unshare_cgroupns,
            join,
            cgroup_tasks,
            cgroup_dir,
            hostname,
            domainname,
            fs,
            process: process_plan,
            stdio: [None; 3],
            console,
            console_size,
            start,
        },
        cgroup,
        record,
        pid_ns,
    })
}

/// Undoes a half-made container when dropped, unless disarmed.
pub(crate) struct Undo<'a> {
    pub cgroup: Option<Cgroup>,
    pub state: Option<&'a StateDir>,
    pub pids: Vec<i32>,
}

impl Undo<'_> {
    pub fn disarm(&mut self) {
        self.cgroup = None;
        self.state = None;
        self.pids.clear();
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        for pid in &self.pids {
            // SAFETY: kill and a non-blocking reap of a process this runtime started.
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
                libc::waitpid(*pid, std::ptr::null_mut(), libc::WNOHANG);
            }
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.signal_all(libc::SIGKILL);
            if let Err(e) = cg.remove(Duration::from_secs(10)) {
                tracing::warn!(error = %e, "cleanup after failed create");
            }
        }
        if let Some(s) = self.state {
            let _ = s.remove();
        }
        for pid in &self.pids {
            // SAFETY: blocking reap of our own child (ECHILD if it is not ours: harmless).
            unsafe { libc::waitpid(*pid, std::ptr::null_mut(), 0) };
        }
    }
}

/// Reads the status pipe to its end. Returns the pid a shim-side cloner reported (if any).
pub(crate) fn read_status(fd: OwnedFd, names: &[String]) -> Result<Option<i32>> {
    let mut f = std::fs::File::from(fd);
    let mut pid = None;
    let mut ready = false;
    let mut error = None;
    loop {
        let mut buf = [0u8; 12];
        match std::io::Read::read_exact(&mut f, &mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(RuntimeError::sys("read init status", e)),
        }
        match Msg::decode(&buf) {
            Some(Msg::Ready) => ready = true,
            Some(Msg::Pid(p)) => pid = Some(p),
            Some(Msg::Warn { step, index, errno }) => {
                tracing::warn!(step = %init::describe(step, index, names), error = %std::io::Error::from_raw_os_error(errno), "container setup");
            }
            Some(Msg::Error { step, index, errno }) => {
                error.get_or_insert(RuntimeError::Setup {
                    step: init::describe(step, index, names),
                    source: std::io::Error::from_raw_os_error(errno),
                });
            }
            None => {}
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    if !ready {
        return Err(RuntimeError::Setup {
            step: "container init".into(),
            source: std::io::Error::other("exited before finishing its setup"),
        });
    }
    Ok(pid)
}

fn set_pid_ns(fd: Option<&OwnedFd>) -> Result<()> {
    if let Some(fd) = fd {
        // SAFETY: setns on an open pid namespace descriptor; affects only future children.
        if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
            return Err(RuntimeError::spec(
                "linux.namespaces (pid).path",
                std::io::Error::last_os_error().to_string(),
            ));
        }
    }
    Ok(())
}

/// Clones the init as the caller's own child. Returns its pid once its setup is done (and, for
/// an immediate start, once its program was exec'd).
pub(crate) fn spawn_direct(p: &Prepared) -> Result<i32> {
    let (r, w) = pipe()?;
    set_pid_ns(p.pid_ns.as_ref())?;
    let cg = p.plan.cgroup_dir.as_ref().map(|f| f.as_raw_fd());
    // v2 needs clone3's CLONE_INTO_CGROUP; otherwise share memory until exec (vfork).
    let cloned = match cg {
        Some(_) => init::clone_into(p.plan.clone_flags, cg),
        None => init::clone_vfork(p.plan.clone_flags, &p.plan, w.as_raw_fd()),
    };
    match cloned {
        Ok(0) => init::run_init(&p.plan, w.as_raw_fd()),
        Ok(pid) => {
            drop(w);
            match read_status(r, &p.plan.fs.step_names) {
                Ok(_) => Ok(pid),
                Err(e) => {
                    // SAFETY: reap our failed child.
                    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                    Err(e)
                }
            }
        }
        Err(e) => Err(RuntimeError::sys(
            "clone container init",
            std::io::Error::from_raw_os_error(e),
        )),
    }
}

/// What the shim is told.
pub(crate) struct ShimSpec<'a> {
    pub image: &'a OwnedFd,
    pub exit_file: PathBuf,
    pub log: Option<&'a LogConfig>,
    pub oom_file: Option<PathBuf>,
    pub devnull: OwnedFd,
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// Starts the init under a new shim: a detached process clones the init, then execs the shim
/// image, which therefore stays the init's parent. Returns the init's pid after its setup.
pub(crate) fn spawn_with_shim(p: &mut Prepared, shim: &ShimSpec) -> Result<i32> {
    let (r, w) = pipe()?;
    let logs = match shim.log {
        Some(_) => Some((pipe()?, pipe()?)),
        None => None,
    };
    if let Some(((_, ow), (_, ew))) = &logs {
        p.plan.stdio = [
            Some(shim.devnull.as_raw_fd()),
            Some(ow.as_raw_fd()),
            Some(ew.as_raw_fd()),
        ];
    }
    let fd_arg = |f: Option<RawFd>| CString::new(f.unwrap_or(-1).to_string()).unwrap_or_default();
    let out_r = logs.as_ref().map(|((r, _), _)| r.as_raw_fd());
    let err_r = logs.as_ref().map(|(_, (r, _))| r.as_raw_fd());
    let dash = || CString::new("-").unwrap_or_default();
    let args: Vec<CString> = vec![
        CString::new("berth-shim").unwrap_or_default(),
        c_path(&shim.exit_file),
        dash(), // the pid, filled in by the cloner
        shim.log.map_or_else(dash, |l| c_path(&l.path)),
        CString::new(shim.log.map_or(0, |l| l.max_size).to_string()).unwrap_or_default(),
        CString::new(shim.log.map_or(1, |l| l.max_files).to_string()).unwrap_or_default(),
        fd_arg(out_r),
        fd_arg(err_r),
        shim.oom_file.as_deref().map_or_else(dash, c_path),
    ];
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let cg = p.plan.cgroup_dir.as_ref().map(|f| f.as_raw_fd());
    let st = w.as_raw_fd();
    let mut keep: Vec<RawFd> = [Some(st), out_r, err_r]
        .into_iter()
        .flatten()
        .chain(
            logs.iter()
                .flat_map(|((_, ow), (_, ew))| [ow.as_raw_fd(), ew.as_raw_fd()]),
        )
        .chain([shim.image.as_raw_fd(), shim.devnull.as_raw_fd()])
        .chain(plan_fds(&p.plan))
        .chain(p.pid_ns.as_ref().map(|f| f.as_raw_fd()))
        .collect();
    keep.sort_unstable();

    match init::clone_into(0, None) {
        Ok(0) => {
            // The middle process: drop every descriptor of the caller it does not pass on (a
            // container waiting for `start` must not hold its creator's pipes or sockets),
            // fork the future shim and exit, so the shim is nobody's child but init's (or a
            // subreaper's) and outlives the caller.
            close_all_but(&keep);
            match init::clone_into(0, None) {
                Ok(0) => {}
                Ok(_) => unsafe_exit(0),
                Err(e) => {
                    Msg::Error {
                        step: init::Step::Clone,
                        index: 0,
                        errno: e,
                    }
                    .send(st);
                    unsafe_exit(1)
                }
            }
            // SAFETY: setsid has no memory effects.
            unsafe { libc::setsid() };
            if let Some(fd) = &p.pid_ns {
                // SAFETY: as in set_pid_ns.
                unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) };
            }
            let pid = match init::clone_into(p.plan.clone_flags, cg) {
                Ok(0) => init::run_init(&p.plan, st),
                Ok(pid) => pid,
                Err(e) => {
                    Msg::Error {
                        step: init::Step::Clone,
                        index: 0,
                        errno: e,
                    }
                    .send(st);
                    unsafe_exit(1)
                }
            };
            Msg::Pid(pid).send(st);
            let mut pidbuf = [0u8; 16];
            let n = format_pid(&mut pidbuf, pid);
            argv[2] = pidbuf[..=n].as_ptr().cast();
            // The shim keeps the container's mount namespace referenced (an fd it never
            // closes): when the init exits, tearing the mounts down then happens as the shim
            // exits, after it has recorded the exit status, not before the shim learns of it.
            let mut nspath = [0u8; 40];
            let prefix = b"/proc/";
            nspath[..prefix.len()].copy_from_slice(prefix);
            nspath[prefix.len()..prefix.len() + n].copy_from_slice(&pidbuf[..n]);
            let suffix = b"/ns/mnt\0";
            nspath[prefix.len() + n..prefix.len() + n + suffix.len()].copy_from_slice(suffix);
            // SAFETY: opening a NUL-terminated path; the descriptor is inherited by the shim.
            unsafe { libc::open(nspath.as_ptr().cast(), libc::O_RDONLY) };
            // SAFETY: descriptor juggling, then execveat of the shim image with
            // NULL-terminated vectors; on failure the init is killed.
            unsafe {
                if let Some(((_, ow), (_, ew))) = &logs {
                    libc::close(ow.as_raw_fd());
                    libc::close(ew.as_raw_fd());
                }
                for t in 0..3 {
                    libc::dup2(shim.devnull.as_raw_fd(), t);
                }
                for fd in [out_r, err_r].into_iter().flatten() {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                }
                libc::syscall(
                    libc::SYS_execveat,
                    shim.image.as_raw_fd(),
                    c"".as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    libc::AT_EMPTY_PATH,
                );
                let e = crate::caps::errno();
                libc::kill(pid, libc::SIGKILL);
                Msg::Error {
                    step: init::Step::ShimExec,
                    index: 0,
                    errno: e,
                }
                .send(st);
                libc::_exit(1)
            }
        }
        Ok(middle) => {
            drop(w);
            drop(logs);
            // SAFETY: reap the middle process, which exits right away.
            unsafe { libc::waitpid(middle, std::ptr::null_mut(), 0) };
            let pid = read_status(r, &p.plan.fs.step_names);
            match pid {
                Ok(Some(pid)) => Ok(pid),
                Ok(None) => Err(RuntimeError::Setup {
                    step: "starting the shim".into(),
                    source: std::io::Error::other("no container pid reported"),
                }),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(RuntimeError::sys(
            "fork",
            std::io::Error::from_raw_os_error(e),
        )),
    }
}

/// The descriptors an init plan hands to the init.
fn plan_fds(plan: &InitPlan) -> impl Iterator<Item = RawFd> + '_ {
    let start = match &plan.start {
        StartMode::Fifo(fd) => Some(fd.as_raw_fd()),
        StartMode::Immediate => None,
    };
    plan.join
        .iter()
        .map(|(fd, _)| fd.as_raw_fd())
        .chain(plan.cgroup_tasks.iter().map(AsRawFd::as_raw_fd))
        .chain(plan.cgroup_dir.as_ref().map(AsRawFd::as_raw_fd))
        .chain(plan.console.as_ref().map(AsRawFd::as_raw_fd))
        .chain(start)
}

/// Closes every descriptor above 2 except those in `keep` (sorted). Async-signal-safe: for a
/// forked child of a multi-threaded caller.
fn close_all_but(keep: &[RawFd]) {
    let close_range = |lo: RawFd, hi: u32| {
        // SAFETY: close_range only closes descriptors of this (forked) process.
        unsafe { libc::syscall(libc::SYS_close_range, lo as u32, hi, 0u32) };
    };
    let mut lo: RawFd = 3;
    for &fd in keep {
        if fd > lo {
            close_range(lo, (fd - 1) as u32);
        }
        lo = lo.max(fd + 1);
    }
    close_range(lo, u32::MAX);
}

fn unsafe_exit(code: i32) -> ! {
    // SAFETY: _exit never returns and runs no destructors (we are a forked child).
    unsafe { libc::_exit(code) }
}

/// Writes `pid` in decimal plus a NUL into `buf`; returns the index of the NUL.
fn format_pid(buf: &mut [u8; 16], pid: i32) -> usize {
    let mut digits = [0u8; 12];
    let mut n = pid.max(0) as u32;
    let mut k = digits.len();
    loop {
        k -= 1;
        digits[k] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let d = &digits[k..];
    buf[..d.len()].copy_from_slice(d);
    buf[d.len()] = 0;
    d.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_format_with_nul() {
        let mut b = [0u8; 16];
        let n = format_pid(&mut b, 40321);
        assert_eq!(&b[..=n], b"40321\0");
    }
}
