//! The runtime's one error type. Callers classify with the `is_*` methods, never by message.

use std::io;
use std::path::PathBuf;

/// Every way a runtime operation fails.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The container id is empty, too long or has characters other than `[A-Za-z0-9_.-]`.
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },

    /// A container with this id exists already.
    #[error("container {id:?} already exists")]
    AlreadyExists { id: String },

    /// No container with this id.
    #[error("container {id:?} does not exist")]
    NotFound { id: String },

    /// A field of config.json (or of a process spec) is invalid or unsupported.
    #[error("{file}: {field}: {message}")]
    InvalidSpec {
        file: String,
        field: String,
        message: String,
    },

    /// The operation does not apply to the container in its current state.
    #[error("container {id:?} is {status}: cannot {action}")]
    InvalidState {
        id: String,
        status: String,
        action: &'static str,
    },

    /// A file or directory operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    /// A system call failed.
    #[error("{op}: {source}")]
    Sys { op: String, source: io::Error },

    /// The container's init process failed while setting the container up.
    #[error("container setup failed: {step}: {source}")]
    Setup { step: String, source: io::Error },

    /// Compiling or loading a seccomp profile failed.
    #[error("seccomp: {message}")]
    Seccomp { message: String },

    /// A cgroup could not be created, configured, read or removed.
    #[error("cgroup {}: {message}", path.display())]
    Cgroup { path: PathBuf, message: String },

    /// The state directory holds something this runtime cannot read.
    #[error("state of container {id:?}: {message}")]
    CorruptState { id: String, message: String },
}

impl RuntimeError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::NotFound { .. })
    }

    pub fn is_already_exists(&self) -> bool {
        matches!(self, RuntimeError::AlreadyExists { .. })
    }

    pub fn is_invalid_spec(&self) -> bool {
        matches!(
            self,
            RuntimeError::InvalidSpec { .. } | RuntimeError::InvalidId { .. }
        )
    }

    pub fn is_invalid_state(&self) -> bool {
        matches!(self, RuntimeError::InvalidState { .. })
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        RuntimeError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(op: impl Into<String>, source: io::Error) -> Self {
        RuntimeError::Sys {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn spec(field: impl Into<String>, message: impl Into<String>) -> Self {
        RuntimeError::InvalidSpec {
            file: "config.json".into(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn cgroup(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        RuntimeError::Cgroup {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
