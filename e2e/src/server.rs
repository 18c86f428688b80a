//! A `berth server` under test: started from the built binary with its own temp data dir and
//! an OS-assigned port on loopback, with helpers to run the real `kubectl` against it, kill
//! it (SIGKILL) and restart it on the same data dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::{berth_bin, wait_until};

/// A running (or stopped) `berth server`.
pub struct BerthServer {
    dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
    agent: bool,
    /// The network namespace a whole node runs in (its pod network, Service rules and DNS
    /// live there, never in the host's namespace), removed on drop.
    netns: Option<String>,
    /// `host:port` of the API server.
    pub addr: String,
}

impl BerthServer {
    /// Starts `berth server --disable-agent` (control plane and registry, OS-assigned ports)
    /// plus `extra` flags and waits until it serves.
    pub fn start(extra: &[&str]) -> BerthServer {
        Self::start_with(extra, false, false)
    }

    /// Starts `berth server --disable-agent` inside a network namespace of its own, for
    /// tests that join `berth agent` processes to it: started with [`BerthServer::command`],
    /// they reach the server and build their pod network there, not in the host's namespace.
    pub fn start_for_agents(extra: &[&str]) -> BerthServer {
        Self::start_with(extra, false, true)
    }

    /// Starts a whole node: `berth server` with its in-process agent, inside a network
    /// namespace of its own (only loopback), so that the node's bridge, routes, nftables
    /// rules and DNS never touch the host's network and no packet can leave the machine.
    /// Commands that must reach the node (kubectl, curl, `berth` image commands) run in that
    /// namespace: use [`BerthServer::command`].
    pub fn start_node(extra: &[&str]) -> BerthServer {
        Self::start_with(extra, true, true)
    }

    /// A command that runs where this server's network is (inside its node namespace).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.netns {
            Some(ns) => {
                // nsenter enters only the network namespace (`ip netns exec` would also
                // remount /sys, hiding the cgroup hierarchies the node's runtime uses).
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}"))
                    .arg("--")
                    .arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// Opens a TCP connection to `addr` from this server's network namespace (a socket
    /// belongs to the namespace it was created in, so the stream works from any thread).
    pub fn connect(&self, addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
        let Some(ns) = self.netns.clone() else {
            return std::net::TcpStream::connect(addr);
        };
        std::thread::spawn(move || {
            let f = std::fs::File::open(format!("/run/netns/{ns}"))?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            std::net::TcpStream::connect(addr)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("connect thread panicked")))
    }

    /// The network namespace of a whole node, if it has one.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    fn start_with(extra: &[&str], agent: bool, own_netns: bool) -> BerthServer {
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir()
            .expect("temp dir");
        let netns = own_netns.then(|| {
            let name = crate::unique_name("bn");
            let ok = Command::new("ip")
                .args(["netns", "add", &name])
                .status()
                .is_ok_and(|s| s.success())
                && Command::new("ip")
                    .args(["-n", &name, "link", "set", "lo", "up"])
                    .status()
                    .is_ok_and(|s| s.success());
            assert!(
                ok,
                "cannot create network namespace {name} (needs root and iproute2)"
            );
            name
        });
        let mut s = BerthServer {
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            agent,
            netns,
            addr: String::new(),
        };
        s.launch();
        s
    }

    /// Runs a `berth` CLI subcommand against this server's data dir (image commands find the
    /// cluster registry through it); returns the output.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.command(berth_bin())
            .args(args)
            .env("BERTH_DATA_DIR", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run berth")
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn launch(&mut self) {
        let ready = self.dir.path().join("server/ready");
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut cmd = self.command(berth_bin());
        cmd.arg("server")
            .arg("--data-dir")
            .arg(self.dir.path())
            .args([
                "--bind-address",
                "127.0.0.1",
                "--https-listen-port",
                "0",
                "--registry-port",
                "0",
            ])
            .args(if self.agent {
                &["--agent-port", "0"][..]
            } else {
                &["--disable-agent"]
            })
            .args(&self.extra)
            .env("BERTH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = cmd.spawn().expect("spawn berth server");
        self.child = Some(child);
        let log_path = self.log_path();
        let child = self.child.as_mut().expect("child");
        self.addr = wait_until(
            "berth server to become ready",
            Duration::from_secs(60),
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "berth server exited with {status} before becoming ready:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
                std::fs::read_to_string(&ready)
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            },
        );
    }

    /// Runs kubectl with this server's kubeconfig (and a private discovery cache).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(args, &[], None)
    }

    /// Runs kubectl with extra environment and optional stdin.
    pub fn kubectl_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
        let mut cmd = self.command("kubectl");
        cmd.env("KUBECONFIG", self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        } else {
            cmd.stdin(Stdio::null());
        }
        let mut child = cmd.spawn().expect("kubectl is installed");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl and returns stdout, failing the test (with kubectl's stderr and the
    /// server log tail) if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed ({}):\nstdout: {}\nstderr: {}\nserver log tail:\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail(40)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {} unexpectedly succeeded:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs curl against the API server with the admin client certificate; returns
    /// (HTTP status, body).
    pub fn curl(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        let tls = self.dir.path().join("server/tls");
        let body_file = self.dir.path().join("curl-body");
        std::fs::write(&body_file, body).expect("write body");
        let out = self
            .command("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method])
            .arg("--cacert")
            .arg(tls.join("ca.crt"))
            .arg("--cert")
            .arg(tls.join("admin.crt"))
            .arg("--key")
            .arg(tls.join("admin.key"))
            .args(["-H", &format!("Content-Type: {content_type}")])
            .arg("--data-binary")
            .arg(format!("@{}", body_file.display()))
            .arg(format!("https://{}{path}", self.addr))
            .output()
            .expect("curl is installed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// The last lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Kills the server with SIGKILL (no shutdown path runs).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server with SIGTERM and waits for it; returns its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let status = wait_until(
            "berth server to exit after SIGTERM",
            Duration::from_secs(30),
            || c.try_wait().ok().flatten(),
        );
        Some(status)
    }

    /// Starts the server again on the same data dir.
    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }
}

impl Drop for BerthServer {
    fn drop(&mut self) {
        self.kill9();
        if let Some(ns) = self.netns.take() {
            // Everything the node created in its namespace (bridge, veths, nftables tables)
            // goes with it.
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}
