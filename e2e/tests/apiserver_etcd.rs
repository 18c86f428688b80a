//! End-to-end: `berth server --datastore-endpoint etcd://…` keeps the cluster's state in a
//! real etcd (Debian's etcd-server on loopback), across a kill -9 of the server.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_e2e::server::BerthServer;
use berth_e2e::wait_until;

struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
    endpoint: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_etcd() -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = (free_port(), free_port());
    let client = format!("http://127.0.0.1:{c}");
    let peer = format!("http://127.0.0.1:{p}");
    let child = Command::new("etcd")
        .args(["--name", "e2e", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("e2e={peer}")])
        .args(["--logger", "zap", "--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd is installed (scripts/install-deps.sh)");
    let etcd = Etcd {
        child,
        _dir: dir,
        endpoint: format!("etcd://127.0.0.1:{c}"),
    };
    wait_until("etcd to answer", Duration::from_secs(30), || {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &client, "endpoint", "health"])
            .output()
            .ok()
            .filter(|o| o.status.success())
    });
    etcd
}

#[test]
fn cluster_state_lives_in_etcd_across_a_kill_9() {
    let etcd = start_etcd();
    let mut s = BerthServer::start(&["--datastore-endpoint", &etcd.endpoint]);
    s.ok(&["create", "namespace", "in-etcd"]);
    s.ok(&[
        "create",
        "configmap",
        "c1",
        "-n",
        "in-etcd",
        "--from-literal=k=v",
    ]);
    let before = s.ok(&[
        "get",
        "cm",
        "c1",
        "-n",
        "in-etcd",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    // The objects are in etcd under berth's keys.
    let keys = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &etcd.endpoint.replace("etcd://", "http://"),
            "get",
            "/registry/core/configmaps/in-etcd/",
            "--prefix",
            "--keys-only",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&keys.stdout).contains("/registry/core/configmaps/in-etcd/c1"));
    s.kill9();
    s.restart();
    let after = s.ok(&[
        "get",
        "cm",
        "c1",
        "-n",
        "in-etcd",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(before, after);
    s.ok(&["delete", "namespace", "in-etcd", "--timeout=60s"]);
}
