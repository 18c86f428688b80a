//! Simulated hosts for the networking end-to-end tests: network namespaces joined by veth to
//! a bridge that itself lives in a test-owned namespace (the "LAN"), one `berth server` and
//! `berth agent`s each in their own host namespace with their own data dir, an outside
//! machine on the LAN that is no node, and a DNS resolver the test runs there (the hosts'
//! upstream). No namespace has a route off the LAN, so nothing can leave the machine; every
//! namespace is removed on drop, on success and on failure.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_e2e::{berth_bin, unique_name, wait_until};

pub const WAIT: Duration = Duration::from_secs(180);

/// The LAN's addresses: hosts are .1, .2, ...; the outside machine is .100.
pub const LAN_PREFIX: &str = "172.31.0";
pub const OUTSIDE_IP: &str = "172.31.0.100";

/// A named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = unique_name(prefix);
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// A command that runs inside the namespace. Only the network namespace changes
    /// (`nsenter --net`; `ip netns exec` would also remount /sys and hide the cgroup
    /// hierarchies the runtime needs).
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        c
    }

    pub fn out(&self, args: &[&str]) -> Output {
        self.cmd(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec")
    }

    /// Runs a command inside; panics with its output on failure; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "{} (in {}) failed: {}{}",
            args.join(" "),
            self.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `curl` from inside the namespace: (HTTP status, body); status 0 when no answer.
    pub fn curl(&self, url: &str, extra: &[&str]) -> (u16, String) {
        let mut args = vec!["curl", "-sS", "-m", "3", "-o", "-", "-w", "\n%{http_code}"];
        args.extend_from_slice(extra);
        args.push(url);
        let o = self.out(&args);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        o.status.success(),
        "{cmd} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A resolver on the outside machine: `*.test.` resolves to the outside machine's address,
/// everything else is NXDOMAIN. The hosts' `resolv.conf` points at it.
struct TestResolver {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestResolver {
    fn start(ns: &Netns, addr: SocketAddr) -> TestResolver {
        use hickory_proto::op::{Message, MessageType, ResponseCode};
        use hickory_proto::rr::rdata::A;
        use hickory_proto::rr::{RData, Record, RecordType};
        let file = std::fs::File::open(ns.path()).expect("netns");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let sock = UdpSocket::bind(addr).expect("bind resolver");
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 1500];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if q.metadata.message_type != MessageType::Query {
                    continue;
                }
                let mut r = Message::response(q.metadata.id, q.metadata.op_code);
                r.metadata.recursion_desired = q.metadata.recursion_desired;
                r.metadata.recursion_available = true;
                r.queries = q.queries.clone();
                match q.queries.first() {
                    Some(qq)
                        if qq
                            .name()
                            .to_ascii()
                            .to_ascii_lowercase()
                            .ends_with(".test.") =>
                    {
                        if qq.query_type() == RecordType::A {
                            let ip: Ipv4Addr = OUTSIDE_IP.parse().unwrap();
                            r.answers.push(Record::from_rdata(
                                qq.name().clone(),
                                30,
                                RData::A(A(ip)),
                            ));
                        }
                    }
                    _ => r.metadata.response_code = ResponseCode::NXDomain,
                }
                if let Ok(bytes) = r.to_vec() {
                    let _ = sock.send_to(&bytes, peer);
                }
            }
        });
        rx.recv().expect("resolver started");
        TestResolver {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TestResolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One simulated host running `berth server` or `berth agent`.
pub struct Host {
    pub ns: Netns,
    pub ip: String,
    pub node: String,
    pub data: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Host {
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            wait_until(
                "berth to exit after SIGTERM",
                Duration::from_secs(60),
                || c.try_wait().ok().flatten(),
            );
        }
    }

    /// Starts berth again with the same flags and data dir (after [`Host::kill9`] or
    /// [`Host::stop`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.node);
        self.child = Some(spawn_berth(
            &self.ns, &self.args, &self.data, &self.node, &self.log,
        ));
    }

    /// SIGKILL (no shutdown path runs).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What berth left in the host's namespace: links other than lo and the uplink, its
    /// routes, its nftables table.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for line in self.ns.ok(&["ip", "-o", "link", "show"]).lines() {
            let name = line
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .split('@')
                .next()
                .unwrap_or("")
                .to_string();
            if name != "lo" && name != "eth0" {
                left.push(format!("link {name}"));
            }
        }
        for r in self
            .ns
            .ok(&["ip", "-4", "route", "show", "proto", "98"])
            .lines()
        {
            left.push(format!("route {r}"));
        }
        for t in self.ns.ok(&["nft", "list", "tables"]).lines() {
            left.push(format!("nft {t}"));
        }
        left
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill9();
        // Containers outlive their agent by design (restart safety): remove them, their
        // mounts and the node's cgroups, then the namespace goes with `ns`.
        crate::agent_support::force_cleanup(&self.data, &self.node);
    }
}

/// Three (or more) simulated hosts forming one cluster, and an outside machine.
pub struct Cluster {
    // Field order is drop order: processes first, then the namespaces.
    pub hosts: Vec<Host>,
    resolver: Option<TestResolver>,
    pub outside: Netns,
    lan: Netns,
    pub dir: tempfile::TempDir,
}

fn spawn_berth(ns: &Netns, args: &[String], data: &Path, node: &str, log: &Path) -> Child {
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    ns.cmd(berth_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--node-name")
        .arg(node)
        .env("BERTH_LOG", "info")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .expect("spawn berth")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let pods = self.kubectl(&["get", "pods", "-A", "-o", "wide"], None);
            let events = self.kubectl(&["get", "events", "-A"], None);
            eprintln!(
                "=== cluster state at failure\n{}\n{}\n{}",
                String::from_utf8_lossy(&pods.stdout),
                String::from_utf8_lossy(&events.stdout),
                self.logs()
            );
            for h in &self.hosts {
                let show =
                    |args: &[&str]| String::from_utf8_lossy(&h.ns.out(args).stdout).into_owned();
                eprintln!(
                    "=== {} ({})\n{}\n{}\n{}",
                    h.node,
                    h.ip,
                    show(&["ip", "-4", "-o", "addr"]),
                    show(&["ip", "-4", "route"]),
                    show(&["nft", "list", "ruleset"])
                );
            }
        }
    }
}

fn veth_to_lan(lan: &Netns, ns: &Netns, ip: &str) {
    let end = unique_name("bv");
    run(
        "ip",
        &[
            "link", "add", &end, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ],
    );
    run("ip", &["link", "set", &end, "netns", &lan.name]);
    lan.ok(&["ip", "link", "set", &end, "master", "lanbr", "up"]);
    ns.ok(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
    ns.ok(&["ip", "link", "set", "eth0", "up"]);
}

impl Cluster {
    /// A LAN, the outside machine with its resolver, a server host and `agents` agent hosts,
    /// all Ready.
    pub fn start(agents: usize, server_flags: &[&str]) -> Cluster {
        berth_e2e::require_root();
        let dir = tempfile::Builder::new()
            .prefix("berth-net-e2e-")
            .tempdir()
            .expect("tmp");
        let lan = Netns::new("bnl");
        lan.ok(&["ip", "link", "add", "lanbr", "type", "bridge"]);
        lan.ok(&["ip", "link", "set", "lanbr", "up"]);
        let outside = Netns::new("bno");
        veth_to_lan(&lan, &outside, OUTSIDE_IP);
        let resolver = TestResolver::start(&outside, format!("{OUTSIDE_IP}:53").parse().unwrap());
        let resolv = dir.path().join("resolv.conf");
        std::fs::write(&resolv, format!("nameserver {OUTSIDE_IP}\n")).unwrap();
        let mut c = Cluster {
            hosts: Vec::new(),
            resolver: Some(resolver),
            outside,
            lan,
            dir,
        };
        let server_ip = format!("{LAN_PREFIX}.1");
        let mut server_args: Vec<String> = vec![
            "server".into(),
            "--bind-address".into(),
            server_ip.clone(),
            "--registry-port".into(),
            "0".into(),
            "--agent-port".into(),
            "0".into(),
            "--resolv-conf".into(),
            resolv.to_string_lossy().into_owned(),
        ];
        server_args.extend(server_flags.iter().map(|s| s.to_string()));
        c.add_host("node-0", &server_ip, &server_args);
        let ready = c.hosts[0].data.join("server/ready");
        wait_until("berth server to become ready", WAIT, || {
            std::fs::read_to_string(&ready)
                .ok()
                .filter(|s| !s.trim().is_empty())
        });
        let token = String::from_utf8(
            Command::new(berth_bin())
                .args(["token", "--data-dir"])
                .arg(&c.hosts[0].data)
                .output()
                .expect("berth token")
                .stdout,
        )
        .unwrap();
        for i in 1..=agents {
            let ip = format!("{LAN_PREFIX}.{}", i + 1);
            let args: Vec<String> = vec![
                "agent".into(),
                "--server".into(),
                format!("https://{server_ip}:6443"),
                "--token".into(),
                token.trim().to_string(),
                "--node-ip".into(),
                ip.clone(),
                "--agent-port".into(),
                "0".into(),
                "--resolv-conf".into(),
                resolv.to_string_lossy().into_owned(),
            ];
            c.add_host(&format!("node-{i}"), &ip, &args);
        }
        let n = agents + 1;
        wait_until("every node Ready with a podCIDR", WAIT, || {
            let v = c.json(&["get", "nodes"]);
            let ready = v["items"]
                .as_array()?
                .iter()
                .filter(|n| {
                    n["spec"]["podCIDR"].is_string()
                        && n["status"]["conditions"].as_array().is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                })
                .count();
            (ready == n).then_some(())
        });
        c
    }

    fn add_host(&mut self, node: &str, ip: &str, args: &[String]) {
        let ns = Netns::new("bnh");
        veth_to_lan(&self.lan, &ns, ip);
        let data = self.dir.path().join(node);
        std::fs::create_dir_all(&data).unwrap();
        let log = self.dir.path().join(format!("{node}.log"));
        let child = spawn_berth(&ns, args, &data, node, &log);
        self.hosts.push(Host {
            ns,
            ip: ip.to_string(),
            node: node.to_string(),
            data,
            log,
            args: args.to_vec(),
            child: Some(child),
        });
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.hosts[0].data.join("kubeconfig.yaml")
    }

    /// kubectl from the outside machine.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut cmd = self.outside.cmd("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn().expect("kubectl");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().expect("kubectl")
    }

    /// kubectl that must succeed; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args, None);
        assert!(
            o.status.success(),
            "kubectl {} failed: {}{}\nserver log:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.hosts[0].log_tail(30)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn apply(&self, yaml: &str) {
        let o = self.kubectl(&["apply", "-f", "-"], Some(yaml));
        assert!(
            o.status.success(),
            "kubectl apply failed: {}\n{yaml}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).expect("kubectl -o json")
    }

    /// Runs `berth` image commands against the server's data dir (in the server's host, where
    /// the cluster registry is reachable).
    pub fn berth(&self, args: &[&str]) -> Output {
        self.hosts[0]
            .ns
            .cmd(berth_bin())
            .args(args)
            .env("BERTH_DATA_DIR", &self.hosts[0].data)
            .stdin(Stdio::null())
            .output()
            .expect("berth")
    }

    pub fn host(&self, node: &str) -> &Host {
        self.hosts.iter().find(|h| h.node == node).expect("host")
    }

    /// Stops every berth process (agents first) with SIGTERM.
    pub fn stop_all(&mut self) {
        for h in self.hosts.iter_mut().rev() {
            h.stop();
        }
    }

    pub fn logs(&self) -> String {
        self.hosts
            .iter()
            .map(|h| format!("--- {}:\n{}", h.node, h.log_tail(40)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Builds the busybox image (from busybox-static) running `cmd` and pushes it to the cluster
/// registry as `name`.
pub fn push_busybox(c: &Cluster, dir: &Path, name: &str, cmd: &[&str]) {
    let tag = name.rsplit(':').next().unwrap_or("latest");
    let layout = crate::agent_support::busybox_layout(dir, tag, cmd);
    for args in [
        vec!["import", layout.to_str().unwrap(), name],
        vec!["push", name],
    ] {
        let o = c.berth(&args);
        assert!(
            o.status.success(),
            "berth {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
