//! The conformance suite against the in-memory backend.

use berth_store::MemoryStore;
use berth_store::testsuite::Fixture;

berth_store::conformance_tests!(async { Fixture::new(MemoryStore::new()) });
