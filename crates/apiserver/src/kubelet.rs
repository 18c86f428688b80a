//! The API server's client of node agents: HTTPS to the agent endpoint a Node publishes
//! (`status.daemonEndpoints.kubeletEndpoint.Port` on its InternalIP), authenticated with a
//! client certificate of the cluster CA and verifying the agent's serving certificate (issued
//! at join) against the same CA. HTTP/1.1 with upgrades, so streaming subresources can be
//! relayed byte for byte.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::ApiError;
use crate::pki::CertPair;
use crate::server::{ApiServer, ServerError};
use crate::state::ApiState;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS client for node agents.
pub struct KubeletClient {
    tls: tokio_rustls::TlsConnector,
}

impl KubeletClient {
    /// A client presenting `client` and trusting agents whose certificates `ca_pem` signed.
    pub fn new(client: &CertPair, ca_pem: &str) -> Result<KubeletClient, ServerError> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let c = c.map_err(|e| ServerError::Tls(format!("CA certificate: {e}")))?;
            roots
                .add(c)
                .map_err(|e| ServerError::Tls(format!("CA certificate: {e}")))?;
        }
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(client.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| ServerError::Tls(format!("agent client certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes())
            .map_err(|e| ServerError::Tls(format!("agent client key: {e}")))?;
        let mut cfg = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| ServerError::Tls(e.to_string()))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
        })
    }

    /// Sends one request to the agent at `addr` on a new connection (upgrades allowed).
    pub async fn send(
        &self,
        addr: SocketAddr,
        req: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, ApiError> {
        let unavailable = |what: String| ApiError::ServiceUnavailable { message: what };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| unavailable(format!("dialing the node agent at {addr}: timed out")))?
            .map_err(|e| unavailable(format!("dialing the node agent at {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.tls
                .connect(ServerName::IpAddress(addr.ip().into()), tcp),
        )
        .await
        .map_err(|_| unavailable(format!("TLS with the node agent at {addr}: timed out")))?
        .map_err(|e| unavailable(format!("TLS with the node agent at {addr}: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unavailable(format!("HTTP with the node agent at {addr}: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%addr, error = %e, "node agent connection ended");
            }
        });
        sender
            .send_request(req)
            .await
            .map_err(|e| unavailable(format!("request to the node agent at {addr}: {e}")))
    }
}

/// The agent endpoint a Node publishes: its InternalIP (else ExternalIP) and kubelet port.
pub fn node_endpoint(state: &ApiState, node: &str) -> Result<SocketAddr, ApiError> {
    let obj = state
        .cache
        .resource("/registry/core/nodes/")
        .get(&format!("/registry/core/nodes/{node}"))
        .ok_or_else(|| ApiError::NotFound {
            qualified_resource: "nodes".into(),
            group: String::new(),
            kind_plural: "nodes".into(),
            name: node.to_string(),
        })?
        .value();
    let port = obj
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(|p| p.as_u64())
        .filter(|p| *p > 0 && *p <= u16::MAX as u64)
        .ok_or_else(|| ApiError::ServiceUnavailable {
            message: format!("node {node:?} publishes no agent endpoint"),
        })? as u16;
    let addresses = obj
        .pointer("/status/addresses")
        .and_then(|a| a.as_array())
        .cloned()
        .unwrap_or_default();
    let pick = |kind: &str| {
        addresses
            .iter()
            .filter(|a| a["type"] == kind)
            .find_map(|a| a["address"].as_str()?.parse::<IpAddr>().ok())
    };
    let ip = pick("InternalIP")
        .or_else(|| pick("ExternalIP"))
        .ok_or_else(|| ApiError::ServiceUnavailable {
            message: format!("node {node:?} publishes no InternalIP or ExternalIP address"),
        })?;
    Ok(SocketAddr::new(ip, port))
}

impl ApiServer {
    /// Lets the API server reach node agents (streaming subresources, node proxy, metrics).
    pub fn set_kubelet_client(&self, client: KubeletClient) {
        *self
            .state()
            .kubelet
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(client));
    }
}

impl ApiState {
    pub fn kubelet_client(&self) -> Option<Arc<KubeletClient>> {
        self.kubelet
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
