//! Errors of connecting to etcd, and the translation of etcd's errors into the store's.

use berth_store::Revision;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid datastore endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("cannot reach etcd at {endpoints}: {message}")]
    Connect { endpoints: String, message: String },
}

impl Error {
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect { .. })
    }
}

/// What an etcd error means for the store.
pub(crate) enum EtcdFailure {
    /// The requested revision was compacted.
    Compacted,
    /// The requested revision is newer than etcd's.
    FutureRevision,
    /// Anything else (transport, timeout, server error).
    Other(berth_store::Error),
}

/// Classifies an etcd error. etcd reports both revision errors as gRPC `OutOfRange`; its
/// messages (`mvcc: required revision has been compacted`, `... is a future revision`) are
/// the stable way to tell them apart.
pub(crate) fn classify(operation: &'static str, err: etcd_client::Error) -> EtcdFailure {
    if let etcd_client::Error::GRpcStatus(status) = &err {
        let message = status.message();
        if message.contains("required revision has been compacted") {
            return EtcdFailure::Compacted;
        }
        if message.contains("required revision is a future revision") {
            return EtcdFailure::FutureRevision;
        }
    }
    EtcdFailure::Other(berth_store::Error::backend(operation, err))
}

/// An error of an operation that cannot hit a revision error.
pub(crate) fn backend(
    operation: &'static str,
) -> impl FnOnce(etcd_client::Error) -> berth_store::Error {
    move |e| berth_store::Error::backend(operation, e)
}

/// A response without a header (etcd always sends one).
pub(crate) fn no_header(operation: &'static str) -> berth_store::Error {
    berth_store::Error::backend(operation, "etcd response without a header")
}

pub(crate) fn header_revision(
    operation: &'static str,
    header: Option<&etcd_client::ResponseHeader>,
) -> Result<Revision, berth_store::Error> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| no_header(operation))
}
