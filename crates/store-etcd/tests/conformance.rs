//! The store conformance suite against a real etcd (Debian's `etcd-server`), one fresh etcd
//! per case on loopback with OS-chosen ports and its own data dir, killed when the case ends.
//! Cases are skipped (with the reason printed) only when the `etcd` binary is missing;
//! `scripts/install-deps.sh` installs it, so CI runs them.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_store::testsuite::Fixture;
use berth_store_etcd::{EtcdConfig, EtcdStore};

/// An etcd server owned by one case.
struct EtcdProcess {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn etcd_binary() -> Option<&'static str> {
    let found = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found.then_some("etcd")
}

fn spawn(bin: &str, dir: &Path, client: u16, peer: u16) -> Child {
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    Command::new(bin)
        .args(["--name", "test", "--data-dir"])
        .arg(dir.join("data"))
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("test={peer_url}")])
        .args(["--logger", "zap", "--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("etcd.log")).expect("etcd log file"))
        .spawn()
        .expect("spawn etcd")
}

async fn etcd_fixture() -> Fixture {
    let Some(bin) = etcd_binary() else {
        return Fixture::skipped(
            "the etcd binary is not installed (scripts/install-deps.sh installs it)",
        );
    };
    // A port picked here can be taken by another test before etcd binds it; then etcd exits
    // and we try again with new ports.
    for _attempt in 0..5 {
        let dir = tempfile::tempdir().expect("temp dir");
        let client = free_port();
        let mut child = spawn(bin, dir.path(), client, free_port());
        let config = EtcdConfig {
            endpoints: vec![format!("http://127.0.0.1:{client}")],
            connect_timeout: Duration::from_secs(2),
            ..EtcdConfig::default()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break; // exited (port clash): next attempt
            }
            if let Ok(store) = EtcdStore::connect(config.clone()).await {
                return Fixture::with_guard(store, EtcdProcess { child, _dir: dir });
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.path().join("etcd.log")).unwrap_or_default();
                let _ = child.kill();
                panic!("etcd did not answer on port {client} within 30 s; its log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("etcd could not start after 5 attempts (ports taken?)");
}

berth_store::conformance_tests!(etcd_fixture());
