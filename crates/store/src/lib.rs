//! The `Store` seam of berth's control plane: bytes under string keys, with etcd's revision
//! semantics.
//!
//! Why this shape: the API server is the only component that touches storage, and it needs
//! exactly what Kubernetes needs from etcd — a single, monotonically increasing revision for
//! the whole keyspace, compare-and-swap on a key's last modification revision, consistent
//! lists at a past revision (for paginated lists that continue at the revision of their first
//! page), and watches that replay every change after a revision or say `Compacted` when that
//! history is gone. Object encoding, `resourceVersion`, the guaranteed-update retry loop and
//! the watch cache live in the API server; this crate knows nothing about Kubernetes objects.
//!
//! This crate depends on no other berth crate and on no backend. It carries the in-memory
//! backend ([`MemoryStore`], for tests and as the executable reference of the contract) and
//! the conformance suite ([`testsuite`]) that every backend runs from its own tests.

mod error;
mod memory;
pub mod testsuite;
mod types;

pub use error::{Error, Result};
pub use memory::MemoryStore;
pub use types::{KeyValue, ListRequest, ListResponse, Revision, WatchEvent, WatchStream};

use async_trait::async_trait;
use bytes::Bytes;

/// A revisioned key-value store with etcd semantics.
///
/// * Every successful write (create, update, delete) gets a new revision, one greater than
///   the store's previous revision; revisions are never reused, also across restarts.
/// * A key's `mod_revision` is the revision of its last write; `create_revision` the revision
///   at which it was (re)created.
/// * Writes that return `Ok` are durable: they survive a crash of the process.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of `key`, if present.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys with `prefix`, in byte order of their keys, as of `request.revision`
    /// (0 = current). Fails with [`Error::Compacted`] if that revision was compacted and with
    /// [`Error::FutureRevision`] if it is newer than the store.
    async fn list(&self, request: ListRequest) -> Result<ListResponse>;

    /// Creates `key`. Fails with [`Error::AlreadyExists`] if it is present.
    /// Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision>;

    /// Replaces `key`'s value if its `mod_revision` equals `expected`. Fails with
    /// [`Error::NotFound`] if the key is absent and [`Error::Conflict`] (carrying the current
    /// value) if it was modified since. Returns the new revision.
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision>;

    /// Deletes `key`, if `expected` is `None` or equals its `mod_revision`. Returns the
    /// revision of the deletion and the value that was deleted.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)>;

    /// Every change to keys with `prefix` made at a revision strictly greater than `after`,
    /// in revision order, then live changes as they happen. Fails (immediately, or as the
    /// stream's first item) with [`Error::Compacted`] when `after` is older than the oldest
    /// retained revision. Backends may send [`WatchEvent::Progress`] to report that nothing
    /// below a revision is pending.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// The store's current revision (the revision of its latest write).
    async fn current_revision(&self) -> Result<Revision>;

    /// Forgets history older than `revision`: afterwards lists and watches at revisions below
    /// it fail with [`Error::Compacted`]. Current values are never removed.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The oldest revision still readable (the last compaction point, or 0).
    async fn compacted_revision(&self) -> Result<Revision>;
}
