//! End-to-end: `berth agent` joins a machine to a cluster with the token `berth token`
//! prints — its Node becomes Ready with a pod CIDR, it runs a pod pulled from the cluster
//! registry, and `kubectl logs`/`exec` reach it through the API server. A token with the wrong
//! CA hash or secret is refused with a clear error.

mod agent_support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agent_support::*;
use berth_e2e::server::BerthServer;
use berth_e2e::{berth_bin, wait_until};

/// A `berth agent` process; its pods deleted, the process killed and its leftovers removed
/// on drop.
struct JoinedAgent<'a> {
    server: &'a BerthServer,
    child: Child,
    data: tempfile::TempDir,
    name: String,
}

impl Drop for JoinedAgent<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.data.path().join("agent.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- agent log (tail) ---");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
        let _ = self.server.kubectl(&[
            "delete",
            "pods",
            "--all",
            "--grace-period=0",
            "--force",
            "--wait=false",
        ]);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline
            && !runtime_containers(self.data.path()).is_empty()
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        force_cleanup(self.data.path(), &self.name);
    }
}

fn berth_token(s: &BerthServer) -> String {
    let out = s.berth(&["token"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn agent_cmd(s: &BerthServer, token: &str, data: &std::path::Path, name: &str) -> Command {
    // In the server's network namespace: the agent's bridge, routes and nftables table are
    // made there, never in the host's.
    let mut c = s.command(berth_bin());
    c.args([
        "agent",
        "--server",
        &format!("https://{}", s.addr),
        "--token",
        token,
    ])
    .arg("--data-dir")
    .arg(data)
    .args([
        "--node-name",
        name,
        "--node-ip",
        "127.0.0.1",
        "--agent-port",
        "0",
    ])
    .env("BERTH_LOG", "info")
    .stdin(Stdio::null());
    c
}

#[test]
fn berth_agent_joins_with_the_token_and_runs_pods() {
    berth_e2e::require_root();
    let s = BerthServer::start_for_agents(&[]);
    let token = berth_token(&s);
    assert!(token.starts_with("B10") && token.contains("::"), "{token}");

    // Refused tokens: another CA's hash, a wrong secret.
    let bad_data = tempfile::tempdir().unwrap();
    let (hash, _) = token.split_once("::").unwrap();
    for (bad, expect) in [
        (
            format!(
                "B10{}::{}",
                "0".repeat(64),
                token.split_once("::").unwrap().1
            ),
            "does not match",
        ),
        (format!("{hash}::not-the-secret"), "401"),
    ] {
        let out = agent_cmd(&s, &bad, bad_data.path(), "refused-node")
            .output()
            .expect("berth agent");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{err}");
    }

    let tmp = tempfile::tempdir().unwrap();
    push_busybox(
        &s,
        tmp.path(),
        "joined:1",
        &["sh", "-c", "echo on-the-joined-node; exec sleep 3600"],
    );
    let data = tempfile::tempdir().unwrap();
    let name = berth_e2e::unique_name("join-");
    let log = std::fs::File::create(data.path().join("agent.log")).unwrap();
    let child = agent_cmd(&s, &token, data.path(), &name)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("berth agent");
    let agent = JoinedAgent {
        server: &s,
        child,
        data,
        name: name.clone(),
    };
    assert_eq!(ready_node(&s), name);
    let node = json(&s, &["get", "node", &name]);
    assert!(
        node["spec"]["podCIDR"]
            .as_str()
            .is_some_and(|c| c.starts_with("10.42.")),
        "{node}"
    );
    assert_eq!(
        node["status"]["nodeInfo"]["kubeletVersion"],
        "v1.33.0+berth"
    );
    let lease = json(&s, &["get", "lease", "-n", "kube-node-lease", &name]);
    assert_eq!(lease["spec"]["holderIdentity"], name.as_str());
    assert!(
        agent
            .data
            .path()
            .join("agent/credentials/credentials.json")
            .exists(),
        "the node keeps its credentials"
    );

    apply(
        &s,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: remote}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {name}}}
  containers:
  - {{name: c, image: "joined:1"}}
"#
        ),
    );
    let p = wait_pod(&s, "remote", "Running", |p| {
        phase(p) == "Running" && ready(p)
    });
    assert_eq!(p["spec"]["nodeName"], name.as_str());
    let logs = wait_until("the pod's logs", Duration::from_secs(60), || {
        let l = s.ok(&["logs", "remote"]);
        (!l.is_empty()).then_some(l)
    });
    assert_eq!(logs, "on-the-joined-node\n");
    assert_eq!(s.ok(&["exec", "remote", "--", "hostname"]), "remote\n");
    drop(agent);
}
