//! The Ingress proxy: routes, certificates, the server and its worker threads.

mod h1;
mod prefixed;
pub mod proxy;
pub mod routes;
pub mod tls;
mod workers;
