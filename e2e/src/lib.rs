//! Support for berth's end-to-end tests (the tests themselves are in `e2e/tests/`).
//!
//! End-to-end tests run the real `berth` binary (built beforehand by `scripts/test.sh`, found
//! through `BERTH_BIN`), as root, against real kernels features and real client tools. Each
//! test owns its temp dirs, OS-assigned ports and uniquely named kernel objects, and removes
//! them on success and on failure, so tests can run in parallel. Nothing here waits by
//! sleeping for a state: [`wait_until`] polls with a deadline.

pub mod server;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Path of the berth binary under test.
pub fn berth_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/berth");
    assert!(
        bin.exists(),
        "berth binary not found at {} (build it with `cargo build --bin berth` or set BERTH_BIN)",
        bin.display()
    );
    bin
}

/// Fails the test unless it runs as root: end-to-end tests need namespaces, cgroups and
/// mounts, and CI runs them as root, so silently skipping would hide a broken environment.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "end-to-end tests must run as root (they create namespaces, cgroups and mounts)"
    );
}

/// A name unique to this process and call, short enough for interface names (≤ 15 bytes
/// with a prefix of ≤ 5 bytes).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}{:x}", std::process::id() & 0xfffff, n)
}

/// Polls `check` until it returns `Some`, or fails after `timeout` with `what` in the message.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes a root filesystem tar of the host's static busybox (with its applet links and the
/// usual top-level directories) into `dir`, for `berth import <tar> <name>`.
pub fn busybox_rootfs_tar(dir: &std::path::Path) -> PathBuf {
    let root = dir.join("busybox-rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root", "var/www"] {
        std::fs::create_dir_all(root.join(d)).expect("rootfs dirs");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("busybox-static is installed (scripts/install-deps.sh)");
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .expect("passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").expect("group");
    let tar = dir.join("busybox-rootfs.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success(), "tar failed");
    tar
}
