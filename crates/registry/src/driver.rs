//! The `BlobDriver` seam: the registry's byte store, addressed by digest. The registry keeps
//! repository metadata (links, tags, referrers) itself; a driver only stores content.

use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::digest::Digest;
use crate::error::{RegistryError, Result};

/// Size and commit time of a stored blob (sizes are of the plaintext content).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobStat {
    pub size: u64,
    pub modified: SystemTime,
}

/// A stream of a blob's bytes.
pub type BlobRead = Pin<Box<dyn AsyncRead + Send>>;

/// A content-addressed byte store.
///
/// Guarantees every implementation must give (checked by [`crate::driver_testsuite`]): a
/// blob is visible under a digest only after [`BlobWriter::commit`] verified that the content
/// has that digest; commit is atomic (readers see the whole blob or nothing, also after a
/// crash); any number of writers may write the same blob at once.
#[async_trait]
pub trait BlobDriver: Send + Sync + 'static {
    /// Size and commit time of a blob, or `None` when absent.
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobStat>>;
    /// The blob's content from `offset` on. `BlobUnknown` when absent.
    async fn reader(&self, digest: &Digest, offset: u64) -> Result<BlobRead>;
    /// A new writer for content whose digest is checked at commit.
    async fn writer(&self) -> Result<Box<dyn BlobWriter>>;
    /// Removes a blob; `false` when it was absent.
    async fn delete(&self, digest: &Digest) -> Result<bool>;
    /// Every committed blob.
    async fn walk(&self) -> Result<Vec<(Digest, BlobStat)>>;
    /// Removes leftovers of writers that were never committed or cancelled (a crash) and that
    /// were last written before `older_than`. Returns how many were removed.
    async fn purge_uploads(&self, older_than: SystemTime) -> Result<usize>;

    /// Reads a whole blob of at most `limit` bytes (manifests).
    async fn read_small(&self, digest: &Digest, limit: u64) -> Result<Bytes> {
        let mut r = self.reader(digest, 0).await?;
        let mut buf = Vec::new();
        (&mut r)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| RegistryError::io("read blob", digest.to_string(), e))?;
        if buf.len() as u64 > limit {
            return Err(RegistryError::BodyInvalid {
                reason: format!("blob {digest} is larger than {limit} bytes"),
            });
        }
        Ok(buf.into())
    }

    /// Stores `data` under `digest` (verified).
    async fn write_small(&self, data: Bytes, digest: &Digest) -> Result<BlobStat> {
        let mut w = self.writer().await?;
        w.write(data).await?;
        w.commit(digest).await
    }
}

/// An in-progress write; dropped writers leave only a temporary file that
/// [`BlobDriver::purge_uploads`] removes.
#[async_trait]
pub trait BlobWriter: Send {
    /// Bytes written so far.
    fn size(&self) -> u64;
    /// Appends data.
    async fn write(&mut self, data: Bytes) -> Result<()>;
    /// Verifies the content against `expected`, makes it durable, then visible. On a
    /// mismatch nothing becomes visible and the temporary data is removed.
    async fn commit(self: Box<Self>, expected: &Digest) -> Result<BlobStat>;
    /// Discards the data.
    async fn cancel(self: Box<Self>) -> Result<()>;
}
