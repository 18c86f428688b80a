//! The one error type of the controllers crate.

/// Errors of controllers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// A configuration value is invalid.
    #[error("invalid controller configuration: {field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// An object the controller reads is malformed (it names the object and the field).
    #[error("{object}: {field}: {reason}")]
    InvalidObject {
        object: String,
        field: String,
        reason: String,
    },
    /// An object kept changing under a read-modify-write loop; retried later.
    #[error("too many conflicting updates while {action}")]
    Contended { action: String },
    /// A controller task ended unexpectedly.
    #[error("controller {name} stopped: {reason}")]
    Stopped { name: &'static str, reason: String },
}

impl Error {
    pub fn api(action: impl Into<String>, source: kube::Error) -> Error {
        Error::Api {
            action: action.into(),
            source,
        }
    }

    pub fn invalid(
        object: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Error {
        Error::InvalidObject {
            object: object.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn status_code(&self) -> Option<u16> {
        match self {
            Error::Api {
                source: kube::Error::Api(s),
                ..
            } => Some(s.code),
            _ => None,
        }
    }

    /// The object did not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status_code() == Some(404)
    }

    /// Optimistic-concurrency conflict or object already exists (409).
    pub fn is_conflict(&self) -> bool {
        self.status_code() == Some(409)
    }

    /// The request was refused (403), e.g. creating in a terminating namespace.
    pub fn is_forbidden(&self) -> bool {
        self.status_code() == Some(403)
    }

    /// The object is malformed: retrying will not help until it changes.
    pub fn is_invalid_object(&self) -> bool {
        matches!(self, Error::InvalidObject { .. })
    }
}

/// Whether a kube error is an API status with `code`.
pub(crate) fn has_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
