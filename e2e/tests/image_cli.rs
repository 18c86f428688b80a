//! The image CLI end to end: `berth import` (OCI layout, OCI archive, docker archive,
//! rootfs tar), `images`, `tag`, `inspect`, `export`, `push` to berth's registry, `rmi`,
//! `pull` back by an unqualified name resolved through `--registry`.

mod registry_support;

use std::path::Path;
use std::process::Command;

use berth_e2e::{berth_bin, require_root};
use registry_support::{RegistryProc, busybox_layout, layout_path, run, run_fails, skopeo};

fn berth(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(berth_bin());
    c.args(args).arg("--data-dir").arg(data);
    c
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn import_tag_inspect_export_push_rmi_pull() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = t.join("data");
    busybox_layout(t, "1");
    let layout = layout_path(t);

    // OCI layout whose entry carries only a tag: a name is required.
    let err = run_fails(&mut berth(&data, &["import", layout.to_str().unwrap()]));
    assert!(err.contains("give an image name"), "{err}");
    let out = run(&mut berth(
        &data,
        &[
            "import",
            layout.to_str().unwrap(),
            "local/bb:1",
            "-o",
            "json",
        ],
    ));
    let imported = json(&out);
    let digest = imported[0]["digest"].as_str().unwrap().to_owned();

    run(&mut berth(&data, &["tag", "local/bb:1", "local/bb:2"]));
    let list = json(&run(&mut berth(&data, &["images", "-o", "json"])));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["local/bb:1", "local/bb:2"]);
    let table = run(&mut berth(&data, &["images"]));
    assert!(
        table.starts_with("NAME") && table.contains("local/bb:2"),
        "{table}"
    );
    let info = json(&run(&mut berth(
        &data,
        &["inspect", "local/bb:2", "-o", "json"],
    )));
    assert_eq!(info["digest"].as_str(), Some(digest.as_str()));
    assert_eq!(
        info["config"]["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.len()),
        Some(2)
    );

    // Export as a layout and as an OCI archive; skopeo reads both; re-import the archive.
    let out_dir = t.join("exported");
    run(&mut berth(
        &data,
        &[
            "export",
            "local/bb:1",
            out_dir.to_str().unwrap(),
            "--tag",
            "x",
        ],
    ));
    let raw = run(skopeo(t).args(["inspect", "--raw", &format!("oci:{}:x", out_dir.display())]));
    assert_eq!(
        registry_support::conformance::sha256(raw.as_bytes()),
        digest
    );
    let archive = t.join("bb-oci.tar");
    run(&mut berth(
        &data,
        &["export", "local/bb:1", archive.to_str().unwrap()],
    ));
    let data2 = t.join("data2");
    let out = run(&mut berth(
        &data2,
        &[
            "import",
            archive.to_str().unwrap(),
            "again/bb:1",
            "-o",
            "json",
        ],
    ));
    assert_eq!(json(&out)[0]["digest"].as_str(), Some(digest.as_str()));

    // Docker archive (written by skopeo) imports with its RepoTags name.
    let darchive = t.join("bb-docker.tar");
    run(skopeo(t).args([
        "copy",
        &format!("oci:{}:1", layout.display()),
        &format!("docker-archive:{}:docker/bb:7", darchive.display()),
    ]));
    let out = run(&mut berth(
        &data2,
        &["import", darchive.to_str().unwrap(), "-o", "json"],
    ));
    // skopeo records the normalised name in RepoTags.
    assert_eq!(
        json(&out)[0]["name"].as_str(),
        Some("docker.io/docker/bb:7")
    );

    // Plain rootfs tar (gzip) becomes a one-layer image.
    let rootfs = t.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    let tgz = t.join("rootfs.tar.gz");
    run(Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&rootfs)
        .arg("."));
    let out = run(&mut berth(
        &data2,
        &["import", tgz.to_str().unwrap(), "plain:1", "-o", "json"],
    ));
    let plain = json(&out);
    assert_eq!(plain[0]["name"].as_str(), Some("plain:1"));

    // Push to a berth registry, remove locally (content is pruned), pull back unqualified.
    let reg = RegistryProc::start(&t.join("reg"), &["--no-auth"]);
    let registry = format!("http://{}", reg.addr);
    let out = run(&mut berth(
        &data2,
        &["push", "plain:1", "--registry", &registry, "-o", "json"],
    ));
    let pushed = json(&out);
    assert_eq!(
        pushed["name"].as_str(),
        Some(format!("{}/plain:1", reg.addr).as_str())
    );
    let out = run(&mut berth(&data2, &["rmi", "plain:1", "-o", "json"]));
    assert!(
        json(&out)[0]["removed"]["blobs"].as_u64().unwrap() >= 1,
        "{out}"
    );
    let err = run_fails(&mut berth(&data2, &["inspect", "plain:1"]));
    assert!(err.contains("not found"), "{err}");
    let out = run(&mut berth(
        &data2,
        &["pull", "plain:1", "--registry", &registry, "-o", "json"],
    ));
    assert_eq!(json(&out)["digest"], pushed["digest"]);
    // Pulling again is a no-op transfer (everything already present) with the same result.
    let out = run(&mut berth(
        &data2,
        &["pull", "plain:1", "--registry", &registry, "-o", "json"],
    ));
    assert_eq!(json(&out)["digest"], pushed["digest"]);
    // Without any registry an unqualified name is a clear error.
    let err = run_fails(&mut berth(&t.join("data3"), &["pull", "plain:1"]));
    assert!(err.contains("no default registry"), "{err}");
}
