//! The crate's one error type; callers classify with `is_*()`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A configuration value is unusable.
    #[error("invalid configuration {field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// The node's network cannot serve yet (no podCIDR, bridge missing).
    #[error("pod network not ready: {reason}")]
    NotReady { reason: String },
    /// Every address of a range is taken.
    #[error("no free address left in {cidr}")]
    Exhausted { cidr: String },
    /// A netlink request failed.
    #[error("netlink: {op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
    /// A file or namespace operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `nft` refused or failed to apply a ruleset.
    #[error("nftables: {op}: {message}")]
    Nft { op: &'static str, message: String },
    /// An API object cannot be used as it is (names the object and field).
    #[error("{object}: {field}: {reason}")]
    Invalid {
        object: String,
        field: String,
        reason: String,
    },
    /// A call to the API server failed.
    #[error("{op}: {source}")]
    Api {
        op: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// TLS material is unusable.
    #[error("TLS {what}: {reason}")]
    Tls { what: String, reason: String },
    /// Anything else that went wrong inside the crate.
    #[error("{0}")]
    Internal(String),
}

impl NetError {
    pub fn is_not_ready(&self) -> bool {
        matches!(self, NetError::NotReady { .. })
    }

    pub fn is_exhausted(&self) -> bool {
        matches!(self, NetError::Exhausted { .. })
    }

    pub fn is_invalid(&self) -> bool {
        matches!(self, NetError::Invalid { .. } | NetError::Config { .. })
    }

    /// The kernel said the object does not exist (ENODEV, ESRCH, ENOENT).
    pub fn is_not_found(&self) -> bool {
        match self {
            NetError::Netlink { source, .. } => netlink_errno(source)
                .is_some_and(|e| e == libc::ENODEV || e == libc::ESRCH || e == libc::ENOENT),
            NetError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// The kernel said the object exists already (EEXIST).
    pub fn is_already_exists(&self) -> bool {
        match self {
            NetError::Netlink { source, .. } => netlink_errno(source) == Some(libc::EEXIST),
            NetError::Io { source, .. } => source.kind() == std::io::ErrorKind::AlreadyExists,
            _ => false,
        }
    }

    pub(crate) fn netlink(op: impl Into<String>, source: rtnetlink::Error) -> NetError {
        NetError::Netlink {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NetError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn api(op: impl Into<String>, source: kube::Error) -> NetError {
        NetError::Api {
            op: op.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn invalid(
        object: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> NetError {
        NetError::Invalid {
            object: object.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The errno of a netlink error reply, if that is what it is.
pub(crate) fn netlink_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

impl From<NetError> for berth_cri::CriError {
    fn from(e: NetError) -> Self {
        if e.is_not_ready() {
            berth_cri::CriError::Unavailable {
                message: e.to_string(),
            }
        } else if e.is_invalid() {
            berth_cri::CriError::InvalidArgument {
                field: "network".into(),
                message: e.to_string(),
            }
        } else {
            berth_cri::CriError::Internal {
                message: e.to_string(),
            }
        }
    }
}

pub type Result<T, E = NetError> = std::result::Result<T, E>;
