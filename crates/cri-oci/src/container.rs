//! Containers: a directory per container (`rootfs` mounted as overlayfs over the image's
//! snapshots, `upper`, `work`, `config.json`), created by the single-threaded
//! `berth runtime create` subprocess (the only step that clones), started, signalled, listed
//! and deleted through the runtime library in this process. What the CRI knows about a
//! container (its sandbox, name, attempt, image, log path, labels) travels in the OCI
//! annotations, so `Runtime::list` alone recovers everything after a restart.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_cri::{ContainerState, ContainerStatus, CriError, ImageRef, Result};
use berth_runtime::{ContainerState as OciState, Status};

pub const A_SANDBOX: &str = "berth.dev/cri.sandbox-id";
pub const A_NAME: &str = "berth.dev/cri.container-name";
pub const A_ATTEMPT: &str = "berth.dev/cri.attempt";
pub const A_IMAGE: &str = "berth.dev/cri.image";
pub const A_IMAGE_DIGEST: &str = "berth.dev/cri.image-digest";
pub const A_IMAGE_ID: &str = "berth.dev/cri.image-id";
pub const A_LOG_PATH: &str = "berth.dev/cri.log-path";
pub const A_LABELS: &str = "berth.dev/cri.labels";
pub const A_ANNOTATIONS: &str = "berth.dev/cri.annotations";
pub const A_STOP_SIGNAL: &str = "berth.dev/cri.stop-signal";
pub const A_CREATED_NS: &str = "berth.dev/cri.created-ns";

/// One container's directory.
pub struct ContainerDir {
    pub dir: PathBuf,
}

impl ContainerDir {
    pub fn new(root: &Path, id: &str) -> ContainerDir {
        ContainerDir { dir: root.join(id) }
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn started_file(&self) -> PathBuf {
        self.dir.join("started")
    }

    /// Mounts the overlay root filesystem.
    pub fn mount_rootfs(&self, lowerdirs: &[PathBuf]) -> Result<()> {
        let (upper, work, rootfs) = (self.dir.join("upper"), self.dir.join("work"), self.rootfs());
        for d in [&upper, &work, &rootfs] {
            std::fs::create_dir_all(d)
                .map_err(|e| CriError::internal(format!("create {}: {e}", d.display())))?;
        }
        if lowerdirs.is_empty() {
            return Err(CriError::InvalidArgument {
                field: "image".into(),
                message: "the image has no layers".into(),
            });
        }
        let lower: Vec<String> = lowerdirs.iter().map(|p| p.display().to_string()).collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        let c = |s: &[u8]| CString::new(s).map_err(|_| CriError::internal("NUL in a path"));
        let (src, dst, fstype, data_c) = (
            c(b"overlay")?,
            c(rootfs.as_os_str().as_bytes())?,
            c(b"overlay")?,
            c(data.as_bytes())?,
        );
        // SAFETY: mount(2) with NUL-terminated strings.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                fstype.as_ptr(),
                0,
                data_c.as_ptr().cast(),
            )
        };
        if r != 0 {
            return Err(CriError::internal(format!(
                "mount overlay on {}: {}",
                rootfs.display(),
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    /// Unmounts the root filesystem and removes the directory (idempotent).
    pub fn remove(&self) -> Result<()> {
        if let Ok(c) = CString::new(self.rootfs().as_os_str().as_bytes()) {
            // SAFETY: umount2 of a NUL-terminated path; EINVAL when not mounted is harmless.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CriError::internal(format!(
                "remove {}: {e}",
                self.dir.display()
            ))),
        }
    }
}

fn parse_time_ns(s: &str) -> Option<i64> {
    let t: jiff::Timestamp = s.parse().ok()?;
    i64::try_from(t.as_nanosecond()).ok()
}

pub fn now_ns() -> i64 {
    i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX)
}

fn json_map(s: Option<&String>) -> BTreeMap<String, String> {
    s.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// The sandbox a runtime container belongs to, if it is one of ours.
pub fn sandbox_of(st: &OciState) -> Option<&str> {
    st.annotations.get(A_SANDBOX).map(String::as_str)
}

/// The CRI status of a runtime container (`None` if it is not a CRI container).
pub fn status(st: &OciState, containers_root: &Path) -> Option<ContainerStatus> {
    let a = &st.annotations;
    let sandbox_id = a.get(A_SANDBOX)?.clone();
    let started_at_ns =
        std::fs::read_to_string(ContainerDir::new(containers_root, &st.id).started_file())
            .ok()
            .and_then(|t| t.trim().parse().ok());
    let (state, exit_code, reason, finished, message) = match st.status {
        Status::Creating | Status::Created => (ContainerState::Created, None, None, None, None),
        Status::Running | Status::Paused => (ContainerState::Running, None, None, None, None),
        Status::Stopped => match &st.exit {
            Some(e) => (
                ContainerState::Exited,
                Some(e.code),
                Some(e.reason.to_string()),
                parse_time_ns(&e.exited_at),
                None,
            ),
            None => (
                ContainerState::Exited,
                Some(255),
                Some("Error".to_string()),
                None,
                Some("the container's exit status was not recorded".to_string()),
            ),
        },
    };
    Some(ContainerStatus {
        id: st.id.clone(),
        sandbox_id,
        name: a.get(A_NAME).cloned().unwrap_or_default(),
        attempt: a.get(A_ATTEMPT).and_then(|v| v.parse().ok()).unwrap_or(0),
        image: ImageRef {
            reference: a.get(A_IMAGE).cloned().unwrap_or_default(),
            digest: a.get(A_IMAGE_DIGEST).cloned().unwrap_or_default(),
            id: a.get(A_IMAGE_ID).cloned().unwrap_or_default(),
            size_bytes: 0,
            user: None,
        },
        state,
        created_at_ns: a
            .get(A_CREATED_NS)
            .and_then(|v| v.parse().ok())
            .or_else(|| parse_time_ns(&st.created))
            .unwrap_or(0),
        started_at_ns,
        finished_at_ns: finished,
        exit_code,
        reason,
        message,
        log_path: a.get(A_LOG_PATH).map(PathBuf::from).unwrap_or_default(),
        labels: json_map(a.get(A_LABELS)),
        annotations: json_map(a.get(A_ANNOTATIONS)),
    })
}

/// The signal number of a stop signal name (`SIGTERM`, `TERM`, `15`).
pub fn signal_number(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let n = name.trim().to_ascii_uppercase();
    let n = n.strip_prefix("SIG").unwrap_or(&n);
    Some(match n {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "STOP" => libc::SIGSTOP,
        "WINCH" => libc::SIGWINCH,
        "PWR" => libc::SIGPWR,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_parse() {
        assert_eq!(signal_number("SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(signal_number("quit"), Some(libc::SIGQUIT));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("SIGNOPE"), None);
        assert_eq!(signal_number("99"), None);
    }
}
