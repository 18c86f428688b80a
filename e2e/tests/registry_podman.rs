//! Real podman against berth's registry (token auth): push an image built from
//! busybox-static, pull it into a fresh podman store, and run it.

mod registry_support;

use std::process::Command;

use berth_e2e::require_root;
use registry_support::{RegistryProc, busybox_layout, htpasswd, layout_path, run, skopeo};

/// podman with a private store; the --ulimit flags are needed on these VMs (no
/// CAP_SYS_RESOURCE), see ANCHORS, and runc because crun refuses hybrid cgroups.
fn podman(t: &std::path::Path) -> Command {
    let mut c = Command::new("podman");
    c.env("HOME", t)
        .env("XDG_RUNTIME_DIR", t)
        .env("CONTAINERS_REGISTRIES_CONF", t.join("registries.conf"))
        .arg("--root")
        .arg(t.join("podman-root"))
        .arg("--runroot")
        .arg(t.join("podman-run"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ]);
    c
}

#[test]
fn podman_push_pull_run() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(
        t.join("registries.conf"),
        "unqualified-search-registries = []\n",
    )
    .unwrap();
    busybox_layout(t, "1");
    let h = htpasswd(t, "bob", "pw");
    let reg = RegistryProc::start(&t.join("reg"), &["--htpasswd", h.to_str().unwrap()]);
    let image = format!("{}/e2e/podman:1", reg.addr);

    // Load the layout into podman's store, push it to berth.
    run(skopeo(t).args([
        "copy",
        &format!("oci:{}:1", layout_path(t).display()),
        &format!(
            "containers-storage:[vfs@{}+{}]{image}",
            t.join("podman-root").display(),
            t.join("podman-run").display()
        ),
    ]));
    run(podman(t).args([
        "login",
        "--tls-verify=false",
        "-u",
        "bob",
        "-p",
        "pw",
        &reg.addr,
    ]));
    run(podman(t).args(["push", "--tls-verify=false", &image]));
    run(podman(t).args(["rmi", &image]));
    run(podman(t).args(["pull", "--tls-verify=false", &image]));
    let out = run(podman(t).args([
        "--runtime",
        "runc",
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=32768:32768",
        &image,
        "/bin/busybox",
        "cat",
        "/etc/berth-e2e",
    ]));
    assert_eq!(out.trim(), "second layer");
    let _ = run(podman(t).args(["rmi", "-a", "-f"]));
}
