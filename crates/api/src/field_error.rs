//! Validation errors in Kubernetes' vocabulary: each names the field path, the kind of
//! problem (the `reason` of a Status cause) and a detail, and renders the message kubectl
//! prints.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorType {
    Required,
    Invalid,
    NotSupported,
    Duplicate,
    TooLong,
    TooMany,
    Forbidden,
    NotFound,
}

impl FieldErrorType {
    /// The `reason` of a `StatusCause`.
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorType::Required => "FieldValueRequired",
            FieldErrorType::Invalid => "FieldValueInvalid",
            FieldErrorType::NotSupported => "FieldValueNotSupported",
            FieldErrorType::Duplicate => "FieldValueDuplicate",
            FieldErrorType::TooLong => "FieldValueTooLong",
            FieldErrorType::TooMany => "FieldValueTooMany",
            FieldErrorType::Forbidden => "FieldValueForbidden",
            FieldErrorType::NotFound => "FieldValueNotFound",
        }
    }

    fn text(self) -> &'static str {
        match self {
            FieldErrorType::Required => "Required value",
            FieldErrorType::Invalid => "Invalid value",
            FieldErrorType::NotSupported => "Unsupported value",
            FieldErrorType::Duplicate => "Duplicate value",
            FieldErrorType::TooLong => "Too long",
            FieldErrorType::TooMany => "Too many",
            FieldErrorType::Forbidden => "Forbidden",
            FieldErrorType::NotFound => "Not found",
        }
    }
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub kind: FieldErrorType,
    /// Path in Kubernetes' notation: `spec.template.spec.containers[0].image`.
    pub field: String,
    /// The offending value, rendered, when it helps (`Invalid`, `NotSupported`, ...).
    pub value: Option<String>,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorType::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }
    pub fn invalid(
        field: impl Into<String>,
        value: impl fmt::Display,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: FieldErrorType::Invalid,
            field: field.into(),
            value: Some(format!("\"{value}\"")),
            detail: detail.into(),
        }
    }
    pub fn not_supported(
        field: impl Into<String>,
        value: impl fmt::Display,
        allowed: &[&str],
    ) -> Self {
        let allowed: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        Self {
            kind: FieldErrorType::NotSupported,
            field: field.into(),
            value: Some(format!("\"{value}\"")),
            detail: format!("supported values: {}", allowed.join(", ")),
        }
    }
    pub fn duplicate(field: impl Into<String>, value: impl fmt::Display) -> Self {
        Self {
            kind: FieldErrorType::Duplicate,
            field: field.into(),
            value: Some(format!("\"{value}\"")),
            detail: String::new(),
        }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorType::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self {
            kind: FieldErrorType::TooLong,
            field: field.into(),
            value: None,
            detail: format!("may not be more than {max} bytes"),
        }
    }

    /// The cause message (without the field), as in a Status cause.
    pub fn cause_message(&self) -> String {
        match (&self.value, self.detail.is_empty()) {
            (Some(v), false) => format!("{}: {}: {}", self.kind.text(), v, self.detail),
            (Some(v), true) => format!("{}: {}", self.kind.text(), v),
            (None, false) => format!("{}: {}", self.kind.text(), self.detail),
            (None, true) => self.kind.text().to_string(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.cause_message())
    }
}

/// A list of field errors with the path helpers validators use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn extend(&mut self, other: FieldErrors) {
        self.0.extend(other.0);
    }
    /// The summary message of an Invalid status: `<Kind>[.group] "<name>" is invalid: <errs>`.
    pub fn summary(&self, qualified_kind: &str, name: &str) -> String {
        let errs: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        let joined = if errs.len() == 1 {
            errs[0].clone()
        } else {
            format!("[{}]", errs.join(", "))
        };
        format!("{qualified_kind} \"{name}\" is invalid: {joined}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_kubernetes_shape() {
        let e = FieldError::invalid("metadata.name", "Foo", "must be lowercase");
        assert_eq!(
            e.to_string(),
            "metadata.name: Invalid value: \"Foo\": must be lowercase"
        );
        let r = FieldError::required("spec.containers[0].image", "");
        assert_eq!(r.to_string(), "spec.containers[0].image: Required value");
        let mut all = FieldErrors::default();
        all.push(r);
        assert_eq!(
            all.summary("Pod", "p"),
            "Pod \"p\" is invalid: spec.containers[0].image: Required value"
        );
        let ns = FieldError::not_supported("spec.type", "Foo", &["ClusterIP", "NodePort"]);
        assert_eq!(
            ns.to_string(),
            "spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"NodePort\""
        );
    }
}
