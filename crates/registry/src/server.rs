//! The accept loop: plain TCP or rustls TLS, HTTP/1.1 and HTTP/2 through hyper-util's auto
//! builder, serving the axum router. (`axum::serve` has no TLS, and one loop for both keeps
//! one code path.)

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::http::ConnTls;

pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        let is_tls = tls.is_some();
        let router =
            router
                .clone()
                .map_request(move |mut r: hyper::Request<hyper::body::Incoming>| {
                    r.extensions_mut().insert(ConnTls(is_tls));
                    r
                });
        let svc = TowerToHyperService::new(router);
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            let builder = Builder::new(TokioExecutor::new());
            let res = match tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    tokio::select! { r = conn => r, _ = shutdown.cancelled() => Ok(()) }
                }
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => {
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(s), svc);
                        tokio::select! { r = conn => r, _ = shutdown.cancelled() => Ok(()) }
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        Ok(())
                    }
                },
            };
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    conns.abort_all();
}

/// A rustls server config from PEM certificate-chain and key files.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> crate::Result<Arc<rustls::ServerConfig>> {
    use crate::error::RegistryError;
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| RegistryError::Config {
            field: format!("--tls-cert {}", cert.display()),
            reason: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| RegistryError::Config {
            field: format!("--tls-cert {}", cert.display()),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(RegistryError::Config {
            field: format!("--tls-cert {}", cert.display()),
            reason: "no certificate found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| RegistryError::Config {
        field: format!("--tls-key {}", key.display()),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Config {
            field: "tls".into(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| RegistryError::Config {
            field: "--tls-cert/--tls-key".into(),
            reason: e.to_string(),
        })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
