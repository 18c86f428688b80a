//! The store's error type. Callers classify errors with the `is_*` methods.

use crate::types::{KeyValue, Revision};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key {key:?} not found")]
    NotFound { key: String },
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },
    /// The compare-and-swap failed; `current` is the key's value now (None if it was deleted).
    #[error("key {key:?} was modified (expected revision {expected})")]
    Conflict {
        key: String,
        expected: Revision,
        current: Option<Box<KeyValue>>,
    },
    #[error("revision {requested} has been compacted (oldest retained: {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("revision {requested} is newer than the store's current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("the store is closed")]
    Closed,
    #[error("storage backend failed during {operation}: {message}")]
    Backend {
        operation: &'static str,
        message: String,
    },
}

impl Error {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. })
    }
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
    pub fn is_compacted(&self) -> bool {
        matches!(self, Error::Compacted { .. })
    }
    pub fn backend(operation: &'static str, err: impl std::fmt::Display) -> Self {
        Error::Backend {
            operation,
            message: err.to_string(),
        }
    }
}
