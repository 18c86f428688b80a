//! `berth registry gc`: refuses to run while a registry serves the root, reports with
//! `--dry-run`, deletes only unreferenced blobs, and the registry serves everything else
//! afterwards.

mod registry_support;

use std::process::Command;

use berth_e2e::{berth_bin, require_root};
use registry_support::{RegistryProc, busybox_layout, layout_path, run, run_fails, skopeo};

#[test]
fn offline_gc_deletes_only_unreferenced_blobs() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_layout(t, "1");
    let root = t.join("reg");
    let reg = RegistryProc::start(&root, &["--no-auth"]);
    let src = format!("oci:{}:1", layout_path(t).display());
    run(skopeo(t).args([
        "copy",
        "--dest-tls-verify=false",
        &src,
        &format!("docker://{}/keep/bb:1", reg.addr),
    ]));
    // The same image as a Docker schema2 manifest: its manifest blob is its own.
    run(skopeo(t).args([
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &src,
        &format!("docker://{}/drop/bb:1", reg.addr),
    ]));
    let digest = run(skopeo(t).args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{}/drop/bb:1", reg.addr),
    ]));
    run(skopeo(t).args([
        "delete",
        "--tls-verify=false",
        &format!("docker://{}/drop/bb@{}", reg.addr, digest.trim()),
    ]));

    let gc = |extra: &[&str]| {
        let mut c = Command::new(berth_bin());
        c.args(["registry", "gc", "--root"]).arg(&root).args(extra);
        c
    };
    let err = run_fails(&mut gc(&[]));
    assert!(
        err.contains("another berth registry process"),
        "gc must refuse while serving: {err}"
    );
    drop(reg);

    // The images share config and layers, so deleting one frees only its manifest.
    let dry: serde_json::Value =
        serde_json::from_str(&run(&mut gc(&["--dry-run", "-o", "json"]))).unwrap();
    assert_eq!(dry["dry_run"], true);
    let would = dry["blobs_deleted"].as_u64().unwrap();
    assert!(would >= 1, "{dry}");
    let done: serde_json::Value = serde_json::from_str(&run(&mut gc(&["-o", "json"]))).unwrap();
    assert_eq!(done["blobs_deleted"].as_u64().unwrap(), would);
    let again: serde_json::Value = serde_json::from_str(&run(&mut gc(&["-o", "json"]))).unwrap();
    assert_eq!(
        again["blobs_deleted"], 0,
        "a second collection found more garbage: {again}"
    );

    let reg = RegistryProc::start(&root, &["--no-auth"]);
    let back = t.join("back");
    run(skopeo(t).args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/keep/bb:1", reg.addr),
        &format!("oci:{}:1", back.display()),
    ]));
}
