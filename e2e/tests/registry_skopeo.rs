//! Real skopeo against berth's registry with token auth on: push and pull OCI layouts and
//! docker archives, copy between two berth registries (token → Basic), delete; then the
//! berth CLI pulls the same image and prepares a root filesystem from it.

mod registry_support;

use std::process::Command;

use berth_e2e::{berth_bin, require_root};
use registry_support::{
    RegistryProc, busybox_layout, htpasswd, layout_path, run, run_fails, skopeo,
};

fn inspect_digest(tmp: &std::path::Path, image: &str, creds: &str) -> String {
    let out = run(skopeo(tmp).args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        creds,
        "--format",
        "{{.Digest}}",
        image,
    ]));
    out.trim().to_owned()
}

#[test]
fn skopeo_push_pull_copy_delete_with_token_auth() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_layout(t, "1");
    let layout = layout_path(t);
    let h = htpasswd(t, "alice", "s3cret");
    let reg1 = RegistryProc::start(&t.join("reg1"), &["--htpasswd", h.to_str().unwrap()]);
    let reg2 = RegistryProc::start(
        &t.join("reg2"),
        &["--htpasswd", h.to_str().unwrap(), "--auth", "basic"],
    );
    let src = format!("oci:{}:1", layout.display());
    let dest = format!("docker://{}/e2e/busybox:1", reg1.addr);

    // No or wrong credentials: refused.
    let refused = |e: &str| {
        e.contains("401") || e.contains("denied") || e.to_lowercase().contains("unauthorized")
    };
    let err = run_fails(skopeo(t).args(["copy", "--dest-tls-verify=false", &src, &dest]));
    assert!(refused(&err), "{err}");
    let err = run_fails(skopeo(t).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:wrong",
        &src,
        &dest,
    ]));
    assert!(refused(&err), "{err}");

    // Push the OCI layout, read it back.
    run(skopeo(t).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:s3cret",
        &src,
        &dest,
    ]));
    let d1 = inspect_digest(t, &dest, "alice:s3cret");
    assert!(d1.starts_with("sha256:"), "{d1}");
    let pulled = t.join("pulled");
    run(skopeo(t).args([
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        "alice:s3cret",
        &dest,
        &format!("oci:{}:1", pulled.display()),
    ]));
    let raw_src = run(skopeo(t).args(["inspect", "--raw", &src]));
    let raw_back =
        run(skopeo(t).args(["inspect", "--raw", &format!("oci:{}:1", pulled.display())]));
    assert_eq!(raw_src, raw_back, "manifest changed on the round trip");

    // Docker archive in and out.
    let archive = t.join("bb.tar");
    run(skopeo(t).args([
        "copy",
        &src,
        &format!("docker-archive:{}:e2e/bb:2", archive.display()),
    ]));
    let dest2 = format!("docker://{}/e2e/bb:2", reg1.addr);
    run(skopeo(t).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:s3cret",
        &format!("docker-archive:{}", archive.display()),
        &dest2,
    ]));
    let back = t.join("back.tar");
    run(skopeo(t).args([
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        "alice:s3cret",
        &dest2,
        &format!("docker-archive:{}:e2e/bb:2", back.display()),
    ]));
    assert!(
        std::fs::metadata(&back).unwrap().len() > 500_000,
        "docker archive pulled back is too small"
    );

    // Copy between two berth registries (token auth → Basic auth), then delete there.
    let mirror = format!("docker://{}/mirror/busybox:1", reg2.addr);
    run(skopeo(t).args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        "alice:s3cret",
        "--dest-creds",
        "alice:s3cret",
        &dest,
        &mirror,
    ]));
    assert_eq!(inspect_digest(t, &mirror, "alice:s3cret"), d1);
    run(skopeo(t).args([
        "delete",
        "--tls-verify=false",
        "--creds",
        "alice:s3cret",
        &format!("docker://{}/mirror/busybox@{d1}", reg2.addr),
    ]));
    let err = run_fails(skopeo(t).args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        "alice:s3cret",
        &mirror,
    ]));
    assert!(
        err.contains("manifest unknown")
            || err.contains("MANIFEST_UNKNOWN")
            || err.contains("not found"),
        "{err}"
    );

    // The berth CLI pulls the same image with the same credentials and prepares it.
    let data = t.join("data");
    let berth = |args: &[&str]| {
        let mut c = Command::new(berth_bin());
        c.args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("BERTH_REGISTRY", format!("http://{}", reg1.addr));
        c
    };
    let out = run(&mut berth(&[
        "pull",
        "e2e/busybox:1",
        "--creds",
        "alice:s3cret",
        "-o",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["digest"].as_str(), Some(d1.as_str()), "{out}");
    let out = run(&mut berth(&["inspect", "e2e/busybox:1", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["runtime"]["cmd"], serde_json::json!(["/bin/sh"]), "{out}");
    assert_eq!(
        v["manifest"]["layers"].as_array().map(|l| l.len()),
        Some(2),
        "{out}"
    );
}
