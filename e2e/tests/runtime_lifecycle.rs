//! `berth runtime`: the runc verbs on busybox bundles — exit codes, create/start/state/kill/
//! delete, list, runc-like errors, nothing left behind after failures, and the same bundle
//! running under runc.

mod runtime_support;

use runtime_support::{Bundle, Rt};
use serde_json::json;

#[test]
fn run_propagates_exit_codes_and_removes_everything() {
    let rt = Rt::new();
    let b = Bundle::busybox(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let id = berth_e2e::unique_name("rc");
    let (code, out, err) = rt.run_container(&id, &b);
    assert_eq!(code, 3, "stderr: {err}");
    assert_eq!(out, "out\n");
    assert_eq!(err, "err\n");
    assert!(!rt.root.path().join(&id).exists(), "state dir left behind");
    for d in b.cgroup_dirs() {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    // Killed by a signal: 128 + signal, like runc.
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = berth_e2e::unique_name("rk");
    let mut fg = rt
        .cmd()
        .args(["run", "-b", b.path().to_str().unwrap(), &id])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    berth_e2e::wait_until(
        "the foreground container to run",
        std::time::Duration::from_secs(10),
        || rt.run(&["state", &id]).status.success().then_some(()),
    );
    rt.ok(&["kill", &id, "KILL"]);
    assert_eq!(fg.wait().unwrap().code(), Some(137));
    assert!(!rt.root.path().join(&id).exists(), "state dir left behind");
}

#[test]
fn create_start_state_kill_delete() {
    let rt = Rt::new();
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = berth_e2e::unique_name("cs");
    let bundle = b.path().to_str().unwrap();
    rt.ok(&["create", "--bundle", bundle, &id]);
    let st = rt.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["ociVersion"], "1.0.2");
    assert!(st["pid"].as_i64().unwrap() > 0);
    assert_eq!(st["bundle"], bundle);
    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id), "running");
    let list = rt.ok(&["list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id.as_str() && c["status"] == "running")
    );
    assert!(rt.ok(&["list", "-q"]).lines().any(|l| l == id));

    // Deleting a running container needs --force; starting twice fails.
    let err = rt.fails(&["delete", &id]);
    assert!(err.contains("running"), "{err}");
    rt.fails(&["start", &id]);

    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    let st = rt.state(&id);
    assert_eq!(st["exit"]["code"], 137);
    assert_eq!(st["exit"]["signal"], 9);
    let err = rt.fails(&["kill", &id]);
    assert!(err.contains("not running"), "{err}");
    rt.ok(&["delete", &id]);
    let err = rt.fails(&["state", &id]);
    assert!(err.contains("does not exist"), "{err}");
    for d in b.cgroup_dirs() {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
}

#[test]
fn kill_all_and_delete_force() {
    let rt = Rt::new();
    let b = Bundle::busybox(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    let id = berth_e2e::unique_name("ka");
    rt.ok(&[
        "run",
        "--detach",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]);
    berth_e2e::wait_until(
        "three processes",
        std::time::Duration::from_secs(10),
        || {
            let pids: Vec<i64> =
                serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).ok()?;
            (pids.len() == 3).then_some(())
        },
    );
    rt.ok(&["kill", "--all", &id, "TERM"]);
    rt.wait_status(&id, "stopped");

    let id2 = berth_e2e::unique_name("kf");
    let b2 = Bundle::busybox(&["sleep", "1000"]);
    rt.ok(&["run", "-d", "-b", b2.path().to_str().unwrap(), &id2]);
    rt.ok(&["delete", "--force", &id2]);
    assert!(!rt.root.path().join(&id2).exists());
    for d in b2.cgroup_dirs() {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
}

#[test]
fn errors_are_runc_like_and_leave_nothing_behind() {
    let rt = Rt::new();
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = berth_e2e::unique_name("er");
    let bundle = b.path().to_str().unwrap();
    rt.ok(&["create", "-b", bundle, &id]);
    let err = rt.fails(&["create", "-b", bundle, &id]);
    assert!(err.contains("already exists"), "{err}");
    rt.ok(&["delete", "--force", &id]);

    let err = rt.fails(&["state", "no-such-container"]);
    assert!(err.contains("does not exist"), "{err}");
    // runc's --log/--log-format: errors are appended as JSON for engines to read.
    let log = rt.root.path().join("runtime.log");
    let log_s = log.to_str().unwrap();
    rt.fails(&[
        "--log",
        log_s,
        "--log-format",
        "json",
        "state",
        "no-such-container",
    ]);
    let entry: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(entry["level"], "error");
    assert!(
        entry["msg"].as_str().unwrap().contains("does not exist"),
        "{entry}"
    );
    std::fs::remove_file(&log).unwrap();
    let err = rt.fails(&["kill", "no-such-container"]);
    assert!(err.contains("does not exist"), "{err}");
    let err = rt.fails(&["create", "-b", bundle, "bad/id"]);
    assert!(err.contains("invalid container id"), "{err}");

    // A bad field is named; an unsupported one too.
    let mut bad = Bundle::busybox(&["true"]);
    bad.config["linux"]["resources"]["memory"] = json!({"limit": "lots"});
    bad.save();
    let err = rt.fails(&[
        "create",
        "-b",
        bad.path().to_str().unwrap(),
        &berth_e2e::unique_name("bf"),
    ]);
    assert!(err.contains("linux.resources.memory.limit"), "{err}");
    bad.config["linux"]["resources"] = json!({"blockIO": {"weight": 10}});
    bad.save();
    let err = rt.fails(&[
        "create",
        "-b",
        bad.path().to_str().unwrap(),
        &berth_e2e::unique_name("bu"),
    ]);
    assert!(err.contains("linux.resources.blockIO"), "{err}");

    // Missing rootfs.
    let missing = Bundle::busybox(&["true"]);
    std::fs::remove_dir_all(missing.path().join("rootfs")).unwrap();
    let err = rt.fails(&[
        "run",
        "-b",
        missing.path().to_str().unwrap(),
        &berth_e2e::unique_name("mr"),
    ]);
    assert!(err.contains("root.path"), "{err}");

    // Failures inside the init name the step, and undo the cgroup and state.
    let mut nope = Bundle::busybox(&["/no/such/program"]);
    nope.save();
    let nid = berth_e2e::unique_name("np");
    let err = rt.fails(&["create", "-b", nope.path().to_str().unwrap(), &nid]);
    assert!(err.contains("executable file not found"), "{err}");
    nope.config["process"]["args"] = json!(["true"]);
    nope.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/x", "type": "nosuchfs", "source": "x"}));
    nope.save();
    let err = rt.fails(&["run", "-b", nope.path().to_str().unwrap(), &nid]);
    assert!(err.contains("mounts[7]"), "{err}");
    for bundle in [&bad, &missing, &nope] {
        for d in bundle.cgroup_dirs() {
            assert!(!d.exists(), "cgroup {} left behind", d.display());
        }
    }
    let left: Vec<_> = std::fs::read_dir(rt.root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "state left behind: {left:?}");
    assert!(runtime_support::pids_with_cmdline("/no/such/program").is_empty());
}

#[test]
fn the_same_bundle_runs_under_runc() {
    if std::process::Command::new("runc")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("runc is not installed (scripts/install-deps.sh installs it)");
    }
    let rt = Rt::new();
    let b = Bundle::busybox(&["sh", "-c", "hostname; exit 5"]);
    let (code, out, _) = rt.run_container(&berth_e2e::unique_name("cr"), &b);
    assert_eq!((code, out.as_str()), (5, "runc\n"));
    let runc_root = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(runc_root.path())
        .args([
            "run",
            "--bundle",
            b.path().to_str().unwrap(),
            &berth_e2e::unique_name("rr"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "runc\n");
}

/// A descriptor the caller of `create` holds (here inherited without close-on-exec, the worst
/// case) reaches neither the container, while it waits for `start` or after, nor its shim:
/// the node agent creates containers from its own process, whose sockets must not be held.
#[test]
fn the_callers_descriptors_are_not_inherited() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let rt = Rt::new();
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = berth_e2e::unique_name("fd");
    let (r, w) = std::io::pipe().unwrap();
    let target = format!("pipe:[{}]", inode_of(w.as_raw_fd()));
    let raw = w.as_raw_fd();
    let mut cmd = rt.cmd();
    cmd.args(["create", "--bundle", b.path().to_str().unwrap(), &id]);
    // SAFETY: clearing close-on-exec on a descriptor we own, in the child before exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(raw, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The container inherits the caller's stdio (as with runc), so no pipes for those.
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    drop((r, w));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let shim = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap()
        .rsplit(") ")
        .next()
        .and_then(|rest| rest.split(' ').nth(1).map(str::to_owned))
        .unwrap();
    let holds = |pid: &str| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|l| l.display().to_string())
            .filter(|l| *l == target)
            .collect()
    };
    assert_eq!(
        holds(&pid.to_string()),
        Vec::<String>::new(),
        "the waiting init"
    );
    assert_eq!(holds(&shim), Vec::<String>::new(), "the shim (pid {shim})");
    rt.ok(&["start", &id]);
    assert_eq!(
        holds(&pid.to_string()),
        Vec::<String>::new(),
        "the container"
    );
    rt.ok(&["delete", "--force", &id]);
}

fn inode_of(fd: i32) -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .unwrap()
        .ino()
        .to_string()
}
