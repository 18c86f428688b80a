//! The Ingress proxy: routes, certificates, the server and its worker threads.

pub mod proxy;
pub mod routes;
pub mod tls;
mod workers;
