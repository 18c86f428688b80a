//! End-to-end: `berth server` carries the cluster's registry (cluster TLS, cluster
//! credentials) and `berth push|pull` resolve unqualified names to it through the data dir.

use berth_e2e::server::BerthServer;

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn unqualified_images_push_to_and_pull_from_the_cluster_registry() {
    berth_e2e::require_root();
    let s = BerthServer::start(&[]);
    let tmp = tempfile::tempdir().expect("tmp");
    let tar = berth_e2e::busybox_rootfs_tar(tmp.path());
    ok(
        s.berth(&["import", tar.to_str().unwrap(), "mywebapp:latest"]),
        "import",
    );
    let pushed = ok(s.berth(&["push", "mywebapp:latest", "-o", "json"]), "push");
    assert!(pushed.contains("mywebapp"), "{pushed}");

    let endpoint: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.data_dir().join("registry-endpoint.json")).expect("endpoint file"),
    )
    .expect("JSON");
    let addr = endpoint["address"].as_str().unwrap().to_string();
    let ca = endpoint["caFile"].as_str().unwrap().to_string();
    let admin = format!("admin:{}", endpoint["password"].as_str().unwrap());

    // A real OCI client sees the image over the cluster's TLS with the admin credentials.
    let certs = tmp.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", "--cert-dir"])
        .arg(&certs)
        .args(["--creds", &admin])
        .arg(format!("docker://{addr}/mywebapp:latest"))
        .output()
        .expect("skopeo");
    let text = ok(inspect, "skopeo inspect");
    assert!(text.contains("\"Digest\""), "{text}");

    // The node token may pull but not push; no credentials get nothing.
    let token = std::fs::read_to_string(s.data_dir().join("server/token")).unwrap();
    let node = format!("node:{}", token.trim());
    let pull_dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(berth_e2e::berth_bin())
        .args(["pull", "mywebapp:latest", "--data-dir"])
        .arg(pull_dir.path())
        .args(["--registry", &addr, "--ca-file", &ca, "--creds", &node])
        .output()
        .unwrap();
    ok(out, "pull with the node token");
    let out = std::process::Command::new(berth_e2e::berth_bin())
        .args(["push", "mywebapp:latest", "mywebapp:stolen", "--data-dir"])
        .arg(pull_dir.path())
        .args(["--registry", &addr, "--ca-file", &ca, "--creds", &node])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a node may not push");
    let anon = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            &ca,
        ])
        .arg(format!("https://{addr}/v2/mywebapp/manifests/latest"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&anon.stdout), "401");
}
