//! Joining a cluster: from a join token to the node's own credentials.
//!
//! The full token is `B10<sha256 of the CA PEM>::<secret>` (`berth token` prints it; the
//! secret alone, as kept in the server's data dir, is accepted too). The agent fetches the
//! CA from `/cacerts` over an unverified connection and accepts it only if its hash matches
//! the token's; then, over a connection verified with that CA, it presents the secret to the
//! join endpoint and receives a client certificate for `system:node:<name>`, a serving
//! certificate for its own endpoint and the cluster registry's address. Credentials are kept under the
//! agent's directory, so a restarted agent does not join again.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{AgentError, Result};

const TOKEN_PREFIX: &str = "B10";
const CACERTS_PATH: &str = "/cacerts";
const JOIN_PATH: &str = "/v1-berth/node-join";

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Hex SHA-256 of the CA PEM the server must present.
    pub ca_hash: Option<String>,
    pub secret: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_hash", &self.ca_hash)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl JoinToken {
    pub fn parse(text: &str) -> Result<JoinToken> {
        let text = text.trim();
        let bad = |m: &str| AgentError::Token { message: m.into() };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        match text.split_once("::") {
            Some((head, secret)) => {
                let hash = head
                    .strip_prefix(TOKEN_PREFIX)
                    .ok_or_else(|| bad("a full token starts with B10"))?;
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("the CA hash before :: must be 64 hex digits"));
                }
                if secret.is_empty() {
                    return Err(bad("the secret after :: is empty"));
                }
                Ok(JoinToken {
                    ca_hash: Some(hash.to_ascii_lowercase()),
                    secret: secret.to_string(),
                })
            }
            None => Ok(JoinToken {
                ca_hash: None,
                secret: text.to_string(),
            }),
        }
    }

    /// The full token for a cluster CA and secret.
    pub fn format(ca_pem: &str, secret: &str) -> String {
        format!("{TOKEN_PREFIX}{}::{secret}", ca_hash(ca_pem))
    }
}

/// Hex SHA-256 of a CA bundle's PEM text.
pub fn ca_hash(ca_pem: &str) -> String {
    hex::encode(Sha256::digest(ca_pem.as_bytes()))
}

/// What the node receives at join and keeps.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub client_certificate: String,
    pub client_key: String,
    pub serving_certificate: String,
    pub serving_key: String,
    pub ca: String,
    /// The cluster registry for unqualified image names, if the server has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinRequest<'a> {
    node_name: &'a str,
    addresses: &'a [IpAddr],
    hostnames: &'a [String],
}

fn credentials_path(dir: &Path) -> PathBuf {
    dir.join("credentials.json")
}

impl Credentials {
    /// The credentials an earlier join left in `dir`, if any.
    pub fn load(dir: &Path) -> Result<Option<Credentials>> {
        let p = credentials_path(dir);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| AgentError::invalid(p.display().to_string(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AgentError::io("read", p, e)),
        }
    }

    /// Stores the credentials (mode 0600) atomically, and a kubeconfig beside them.
    pub fn save(&self, dir: &Path, server: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| AgentError::io("create", dir, e))?;
        let json = serde_json::to_vec_pretty(self).map_err(AgentError::internal)?;
        write_private(&credentials_path(dir), &json)?;
        // JSON is YAML: kubectl reads this file as a kubeconfig.
        let kc =
            serde_json::to_vec_pretty(&self.kubeconfig(server)).map_err(AgentError::internal)?;
        write_private(&dir.join("kubeconfig.yaml"), &kc)
    }

    /// A kubeconfig authenticating as this node.
    pub fn kubeconfig(&self, server: &str) -> serde_json::Value {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "default", "cluster": {"server": server, "certificate-authority-data": b64(&self.ca)}}],
            "users": [{"name": "node", "user": {"client-certificate-data": b64(&self.client_certificate), "client-key-data": b64(&self.client_key)}}],
            "contexts": [{"name": "default", "context": {"cluster": "default", "user": "node"}}],
            "current-context": "default"
        })
    }

    /// A kube client configuration for `server` with these credentials.
    pub async fn kube_config(&self, server: &str) -> Result<kube::Config> {
        let kc: kube::config::Kubeconfig = serde_json::from_value(self.kubeconfig(server))
            .map_err(|e| AgentError::internal(format!("kubeconfig: {e}")))?;
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| AgentError::internal(format!("kubeconfig: {e}")))
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| AgentError::io("create", &tmp, e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| AgentError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| AgentError::io("rename", path, e))
}

/// Joins the cluster at `server` (`https://host:port`).
pub async fn join(
    server: &str,
    token: &JoinToken,
    node_name: &str,
    addresses: &[IpAddr],
    hostnames: &[String],
) -> Result<Credentials> {
    let server = server.trim_end_matches('/');
    let fail = |m: String| AgentError::Join {
        server: server.to_string(),
        message: m,
        retryable: false,
    };
    let retry = |m: String| AgentError::Join {
        server: server.to_string(),
        message: m,
        retryable: true,
    };
    // 1. The CA, checked against the token.
    let insecure = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| fail(format!("HTTP client: {e}")))?;
    let ca = insecure
        .get(format!("{server}{CACERTS_PATH}"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| retry(format!("fetching the cluster CA: {e}")))?
        .text()
        .await
        .map_err(|e| retry(format!("fetching the cluster CA: {e}")))?;
    if !ca.contains("BEGIN CERTIFICATE") {
        return Err(fail(
            "the server's /cacerts is not a PEM certificate".into(),
        ));
    }
    match &token.ca_hash {
        Some(h) if *h != ca_hash(&ca) => {
            return Err(fail(format!(
                "the server's CA (sha256 {}) does not match the join token's (sha256 {h}); \
                 is this the right server?",
                ca_hash(&ca)
            )));
        }
        Some(_) => {}
        None => tracing::warn!(
            "the join token carries no CA hash; trusting the server's CA on first use \
             (use the full token from `berth token`)"
        ),
    }
    // 2. The node's credentials, over a connection verified with that CA.
    let cert = reqwest::Certificate::from_pem(ca.as_bytes())
        .map_err(|e| fail(format!("the cluster CA: {e}")))?;
    let verified = reqwest::Client::builder()
        .tls_certs_only([cert])
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| fail(format!("HTTP client: {e}")))?;
    let resp = verified
        .post(format!("{server}{JOIN_PATH}"))
        .bearer_auth(&token.secret)
        .json(&JoinRequest {
            node_name,
            addresses,
            hostnames,
        })
        .send()
        .await
        .map_err(|e| retry(format!("join request: {e}")))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| retry(format!("join response: {e}")))?;
    if !status.is_success() {
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let hint = if status.as_u16() == 401 {
            " (wrong token?)"
        } else {
            ""
        };
        let m = format!("the server answered {status}: {msg}{hint}");
        return Err(if status.is_server_error() || status.as_u16() == 404 {
            retry(m)
        } else {
            fail(m)
        });
    }
    serde_json::from_slice(&body).map_err(|e| fail(format!("join response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_with_and_without_ca_hash() {
        let full = JoinToken::format("PEM", "s3cret");
        let t = JoinToken::parse(&full).unwrap();
        assert_eq!(t.secret, "s3cret");
        assert_eq!(t.ca_hash.as_deref(), Some(ca_hash("PEM").as_str()));
        let short = JoinToken::parse("B10abcdef\n").unwrap();
        assert_eq!((short.ca_hash, short.secret.as_str()), (None, "B10abcdef"));
        assert!(JoinToken::parse("").is_err());
        assert!(JoinToken::parse("X10aa::s").is_err());
        assert!(JoinToken::parse(&format!("B10{}::", "a".repeat(64))).is_err());
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn credentials_round_trip_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert!(Credentials::load(dir.path()).unwrap().is_none());
        let c = Credentials {
            client_certificate: "c".into(),
            client_key: "k".into(),
            serving_certificate: "sc".into(),
            serving_key: "sk".into(),
            ca: "ca".into(),
            registry: Some("10.0.0.1:5000".into()),
        };
        c.save(dir.path(), "https://127.0.0.1:6443").unwrap();
        assert_eq!(Credentials::load(dir.path()).unwrap().unwrap(), c);
        let mode = std::fs::metadata(credentials_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
