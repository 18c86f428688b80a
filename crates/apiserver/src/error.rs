//! The API server's error type and its conversion to a Kubernetes `Status` response — the
//! only place where errors become HTTP responses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::FieldErrors;
use serde_json::{Value, json};

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// What can go wrong serving a request, in the vocabulary of `metav1.StatusReason`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{qualified_resource} \"{name}\" not found")]
    NotFound {
        /// `deployments.apps`, `pods`.
        qualified_resource: String,
        group: String,
        kind_plural: String,
        name: String,
    },
    #[error("{qualified_resource} \"{name}\" already exists")]
    AlreadyExists {
        qualified_resource: String,
        group: String,
        kind_plural: String,
        name: String,
    },
    #[error("{message}")]
    Conflict {
        qualified_resource: String,
        group: String,
        kind_plural: String,
        name: String,
        message: String,
    },
    #[error("{}", errors.summary(qualified_kind, name))]
    Invalid {
        /// `Deployment.apps`, `Pod`.
        qualified_kind: String,
        group: String,
        kind: String,
        name: String,
        errors: FieldErrors,
    },
    #[error("{message}")]
    BadRequest { message: String },
    /// A well-formed request that cannot be applied (a patch that does not fit the object).
    #[error("{message}")]
    Unprocessable { message: String },
    /// A server-side apply that would change fields other managers own.
    #[error("{message}")]
    ApplyConflict {
        message: String,
        /// (message, field) per conflicting field.
        causes: Vec<(String, String)>,
    },
    #[error("{message}")]
    Forbidden { message: String },
    #[error("Unauthorized")]
    Unauthorized,
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("the server could not find the requested resource")]
    NotFoundPath,
    #[error("{message}")]
    Gone { message: String },
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {accepted}"
    )]
    UnsupportedMediaType { accepted: String },
    #[error("only the following media types are accepted: {accepted}")]
    NotAcceptable { accepted: String },
    #[error("the request is too large: {message}")]
    TooLarge { message: String },
    #[error("{message}")]
    Timeout { message: String },
    #[error("{message}")]
    ServiceUnavailable { message: String },
    #[error("Internal error occurred: {message}")]
    Internal { message: String },
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
        }
    }
    pub fn internal(message: impl std::fmt::Display) -> Self {
        ApiError::Internal {
            message: message.to_string(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            message: message.into(),
        }
    }
    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::Gone {
            message: message.into(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::NotFound { .. })
    }
    pub fn is_conflict(&self) -> bool {
        matches!(self, ApiError::Conflict { .. })
    }
    pub fn is_already_exists(&self) -> bool {
        matches!(self, ApiError::AlreadyExists { .. })
    }

    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } | ApiError::NotFoundPath => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } | ApiError::Unprocessable { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::ApplyConflict { .. } => StatusCode::CONFLICT,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable { .. } => StatusCode::NOT_ACCEPTABLE,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::ServiceUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NotFoundPath => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } | ApiError::Unprocessable { .. } => "Invalid",
            ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::BadRequest { .. } => "BadRequest",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::Gone { .. } => "Expired",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::NotAcceptable { .. } => "NotAcceptable",
            ApiError::TooLarge { .. } => "RequestEntityTooLarge",
            ApiError::Timeout { .. } => "Timeout",
            ApiError::ServiceUnavailable { .. } => "ServiceUnavailable",
            ApiError::Internal { .. } => "InternalError",
        }
    }

    /// The `metav1.Status` object for this error.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        let details = match self {
            ApiError::NotFound {
                group,
                kind_plural,
                name,
                ..
            }
            | ApiError::AlreadyExists {
                group,
                kind_plural,
                name,
                ..
            }
            | ApiError::Conflict {
                group,
                kind_plural,
                name,
                ..
            } => Some(json!({"name": name, "group": group, "kind": kind_plural})),
            ApiError::Invalid {
                group,
                kind,
                name,
                errors,
                ..
            } => {
                let causes: Vec<Value> = errors
                    .0
                    .iter()
                    .map(|e| {
                        json!({"reason": e.kind.reason(), "message": e.cause_message(), "field": e.field})
                    })
                    .collect();
                Some(json!({"name": name, "group": group, "kind": kind, "causes": causes}))
            }
            ApiError::ApplyConflict { causes, .. } => Some(
                json!({"causes": causes.iter().map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": m, "field": f})).collect::<Vec<_>>()}),
            ),
            ApiError::Internal { message } => Some(json!({"causes": [{"message": message}]})),
            _ => None,
        };
        if let Some(mut d) = details {
            if let Some(obj) = d.as_object_mut() {
                obj.retain(|k, v| !(k == "group" && v.as_str() == Some("")));
            }
            status["details"] = d;
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        let mut resp = (code, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if code == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"berth\""),
            );
        }
        resp
    }
}

impl From<berth_patch::Error> for ApiError {
    fn from(e: berth_patch::Error) -> Self {
        if e.is_conflict() {
            ApiError::ApplyConflict {
                causes: e
                    .conflicts()
                    .iter()
                    .map(|c| (c.cause_message(), c.path.clone()))
                    .collect(),
                message: e.to_string(),
            }
        } else if e.is_unprocessable() {
            ApiError::Unprocessable {
                message: e.to_string(),
            }
        } else if e.is_bad_request() {
            ApiError::bad_request(e.to_string())
        } else {
            ApiError::internal(e)
        }
    }
}

impl From<berth_store::Error> for ApiError {
    fn from(e: berth_store::Error) -> Self {
        match e {
            berth_store::Error::Compacted { .. } => {
                ApiError::gone("The resourceVersion for the provided list is too old.".to_string())
            }
            berth_store::Error::Closed => ApiError::ServiceUnavailable {
                message: "the storage backend is shutting down".into(),
            },
            other => ApiError::internal(other),
        }
    }
}
