//! The container's init: everything between `clone` and `execve`, prepared in the parent as an
//! [`InitPlan`] and carried out by [`run_init`] without allocating, so it is safe in a child of
//! any process. Progress and failures go back to the parent over a pipe as fixed-size records
//! that name the step (and the spec entry) that failed.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use libc::c_char;

use crate::caps::{self, CapMasks, errno};
use crate::mounts::{self, FsPlan};
use crate::seccomp::Program;

/// Steps the init reports in errors and warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Step {
    CgroupJoin = 1,
    Setns,
    UnshareCgroup,
    RootPropagation,
    RootBind,
    Mount,
    Device,
    Pivot,
    Sysctl,
    Mask,
    Readonly,
    RootReadonly,
    Hostname,
    Domainname,
    Rlimit,
    OomScoreAdj,
    Cwd,
    ExecLookup,
    Console,
    Stdio,
    StartFifo,
    NoNewPrivs,
    Seccomp,
    Groups,
    Gid,
    Uid,
    Caps,
    Exec,
    Clone,
    ShimExec,
}

impl Step {
    fn from_u32(v: u32) -> Option<Step> {
        use Step::*;
        const ALL: [Step; 30] = [
            CgroupJoin,
            Setns,
            UnshareCgroup,
            RootPropagation,
            RootBind,
            Mount,
            Device,
            Pivot,
            Sysctl,
            Mask,
            Readonly,
            RootReadonly,
            Hostname,
            Domainname,
            Rlimit,
            OomScoreAdj,
            Cwd,
            ExecLookup,
            Console,
            Stdio,
            StartFifo,
            NoNewPrivs,
            Seccomp,
            Groups,
            Gid,
            Uid,
            Caps,
            Exec,
            Clone,
            ShimExec,
        ];
        ALL.into_iter().find(|s| *s as u32 == v)
    }
}

/// A record on the status pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Msg {
    /// The init finished its setup and waits to be started (or execs right away).
    Ready,
    /// Setup failed at `step` (for list steps, at entry `index`) with `errno`.
    Error { step: Step, index: u32, errno: i32 },
    /// A step failed in a way the container tolerates (e.g. a negative oom_score_adj here).
    Warn { step: Step, index: u32, errno: i32 },
    /// The container's pid, from the process that cloned it.
    Pid(i32),
}

impl Msg {
    fn encode(self) -> [u8; 12] {
        let (tag, a, b): (u32, i32, i32) = match self {
            Msg::Ready => (1, 0, 0),
            Msg::Error { step, index, errno } => {
                (2, ((step as u32) << 20 | (index & 0xfffff)) as i32, errno)
            }
            Msg::Warn { step, index, errno } => {
                (4, ((step as u32) << 20 | (index & 0xfffff)) as i32, errno)
            }
            Msg::Pid(p) => (3, p, 0),
        };
        let mut out = [0u8; 12];
        out[..4].copy_from_slice(&tag.to_ne_bytes());
        out[4..8].copy_from_slice(&a.to_ne_bytes());
        out[8..].copy_from_slice(&b.to_ne_bytes());
        out
    }

    pub(crate) fn decode(b: &[u8; 12]) -> Option<Msg> {
        let tag = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let a = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        let e = i32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
        let step = || Step::from_u32((a as u32) >> 20);
        let index = (a as u32) & 0xfffff;
        Some(match tag {
            1 => Msg::Ready,
            2 => Msg::Error {
                step: step()?,
                index,
                errno: e,
            },
            3 => Msg::Pid(a),
            4 => Msg::Warn {
                step: step()?,
                index,
                errno: e,
            },
            _ => return None,
        })
    }

    /// Writes the record (atomically: it is smaller than PIPE_BUF). Async-signal-safe.
    pub(crate) fn send(self, fd: RawFd) {
        let b = self.encode();
        // SAFETY: writing a 12-byte stack buffer.
        unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
    }
}

/// Who the process runs as.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
    pub umask: libc::mode_t,
}

/// The program to exec and the credentials and limits it runs with (shared with exec).
#[derive(Debug)]
pub(crate) struct ProcessPlan {
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// Paths to try for `argv[0]`, in `$PATH` order.
    pub candidates: Vec<CString>,
    pub cwd: CString,
    pub identity: Identity,
    pub caps: CapMasks,
    pub last_cap: u32,
    pub no_new_privs: bool,
    pub seccomp: Option<Program>,
    pub rlimits: Vec<(u32, libc::rlimit)>,
    pub oom_score_adj: Option<CString>,
}

/// Where the init waits before exec'ing the program.
#[derive(Debug)]
pub(crate) enum StartMode {
    /// Exec right after setup (`run` in the foreground).
    Immediate,
    /// Block opening `exec.fifo` in this state directory until `start` opens it for reading.
    Fifo(OwnedFd),
}

#[derive(Debug)]
pub(crate) struct InitPlan {
    /// `CLONE_NEW*` flags for clone (the cgroup namespace is unshared after joining cgroups).
    pub clone_flags: u64,
    pub unshare_cgroupns: bool,
    /// Namespaces to join (`setns`), with their `CLONE_NEW*` type.
    pub join: Vec<(OwnedFd, libc::c_int)>,
    pub cgroup_tasks: Vec<OwnedFd>,
    pub cgroup_dir: Option<OwnedFd>,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    pub fs: FsPlan,
    pub process: ProcessPlan,
    /// Descriptors to install as fds 0, 1, 2 (`None`: keep the inherited one).
    pub stdio: [Option<RawFd>; 3],
    /// Unix socket to send a terminal's master side to (`process.terminal`).
    pub console: Option<OwnedFd>,
    pub console_size: Option<(u16, u16)>,
    pub start: StartMode,
}

/// Sends the error and exits. Async-signal-safe.
fn fail(status: RawFd, step: Step, index: usize, errno: i32) -> ! {
    Msg::Error {
        step,
        index: index as u32,
        errno,
    }
    .send(status);
    // SAFETY: _exit never returns and runs no destructors.
    unsafe { libc::_exit(1) }
}

fn check(status: RawFd, step: Step, r: std::result::Result<(), i32>) {
    if let Err(e) = r {
        fail(status, step, 0, e);
    }
}

fn sys(r: libc::c_int) -> std::result::Result<(), i32> {
    if r < 0 { Err(errno()) } else { Ok(()) }
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Forks the calling process into new namespaces (fork semantics: the child returns 0), into
/// the cgroup directory `cgroup` when given (v2). The caller must be ready for the child to
/// run without allocating.
pub(crate) fn clone_into(
    flags: u64,
    cgroup: Option<RawFd>,
) -> std::result::Result<libc::pid_t, i32> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 with a valid clone_args and no new stack behaves like fork.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r >= 0 {
        return Ok(r as libc::pid_t);
    }
    let e = errno();
    if e != libc::ENOSYS || cgroup.is_some() {
        return Err(e);
    }
    // SAFETY: clone with a NULL stack behaves like fork.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as u64,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r as libc::pid_t)
    }
}

/// Like [`clone_into`] but with `CLONE_VM | CLONE_VFORK`: the child runs `run_init` on its
/// own stack in the caller's memory, and the caller sleeps until the child execs or exits. No
/// page tables are copied and no copy-on-write faults follow, which makes a foreground `run`
/// cheaper; the caller learns the outcome from the status pipe as usual.
pub(crate) fn clone_vfork(
    flags: u64,
    plan: &InitPlan,
    st: RawFd,
) -> std::result::Result<libc::pid_t, i32> {
    struct Arg<'a> {
        plan: &'a InitPlan,
        st: RawFd,
    }
    extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` points at the Arg on the caller's stack, which is suspended (vfork)
        // and so stays valid until this child execs or exits.
        let a = unsafe { &*(arg as *const Arg) };
        run_init(a.plan, a.st)
    }
    const STACK: usize = 256 * 1024;
    let mut stack = vec![0u8; STACK];
    // The stack grows down on every supported architecture; keep it 16-byte aligned.
    let top = (stack.as_mut_ptr() as usize + STACK) & !15;
    let mut arg = Arg { plan, st };
    // SAFETY: glibc's clone runs `child` on the given stack; CLONE_VFORK keeps `stack` and
    // `arg` alive until the child no longer uses them.
    let pid = unsafe {
        libc::clone(
            child,
            top as *mut libc::c_void,
            (flags as libc::c_int) | libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &mut arg as *mut Arg as *mut libc::c_void,
        )
    };
    drop(stack);
    if pid < 0 { Err(errno()) } else { Ok(pid) }
}

/// Runs in the cloned child: sets up the container and execs its program, reporting on the
/// status pipe `st`. Never returns.
pub(crate) fn run_init(plan: &InitPlan, st: RawFd) -> ! {
    // SAFETY: umask and setsid have no memory effects.
    unsafe {
        libc::umask(0);
        libc::setsid();
    }
    check(
        st,
        Step::CgroupJoin,
        crate::cgroups::Cgroup::join_self(&plan.cgroup_tasks),
    );
    for (fd, kind) in &plan.join {
        // SAFETY: setns on an open namespace descriptor.
        check(
            st,
            Step::Setns,
            sys(unsafe { libc::setns(fd.as_raw_fd(), *kind) }),
        );
    }
    if plan.unshare_cgroupns {
        // SAFETY: unshare with a flag.
        check(
            st,
            Step::UnshareCgroup,
            sys(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) }),
        );
    }
    let root = match mounts::prepare_root(&plan.fs) {
        Ok(fd) => fd,
        Err((1, e)) => fail(st, Step::RootPropagation, 0, e),
        Err((_, e)) => fail(st, Step::RootBind, 0, e),
    };
    for s in &plan.fs.steps {
        if let Err(e) = mounts::apply_step(root, s) {
            fail(st, Step::Mount, s.index, e);
        }
    }
    if let Err((i, e)) = mounts::create_devices(root, &plan.fs) {
        fail(st, Step::Device, i, e);
    }
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(root) };
    check(st, Step::Pivot, mounts::pivot(&plan.fs));
    for (i, (path, value)) in plan.fs.sysctls.iter().enumerate() {
        // SAFETY: open/write/close of a NUL-terminated path and a byte buffer.
        let r = unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                -1
            } else {
                let n = libc::write(fd, value.as_ptr().cast(), value.as_bytes().len());
                libc::close(fd);
                if n < 0 { -1 } else { 0 }
            }
        };
        if r != 0 {
            fail(st, Step::Sysctl, i, errno());
        }
    }
    if let Err((i, e)) = mounts::mask(&plan.fs.masked) {
        fail(st, Step::Mask, i, e);
    }
    if let Err((i, e)) = mounts::make_readonly(&plan.fs.readonly) {
        fail(st, Step::Readonly, i, e);
    }
    if plan.fs.readonly_root {
        check(st, Step::RootReadonly, mounts::readonly_root());
    }
    if let Some(h) = &plan.hostname {
        // SAFETY: h is a valid buffer of the given length.
        check(
            st,
            Step::Hostname,
            sys(unsafe { libc::sethostname(h.as_ptr(), h.as_bytes().len()) }),
        );
    }
    if let Some(d) = &plan.domainname {
        // SAFETY: as above.
        check(
            st,
            Step::Domainname,
            sys(unsafe { libc::setdomainname(d.as_ptr(), d.as_bytes().len()) }),
        );
    }
    let exe = prepare_process(&plan.process, st);
    if let Some(sock) = &plan.console {
        check(
            st,
            Step::Console,
            crate::console::setup_in_container(sock.as_raw_fd(), plan.console_size),
        );
    } else {
        for (target, fd) in plan.stdio.iter().enumerate() {
            if let Some(fd) = fd {
                // SAFETY: dup2 between open descriptors.
                check(
                    st,
                    Step::Stdio,
                    sys(unsafe { libc::dup2(*fd, target as i32) }),
                );
            }
        }
    }
    Msg::Ready.send(st);
    if let StartMode::Fifo(dir) = &plan.start {
        // SAFETY: closing the status pipe lets the parent see EOF; the open blocks until
        // `start` opens the fifo for reading.
        unsafe {
            libc::close(st);
            let fd = libc::openat(
                dir.as_raw_fd(),
                c"exec.fifo".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                libc::_exit(1);
            }
            libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
        }
    }
    exec_process(&plan.process, exe, st)
}

/// Limits, oom_score_adj, working directory and program lookup: everything that can fail
/// before the container counts as created. Returns the index of the program candidate.
pub(crate) fn prepare_process(p: &ProcessPlan, st: RawFd) -> usize {
    for (i, (res, lim)) in p.rlimits.iter().enumerate() {
        // SAFETY: setrlimit with a valid struct.
        if unsafe { libc::setrlimit(*res as _, lim) } != 0 {
            let e = errno();
            // Without CAP_SYS_RESOURCE the hard limit cannot rise: keep the current one.
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit into a valid struct.
            unsafe { libc::getrlimit(*res as _, &mut cur) };
            let clamped = libc::rlimit {
                rlim_cur: lim.rlim_cur.min(cur.rlim_max),
                rlim_max: cur.rlim_max,
            };
            // SAFETY: as above.
            if e != libc::EPERM || unsafe { libc::setrlimit(*res as _, &clamped) } != 0 {
                fail(st, Step::Rlimit, i, e);
            }
            Msg::Warn {
                step: Step::Rlimit,
                index: i as u32,
                errno: e,
            }
            .send(st);
        }
    }
    if let Some(v) = &p.oom_score_adj {
        // SAFETY: open/write/close with valid buffers.
        let ok = unsafe {
            let fd = libc::open(
                c"/proc/self/oom_score_adj".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            let ok = fd >= 0 && libc::write(fd, v.as_ptr().cast(), v.as_bytes().len()) >= 0;
            let e = errno();
            if fd >= 0 {
                libc::close(fd);
            }
            if ok { 0 } else { e }
        };
        if ok != 0 {
            // A negative value needs CAP_SYS_RESOURCE, which some hosts lack: tolerated.
            Msg::Warn {
                step: Step::OomScoreAdj,
                index: 0,
                errno: ok,
            }
            .send(st);
        }
    }
    // SAFETY: chdir to a NUL-terminated path.
    check(st, Step::Cwd, sys(unsafe { libc::chdir(p.cwd.as_ptr()) }));
    for (i, c) in p.candidates.iter().enumerate() {
        // SAFETY: stat into a zeroed struct.
        let mut s: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::stat(c.as_ptr(), &mut s) } == 0
            && s.st_mode & libc::S_IFMT == libc::S_IFREG
            && s.st_mode & 0o111 != 0
        {
            return i;
        }
    }
    fail(st, Step::ExecLookup, 0, libc::ENOENT)
}

/// Drops to the process's identity and capabilities, installs seccomp and execs. `st` gets
/// the error if any step fails (or is already closed after a fifo start).
pub(crate) fn exec_process(p: &ProcessPlan, exe: usize, st: RawFd) -> ! {
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while we have it.
    if !p.no_new_privs
        && let Some(f) = &p.seccomp
    {
        check(st, Step::Seccomp, f.install());
    }
    // SAFETY: prctl/setgroups/setres[ug]id with valid arguments.
    unsafe {
        check(
            st,
            Step::Caps,
            sys(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0)),
        );
        check(
            st,
            Step::Caps,
            caps::drop_bounding(p.caps.bounding, p.last_cap),
        );
        // The system calls themselves, not glibc's wrappers: in a process cloned from a
        // multi-threaded one (the node agent's exec) glibc still lists the parent's threads,
        // and its set*id wrappers wait for those to change their ids too (`__nptl_setxid`):
        // for ever, if one was being created at the clone. This process has one thread.
        let g = &p.identity.groups;
        let setgroups = libc::syscall(libc::SYS_setgroups, g.len(), g.as_ptr());
        check(st, Step::Groups, sys(setgroups as libc::c_int));
        let (uid, gid) = (p.identity.uid, p.identity.gid);
        let setresgid = libc::syscall(libc::SYS_setresgid, gid, gid, gid);
        check(st, Step::Gid, sys(setresgid as libc::c_int));
        let setresuid = libc::syscall(libc::SYS_setresuid, uid, uid, uid);
        check(st, Step::Uid, sys(setresuid as libc::c_int));
    }
    check(st, Step::Caps, caps::apply_sets(&p.caps));
    if p.no_new_privs {
        // SAFETY: prctl with integer arguments.
        check(
            st,
            Step::NoNewPrivs,
            sys(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }),
        );
        if let Some(f) = &p.seccomp {
            check(st, Step::Seccomp, f.install());
        }
    }
    let mut argv: [*const c_char; 256] = [std::ptr::null(); 256];
    let mut envp: [*const c_char; 1024] = [std::ptr::null(); 1024];
    for (i, a) in p.argv.iter().take(argv.len() - 1).enumerate() {
        argv[i] = a.as_ptr();
    }
    for (i, e) in p.env.iter().take(envp.len() - 1).enumerate() {
        envp[i] = e.as_ptr();
    }
    // SAFETY: restoring default signal handling and mask for the new program, then execve
    // with NULL-terminated vectors of NUL-terminated strings.
    unsafe {
        libc::umask(p.identity.umask);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        let path = p.candidates.get(exe).map_or(c"/".as_ptr(), |c| c.as_ptr());
        libc::execve(path, argv.as_ptr(), envp.as_ptr());
    }
    fail(st, Step::Exec, 0, errno())
}

/// Describes a step failure for a human, using the plan's spec context.
pub(crate) fn describe(step: Step, index: u32, names: &[String]) -> String {
    let i = index as usize;
    match step {
        Step::CgroupJoin => "joining the cgroup".into(),
        Step::Setns => "joining a namespace (linux.namespaces[].path)".into(),
        Step::UnshareCgroup => "creating the cgroup namespace".into(),
        Step::RootPropagation => "setting linux.rootfsPropagation".into(),
        Step::RootBind => "bind-mounting root.path".into(),
        Step::Mount => format!(
            "mounting {}",
            names.get(i).map_or("a mount", String::as_str)
        ),
        Step::Device => format!("creating device linux.devices / default device #{i}"),
        Step::Pivot => "pivot_root into root.path".into(),
        Step::Sysctl => format!("writing linux.sysctl entry #{i}"),
        Step::Mask => format!("masking linux.maskedPaths[{i}]"),
        Step::Readonly => format!("making linux.readonlyPaths[{i}] read-only"),
        Step::RootReadonly => "making the root read-only (root.readonly)".into(),
        Step::Hostname => "setting hostname".into(),
        Step::Domainname => "setting domainname".into(),
        Step::Rlimit => format!("setting process.rlimits[{i}]"),
        Step::OomScoreAdj => "setting process.oomScoreAdj".into(),
        Step::Cwd => "changing to process.cwd".into(),
        Step::ExecLookup => "looking up process.args[0]: executable file not found in $PATH".into(),
        Step::Console => "setting up the terminal (process.terminal)".into(),
        Step::Stdio => "setting up stdio".into(),
        Step::StartFifo => "waiting for start".into(),
        Step::NoNewPrivs => "setting process.noNewPrivileges".into(),
        Step::Seccomp => "loading linux.seccomp".into(),
        Step::Groups => "setting process.user.additionalGids".into(),
        Step::Gid => "setting process.user.gid".into(),
        Step::Uid => "setting process.user.uid".into(),
        Step::Caps => "setting process.capabilities".into(),
        Step::Exec => "exec of process.args[0]".into(),
        Step::Clone => "creating the container process".into(),
        Step::ShimExec => "starting the shim".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            Msg::Ready,
            Msg::Pid(4242),
            Msg::Error {
                step: Step::Mount,
                index: 3,
                errno: libc::EPERM,
            },
            Msg::Warn {
                step: Step::OomScoreAdj,
                index: 0,
                errno: libc::EACCES,
            },
        ] {
            assert_eq!(Msg::decode(&m.encode()), Some(m));
        }
        assert_eq!(Msg::decode(&[9; 12]), None);
    }
}
