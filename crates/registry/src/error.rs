//! The registry's one error type. HTTP handlers turn it into OCI error JSON in exactly one
//! place (`http::api_error`); callers classify errors with the `is_*` methods.

use std::path::PathBuf;

/// Everything that can go wrong in the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid digest {digest:?}: {reason}")]
    DigestInvalid { digest: String, reason: String },
    #[error("digest mismatch: expected {expected}, content has {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("blob {digest} is unknown to this registry")]
    BlobUnknown { digest: String },
    #[error("upload session {id} is unknown or has expired")]
    UploadUnknown { id: String },
    #[error("upload {id}: range {range} does not start at the current offset {offset}")]
    RangeInvalid {
        id: String,
        range: String,
        offset: u64,
    },
    #[error("upload {id}: {reason}")]
    UploadInvalid { id: String, reason: String },
    #[error("invalid repository name {name:?}: {reason}")]
    NameInvalid { name: String, reason: String },
    #[error("repository {name} is unknown")]
    NameUnknown { name: String },
    #[error("invalid tag {tag:?}: {reason}")]
    TagInvalid { tag: String, reason: String },
    #[error("manifest {reference} is unknown in {name}")]
    ManifestUnknown { name: String, reference: String },
    #[error("manifest invalid: {reason}")]
    ManifestInvalid { reason: String },
    #[error("manifest is {size} bytes, more than the limit of {limit}")]
    ManifestTooLarge { size: u64, limit: u64 },
    #[error("manifest references blobs unknown to {name}: {}", missing.join(", "))]
    ManifestBlobUnknown { name: String, missing: Vec<String> },
    #[error("invalid pagination parameter {param}: {reason}")]
    PaginationInvalid { param: String, reason: String },
    #[error("request body: {reason}")]
    BodyInvalid { reason: String },
    #[error("{operation} is not supported by this registry")]
    Unsupported { operation: String },
    #[error("authentication required")]
    Unauthorized {
        challenge: String,
        scope: Option<String>,
    },
    #[error("access denied to {scope}")]
    Denied { scope: String, challenge: String },
    #[error("configuration {field}: {reason}")]
    Config { field: String, reason: String },
    #[error("encrypted blob {path}: {reason}")]
    Crypto { path: PathBuf, reason: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("storage at {path} is locked by another process: {reason}")]
    Locked { path: PathBuf, reason: String },
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl RegistryError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RegistryError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The requested thing (blob, manifest, repository, upload) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            RegistryError::BlobUnknown { .. }
                | RegistryError::UploadUnknown { .. }
                | RegistryError::NameUnknown { .. }
                | RegistryError::ManifestUnknown { .. }
        )
    }

    /// The client sent something malformed or inconsistent.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            RegistryError::DigestInvalid { .. }
                | RegistryError::DigestMismatch { .. }
                | RegistryError::RangeInvalid { .. }
                | RegistryError::UploadInvalid { .. }
                | RegistryError::NameInvalid { .. }
                | RegistryError::TagInvalid { .. }
                | RegistryError::ManifestInvalid { .. }
                | RegistryError::ManifestTooLarge { .. }
                | RegistryError::ManifestBlobUnknown { .. }
                | RegistryError::PaginationInvalid { .. }
                | RegistryError::BodyInvalid { .. }
        )
    }

    /// The caller lacks credentials or permission.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            RegistryError::Unauthorized { .. } | RegistryError::Denied { .. }
        )
    }

    /// The digest given by the client does not match the content.
    pub fn is_digest_mismatch(&self) -> bool {
        matches!(self, RegistryError::DigestMismatch { .. })
    }

    /// A storage or system failure (not the client's fault).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            RegistryError::Io { .. } | RegistryError::Crypto { .. } | RegistryError::Locked { .. }
        )
    }
}
