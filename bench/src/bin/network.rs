//! bench/network: berth's Service rules and Ingress proxy against the direct path and
//! Debian's nginx, in the same run, interleaved round by round. Everything lives in network
//! namespaces the program creates (a node, an outside client on a test LAN, backend
//! "pods"); nothing touches the host's network.
//!
//! 1. **ClusterIP vs pod IP**: wrk from a client pod to a one-endpoint ClusterIP and straight
//!    to that endpoint's pod IP (nginx serving a small file) — requests/s and p99.
//! 2. **Ingress vs nginx**: wrk from the outside machine to berth's Ingress proxy on the node
//!    (`Host: bench.test`) and to nginx as a reverse proxy on the same node, both balancing
//!    over the same three backend pods with keep-alive upstream connections; both write an
//!    access log.
//! 3. **Endpoint change → rules applied**: with `--services` background Services of 4
//!    endpoints each in the table, an EndpointSlice is patched through the API (kube client)
//!    and the time until `nft monitor` shows the new endpoint's DNAT rule is measured, one
//!    change at a time.
//!
//! The backend pods are network namespaces connected by berth's own pod network
//! (`BridgeNetwork`, on the node's podCIDR and IPAM) and registered through a selector-less
//! Service's EndpointSlice, so no container image is involved.
//!
//! Run as root with a release build: `cargo build --release -p berth && cargo run --release
//! -p berth-bench --bin network -- [--rounds 5] [--secs 5] [--conns 32] [--changes 100]
//! [--services 100] [--berth target/release/berth] [--smoke]`

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use berth_bench::{Proc, Stats, load_average};
use berth_cri::{NetworkAttachment, PodNetwork};

struct Opts {
    rounds: usize,
    secs: u64,
    conns: u32,
    changes: usize,
    services: usize,
    berth: PathBuf,
}

fn parse_opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        rounds: 5,
        secs: 5,
        conns: 32,
        changes: 100,
        services: 100,
        berth: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/berth"),
    };
    let mut smoke = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--rounds" => o.rounds = v()?.parse()?,
            "--secs" => o.secs = v()?.parse()?,
            "--conns" => o.conns = v()?.parse()?,
            "--changes" => o.changes = v()?.parse()?,
            "--services" => o.services = v()?.parse()?,
            "--berth" => o.berth = v()?.into(),
            "--smoke" => smoke = true,
            _ => bail!("unknown argument {a}"),
        }
    }
    if smoke {
        o.rounds = 1;
        o.secs = 1;
        o.changes = 5;
        o.services = 5;
    }
    ensure!(
        o.berth.exists(),
        "{} not found (cargo build --release -p berth)",
        o.berth.display()
    );
    Ok(o)
}

fn sh(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace, deleted on drop.
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> anyhow::Result<Ns> {
        let name = format!("bbn{tag}{:x}", std::process::id() & 0xfffff);
        sh(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Ns(name);
        sh(ns.cmd("ip").args(["link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.0)
    }

    /// A command in this namespace (only the network namespace changes).
    fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        c
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A child process killed on drop.
fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn veth(lan: &Ns, ns: &Ns, ip: &str, tag: &str) -> anyhow::Result<()> {
    let end = format!("bbv{tag}{:x}", std::process::id() & 0xffff);
    sh(Command::new("ip").args([
        "link", "add", &end, "type", "veth", "peer", "name", "eth0", "netns", &ns.0,
    ]))?;
    sh(Command::new("ip").args(["link", "set", &end, "netns", &lan.0]))?;
    sh(lan
        .cmd("ip")
        .args(["link", "set", &end, "master", "lanbr", "up"]))?;
    sh(ns
        .cmd("ip")
        .args(["addr", "add", &format!("{ip}/24"), "dev", "eth0"]))?;
    sh(ns.cmd("ip").args(["link", "set", "eth0", "up"]))?;
    Ok(())
}

/// One wrk run: (requests/s, p99 latency in ms).
fn wrk(
    ns: &Ns,
    url: &str,
    host: Option<&str>,
    conns: u32,
    secs: u64,
) -> anyhow::Result<(f64, f64)> {
    let mut c = ns.cmd("wrk");
    c.args([
        "-t1",
        "-c",
        &conns.to_string(),
        "-d",
        &format!("{secs}s"),
        "--latency",
    ]);
    if let Some(h) = host {
        c.args(["-H", &format!("Host: {h}")]);
    }
    c.arg(url);
    let out = sh(&mut c)?;
    let rps = out
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Requests/sec:")
                .map(|v| v.trim().parse::<f64>())
        })
        .context("no Requests/sec in wrk's output")??;
    let p99 = out
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("99%")
                .map(|v| parse_latency(v.trim()))
        })
        .context("no 99% line in wrk's output")??;
    let errors = out
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    ensure!(errors.is_none(), "wrk saw errors on {url}: {out}");
    Ok((rps, p99))
}

fn parse_latency(v: &str) -> anyhow::Result<f64> {
    let (num, mult) = if let Some(x) = v.strip_suffix("us") {
        (x, 1e-3)
    } else if let Some(x) = v.strip_suffix("ms") {
        (x, 1.0)
    } else if let Some(x) = v.strip_suffix('s') {
        (x, 1e3)
    } else {
        bail!("latency {v:?}")
    };
    Ok(num.parse::<f64>()? * mult)
}

fn nginx_backend(ns: &Ns, dir: &Path, name: &str) -> anyhow::Result<Proc> {
    let root = dir.join(name);
    std::fs::create_dir_all(root.join("www"))?;
    std::fs::write(root.join("www/index.html"), format!("{name}\n"))?;
    let conf = root.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\nerror_log {r}/error.log;\npid {r}/nginx.pid;\nevents {{ worker_connections 4096; }}\n\
             http {{ access_log off; keepalive_requests 1000000; client_body_temp_path {r}; proxy_temp_path {r};\n\
             fastcgi_temp_path {r}; uwsgi_temp_path {r}; scgi_temp_path {r};\n\
             server {{ listen 8080; location / {{ root {r}/www; }} }} }}\n",
            r = root.display()
        ),
    )?;
    let child = ns
        .cmd("nginx")
        .args(["-g", "daemon off;", "-c"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Proc(child))
}

fn nginx_proxy(ns: &Ns, dir: &Path, backends: &[String]) -> anyhow::Result<Proc> {
    let root = dir.join("proxy");
    std::fs::create_dir_all(&root)?;
    let servers: String = backends
        .iter()
        .map(|b| format!("server {b}:8080; "))
        .collect();
    let conf = root.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes auto;\nerror_log {r}/error.log;\npid {r}/nginx.pid;\nevents {{ worker_connections 8192; }}\n\
             http {{ access_log {r}/access.log; keepalive_requests 1000000; client_body_temp_path {r}; proxy_temp_path {r};\n\
             fastcgi_temp_path {r}; uwsgi_temp_path {r}; scgi_temp_path {r};\n\
             upstream be {{ {servers} keepalive 256; }}\n\
             server {{ listen 8088; location / {{ proxy_pass http://be; proxy_http_version 1.1;\n\
             proxy_set_header Connection \"\"; proxy_set_header Host $host;\n\
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }} }} }}\n",
            r = root.display()
        ),
    )?;
    let child = ns
        .cmd("nginx")
        .args(["-g", "daemon off;", "-c"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Proc(child))
}

/// Runs an async body on a current-thread runtime on a thread inside `ns`.
fn in_ns<T: Send + 'static, F>(ns: &Ns, f: impl FnOnce() -> F + Send + 'static) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let file = std::fs::File::open(ns.path())?;
    std::thread::spawn(move || -> anyhow::Result<T> {
        nix_setns(&file)?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(f())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
}

fn nix_setns(file: &std::fs::File) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a valid namespace file descriptor, for the calling thread only.
    let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    ensure!(r == 0, "setns: {}", std::io::Error::last_os_error());
    Ok(())
}

fn kubectl(
    outside: &Ns,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<String> {
    let mut c = outside.cmd("kubectl");
    c.arg("--kubeconfig").arg(kubeconfig).args(args);
    match stdin {
        None => sh(&mut c),
        Some(input) => {
            let mut child = c
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            child
                .stdin
                .take()
                .context("stdin")?
                .write_all(input.as_bytes())?;
            let out = child.wait_with_output()?;
            ensure!(
                out.status.success(),
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
    }
}

fn slice_yaml(name: &str, service: &str, ips: &[String], node: &str) -> String {
    let eps: String = ips
        .iter()
        .map(|ip| {
            format!(
                "  - {{addresses: [\"{ip}\"], conditions: {{ready: true}}, nodeName: {node}}}\n"
            )
        })
        .collect();
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, labels: {{kubernetes.io/service-name: {service}}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: 8080, protocol: TCP}}]\nendpoints:\n{eps}"
    )
}

fn service_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{name: http, port: 80, targetPort: 8080}}]\n"
    )
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let o = parse_opts()?;
    // SAFETY: geteuid has no preconditions.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "run as root (network namespaces)"
    );
    for tool in ["nginx", "wrk", "nft", "kubectl", "nsenter"] {
        ensure!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()?
                .status
                .success(),
            "{tool} is missing (scripts/install-deps.sh)"
        );
    }
    let tmp = tempfile::Builder::new()
        .prefix("berth-bench-net-")
        .tempdir()?;
    let dir = tmp.path();

    // The LAN, the node, the outside client.
    let lan = Ns::new("l")?;
    sh(lan
        .cmd("ip")
        .args(["link", "add", "lanbr", "type", "bridge"]))?;
    sh(lan.cmd("ip").args(["link", "set", "lanbr", "up"]))?;
    let node = Ns::new("n")?;
    let outside = Ns::new("o")?;
    veth(&lan, &node, "172.31.0.1", "n")?;
    veth(&lan, &outside, "172.31.0.100", "o")?;
    std::fs::write(dir.join("resolv.conf"), "")?;
    let data = dir.join("node");
    let log = std::fs::File::create(dir.join("berth.log"))?;
    let _berth = Proc(
        node.cmd(&o.berth)
            .args(["server", "--data-dir"])
            .arg(&data)
            .args([
                "--bind-address",
                "172.31.0.1",
                "--node-name",
                "bench-node",
                "--registry-port",
                "0",
                "--agent-port",
                "0",
            ])
            .arg("--resolv-conf")
            .arg(dir.join("resolv.conf"))
            .env("BERTH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    let kubeconfig = data.join("kubeconfig.yaml");
    wait_for("berth server", Duration::from_secs(120), || {
        std::fs::read_to_string(data.join("server/ready"))
            .ok()
            .filter(|s| !s.trim().is_empty())
    })?;
    let pod_cidr = wait_for("the node's podCIDR", Duration::from_secs(120), || {
        kubectl(
            &outside,
            &kubeconfig,
            &[
                "get",
                "node",
                "bench-node",
                "-o",
                "jsonpath={.spec.podCIDR}",
            ],
            None,
        )
        .ok()
        .filter(|s| !s.is_empty())
    })?;
    wait_for("the bridge", Duration::from_secs(60), || {
        sh(node
            .cmd("ip")
            .args(["-o", "-4", "addr", "show", "dev", "berth0"]))
        .ok()
        .filter(|s| s.contains("inet"))
    })?;

    // Backend pods and a client pod on berth's pod network.
    let pods: Vec<Ns> = (0..4)
        .map(|i| Ns::new(&format!("p{i}")))
        .collect::<anyhow::Result<_>>()?;
    let attachments: Vec<NetworkAttachment> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| NetworkAttachment {
            sandbox_id: format!("bench-{i}"),
            pod_name: format!("bench-{i}"),
            pod_namespace: "default".into(),
            pod_uid: format!("bench-{i}"),
            netns: p.path(),
            port_mappings: vec![],
        })
        .collect();
    let state = data.join("agent").join("net");
    let cidr = pod_cidr.clone();
    let atts = attachments.clone();
    let ips: Vec<String> = in_ns(&node, move || async move {
        let net = berth_net::BridgeNetwork::new(berth_net::PodNetworkConfig {
            bridge: "berth0".into(),
            state_dir: state,
            mtu: None,
            cluster_cidr: "10.42.0.0/16".parse()?,
            service_cidr: "10.43.0.0/16".parse()?,
        })?;
        net.set_pod_cidr(&cidr).await?;
        let mut ips = Vec::new();
        for a in &atts {
            ips.push(net.setup(a).await?[0].to_string());
        }
        Ok(ips)
    })?;
    let (backends, client_ip) = (ips[..3].to_vec(), ips[3].clone());
    let client = &pods[3];
    let _backend_procs: Vec<Proc> = pods[..3]
        .iter()
        .enumerate()
        .map(|(i, p)| nginx_backend(p, dir, &format!("backend-{i}")))
        .collect::<anyhow::Result<_>>()?;
    let _proxy = nginx_proxy(&node, dir, &backends)?;

    // Services: `one` (the first backend only), `bench` (all three) behind the Ingress.
    let mut objects = String::new();
    for (svc, ips) in [("one", &backends[..1]), ("bench", &backends[..])] {
        objects.push_str(&service_yaml(svc));
        objects.push_str("---\n");
        objects.push_str(&slice_yaml(&format!("{svc}-1"), svc, ips, "bench-node"));
        objects.push_str("---\n");
    }
    objects.push_str(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bench}\nspec:\n  ingressClassName: berth\n  rules:\n\
         \x20 - host: bench.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: bench, port: {number: 80}}}}\n",
    );
    kubectl(&outside, &kubeconfig, &["apply", "-f", "-"], Some(&objects))?;
    let vip = kubectl(
        &outside,
        &kubeconfig,
        &["get", "svc", "one", "-o", "jsonpath={.spec.clusterIP}"],
        None,
    )?;
    let curl_ok = |ns: &Ns, url: &str, host: Option<&str>| {
        let mut c = ns.cmd("curl");
        c.args(["-sf", "-m", "2", "-o", "/dev/null"]);
        if let Some(h) = host {
            c.args(["-H", &format!("Host: {h}")]);
        }
        c.arg(url);
        sh(&mut c).ok().map(|_| ())
    };
    wait_for("the ClusterIP", Duration::from_secs(60), || {
        curl_ok(client, &format!("http://{vip}/"), None)
    })?;
    wait_for("the Ingress", Duration::from_secs(60), || {
        curl_ok(&outside, "http://172.31.0.1/", Some("bench.test"))
    })?;
    wait_for("nginx", Duration::from_secs(30), || {
        curl_ok(&outside, "http://172.31.0.1:8088/", Some("bench.test"))
    })?;
    println!(
        "setup: node podCIDR {pod_cidr}, client pod {client_ip}, backends {backends:?}, ClusterIP {vip}; load {}",
        load_average()
    );

    // 1 and 2, interleaved.
    let (mut cip, mut direct, mut ing, mut ngx) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..o.rounds {
        let order: [u8; 4] = if round % 2 == 0 {
            [0, 1, 2, 3]
        } else {
            [1, 0, 3, 2]
        };
        for k in order {
            match k {
                0 => cip.push(wrk(
                    client,
                    &format!("http://{vip}/"),
                    None,
                    o.conns,
                    o.secs,
                )?),
                1 => direct.push(wrk(
                    client,
                    &format!("http://{}:8080/", backends[0]),
                    None,
                    o.conns,
                    o.secs,
                )?),
                2 => ing.push(wrk(
                    &outside,
                    "http://172.31.0.1/",
                    Some("bench.test"),
                    o.conns,
                    o.secs,
                )?),
                _ => ngx.push(wrk(
                    &outside,
                    "http://172.31.0.1:8088/",
                    Some("bench.test"),
                    o.conns,
                    o.secs,
                )?),
            }
        }
        println!(
            "round {}: ClusterIP {:.0} req/s, pod IP {:.0}, Ingress {:.0}, nginx {:.0}",
            round + 1,
            cip.last().unwrap().0,
            direct.last().unwrap().0,
            ing.last().unwrap().0,
            ngx.last().unwrap().0
        );
    }

    // 3. Endpoint change → rules applied.
    let mut background = String::new();
    for i in 0..o.services {
        let fake: Vec<String> = (0..4)
            .map(|k| format!("10.42.200.{}", (i * 4 + k) % 250 + 2))
            .collect();
        background.push_str(&service_yaml(&format!("bg-{i}")));
        background.push_str("---\n");
        background.push_str(&slice_yaml(
            &format!("bg-{i}-1"),
            &format!("bg-{i}"),
            &fake,
            "bench-node",
        ));
        background.push_str("---\n");
    }
    background.push_str(&service_yaml("churn"));
    background.push_str("---\n");
    background.push_str(&slice_yaml(
        "churn-1",
        "churn",
        &["10.42.250.1".to_string()],
        "bench-node",
    ));
    kubectl(
        &outside,
        &kubeconfig,
        &["apply", "-f", "-"],
        Some(&background),
    )?;
    wait_for(
        "the churn Service's rules",
        Duration::from_secs(120),
        || {
            sh(node.cmd("nft").args(["list", "table", "ip", "berth"]))
                .ok()
                .filter(|t| t.contains("10.42.250.1"))
        },
    )?;
    let rules = sh(node.cmd("nft").args(["list", "table", "ip", "berth"]))?
        .lines()
        .count();
    let mut monitor = node
        .cmd("nft")
        .args(["monitor", "rules"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let out = monitor.stdout.take().context("monitor stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let _monitor = Proc(monitor);
    std::thread::sleep(Duration::from_millis(300));
    let changes = o.changes;
    let kc = kubeconfig.clone();
    let latencies: Vec<Duration> = in_ns(&outside, move || async move {
        use k8s_openapi::api::discovery::v1::EndpointSlice;
        use kube::api::{Api, Patch, PatchParams};
        let kcfg = kube::config::Kubeconfig::read_from(&kc)?;
        let config =
            kube::Config::from_custom_kubeconfig(kcfg, &kube::config::KubeConfigOptions::default())
                .await?;
        let client = kube::Client::try_from(config)?;
        let api: Api<EndpointSlice> = Api::namespaced(client, "default");
        let mut out = Vec::new();
        for i in 0..changes {
            let ip = format!("10.42.{}.{}", 251 + (i / 250) % 4, i % 250 + 2);
            let body = serde_json::json!({"endpoints": [{"addresses": [ip], "conditions": {"ready": true}, "nodeName": "bench-node"}]});
            while rx.try_recv().is_ok() {}
            let t0 = Instant::now();
            api.patch("churn-1", &PatchParams::default(), &Patch::Merge(&body))
                .await?;
            let needle = format!("dnat to {ip}:");
            let deadline = t0 + Duration::from_secs(10);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let (at, line) = rx
                    .recv_timeout(left)
                    .map_err(|_| anyhow::anyhow!("no rule for {ip} within 10 s"))?;
                if line.contains(&needle) {
                    out.push(at - t0);
                    break;
                }
            }
            // Let the table settle before the next change.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(out)
    })?;

    // Results.
    let rps = |v: &[(f64, f64)]| Stats::of(&v.iter().map(|x| x.0).collect::<Vec<_>>());
    let p99 = |v: &[(f64, f64)]| Stats::of(&v.iter().map(|x| x.1).collect::<Vec<_>>());
    let (cr, dr, ir, nr) = (rps(&cip), rps(&direct), rps(&ing), rps(&ngx));
    let (cl, dl, il, nl) = (p99(&cip), p99(&direct), p99(&ing), p99(&ngx));
    let change = Stats::of_durations(&latencies);
    println!("\nload average at the end: {}", load_average());
    println!(
        "ClusterIP (one endpoint): median {:.0} req/s, p99 latency median {:.2} ms ({} rounds, {} conns, {} s)",
        cr.median, cl.median, o.rounds, o.conns, o.secs
    );
    println!(
        "pod IP directly:          median {:.0} req/s, p99 latency median {:.2} ms",
        dr.median, dl.median
    );
    println!(
        "berth Ingress (3 pods):   median {:.0} req/s, p99 latency median {:.2} ms",
        ir.median, il.median
    );
    println!(
        "nginx proxy (3 pods):     median {:.0} req/s, p99 latency median {:.2} ms",
        nr.median, nl.median
    );
    println!(
        "endpoint change -> rule applied ({} changes, {} background Services, {rules} lines of rules): median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        change.n, o.services, change.median, change.p99, change.max
    );
    println!(
        "ratio ClusterIP/pod IP req/s: {:.3} (target >= 0.95)",
        cr.median / dr.median
    );
    println!(
        "ratio Ingress/nginx req/s: {:.3} (target >= 1), p99 Ingress/nginx: {:.3} (target <= 1)",
        ir.median / nr.median,
        il.median / nl.median
    );
    Ok(())
}
