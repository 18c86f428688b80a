//! berth's Kubernetes object model: which resources exist (the resource registry: kinds,
//! plural and short names, scope, verbs, subresources, categories), how an object is
//! defaulted and validated, and label/field selectors.
//!
//! Objects are handled as `serde_json::Value` so that unknown or newer fields and custom
//! resources survive a round trip unchanged; the typed structs of `k8s-openapi` are used where
//! a kind's semantics are needed (validation, defaulting, table rows). This crate does no I/O
//! and depends on no other berth crate, so every rule here is unit-testable in isolation.

pub mod defaults;
mod field_error;
pub mod meta;
pub mod names;
pub mod printers;
mod resource;
pub mod selector;
pub mod validation;

pub use field_error::{FieldError, FieldErrorType, FieldErrors};
pub use resource::{ResourceInfo, ResourceRef, Scope, Subresource, builtin_resources};
pub use selector::{FieldSelector, LabelSelector, SelectorError};
