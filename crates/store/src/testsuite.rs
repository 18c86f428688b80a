//! The conformance suite every [`crate::Store`] backend runs from its own tests.
//!
//! A backend's test calls [`run_all`] with a factory that returns a fresh, empty store.
