//! bench/runtime: `berth runtime` against crun and runc on the same busybox bundle.
//!
//! 1. Lifecycle: `run` of `/bin/true` (create + start + exit + delete), the three runtimes
//!    interleaved, median wall time and CPU per run.
//! 2. Throughput: N containers started at once (default 50), containers per second.
//! 3. Memory: RSS/PSS of berth's shim per running container, against conmon (driving runc).
//!
//! crun refuses this project's hybrid-cgroup hosts unless `unified/cgroup.controllers` reads
//! empty, so every runtime runs inside one private mount namespace where that file is empty
//! (ANCHORS.md); the host is untouched. The bundle is `runc spec` with `/bin/true`, unchanged
//! for all three. Run as root:
//!
//! `cargo run --release -p berth-bench --bin runtime -- [--rounds 30] [--parallel 50]
//!  [--par-rounds 5] [--shims 5] [--berth target/release/berth]`

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use berth_bench::{Stats, load_average};

struct Opts {
    rounds: usize,
    parallel: usize,
    par_rounds: usize,
    shims: usize,
    berth: PathBuf,
}

fn parse_opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        rounds: 30,
        parallel: 50,
        par_rounds: 5,
        shims: 5,
        berth: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/berth"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--rounds" => o.rounds = v()?.parse()?,
            "--parallel" => o.parallel = v()?.parse()?,
            "--par-rounds" => o.par_rounds = v()?.parse()?,
            "--shims" => o.shims = v()?.parse()?,
            "--berth" => o.berth = v()?.into(),
            _ => bail!("unknown argument {a}"),
        }
    }
    ensure!(
        o.berth.exists(),
        "{} not found (cargo build --release -p berth)",
        o.berth.display()
    );
    // nsenter resets the working directory to the namespace's root: use an absolute path.
    o.berth = std::fs::canonicalize(&o.berth)?;
    Ok(o)
}

fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The private mount namespace in which crun accepts the host; undone on drop.
struct CgroupNs {
    dir: PathBuf,
}

impl CgroupNs {
    fn new(base: &Path) -> anyhow::Result<CgroupNs> {
        let dir = base.join("ns");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(base.join("empty"), "")?;
        sh(Command::new("mount").arg("--bind").arg(&dir).arg(&dir))?;
        let ns = CgroupNs { dir: dir.clone() };
        sh(Command::new("mount").arg("--make-private").arg(&dir))?;
        std::fs::write(dir.join("mnt"), "")?;
        let controllers = "/sys/fs/cgroup/unified/cgroup.controllers";
        let inner = if Path::new(controllers).exists() {
            format!(
                "mount --bind {} {controllers}",
                base.join("empty").display()
            )
        } else {
            "true".into()
        };
        sh(Command::new("unshare")
            .arg(format!("--mount={}", dir.join("mnt").display()))
            .args(["--propagation", "private", "sh", "-c", &inner]))?;
        Ok(ns)
    }

    fn enter(&self) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--mount={}", self.dir.join("mnt").display()));
        c
    }
}

impl Drop for CgroupNs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.join("mnt")).status();
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

fn make_bundle(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).context("copy /bin/busybox")?;
    let list = Command::new("/bin/busybox").arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
        }
    }
    sh(Command::new("runc").args(["spec", "--bundle"]).arg(dir))?;
    let path = dir.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!(args);
    std::fs::write(&path, serde_json::to_vec_pretty(&c)?)?;
    Ok(())
}

struct Runtime {
    name: &'static str,
    argv: Vec<String>,
}

fn children_cpu() -> Duration {
    // SAFETY: getrusage into a zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

impl Runtime {
    fn cmd(&self, ns: &CgroupNs) -> Command {
        let mut c = ns.enter();
        c.args(&self.argv);
        c
    }

    fn run(&self, ns: &CgroupNs, bundle: &Path, id: &str) -> anyhow::Result<()> {
        let out = self
            .cmd(ns)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        ensure!(
            out.status.success(),
            "{} run {id}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

fn rss_kb(pid: i32) -> anyhow::Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let field = |k: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("Rss:"), field("Pss:")))
}

fn ppid(pid: i32) -> anyhow::Result<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    Ok(stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()?)
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() -> anyhow::Result<()> {
    let o = parse_opts()?;
    // SAFETY: geteuid has no preconditions.
    ensure!(unsafe { libc::geteuid() } == 0, "run as root");
    let work = tempfile::tempdir()?;
    let bundle = work.path().join("bundle");
    make_bundle(&bundle, &["/bin/true"])?;
    let ns = CgroupNs::new(work.path())?;
    let root = |n: &str| work.path().join(format!("root-{n}")).display().to_string();
    let rts = [
        Runtime {
            name: "berth",
            argv: vec![
                o.berth.display().to_string(),
                "runtime".into(),
                "--root".into(),
                root("berth"),
            ],
        },
        Runtime {
            name: "crun",
            argv: vec!["crun".into(), "--root".into(), root("crun")],
        },
        Runtime {
            name: "runc",
            argv: vec!["runc".into(), "--root".into(), root("runc")],
        },
    ];
    println!(
        "bench/runtime  load average {}  rounds {}  parallel {}",
        load_average(),
        o.rounds,
        o.parallel
    );

    // 1. Lifecycle, interleaved.
    let mut wall: Vec<Vec<f64>> = vec![vec![]; rts.len()];
    let mut cpu: Vec<Vec<f64>> = vec![vec![]; rts.len()];
    for round in 0..o.rounds + 3 {
        for (i, rt) in rts.iter().enumerate() {
            let id = format!("lc-{}-{round}", rt.name);
            let c0 = children_cpu();
            let t0 = Instant::now();
            rt.run(&ns, &bundle, &id)?;
            let el = t0.elapsed();
            if round >= 3 {
                wall[i].push(el.as_secs_f64() * 1e3);
                cpu[i].push((children_cpu() - c0).as_secs_f64() * 1e3);
            }
        }
    }
    let lifecycle: Vec<Stats> = wall.iter().map(|w| Stats::of(w)).collect();
    for (i, rt) in rts.iter().enumerate() {
        let s = &lifecycle[i];
        println!(
            "lifecycle  {:<6} median {:>6.2} ms  p90 {:>6.2}  min {:>6.2}  cpu median {:>5.2} ms  (n={})",
            rt.name,
            s.median,
            berth_bench::percentile_sorted(&sorted(&wall[i]), 90.0),
            s.min,
            Stats::of(&cpu[i]).median,
            s.n
        );
    }

    // 2. N at once.
    let mut rate: Vec<Vec<f64>> = vec![vec![]; rts.len()];
    for round in 0..o.par_rounds {
        for (i, rt) in rts.iter().enumerate() {
            let t0 = Instant::now();
            let children: Vec<_> = (0..o.parallel)
                .map(|k| {
                    rt.cmd(&ns)
                        .args(["run", "--bundle"])
                        .arg(&bundle)
                        .arg(format!("par-{}-{round}-{k}", rt.name))
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                })
                .collect::<Result<_, _>>()?;
            let mut failed = 0;
            for mut c in children {
                if !c.wait()?.success() {
                    failed += 1;
                }
            }
            let el = t0.elapsed().as_secs_f64();
            ensure!(
                failed == 0,
                "{}: {failed} of {} parallel runs failed",
                rt.name,
                o.parallel
            );
            rate[i].push(o.parallel as f64 / el);
        }
    }
    let throughput: Vec<f64> = rate.iter().map(|r| Stats::of(r).median).collect();
    for (i, rt) in rts.iter().enumerate() {
        println!(
            "parallel   {:<6} {} at once: median {:>6.1} containers/s  ({:.2} s per batch, n={})",
            rt.name,
            o.parallel,
            throughput[i],
            o.parallel as f64 / throughput[i],
            rate[i].len()
        );
    }

    // 3. Resident memory per running container: berth's shim vs conmon (driving runc).
    let sleeper = work.path().join("sleeper");
    make_bundle(&sleeper, &["sleep", "100000"])?;
    let berth = &rts[0];
    let mut shim = Vec::new();
    for k in 0..o.shims {
        let id = format!("rss-{k}");
        let st = berth
            .cmd(&ns)
            .args(["run", "--detach", "--bundle"])
            .arg(&sleeper)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        ensure!(st.success(), "berth run --detach {id}");
        let out = berth.cmd(&ns).args(["state", &id]).output()?;
        let state: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let pid = state["pid"].as_i64().context("pid")? as i32;
        shim.push(rss_kb(ppid(pid)?)?);
    }
    for k in 0..o.shims {
        let _ = berth
            .cmd(&ns)
            .args(["delete", "--force", &format!("rss-{k}")])
            .status();
    }
    let conmon = conmon_rss(&ns, &sleeper, work.path(), o.shims);
    let shim_rss = Stats::of(&shim.iter().map(|s| s.0 as f64).collect::<Vec<_>>()).median;
    let shim_pss = Stats::of(&shim.iter().map(|s| s.1 as f64).collect::<Vec<_>>()).median;
    println!(
        "memory     berth shim: RSS {shim_rss:.0} kB, PSS {shim_pss:.0} kB per running container (n={})",
        shim.len()
    );
    let conmon_rss = match &conmon {
        Ok(v) if !v.is_empty() => {
            let r = Stats::of(&v.iter().map(|s| s.0 as f64).collect::<Vec<_>>()).median;
            let p = Stats::of(&v.iter().map(|s| s.1 as f64).collect::<Vec<_>>()).median;
            println!(
                "memory     conmon:     RSS {r:.0} kB, PSS {p:.0} kB per container (n={})",
                v.len()
            );
            Some(r)
        }
        Ok(_) => None,
        Err(e) => {
            println!(
                "memory     conmon: not measured ({e:#}); ANCHORS: conmon 1.9 MB RSS, containerd-shim 13 MB"
            );
            None
        }
    };

    let (b, c, r) = (
        lifecycle[0].median,
        lifecycle[1].median,
        lifecycle[2].median,
    );
    println!(
        "RESULT lifecycle median: berth {b:.2} ms, crun {c:.2} ms, runc {r:.2} ms | {} at once: berth {:.1}/s, crun {:.1}/s, runc {:.1}/s | shim RSS {:.0} kB{}",
        o.parallel,
        throughput[0],
        throughput[1],
        throughput[2],
        shim_rss,
        conmon_rss.map_or(String::new(), |c| format!(" vs conmon {c:.0} kB"))
    );
    println!(
        "RATIO lifecycle berth/crun {:.2} (target <= 0.50), berth/runc {:.2}; throughput berth/crun {:.2} (target >= 2.00); shim RSS {:.2} MB (target <= 1.00)",
        b / c,
        b / r,
        throughput[0] / throughput[1],
        shim_rss / 1024.0
    );
    Ok(())
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

/// Starts `n` conmon processes (each creating a runc container) and reads their memory.
fn conmon_rss(
    ns: &CgroupNs,
    bundle: &Path,
    work: &Path,
    n: usize,
) -> anyhow::Result<Vec<(u64, u64)>> {
    if Command::new("conmon").arg("--version").output().is_err() {
        bail!("conmon is not installed");
    }
    let dir = work.join("conmon");
    std::fs::create_dir_all(&dir)?;
    let runc_root = dir.join("runc");
    let mut out = Vec::new();
    let mut started = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for k in 0..n {
            let id = format!("cm-{k}");
            let pidfile = dir.join(format!("{id}.conmon.pid"));
            let st = ns
                .enter()
                .arg("conmon")
                .args([
                    "--api-version",
                    "1",
                    "-c",
                    &id,
                    "-u",
                    &id,
                    "-n",
                    &id,
                    "-r",
                    "/usr/sbin/runc",
                    "-b",
                ])
                .arg(bundle)
                .arg("-p")
                .arg(dir.join(format!("{id}.pid")))
                .arg("-P")
                .arg(&pidfile)
                .arg("-l")
                .arg(format!(
                    "k8s-file:{}",
                    dir.join(format!("{id}.log")).display()
                ))
                .arg("--exit-dir")
                .arg(&dir)
                .arg("--socket-dir-path")
                .arg(&dir)
                .args(["--runtime-arg", "--root", "--runtime-arg"])
                .arg(&runc_root)
                .arg("--syslog")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            ensure!(st.success(), "conmon for {id} failed");
            started.push(id.clone());
            let pid: i32 = wait_for("conmon pid file", || {
                std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
            })?;
            // Measure once conmon has its container (runc wrote the container's pid file).
            let ctr_pidfile = dir.join(format!("{id}.pid"));
            wait_for("the container's pid file", || {
                ctr_pidfile.exists().then_some(())
            })?;
            out.push(rss_kb(pid)?);
        }
        Ok(())
    })();
    for id in &started {
        let _ = ns
            .enter()
            .arg("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["delete", "--force", id])
            .status();
    }
    result.map(|_| out)
}
