//! berth's etcd backend: the [`berth_store::Store`] seam over an etcd v3 cluster, for several
//! `berth server`s sharing one datastore (`--datastore-endpoint etcd://h1:2379,h2:2379`).
//!
//! Depends on `berth-store` (the trait) and the `etcd-client` crate (tonic/prost gRPC), no
//! other berth crate. Decisions, with reasons:
//!
//! * **etcd's revisions are berth's revisions.** Keys, values, `create_revision` and
//!   `mod_revision` are etcd's own, so objects written by one server are read and watched by
//!   the others with the same `resourceVersion`s, as Kubernetes does with etcd.
//! * **Every conditional write is one transaction.** `create` compares `create_revision == 0`,
//!   `update` compares `mod_revision == expected` (and that the key exists), `delete`
//!   optionally compares `mod_revision`; the failure branch reads the key, so a refused write
//!   reports `NotFound` or `Conflict` with the current value in the same round trip.
//! * **Lists are ranges** with etcd's own `limit`/`more` and `revision`; a continuation starts
//!   at `start_after + "\0"`.
//! * **Watches are etcd watches** from `after + 1` with `prev_kv`, so `Delete` events carry the
//!   last value. etcd allows a watch from exactly one revision below its compaction point; a
//!   read at `after` first makes the `Compacted` boundary the same as the other backends'.
//! * **etcd's two revision errors are recognised by their message** ("required revision has
//!   been compacted", "... is a future revision"): both arrive as gRPC `OutOfRange`, and the
//!   message is etcd's stable API for telling them apart. Compaction itself is left to the
//!   caller (`compact`), as the Kubernetes API server does with etcd.

mod config;
mod error;
mod store;
mod watch;

pub use config::EtcdConfig;
pub use error::Error;
pub use store::EtcdStore;
