//! berth's Kubernetes API server: the only component that touches the store. It serves
//! discovery, OpenAPI, CRUD with Kubernetes semantics (defaulting, validation, admission,
//! optimistic concurrency, finalizers), patches of every kind, watches, Tables for
//! `kubectl get`, and authenticates clients by certificate or token.
//!
//! Shape and reasons:
//! - One handler decomposes every path into a resource request (`request`) and dispatches by
//!   verb; the resource registry (`resources`, built-ins plus CRDs) decides what exists.
//! - Reads of collections and all watches are served from the watch cache (`cache`), fed by
//!   a single store watch; each change is decoded once and its watch event encoded once and
//!   shared by all watchers (DESIGN §10). Point reads and all writes go to the store; writes
//!   use compare-and-swap with a guaranteed-update retry loop (`write`).
//! - Objects are JSON values so unknown and custom fields survive; the `api` crate holds the
//!   per-kind rules (defaults, validation, printers).
//! - Errors become `metav1.Status` in exactly one place (`error`).
//! - Depends on `api` and the `store` trait only, never on a store backend (DESIGN §3).

mod admission;
mod auth;
mod bootstrap;
mod cache;
mod codec;
mod config;
mod crd;
mod delete;
mod discovery;
mod error;
mod handler;
mod input;
mod join;
mod kubelet;
mod kubelet_metrics;
mod lifecycle;
mod managed;
pub mod metrics;
mod negotiate;
mod nonresource;
mod openapi;
mod patch;
pub mod pki;
mod protobuf;
mod proxy;
mod query;
mod read;
mod request;
mod resources;
mod satokens;
mod schema;
mod server;
mod state;
mod subresource;
mod table;
mod tokenrequest;
mod versions;
mod watch;
mod write;

pub use auth::{Authenticator, Identity};
pub use bootstrap::bootstrap;
pub use config::{ApiConfig, DEFAULT_TOLERATION_SECONDS};
pub use error::ApiError;
pub use join::{JoinRequest, JoinResponse, NodeJoin};
pub use kubelet::KubeletClient;
pub use kubelet_metrics::KubeletMetrics;
pub use server::{ApiServer, ServerError, tls_config};
