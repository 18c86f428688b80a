//! The Ingress proxy: routes, certificates, the server.

pub mod proxy;
pub mod routes;
pub mod tls;
