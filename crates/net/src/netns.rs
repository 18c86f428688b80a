//! Work inside another network namespace.
//!
//! A netlink socket (and `/proc/sys/net`) belongs to the namespace of the thread that opens
//! it, so configuring a sandbox's interfaces happens on a dedicated thread that `setns()`es
//! into the sandbox's namespace, runs a current-thread runtime with its own netlink
//! connection, and then exits: a thread that changed namespace is never reused.

use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{NetError, Result};

/// Identity of a network namespace file (device and inode of the nsfs object), to tell
/// whether a path still names the same namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetnsId {
    pub dev: u64,
    pub ino: u64,
}

impl NetnsId {
    /// The namespace a path names now (`None` when the path is gone).
    pub fn of(path: &Path) -> Result<Option<NetnsId>> {
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(NetnsId {
                dev: m.dev(),
                ino: m.ino(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(NetError::io("reading network namespace", path, e)),
        }
    }
}

/// Runs `f` with a netlink handle inside the network namespace at `path`, on a fresh thread.
pub async fn with_netns<F, Fut, T>(path: &Path, f: F) -> Result<T>
where
    F: FnOnce(rtnetlink::Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>>,
    T: Send + 'static,
{
    let file = std::fs::File::open(path)
        .map_err(|e| NetError::io("opening network namespace", path, e))?;
    let path: PathBuf = path.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || {
            let result = (|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    NetError::io("entering network namespace", &path, std::io::Error::from(e))
                })?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| NetError::Internal(format!("netns runtime: {e}")))?;
                rt.block_on(async move {
                    let (conn, handle, _) = rtnetlink::new_connection()
                        .map_err(|e| NetError::io("opening netlink socket", &path, e))?;
                    let task = tokio::spawn(conn);
                    let out = f(handle).await;
                    task.abort();
                    out
                })
            })();
            let _ = tx.send(result);
        })
        .map_err(|e| NetError::Internal(format!("cannot start a netns thread: {e}")))?;
    rx.await
        .map_err(|_| NetError::Internal("netns thread ended without a result".into()))?
}

/// Writes a sysctl of the calling thread's network namespace (`net.ipv4.conf.eth0.x` is
/// `/proc/sys/net/ipv4/conf/eth0/x`).
pub fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| NetError::io("writing sysctl", path, e))
}
