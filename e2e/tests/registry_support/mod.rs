//! Shared pieces of the registry and image end-to-end tests: a `berth registry serve`
//! process owned by a test, test images built with umoci from busybox-static, and the
//! black-box distribution-spec conformance suite.

#![allow(dead_code)]

pub mod conformance;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_e2e::{berth_bin, wait_until};

/// A registry process; killed (and waited for) on drop.
pub struct RegistryProc {
    pub child: Child,
    pub addr: String,
    pub root: PathBuf,
    pub args: Vec<String>,
}

impl RegistryProc {
    /// Starts `berth registry serve --root ROOT --addr 127.0.0.1:0 EXTRA...`.
    pub fn start(root: &Path, extra: &[&str]) -> RegistryProc {
        let addr_file = root.with_extension(format!("addr-{}", berth_e2e::unique_name("r")));
        let _ = std::fs::remove_file(&addr_file);
        let mut args: Vec<String> = vec![
            "registry".into(),
            "serve".into(),
            "--root".into(),
            root.display().to_string(),
        ];
        args.extend([
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--addr-file".into(),
            addr_file.display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(berth_bin())
            .args(&args)
            .env("BERTH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start berth registry");
        let addr = wait_until("registry address file", Duration::from_secs(30), || {
            std::fs::read_to_string(&addr_file).ok()
        });
        let _ = std::fs::remove_file(&addr_file);
        RegistryProc {
            child,
            addr,
            root: root.to_owned(),
            args,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RegistryProc {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command with a deadline (a hung client fails the test instead of stalling it).
pub fn output(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut so, &mut v).ok();
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut se, &mut v).ok();
        v
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: t1.join().unwrap(),
        stderr: t2.join().unwrap(),
    }
}

/// Runs a command, failing the test with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command expected to fail; returns its stderr.
pub fn run_fails(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        !out.status.success(),
        "{cmd:?} unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Builds an OCI layout at `dir` with image `tag`: busybox-static in one layer, a small
/// file in a second, `Cmd ["/bin/sh"]`.
pub fn busybox_layout(dir: &Path, tag: &str) {
    let layout = dir.join("layout");
    let bundle = dir.join("bundle");
    let img = format!("{}:{tag}", layout.display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &img]));
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &img])
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static is installed");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    run(Command::new("umoci")
        .args(["repack", "--refresh-bundle", "--image", &img])
        .arg(&bundle));
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/berth-e2e"), "second layer\n").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--refresh-bundle", "--image", &img])
        .arg(&bundle));
    run(Command::new("umoci").args(["config", "--image", &img, "--config.cmd", "/bin/sh"]));
    let _ = std::fs::remove_dir_all(&bundle);
}

pub fn layout_path(dir: &Path) -> PathBuf {
    dir.join("layout")
}

/// An htpasswd file with one bcrypt user.
pub fn htpasswd(dir: &Path, user: &str, pass: &str) -> PathBuf {
    let p = dir.join("htpasswd");
    let hash = bcrypt::hash(pass, 5).unwrap();
    std::fs::write(&p, format!("{user}:{hash}\n")).unwrap();
    p
}

/// Skopeo with its blob-info cache kept per test (so repeated pushes are real uploads).
pub fn skopeo(tmp: &Path) -> Command {
    let mut c = Command::new("skopeo");
    c.env("XDG_RUNTIME_DIR", tmp).env("HOME", tmp);
    c.arg("--registries-conf").arg(registries_conf(tmp));
    c
}

fn registries_conf(tmp: &Path) -> PathBuf {
    let p = tmp.join("registries.conf");
    if !p.exists() {
        std::fs::write(&p, "unqualified-search-registries = []\n").unwrap();
    }
    p
}
