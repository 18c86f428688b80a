//! API server latency and memory: berth's API server (release binary, embedded store) against
//! etcd — the store a Kubernetes API server writes through, and so the floor of its write
//! latency — in the same run, on the same disk.
//!
//! `cargo build --release --bin berth && cargo run --release -p berth-bench --bin api
//!  [-- --seconds S --objects N --clients C]`
//!
//! 1. **Paced**: 20 changes/s (alternating a ConfigMap create and an update of the previous
//!    one), each followed by a GET of the object, for `--seconds`; p50/p99 per verb. etcd does
//!    the same pattern (put new key, CAS-update previous key, get) at the same pace.
//! 2. **Saturation**: `--clients` concurrent clients looping create → update → get for
//!    `--seconds`; throughput and p50/p99 per verb.
//! 3. **Memory**: on a fresh server, `--objects` ConfigMaps and Secrets (half each, ~1 KiB,
//!    kinds no controller acts on) are created, then the server's RSS (VmRSS) is read after
//!    it settles.
//!
//! berth is reached over HTTPS with a client certificate from its kubeconfig, as kubectl does;
//! etcd over loopback gRPC. Targets (issue 2): mutating p99 ≤ 10 ms at 20 changes/s; RSS ≤
//! 100 MB with 10,000 objects (k3s server: 1.4–1.6 GB published).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use berth_bench::{Stats, load_average};
use serde_json::{Value, json};

struct Args {
    seconds: f64,
    objects: usize,
    clients: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        seconds: 20.0,
        objects: 10_000,
        clients: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut v = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => a.seconds = v()?.parse()?,
            "--objects" => a.objects = v()?.parse()?,
            "--clients" => a.clients = v()?.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    base: String,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kubeconfig_field(text: &str, key: &str) -> Result<Vec<u8>> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .with_context(|| format!("kubeconfig has no {key}"))?;
    Ok(base64::engine::general_purpose::STANDARD.decode(line.trim())?)
}

fn berth_bin() -> PathBuf {
    std::env::var_os("BERTH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/berth")
        })
}

async fn start_berth(dir: tempfile::TempDir) -> Result<Server> {
    let bin = berth_bin();
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it with `cargo build --release --bin berth`",
        bin.display()
    );
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let child = Command::new(&bin)
        .arg("server")
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--bind-address",
            "127.0.0.1",
            "--https-listen-port",
            "0",
            "--registry-port",
            "0",
            "--disable-agent",
        ])
        .env("BERTH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let ready = dir.path().join("server/ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(&ready)
            && !a.trim().is_empty()
        {
            break a.trim().to_string();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "berth server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let kc = std::fs::read_to_string(dir.path().join("kubeconfig.yaml"))?;
    let ca = kubeconfig_field(&kc, "certificate-authority-data")?;
    let mut id = kubeconfig_field(&kc, "client-certificate-data")?;
    id.extend(kubeconfig_field(&kc, "client-key-data")?);
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
        .identity(reqwest::Identity::from_pem(&id)?)
        .pool_max_idle_per_host(256)
        .build()?;
    Ok(Server {
        child,
        _dir: dir,
        base: format!("https://{addr}"),
        client,
    })
}

fn configmap(name: &str, i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"bench": "api"}},
           "data": {"index": i.to_string(), "payload": "x".repeat(512)}})
}

const CM: &str = "/api/v1/namespaces/default/configmaps";

impl Server {
    async fn create(&self, path: &str, obj: &Value) -> Result<Value> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(obj)
            .send()
            .await?;
        let code = r.status();
        let v: Value = r.json().await?;
        anyhow::ensure!(code.is_success(), "create failed: {code} {v}");
        Ok(v)
    }
    async fn update(&self, mut obj: Value) -> Result<Value> {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        obj["data"]["index"] = json!("updated");
        let r = self
            .client
            .put(format!("{}{CM}/{name}", self.base))
            .json(&obj)
            .send()
            .await?;
        let code = r.status();
        let v: Value = r.json().await?;
        anyhow::ensure!(code.is_success(), "update failed: {code} {v}");
        Ok(v)
    }
    async fn get(&self, name: &str) -> Result<()> {
        let r = self
            .client
            .get(format!("{}{CM}/{name}", self.base))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "get failed: {}", r.status());
        r.bytes().await?;
        Ok(())
    }
    fn rss_mb(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|k| k.parse::<f64>().ok())
                })
            })
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }
}

#[derive(Default)]
struct Lat {
    create: Vec<Duration>,
    update: Vec<Duration>,
    get: Vec<Duration>,
}

fn line(system: &str, phase: &str, verb: &str, d: &[Duration]) {
    if d.is_empty() {
        return;
    }
    let s = Stats::of_durations(d);
    println!(
        "{system:<6} {phase:<10} {verb:<7} n={:<6} p50={:>7.2} ms  p99={:>7.2} ms  max={:>7.2} ms",
        s.n, s.median, s.p99, s.max
    );
}

async fn berth_paced(s: &Server, seconds: f64) -> Result<Lat> {
    let mut lat = Lat::default();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut last: Option<Value> = None;
    let mut i = 0;
    while Instant::now() < end {
        tick.tick().await;
        i += 1;
        let t = Instant::now();
        if let (Some(prev), true) = (last.take(), i % 2 == 0) {
            let name = prev["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            s.update(prev).await?;
            lat.update.push(t.elapsed());
            let g = Instant::now();
            s.get(&name).await?;
            lat.get.push(g.elapsed());
        } else {
            let name = format!("paced-{i}");
            last = Some(s.create(CM, &configmap(&name, i)).await?);
            lat.create.push(t.elapsed());
            let g = Instant::now();
            s.get(&name).await?;
            lat.get.push(g.elapsed());
        }
    }
    Ok(lat)
}

async fn berth_saturate(s: Arc<Server>, seconds: f64, clients: usize) -> Result<(Lat, f64)> {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Lat::default();
            let mut i = 0;
            while Instant::now() < end {
                i += 1;
                let name = format!("sat-{c}-{i}");
                let t = Instant::now();
                let obj = s.create(CM, &configmap(&name, i)).await?;
                lat.create.push(t.elapsed());
                let t = Instant::now();
                s.update(obj).await?;
                lat.update.push(t.elapsed());
                let t = Instant::now();
                s.get(&name).await?;
                lat.get.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Lat::default();
    for t in tasks {
        let l = t.await??;
        all.create.extend(l.create);
        all.update.extend(l.update);
        all.get.extend(l.get);
    }
    let secs = start.elapsed().as_secs_f64();
    let changes = (all.create.len() + all.update.len()) as f64 / secs;
    Ok((all, changes))
}

async fn etcd_paced(c: &mut etcd_client::Client, seconds: f64) -> Result<Lat> {
    use etcd_client::{Compare, CompareOp, Txn, TxnOp};
    let mut lat = Lat::default();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let value = configmap("x", 0).to_string();
    let mut last: Option<(String, i64)> = None;
    let mut i = 0;
    while Instant::now() < end {
        tick.tick().await;
        i += 1;
        let t = Instant::now();
        if let (Some((key, rev)), true) = (last.take(), i % 2 == 0) {
            let txn = Txn::new()
                .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, rev)])
                .and_then([TxnOp::put(key.as_str(), value.as_str(), None)]);
            let r = c.txn(txn).await?;
            anyhow::ensure!(r.succeeded(), "etcd CAS failed");
            lat.update.push(t.elapsed());
            let g = Instant::now();
            c.get(key.as_str(), None).await?;
            lat.get.push(g.elapsed());
        } else {
            let key = format!("/registry/configmaps/default/paced-{i}");
            let r = c.put(key.as_str(), value.as_str(), None).await?;
            let rev = r.header().map(|h| h.revision()).unwrap_or(0);
            lat.create.push(t.elapsed());
            let g = Instant::now();
            c.get(key.as_str(), None).await?;
            lat.get.push(g.elapsed());
            last = Some((key, rev));
        }
    }
    Ok(lat)
}

fn secret(name: &str, i: usize) -> Value {
    use base64::Engine;
    let v = base64::engine::general_purpose::STANDARD.encode("s".repeat(384) + &i.to_string());
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": {"bench": "api"}},
           "type": "Opaque", "data": {"token": v}})
}

/// Stores `n` objects (ConfigMaps and Secrets of about 1 KiB: kinds no controller acts on, so
/// the server holds exactly what was written).
async fn fill(s: Arc<Server>, n: usize) -> Result<()> {
    let per = n.div_ceil(16);
    let mut tasks = Vec::new();
    for c in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in (c * per)..((c + 1) * per).min(n) {
                if i % 2 == 0 {
                    s.create(CM, &configmap(&format!("fill-{i}"), i)).await?;
                } else {
                    s.create(
                        "/api/v1/namespaces/default/secrets",
                        &secret(&format!("fill-{i}"), i),
                    )
                    .await?;
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args()?;
    println!(
        "bench/api: berth API server vs etcd (storage floor), {:.0}s phases, load average {}",
        args.seconds,
        load_average()
    );
    println!("etcd {}", berth_bench::etcd::version());

    let work = tempfile::Builder::new()
        .prefix("berth-bench-api-")
        .tempdir_in(std::env::temp_dir())?;
    let (_etcd, mut ec) = berth_bench::etcd::start(work.path()).await?;
    let server = Arc::new(
        start_berth(
            tempfile::Builder::new()
                .prefix("berth-bench-api-srv-")
                .tempdir()?,
        )
        .await?,
    );
    // Warm up connections and caches.
    for i in 0..20 {
        server
            .create(CM, &configmap(&format!("warm-{i}"), i))
            .await?;
        ec.put(format!("/warm/{i}"), "x", None).await?;
    }

    println!("\n== paced: 20 changes/s (create and update alternating), each followed by a get");
    let e = etcd_paced(&mut ec, args.seconds).await?;
    let b = berth_paced(&server, args.seconds).await?;
    for (n, d) in [
        ("create", &b.create),
        ("update", &b.update),
        ("get", &b.get),
    ] {
        line("berth", "paced", n, d);
    }
    for (n, d) in [("put", &e.create), ("cas", &e.update), ("get", &e.get)] {
        line("etcd", "paced", n, d);
    }

    println!(
        "\n== saturation: {} clients looping create, update, get",
        args.clients
    );
    let (sat, changes) = berth_saturate(server.clone(), args.seconds, args.clients).await?;
    for (n, d) in [
        ("create", &sat.create),
        ("update", &sat.update),
        ("get", &sat.get),
    ] {
        line("berth", "saturated", n, d);
    }
    println!("berth  saturated throughput: {changes:.0} changes/s");

    println!(
        "\n== memory: a fresh server, then {} objects (ConfigMaps and Secrets, ~1 KiB)",
        args.objects
    );
    drop(server);
    let fresh = Arc::new(
        start_berth(
            tempfile::Builder::new()
                .prefix("berth-bench-api-mem-")
                .tempdir()?,
        )
        .await?,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = fresh.rss_mb();
    fill(fresh.clone(), args.objects).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss = fresh.rss_mb();
    println!(
        "berth RSS: {idle:.1} MB idle, {rss:.1} MB with {} objects stored",
        args.objects
    );

    let mutating: Vec<Duration> = b.create.iter().chain(b.update.iter()).copied().collect();
    let etcd_mut: Vec<Duration> = e.create.iter().chain(e.update.iter()).copied().collect();
    let bm = Stats::of_durations(&mutating);
    let em = Stats::of_durations(&etcd_mut);
    println!("\n== headline (load average {})", load_average());
    println!(
        "mutating API p99 at 20 changes/s: berth {:.2} ms (p50 {:.2} ms); etcd write p99 {:.2} ms (p50 {:.2}); ratio berth/etcd p99 {:.2} (target: berth p99 <= 10 ms)",
        bm.p99,
        bm.median,
        em.p99,
        em.median,
        bm.p99 / em.p99
    );
    println!(
        "saturation: {changes:.0} changes/s with {} clients; mutating p99 {:.2} ms",
        args.clients,
        Stats::of_durations(
            &sat.create
                .iter()
                .chain(sat.update.iter())
                .copied()
                .collect::<Vec<_>>()
        )
        .p99
    );
    println!(
        "server RSS with {} objects: {rss:.1} MB, idle {idle:.1} MB (target <= 100 MB; k3s server 1.4-1.6 GB published)",
        args.objects
    );
    Ok(())
}
