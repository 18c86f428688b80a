//! bench/registry: berth's registry against Debian's Distribution 2.8 (`docker-registry`),
//! both on loopback in the same run, interleaved round by round.
//!
//! 1. skopeo push and pull of busybox (OCI layout from busybox-static), one 100 MiB layer,
//!    and 20 × 5 MiB layers (incompressible data; a fresh repository per push and the
//!    blob-info cache removed, so every push really uploads).
//! 2. curl monolithic upload (POST, then one PUT streaming the file with `--upload-file`)
//!    of 100 MiB, and blob GET of 100 MiB.
//! 3. Small requests: `GET /v2/` and manifest GET, requests/s with wrk at 16 connections.
//!
//! Prints medians per case and the berth/Distribution speed ratio last. Run as root with a
//! release build: `cargo build --release -p berth && cargo run --release -p berth-bench
//! --bin registry -- [--rounds 5] [--wrk-secs 5] [--berth target/release/berth] [--smoke]`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use berth_bench::{Stats, load_average};

struct Opts {
    rounds: usize,
    wrk_secs: u64,
    berth: PathBuf,
    smoke: bool,
}

fn parse_opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        rounds: 5,
        wrk_secs: 5,
        berth: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/berth"),
        smoke: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--rounds" => o.rounds = v()?.parse()?,
            "--wrk-secs" => o.wrk_secs = v()?.parse()?,
            "--berth" => o.berth = v()?.into(),
            "--smoke" => o.smoke = true,
            _ => bail!("unknown argument {a}"),
        }
    }
    if o.smoke {
        o.rounds = 1;
        o.wrk_secs = 1;
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

fn timed(cmd: &mut Command) -> anyhow::Result<f64> {
    let t = Instant::now();
    sh(cmd)?;
    Ok(t.elapsed().as_secs_f64())
}

/// Incompressible bytes from a seeded xorshift generator.
fn random_file(path: &Path, len: usize, seed: u64) -> anyhow::Result<()> {
    let mut x = seed | 1;
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.extend_from_slice(&x.to_le_bytes());
    }
    buf.truncate(len);
    std::fs::write(path, buf)?;
    Ok(())
}

/// An OCI layout image `dir/layout:tag` made with umoci: busybox plus `extra` layers each
/// holding one random file of `layer_bytes`.
fn build_image(dir: &Path, tag: &str, extra: usize, layer_bytes: usize) -> anyhow::Result<()> {
    let layout = dir.join("layout");
    let img = format!("{}:{tag}", layout.display());
    if !layout.exists() {
        sh(Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&layout))?;
    }
    sh(Command::new("umoci").args(["new", "--image", &img]))?;
    let bundle = dir.join(format!("bundle-{tag}"));
    sh(Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &img])
        .arg(&bundle))?;
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin"))?;
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))?;
    sh(Command::new("umoci")
        .args(["repack", "--refresh-bundle", "--image", &img])
        .arg(&bundle))?;
    for i in 0..extra {
        random_file(
            &rootfs.join(format!("data-{i}")),
            layer_bytes,
            0x9e37_79b9 + i as u64 * 7919 + tag.len() as u64,
        )?;
        sh(Command::new("umoci")
            .args(["repack", "--refresh-bundle", "--image", &img])
            .arg(&bundle))?;
    }
    std::fs::remove_dir_all(&bundle)?;
    Ok(())
}

struct Server {
    name: &'static str,
    addr: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_listen(addr: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        ensure!(Instant::now() < deadline, "{addr} did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn start_berth(bin: &Path, dir: &Path) -> anyhow::Result<Server> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let child = Command::new(bin)
        .args(["registry", "serve", "--no-auth", "--addr", &addr, "--root"])
        .arg(dir.join("berth-root"))
        .env("BERTH_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    wait_listen(&addr)?;
    Ok(Server {
        name: "berth",
        addr,
        child,
    })
}

fn start_distribution(dir: &Path) -> anyhow::Result<Server> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let cfg = dir.join("distribution.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: {addr}, secret: bench}}\n",
            dir.join("dist-root").display()
        ),
    )?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_listen(&addr)?;
    Ok(Server {
        name: "distribution",
        addr,
        child,
    })
}

const BLOB_INFO_CACHE: &str = "/var/lib/containers/cache/blob-info-cache-v1.boltdb";

fn skopeo_push(dir: &Path, s: &Server, tag: &str, repo: &str) -> anyhow::Result<f64> {
    let _ = std::fs::remove_file(BLOB_INFO_CACHE);
    timed(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:{tag}", dir.join("layout").display()),
        &format!("docker://{}/{repo}:{tag}", s.addr),
    ]))
}

fn skopeo_pull(dir: &Path, s: &Server, tag: &str, repo: &str, n: usize) -> anyhow::Result<f64> {
    let _ = std::fs::remove_file(BLOB_INFO_CACHE);
    let dest = dir.join(format!("pull-{}-{tag}-{n}", s.name));
    let t = timed(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/{repo}:{tag}", s.addr),
        &format!("oci:{}:{tag}", dest.display()),
    ]))?;
    std::fs::remove_dir_all(&dest)?;
    Ok(t)
}

fn sha256_file(p: &Path) -> anyhow::Result<String> {
    let out = sh(Command::new("sha256sum").arg(p))?;
    Ok(format!(
        "sha256:{}",
        out.split_whitespace().next().context("sha256sum output")?
    ))
}

/// POST + monolithic PUT with curl; returns seconds.
fn curl_upload(s: &Server, repo: &str, file: &Path, digest: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    let head = sh(Command::new("curl").args([
        "-sS",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-X",
        "POST",
        &format!("http://{}/v2/{repo}/blobs/uploads/", s.addr),
    ]))?;
    let loc = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .context("no Location")?;
    let url = if loc.starts_with("http") {
        loc
    } else {
        format!("http://{}{loc}", s.addr)
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let code = sh(Command::new("curl").args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Content-Type: application/octet-stream",
        "--upload-file",
        &file.display().to_string(),
        &format!("{url}{sep}digest={digest}"),
    ]))?;
    ensure!(code.trim() == "201", "{}: upload answered {code}", s.name);
    Ok(t.elapsed().as_secs_f64())
}

fn curl_get(s: &Server, repo: &str, digest: &str) -> anyhow::Result<f64> {
    timed(Command::new("curl").args([
        "-sS",
        "-f",
        "-o",
        "/dev/null",
        &format!("http://{}/v2/{repo}/blobs/{digest}", s.addr),
    ]))
}

fn wrk(url: &str, secs: u64, accept: Option<&str>) -> anyhow::Result<f64> {
    let mut c = Command::new("wrk");
    c.args(["-t2", "-c16", &format!("-d{secs}s")]);
    if let Some(a) = accept {
        c.args(["-H", &format!("Accept: {a}")]);
    }
    let out = sh(c.arg(url))?;
    let rps = out
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .context("wrk printed no Requests/sec")?
        .trim()
        .parse()?;
    ensure!(
        !out.contains("Non-2xx"),
        "wrk saw non-2xx responses for {url}:\n{out}"
    );
    Ok(rps)
}

struct Case {
    name: String,
    unit: &'static str,
    higher_is_better: bool,
    berth: Vec<f64>,
    dist: Vec<f64>,
}

fn main() -> anyhow::Result<()> {
    let o = parse_opts()?;
    let tmp = tempfile::Builder::new()
        .prefix("bench-registry")
        .tempdir()?;
    let dir = tmp.path();
    eprintln!("building test images (umoci)...");
    build_image(dir, "busybox", 0, 0)?;
    build_image(dir, "big", 1, if o.smoke { 10 << 20 } else { 100 << 20 })?;
    build_image(dir, "many", if o.smoke { 3 } else { 20 }, 5 << 20)?;
    let servers = [start_berth(&o.berth, dir)?, start_distribution(dir)?];
    let load_before = load_average();

    let mut cases: Vec<Case> = Vec::new();
    let mut case = |name: &str, unit: &'static str, hib: bool| {
        cases.push(Case {
            name: name.into(),
            unit,
            higher_is_better: hib,
            berth: Vec::new(),
            dist: Vec::new(),
        });
        cases.len() - 1
    };
    let images = ["busybox", "big", "many"];
    let push_ids: Vec<usize> = images
        .iter()
        .map(|i| case(&format!("skopeo push {i}"), "s", false))
        .collect();
    let pull_ids: Vec<usize> = images
        .iter()
        .map(|i| case(&format!("skopeo pull {i}"), "s", false))
        .collect();
    let up = case("curl upload 100 MiB", "MB/s", true);
    let get = case("blob GET 100 MiB", "MB/s", true);
    let ping = case("GET /v2/ (c=16)", "req/s", true);
    let mget = case("manifest GET (c=16)", "req/s", true);

    let blob_len: usize = if o.smoke { 10 << 20 } else { 100 << 20 };
    for round in 0..o.rounds {
        eprintln!("round {}/{}", round + 1, o.rounds);
        // Alternate which server goes first.
        let order: Vec<&Server> = if round % 2 == 0 {
            vec![&servers[0], &servers[1]]
        } else {
            vec![&servers[1], &servers[0]]
        };
        for s in &order {
            let push = |c: &mut Vec<Case>, id: usize, v: f64| {
                if s.name == "berth" {
                    c[id].berth.push(v)
                } else {
                    c[id].dist.push(v)
                }
            };
            for (k, img) in images.iter().enumerate() {
                let repo = format!("r{round}/{img}");
                let t = skopeo_push(dir, s, img, &repo)?;
                push(&mut cases, push_ids[k], t);
                let t = skopeo_pull(dir, s, img, &repo, round)?;
                push(&mut cases, pull_ids[k], t);
            }
            let file = dir.join(format!("blob-{round}-{}", s.name));
            random_file(
                &file,
                blob_len,
                77 + round as u64 * 2 + (s.name == "berth") as u64,
            )?;
            let digest = sha256_file(&file)?;
            let t = curl_upload(s, &format!("curl{round}/up"), &file, &digest)?;
            push(&mut cases, up, blob_len as f64 / t / 1e6);
            let t = curl_get(s, &format!("curl{round}/up"), &digest)?;
            push(&mut cases, get, blob_len as f64 / t / 1e6);
            std::fs::remove_file(&file)?;
            push(
                &mut cases,
                ping,
                wrk(&format!("http://{}/v2/", s.addr), o.wrk_secs, None)?,
            );
            let m = format!("http://{}/v2/r{round}/busybox/manifests/busybox", s.addr);
            push(
                &mut cases,
                mget,
                wrk(
                    &m,
                    o.wrk_secs,
                    Some("application/vnd.oci.image.manifest.v1+json"),
                )?,
            );
        }
    }

    println!(
        "bench/registry: berth vs Distribution 2.8 (docker-registry), {} rounds interleaved",
        o.rounds
    );
    println!(
        "load average before: {load_before}; after: {}",
        load_average()
    );
    println!(
        "{:<26} {:>14} {:>14} {:>10}",
        "case", "berth", "distribution", "speedup"
    );
    for c in &cases {
        let (b, d) = (Stats::of(&c.berth).median, Stats::of(&c.dist).median);
        let speedup = if c.higher_is_better { b / d } else { d / b };
        println!(
            "{:<26} {:>10.3} {:<3} {:>10.3} {:<3} {:>9.2}x",
            c.name, b, c.unit, d, c.unit, speedup
        );
    }
    let push_ratio: Vec<f64> = push_ids
        .iter()
        .map(|&i| Stats::of(&cases[i].dist).median / Stats::of(&cases[i].berth).median)
        .collect();
    println!(
        "push speedup (Distribution time / berth time): busybox {:.2}x, 100 MiB {:.2}x, 20x5 MiB {:.2}x",
        push_ratio[0], push_ratio[1], push_ratio[2]
    );
    Ok(())
}
