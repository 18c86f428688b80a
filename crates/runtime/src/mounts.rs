//! The container's filesystem: the spec's mounts turned into a list of prepared steps (in the
//! parent, where allocation is fine), and the allocation-free code the init runs to apply
//! them, create `/dev`, pivot into the root, and mask or write-protect paths.
//!
//! Mount targets are resolved inside the root with `openat2(RESOLVE_IN_ROOT)`, so a symlink in
//! an image cannot point a mount at the host; the mount goes onto the `/proc/self/fd/N` of the
//! resolved descriptor.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libc::{c_ulong, c_void};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};

use crate::cgroups::Cgroup;
use crate::error::{Result, RuntimeError};

/// What a prepared mount step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepKind {
    /// A new filesystem, or a bind mount (`MS_BIND` in flags).
    Mount,
    /// Re-applies flags to the mount at the target (`MS_REMOUNT`), e.g. read-only binds.
    Remount,
    /// Sets read-only/nosuid/nodev/noexec (from `flags`) on the whole mount tree at the target
    /// with one `mount_setattr(AT_RECURSIVE)`, instead of one remount per mount.
    TreeAttrs,
}

#[derive(Debug)]
pub(crate) struct MountStep {
    pub kind: StepKind,
    /// Index into the spec's `mounts`, for error messages.
    pub index: usize,
    pub source: Option<CString>,
    /// Relative to the root filesystem, without a leading `/`.
    pub target: CString,
    pub fstype: Option<CString>,
    pub flags: c_ulong,
    pub data: Option<CString>,
    /// `MS_SHARED`, `MS_SLAVE`, ... (with `MS_REC`), applied after mounting; 0 for none.
    pub propagation: c_ulong,
    /// The target must be a file (bind mount of a non-directory).
    pub file_target: bool,
}

#[derive(Debug)]
pub(crate) struct DeviceNode {
    /// Relative to the root, e.g. `dev/null`.
    pub path: CString,
    pub mode: libc::mode_t,
    pub dev: libc::dev_t,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

/// Everything the init does to the filesystem, prepared.
#[derive(Debug, Default)]
pub(crate) struct FsPlan {
    pub rootfs: CString,
    pub root_propagation: c_ulong,
    pub steps: Vec<MountStep>,
    /// Descriptions of `steps`' spec indices, for errors.
    pub step_names: Vec<String>,
    pub devices: Vec<DeviceNode>,
    /// (link target, link path relative to the root).
    pub symlinks: Vec<(CString, CString)>,
    pub masked: Vec<CString>,
    pub readonly: Vec<CString>,
    pub readonly_root: bool,
    /// Absolute paths of sysctl files with their values.
    pub sysctls: Vec<(CString, CString)>,
}

fn cstr(p: impl AsRef<[u8]>) -> CString {
    // Interior NULs cannot come from JSON strings that passed validation; strip defensively.
    CString::new(
        p.as_ref()
            .iter()
            .copied()
            .filter(|b| *b != 0)
            .collect::<Vec<u8>>(),
    )
    .unwrap_or_default()
}

fn rel(p: &Path) -> CString {
    cstr(
        p.as_os_str()
            .as_bytes()
            .strip_prefix(b"/")
            .unwrap_or(p.as_os_str().as_bytes()),
    )
}

/// Propagation flags for a `rootfsPropagation` or mount option name.
pub(crate) fn propagation_flags(name: &str) -> Option<c_ulong> {
    Some(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

/// (flags to set, flags to clear) for a flag-like mount option.
fn flag_option(o: &str) -> Option<(c_ulong, c_ulong)> {
    Some(match o {
        "ro" => (libc::MS_RDONLY, 0),
        "rw" => (0, libc::MS_RDONLY),
        "nosuid" => (libc::MS_NOSUID, 0),
        "suid" => (0, libc::MS_NOSUID),
        "nodev" => (libc::MS_NODEV, 0),
        "dev" => (0, libc::MS_NODEV),
        "noexec" => (libc::MS_NOEXEC, 0),
        "exec" => (0, libc::MS_NOEXEC),
        "sync" => (libc::MS_SYNCHRONOUS, 0),
        "async" => (0, libc::MS_SYNCHRONOUS),
        "dirsync" => (libc::MS_DIRSYNC, 0),
        "mand" => (libc::MS_MANDLOCK, 0),
        "nomand" => (0, libc::MS_MANDLOCK),
        "noatime" => (libc::MS_NOATIME, 0),
        "atime" => (0, libc::MS_NOATIME),
        "nodiratime" => (libc::MS_NODIRATIME, 0),
        "diratime" => (0, libc::MS_NODIRATIME),
        "relatime" => (libc::MS_RELATIME, 0),
        "norelatime" => (0, libc::MS_RELATIME),
        "strictatime" => (libc::MS_STRICTATIME, 0),
        "nostrictatime" => (0, libc::MS_STRICTATIME),
        "bind" => (libc::MS_BIND, 0),
        "rbind" => (libc::MS_BIND | libc::MS_REC, 0),
        "remount" => (libc::MS_REMOUNT, 0),
        _ => return None,
    })
}

/// Devices every container gets when its /dev is a fresh tmpfs (as in runc).
const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Builds the filesystem plan of a container. `cgroup` supplies the directories that a
/// `cgroup` mount shows inside the container.
pub(crate) fn plan(
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    cgroup: &Cgroup,
    new_netns: bool,
) -> Result<FsPlan> {
    let linux = spec.linux().as_ref();
    let mut p = FsPlan {
        rootfs: cstr(rootfs.as_os_str().as_bytes()),
        root_propagation: linux
            .and_then(|l| l.rootfs_propagation().as_deref())
            .and_then(propagation_flags)
            .unwrap_or(libc::MS_SLAVE | libc::MS_REC),
        readonly_root: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        ..Default::default()
    };
    let mut dev_is_tmpfs = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        let dest = m.destination();
        let typ = m.typ().as_deref().unwrap_or("");
        let mut flags: c_ulong = 0;
        let mut propagation: c_ulong = 0;
        let mut data = Vec::new();
        for o in m.options().iter().flatten() {
            if let Some((set, clear)) = flag_option(o) {
                flags = (flags | set) & !clear;
            } else if let Some(pf) = propagation_flags(o) {
                propagation = pf;
            } else if matches!(o.as_str(), "tmpcopyup" | "idmap" | "ridmap")
                || o.starts_with("rro")
                || o.starts_with("rrw")
            {
                return Err(RuntimeError::spec(
                    format!("{field}.options"),
                    format!("option {o:?} is not supported"),
                ));
            } else {
                data.push(o.as_str());
            }
        }
        let bind = flags & libc::MS_BIND != 0 || typ == "bind";
        p.step_names.push(format!("{field} ({})", dest.display()));
        if typ == "cgroup" || typ == "cgroup2" {
            cgroup_steps(&mut p, i, dest, flags, cgroup);
            continue;
        }
        if dest == Path::new("/dev") && !bind {
            dev_is_tmpfs = true;
        }
        if bind {
            let src = m.source().as_ref().ok_or_else(|| {
                RuntimeError::spec(format!("{field}.source"), "a bind mount needs a source")
            })?;
            let src = if src.is_absolute() {
                src.clone()
            } else {
                bundle.join(src)
            };
            let meta = std::fs::metadata(&src).map_err(|e| {
                RuntimeError::spec(format!("{field}.source"), format!("{}: {e}", src.display()))
            })?;
            p.steps.push(MountStep {
                kind: StepKind::Mount,
                index: i,
                source: Some(cstr(src.as_os_str().as_bytes())),
                target: rel(dest),
                fstype: None,
                flags: libc::MS_BIND | (flags & libc::MS_REC),
                data: None,
                propagation,
                file_target: !meta.is_dir(),
            });
            // A bind mount takes its flags only from a remount.
            let extra = flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
            if extra != 0 {
                p.steps.push(MountStep {
                    kind: StepKind::Remount,
                    index: i,
                    source: None,
                    target: rel(dest),
                    fstype: None,
                    flags: libc::MS_BIND | libc::MS_REMOUNT | extra,
                    data: None,
                    propagation: 0,
                    file_target: false,
                });
            }
            continue;
        }
        if typ.is_empty() {
            return Err(RuntimeError::spec(
                format!("{field}.type"),
                "is required for a non-bind mount",
            ));
        }
        if typ == "sysfs" && !new_netns {
            // sysfs shows the mounter's network namespace; without a private one, bind the
            // host's read-only like runc.
            p.steps.push(MountStep {
                kind: StepKind::Mount,
                index: i,
                source: Some(c"/sys".into()),
                target: rel(dest),
                fstype: None,
                flags: libc::MS_BIND | libc::MS_REC,
                data: None,
                propagation: 0,
                file_target: false,
            });
            p.steps.push(remount(
                i,
                dest,
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            ));
            continue;
        }
        let source = m
            .source()
            .as_ref()
            .map(|s| cstr(s.as_os_str().as_bytes()))
            .unwrap_or_else(|| cstr(typ));
        p.steps.push(MountStep {
            kind: StepKind::Mount,
            index: i,
            source: Some(source),
            target: rel(dest),
            fstype: Some(cstr(typ)),
            flags,
            data: (!data.is_empty()).then(|| cstr(data.join(","))),
            propagation,
            file_target: false,
        });
    }
    let devices = linux.and_then(|l| l.devices().as_ref());
    if dev_is_tmpfs {
        for (name, major, minor) in DEFAULT_DEVICES {
            if devices.is_some_and(|d| d.iter().any(|d| *d.path() == Path::new("/dev").join(name)))
            {
                continue;
            }
            p.devices.push(DeviceNode {
                path: cstr(format!("dev/{name}")),
                mode: libc::S_IFCHR | 0o666,
                dev: libc::makedev(*major as u32, *minor as u32),
                uid: 0,
                gid: 0,
            });
        }
        for (target, link) in [
            ("/proc/self/fd", "dev/fd"),
            ("/proc/self/fd/0", "dev/stdin"),
            ("/proc/self/fd/1", "dev/stdout"),
            ("/proc/self/fd/2", "dev/stderr"),
            ("/proc/kcore", "dev/core"),
            ("pts/ptmx", "dev/ptmx"),
        ] {
            p.symlinks.push((cstr(target), cstr(link)));
        }
    }
    for (i, d) in devices.into_iter().flatten().enumerate() {
        p.devices.push(device_node(d, i)?);
    }
    if let Some(l) = linux {
        p.masked = l.masked_paths().iter().flatten().map(cstr).collect();
        p.readonly = l.readonly_paths().iter().flatten().map(cstr).collect();
        for (k, v) in l.sysctl().iter().flatten() {
            if k.contains('/') || k.contains("..") {
                return Err(RuntimeError::spec(
                    format!("linux.sysctl.{k}"),
                    "not a sysctl name",
                ));
            }
            p.sysctls
                .push((cstr(format!("/proc/sys/{}", k.replace('.', "/"))), cstr(v)));
        }
    }
    Ok(p)
}

fn remount(index: usize, dest: &Path, flags: c_ulong) -> MountStep {
    MountStep {
        kind: StepKind::Remount,
        index,
        source: None,
        target: rel(dest),
        fstype: None,
        flags: libc::MS_BIND | libc::MS_REMOUNT | flags,
        data: None,
        propagation: 0,
        file_target: false,
    }
}

/// A `cgroup` mount: the container's own directories, read-only unless asked otherwise.
fn cgroup_steps(p: &mut FsPlan, i: usize, dest: &Path, flags: c_ulong, cgroup: &Cgroup) {
    let base = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let ro = flags & libc::MS_RDONLY;
    let bind = |source: &Path, target: PathBuf| MountStep {
        kind: StepKind::Mount,
        index: i,
        source: Some(cstr(source.as_os_str().as_bytes())),
        target: rel(&target),
        fstype: None,
        flags: libc::MS_BIND,
        data: None,
        propagation: 0,
        file_target: false,
    };
    if cgroup.version == 2 {
        p.steps.push(bind(&cgroup.dirs[0].dir, dest.to_path_buf()));
        p.steps.push(remount(i, dest, base | ro));
        return;
    }
    p.steps.push(MountStep {
        kind: StepKind::Mount,
        index: i,
        source: Some(c"tmpfs".into()),
        target: rel(dest),
        fstype: Some(c"tmpfs".into()),
        flags: base,
        data: Some(c"mode=755".into()),
        propagation: 0,
        file_target: false,
    });
    for d in &cgroup.dirs {
        let name = d.controllers.join(",");
        let name = name.strip_prefix("name=").unwrap_or(&name);
        p.steps.push(bind(&d.dir, dest.join(name)));
    }
    p.steps.push(MountStep {
        kind: StepKind::TreeAttrs,
        index: i,
        source: None,
        target: rel(dest),
        fstype: None,
        flags: base | ro,
        data: None,
        propagation: 0,
        file_target: false,
    });
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE)` with the attributes of `flags`.
fn tree_attrs(fd: i32, flags: c_ulong) -> std::result::Result<(), i32> {
    let mut set = 0u64;
    for (ms, attr) in [
        (libc::MS_RDONLY, 1u64),
        (libc::MS_NOSUID, 2),
        (libc::MS_NODEV, 4),
        (libc::MS_NOEXEC, 8),
    ] {
        if flags & ms != 0 {
            set |= attr;
        }
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid mount_attr of the given size and an empty path on an open descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        Err(crate::caps::errno())
    } else {
        Ok(())
    }
}

fn device_node(d: &LinuxDevice, i: usize) -> Result<DeviceNode> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(RuntimeError::spec(
                format!("linux.devices[{i}].type"),
                "must be c, b, u or p",
            ));
        }
    };
    Ok(DeviceNode {
        path: rel(d.path()),
        mode: kind | d.file_mode().unwrap_or(0o666),
        dev: libc::makedev(d.major() as u32, d.minor() as u32),
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

// ---- the init's side: no allocation below this line ----

/// Formats `/proc/self/fd/<fd>` into `buf` and returns it as a C string.
fn fd_path(buf: &mut [u8; 32], fd: i32) -> &CStr {
    let prefix = b"/proc/self/fd/";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 12];
    let mut n = fd.max(0) as u32;
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
    buf[prefix.len()..prefix.len() + d.len()].copy_from_slice(d);
    buf[prefix.len() + d.len()] = 0;
    CStr::from_bytes_until_nul(&buf[..]).unwrap_or(c"/")
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

fn openat2_in_root(root: i32, path: &CStr) -> std::result::Result<i32, i32> {
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: path is NUL-terminated and `how` is a valid open_how of the given size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if r < 0 {
        Err(crate::caps::errno())
    } else {
        Ok(r as i32)
    }
}

fn close(fd: i32) {
    // SAFETY: closing a descriptor this code opened.
    unsafe { libc::close(fd) };
}

/// Resolves `path` inside `root`, creating missing directories (and a final empty file when
/// `file` is set). Returns an `O_PATH` descriptor.
pub(crate) fn ensure_in_root(root: i32, path: &CStr, file: bool) -> std::result::Result<i32, i32> {
    match openat2_in_root(root, path) {
        Ok(fd) => return Ok(fd),
        Err(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let bytes = path.to_bytes();
    let mut prefix = [0u8; 4096];
    if bytes.len() >= prefix.len() {
        return Err(libc::ENAMETOOLONG);
    }
    let mut parent = {
        // SAFETY: dup of an open descriptor.
        let d = unsafe { libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 0) };
        if d < 0 {
            return Err(crate::caps::errno());
        }
        d
    };
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(bytes.len(), |p| start + p);
        if end == start {
            start += 1;
            continue;
        }
        prefix[..end].copy_from_slice(&bytes[..end]);
        prefix[end] = 0;
        let last = end == bytes.len();
        let Ok(here) = CStr::from_bytes_until_nul(&prefix[..=end]) else {
            close(parent);
            return Err(libc::EINVAL);
        };
        let fd = match openat2_in_root(root, here) {
            Ok(fd) => fd,
            Err(libc::ENOENT) => {
                let mut comp = [0u8; 256];
                let c = &bytes[start..end];
                if c.len() >= comp.len() {
                    close(parent);
                    return Err(libc::ENAMETOOLONG);
                }
                comp[..c.len()].copy_from_slice(c);
                let cname = comp.as_ptr().cast::<libc::c_char>();
                // SAFETY: comp is NUL-terminated; parent is an O_PATH directory descriptor.
                let r = unsafe {
                    if last && file {
                        let f = libc::openat(
                            parent,
                            cname,
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                            0o644,
                        );
                        if f >= 0 {
                            libc::close(f);
                            0
                        } else {
                            -1
                        }
                    } else {
                        libc::mkdirat(parent, cname, 0o755)
                    }
                };
                if r != 0 && crate::caps::errno() != libc::EEXIST {
                    let e = crate::caps::errno();
                    close(parent);
                    return Err(e);
                }
                match openat2_in_root(root, here) {
                    Ok(fd) => fd,
                    Err(e) => {
                        close(parent);
                        return Err(e);
                    }
                }
            }
            Err(e) => {
                close(parent);
                return Err(e);
            }
        };
        close(parent);
        parent = fd;
        start = end + 1;
    }
    Ok(parent)
}

fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> std::result::Result<(), i32> {
    let p = |c: Option<&CStr>| c.map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: all pointers are NULL or NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::mount(
            p(src),
            target.as_ptr(),
            p(fstype),
            flags,
            p(data).cast::<c_void>(),
        )
    };
    if r != 0 {
        Err(crate::caps::errno())
    } else {
        Ok(())
    }
}

/// Applies one step with the root filesystem open as `root`.
pub(crate) fn apply_step(root: i32, s: &MountStep) -> std::result::Result<(), i32> {
    let fd = ensure_in_root(root, &s.target, s.file_target)?;
    let mut buf = [0u8; 32];
    let target = fd_path(&mut buf, fd);
    let r = match s.kind {
        StepKind::Mount => mount(
            s.source.as_deref(),
            target,
            s.fstype.as_deref(),
            s.flags,
            s.data.as_deref(),
        ),
        StepKind::Remount => mount(None, target, None, s.flags | locked_flags(target), None),
        StepKind::TreeAttrs => tree_attrs(fd, s.flags),
    };
    let r = r.and_then(|_| {
        if s.propagation != 0 {
            mount(None, target, None, s.propagation, None)
        } else {
            Ok(())
        }
    });
    close(fd);
    r
}

/// The flags of the mount at `path` that a remount must keep (nosuid, nodev, noexec, atime).
fn locked_flags(path: &CStr) -> c_ulong {
    // SAFETY: statvfs fills the zeroed struct; path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let mut f = 0;
    for (st_flag, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            f |= ms;
        }
    }
    f
}

/// Makes the root filesystem a mount point of its own and returns an `O_PATH` descriptor.
pub(crate) fn prepare_root(p: &FsPlan) -> std::result::Result<i32, (u8, i32)> {
    mount(None, c"/", None, p.root_propagation, None).map_err(|e| (1, e))?;
    mount(
        Some(&p.rootfs),
        &p.rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(|e| (2, e))?;
    // SAFETY: rootfs is NUL-terminated.
    let fd = unsafe {
        libc::open(
            p.rootfs.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err((2, crate::caps::errno()));
    }
    Ok(fd)
}

/// Creates device nodes and symlinks. Returns the failing device index on error.
pub(crate) fn create_devices(root: i32, p: &FsPlan) -> std::result::Result<(), (usize, i32)> {
    for (i, d) in p.devices.iter().enumerate() {
        let bytes = d.path.to_bytes();
        if let Some(slash) = bytes.iter().rposition(|&b| b == b'/') {
            let mut dir = [0u8; 512];
            if slash < dir.len() {
                dir[..slash].copy_from_slice(&bytes[..slash]);
                if let Ok(c) = CStr::from_bytes_until_nul(&dir[..=slash]) {
                    let fd = ensure_in_root(root, c, false).map_err(|e| (i, e))?;
                    close(fd);
                }
            }
        }
        // SAFETY: path is NUL-terminated and relative to the open root.
        let r = unsafe { libc::mknodat(root, d.path.as_ptr(), d.mode, d.dev) };
        if r != 0 && crate::caps::errno() != libc::EEXIST {
            return Err((i, crate::caps::errno()));
        }
        // SAFETY: as above.
        unsafe {
            libc::fchownat(
                root,
                d.path.as_ptr(),
                d.uid,
                d.gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
    }
    for (target, link) in &p.symlinks {
        // SAFETY: both strings are NUL-terminated.
        let r = unsafe { libc::symlinkat(target.as_ptr(), root, link.as_ptr()) };
        if r != 0 && crate::caps::errno() != libc::EEXIST {
            return Err((p.devices.len(), crate::caps::errno()));
        }
    }
    Ok(())
}

/// Switches the root to `rootfs` with `pivot_root(".", ".")` and detaches the old root.
pub(crate) fn pivot(p: &FsPlan) -> std::result::Result<(), i32> {
    // SAFETY: plain path-based system calls on NUL-terminated strings.
    unsafe {
        if libc::chdir(p.rootfs.as_ptr()) != 0 {
            return Err(crate::caps::errno());
        }
        if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
            return Err(crate::caps::errno());
        }
        // Keep the detach from propagating to the host's copy of these mounts.
        if libc::mount(
            std::ptr::null(),
            c".".as_ptr(),
            std::ptr::null(),
            libc::MS_SLAVE | libc::MS_REC,
            std::ptr::null(),
        ) != 0
        {
            return Err(crate::caps::errno());
        }
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(crate::caps::errno());
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            return Err(crate::caps::errno());
        }
    }
    Ok(())
}

/// Hides each path: a read-only empty tmpfs over directories, /dev/null over files.
pub(crate) fn mask(paths: &[CString]) -> std::result::Result<(), (usize, i32)> {
    for (i, path) in paths.iter().enumerate() {
        // SAFETY: stat into a zeroed struct; path is NUL-terminated.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::stat(path.as_ptr(), &mut st) } != 0 {
            continue;
        }
        let r = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            mount(
                Some(c"tmpfs"),
                path,
                Some(c"tmpfs"),
                libc::MS_RDONLY,
                Some(c"size=0k"),
            )
        } else {
            mount(Some(c"/dev/null"), path, None, libc::MS_BIND, None)
        };
        r.map_err(|e| (i, e))?;
    }
    Ok(())
}

/// Makes each existing path read-only with a bind mount onto itself.
pub(crate) fn make_readonly(paths: &[CString]) -> std::result::Result<(), (usize, i32)> {
    for (i, path) in paths.iter().enumerate() {
        match mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None) {
            Ok(()) => {}
            Err(libc::ENOENT) => continue,
            Err(e) => return Err((i, e)),
        }
        let flags =
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC | locked_flags(path);
        mount(None, path, None, flags, None).map_err(|e| (i, e))?;
    }
    Ok(())
}

pub(crate) fn readonly_root() -> std::result::Result<(), i32> {
    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked_flags(c"/");
    mount(None, c"/", None, flags, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_paths_format() {
        let mut b = [0u8; 32];
        assert_eq!(fd_path(&mut b, 7).to_bytes(), b"/proc/self/fd/7");
        assert_eq!(fd_path(&mut b, 1234).to_bytes(), b"/proc/self/fd/1234");
    }

    #[test]
    fn options_split_into_flags_and_data() {
        assert_eq!(flag_option("ro"), Some((libc::MS_RDONLY, 0)));
        assert_eq!(flag_option("mode=755"), None);
        assert_eq!(
            propagation_flags("rslave"),
            Some(libc::MS_SLAVE | libc::MS_REC)
        );
    }

    #[test]
    fn ensure_creates_directories_inside_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("escape")).unwrap();
        let rootc = CString::new(root.as_os_str().as_bytes()).unwrap();
        // SAFETY: test-only open of a directory.
        let rfd = unsafe { libc::open(rootc.as_ptr(), libc::O_PATH | libc::O_DIRECTORY) };
        let fd = ensure_in_root(rfd, c"a/b/c", false).unwrap();
        close(fd);
        assert!(root.join("a/b/c").is_dir());
        // The absolute symlink resolves inside the root, so the directory lands there.
        let fd = ensure_in_root(rfd, c"escape/berth-test-x", false).unwrap();
        close(fd);
        assert!(root.join("etc/berth-test-x").is_dir());
        assert!(!Path::new("/etc/berth-test-x").exists());
        let fd = ensure_in_root(rfd, c"f/file", true).unwrap();
        close(fd);
        assert!(root.join("f/file").is_file());
        close(rfd);
    }
}
