//! Pod startup on one node: `berth server --disable-agent` plus a `berth agent` process
//! joined to it, the busybox image already in the node's store; `--pods` pods created at
//! once (concurrent POSTs), each timed from its POST to the watch event that shows it
//! Running. Against it, the floor of the same burst: the same number of busybox containers
//! started at once with `berth runtime run --detach` (what a pod start cannot go below), in
//! alternating rounds, after one untimed pod that makes the node unpack the image. Also the
//! agent process's RSS idle and with the pods running. Everything runs in a network namespace
//! of the benchmark's own (see `own_network_namespace`).
//!
//! ```sh
//! cargo build --release -p berth -p berth-bench --bin berth --bin podstart
//! sudo ./target/release/podstart --berth target/release/berth --pods 100 --rounds 3
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use berth_bench::{Proc, Stats, load_average};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};

/// The round number in the warm-up pod's name (`bench-999-0`).
const WARM_UP_ROUND: usize = 999;

struct Opts {
    berth: PathBuf,
    pods: usize,
    rounds: usize,
    /// Only the idle RSS: no pod or floor rounds.
    idle_only: bool,
    /// Seconds to keep the idle agent running after its RSS is read (its pid printed), for
    /// inspecting it (`/proc/PID/smaps`, `pagemap`) from another shell.
    hold: u64,
    /// Record the whole machine with `perf record -a -g` into this file during the first
    /// pods burst (from the first POST to the last pod seen Running).
    perf: Option<PathBuf>,
}

fn parse_opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        berth: PathBuf::from("target/release/berth"),
        pods: 100,
        rounds: 3,
        idle_only: false,
        hold: 0,
        perf: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--berth" => o.berth = PathBuf::from(val()?),
            "--pods" => o.pods = val()?.parse().context("--pods")?,
            "--rounds" => o.rounds = val()?.parse().context("--rounds")?,
            "--idle-only" => o.idle_only = true,
            "--hold" => o.hold = val()?.parse().context("--hold")?,
            "--perf" => o.perf = Some(PathBuf::from(val()?)),
            other => bail!(
                "unknown option {other} (--berth PATH --pods N --rounds N --idle-only --hold SECS --perf FILE)"
            ),
        }
    }
    ensure!(
        o.pods > 0 && o.rounds > 0,
        "--pods and --rounds must be positive"
    );
    o.berth = o
        .berth
        .canonicalize()
        .with_context(|| format!("{} (build it with --release)", o.berth.display()))?;
    Ok(o)
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS")
}

/// "anon A MB, file F MB": heap and stacks against the binary's pages mapped from disk.
fn rss_split(pid: u32) -> String {
    format!(
        "anon {:.1} MB, file {:.1} MB",
        status_kb(pid, "RssAnon") as f64 / 1024.0,
        status_kb(pid, "RssFile") as f64 / 1024.0
    )
}

fn busybox_rootfs(root: &Path) -> anyhow::Result<()> {
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).context("copy /bin/busybox")?;
    let list = Command::new("/bin/busybox").arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    Ok(())
}

/// A bundle like the agent's containers: new pid/mount/net/ipc/uts namespaces, cgroup, the
/// runtime's default seccomp-free spec, `sleep 3600`.
fn floor_bundle(dir: &Path, rootfs: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sleep", "3600"],
                    "env": ["PATH=/bin"], "cwd": "/",
                    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}},
        "root": {"path": rootfs, "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
        ],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}],
                  "resources": {"cpu": {"shares": 2}}}
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    Ok(())
}

fn pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "podstart"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "bench:1", "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]
        }
    }))
    .expect("pod")
}

async fn pods_round(
    client: &kube::Client,
    node: &str,
    n: usize,
    round: usize,
    perf: Option<&Path>,
) -> anyhow::Result<Vec<Duration>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let ready = Arc::new(tokio::sync::Notify::new());
    let (seen2, ready2) = (seen.clone(), ready.clone());
    let w = watcher::watcher(
        api.clone(),
        watcher::Config::default().labels("bench=podstart"),
    );
    let watch = tokio::spawn(async move {
        let mut w = w.boxed();
        while let Some(ev) = w.next().await {
            let p = match ev {
                Ok(Event::Apply(p)) | Ok(Event::InitApply(p)) => p,
                Ok(Event::InitDone) => {
                    ready2.notify_one();
                    continue;
                }
                _ => continue,
            };
            if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                let name = p.metadata.name.clone().unwrap_or_default();
                seen2
                    .lock()
                    .unwrap()
                    .entry(name)
                    .or_insert_with(Instant::now);
            }
        }
    });
    ready.notified().await;
    let recorder = perf.map(record_machine).transpose()?;
    let mut created: HashMap<String, Instant> = HashMap::new();
    let posts = (0..n).map(|i| {
        let api = api.clone();
        let name = format!("bench-{round}-{i}");
        let p = pod(&name, node);
        async move {
            let t = Instant::now();
            api.create(&PostParams::default(), &p)
                .await
                .with_context(|| format!("create {name}"))?;
            anyhow::Ok((name, t))
        }
    });
    for r in futures::future::join_all(posts).await {
        let (name, t) = r?;
        created.insert(name, t);
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if seen.lock().unwrap().len() >= n {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "only {} of {n} pods reached Running",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watch.abort();
    if let Some(r) = recorder {
        stop_recording(r)?;
    }
    let seen = seen.lock().unwrap();
    Ok(created
        .iter()
        .map(|(name, t)| seen[name].duration_since(*t))
        .collect())
}

async fn clear_pods(client: &kube::Client, berth: &Path, agent_data: &Path) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    api.delete_collection(&dp, &ListParams::default().labels("bench=podstart"))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = api
            .list(&ListParams::default().labels("bench=podstart"))
            .await?
            .items
            .len();
        let containers = runtime_list(berth, &agent_data.join("agent/cri/runtime"));
        if left == 0 && containers.is_empty() {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "pods did not go away");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn runtime_list(berth: &Path, root: &Path) -> Vec<String> {
    Command::new(berth)
        .args(["runtime", "--root"])
        .arg(root)
        .args(["list", "-q"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The floor: `n` containers at once with `berth runtime run --detach`.
fn floor_round(
    berth: &Path,
    root: &Path,
    bundle: &Path,
    n: usize,
    round: usize,
) -> anyhow::Result<Vec<Duration>> {
    let start = Instant::now();
    let children: Vec<(Child, String)> = (0..n)
        .map(|i| {
            let id = format!("floor-{round}-{i}");
            let c = Command::new(berth)
                .args(["runtime", "--root"])
                .arg(root)
                .args(["run", "--detach", "--bundle"])
                .arg(bundle)
                .arg(&id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("berth runtime run")?;
            anyhow::Ok((c, id))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut times = Vec::new();
    let mut pending = children;
    while !pending.is_empty() {
        let mut rest = Vec::new();
        for (mut c, id) in pending {
            match c.try_wait()? {
                Some(st) => {
                    ensure!(st.success(), "berth runtime run {id} failed");
                    times.push(start.elapsed());
                }
                None => rest.push((c, id)),
            }
        }
        pending = rest;
        std::thread::sleep(Duration::from_millis(1));
    }
    for id in runtime_list(berth, root) {
        let _ = Command::new(berth)
            .args(["runtime", "--root"])
            .arg(root)
            .args(["delete", "--force", &id])
            .output();
    }
    Ok(times)
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let o = parse_opts()?;
    ensure!(nix_is_root(), "podstart creates containers: run it as root");
    own_network_namespace()?;
    let tmp = tempfile::Builder::new().prefix("podstart-").tempdir()?;
    // PODSTART_AGENT_LOG=berth_agent=debug keeps the agent's log in /tmp/podstart-agent.log.
    let keep_log = std::env::var_os("PODSTART_AGENT_LOG").is_some();
    let server_data = tmp.path().join("server");
    let agent_data = tmp.path().join("agent");
    let node = format!("podstart-{}", std::process::id());
    std::fs::create_dir_all(&agent_data)?;
    // The image, present on the node before any pod.
    let rootfs = tmp.path().join("rootfs");
    busybox_rootfs(&rootfs)?;
    let tar = tmp.path().join("rootfs.tar");
    ensure!(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()?
            .success(),
        "tar"
    );
    let out = Command::new(&o.berth)
        .arg("import")
        .arg(&tar)
        .arg("bench:1")
        .arg("--data-dir")
        .arg(&agent_data)
        .output()?;
    ensure!(
        out.status.success(),
        "berth import: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = Proc(
        Command::new(&o.berth)
            .args(["server", "--data-dir"])
            .arg(&server_data)
            .args([
                "--bind-address",
                "127.0.0.1",
                "--https-listen-port",
                "0",
                "--disable-agent",
                "--disable",
                "registry",
            ])
            .env(
                "BERTH_LOG",
                std::env::var("PODSTART_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("server.log"))?)
            .spawn()?,
    );
    let ready_file = server_data.join("server/ready");
    let addr = wait_file(&ready_file)?;
    let token = Command::new(&o.berth)
        .args(["token", "--data-dir"])
        .arg(&server_data)
        .output()?;
    ensure!(token.status.success(), "berth token");
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    let agent = Proc(
        Command::new(&o.berth)
            .args([
                "agent",
                "--server",
                &format!("https://{addr}"),
                "--token",
                &token,
            ])
            .arg("--data-dir")
            .arg(&agent_data)
            .args([
                "--node-name",
                &node,
                "--node-ip",
                "127.0.0.1",
                "--agent-port",
                "0",
            ])
            .env(
                "BERTH_LOG",
                std::env::var("PODSTART_AGENT_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("agent.log"))?)
            .spawn()?,
    );
    let agent_pid = agent.0.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(server_data.join("kubeconfig.yaml"))?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        let client = kube::Client::try_from(cfg)?;
        let nodes: Api<Node> = Api::all(client.clone());
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = nodes.get_opt(&node).await?.is_some_and(|n| {
                n.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
            if ready {
                break;
            }
            ensure!(Instant::now() < deadline, "the node never became Ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let idle_rss = rss_kb(agent_pid);
        println!("agent idle: {}", rss_split(agent_pid));
        if o.hold > 0 {
            println!("agent pid {agent_pid}: holding it idle for {} s", o.hold);
            tokio::time::sleep(Duration::from_secs(o.hold)).await;
        }
        if o.idle_only {
            println!("agent RSS: idle {:.1} MB", idle_rss as f64 / 1024.0);
            return anyhow::Ok(None);
        }
        // One pod first, not timed: the node unpacks an imported image's layers on its first
        // use, and "image present" means ready to run, as after a pull by containerd.
        let warm = pods_round(&client, &node, 1, WARM_UP_ROUND, None).await?;
        println!("warm-up pod running after {} ms", warm[0].as_millis());
        clear_pods(&client, &o.berth, &agent_data).await?;
        let floor_root = tmp.path().join("floor-state");
        let bundle = tmp.path().join("floor-bundle");
        floor_bundle(&bundle, &rootfs)?;
        let (mut pods_all, mut floor_all, mut busy_rss) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..o.rounds {
            let perf = o.perf.as_deref().filter(|_| round == 0);
            let p = pods_round(&client, &node, o.pods, round, perf).await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            busy_rss.push(rss_kb(agent_pid));
            println!("agent with {} pods: {}", o.pods, rss_split(agent_pid));
            let s = Stats::of_durations(&p);
            println!(
                "round {round}: {} pods  p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
                o.pods, s.median, s.p99, s.max
            );
            pods_all.extend(p);
            clear_pods(&client, &o.berth, &agent_data).await?;
            let f = floor_round(&o.berth, &floor_root, &bundle, o.pods, round)?;
            let s = Stats::of_durations(&f);
            println!(
                "round {round}: {} runtime runs  p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
                o.pods, s.median, s.p99, s.max
            );
            floor_all.extend(f);
        }
        anyhow::Ok(Some((pods_all, floor_all, idle_rss, busy_rss)))
    });
    drop(agent);
    drop(server);
    if keep_log {
        let _ = std::fs::copy(tmp.path().join("agent.log"), "/tmp/podstart-agent.log");
    }
    if std::env::var_os("PODSTART_SERVER_LOG").is_some() {
        let _ = std::fs::copy(tmp.path().join("server.log"), "/tmp/podstart-server.log");
    }
    remove_node_cgroups(&node);
    let Some((pods_all, floor_all, idle_rss, busy_rss)) = result? else {
        return Ok(());
    };
    let ps = Stats::of_durations(&pods_all);
    let fs = Stats::of_durations(&floor_all);
    let busy = busy_rss.iter().copied().max().unwrap_or(0);
    println!("load average: {}", load_average());
    println!(
        "pod startup ({} pods at once, {} rounds): p50 {:.0} ms, p99 {:.0} ms (target p99 <= 300 ms)",
        o.pods, o.rounds, ps.median, ps.p99
    );
    println!(
        "floor (berth runtime run --detach, same burst): p50 {:.0} ms, p99 {:.0} ms",
        fs.median, fs.p99
    );
    println!(
        "agent RSS: idle {:.1} MB (target <= 30 MB), with {} pods {:.1} MB",
        idle_rss as f64 / 1024.0,
        o.pods,
        busy as f64 / 1024.0
    );
    println!(
        "ratio pods/floor: p50 {:.2}, p99 {:.2}",
        ps.median / fs.median,
        ps.p99 / fs.p99
    );
    Ok(())
}

/// Starts `perf record -a -g` of the whole machine into `out`, once it has begun sampling.
fn record_machine(out: &Path) -> anyhow::Result<Child> {
    let child = Command::new("perf")
        .args(["record", "-a", "-g", "-F", "1999", "-o"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("perf record (is perf installed?)")?;
    // perf writes its header once the sampling events are open.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(out).map(|m| m.len()).unwrap_or(0) == 0 {
        ensure!(Instant::now() < deadline, "perf record did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(child)
}

/// Stops a recording started by [`record_machine`] the way Ctrl-C does, so it writes its data.
fn stop_recording(mut child: Child) -> anyhow::Result<()> {
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait().context("perf record")?;
    Ok(())
}

/// Removes the node's cgroup directories (`/berth/<node>` in every hierarchy).
fn remove_node_cgroups(node: &str) {
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
        let mut dirs = Vec::new();
        let mut stack = vec![Path::new(mp).join("berth").join(node)];
        while let Some(d) = stack.pop() {
            if let Ok(rd) = std::fs::read_dir(&d) {
                dirs.push(d.clone());
                stack.extend(
                    rd.flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

/// Moves this process (still single-threaded) and so every process it starts into a new
/// network namespace with only loopback: the node's bridge, routes and nftables table live
/// and die with the benchmark, and nothing it does can reach the host's network.
fn own_network_namespace() -> anyhow::Result<()> {
    // SAFETY: unshare has no memory preconditions; called before any thread is started.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).context("unshare(CLONE_NEWNET)");
    }
    ensure!(
        Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .context("ip link set lo up")?
            .success(),
        "ip link set lo up failed"
    );
    Ok(())
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn wait_file(p: &Path) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = std::fs::read_to_string(p) {
            let s = s.trim().to_string();
            if !s.is_empty() {
                return Ok(s);
            }
        }
        ensure!(Instant::now() < deadline, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}
