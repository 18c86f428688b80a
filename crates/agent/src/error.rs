//! The agent's error type; callers classify with `is_*()`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid agent configuration: {field}: {message}")]
    Config { field: String, message: String },
    #[error("invalid join token: {message}")]
    Token { message: String },
    #[error("joining the cluster at {server}: {message}")]
    Join {
        server: String,
        message: String,
        /// Trying again may succeed (the server is not reachable or not ready yet).
        retryable: bool,
    },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("API request {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("container runtime: {0}")]
    Runtime(#[from] berth_cri::CriError),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("TLS: {message}")]
    Tls { message: String },
    #[error("{message}")]
    Internal { message: String },
}

impl AgentError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AgentError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub fn api(what: impl Into<String>, source: kube::Error) -> Self {
        AgentError::Api {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AgentError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        AgentError::Internal {
            message: message.to_string(),
        }
    }

    /// An API error with this HTTP status code.
    pub fn api_code(&self) -> Option<u16> {
        match self {
            AgentError::Api { source, .. } => match source.as_ref() {
                kube::Error::Api(s) => Some(s.code),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.api_code() == Some(404) || matches!(self, AgentError::Runtime(e) if e.is_not_found())
    }

    pub fn is_conflict(&self) -> bool {
        self.api_code() == Some(409)
    }

    /// A failed join that may succeed later (as opposed to a refused token or CA).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AgentError::Join {
                retryable: true,
                ..
            }
        )
    }

    pub fn is_invalid(&self) -> bool {
        matches!(self, AgentError::Invalid { .. })
    }
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;
