//! End-to-end: the seeds' workflow on a real node. `berth server` with its in-process agent,
//! a busybox image built from busybox-static and pushed with `berth push`, the seeds'
//! Deployment (3 replicas, unqualified image) reaching Running and Ready; then `kubectl logs`,
//! `logs -f`, `exec -it` through a pty, `cp`, `port-forward` to busybox httpd, `top pods`, a
//! deleted pod replaced by the ReplicaSet, and `kill -9` of the server: after the restart the
//! same containers (same IDs, same processes) run with restartCount 0.

mod agent_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use agent_support::*;
use berth_e2e::wait_until;

fn fixture(name: &str) -> String {
    format!(
        "{}/fixtures/seed-workflow/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// (name, containerID, restartCount) of the Running and Ready pods of the seeds' app.
fn app_pods(n: &Node) -> Vec<(String, String, i64)> {
    let list = json(n, &["get", "pods", "-l", "app=mywebapp"]);
    let mut v: Vec<(String, String, i64)> = list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| phase(p) == "Running" && ready(p))
        .map(|p| {
            let c = container(p, "mywebapp");
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                c["containerID"].as_str().unwrap_or_default().to_string(),
                c["restartCount"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    v.sort();
    v
}

fn kubectl_cmd(n: &Node) -> Command {
    // The node runs in its own network namespace; kubectl reaches it from there.
    let mut c = n.command("kubectl");
    c.env("KUBECONFIG", n.kubeconfig())
        .arg("--cache-dir")
        .arg(n.data_dir().join("kubectl-cache"));
    c
}

#[test]
fn seeds_deployment_runs_and_is_observable_and_survives_kill9() {
    let mut n = Node::start(&[]);
    let tmp = tempfile::tempdir().expect("tmp");
    push_busybox(
        &n,
        tmp.path(),
        "mywebapp:latest",
        &[
            "sh",
            "-c",
            "echo hello-from-$(hostname) > /var/www/index.html; echo started; exec httpd -f -v -p 8080 -h /var/www",
        ],
    );
    n.ok(&["apply", "-f", &fixture("deployment-mywebapp.yaml")]);
    let pods = wait_until("3 Running and Ready replicas", WAIT, || {
        let p = app_pods(&n);
        (p.len() == 3).then_some(p)
    });
    let first = pods[0].0.clone();
    let p = json(&n, &["get", "pod", &first]);
    assert_eq!(p["spec"]["nodeName"], n.name.as_str());
    assert_eq!(p["status"]["qosClass"], "Burstable");
    assert!(
        container(&p, "mywebapp")["imageID"]
            .as_str()
            .is_some_and(|i| i.contains("mywebapp@sha256:")),
        "{p}"
    );
    let wide = n.ok(&["get", "pods", "-o", "wide"]);
    assert!(wide.contains(&n.name), "{wide}");
    let nodes = n.ok(&["get", "nodes", "-o", "wide"]);
    assert!(
        nodes.contains("Ready") && nodes.contains("berth://"),
        "{nodes}"
    );
    let describe = n.ok(&["describe", "node", &n.name]);
    assert!(
        describe.contains("Allocatable") && describe.contains("KubeletReady"),
        "{describe}"
    );

    // logs, logs of the deployment, --tail, --timestamps.
    let logs = n.ok(&["logs", &first]);
    assert!(logs.contains("started"), "{logs}");
    assert!(n.ok(&["logs", "deploy/mywebapp"]).contains("started"));
    let ts = n.ok(&["logs", "--timestamps", "--tail=1", &first]);
    assert!(ts.starts_with("20") && ts.lines().count() == 1, "{ts}");

    // logs -f sees lines written after it started.
    let mut follow = kubectl_cmd(&n)
        .args(["logs", "-f", &first])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl logs -f");
    let (tx, rx) = std::sync::mpsc::channel();
    let out = follow.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    wait_until("logs -f to start", WAIT, || {
        rx.recv_timeout(Duration::from_millis(100))
            .ok()
            .filter(|l| l.contains("started"))
    });
    n.ok(&[
        "exec",
        &first,
        "--",
        "sh",
        "-c",
        "echo follow-marker > /proc/1/fd/1",
    ]);
    wait_until("logs -f to show the new line", WAIT, || {
        rx.recv_timeout(Duration::from_millis(100))
            .ok()
            .filter(|l| l.contains("follow-marker"))
    });
    let _ = follow.kill();
    let _ = follow.wait();

    // exec: exit codes, stderr, stdin.
    let out = n.kubectl(&[
        "exec",
        &first,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
    let cat = n.kubectl_with(
        &["exec", "-i", &first, "--", "cat"],
        &[],
        Some("piped-in\n"),
    );
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "piped-in\n");

    // exec -it through a real pty.
    let inner = format!(
        "KUBECONFIG={} kubectl --cache-dir {} exec -it {first} -- sh -c 'tty; echo tty-ok'",
        n.kubeconfig().display(),
        n.data_dir().join("kubectl-cache").display()
    );
    let script = n
        .command("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .output()
        .expect("script (bsdutils) is installed");
    let text = String::from_utf8_lossy(&script.stdout);
    assert!(
        text.contains("/dev/pts/") && text.contains("tty-ok"),
        "{text}"
    );

    // cp both ways.
    let local = tmp.path().join("payload.txt");
    std::fs::write(&local, "copied across\n").unwrap();
    n.ok(&[
        "cp",
        local.to_str().unwrap(),
        &format!("{first}:/tmp/payload.txt"),
    ]);
    assert_eq!(
        n.ok(&["exec", &first, "--", "cat", "/tmp/payload.txt"]),
        "copied across\n"
    );
    let back = tmp.path().join("back.txt");
    n.ok(&[
        "cp",
        &format!("{first}:/tmp/payload.txt"),
        back.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "copied across\n");

    // port-forward to httpd.
    let mut pf = kubectl_cmd(&n)
        .args(["port-forward", &format!("pod/{first}"), ":8080"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl port-forward");
    let mut line = String::new();
    let mut pf_out = BufReader::new(pf.stdout.take().expect("stdout"));
    pf_out
        .read_line(&mut line)
        .expect("port-forward prints its local port");
    // Keep draining: kubectl reports each connection on stdout.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = pf_out.read_to_end(&mut sink);
    });
    let port: u16 = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    for _ in 0..2 {
        let mut conn = n
            .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .expect("connect");
        conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
        let mut resp = String::new();
        conn.read_to_string(&mut resp).unwrap();
        assert!(
            resp.contains("200") && resp.contains(&format!("hello-from-{first}")),
            "{resp}"
        );
    }
    let _ = pf.kill();
    let _ = pf.wait();

    // top pods.
    let top = wait_until("kubectl top pods", WAIT, || {
        let out = n.kubectl(&["top", "pods", "-l", "app=mywebapp"]);
        let t = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && t.lines().count() == 4).then_some(t)
    });
    assert!(top.contains("CPU(cores)") && top.contains(&first), "{top}");
    let nodes_top = n.ok(&["top", "nodes"]);
    assert!(nodes_top.contains(&n.name), "{nodes_top}");

    // A deleted pod is replaced by the ReplicaSet.
    n.ok(&["delete", "pod", &first, "--wait=true"]);
    let replaced = wait_until("a replacement pod", WAIT, || {
        let p = app_pods(&n);
        (p.len() == 3 && !p.iter().any(|x| x.0 == first)).then_some(p)
    });

    // kill -9 of the server: containers keep running, and after the restart the same
    // containers are adopted with restartCount 0.
    let before_pids = pids_with("httpd -f -v -p 8080");
    assert!(before_pids.len() >= 3, "{before_pids:?}");
    n.restart();
    let after = wait_until("the pods to be adopted after the restart", WAIT, || {
        let p = app_pods(&n);
        (p.len() == 3).then_some(p)
    });
    assert_eq!(
        after, replaced,
        "same pods, same container IDs, same restart counts"
    );
    assert!(after.iter().all(|p| p.2 == 0), "{after:?}");
    let after_pids = pids_with("httpd -f -v -p 8080");
    for pid in &before_pids {
        assert!(
            after_pids.contains(pid),
            "container process {pid} did not survive"
        );
    }
    assert!(n.ok(&["logs", &after[0].0]).contains("started"));
}
