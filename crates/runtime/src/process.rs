//! From a spec `process` to a prepared [`ProcessPlan`]: argv/env as C strings, the program's
//! candidate paths, identity, capability masks, rlimits. Shared by container init and exec.

use std::ffi::CString;
use std::path::Path;

use oci_spec::runtime::{PosixRlimitType, Process};

use crate::caps::{CapMasks, last_cap};
use crate::error::{Result, RuntimeError};
use crate::init::{Identity, ProcessPlan};
use crate::seccomp::Program;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn c(s: &str, field: &str) -> Result<CString> {
    CString::new(s).map_err(|_| RuntimeError::spec(field, "contains a NUL byte"))
}

fn rlimit_resource(t: PosixRlimitType) -> u32 {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Paths to try for `argv0`: itself if it has a slash, else each `$PATH` entry (from `env`).
pub(crate) fn candidates(argv0: &str, env: &[String]) -> Vec<String> {
    if argv0.contains('/') {
        return vec![argv0.to_owned()];
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(argv0).to_string_lossy().into_owned())
        .collect()
}

/// Prepares `p` (checked by `spec::check_process`); `field` names it in errors.
pub(crate) fn plan(p: &Process, seccomp: Option<Program>, field: &str) -> Result<ProcessPlan> {
    let args = p.args().clone().unwrap_or_default();
    let env = p.env().clone().unwrap_or_default();
    let argv = args
        .iter()
        .map(|a| c(a, &format!("{field}.args")))
        .collect::<Result<Vec<_>>>()?;
    let envc = env
        .iter()
        .map(|e| c(e, &format!("{field}.env")))
        .collect::<Result<Vec<_>>>()?;
    if argv.len() > 255 || envc.len() > 1023 {
        return Err(RuntimeError::spec(
            format!("{field}.args"),
            "too many arguments or environment entries",
        ));
    }
    let candidates = candidates(&args[0], &env)
        .into_iter()
        .map(|s| c(&s, &format!("{field}.args")))
        .collect::<Result<Vec<_>>>()?;
    let user = p.user();
    let rlimits = p
        .rlimits()
        .iter()
        .flatten()
        .map(|r| {
            (
                rlimit_resource(r.typ()),
                libc::rlimit {
                    rlim_cur: r.soft(),
                    rlim_max: r.hard(),
                },
            )
        })
        .collect();
    Ok(ProcessPlan {
        argv,
        env: envc,
        candidates,
        cwd: c(&p.cwd().to_string_lossy(), &format!("{field}.cwd"))?,
        identity: Identity {
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask().unwrap_or(0o022),
        },
        caps: CapMasks::from_spec(p.capabilities().as_ref()),
        last_cap: last_cap(),
        no_new_privs: p.no_new_privileges().unwrap_or(false),
        seccomp,
        rlimits,
        oom_score_adj: p
            .oom_score_adj()
            .map(|v| CString::new(v.to_string()).unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_lookup_follows_path_order() {
        let env = vec!["PATH=/bin:relative:/usr/bin".to_string()];
        assert_eq!(candidates("sh", &env), vec!["/bin/sh", "/usr/bin/sh"]);
        assert_eq!(candidates("/x/y", &env), vec!["/x/y"]);
        assert_eq!(candidates("true", &[]).len(), 6);
    }
}
