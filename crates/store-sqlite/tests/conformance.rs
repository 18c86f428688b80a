//! The store conformance suite against the embedded SQLite backend, with automatic
//! compaction off (the suite compacts explicitly) and a small watch buffer, so watchers in
//! the concurrent cases also exercise the catch-up from the database.

use berth_store::testsuite::Fixture;
use berth_store_sqlite::{SqliteConfig, SqliteStore};

async fn sqlite_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SqliteConfig {
        watch_buffer: 64,
        ..SqliteConfig::default().without_compaction()
    };
    let store = SqliteStore::open(dir.path().join("store.db"), config).expect("open store");
    Fixture::with_guard(store, dir)
}

berth_store::conformance_tests!(sqlite_fixture());
