//! Shared pieces of the `berth runtime` end-to-end tests: busybox bundles built from the host's
//! `/bin/busybox` (busybox-static) with a `runc spec`-like config, a private state root per
//! test, unique cgroup paths, and cleanup of containers and cgroups on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

/// A bundle directory with a busybox root filesystem.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
    pub cgroup: String,
}

/// `runc spec`'s default configuration (runc 1.1), with `args` and a unique cgroup path.
pub fn default_config(args: &[&str], cgroup: &str) -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "cgroupsPath": cgroup,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

impl Bundle {
    /// A busybox bundle running `args`, in cgroup `/berth-e2e/<unique>`.
    pub fn busybox(args: &[&str]) -> Bundle {
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
            std::fs::create_dir_all(rootfs.join(d)).expect("mkdir rootfs");
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("copy /bin/busybox (install busybox-static: scripts/install-deps.sh)");
        let list = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
            }
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        let cgroup = format!("/berth-e2e/{}", berth_e2e::unique_name("c"));
        let config = default_config(args, &cgroup);
        let b = Bundle {
            dir,
            config,
            cgroup,
        };
        b.save();
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `config` to config.json (after tests edit it).
    pub fn save(&self) {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// Directories of this bundle's cgroup in every v1 hierarchy (and v2), existing or not.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(e.path().join(self.cgroup.trim_start_matches('/')));
        }
        out
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for d in self.cgroup_dirs() {
            let _ = std::fs::remove_dir(&d);
            // The shared /berth-e2e parent goes once the last test's container is gone (busy
            // while another test still has one: then that test removes it).
            if let Some(parent) = d.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

/// A private runtime root; deletes (force) every container left in it on drop.
pub struct Rt {
    pub root: tempfile::TempDir,
}

impl Rt {
    pub fn new() -> Rt {
        berth_e2e::require_root();
        Rt {
            root: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(berth_e2e::berth_bin());
        c.arg("runtime").arg("--root").arg(self.root.path());
        c
    }

    /// Runs `berth runtime --root R <args>` and returns its output. Output goes through
    /// files, not pipes: a detached container inherits them and would hold a pipe open.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = tempfile::tempfile().expect("tempfile");
        let err = tempfile::tempfile().expect("tempfile");
        let status = self
            .cmd()
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap())
            .status()
            .expect("run berth runtime");
        let read = |mut f: std::fs::File| {
            use std::io::{Read, Seek};
            let mut v = Vec::new();
            f.seek(std::io::SeekFrom::Start(0)).unwrap();
            f.read_to_end(&mut v).unwrap();
            v
        };
        Output {
            status,
            stdout: read(out),
            stderr: read(err),
        }
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth runtime {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "berth runtime {args:?} unexpectedly succeeded"
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "runc-like exit status 1 for {args:?}"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state is JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn wait_status(&self, id: &str, want: &str) {
        berth_e2e::wait_until(
            &format!("container {id} to be {want}"),
            Duration::from_secs(20),
            || (self.status(id) == want).then_some(()),
        );
    }

    /// Runs `args` in a new container in the foreground; returns (exit code, stdout, stderr).
    pub fn run_container(&self, id: &str, b: &Bundle) -> (i32, String, String) {
        let out = self.run(&["run", "--bundle", b.path().to_str().unwrap(), id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        for e in std::fs::read_dir(self.root.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                let _ = self.run(&["delete", "--force", &name]);
            }
        }
    }
}

/// Pids whose /proc/<pid>/cmdline starts with `needle`.
pub fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>()
            && let Ok(c) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&c).starts_with(needle)
        {
            out.push(pid);
        }
    }
    out
}
