//! Node join: how a node agent holding the cluster's join token becomes a node.
//!
//! - `GET /cacerts` (public, as k3s serves it) returns the cluster CA. The agent checks it
//!   against the CA hash carried in the full join token before trusting it.
//! - `POST /v1-berth/node-join` with the token as bearer credential and
//!   `{"nodeName", "addresses", "hostnames"}` returns the node's credentials: a client
//!   certificate for `system:node:<name>` (group `system:nodes`), a serving certificate for the
//!   agent's own TLS endpoint (the node's addresses and names as SANs), the CA, and where the
//!   cluster registry is. (The node's pod CIDR comes later, from the node IPAM controller.)
//!
//! Keys are generated here and returned over the CA-verified TLS connection (as k3s does),
//! so an agent needs no certificate machinery of its own.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::pki::CertPair;
use crate::server::ApiServer;
use crate::state::SharedState;

pub const CACERTS_PATH: &str = "/cacerts";
pub const JOIN_PATH: &str = "/v1-berth/node-join";

/// Groups allowed to join nodes: holders of the join token, and cluster admins.
const JOIN_GROUPS: [&str; 2] = ["system:bootstrappers", "system:masters"];

/// What an agent sends to join.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    pub node_name: String,
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    #[serde(default)]
    pub hostnames: Vec<String>,
}

/// What a joining agent gets back.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    pub client_certificate: String,
    pub client_key: String,
    pub serving_certificate: String,
    pub serving_key: String,
    pub ca: String,
    /// The cluster registry (`host:port`) unqualified image names resolve to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
}

/// The join service the API server answers with, once the binary enabled it.
pub struct NodeJoin {
    ca: CertPair,
    registry: Option<String>,
}

impl NodeJoin {
    pub fn new(ca: CertPair) -> NodeJoin {
        NodeJoin { ca, registry: None }
    }

    /// Tells joining nodes where the cluster registry is.
    pub fn with_registry(mut self, address: Option<String>) -> NodeJoin {
        self.registry = address;
        self
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, ApiError> {
        let key = KeyPair::from_pem(&self.ca.key_pem).map_err(ApiError::internal)?;
        Issuer::from_ca_cert_pem(&self.ca.cert_pem, key).map_err(ApiError::internal)
    }

    fn sign(&self, params: CertificateParams) -> Result<CertPair, ApiError> {
        let kp = KeyPair::generate().map_err(ApiError::internal)?;
        let cert = params
            .signed_by(&kp, &self.issuer()?)
            .map_err(ApiError::internal)?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: kp.serialize_pem(),
        })
    }

    fn params(cn: &str, orgs: &[&str]) -> Result<CertificateParams, ApiError> {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(ApiError::internal)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        for o in orgs {
            dn.push(DnType::OrganizationName, *o);
        }
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        Ok(params)
    }

    /// The client certificate of a node.
    fn client_cert(&self, node: &str) -> Result<CertPair, ApiError> {
        let mut p = Self::params(&format!("system:node:{node}"), &["system:nodes"])?;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(p)
    }

    /// The serving certificate of a node's agent.
    fn serving_cert(&self, req: &JoinRequest) -> Result<CertPair, ApiError> {
        let mut p = Self::params(&format!("system:node:{}", req.node_name), &["system:nodes"])?;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let mut names: Vec<String> = vec![req.node_name.clone(), "localhost".into()];
        names.extend(req.hostnames.iter().cloned());
        names.sort();
        names.dedup();
        for n in names {
            let n = n
                .try_into()
                .map_err(|e: rcgen::Error| ApiError::bad_request(format!("hostnames: {e}")))?;
            p.subject_alt_names.push(SanType::DnsName(n));
        }
        let mut ips = req.addresses.clone();
        ips.push(IpAddr::from([127, 0, 0, 1]));
        ips.sort();
        ips.dedup();
        p.subject_alt_names
            .extend(ips.into_iter().map(SanType::IpAddress));
        self.sign(p)
    }
}

impl ApiServer {
    /// Enables `/cacerts` and node joins, signing node credentials with the cluster CA.
    pub fn enable_node_join(&self, join: NodeJoin) {
        *self
            .state()
            .node_join
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(join));
    }
}

fn join_service(state: &SharedState) -> Result<Arc<NodeJoin>, ApiError> {
    state
        .node_join
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .ok_or(ApiError::NotFoundPath)
}

/// `GET /cacerts`: the cluster CA in PEM.
pub async fn cacerts(State(state): State<SharedState>) -> Response {
    match join_service(&state) {
        Ok(j) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
            j.ca.cert_pem.clone(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1-berth/node-join`.
pub async fn join(State(state): State<SharedState>, req: Request) -> Response {
    match join_inner(state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn join_inner(state: SharedState, req: Request) -> Result<Response, ApiError> {
    let service = join_service(&state)?;
    let identity = state
        .auth
        .authenticate(&req)
        .ok_or(ApiError::Unauthorized)?;
    if !identity
        .groups
        .iter()
        .any(|g| JOIN_GROUPS.contains(&g.as_str()))
    {
        return Err(ApiError::forbidden(format!(
            "user {:?} may not join nodes (needs the node join token)",
            identity.user
        )));
    }
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| ApiError::bad_request("join request body too large"))?;
    let jr: JoinRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("join request: {e}")))?;
    berth_api::names::validate_dns1123_subdomain(&jr.node_name)
        .map_err(|e| ApiError::bad_request(format!("nodeName {:?}: {e}", jr.node_name)))?;
    for h in &jr.hostnames {
        berth_api::names::validate_dns1123_subdomain(h)
            .map_err(|e| ApiError::bad_request(format!("hostnames: {h:?}: {e}")))?;
    }
    let client = service.client_cert(&jr.node_name)?;
    let serving = service.serving_cert(&jr)?;
    tracing::info!(node = %jr.node_name, by = %identity.user, "node joined");
    let resp = JoinResponse {
        client_certificate: client.cert_pem,
        client_key: client.key_pem,
        serving_certificate: serving.cert_pem,
        serving_key: serving.key_pem,
        ca: service.ca.cert_pem.clone(),
        registry: service.registry.clone(),
    };
    Ok(crate::handler::json_response(
        StatusCode::OK,
        &serde_json::to_value(resp).map_err(ApiError::internal)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_certificates_carry_the_node_identity_and_sans() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::ClusterPki::load_or_create(dir.path()).unwrap();
        let j = NodeJoin::new(pki.ca.clone());
        let c = j.client_cert("n1").unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(c.cert_pem.as_bytes()).unwrap();
        let id = crate::auth::Identity::from_certificate(&pem.contents).unwrap();
        assert_eq!(id.user, "system:node:n1");
        assert!(id.groups.contains(&"system:nodes".to_string()));
        let s = j
            .serving_cert(&JoinRequest {
                node_name: "n1".into(),
                addresses: vec!["10.1.2.3".parse().unwrap()],
                hostnames: vec!["host-a".into()],
            })
            .unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(s.cert_pem.as_bytes()).unwrap();
        let x = pem.parse_x509().unwrap();
        let san = format!("{:?}", x.subject_alternative_name().unwrap().unwrap().value);
        assert!(san.contains("host-a") && san.contains("n1"), "{san}");
    }
}
