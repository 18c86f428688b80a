//! Shared pieces of the node agent's end-to-end tests: a busybox image (from the host's
//! busybox-static) with a default command, written as an OCI layout and pushed to the cluster
//! registry with `berth push`, and small kubectl helpers.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_e2e::server::BerthServer;
use berth_e2e::wait_until;
use sha2::{Digest, Sha256};

pub const WAIT: Duration = Duration::from_secs(120);

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn blob(layout: &Path, data: &[u8]) -> String {
    let d = sha(data);
    let p = layout.join("blobs/sha256").join(&d[7..]);
    std::fs::write(&p, data).expect("write blob");
    d
}

/// An OCI layout of busybox-static whose image runs `cmd` by default.
pub fn busybox_layout(dir: &Path, tag: &str, cmd: &[&str]) -> PathBuf {
    let tar = berth_e2e::busybox_rootfs_tar(dir);
    let raw = std::fs::read(&tar).expect("rootfs tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).expect("gzip");
    let layer = gz.finish().expect("gzip");
    let layout = dir.join(format!("layout-{tag}"));
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("layout dirs");
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let layer_digest = blob(&layout, &layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [sha(&raw)]}
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = blob(&layout, &config_bytes);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_bytes.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}]
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = blob(&layout, &manifest_bytes);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": manifest_bytes.len(), "annotations": {"org.opencontainers.image.ref.name": tag}}]
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    layout
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the busybox image as `name` (an unqualified `repo:tag`) and pushes it to the
/// cluster registry, then removes it from the node's store so pods really pull it.
pub fn push_busybox(s: &BerthServer, dir: &Path, name: &str, cmd: &[&str]) {
    let tag = name.rsplit(':').next().unwrap_or("latest");
    let layout = busybox_layout(dir, tag, cmd);
    ok(
        s.berth(&["import", layout.to_str().unwrap(), name]),
        "berth import",
    );
    ok(s.berth(&["push", name]), "berth push");
    ok(s.berth(&["rmi", name]), "berth rmi");
}

pub fn json(s: &BerthServer, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&a)).expect("kubectl -o json prints JSON")
}

/// Waits until the node of a `berth server` is Ready; returns its name.
pub fn ready_node(s: &BerthServer) -> String {
    wait_until("a Ready node", WAIT, || {
        let nodes = json(s, &["get", "nodes"]);
        nodes["items"].as_array()?.iter().find_map(|n| {
            let ready = n["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            ready.then(|| {
                n["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
        })
    })
}

/// Waits until `check` holds for pod `name`; returns the pod.
pub fn wait_pod(
    s: &BerthServer,
    name: &str,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_until(&format!("pod {name}: {what}"), WAIT, || {
        let out = s.kubectl(&["get", "pod", name, "-o", "json"]);
        if !out.status.success() {
            return None;
        }
        let p: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        check(&p).then_some(p)
    })
}

pub fn phase(p: &serde_json::Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or_default()
}

pub fn ready(p: &serde_json::Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The status of container `name` of a pod.
pub fn container<'a>(p: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    p["status"]["containerStatuses"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

/// Applies a manifest given as YAML text.
pub fn apply(s: &BerthServer, yaml: &str) {
    let out = s.kubectl_with(&["apply", "-f", "-"], &[], Some(yaml));
    assert!(
        out.status.success(),
        "kubectl apply failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log_tail(40)
    );
}

/// The machine's processes: (pid, parent pid, command line with spaces for NULs).
fn processes() -> Vec<(i32, i32, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // The command in `stat` is in parentheses and may hold spaces: fields follow `)`.
            let ppid: i32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            Some((pid, ppid, String::from_utf8_lossy(&cmd).replace('\0', " ")))
        })
        .collect()
}

/// Processes whose command line contains `needle` (to tell containers are still the same).
pub fn pids_with(needle: &str) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|(_, _, cmd)| cmd.contains(needle))
        .map(|(pid, _, _)| pid)
        .collect()
}

/// A `berth server` with its in-process agent under a unique node name, torn down
/// completely on drop (also when the test failed): workloads deleted so the agent stops
/// their containers, then the server killed, then whatever is left of containers, mounts and
/// the node's cgroups removed by force.
pub struct Node {
    pub s: BerthServer,
    pub name: String,
}

impl std::ops::Deref for Node {
    type Target = BerthServer;
    fn deref(&self) -> &BerthServer {
        &self.s
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut BerthServer {
        &mut self.s
    }
}

impl Node {
    pub fn start(extra: &[&str]) -> Node {
        berth_e2e::require_root();
        let name = berth_e2e::unique_name("node-");
        let mut args = vec!["--node-name", name.as_str()];
        args.extend_from_slice(extra);
        let s = BerthServer::start_node(&args);
        let n = Node { s, name };
        let ready = ready_node(&n.s);
        assert_eq!(ready, n.name);
        n
    }

    /// Containers the node's runtime has.
    pub fn containers(&self) -> Vec<String> {
        runtime_containers(self.s.data_dir())
    }
}

fn cleanup_mounts_under(dir: &Path) {
    let mut mounts: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
        .filter(|m| m.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for m in mounts {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn remove_cgroups(node: &str) {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if !(right.starts_with("cgroup ") || right.starts_with("cgroup2 ")) {
            continue;
        }
        let Some(mp) = left.split(' ').nth(4) else {
            continue;
        };
        let root = Path::new(mp).join("berth").join(node);
        let mut dirs = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            if let Ok(rd) = std::fs::read_dir(&d) {
                dirs.push(d.clone());
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
            }
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server log (tail) ---\n{}", self.s.log_tail(120));
            let pods = self.s.kubectl(&["get", "pods", "-o", "wide"]);
            eprintln!("--- pods ---\n{}", String::from_utf8_lossy(&pods.stdout));
            let ev = self
                .s
                .kubectl(&["get", "events", "--sort-by=.lastTimestamp"]);
            eprintln!("--- events ---\n{}", String::from_utf8_lossy(&ev.stdout));
        }
        let _ = self.s.kubectl(&[
            "delete",
            "deployments,replicasets,jobs,pods",
            "--all",
            "--all-namespaces",
            "--grace-period=0",
            "--force",
            "--wait=false",
        ]);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline && !self.containers().is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
        self.s.kill9();
        force_cleanup(self.s.data_dir(), &self.name);
    }
}

/// Containers of the agent whose data dir is `data`.
pub fn runtime_containers(data: &Path) -> Vec<String> {
    let out = std::process::Command::new(berth_e2e::berth_bin())
        .arg("runtime")
        .arg("--root")
        .arg(data.join("agent/cri/runtime"))
        .args(["list", "-q"])
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .filter(|l| !l.is_empty())
            .collect(),
        Err(_) => vec![],
    }
}

/// Removes by force what an agent with data dir `data` and node name `node` left behind:
/// containers, mounts under the data dir, the node's cgroups.
pub fn force_cleanup(data: &Path, node: &str) {
    for id in runtime_containers(data) {
        let _ = std::process::Command::new(berth_e2e::berth_bin())
            .arg("runtime")
            .arg("--root")
            .arg(data.join("agent/cri/runtime"))
            .args(["delete", "--force", &id])
            .output();
    }
    kill_stray_shims(data);
    cleanup_mounts_under(data);
    remove_cgroups(node);
}

/// Last resort: a shim still running for a container under `data` whose runtime state is
/// already gone is killed with the container's processes (its children).
fn kill_stray_shims(data: &Path) {
    let needle = data.to_string_lossy().into_owned();
    let procs = processes();
    for (shim, _, cmd) in &procs {
        if !(cmd.starts_with("berth-shim") && cmd.contains(&needle)) {
            continue;
        }
        for (pid, ppid, _) in &procs {
            if ppid == shim {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*shim),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
