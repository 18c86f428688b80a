//! Kubernetes patch semantics for berth's API server: the schemas patching needs, strategic
//! merge patch, JSON merge patch, JSON patch, and server-side apply with `managedFields`.
//!
//! This is a pure library: no I/O, no async, no clock (timestamps come from the caller). It
//! depends on no other berth crate; k8s-openapi provides the types' schemas (through its
//! `schemars` implementations) and `json-patch` the RFC 6902/7386 mechanics.
//!
//! # Schemas
//!
//! * [`builtin`]`(group, version, kind)` → [`SchemaRef`] for every built-in kind berth serves
//!   (core/v1, apps/v1, batch/v1, autoscaling v1/v2/v2beta2, coordination, discovery,
//!   networking, rbac, policy, apiextensions; meta types).
//! * [`component_schemas`] → every OpenAPI v3 component schema (descriptions included, with
//!   `x-kubernetes-patch-strategy`, `-patch-merge-key`, `-list-type`, `-list-map-keys`,
//!   `-map-type`, `-group-version-kind`), for the `/openapi/v3` documents and `kubectl
//!   explain`.
//! * [`from_crd_openapi`] → the schema of a custom resource from its CRD's
//!   `openAPIV3Schema`.
//!
//! Decisions: the component schemas are generated from k8s-openapi's `schemars` output rather
//! than vendored upstream spec files, and enriched with an overlay table (`overlay_table.rs`)
//! of the list/map strategies Kubernetes declares in its Go types — the one place that knows
//! them. Everything is built once per process (`LazyLock`) into one node arena in which a
//! field lookup is one hash lookup; a [`SchemaRef`] is an `Arc` plus an index.

// The patch and apply engines that read the compiled schema land in the next steps.
#![allow(dead_code)]

mod compile;
mod error;
mod generate;
mod jsonpatch;
mod mergepatch;
mod overlay;
mod overlay_table;
mod schema;
mod smp;

pub use error::{Error, FieldConflict, Result};
pub use jsonpatch::{MAX_JSON_PATCH_OPERATIONS, json_patch, json_patch_owned};
pub use mergepatch::{merge_patch, merge_patch_owned};
pub use schema::{SchemaRef, builtin, component_schemas, from_crd_openapi};
pub use smp::{strategic_merge, strategic_merge_owned};
