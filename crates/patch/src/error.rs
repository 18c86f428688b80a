//! The crate's one error type.

use std::fmt;

/// A field that another manager owns with a different value than an apply wants to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// The manager as Kubernetes prints it: `"kubectl"`, or for an update
    /// `"kubectl-client-side-apply" using apps/v1`, with `with subresource "status"` when the
    /// entry belongs to a subresource.
    pub manager: String,
    /// The field path in structured-merge-diff notation, e.g. `.spec.replicas` or
    /// `.spec.template.spec.containers[name="nginx"].image`.
    pub path: String,
}

impl FieldConflict {
    /// The `message` of this conflict's `StatusCause` (`type: FieldManagerConflict`).
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager)
    }
}

impl fmt::Display for FieldConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conflict with {}: {}", self.manager, self.path)
    }
}

/// Everything that can go wrong while patching or applying.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The patch document is malformed: wrong JSON shape, a bad or unknown directive, a bad
    /// `$setElementOrder`/`$retainKeys`/`$deleteFromPrimitiveList` list. HTTP 400.
    #[error("invalid patch at {path}: {message}")]
    BadPatch { path: String, message: String },

    /// The patch is well-formed but cannot be applied to this object: a list item without
    /// its merge key, a JSON patch path that does not exist, a failed `test`. HTTP 422.
    #[error("unable to apply patch at {path}: {message}")]
    PatchFailed { path: String, message: String },

    /// A server-side apply would change fields other managers own. HTTP 409, one
    /// `FieldManagerConflict` cause per conflict.
    #[error("{message}")]
    Conflicts {
        conflicts: Vec<FieldConflict>,
        message: String,
    },

    /// The applied configuration does not fit the schema, names another apiVersion or kind,
    /// or carries `metadata.managedFields`. HTTP 400.
    #[error("invalid apply configuration at {path}: {message}")]
    BadApplyConfig { path: String, message: String },

    /// `metadata.managedFields` of the stored object cannot be decoded (corrupt stored
    /// data: HTTP 500).
    #[error("invalid metadata.managedFields: {message}")]
    BadManagedFields { message: String },

    /// A CRD's `openAPIV3Schema` cannot be turned into a schema.
    #[error("invalid schema at {path}: {message}")]
    InvalidSchema { path: String, message: String },
}

impl Error {
    /// The request itself is malformed (HTTP 400 Bad Request).
    pub fn is_bad_request(&self) -> bool {
        matches!(self, Error::BadPatch { .. } | Error::BadApplyConfig { .. })
    }

    /// The patch cannot be applied to the current object (HTTP 422 Unprocessable Entity).
    pub fn is_unprocessable(&self) -> bool {
        matches!(self, Error::PatchFailed { .. })
    }

    /// A server-side apply conflict (HTTP 409 Conflict); see [`Error::conflicts`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflicts { .. })
    }

    /// Stored data is unusable (HTTP 500 Internal Server Error).
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::BadManagedFields { .. })
    }

    /// A custom resource schema that cannot be used.
    pub fn is_invalid_schema(&self) -> bool {
        matches!(self, Error::InvalidSchema { .. })
    }

    /// The conflicts of a failed apply, empty for other errors.
    pub fn conflicts(&self) -> &[FieldConflict] {
        match self {
            Error::Conflicts { conflicts, .. } => conflicts,
            _ => &[],
        }
    }

    pub(crate) fn bad_patch(path: impl fmt::Display, message: impl Into<String>) -> Self {
        Error::BadPatch {
            path: path_or_root(path),
            message: message.into(),
        }
    }

    pub(crate) fn patch_failed(path: impl fmt::Display, message: impl Into<String>) -> Self {
        Error::PatchFailed {
            path: path_or_root(path),
            message: message.into(),
        }
    }

    pub(crate) fn bad_config(path: impl fmt::Display, message: impl Into<String>) -> Self {
        Error::BadApplyConfig {
            path: path_or_root(path),
            message: message.into(),
        }
    }

    pub(crate) fn invalid_schema(path: impl fmt::Display, message: impl Into<String>) -> Self {
        Error::InvalidSchema {
            path: path_or_root(path),
            message: message.into(),
        }
    }
}

fn path_or_root(path: impl fmt::Display) -> String {
    let path = path.to_string();
    if path.is_empty() {
        ".".to_string()
    } else {
        path
    }
}

/// Convenience alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
