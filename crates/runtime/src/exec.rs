//! Exec: a new process inside a running container, in its namespaces and cgroup, with the
//! given process spec (args, env, cwd, user, capabilities; the container's seccomp profile),
//! stdio inherited, piped or on a terminal, and its exit code.
//!
//! The caller's thread switches its `pid_for_children` namespace, clones, and switches back,
//! so the new process is a direct child of the caller (which reaps it) while living in the
//! container's PID namespace. The child joins the other namespaces itself and never allocates,
//! so exec may be called from a multi-threaded process (on a blocking thread).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use oci_spec::runtime::{LinuxNamespaceType, Process};

use crate::container::Runtime;
use crate::error::{Result, RuntimeError};
use crate::init::{self, Msg, Step};
use crate::launch::{pipe, read_status};
use crate::state::{self, Status};
use crate::{console, process, seccomp, spec};

/// How the exec'd process's stdio is wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecStdio {
    /// The caller's fds 0-2.
    #[default]
    Inherit,
    /// Three pipes, returned in [`ExecProcess`].
    Pipes,
    /// A terminal in the container's devpts; its master is returned in [`ExecProcess::pty`].
    Tty { rows: u16, cols: u16 },
}

/// What to run. Start from [`Runtime::exec_defaults`] to inherit the container's env, user
/// and capabilities.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub process: Process,
    pub stdio: ExecStdio,
}

/// A process running in a container.
#[derive(Debug)]
pub struct ExecProcess {
    pub pid: i32,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    /// The terminal's master side (read output, write input, [`ExecProcess::resize`]).
    pub pty: Option<File>,
}

impl ExecProcess {
    /// Waits for the process; returns its exit code (128 + signal when killed).
    pub fn wait(&mut self) -> Result<i32> {
        let mut st = 0;
        loop {
            // SAFETY: waitpid of our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut st, 0) };
            if r == self.pid {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(RuntimeError::sys("wait for exec process", e));
            }
        }
        Ok(if libc::WIFSIGNALED(st) {
            128 + libc::WTERMSIG(st)
        } else {
            libc::WEXITSTATUS(st)
        })
    }

    /// Sets the terminal size (rows, columns) of a TTY exec.
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        match &self.pty {
            Some(p) => console::resize(p.as_raw_fd(), rows, cols),
            None => Err(RuntimeError::sys(
                "resize",
                std::io::Error::other("the process has no terminal"),
            )),
        }
    }
}

fn open_ns(pid: i32, name: &str) -> Result<OwnedFd> {
    let p = format!("/proc/{pid}/ns/{name}");
    File::open(&p)
        .map(OwnedFd::from)
        .map_err(|e| RuntimeError::io("open", p, e))
}

fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills two descriptors we then own.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(RuntimeError::sys(
            "socketpair",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: both were just created.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Runtime {
    /// The container's own process spec, to adjust and pass to [`Runtime::exec`].
    pub fn exec_defaults(&self, id: &str) -> Result<Process> {
        Ok(self.record(id)?.1.process)
    }

    /// Starts `opts.process` inside the running container `id`.
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<ExecProcess> {
        let (sd, r) = self.record(id)?;
        let status = sd.status(&r);
        if status != Status::Running {
            return Err(RuntimeError::InvalidState {
                id: id.into(),
                status: status.to_string(),
                action: "exec (it is not running)",
            });
        }
        spec::check_process(&opts.process, "process")?;
        let program = match &r.seccomp {
            Some(s) => Some(seccomp::load_or_compile(s, &self.root().join(".seccomp"))?),
            None => None,
        };
        let mut plan = process::plan(&opts.process, program, "process")?;
        plan.oom_score_adj = None;
        // Namespaces, in setns order; the mount namespace last (it also changes the root).
        let mut join = Vec::new();
        let mut pid_ns = None;
        for kind in [
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Cgroup,
            LinuxNamespaceType::Mount,
        ] {
            if r.namespaces.iter().any(|(t, _)| *t == kind) {
                let (name, flag) = match kind {
                    LinuxNamespaceType::Ipc => ("ipc", libc::CLONE_NEWIPC),
                    LinuxNamespaceType::Uts => ("uts", libc::CLONE_NEWUTS),
                    LinuxNamespaceType::Network => ("net", libc::CLONE_NEWNET),
                    LinuxNamespaceType::Cgroup => ("cgroup", libc::CLONE_NEWCGROUP),
                    _ => ("mnt", libc::CLONE_NEWNS),
                };
                join.push((open_ns(r.pid, name)?, flag));
            }
        }
        if r.namespaces
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::Pid)
        {
            pid_ns = Some(open_ns(r.pid, "pid")?);
        }
        if !state::alive(r.pid, r.pid_start) {
            return Err(RuntimeError::InvalidState {
                id: id.into(),
                status: "stopped".into(),
                action: "exec",
            });
        }
        let tasks = r.cgroup.open_tasks()?;
        let cg_dir = r.cgroup.open_dir()?;
        let (status_r, status_w) = pipe()?;
        let mut parent_ends: [Option<File>; 3] = [None, None, None];
        let mut child_ends: [Option<OwnedFd>; 3] = [None, None, None];
        let mut tty_socks = None;
        match opts.stdio {
            ExecStdio::Inherit => {}
            ExecStdio::Pipes => {
                for (i, (pe, ce)) in parent_ends
                    .iter_mut()
                    .zip(child_ends.iter_mut())
                    .enumerate()
                {
                    let (rd, wr) = pipe()?;
                    let (mine, theirs) = if i == 0 { (wr, rd) } else { (rd, wr) };
                    *pe = Some(File::from(mine));
                    *ce = Some(theirs);
                }
            }
            ExecStdio::Tty { .. } => tty_socks = Some(socketpair()?),
        }
        let size = match opts.stdio {
            ExecStdio::Tty { rows, cols } if rows > 0 && cols > 0 => Some((rows, cols)),
            _ => None,
        };
        let own_pid_ns = File::open("/proc/thread-self/ns/pid_for_children")
            .map_err(|e| RuntimeError::io("open", "/proc/thread-self/ns/pid_for_children", e))?;
        let st = status_w.as_raw_fd();
        if let Some(ns) = &pid_ns {
            // SAFETY: setns on an open pid namespace: only future children of this thread.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
                return Err(RuntimeError::sys(
                    "join pid namespace",
                    std::io::Error::last_os_error(),
                ));
            }
        }
        let cloned = init::clone_into(0, cg_dir.as_ref().map(|f| f.as_raw_fd()));
        if let Ok(0) = cloned {
            child(
                &join,
                &tasks,
                &child_ends,
                tty_socks.as_ref().map(|(_, c)| c.as_raw_fd()),
                size,
                &plan,
                st,
            );
        }
        // SAFETY: back to our own pid namespace for later children of this thread.
        unsafe { libc::setns(own_pid_ns.as_raw_fd(), libc::CLONE_NEWPID) };
        let pid = cloned.map_err(|e| {
            RuntimeError::sys("clone exec process", std::io::Error::from_raw_os_error(e))
        })?;
        drop(status_w);
        drop(child_ends);
        let tty_parent = tty_socks.map(|(p, c)| {
            drop(c);
            p
        });
        if let Err(e) = read_status(status_r, &[]) {
            // SAFETY: reap the failed child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            return Err(e);
        }
        let pty = match tty_parent {
            Some(sock) => Some(File::from(console::recv_fd(sock.as_raw_fd())?)),
            None => None,
        };
        let [stdin, stdout, stderr] = parent_ends;
        Ok(ExecProcess {
            pid,
            stdin,
            stdout,
            stderr,
            pty,
        })
    }
}

/// The exec'd child: joins the container and execs. Never returns; never allocates.
fn child(
    join: &[(OwnedFd, libc::c_int)],
    tasks: &[OwnedFd],
    stdio: &[Option<OwnedFd>; 3],
    tty: Option<RawFd>,
    size: Option<(u16, u16)>,
    plan: &init::ProcessPlan,
    st: RawFd,
) -> ! {
    let fail = |step: Step, e: i32| -> ! {
        Msg::Error {
            step,
            index: 0,
            errno: e,
        }
        .send(st);
        // SAFETY: _exit in a forked child.
        unsafe { libc::_exit(126) }
    };
    if let Err(e) = crate::cgroups::Cgroup::join_self(tasks) {
        fail(Step::CgroupJoin, e);
    }
    for (fd, kind) in join {
        // SAFETY: setns on open namespace descriptors.
        if unsafe { libc::setns(fd.as_raw_fd(), *kind) } != 0 {
            fail(Step::Setns, crate::caps::errno());
        }
    }
    // SAFETY: setsid has no memory effects.
    unsafe { libc::setsid() };
    if let Some(sock) = tty {
        if let Err(e) = console::setup_in_container(sock, size) {
            fail(Step::Console, e);
        }
    } else {
        for (target, fd) in stdio.iter().enumerate() {
            if let Some(fd) = fd {
                // SAFETY: dup2 between open descriptors.
                if unsafe { libc::dup2(fd.as_raw_fd(), target as i32) } < 0 {
                    fail(Step::Stdio, crate::caps::errno());
                }
            }
        }
    }
    let exe = init::prepare_process(plan, st);
    Msg::Ready.send(st);
    init::exec_process(plan, exe, st)
}
