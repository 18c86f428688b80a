//! The seam's error type; callers classify with `is_*()`.

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {id:?} already exists")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("invalid {field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("pulling image {image:?}: {message}")]
    ImagePull { image: String, message: String },
    #[error("runtime unavailable: {message}")]
    Unavailable { message: String },
    #[error("{message}")]
    Internal { message: String },
}

impl CriError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, CriError::NotFound { .. })
    }

    pub fn is_already_exists(&self) -> bool {
        matches!(self, CriError::AlreadyExists { .. })
    }

    pub fn is_invalid_argument(&self) -> bool {
        matches!(self, CriError::InvalidArgument { .. })
    }

    pub fn is_image_pull(&self) -> bool {
        matches!(self, CriError::ImagePull { .. })
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, CriError::Unavailable { .. })
    }

    pub fn internal(message: impl std::fmt::Display) -> CriError {
        CriError::Internal {
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = CriError> = std::result::Result<T, E>;
