//! The one error type of the scheduler crate.

/// Errors of the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is invalid.
    #[error("invalid scheduler configuration: {field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// The scheduler cannot go on (a watch ended).
    #[error("the scheduler stopped: {reason}")]
    Stopped { reason: String },
}

impl Error {
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Config { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
