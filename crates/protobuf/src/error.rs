//! The crate's one error type.

use std::fmt;

/// What was wrong with the protobuf bytes at the place an [`Error::Malformed`] names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A varint ran past the end of its message.
    TruncatedVarint,
    /// A varint longer than 10 bytes.
    VarintOverflow,
    /// A length-delimited or fixed-size value ran past the end of its message.
    Truncated { needed: u64, available: usize },
    /// The field number is 0 or above 2^29 - 1.
    IllegalFieldNumber { number: u64 },
    /// A known field arrived with a different wire type than its declaration.
    WrongWireType { expected: u8, found: u8 },
    /// Wire type 6 or 7, or an end-group marker without a start.
    InvalidWireType { wire_type: u8 },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TruncatedVarint => write!(f, "truncated varint"),
            Problem::VarintOverflow => write!(f, "varint longer than 10 bytes"),
            Problem::Truncated { needed, available } => {
                write!(
                    f,
                    "truncated value ({needed} bytes declared, {available} left)"
                )
            }
            Problem::IllegalFieldNumber { number } => write!(f, "illegal field number {number}"),
            Problem::WrongWireType { expected, found } => {
                write!(f, "wrong wire type {found} (expected {expected})")
            }
            Problem::InvalidWireType { wire_type } => write!(f, "invalid wire type {wire_type}"),
        }
    }
}

/// Why a body could not be decoded. Field errors name the message type of the decoded
/// object (`message`) and the JSON path inside it (`path`, e.g.
/// `spec.template.spec.containers[2].ports`); they display joined:
/// `io.k8s.api.apps.v1.Deployment.spec.template.spec.containers[2].ports`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("body does not start with the Kubernetes protobuf magic bytes \"k8s\\0\"")]
    MissingMagic,
    #[error("unknown kind {api_version} {kind}")]
    UnknownKind { api_version: String, kind: String },
    #[error("the protobuf envelope has no apiVersion/kind")]
    MissingTypeMeta,
    #[error("unsupported content encoding {encoding:?} in the protobuf envelope")]
    UnsupportedEncoding { encoding: String },
    #[error("unsupported content type {content_type:?} in the protobuf envelope")]
    UnsupportedContentType { content_type: String },
    #[error("{problem} in field {}", dotted(.message, .path))]
    Malformed {
        message: String,
        path: String,
        problem: Problem,
    },
    #[error("invalid value in field {}: {reason}", dotted(.message, .path))]
    InvalidValue {
        message: String,
        path: String,
        reason: String,
    },
    #[error("field {} nests more than {limit} messages deep", dotted(.message, .path))]
    TooDeep {
        message: String,
        path: String,
        limit: usize,
    },
    #[error("body of {body_len} bytes expands to more than {limit} JSON values")]
    TooLarge { body_len: usize, limit: usize },
}

fn dotted(message: &str, path: &str) -> String {
    match path {
        "" => message.to_string(),
        p if p.starts_with('[') => format!("{message}{p}"),
        p => format!("{message}.{p}"),
    }
}

impl Error {
    /// The body is not valid Kubernetes protobuf (bad envelope, bytes or values).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            Error::MissingMagic
                | Error::MissingTypeMeta
                | Error::Malformed { .. }
                | Error::InvalidValue { .. }
                | Error::TooDeep { .. }
                | Error::TooLarge { .. }
        )
    }

    /// The envelope names a kind this crate has no table for.
    pub fn is_unknown_kind(&self) -> bool {
        matches!(self, Error::UnknownKind { .. })
    }

    /// The envelope asks for an encoding or content type this crate does not decode.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            Error::UnsupportedEncoding { .. } | Error::UnsupportedContentType { .. }
        )
    }

    /// The JSON path of the failing field inside the object (`spec.replicas`), for errors
    /// that concern a field.
    pub fn field_path(&self) -> Option<&str> {
        match self {
            Error::Malformed { path, .. }
            | Error::InvalidValue { path, .. }
            | Error::TooDeep { path, .. } => Some(path),
            _ => None,
        }
    }
}
