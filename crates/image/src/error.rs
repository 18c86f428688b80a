//! The image crate's one error type; callers classify with the `is_*` methods.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    ReferenceInvalid { reference: String, reason: String },
    #[error("invalid digest {digest:?}")]
    DigestInvalid { digest: String },
    #[error("content of {what} has digest {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("image {name} not found{}", if where_.is_empty() { String::new() } else { format!(" in {where_}") })]
    NotFound { name: String, where_: String },
    #[error("content {digest} is not in the store")]
    ContentMissing { digest: String },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    UnsafeEntry {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("registry {registry}: {status} for {url}: {message}")]
    Registry {
        registry: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("registry {registry}: authentication failed: {reason}")]
    Auth { registry: String, reason: String },
    #[error("registry {registry}: {source}")]
    Http {
        registry: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("no image for platform {platform} in {name} (available: {available})")]
    PlatformMissing {
        name: String,
        platform: String,
        available: String,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

impl ImageError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> ImageError {
        ImageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> ImageError {
        ImageError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ImageError::NotFound { .. } | ImageError::ContentMissing { .. }
        ) || matches!(self, ImageError::Registry { status: 404, .. })
    }

    /// An archive or layer was rejected as unsafe or malformed.
    pub fn is_unsafe_content(&self) -> bool {
        matches!(
            self,
            ImageError::UnsafeEntry { .. } | ImageError::DigestMismatch { .. }
        )
    }

    pub fn is_auth(&self) -> bool {
        matches!(self, ImageError::Auth { .. })
            || matches!(
                self,
                ImageError::Registry {
                    status: 401 | 403,
                    ..
                }
            )
    }

    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            ImageError::ReferenceInvalid { .. }
                | ImageError::DigestInvalid { .. }
                | ImageError::Invalid { .. }
                | ImageError::UnsafeEntry { .. }
                | ImageError::DigestMismatch { .. }
        )
    }
}
