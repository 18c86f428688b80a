//! The one error type of the testing crate.

/// Errors of test support components.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A component of the test cluster could not start.
    #[error("cannot start the {component}: {reason}")]
    Start {
        component: &'static str,
        reason: String,
    },
    /// A request to the API server failed.
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {field}: {reason}")]
    Config { field: &'static str, reason: String },
}

impl Error {
    pub fn api(action: impl Into<String>, source: kube::Error) -> Error {
        Error::Api {
            action: action.into(),
            source,
        }
    }

    pub fn is_start(&self) -> bool {
        matches!(self, Error::Start { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
