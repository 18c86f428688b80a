//! Cluster DNS.

pub mod index;
pub mod server;
