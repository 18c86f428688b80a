//! `FsBlobDriver`: blobs as files under `<root>/<alg>/<2 hex>/<hex>`, writers as temporary
//! files under `<root>/_uploads/` that are renamed into place after the digest was checked
//! and the data was synced (one `fdatasync` of the file, one `fsync` of its directory).
//!
//! A writer hashes and writes on its own blocking thread, fed through a bounded channel, so
//! receiving the next body frame overlaps hashing and writing the previous one; every 8 MiB
//! it starts writeback (`sync_file_range`), so the disk writes while the body still arrives
//! and the final `fdatasync` is short.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncSeekExt;
use tokio::sync::mpsc;

use crate::crypto::{self, BlobCipher, DecryptingReader, EncryptingWriter};
use crate::digest::{Algorithm, Digest, DigestHasher};
use crate::driver::{BlobDriver, BlobRead, BlobStat, BlobWriter};
use crate::error::{RegistryError, Result};

const WRITE_BUFFER: usize = 1 << 20;
const READ_CHUNK: usize = 1 << 20;
/// Writeback is started after every this many bytes received.
const WRITEBACK_STEP: usize = 8 << 20;

/// The filesystem blob driver, optionally encrypting at rest.
#[derive(Clone, Debug)]
pub struct FsBlobDriver {
    root: PathBuf,
    cipher: Option<Arc<BlobCipher>>,
}

impl FsBlobDriver {
    /// Opens (creating) a driver rooted at `root`.
    pub fn new(root: impl Into<PathBuf>, cipher: Option<Arc<BlobCipher>>) -> Result<FsBlobDriver> {
        let root = root.into();
        let uploads = root.join("_uploads");
        std::fs::create_dir_all(&uploads).map_err(|e| RegistryError::io("create", &uploads, e))?;
        Ok(FsBlobDriver { root, cipher })
    }

    fn path(&self, d: &Digest) -> PathBuf {
        self.root
            .join(d.algorithm().as_str())
            .join(&d.hex()[..2])
            .join(d.hex())
    }

    fn stat_path(&self, path: &Path) -> io::Result<Option<BlobStat>> {
        match std::fs::metadata(path) {
            Ok(m) => {
                let size = match &self.cipher {
                    None => m.len(),
                    Some(_) => crypto::plaintext_len(m.len()).ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "not a berth encrypted blob")
                    })?,
                };
                Ok(Some(BlobStat {
                    size,
                    modified: m.modified()?,
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task panicked")
}

#[async_trait]
impl BlobDriver for FsBlobDriver {
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobStat>> {
        let path = self.path(digest);
        if self.cipher.is_none() {
            // A metadata call is cheap enough to do inline on the async thread.
            return self
                .stat_path(&path)
                .map_err(|e| RegistryError::io("stat", &path, e));
        }
        let me = self.clone();
        blocking(move || {
            me.stat_path(&path)
                .map_err(|e| RegistryError::io("stat", &path, e))
        })
        .await
    }

    async fn reader(&self, digest: &Digest, offset: u64) -> Result<BlobRead> {
        let path = self.path(digest);
        let unknown = || RegistryError::BlobUnknown {
            digest: digest.to_string(),
        };
        match &self.cipher {
            None => {
                let mut f = match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown()),
                    Err(e) => return Err(RegistryError::io("open", &path, e)),
                };
                f.set_max_buf_size(READ_CHUNK);
                if offset > 0 {
                    f.seek(io::SeekFrom::Start(offset))
                        .await
                        .map_err(|e| RegistryError::io("seek", &path, e))?;
                }
                Ok(Box::pin(f))
            }
            Some(cipher) => {
                let cipher = cipher.clone();
                let p = path.clone();
                let reader = blocking(move || DecryptingReader::open(&p, cipher, offset)).await;
                let reader = match reader {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown()),
                    Err(e) => {
                        return Err(RegistryError::Crypto {
                            path,
                            reason: e.to_string(),
                        });
                    }
                };
                Ok(Box::pin(blocking_reader_stream(reader)))
            }
        }
    }

    async fn writer(&self) -> Result<Box<dyn BlobWriter>> {
        let temp = self
            .root
            .join("_uploads")
            .join(uuid::Uuid::new_v4().to_string());
        let t = temp.clone();
        let cipher = self.cipher.clone();
        let file = blocking(move || std::fs::File::create_new(&t))
            .await
            .map_err(|e| RegistryError::io("create", &temp, e))?;
        let sink = match cipher {
            None => Sink::Plain(io::BufWriter::with_capacity(WRITE_BUFFER, file)),
            Some(c) => Sink::Encrypted(
                EncryptingWriter::new(io::BufWriter::with_capacity(WRITE_BUFFER, file), c)
                    .map_err(|e| RegistryError::io("write", &temp, e))?,
            ),
        };
        let (tx, mut rx) = mpsc::channel::<Bytes>(16);
        let handle = tokio::task::spawn_blocking(move || -> io::Result<(Sink, DigestHasher)> {
            let mut sink = sink;
            let mut hasher = DigestHasher::new(Algorithm::Sha256);
            let mut since_writeback = 0usize;
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
                sink.write_all(&chunk)?;
                since_writeback += chunk.len();
                if since_writeback >= WRITEBACK_STEP {
                    since_writeback = 0;
                    sink.start_writeback();
                }
            }
            Ok((sink, hasher))
        });
        Ok(Box::new(FsBlobWriter {
            driver: self.clone(),
            temp,
            tx: Some(tx),
            handle: Some(handle),
            size: 0,
        }))
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        let path = self.path(digest);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(RegistryError::io("remove", &path, e)),
        }
    }

    async fn walk(&self) -> Result<Vec<(Digest, BlobStat)>> {
        let me = self.clone();
        blocking(move || {
            let mut out = Vec::new();
            for alg in Algorithm::all() {
                let dir = me.root.join(alg.as_str());
                for prefix in read_dir_names(&dir)? {
                    let pdir = dir.join(&prefix);
                    for name in read_dir_names(&pdir)? {
                        let Ok(d) = Digest::new(alg, &name) else {
                            continue;
                        };
                        let p = pdir.join(&name);
                        if let Some(st) = me
                            .stat_path(&p)
                            .map_err(|e| RegistryError::io("stat", &p, e))?
                        {
                            out.push((d, st));
                        }
                    }
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
        .await
    }

    async fn purge_uploads(&self, older_than: SystemTime) -> Result<usize> {
        let dir = self.root.join("_uploads");
        blocking(move || {
            let mut n = 0;
            for name in read_dir_names(&dir)? {
                let p = dir.join(&name);
                let Ok(m) = std::fs::metadata(&p) else {
                    continue;
                };
                if m.modified().map(|t| t < older_than).unwrap_or(false) {
                    match std::fs::remove_file(&p) {
                        Ok(()) => n += 1,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(RegistryError::io("remove", &p, e)),
                    }
                }
            }
            Ok(n)
        })
        .await
    }
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v = Vec::new();
            for e in rd {
                let e = e.map_err(|e| RegistryError::io("read dir", dir, e))?;
                if let Some(s) = e.file_name().to_str() {
                    v.push(s.to_owned());
                }
            }
            Ok(v)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(RegistryError::io("read dir", dir, e)),
    }
}

/// Streams a blocking reader through a channel as an `AsyncRead`.
fn blocking_reader_stream(
    mut reader: impl Read + Send + 'static,
) -> impl tokio::io::AsyncRead + Send {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut buf = vec![0u8; READ_CHUNK];
            let mut filled = 0;
            let res = loop {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == buf.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            let done = filled < buf.len();
            buf.truncate(filled);
            if filled > 0 && tx.blocking_send(Ok(buf.into())).is_err() {
                return;
            }
            if let Err(e) = res {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            if done {
                return;
            }
        }
    });
    tokio_util::io::StreamReader::new(tokio_stream_from(rx))
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

enum Sink {
    Plain(io::BufWriter<std::fs::File>),
    Encrypted(EncryptingWriter<io::BufWriter<std::fs::File>>),
}

impl Sink {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(data),
            Sink::Encrypted(w) => w.write_all(data),
        }
    }

    /// Starts writeback of what is written so far without waiting for it, so that the
    /// `fdatasync` at commit finds little left to write.
    fn start_writeback(&self) {
        use std::os::fd::AsRawFd as _;
        let f = match self {
            Sink::Plain(w) => w.get_ref(),
            Sink::Encrypted(w) => w.get_ref().get_ref(),
        };
        // SAFETY: sync_file_range on a descriptor we own, with no memory arguments; a
        // failure only means the final fdatasync does all the work.
        let _ = unsafe {
            nix::libc::sync_file_range(f.as_raw_fd(), 0, 0, nix::libc::SYNC_FILE_RANGE_WRITE)
        };
    }

    fn finish(self) -> io::Result<std::fs::File> {
        let bw = match self {
            Sink::Plain(w) => w,
            Sink::Encrypted(w) => w.finish()?,
        };
        bw.into_inner().map_err(|e| e.into_error())
    }
}

struct FsBlobWriter {
    driver: FsBlobDriver,
    temp: PathBuf,
    tx: Option<mpsc::Sender<Bytes>>,
    handle: Option<tokio::task::JoinHandle<io::Result<(Sink, DigestHasher)>>>,
    size: u64,
}

impl FsBlobWriter {
    async fn finish_thread(&mut self) -> Result<(Sink, DigestHasher)> {
        self.tx = None;
        let handle = self
            .handle
            .take()
            .ok_or_else(|| RegistryError::UploadInvalid {
                id: self.temp.display().to_string(),
                reason: "writer already finished".into(),
            })?;
        handle
            .await
            .expect("writer thread panicked")
            .map_err(|e| RegistryError::io("write", &self.temp, e))
    }
}

#[async_trait]
impl BlobWriter for FsBlobWriter {
    fn size(&self) -> u64 {
        self.size
    }

    async fn write(&mut self, data: Bytes) -> Result<()> {
        let len = data.len() as u64;
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| RegistryError::UploadInvalid {
                id: self.temp.display().to_string(),
                reason: "writer already finished".into(),
            })?;
        if tx.send(data).await.is_err() {
            // The thread stopped on an I/O error: report it.
            let err = self.finish_thread().await.err();
            return Err(err.unwrap_or_else(|| {
                RegistryError::io("write", &self.temp, io::Error::other("writer stopped"))
            }));
        }
        self.size += len;
        Ok(())
    }

    async fn commit(mut self: Box<Self>, expected: &Digest) -> Result<BlobStat> {
        let (sink, hasher) = self.finish_thread().await?;
        let temp = self.temp.clone();
        let fin = self.driver.path(expected);
        let driver = self.driver.clone();
        let expected = expected.clone();
        blocking(move || {
            let res = (|| {
                let file = sink
                    .finish()
                    .map_err(|e| RegistryError::io("write", &temp, e))?;
                let actual = if expected.algorithm() == Algorithm::Sha256 {
                    hasher.finish()
                } else {
                    rehash(&driver, &temp, expected.algorithm())
                        .map_err(|e| RegistryError::io("read", &temp, e))?
                };
                if actual != expected {
                    return Err(RegistryError::DigestMismatch {
                        expected: expected.to_string(),
                        actual: actual.to_string(),
                    });
                }
                file.sync_data()
                    .map_err(|e| RegistryError::io("fdatasync", &temp, e))?;
                drop(file);
                let dir = fin.parent().expect("blob path has a parent");
                std::fs::create_dir_all(dir).map_err(|e| RegistryError::io("create", dir, e))?;
                std::fs::rename(&temp, &fin).map_err(|e| RegistryError::io("rename", &fin, e))?;
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| RegistryError::io("fsync", dir, e))?;
                driver
                    .stat_path(&fin)
                    .map_err(|e| RegistryError::io("stat", &fin, e))?
                    .ok_or_else(|| RegistryError::BlobUnknown {
                        digest: expected.to_string(),
                    })
            })();
            if res.is_err() {
                let _ = std::fs::remove_file(&temp);
            }
            res
        })
        .await
    }

    async fn cancel(mut self: Box<Self>) -> Result<()> {
        let _ = self.finish_thread().await;
        match tokio::fs::remove_file(&self.temp).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RegistryError::io("remove", &self.temp, e)),
        }
    }
}

fn rehash(driver: &FsBlobDriver, path: &Path, alg: Algorithm) -> io::Result<Digest> {
    let mut reader: Box<dyn Read> = match &driver.cipher {
        None => Box::new(std::fs::File::open(path)?),
        Some(c) => Box::new(DecryptingReader::open(path, c.clone(), 0)?),
    };
    let mut h = DigestHasher::new(alg);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fs_driver_passes_the_conformance_suite() {
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            let dir = tempfile::tempdir().unwrap();
            let d = FsBlobDriver::new(dir.path(), None).unwrap();
            crate::driver_testsuite::run_all(&d).await;
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn encrypted_fs_driver_passes_the_conformance_suite() {
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            let dir = tempfile::tempdir().unwrap();
            let c = Arc::new(BlobCipher::from_key(&[3u8; 32]).unwrap());
            let d = FsBlobDriver::new(dir.path(), Some(c)).unwrap();
            crate::driver_testsuite::run_all(&d).await;
            // Nothing under the root holds the plaintext.
            let marker = b"berth-plaintext-marker-0123456789";
            d.write_small(Bytes::from_static(marker), &Digest::sha256_of(marker))
                .await
                .unwrap();
            let p = d.path(&Digest::sha256_of(marker));
            let raw = std::fs::read(p).unwrap();
            assert!(!raw.windows(marker.len()).any(|w| w == marker));
        })
        .await
        .unwrap();
    }
}
