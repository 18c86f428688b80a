//! Store write throughput: berth's embedded store (`SqliteStore`) against etcd, same run,
//! same disk, interleaved rounds.
//!
//! `cargo run --release -p berth-bench --bin store [-- --seconds S --rounds N --dir DIR]`
//!
//! * berth is measured **in-process through the `Store` trait**, exactly as the API server
//!   uses it (each client is a tokio task calling `create`/`update` and awaiting the durable
//!   acknowledgement).
//! * etcd (Debian's `etcd-server`, started here on loopback with OS-chosen ports and a data
//!   dir next to berth's database, killed at the end) is reached **over loopback gRPC** with
//!   the `etcd-client` crate, as a Kubernetes API server reaches it. 64 clients share 8
//!   connections (one per 8 clients).
//! * Workloads: `put` writes a fresh key with a 1 KiB value (berth: `create`; etcd: a plain
//!   unconditional `put`, etcd's cheapest write); `cas` updates the client's own key with
//!   compare-and-swap on its last revision (berth: `update`; etcd: a `txn` comparing
//!   `mod_revision`, as Kubernetes does).
//!
//! Each round runs every (workload, clients) pair for both systems, alternating which goes
//! first; the summary prints medians over rounds and the berth/etcd ratios last.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_bench::{Stats, load_average};
use berth_store::Store;
use berth_store_sqlite::{SqliteConfig, SqliteStore};
use bytes::Bytes;
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};

const VALUE_SIZE: usize = 1024;
const CLIENT_COUNTS: [usize; 2] = [1, 64];
const WORKLOADS: [Workload; 2] = [Workload::Put, Workload::Cas];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Put,
    Cas,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Cas => "cas",
        }
    }
}

struct Args {
    seconds: f64,
    rounds: usize,
    dir: Option<PathBuf>,
    workloads: Vec<Workload>,
    clients: Vec<usize>,
    /// Run only berth (`--only berth`, for profiling) or only etcd.
    only: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        seconds: 3.0,
        rounds: 5,
        dir: None,
        workloads: WORKLOADS.to_vec(),
        clients: CLIENT_COUNTS.to_vec(),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--seconds" => args.seconds = value("--seconds")?.parse().context("--seconds")?,
            "--rounds" => args.rounds = value("--rounds")?.parse().context("--rounds")?,
            "--dir" => args.dir = Some(PathBuf::from(value("--dir")?)),
            "--workloads" => {
                args.workloads = value("--workloads")?
                    .split(',')
                    .map(|w| match w {
                        "put" => Ok(Workload::Put),
                        "cas" => Ok(Workload::Cas),
                        other => bail!("--workloads: unknown workload {other:?} (put, cas)"),
                    })
                    .collect::<Result<_>>()?
            }
            "--clients" => {
                args.clients = value("--clients")?
                    .split(',')
                    .map(|c| {
                        c.parse()
                            .with_context(|| format!("--clients: {c:?} is not a number"))
                    })
                    .collect::<Result<_>>()?
            }
            "--only" => match value("--only")?.as_str() {
                o @ ("berth" | "etcd") => args.only = Some(o.to_string()),
                other => bail!("--only: {other:?} is neither berth nor etcd"),
            },
            other => bail!(
                "unknown argument {other:?} (use --seconds S, --rounds N, --dir DIR, --workloads put,cas, --clients 1,64, --only berth|etcd)"
            ),
        }
    }
    if args.rounds == 0 || args.seconds <= 0.0 || args.clients.contains(&0) {
        bail!("--rounds, --seconds and --clients must be positive");
    }
    Ok(args)
}

/// The pid of this process's child named `etcd` (the server `berth_bench::etcd` started).
fn etcd_pid() -> Result<String> {
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc")? {
        let pid = entry?.file_name().to_string_lossy().into_owned();
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(')'))
            && comm == "etcd"
            && rest.split_whitespace().nth(1) == Some(me.as_str())
        {
            return Ok(pid);
        }
    }
    bail!("cannot find the etcd child process")
}

/// User + system CPU seconds of process `pid` ("self" for this one), from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn value() -> Bytes {
    Bytes::from(
        (0..VALUE_SIZE)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// Runs `clients` tasks for `seconds`, each calling `op(client, i)` in a loop; returns
/// writes per second.
async fn drive<F, Fut>(clients: usize, seconds: f64, op: F) -> Result<f64>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < end {
                op(c, n).await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

async fn run_berth(
    store: &SqliteStore,
    w: Workload,
    clients: usize,
    seconds: f64,
    run: usize,
) -> Result<f64> {
    let store = store.clone();
    let v = value();
    match w {
        Workload::Put => {
            drive(clients, seconds, move |c, i| {
                let (store, v) = (store.clone(), v.clone());
                async move {
                    store
                        .create(&format!("/bench/put/{run}/{c}/{i}"), v)
                        .await?;
                    Ok(())
                }
            })
            .await
        }
        Workload::Cas => {
            let mut revs = Vec::new();
            for c in 0..clients {
                revs.push(Arc::new(std::sync::atomic::AtomicI64::new(
                    store
                        .create(&format!("/bench/cas/{run}/{c}"), v.clone())
                        .await?,
                )));
            }
            let revs = Arc::new(revs);
            drive(clients, seconds, move |c, _| {
                let (store, v, revs) = (store.clone(), v.clone(), revs.clone());
                async move {
                    let rev = revs[c].load(std::sync::atomic::Ordering::Relaxed);
                    let new = store
                        .update(&format!("/bench/cas/{run}/{c}"), v, rev)
                        .await?;
                    revs[c].store(new, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                }
            })
            .await
        }
    }
}

async fn run_etcd(
    endpoint: &str,
    w: Workload,
    clients: usize,
    seconds: f64,
    run: usize,
) -> Result<f64> {
    let mut conns = Vec::new();
    for _ in 0..clients.div_ceil(8) {
        conns.push(Client::connect([endpoint], None).await?);
    }
    let conns = Arc::new(conns);
    let v = value().to_vec();
    match w {
        Workload::Put => {
            drive(clients, seconds, move |c, i| {
                let mut client = conns[c % conns.len()].clone();
                let v = v.clone();
                async move {
                    client
                        .put(format!("/bench/put/{run}/{c}/{i}"), v, None)
                        .await?;
                    Ok(())
                }
            })
            .await
        }
        Workload::Cas => {
            let mut revs = Vec::new();
            for c in 0..clients {
                let mut client = conns[c % conns.len()].clone();
                let resp = client
                    .put(format!("/bench/cas/{run}/{c}"), v.clone(), None)
                    .await?;
                let rev = resp.header().context("put without header")?.revision();
                revs.push(Arc::new(std::sync::atomic::AtomicI64::new(rev)));
            }
            let revs = Arc::new(revs);
            drive(clients, seconds, move |c, _| {
                let mut client = conns[c % conns.len()].clone();
                let (v, revs) = (v.clone(), revs.clone());
                async move {
                    let key = format!("/bench/cas/{run}/{c}");
                    let rev = revs[c].load(std::sync::atomic::Ordering::Relaxed);
                    let txn = Txn::new()
                        .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, rev)])
                        .and_then([TxnOp::put(key.as_str(), v, None)]);
                    let resp = client.txn(txn).await?;
                    if !resp.succeeded() {
                        bail!("etcd CAS on {key} at {rev} failed");
                    }
                    let new = resp.header().context("txn without header")?.revision();
                    revs[c].store(new, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                }
            })
            .await
        }
    }
}

/// Durable single-writer baseline of the disk: overwrite one 4 KiB block of a preallocated
/// file and fdatasync, repeatedly (the best case for a log that reuses its space).
fn fsyncs_per_second(dir: &Path) -> Result<f64> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync-probe");
    let f = std::fs::File::create(&path)?;
    let buf = [7u8; 4096];
    f.write_all_at(&buf, 0)?;
    f.sync_all()?;
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(1) {
        f.write_all_at(&buf, 0)?;
        f.sync_data()?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(rate)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let tmp = match &args.dir {
        Some(d) => tempfile::Builder::new()
            .prefix("berth-bench-store")
            .tempdir_in(d)?,
        None => tempfile::Builder::new()
            .prefix("berth-bench-store")
            .tempdir()?,
    };
    let dir = tmp.path();
    let (etcd, _probe) = berth_bench::etcd::start(dir).await?;
    let store = SqliteStore::open(dir.join("berth.db"), SqliteConfig::default())?;
    println!(
        "store write throughput, {VALUE_SIZE} B values, {} rounds x {} s per run, data in {}",
        args.rounds,
        args.seconds,
        dir.display()
    );
    println!(
        "  berth: SqliteStore in-process through the Store trait (as the API server uses it), default config"
    );
    println!(
        "  etcd:  etcd {} over loopback gRPC (etcd-client crate), same disk",
        berth_bench::etcd::version()
    );
    println!(
        "  disk:  {:.0} fdatasync/s (4 KiB overwrite + fdatasync, one writer)",
        fsyncs_per_second(dir)?
    );
    println!("  load average before: {}", load_average());

    let etcd_pid = etcd_pid()?;
    let mut results = Vec::new();
    for &w in &args.workloads {
        for &c in &args.clients {
            results.push(Series {
                workload: w,
                clients: c,
                ..Default::default()
            });
        }
    }
    let mut run = 0;
    for round in 0..args.rounds {
        for (i, series) in results.iter_mut().enumerate() {
            let (w, clients) = (series.workload, series.clients);
            let berth_run = async |run: usize| -> Result<(f64, f64, f64)> {
                if args.only.as_deref() == Some("etcd") {
                    return Ok((f64::NAN, f64::NAN, f64::NAN));
                }
                let (before, cpu) = (store.stats(), cpu_seconds("self"));
                let rate = run_berth(&store, w, clients, args.seconds, run).await?;
                let after = store.stats();
                let writes = (after.writes - before.writes) as f64;
                let batch = writes / (after.commits - before.commits).max(1) as f64;
                Ok((rate, batch, (cpu_seconds("self") - cpu) / writes * 1e6))
            };
            let etcd_run = async |run: usize| -> Result<(f64, f64, f64)> {
                if args.only.as_deref() == Some("berth") {
                    return Ok((f64::NAN, f64::NAN, f64::NAN));
                }
                let (server, client) = (cpu_seconds(&etcd_pid), cpu_seconds("self"));
                let start = Instant::now();
                let rate = run_etcd(&etcd.endpoint, w, clients, args.seconds, run).await?;
                let writes = rate * start.elapsed().as_secs_f64();
                Ok((
                    rate,
                    (cpu_seconds(&etcd_pid) - server) / writes * 1e6,
                    (cpu_seconds("self") - client) / writes * 1e6,
                ))
            };
            run += 2;
            let (b, e) = if (round + i) % 2 == 0 {
                (berth_run(run).await?, etcd_run(run + 1).await?)
            } else {
                let e = etcd_run(run + 1).await?;
                (berth_run(run).await?, e)
            };
            println!(
                "round {} {:<3} {:>2} client(s): berth {:>7.0} w/s (batch {:>5.1}, {:>4.0} us CPU/w)  etcd {:>7.0} w/s ({:>4.0}+{:<4.0} us CPU/w server+client)  ratio {:>5.2}",
                round + 1,
                w.name(),
                clients,
                b.0,
                b.1,
                b.2,
                e.0,
                e.1,
                e.2,
                b.0 / e.0
            );
            series.berth.push(b.0);
            series.etcd.push(e.0);
        }
    }

    println!();
    println!("load average after: {}", load_average());
    println!(
        "median writes/s over {} rounds (berth in-process through the Store trait; etcd over loopback gRPC):",
        args.rounds
    );
    println!(
        "{:<5} {:>7} {:>9} {:>9} {:>10}",
        "work", "clients", "berth", "etcd", "berth/etcd"
    );
    for s in &results {
        let (b, e) = (Stats::of(&s.berth).median, Stats::of(&s.etcd).median);
        println!(
            "{:<5} {:>7} {:>9.0} {:>9.0} {:>9.2}x",
            s.workload.name(),
            s.clients,
            b,
            e,
            b / e
        );
    }
    drop(etcd);
    Ok(())
}

/// Rates of one (workload, clients) pair over the rounds.
struct Series {
    workload: Workload,
    clients: usize,
    berth: Vec<f64>,
    etcd: Vec<f64>,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            workload: Workload::Put,
            clients: 1,
            berth: Vec::new(),
            etcd: Vec::new(),
        }
    }
}
