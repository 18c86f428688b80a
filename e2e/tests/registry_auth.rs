//! Access control and transport of berth's registry, with real clients: per-repository
//! permissions from an access list, anonymous pull only when configured, `insufficient_scope`
//! answered with 401, TLS with a given certificate (curl, skopeo and `berth pull --ca-file`),
//! and upload sessions that expire.

mod registry_support;

use std::process::Command;
use std::time::Duration;

use berth_e2e::{berth_bin, require_root, wait_until};
use registry_support::{
    RegistryProc, busybox_layout, htpasswd, layout_path, output, run, run_fails, skopeo,
};

fn curl(args: &[&str]) -> (u16, String) {
    let out = output(
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-D", "-", "-w", "%{http_code}"])
            .args(args),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text
        .trim()
        .rsplit('\n')
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or(0);
    (code, text)
}

#[test]
fn permissions_anonymous_pull_and_insufficient_scope() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_layout(t, "1");
    let h = t.join("htpasswd");
    let hash = bcrypt::hash("pw", 5).unwrap();
    std::fs::write(&h, format!("alice:{hash}\nbob:{hash}\n")).unwrap();
    let acl = t.join("acl");
    std::fs::write(&acl, "alice team/* pull,push,delete\nbob team/* pull\n").unwrap();
    let reg = RegistryProc::start(
        &t.join("reg"),
        &[
            "--htpasswd",
            h.to_str().unwrap(),
            "--acl",
            acl.to_str().unwrap(),
            "--anonymous-pull",
        ],
    );
    let src = format!("oci:{}:1", layout_path(t).display());
    let dest = format!("docker://{}/team/app:1", reg.addr);

    let err = run_fails(skopeo(t).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "bob:pw",
        &src,
        &dest,
    ]));
    assert!(
        err.contains("denied") || err.contains("401") || err.contains("unauthorized"),
        "bob may not push: {err}"
    );
    run(skopeo(t).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:pw",
        &src,
        &dest,
    ]));
    // bob and anonymous clients may pull.
    run(skopeo(t).args(["inspect", "--tls-verify=false", "--creds", "bob:pw", &dest]));
    run(skopeo(t).args(["inspect", "--tls-verify=false", "--no-creds", &dest]));
    // No one may push elsewhere; anonymous clients may not push at all.
    let err = run_fails(skopeo(t).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:pw",
        &src,
        &format!("docker://{}/other/app:1", reg.addr),
    ]));
    assert!(
        err.contains("denied") || err.contains("401") || err.contains("unauthorized"),
        "{err}"
    );

    // A token for one repository used on another: 401 with insufficient_scope.
    let (code, body) = {
        let out = output(Command::new("curl").args([
            "-sS",
            "-u",
            "bob:pw",
            &format!(
                "http://{}/token?service=berth-registry&scope=repository:team/app:pull",
                reg.addr
            ),
        ]));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(code, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, headers) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("http://{}/v2/team/app/blobs/uploads/", reg.addr),
    ]);
    assert_eq!(status, 401, "{headers}");
    assert!(
        headers.contains("error=\"insufficient_scope\"")
            && headers.contains("scope=\"repository:team/app:pull,push\""),
        "{headers}"
    );
    let (status, _) = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("http://{}/v2/team/app/tags/list", reg.addr),
    ]);
    assert_eq!(status, 200);
    // A forged token is rejected.
    let (status, _) = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}x"),
        &format!("http://{}/v2/team/app/tags/list", reg.addr),
    ]);
    assert_eq!(status, 401);
}

#[test]
fn tls_serving_and_upload_expiry() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_layout(t, "1");
    // A CA and a server certificate it signs (webpki refuses a CA as the server's own).
    let (ca, ca_key, cert, key, csr, ext) = (
        t.join("ca.pem"),
        t.join("ca.key"),
        t.join("cert.pem"),
        t.join("key.pem"),
        t.join("srv.csr"),
        t.join("ext.cnf"),
    );
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .args(["-days", "2", "-subj", "/CN=berth-test-ca", "-keyout"])
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    run(Command::new("openssl")
        .arg("req")
        .args(ec)
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&cert));
    let h = htpasswd(t, "alice", "pw");
    let reg = RegistryProc::start(
        &t.join("reg"),
        &[
            "--htpasswd",
            h.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--upload-ttl",
            "1",
        ],
    );
    let base = format!("https://{}", reg.addr);
    let (status, headers) = curl(&["--cacert", ca.to_str().unwrap(), &format!("{base}/v2/")]);
    assert_eq!(status, 401);
    assert!(
        headers.contains(&format!("realm=\"{base}/token\"")),
        "the realm must use https: {headers}"
    );
    let (status, _) = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "-u",
        "alice:pw",
        &format!("{base}/v2/"),
    ]);
    assert_eq!(status, 200);
    // skopeo verifies the certificate through a cert dir.
    let certs = t.join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let dest = format!("docker://{}/tls/bb:1", reg.addr);
    run(skopeo(t).args([
        "copy",
        "--dest-cert-dir",
        certs.to_str().unwrap(),
        "--dest-creds",
        "alice:pw",
        &format!("oci:{}:1", layout_path(t).display()),
        &dest,
    ]));
    // berth pull over TLS with the CA, and refused without it.
    let data = t.join("data");
    let pull = |extra: &[&str]| {
        let mut c = Command::new(berth_bin());
        c.args([
            "pull",
            &format!("{}/tls/bb:1", reg.addr),
            "--creds",
            "alice:pw",
            "--data-dir",
        ])
        .arg(&data)
        .args(extra);
        c
    };
    let err = run_fails(&mut pull(&[]));
    assert!(
        err.to_lowercase().contains("certificate")
            || err.contains("tls")
            || err.contains("error sending request"),
        "{err}"
    );
    run(&mut pull(&["--ca-file", ca.to_str().unwrap()]));

    // Upload sessions expire after --upload-ttl (1 s here).
    let out = output(Command::new("curl").args([
        "-sS",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "--cacert",
        ca.to_str().unwrap(),
        "-u",
        "alice:pw",
        "-X",
        "POST",
        &format!("{base}/v2/tls/bb/blobs/uploads/"),
    ]));
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let loc = head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .expect("Location")
        .trim()
        .to_owned();
    wait_until(
        "the idle upload session to expire",
        Duration::from_secs(30),
        || {
            let (status, _) = curl(&[
                "--cacert",
                ca.to_str().unwrap(),
                "-u",
                "alice:pw",
                &format!("{base}{loc}"),
            ]);
            (status == 404).then_some(())
        },
    );
}
