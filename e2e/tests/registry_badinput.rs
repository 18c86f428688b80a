//! Bad input against the registry and the image store: a digest that does not match, a
//! truncated upload, a wrong Content-Range, a manifest naming a missing blob, `kill -9`
//! in the middle of a push, and malicious layer tars given to `berth import`. Each is
//! refused with a clear error and leaves nothing visible behind.

mod registry_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use berth_e2e::{berth_bin, require_root};
use registry_support::conformance::sha256;
use registry_support::{RegistryProc, output, run};

/// One raw HTTP/1.1 exchange; `body_sent` may be shorter than the declared length.
fn raw(addr: &str, head: &str, body_sent: &[u8], close_write: bool) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body_sent);
    if close_write {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn start_upload(addr: &str, repo: &str) -> String {
    let resp = raw(
        addr,
        &format!(
            "POST /v2/{repo}/blobs/uploads/ HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        b"",
        false,
    );
    assert!(resp.starts_with("HTTP/1.1 202"), "{resp}");
    resp.lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .unwrap()
        .trim()
        .to_owned()
}

fn status(addr: &str, method: &str, path: &str) -> u16 {
    let resp = raw(
        addr,
        &format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        b"",
        false,
    );
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn files_named(root: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name) {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn registry_refuses_bad_uploads_and_manifests() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let reg = RegistryProc::start(&root, &["--no-auth"]);
    let a = reg.addr.as_str();

    // Digest mismatch: 400 DIGEST_INVALID, nothing stored under either digest.
    let loc = start_upload(a, "bad/one");
    let claimed = sha256(b"claimed");
    let resp = raw(
        a,
        &format!(
            "PUT {loc}?digest={claimed} HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/octet-stream\r\nContent-Length: 6\r\nConnection: close\r\n\r\n"
        ),
        b"actual",
        false,
    );
    assert!(
        resp.starts_with("HTTP/1.1 400") && resp.contains("DIGEST_INVALID"),
        "{resp}"
    );
    assert_eq!(
        status(a, "HEAD", &format!("/v2/bad/one/blobs/{claimed}")),
        404
    );
    assert_eq!(
        status(
            a,
            "HEAD",
            &format!("/v2/bad/one/blobs/{}", sha256(b"actual"))
        ),
        404
    );

    // Truncated upload: the client announces 1 MB, sends 1000 bytes and goes away.
    let data = vec![7u8; 1_000_000];
    let d = sha256(&data);
    let loc = start_upload(a, "bad/two");
    let _ = raw(
        a,
        &format!(
            "PUT {loc}?digest={d} HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
        ),
        &data[..1000],
        true,
    );
    assert_eq!(
        status(a, "HEAD", &format!("/v2/bad/two/blobs/{d}")),
        404,
        "a truncated upload became visible"
    );
    assert!(files_named(&root.join("blobs"), &d[7..]).is_empty());

    // Wrong Content-Range: 416 with the session's current Range.
    let loc = start_upload(a, "bad/three");
    let resp = raw(
        a,
        &format!(
            "PATCH {loc} HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/octet-stream\r\nContent-Range: 100-199\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"
        ),
        &[1u8; 100],
        false,
    );
    assert!(resp.starts_with("HTTP/1.1 416"), "{resp}");
    let resp = raw(
        a,
        &format!(
            "PATCH {loc} HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/octet-stream\r\nContent-Range: 0-99\r\nContent-Length: 50\r\nConnection: close\r\n\r\n"
        ),
        &[1u8; 50],
        false,
    );
    assert!(
        resp.starts_with("HTTP/1.1 416"),
        "Content-Range and Content-Length disagree: {resp}"
    );

    // A manifest naming a missing blob: 400 MANIFEST_BLOB_UNKNOWN naming the digest.
    let missing = sha256(b"missing layer");
    let cfg = b"{}";
    let loc = start_upload(a, "bad/four");
    let resp = raw(
        a,
        &format!(
            "PUT {loc}?digest={} HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/octet-stream\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
            sha256(cfg)
        ),
        cfg,
        false,
    );
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(cfg), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing, "size": 13}]})
    .to_string();
    let resp = raw(
        a,
        &format!(
            "PUT /v2/bad/four/manifests/v1 HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            m.len()
        ),
        m.as_bytes(),
        false,
    );
    assert!(
        resp.starts_with("HTTP/1.1 400")
            && resp.contains("MANIFEST_BLOB_UNKNOWN")
            && resp.contains(&missing),
        "{resp}"
    );
    assert_eq!(status(a, "GET", "/v2/bad/four/manifests/v1"), 404);
}

#[test]
fn kill_9_mid_push_leaves_no_partial_blob() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let mut reg = RegistryProc::start(&root, &["--no-auth"]);
    let data: Vec<u8> = (0..50_000_000u32).map(|i| (i % 249) as u8).collect();
    let d = sha256(&data);
    let loc = start_upload(&reg.addr, "crash/test");
    let mut s = TcpStream::connect(&reg.addr).unwrap();
    let head = format!(
        "PUT {loc}?digest={d} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        data.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&data[..20_000_000]).unwrap();
    // Wait until the server has written part of it to its temporary file, then kill it.
    berth_e2e::wait_until("partial upload on disk", Duration::from_secs(60), || {
        let n: u64 = std::fs::read_dir(root.join("blobs/_uploads"))
            .ok()?
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        (n > 1_000_000).then_some(())
    });
    reg.kill9();
    drop(s);
    assert!(
        files_named(&root.join("blobs"), &d[7..]).is_empty(),
        "partial blob visible after kill -9"
    );
    let reg = RegistryProc::start(&root, &["--no-auth"]);
    assert_eq!(
        status(&reg.addr, "HEAD", &format!("/v2/crash/test/blobs/{d}")),
        404
    );
    // The same push succeeds after the restart, and serves the right bytes.
    let loc = start_upload(&reg.addr, "crash/test");
    let mut s = TcpStream::connect(&reg.addr).unwrap();
    let head = format!(
        "PUT {loc}?digest={d} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&data).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let stored = files_named(&root.join("blobs"), &d[7..]);
    assert_eq!(stored.len(), 1);
    assert_eq!(sha256(&std::fs::read(&stored[0]).unwrap()), d);
}

/// A minimal ustar writer that does not sanitise names (to build malicious archives).
fn tar_entry(
    out: &mut Vec<u8>,
    name: &str,
    kind: u8,
    link: &str,
    data: &[u8],
    declared: Option<usize>,
) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", declared.unwrap_or(data.len())).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

#[test]
fn import_refuses_malicious_layer_tars() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            {
                let mut v = Vec::new();
                tar_entry(&mut v, "../../evil", b'0', "", b"x", None);
                v
            },
            "../../evil",
        ),
        (
            "absolute",
            {
                let mut v = Vec::new();
                tar_entry(&mut v, "/etc/evil", b'0', "", b"x", None);
                v
            },
            "/etc/evil",
        ),
        (
            "through-symlink",
            {
                let mut v = Vec::new();
                tar_entry(&mut v, "lnk", b'2', "/tmp", b"", None);
                tar_entry(&mut v, "lnk/evil", b'0', "", b"x", None);
                v
            },
            "lnk/evil",
        ),
        (
            "symlink-escape",
            {
                let mut v = Vec::new();
                tar_entry(&mut v, "a/up", b'2', "../../../etc", b"", None);
                v
            },
            "a/up",
        ),
        (
            "hardlink-escape",
            {
                let mut v = Vec::new();
                tar_entry(&mut v, "h", b'1', "../etc/passwd", b"", None);
                v
            },
            "\"h\"",
        ),
        (
            "device",
            {
                let mut v = Vec::new();
                tar_entry(&mut v, "dev/sda", b'4', "", b"", None);
                v
            },
            "dev/sda",
        ),
        (
            "lying-size",
            {
                let mut v = Vec::new();
                tar_entry(&mut v, "big", b'0', "", &[1u8; 100], Some(1_000_000));
                v.truncate(512 + 100);
                v
            },
            "big",
        ),
    ];
    for (what, bytes, needle) in cases {
        let p = tmp.path().join(format!("{what}.tar"));
        std::fs::write(&p, &bytes).unwrap();
        let out = output(
            Command::new(berth_bin())
                .arg("import")
                .arg(&p)
                .arg(format!("evil/{what}:1"))
                .arg("--data-dir")
                .arg(&data),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: import succeeded");
        assert!(
            err.contains(needle),
            "{what}: error must name the entry {needle}: {err}"
        );
        assert!(
            !tmp.path().join("evil").exists() && !std::path::Path::new("/etc/evil").exists(),
            "{what}: wrote outside"
        );
    }
    let out = run(Command::new(berth_bin())
        .args(["images", "-o", "json", "--data-dir"])
        .arg(&data));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!([]),
        "a refused import left an image behind"
    );
}
