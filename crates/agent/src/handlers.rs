//! The actions probes and lifecycle hooks run against a container: `exec` (a process in the
//! container, success on exit code 0), `httpGet` (success on 200–399; connected inside the
//! pod's network namespace unless a host is given), `tcpSocket` (success on connect) and
//! `sleep`. Every action has a timeout; outputs are kept short for events.

use std::sync::Arc;
use std::time::Duration;

use berth_cri::{ContainerRuntime, ExecRequest};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Outcome of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Failed, with what it printed or why.
    Failure(String),
}

/// Where an action runs.
#[derive(Clone)]
pub struct Target {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub sandbox_id: String,
    pub container_id: String,
    /// The container's spec (named ports).
    pub container: Container,
}

const MAX_OUTPUT: usize = 10 * 1024;

fn truncate(mut s: String) -> String {
    if s.len() > MAX_OUTPUT {
        let mut cut = MAX_OUTPUT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s.trim_end().to_string()
}

/// Runs a command in the container; exit 0 succeeds.
pub async fn exec(t: &Target, a: &ExecAction, timeout: Duration) -> Outcome {
    let command = a.command.clone().unwrap_or_default();
    if command.is_empty() {
        return Outcome::Failure("exec: no command".into());
    }
    let req = ExecRequest {
        command: command.clone(),
        tty: false,
        stdin: false,
        size: None,
    };
    let mut session = match t.runtime.exec(&t.container_id, &req).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failure(format!("exec {command:?}: {e}")),
    };
    let run = async {
        let mut out = Vec::new();
        while let Ok(Some((_, chunk))) = session.read_output().await {
            if out.len() < MAX_OUTPUT {
                out.extend_from_slice(&chunk);
            }
        }
        let code = session.wait().await;
        (out, code)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok((out, Ok(0))) => {
            let _ = out;
            Outcome::Success
        }
        Ok((out, Ok(code))) => {
            let text = truncate(String::from_utf8_lossy(&out).into_owned());
            Outcome::Failure(if text.is_empty() {
                format!("command {command:?} exited with {code}")
            } else {
                text
            })
        }
        Ok((_, Err(e))) => Outcome::Failure(format!("exec {command:?}: {e}")),
        Err(_) => {
            let _ = session.kill().await;
            Outcome::Failure(format!(
                "command {command:?} timed out after {}s",
                timeout.as_secs()
            ))
        }
    }
}

/// A port given by number or by the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("no port named {name:?} in container {:?}", c.name))
        }
    }
}

async fn connect(
    t: &Target,
    host: Option<&str>,
    port: u16,
) -> Result<tokio::net::TcpStream, String> {
    let std_stream = match host.filter(|h| !h.is_empty()) {
        Some(h) => {
            let addr = format!("{h}:{port}");
            return tokio::net::TcpStream::connect(&addr)
                .await
                .map_err(|e| format!("dial tcp {addr}: {e}"));
        }
        None => t
            .runtime
            .connect(&t.sandbox_id, port)
            .await
            .map_err(|e| e.to_string())?,
    };
    std_stream
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    tokio::net::TcpStream::from_std(std_stream).map_err(|e| e.to_string())
}

/// Opens a TCP connection to the port.
pub async fn tcp(t: &Target, a: &TCPSocketAction, timeout: Duration) -> Outcome {
    let port = match resolve_port(&a.port, &t.container) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    match tokio::time::timeout(timeout, connect(t, a.host.as_deref(), port)).await {
        Ok(Ok(_)) => Outcome::Success,
        Ok(Err(e)) => Outcome::Failure(e),
        Err(_) => Outcome::Failure(format!("dial tcp port {port}: i/o timeout")),
    }
}

/// Skips certificate verification (Kubernetes' HTTPS probes do not verify).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls_pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls_pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn http_on<S>(io: S, a: &HTTPGetAction, host_header: &str) -> Result<(u16, String), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = a
        .path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let mut req = http::Request::get(&path).header(http::header::HOST, host_header);
    let mut has_ua = false;
    for h in a.http_headers.iter().flatten() {
        if h.name.eq_ignore_ascii_case("user-agent") {
            has_ua = true;
        }
        req = req.header(h.name.as_str(), h.value.as_str());
    }
    if !has_ua {
        req = req.header(http::header::USER_AGENT, "kube-probe/1.33");
    }
    req = req.header(http::header::ACCEPT, "*/*");
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let code = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_OUTPUT)]).into_owned();
    Ok((code, text))
}

/// An HTTP GET; 200–399 succeeds.
pub async fn http_get(t: &Target, a: &HTTPGetAction, timeout: Duration) -> Outcome {
    let port = match resolve_port(&a.port, &t.container) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    let host = a.host.clone().filter(|h| !h.is_empty());
    let host_header = format!("{}:{port}", host.as_deref().unwrap_or("localhost"));
    let https = a.scheme.as_deref() == Some("HTTPS");
    let run = async {
        let tcp = connect(t, host.as_deref(), port).await?;
        if https {
            let provider = rustls::crypto::ring::default_provider();
            let cfg = rustls::ClientConfig::builder()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(Arc::new(provider))))
                .with_no_client_auth();
            let name = rustls_pki_types::ServerName::try_from(
                host.clone().unwrap_or_else(|| "localhost".into()),
            )
            .map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            http_on(tls, a, &host_header).await
        } else {
            http_on(tcp, a, &host_header).await
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok((code, _))) if (200..400).contains(&code) => Outcome::Success,
        Ok(Ok((code, body))) => Outcome::Failure(format!(
            "HTTP probe failed with statuscode: {code}{}",
            if body.is_empty() {
                String::new()
            } else {
                format!(": {}", truncate(body))
            }
        )),
        Ok(Err(e)) => Outcome::Failure(format!(
            "Get \"{}://{}{}\": {e}",
            if https { "https" } else { "http" },
            host_header,
            a.path.as_deref().unwrap_or("/")
        )),
        Err(_) => Outcome::Failure(format!(
            "Get \"{}://{}{}\": context deadline exceeded",
            if https { "https" } else { "http" },
            host_header,
            a.path.as_deref().unwrap_or("/")
        )),
    }
}
