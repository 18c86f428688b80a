//! Decoding of Kubernetes protobuf request bodies into JSON.
//!
//! kubectl 1.32 sends `Content-Type: application/vnd.kubernetes.protobuf` for the writes of
//! its typed clients (`create deployment|job|secret|…`, `autoscale`, `create token`) and has
//! no JSON fallback. berth stores objects as JSON, so the API server turns such a body — the
//! magic `k8s\0` followed by a `runtime.Unknown` envelope whose `raw` is the object — into the
//! exact JSON object Kubernetes would produce for it: [`decode`], or [`decode_as`] for bare
//! message bytes.
//!
//! Dependencies: `serde_json` (the output), `base64` (`bytes` fields), `jiff` (calendar
//! arithmetic for times), `thiserror`. No other berth crate, no I/O.
//!
//! Design:
//! - **A static table, generated.** `src/generated.rs` lists, per protobuf message, each
//!   field's number, JSON name, value type and Go presence flags, and the decodable kinds.
//!   It is generated (`cargo run -p berth-protobuf --example regenerate`, code in `gen/`)
//!   from k8s-pb 0.9.0 (field numbers and types), k8s-openapi 0.29 `v1_33` (JSON names and
//!   types, through schemars) and `gen/go-presence.tsv` (pointer/omitempty/inline facts and
//!   field order extracted from the Go types), cross-checked against each other; a test
//!   regenerates it and fails when the committed file differs. No schema is built per
//!   request and no reflection runs: decoding is one pass over the bytes per message.
//! - **Go's JSON rules, not protobuf's.** Which fields appear is decided as Go's encoder
//!   decides after Go's decoder ran: pointers are written when set (`replicas: 0` stays),
//!   `omitempty` scalars are dropped when zero (`hostPort: 0` goes), struct fields are always
//!   written (`resources: {}`, `creationTimestamp: null`), fields without `omitempty` are
//!   written even when absent (as zero or `null`). Keys come in Go declaration order, map
//!   keys sorted. Types with their own Go JSON encoding (Time, MicroTime, Duration, Quantity,
//!   IntOrString, RawExtension/FieldsV1/JSON, the CRD schema unions, named slices) have
//!   their own codecs.
//! - **Hostile input is bounded.** Every length is checked before use, nesting is limited to
//!   `100` messages, and output is limited to a multiple of the body size, so arbitrary
//!   bytes produce an [`Error`] naming the field, never a panic or unbounded allocation.
//! - Unknown fields are skipped, as Go skips them. Quantities are validated but not
//!   canonicalised (Go's encoder sends canonical strings, so kubectl bodies are unaffected).

mod codec;
mod decode;
mod envelope;
mod error;
#[rustfmt::skip]
mod generated;
mod schema;
mod wire;

pub use envelope::{decode, decode_as, supports};
pub use error::{Error, Problem};

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";
