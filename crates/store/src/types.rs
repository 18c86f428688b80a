//! Value types shared by every backend.

use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

/// A store-wide revision. 0 means "none yet"; every write gets a revision greater than 0 (the
/// embedded backends give the first write revision 1; a fresh etcd starts at 1, so its first
/// write gets 2).
pub type Revision = i64;

/// A key with its value and revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision at which the key was last created.
    pub create_revision: Revision,
    /// Revision of the last write to the key (for a deletion event: the deletion's revision).
    pub mod_revision: Revision,
}

/// Arguments of [`crate::Store::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// Only keys starting with this prefix.
    pub prefix: String,
    /// Only keys strictly greater than this one (a continuation point); must start with
    /// `prefix` to be meaningful.
    pub start_after: Option<String>,
    /// Read as of this revision; 0 = current.
    pub revision: Revision,
    /// At most this many items; 0 = no limit.
    pub limit: usize,
}

/// Result of [`crate::Store::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListResponse {
    pub items: Vec<KeyValue>,
    /// The revision the list was read at (the store's current revision when the request had
    /// revision 0).
    pub revision: Revision,
    /// True when more keys match beyond the last returned one.
    pub more: bool,
}

/// One change delivered by [`crate::Store::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was created or updated; `kv.mod_revision` is the change's revision.
    Put(KeyValue),
    /// The key was deleted; `kv` holds the last value and `kv.mod_revision` the revision of
    /// the deletion.
    Delete(KeyValue),
    /// Every change up to and including this revision has been delivered.
    Progress(Revision),
}

impl WatchEvent {
    /// The revision this event happened at (or reports progress to).
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put(kv) | WatchEvent::Delete(kv) => kv.mod_revision,
            WatchEvent::Progress(r) => *r,
        }
    }
}

/// The stream of a watch. It ends only when the store shuts down; an `Err` item is final.
pub type WatchStream = Pin<Box<dyn Stream<Item = crate::Result<WatchEvent>> + Send>>;
