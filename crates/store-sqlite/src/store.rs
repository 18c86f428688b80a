//! [`SqliteStore`]: opening the database and the [`Store`] implementation that routes reads
//! to the reader pool, writes to the writer thread and watches to the hub.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use berth_store::{
    Error as StoreError, KeyValue, ListRequest, ListResponse, Result, Revision, Store, WatchStream,
};
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::config::SqliteConfig;
use crate::read::{self, Readers};
use crate::watch::{self, Hub, WatchSource};
use crate::writer::{Op, Status, Writer, read_position};
use crate::{Error, schema};

/// The embedded store: a SQLite database file (plus its `-wal`, `-shm` and `-lock` files).
/// Cloning shares the same store; the writer thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// `None` only while dropping.
    tx: Option<mpsc::Sender<Op>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<Readers>,
    watch: Arc<WatchSource>,
    status: Arc<Status>,
    /// Held (flock) for the store's lifetime: one process per database.
    _lock: File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what it has and exit; waiting for it
        // means the database is closed when the last handle is gone.
        self.tx.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating the database if it does not exist. Revisions
    /// continue where the previous process left them.
    pub fn open(path: impl AsRef<Path>, config: SqliteConfig) -> Result<SqliteStore, Error> {
        config.validate()?;
        let path = path.as_ref().to_path_buf();
        let lock_path = sibling(&path, "-lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::open(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: path.clone(),
                    lock: lock_path,
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::open(&lock_path, e)),
        }

        let conn = schema::open_writer(&path)?;
        let position = read_position(&conn).map_err(|e| Error::open(&path, e))?;
        let status = Arc::new(Status::default());
        let hub = Arc::new(Hub::new(config.watch_buffer, position.0));
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(conn, rx, hub.clone(), status.clone(), &config, position);
        let writer = std::thread::Builder::new()
            .name("berth-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::open(&path, format!("starting the writer thread: {e}")))?;
        let readers = Arc::new(Readers::new(path.clone(), config.read_connections));
        tracing::debug!(path = %path.display(), revision = position.0, "store opened");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                tx: Some(tx),
                writer: Some(writer),
                watch: Arc::new(WatchSource {
                    readers: readers.clone(),
                    hub,
                }),
                readers,
                status,
                _lock: lock,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Counters of the writer since the store was opened.
    pub fn stats(&self) -> SqliteStats {
        SqliteStats {
            commits: self.inner.status.commits.load(Ordering::Relaxed),
            writes: self.inner.status.writes.load(Ordering::Relaxed),
        }
    }

    async fn submit<T>(&self, op: impl FnOnce(oneshot::Sender<Result<T>>) -> Op) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let tx = self.inner.tx.as_ref().ok_or(StoreError::Closed)?;
        tx.send(op(reply)).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// Writer counters: `writes / commits` is the average group-commit batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqliteStats {
    /// Transactions committed that carried writes (one fsync each).
    pub commits: u64,
    /// Writes committed.
    pub writes: u64,
}

/// `path` with `suffix` appended to its file name (`store.db` → `store.db-lock`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_string();
        self.inner
            .readers
            .read("get", move |tx| read::get(tx, &key))
            .await
    }

    async fn list(&self, request: ListRequest) -> Result<ListResponse> {
        self.inner
            .readers
            .read("list", move |tx| read::list(tx, &request))
            .await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        self.submit(|reply| Op::Create {
            key: key.to_string(),
            value,
            reply,
        })
        .await
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        self.submit(|reply| Op::Update {
            key: key.to_string(),
            value,
            expected,
            reply,
        })
        .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        self.submit(|reply| Op::Delete {
            key: key.to_string(),
            expected,
            reply,
        })
        .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let compacted = self.inner.status.compacted.load(Ordering::Acquire);
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        watch::start(self.inner.watch.clone(), prefix, after)
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.status.revision.load(Ordering::Acquire))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.submit(|reply| Op::Compact { revision, reply }).await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.inner.status.compacted.load(Ordering::Acquire))
    }
}
