//! Errors of opening the embedded store. Errors of store operations are
//! [`berth_store::Error`]s.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid store configuration: {field} {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("cannot open the store database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("the store database {path} is in use by another process (lock file {lock})")]
    Locked { path: PathBuf, lock: PathBuf },
    #[error(
        "the store database {path} has schema version {found}; this berth understands versions up to {supported}"
    )]
    SchemaVersion {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
}

impl Error {
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::Locked { .. })
    }

    pub(crate) fn open(path: &std::path::Path, err: impl std::fmt::Display) -> Self {
        Error::Open {
            path: path.to_path_buf(),
            message: err.to_string(),
        }
    }
}
