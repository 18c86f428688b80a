//! Test namespaces: named network namespaces (`ip netns`) with unique names, removed on drop,
//! and helpers to run code inside one.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// A name unique to this process and call, short enough for interface names.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}{:x}", std::process::id() & 0xfffff, n)
}

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create network namespaces and must run as root"
    );
}

/// A named network namespace, deleted on drop.
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    pub fn new(prefix: &str) -> TestNetns {
        let name = unique_name(prefix);
        run("ip", &["netns", "add", &name]);
        let ns = TestNetns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs a command inside the namespace; panics with its output on failure.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs a command inside the namespace; returns (success, stdout+stderr).
    pub fn try_exec(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("ip");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = std::fs::File::open(self.path()).expect("open netns");
        std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread panicked")
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs an async body on a current-thread runtime on a thread inside `ns`, with a timeout.
pub fn block_on_in<T: Send + 'static, F>(
    ns: &TestNetns,
    f: impl FnOnce() -> F + Send + 'static,
) -> T
where
    F: std::future::Future<Output = T>,
{
    ns.run(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move {
                tokio::time::timeout(std::time::Duration::from_secs(60), f())
                    .await
                    .expect("test body timed out")
            })
    })
}

/// A TCP server in a namespace that answers every connection with its name.
pub struct NameServer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NameServer {
    pub fn start(ns: &TestNetns, port: u16, name: &str) -> NameServer {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let file = std::fs::File::open(ns.path()).expect("open netns");
        let (tx, rx) = std::sync::mpsc::channel();
        let name = name.to_string();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let l = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind");
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            while !stop2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.write_all(name.as_bytes());
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
                }
            }
        });
        rx.recv().unwrap();
        NameServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects from `ns` to `addr` and reads the answer; `Err` with the connect error kind.
pub fn who(ns: &TestNetns, addr: &str) -> Result<String, std::io::ErrorKind> {
    use std::io::Read;
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    ns.run(move || {
        let mut c =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(700))
                .map_err(|e| e.kind())?;
        c.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).map_err(|e| e.kind())?;
        Ok(s)
    })
}
