//! A throwaway etcd (Debian's `etcd-server`) on loopback for side-by-side benchmarks: OS-chosen
//! ports, its own data dir, killed when dropped.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running etcd member.
pub struct Etcd {
    child: Child,
    pub endpoint: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `etcd --version`'s first line.
pub fn version() -> String {
    Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.trim_start_matches("etcd Version: ").to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Starts etcd with its data under `dir` and waits until it answers.
pub async fn start(dir: &Path) -> Result<(Etcd, etcd_client::Client)> {
    let (client_port, peer_port) = (free_port()?, free_port()?);
    let endpoint = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let log = std::fs::File::create(dir.join("etcd.log"))?;
    let child = Command::new("etcd")
        .args(["--name", "bench", "--data-dir"])
        .arg(dir.join("etcd"))
        .args([
            "--listen-client-urls",
            &endpoint,
            "--advertise-client-urls",
            &endpoint,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("bench={peer}")])
        .args(["--quota-backend-bytes", &(8u64 << 30).to_string()])
        .args(["--logger", "zap", "--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting etcd (install it with scripts/install-deps.sh)")?;
    let etcd = Etcd { child, endpoint };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = etcd_client::Client::connect([etcd.endpoint.as_str()], None).await
            && c.status().await.is_ok()
        {
            return Ok((etcd, c));
        }
        if Instant::now() > deadline {
            bail!(
                "etcd did not come up on {} (see {})",
                etcd.endpoint,
                dir.join("etcd.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
