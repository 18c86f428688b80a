//! Pinned namespaces: a pod sandbox's network, IPC and UTS namespaces are created by a
//! short-lived thread that `unshare`s them (allowed in a multi-threaded process for these
//! kinds; nothing is cloned), sets the hostname, brings loopback up and bind-mounts
//! `/proc/thread-self/ns/<kind>` onto files in the sandbox directory. The bind mounts keep
//! the namespaces alive without any process (no pause container), containers join them by
//! path, and unmounting releases them. Connections into a sandbox (port-forward, probes) are
//! made the same way: a fresh thread `setns`es into the network namespace, connects, and the
//! socket stays in that namespace after the thread ends.

use std::ffi::CString;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A namespace kind a sandbox pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsKind {
    Net,
    Ipc,
    Uts,
}

impl NsKind {
    pub fn name(self) -> &'static str {
        match self {
            NsKind::Net => "net",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
        }
    }

    fn flag(self) -> libc::c_int {
        match self {
            NsKind::Net => libc::CLONE_NEWNET,
            NsKind::Ipc => libc::CLONE_NEWIPC,
            NsKind::Uts => libc::CLONE_NEWUTS,
        }
    }
}

/// The file pinning namespace `kind` under `dir`.
pub fn ns_path(dir: &Path, kind: NsKind) -> PathBuf {
    dir.join(kind.name())
}

fn cpath(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
}

fn last_err(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Brings the loopback interface of the calling thread's network namespace up.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a plain socket call; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last_err("socket"));
    }
    // SAFETY: fd was just returned by socket().
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills ifr_ifru.ifru_flags of a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(last_err("SIOCGIFFLAGS lo"));
    }
    // SAFETY: reading and writing the flags member of the union SIOCGIFFLAGS filled.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(last_err("SIOCSIFFLAGS lo"));
    }
    Ok(())
}

fn pin_in_thread(dir: &Path, kinds: &[NsKind], hostname: Option<&str>) -> std::io::Result<()> {
    let flags = kinds.iter().fold(0, |f, k| f | k.flag());
    // SAFETY: unshare of net/ipc/uts affects only this thread.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(last_err("unshare"));
    }
    if let Some(h) = hostname.filter(|_| kinds.contains(&NsKind::Uts)) {
        // SAFETY: sethostname with a pointer and its length.
        if unsafe { libc::sethostname(h.as_ptr().cast(), h.len()) } != 0 {
            return Err(last_err("sethostname"));
        }
    }
    if kinds.contains(&NsKind::Net) {
        loopback_up()?;
    }
    for k in kinds {
        let target = ns_path(dir, *k);
        std::fs::File::create(&target).map_err(|e| {
            std::io::Error::new(e.kind(), format!("create {}: {e}", target.display()))
        })?;
        let src = CString::new(format!("/proc/thread-self/ns/{}", k.name())).unwrap_or_default();
        let dst = cpath(&target)?;
        // SAFETY: bind mount between NUL-terminated paths.
        if unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        } != 0
        {
            return Err(last_err(&format!("bind mount {} namespace", k.name())));
        }
    }
    Ok(())
}

/// Creates new namespaces of `kinds` pinned under `dir`; on error nothing stays mounted.
pub fn pin(dir: &Path, kinds: &[NsKind], hostname: Option<&str>) -> std::io::Result<()> {
    let d = dir.to_path_buf();
    let k = kinds.to_vec();
    let h = hostname.map(str::to_owned);
    let r = std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || pin_in_thread(&d, &k, h.as_deref()))?
        .join()
        .map_err(|_| std::io::Error::other("namespace thread panicked"))?;
    if r.is_err() {
        unpin(dir, kinds);
    }
    r
}

/// Releases pinned namespaces (idempotent).
pub fn unpin(dir: &Path, kinds: &[NsKind]) {
    for k in kinds {
        let p = ns_path(dir, *k);
        if let Ok(c) = cpath(&p) {
            // SAFETY: umount2 of a NUL-terminated path; failure (not mounted) is harmless.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_file(&p);
    }
}

/// Whether `path` is a pinned namespace (an nsfs mount), not a plain file.
pub fn is_pinned(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type().0 == 0x6e73_6673)
}

/// Connects to `addr` from inside the network namespace pinned at `netns`.
pub fn connect_in(netns: &Path, addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let ns = std::fs::File::open(netns)
        .map_err(|e| std::io::Error::new(e.kind(), format!("open {}: {e}", netns.display())))?;
    std::thread::Builder::new()
        .name("berth-connect".into())
        .spawn(move || {
            // SAFETY: setns of this thread into an open network namespace descriptor.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(last_err("setns"));
            }
            TcpStream::connect_timeout(&addr, timeout)
        })?
        .join()
        .map_err(|_| std::io::Error::other("connect thread panicked"))?
}
