//! The layout of a node's data directory, and the lock that keeps two servers from sharing
//! one.
//!
//! ```text
//! <data-dir>/kubeconfig.yaml      admin kubeconfig (0600)
//! <data-dir>/server/token         node join token (0600)
//! <data-dir>/server/tls/          cluster CA, serving and client certificates
//! <data-dir>/server/db/           the embedded store
//! <data-dir>/server/lock          held (flock) while a server runs
//! <data-dir>/server/ready         the API server's address, written once it serves
//! ```

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The given directory, or `/var/lib/berth` as root and `~/.berth` otherwise.
    pub fn resolve(dir: Option<PathBuf>) -> anyhow::Result<DataDir> {
        let root = match dir {
            Some(d) => d,
            None if nix::unistd::geteuid().is_root() => PathBuf::from("/var/lib/berth"),
            None => {
                PathBuf::from(std::env::var_os("HOME").context("HOME is not set; pass --data-dir")?)
                    .join(".berth")
            }
        };
        std::fs::create_dir_all(root.join("server"))
            .with_context(|| format!("cannot create data dir {}", root.display()))?;
        let root = root
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", root.display()))?;
        Ok(DataDir { root })
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    pub fn server_dir(&self) -> PathBuf {
        self.root.join("server")
    }
    pub fn tls_dir(&self) -> PathBuf {
        self.server_dir().join("tls")
    }
    pub fn db_dir(&self) -> PathBuf {
        self.server_dir().join("db")
    }
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.root.join("kubeconfig.yaml")
    }
    fn ready_path(&self) -> PathBuf {
        self.server_dir().join("ready")
    }

    /// Takes the server lock; fails if another server uses this data dir.
    pub fn lock_server(&self) -> anyhow::Result<nix::fcntl::Flock<File>> {
        let path = self.server_dir().join("lock");
        let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let _ = std::fs::remove_file(self.ready_path());
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            anyhow::anyhow!(
                "data dir {} is in use by another berth server ({e})",
                self.root.display()
            )
        })
    }

    /// The node join token, generated on first use.
    pub fn node_token(&self) -> anyhow::Result<String> {
        let path = self.server_dir().join("token");
        if let Ok(t) = std::fs::read_to_string(&path) {
            let t = t.trim().to_string();
            if !t.is_empty() {
                return Ok(t);
            }
        }
        let bytes: [u8; 24] = rand::random();
        let token = format!("B10{}", hex::encode(bytes));
        berth_apiserver::pki::write_file(&path, format!("{token}\n").as_bytes(), 0o600)?;
        Ok(token)
    }

    /// Records that the server serves at `addr` (tests and scripts wait for this file).
    pub fn write_ready(&self, addr: SocketAddr) -> anyhow::Result<()> {
        berth_apiserver::pki::write_file(
            &self.ready_path(),
            format!("{addr}\n").as_bytes(),
            0o644,
        )?;
        Ok(())
    }
}
