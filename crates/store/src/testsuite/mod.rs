//! The conformance suite every [`crate::Store`] backend runs from its own tests.
//!
//! Each behaviour of the contract is one public async function taking the store under test
//! (`Arc<dyn Store>`, fresh and empty). A backend runs all of them with
//! [`conformance_tests!`](crate::conformance_tests), which expands to one `#[test]` per case,
//! so every case is reported (and can be run) by name:
//!
//! ```ignore
//! mod conformance {
//!     berth_store::conformance_tests!(async {
//!         berth_store::testsuite::Fixture::new(berth_store::MemoryStore::new())
//!     });
//! }
//! ```
//!
//! The cases never assume an absolute starting revision (etcd starts at 1, the embedded
//! backends at 0): they read the current revision first and reason relative to it. They do
//! assume the store is not compacted behind their back (backends disable automatic
//! compaction in their fixtures).

mod compact;
mod concurrency;
mod crud;
mod list;
mod watch;

pub use compact::*;
pub use concurrency::*;
pub use crud::*;
pub use list::*;
pub use watch::*;

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::{KeyValue, Revision, Store, WatchEvent, WatchStream};

/// Upper bound for one case, including building its store. A guard against hangs (a lost
/// watch event shows up as a wait that never ends), not a performance bound.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a case waits for one expected watch event before failing with a clear message.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A store under test together with whatever must live as long as it (a temp dir, a server
/// process). The guard is dropped after the store and after the case's runtime.
pub struct Fixture {
    store: Option<Arc<dyn Store>>,
    skip: Option<String>,
    _guard: Box<dyn Any + Send>,
}

impl Fixture {
    pub fn new(store: impl Store) -> Self {
        Self::with_guard(store, ())
    }

    pub fn with_guard(store: impl Store, guard: impl Any + Send) -> Self {
        Fixture {
            store: Some(Arc::new(store)),
            skip: None,
            _guard: Box::new(guard),
        }
    }

    /// No store can be built here (an external server's binary is missing): the case logs
    /// `reason` and passes without running. Use only for what the environment lacks, never
    /// for a failure of the backend.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Fixture {
            store: None,
            skip: Some(reason.into()),
            _guard: Box::new(()),
        }
    }
}

/// Runs one case on a fresh multi-threaded runtime: builds the store with `factory`, runs
/// `case` against it, and fails if the two together take longer than [`CASE_TIMEOUT`].
/// Called by the tests [`conformance_tests!`](crate::conformance_tests) generates.
pub fn run_case<F, FFut, C, CFut>(name: &str, factory: F, case: C)
where
    F: FnOnce() -> FFut,
    FFut: Future<Output = Fixture>,
    C: FnOnce(Arc<dyn Store>) -> CFut,
    CFut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("building the test runtime");
    let fixture = runtime.block_on(async {
        tokio::time::timeout(CASE_TIMEOUT, async {
            let fixture = factory().await;
            match (&fixture.store, &fixture.skip) {
                (Some(store), _) => case(store.clone()).await,
                (None, reason) => eprintln!(
                    "SKIPPED conformance case {name}: {}",
                    reason.as_deref().unwrap_or("no store")
                ),
            }
            fixture
        })
        .await
        .unwrap_or_else(|_| {
            panic!("conformance case {name} did not finish within {CASE_TIMEOUT:?}")
        })
    });
    // Stop tasks the case spawned before the store's guard (temp dir, server) goes away.
    drop(runtime);
    drop(fixture);
}

/// Expands to one `#[test]` per conformance case, each building its store with `$factory`
/// (an expression evaluating to a `Future<Output = Fixture>`, evaluated once per case).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_cases!($factory;
            create_then_get,
            create_existing_fails,
            update_compare_and_swap,
            update_missing_key_fails,
            delete_returns_last_value,
            delete_with_expected_revision,
            failed_writes_keep_revision,
            revisions_increase_by_one,
            recreate_after_delete,
            empty_and_large_values,
            list_prefix_in_key_order,
            list_prefix_isolation,
            list_skips_deleted_keys,
            list_pagination,
            list_at_past_revision,
            list_future_revision,
            list_compacted_revision,
            watch_replays_history_then_live,
            watch_event_revisions,
            watch_filters_by_prefix,
            watch_from_current_sees_only_new,
            watch_after_compaction,
            watch_dropped_streams_are_harmless,
            concurrent_watchers_see_same_events,
            watch_under_concurrent_writers,
            compact_keeps_current_values,
            compact_bounds_history,
            compact_rejects_future_revision,
            concurrent_cas_one_winner,
            concurrent_create_one_winner,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testsuite::run_case(
                    stringify!($case),
                    || $factory,
                    $crate::testsuite::$case,
                );
            }
        )*
    };
}

// ---- helpers shared by the cases ----

fn kv(
    key: &str,
    value: &'static str,
    create_revision: Revision,
    mod_revision: Revision,
) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Bytes::from_static(value.as_bytes()),
        create_revision,
        mod_revision,
    }
}

fn val(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

async fn rev(store: &Arc<dyn Store>) -> Revision {
    store.current_revision().await.expect("current_revision")
}

/// The next Put or Delete of `stream` (Progress events are skipped). Panics if the stream
/// ends, fails or stays silent for [`EVENT_TIMEOUT`].
async fn next_change(stream: &mut WatchStream, what: &str) -> WatchEvent {
    loop {
        match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
            Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?} while waiting for {what}"),
            Ok(None) => panic!("watch stream ended while waiting for {what}"),
            Ok(Some(Err(e))) => panic!("watch stream failed while waiting for {what}: {e}"),
            Ok(Some(Ok(WatchEvent::Progress(_)))) => continue,
            Ok(Some(Ok(ev))) => return ev,
        }
    }
}

/// `n` consecutive changes of `stream`.
async fn next_changes(stream: &mut WatchStream, n: usize, what: &str) -> Vec<WatchEvent> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(next_change(stream, &format!("{what} (event {} of {n})", i + 1)).await);
    }
    out
}

/// Asserts that watching `prefix` after `after` fails with `Compacted`, either at once or as
/// the stream's first item.
async fn expect_watch_compacted(store: &Arc<dyn Store>, prefix: &str, after: Revision) {
    match store.watch(prefix, after).await {
        Err(e) => assert!(
            e.is_compacted(),
            "watch after {after}: expected Compacted, got {e}"
        ),
        Ok(mut stream) => loop {
            match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
                Err(_) => panic!("watch after compacted revision {after}: no Compacted error"),
                Ok(None) => panic!("watch after compacted revision {after}: stream ended"),
                Ok(Some(Ok(WatchEvent::Progress(_)))) => continue,
                Ok(Some(Ok(ev))) => {
                    panic!("watch after compacted revision {after}: got {ev:?}, want Compacted")
                }
                Ok(Some(Err(e))) => {
                    assert!(
                        e.is_compacted(),
                        "watch after {after}: expected Compacted, got {e}"
                    );
                    break;
                }
            }
        },
    }
}
