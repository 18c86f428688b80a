//! Seccomp: a spec's profile is compiled to BPF once with libseccomp, cached on disk under its
//! content hash, and loaded at start with one `seccomp(2)` call from the cached bytes. Compiling
//! a realistic profile costs tens of milliseconds; the cache keeps it off the start path.

use std::io::Write;
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use sha2::{Digest, Sha256};

use crate::error::{Result, RuntimeError};

/// A compiled filter, ready to load.
#[derive(Debug, Clone)]
pub struct Program {
    /// `struct sock_filter` entries, 8 bytes each.
    filters: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

fn err(message: impl Into<String>) -> RuntimeError {
    RuntimeError::Seccomp {
        message: message.into(),
    }
}

fn action(a: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<ScmpAction> {
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno.unwrap_or(libc::EPERM as u32) as i32)
        }
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno.unwrap_or(libc::EPERM as u32) as u16)
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(RuntimeError::spec(
                field,
                "SCMP_ACT_NOTIFY is not supported",
            ));
        }
    })
}

fn compile(profile: &LinuxSeccomp) -> Result<Vec<u8>> {
    let default = action(
        profile.default_action(),
        profile.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| err(format!("new filter: {e}")))?;
    ctx.set_ctl_nnp(false).map_err(|e| err(format!("{e}")))?;
    for (i, arch) in profile.architectures().iter().flatten().enumerate() {
        let name = serde_json::to_value(arch)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let a: ScmpArch = name.parse().map_err(|_| {
            RuntimeError::spec(
                format!("linux.seccomp.architectures[{i}]"),
                format!("unknown architecture {name:?}"),
            )
        })?;
        ctx.add_arch(a)
            .map_err(|e| err(format!("add architecture {name}: {e}")))?;
    }
    for (i, rule) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(rule.action(), rule.errno_ret(), &format!("{field}.action"))?;
        if act == default {
            continue;
        }
        let mut cmps = Vec::new();
        for (j, a) in rule.args().iter().flatten().enumerate() {
            let op = match a.op() {
                LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
                LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
                LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
                LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
                LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(a.value()),
            };
            let datum = if matches!(a.op(), LinuxSeccompOperator::ScmpCmpMaskedEq) {
                a.value_two().unwrap_or(0)
            } else {
                a.value()
            };
            let index = u32::try_from(a.index())
                .ok()
                .filter(|i| *i < 6)
                .ok_or_else(|| {
                    RuntimeError::spec(format!("{field}.args[{j}].index"), "must be 0..5")
                })?;
            cmps.push(ScmpArgCompare::new(index, op, datum));
        }
        for name in rule.names() {
            // Like runc: a name this libseccomp does not know is skipped, so one profile
            // serves kernels and libraries of different ages.
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                tracing::debug!(syscall = %name, "seccomp: unknown syscall name skipped");
                continue;
            };
            ctx.add_rule_conditional(act, sc, &cmps).map_err(|e| {
                RuntimeError::spec(format!("{field}.names"), format!("{name}: {e}"))
            })?;
        }
    }
    let mut tmp = tempfile_in_memory()?;
    ctx.export_bpf(&tmp)
        .map_err(|e| err(format!("export: {e}")))?;
    read_back(&mut tmp)
}

fn tempfile_in_memory() -> Result<std::fs::File> {
    // SAFETY: memfd_create with a static NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(RuntimeError::sys(
            "memfd_create",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

fn read_back(f: &mut std::fs::File) -> Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let mut out = Vec::new();
    f.seek(std::io::SeekFrom::Start(0))
        .and_then(|_| f.read_to_end(&mut out))
        .map_err(|e| err(format!("read compiled filter: {e}")))?;
    Ok(out)
}

fn flags(profile: &LinuxSeccomp) -> libc::c_ulong {
    profile.flags().iter().flatten().fold(0, |f, flag| {
        f | match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (only meaningful with a listener).
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 1 << 5,
        }
    })
}

/// Content key of a profile: changes whenever the profile, the architecture or the
/// libseccomp version (which decides the syscall tables) changes.
pub fn cache_key(profile: &LinuxSeccomp) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(profile).unwrap_or_default());
    h.update(std::env::consts::ARCH.as_bytes());
    let v =
        libseccomp::ScmpVersion::current().map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro));
    h.update(v.unwrap_or_default().as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Returns the compiled filter for `profile`, from `cache_dir` when it was compiled before.
pub fn load_or_compile(profile: &LinuxSeccomp, cache_dir: &Path) -> Result<Program> {
    if profile.listener_path().is_some() {
        return Err(RuntimeError::spec(
            "linux.seccomp.listenerPath",
            "seccomp notification is not supported",
        ));
    }
    let path = cache_dir.join(format!("{}.bpf", cache_key(profile)));
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let b = compile(profile)?;
            store(&path, &b)?;
            b
        }
        Err(e) => return Err(RuntimeError::io("read", &path, e)),
    };
    Program::from_bytes(&bytes, flags(profile))
        .ok_or_else(|| err(format!("{}: not a BPF program", path.display())))
}

fn store(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io("create", dir, e))?;
    let tmp: PathBuf = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| RuntimeError::io("create", &tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| RuntimeError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| RuntimeError::io("rename", &tmp, e))
}

impl Program {
    fn from_bytes(bytes: &[u8], flags: libc::c_ulong) -> Option<Program> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(8) || bytes.len() / 8 > u16::MAX as usize
        {
            return None;
        }
        let filters = bytes
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Some(Program { filters, flags })
    }

    /// Installs the filter on the calling thread. Async-signal-safe.
    pub fn install(&self) -> std::result::Result<(), i32> {
        let prog = libc::sock_fprog {
            len: self.filters.len() as u16,
            filter: self.filters.as_ptr() as *mut _,
        };
        // SAFETY: prog points at `len` valid sock_filter entries that outlive the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if r != 0 {
            Err(crate::caps::errno())
        } else {
            Ok(())
        }
    }
}

/// berth's default profile: everything is allowed except system calls that change the host
/// (kernel modules, reboot, clock, swap, kexec, accounting, keyrings) or widen a container's
/// reach (bpf, perf, userfaultfd, open_by_handle_at, new mount API, namespaces creation by
/// unprivileged paths); those fail with EPERM. The node agent puts it into specs it builds.
pub fn default_profile() -> LinuxSeccomp {
    let denied = [
        "acct",
        "add_key",
        "bpf",
        "clock_adjtime",
        "clock_settime",
        "create_module",
        "delete_module",
        "finit_module",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "get_kernel_syms",
        "get_mempolicy",
        "init_module",
        "ioperm",
        "iopl",
        "kcmp",
        "kexec_file_load",
        "kexec_load",
        "keyctl",
        "lookup_dcookie",
        "mbind",
        "move_mount",
        "nfsservctl",
        "open_by_handle_at",
        "open_tree",
        "perf_event_open",
        "personality",
        "pivot_root",
        "process_vm_readv",
        "process_vm_writev",
        "query_module",
        "quotactl",
        "reboot",
        "request_key",
        "set_mempolicy",
        "setns",
        "settimeofday",
        "stime",
        "swapoff",
        "swapon",
        "sysfs",
        "_sysctl",
        "umount",
        "umount2",
        "unshare",
        "uselib",
        "userfaultfd",
        "ustat",
        "vm86",
        "vm86old",
        "mount",
        "mount_setattr",
        "syslog",
    ];
    let json = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": denied.to_vec(), "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM}],
    });
    serde_json::from_value(json).expect("the default seccomp profile is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_once_and_reuses_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let p = default_profile();
        let a = load_or_compile(&p, dir.path()).unwrap();
        assert!(a.filters.len() > 10);
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        let b = load_or_compile(&p, dir.path()).unwrap();
        assert_eq!(a.filters.len(), b.filters.len());
    }

    #[test]
    fn notify_is_rejected_with_the_field() {
        let p: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }))
        .unwrap();
        let e = load_or_compile(&p, tempfile::tempdir().unwrap().path()).unwrap_err();
        assert!(
            e.to_string().contains("linux.seccomp.syscalls[0].action"),
            "{e}"
        );
    }
}
