//! berth's embedded store (the default backend): a revision log in SQLite implementing the
//! [`berth_store::Store`] seam, in the manner of kine.
//!
//! Depends on `berth-store` (the trait) and on rusqlite with SQLite compiled in (`bundled`),
//! nothing else of berth. Decisions, with reasons (ADR "embedded store: SQLite"):
//!
//! * **One table is the revision log.** Every write appends a row whose `INTEGER PRIMARY KEY
//!   AUTOINCREMENT` id is the store-wide revision; a key's current value is its newest row.
//!   Reads at a past revision are plain SQL (`id <= R`), watches replay rows by id, and
//!   compaction is a `DELETE` of superseded rows. The file stays inspectable with `sqlite3`.
//! * **One writer thread, group commit.** All writes queue to a single thread that owns the
//!   only write connection; it takes every write waiting in the queue, applies them in one
//!   transaction (each compare-and-swap checked on its own: a conflict fails only that write),
//!   commits with one fsync, publishes the watch events and only then acknowledges. Under
//!   load the fsync cost is shared by the whole batch.
//! * **Durable acknowledgements.** WAL journal with `synchronous=FULL`: the WAL is fsynced at
//!   every commit, so an acknowledged write survives `kill -9` and power loss (as far as the
//!   disk honours flushes).
//! * **Readers never wait for the writer.** Reads run on separate connections (WAL snapshot
//!   isolation) on tokio's blocking pool; each read is one SQLite read transaction, so a list
//!   and the revision it reports always agree.
//! * **Watches: history from the database, then live events in-process.** A watcher
//!   subscribes to the in-process broadcast of committed events first, then replays rows from
//!   the database up to the revision published at subscription time, then switches to the
//!   live events. A watcher that falls behind the broadcast buffer goes back to the database
//!   from where it was, so slow watchers cost memory only up to the buffer.
//! * **Compaction in the background, in small steps.** A policy (default: keep 5 minutes of
//!   history, at least 1,000 and at most 100,000 revisions) moves the compaction point; the
//!   writer thread then deletes superseded rows a few hundred revisions at a time between
//!   write batches, so it never stalls writes for long. Current values are never deleted.
//! * **One process.** A lock file next to the database keeps a second process from opening
//!   it, since live watch events are published in-process.

mod config;
mod error;
mod read;
mod schema;
mod store;
mod watch;
mod writer;

pub use config::{CompactionConfig, SqliteConfig};
pub use error::Error;
pub use store::{SqliteStats, SqliteStore};
