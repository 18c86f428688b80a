//! The distribution-spec conformance suite (tests/registry_support/conformance.rs) against
//! berth's registry — plain, with token auth, and with at-rest encryption — and against
//! Debian's Distribution 2.8 (`docker-registry`) to record where that one departs from the
//! spec. Set `OCI_ROOT_URL` (and `OCI_USERNAME`/`OCI_PASSWORD`) to run the suite against
//! any other registry instead: `OCI_ROOT_URL=http://host:5000 cargo nextest run -p
//! berth-e2e -E 'test(conformance_against_url)'`.

mod registry_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use berth_e2e::{require_root, unique_name, wait_until};
use registry_support::RegistryProc;
use registry_support::conformance::{self, Http, Target};

fn rt() -> tokio::runtime::Runtime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn run_suite(t: Target) -> conformance::Report {
    rt().block_on(async {
        tokio::time::timeout(Duration::from_secs(180), async {
            conformance::run(&Http::new(t)).await
        })
        .await
        .expect("conformance suite timed out")
    })
}

fn assert_all_pass(report: &conformance::Report) {
    report.print();
    let f = report.failures();
    assert!(f.is_empty(), "conformance failures:\n{}", f.join("\n"));
    assert!(
        report.results.len() >= 45,
        "suite ran only {} checks",
        report.results.len()
    );
}

#[test]
fn berth_registry_passes_conformance() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let reg = RegistryProc::start(&tmp.path().join("root"), &["--no-auth"]);
    assert_all_pass(&run_suite(
        Target::from_env(&reg.url(), &unique_name("c")).with_base(&reg.url()),
    ));
}

#[test]
fn berth_registry_passes_conformance_with_token_auth_and_encryption() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let h = registry_support::htpasswd(tmp.path(), "alice", "s3cret");
    let key = tmp.path().join("key");
    std::fs::write(&key, [0x5au8; 32]).unwrap();
    let root = tmp.path().join("root");
    let reg = RegistryProc::start(
        &root,
        &[
            "--htpasswd",
            h.to_str().unwrap(),
            "--encryption-key",
            key.to_str().unwrap(),
        ],
    );
    let mut t = Target::from_env(&reg.url(), &unique_name("c")).with_base(&reg.url());
    t.creds = Some(("alice".into(), "s3cret".into()));
    assert_all_pass(&run_suite(t.clone()));
    // Without credentials everything is refused with a token challenge.
    let status = rt().block_on(async {
        let r = reqwest::Client::new()
            .get(format!("{}/v2/{}/tags/list", reg.url(), t.repo))
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned()),
        )
    });
    assert_eq!(status.0, 401);
    let challenge = status.1.expect("challenge");
    assert!(
        challenge.starts_with("Bearer realm=")
            && challenge.contains(&format!("scope=\"repository:{}:pull\"", t.repo)),
        "{challenge}"
    );
    // Encrypted at rest: no stored blob contains the suite's known layer pattern.
    let layer: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut found = false;
    for entry in walk(&root.join("blobs")) {
        let data = std::fs::read(&entry).unwrap();
        if data.windows(256).any(|w| w == &layer[1000..1256]) {
            found = true;
        }
    }
    assert!(
        !found,
        "plaintext layer content found under the storage root"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p))
            } else {
                out.push(p)
            }
        }
    }
    out
}

/// Runs the suite against `OCI_ROOT_URL` when set (reports only: another registry's
/// departures are findings, not failures of berth).
#[test]
fn conformance_against_url() {
    let Ok(url) = std::env::var("OCI_ROOT_URL") else {
        eprintln!("OCI_ROOT_URL is not set; nothing to check");
        return;
    };
    let report = run_suite(Target::from_env(&url, &unique_name("c")));
    report.print();
}

/// Distribution 2.8.2 as Debian ships it, run beside berth: the suite must find the
/// departures recorded in docs (referrers API, out-of-order chunks, tag pagination, 413),
/// while the basic pull/push checks pass (so the suite itself is sound).
#[test]
fn distribution_departures_are_detected() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = tmp.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}, secret: conformance}}\n",
            tmp.path().join("data").display()
        ),
    )
    .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(
        Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed (scripts/install-deps.sh)"),
    );
    wait_until("docker-registry to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let url = format!("http://127.0.0.1:{port}");
    let report = run_suite(Target::from_env(&url, &unique_name("d")).with_base(&url));
    report.print();
    for sound in [
        "pull/get-blob-200",
        "push/post-put-blobs",
        "push/manifest-put-201",
        "management/delete-manifest",
    ] {
        assert!(
            !report.failed(sound),
            "{sound} should pass against Distribution too"
        );
    }
    for departure in [
        "push/chunked-with-out-of-order-416",
        "discovery/tags-list-n",
        "discovery/referrers-empty",
        "discovery/referrers-list",
        "push/manifest-over-4mib-413",
        "pull/get-manifest-without-accept",
    ] {
        assert!(
            report.failed(departure),
            "expected Distribution 2.8 to fail {departure}"
        );
    }
}
