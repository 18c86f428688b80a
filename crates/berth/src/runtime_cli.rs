//! `berth runtime`: runc's command line over berth's container runtime, so the same bundle
//! runs under `runc`, `crun` or `berth runtime`, and engines that drive runc can drive berth
//! (through a two-line wrapper that inserts `runtime`).
//!
//! Container-creating verbs run in this single-threaded process (`serve-creates` keeps one
//! running for the node agent); errors are printed like
//! runc's (and appended to `--log` in `--log-format`), with exit status 1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use berth_runtime::{
    CgroupMode, CreateOptions, ExecOptions, ExecStdio, LogConfig, Runtime, RuntimeError, Stats,
    Status, Stdio,
};
use clap::{Args, Subcommand, ValueEnum};

#[derive(Args)]
pub struct RuntimeArgs {
    /// Directory holding the state of containers.
    #[arg(long, default_value = "/run/berth/runtime")]
    root: PathBuf,
    /// File to append errors to (runc's --log).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Format of --log entries.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Accepted for runc compatibility; berth has no more to say.
    #[arg(long)]
    debug: bool,
    /// Accepted for runc compatibility; the systemd cgroup driver is not supported.
    #[arg(long)]
    systemd_cgroup: bool,
    /// Cgroup version to drive: auto picks v1 on hybrid hosts.
    #[arg(long, value_enum, default_value_t = CgroupVersion::Auto)]
    cgroup_version: CgroupVersion,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum CgroupVersion {
    Auto,
    #[value(name = "1")]
    V1,
    #[value(name = "2")]
    V2,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

#[derive(Args)]
struct CreateArgs {
    /// Bundle directory (holding config.json).
    #[arg(long, short = 'b', default_value = ".")]
    bundle: PathBuf,
    /// Unix socket to receive the terminal's master side.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// File to write the container's pid to.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility (berth always uses pivot_root).
    #[arg(long)]
    no_pivot: bool,
    /// Accepted for runc compatibility (berth creates no session keyring).
    #[arg(long)]
    no_new_keyring: bool,
    /// Accepted for runc compatibility; only 0 is supported.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    /// Write the container's stdout/stderr to this CRI-format log file (detached only).
    #[arg(long)]
    container_log: Option<PathBuf>,
    /// Rotate the container log above this many bytes (0: never).
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    container_log_max_size: u64,
    /// Log files to keep, the live one included.
    #[arg(long, default_value_t = 5)]
    container_log_max_files: u32,
    id: String,
}

#[derive(Subcommand)]
enum Verb {
    /// Create a container; its program waits for `start`.
    Create(CreateArgs),
    /// Create containers on request: one JSON request per line on stdin, one reply per line
    /// on stdout, until stdin ends (the node agent's helper processes).
    #[command(hide = true)]
    ServeCreates,
    /// Start a created container.
    Start { id: String },
    /// Create and start a container; in the foreground, wait and exit with its status.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return after starting; a shim keeps the container.
        #[arg(long, short = 'd')]
        detach: bool,
        /// Keep the container's state after it exits (foreground).
        #[arg(long)]
        keep: bool,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to a container's init, or with --all to all its processes.
    Kill {
        #[arg(long, short = 'a')]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a stopped container (or any, with --force).
    Delete {
        #[arg(long, short = 'f')]
        force: bool,
        id: String,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
        format: Format,
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// List the processes of a container (`ps` with its arguments, or --format json for pids).
    Ps {
        #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
        format: Format,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze all processes of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Print resource statistics (--stats: once) or stream them with OOM events.
    Events {
        #[arg(long, default_value = "5s")]
        interval: String,
        #[arg(long)]
        stats: bool,
        id: String,
    },
}

#[derive(Args)]
struct ExecArgs {
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(long)]
    cwd: Option<PathBuf>,
    #[arg(long, short = 'e')]
    env: Vec<String>,
    #[arg(long, short = 't')]
    tty: bool,
    /// uid[:gid]
    #[arg(long, short = 'u')]
    user: Option<String>,
    #[arg(long = "additional-gids", short = 'g')]
    additional_gids: Vec<u32>,
    /// A JSON process spec to run instead of the arguments.
    #[arg(long, short = 'p')]
    process: Option<PathBuf>,
    #[arg(long, short = 'd')]
    detach: bool,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Add a capability (e.g. CAP_NET_ADMIN) to the process's sets.
    #[arg(long)]
    cap: Vec<String>,
    #[arg(long)]
    no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Runs the verb; returns the process exit status.
pub fn run(args: RuntimeArgs) -> i32 {
    let (log, format) = (args.log.clone(), args.log_format);
    match dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("berth runtime: {msg}");
            if let Some(path) = log {
                append_log(&path, format, &msg);
            }
            1
        }
    }
}

fn append_log(path: &Path, format: LogFormat, msg: &str) {
    let time = jiff::Timestamp::now().to_string();
    let line = match format {
        LogFormat::Json => {
            serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
        }
        LogFormat::Text => format!("time={time:?} level=error msg={msg:?}"),
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn create_options(a: &CreateArgs) -> anyhow::Result<CreateOptions> {
    if a.preserve_fds != 0 {
        bail!("--preserve-fds is not supported");
    }
    Ok(CreateOptions {
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        stdio: match &a.container_log {
            Some(p) => Stdio::Log(LogConfig {
                path: std::path::absolute(p)?,
                max_size: a.container_log_max_size,
                max_files: a.container_log_max_files.max(1),
            }),
            None => Stdio::Inherit,
        },
    })
}

fn dispatch(args: RuntimeArgs) -> anyhow::Result<i32> {
    if args.systemd_cgroup {
        bail!(
            "--systemd-cgroup: the systemd cgroup driver is not supported (berth drives cgroupfs)"
        );
    }
    let mode = match args.cgroup_version {
        CgroupVersion::Auto => CgroupMode::Auto,
        CgroupVersion::V1 => CgroupMode::V1,
        CgroupVersion::V2 => CgroupMode::V2,
    };
    let rt = Runtime::new(args.root, mode);
    match args.verb {
        Verb::Create(a) => {
            rt.create(&a.id, &a.bundle, &create_options(&a)?)?;
        }
        Verb::ServeCreates => {
            berth_runtime::serve_creates(&rt, std::io::stdin().lock(), std::io::stdout().lock())
                .context("serving creates")?;
        }
        Verb::Start { id } => rt.start(&id)?,
        Verb::Run {
            create,
            detach,
            keep,
        } => {
            let opts = create_options(&create)?;
            if detach {
                rt.create(&create.id, &create.bundle, &opts)?;
                if let Err(e) = rt.start(&create.id) {
                    let _ = rt.delete(&create.id, true);
                    return Err(e.into());
                }
            } else {
                if create.container_log.is_some() {
                    bail!(
                        "--container-log needs --detach (in the foreground the container uses this terminal)"
                    );
                }
                return Ok(rt.run(&create.id, &create.bundle, &opts, keep)?.code);
            }
        }
        Verb::State { id } => {
            println!("{}", serde_json::to_string_pretty(&rt.state(&id)?)?);
        }
        Verb::Kill { all, id, signal } => rt.kill(&id, parse_signal(&signal)?, all)?,
        Verb::Delete { force, id } => match rt.delete(&id, force) {
            Err(e) if e.is_not_found() && force => {}
            r => r?,
        },
        Verb::List { format, quiet } => list(&rt, format, quiet)?,
        Verb::Exec(a) => return exec(&rt, a),
        Verb::Ps {
            format,
            id,
            ps_args,
        } => ps(&rt, format, &id, &ps_args)?,
        Verb::Pause { id } => rt.pause(&id)?,
        Verb::Resume { id } => rt.resume(&id)?,
        Verb::Events {
            interval,
            stats,
            id,
        } => events(&rt, &id, &interval, stats)?,
    }
    Ok(0)
}

fn parse_signal(s: &str) -> anyhow::Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    let sig: nix::sys::signal::Signal = name
        .parse()
        .with_context(|| format!("unknown signal {s:?}"))?;
    Ok(sig as i32)
}

fn list(rt: &Runtime, format: Format, quiet: bool) -> anyhow::Result<()> {
    let all = rt.list()?;
    if quiet {
        for c in &all {
            println!("{}", c.id);
        }
        return Ok(());
    }
    if format == Format::Json {
        println!("{}", serde_json::to_string(&all)?);
        return Ok(());
    }
    let mut out = String::from("ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n");
    for c in &all {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            c.id,
            c.pid,
            c.status,
            c.bundle.display(),
            c.created,
            c.owner
        ));
    }
    print!("{out}");
    Ok(())
}

fn ps(rt: &Runtime, format: Format, id: &str, ps_args: &[String]) -> anyhow::Result<()> {
    let pids = rt.pids(id)?;
    if format == Format::Json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for l in lines {
        if l.split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            println!("{l}");
        }
    }
    Ok(())
}

fn stats_event(id: &str, s: &Stats) -> serde_json::Value {
    serde_json::json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": {
                "usage": {"total": s.cpu.usage_ns, "kernel": s.cpu.system_ns, "user": s.cpu.user_ns},
                "throttling": {"periods": s.cpu.periods, "throttledPeriods": s.cpu.throttled_periods, "throttledTime": s.cpu.throttled_ns},
            },
            "memory": {
                "usage": {"limit": s.memory.limit, "usage": s.memory.usage, "max": s.memory.max_usage, "failcnt": s.memory.failcnt},
                "cache": s.memory.cache,
                "raw": {"rss": s.memory.rss, "working_set": s.memory.working_set, "oom_kill": s.memory.oom_kills},
            },
            "pids": {"current": s.pids.current, "limit": s.pids.limit},
        }
    })
}

fn parse_interval(s: &str) -> anyhow::Result<Duration> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let v: f64 = num
        .parse()
        .with_context(|| format!("invalid --interval {s:?}"))?;
    let secs = match unit {
        "" | "s" => v,
        "ms" => v / 1000.0,
        "m" => v * 60.0,
        _ => bail!("invalid --interval {s:?} (use e.g. 5s, 500ms)"),
    };
    Ok(Duration::from_secs_f64(secs.max(0.001)))
}

fn events(rt: &Runtime, id: &str, interval: &str, once: bool) -> anyhow::Result<()> {
    let interval = parse_interval(interval)?;
    let state = rt.state(id)?;
    if state.status == Status::Stopped {
        bail!("container {id:?} is not running");
    }
    if once {
        println!("{}", stats_event(id, &rt.stats(id)?));
        return Ok(());
    }
    let mut ooms = rt.oom_kills(id)?;
    loop {
        let st = match rt.state(id) {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let now = rt.oom_kills(id)?;
        if now > ooms {
            println!("{}", serde_json::json!({"type": "oom", "id": id}));
            ooms = now;
        }
        if st.status == Status::Stopped {
            return Ok(());
        }
        println!("{}", stats_event(id, &rt.stats(id)?));
        std::io::stdout().flush()?;
        std::thread::sleep(interval);
    }
}

fn exec(rt: &Runtime, a: ExecArgs) -> anyhow::Result<i32> {
    if a.preserve_fds != 0 {
        bail!("--preserve-fds is not supported");
    }
    let mut p = match &a.process {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
            let de = &mut serde_json::Deserializer::from_slice(&bytes);
            serde_path_to_error::deserialize(de).map_err(|e| RuntimeError::InvalidSpec {
                file: path.display().to_string(),
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })?
        }
        None => {
            if a.command.is_empty() {
                bail!("exec needs a command (or --process)");
            }
            let mut p = rt.exec_defaults(&a.id)?;
            p.set_args(Some(a.command.clone()));
            p
        }
    };
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(a.env.iter().cloned());
        p.set_env(Some(env));
    }
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let user = p.user_mut();
        user.set_uid(
            uid.parse()
                .with_context(|| format!("--user {u:?}: uid must be a number"))?,
        );
        user.set_gid(
            gid.parse()
                .with_context(|| format!("--user {u:?}: gid must be a number"))?,
        );
    }
    if !a.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(a.additional_gids.clone()));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            let c: berth_runtime::oci::Capability =
                serde_json::from_value(serde_json::Value::String(name.clone()))
                    .with_context(|| format!("--cap {name:?}"))?;
            let add = |s: &Option<berth_runtime::oci::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(c);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            caps.set_ambient(add(caps.ambient()));
        }
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if a.tty {
        p.set_terminal(Some(true));
    }
    let tty = p.terminal().unwrap_or(false);
    let stdio = if tty {
        let (rows, cols) = terminal_size().unwrap_or((24, 80));
        ExecStdio::Tty { rows, cols }
    } else {
        ExecStdio::Inherit
    };
    let mut proc = rt.exec(&a.id, &ExecOptions { process: p, stdio })?;
    if let Some(pf) = &a.pid_file {
        std::fs::write(pf, proc.pid.to_string())
            .with_context(|| format!("write {}", pf.display()))?;
    }
    if let (Some(sock), Some(master)) = (&a.console_socket, &proc.pty) {
        let s = std::os::unix::net::UnixStream::connect(sock)
            .with_context(|| format!("connect {}", sock.display()))?;
        send_master(&s, master)?;
        proc.pty = None;
    }
    if a.detach {
        return Ok(0);
    }
    if let Some(master) = proc.pty.take() {
        crate::runtime_tty::proxy(master, &proc)?;
    }
    Ok(proc.wait()?)
}

fn send_master(
    sock: &std::os::unix::net::UnixStream,
    master: &std::fs::File,
) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let fds = [master.as_raw_fd()];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(b"/dev/ptmx")];
    nix::sys::socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &cmsg,
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .context("send terminal to --console-socket")?;
    Ok(())
}

pub(crate) fn terminal_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ into a valid winsize.
    let r = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}
