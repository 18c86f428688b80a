//! Authentication: who a request comes from. Client certificates signed by the cluster CA
//! (CN = user, O = groups; verified by TLS, attached by the connection), bearer tokens from the
//! server's token table, and in-process clients (controllers) that carry their identity from
//! the router wrapper. Requests with none of these are anonymous and get 401 except on health
//! endpoints.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::extract::Request;
use axum::http::header;

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    pub fn new(user: impl Into<String>, groups: &[&str]) -> Identity {
        Identity {
            user: user.into(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn anonymous() -> Identity {
        Identity::new("system:anonymous", &["system:unauthenticated"])
    }

    /// The identity of in-process components (scheduler, controllers).
    pub fn system(component: &str) -> Identity {
        Identity::new(
            format!("system:{component}"),
            &["system:masters", "system:authenticated"],
        )
    }

    /// The identity a client certificate carries.
    pub fn from_certificate(der: &[u8]) -> Option<Identity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let user = cert
            .subject()
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_string();
        let mut groups: Vec<String> = cert
            .subject()
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(String::from))
            .collect();
        groups.push("system:authenticated".into());
        Some(Identity { user, groups })
    }
}

/// Looks up the uid of a stored object by storage key (to check that the ServiceAccount and
/// pod a token is bound to still exist).
pub type UidLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Identities of bearer tokens: static tokens, and ServiceAccount JWTs.
pub struct Authenticator {
    tokens: RwLock<HashMap<String, Identity>>,
    keys: RwLock<std::sync::Arc<crate::satokens::TokenKeys>>,
    live: std::sync::OnceLock<UidLookup>,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator {
            tokens: RwLock::new(HashMap::new()),
            keys: RwLock::new(std::sync::Arc::new(crate::satokens::TokenKeys::ephemeral())),
            live: std::sync::OnceLock::new(),
        }
    }
}

impl Authenticator {
    /// An authenticator with no static tokens and an in-memory service-account key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses a persistent service-account signing key (PKCS#8 ECDSA P-256).
    pub fn set_service_account_key(&self, pkcs8: &[u8]) -> bool {
        match crate::satokens::TokenKeys::from_pkcs8(pkcs8) {
            Some(k) => {
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(k);
                true
            }
            None => false,
        }
    }

    pub(crate) fn service_account_keys(&self) -> std::sync::Arc<crate::satokens::TokenKeys> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_uid_lookup(&self, lookup: UidLookup) {
        let _ = self.live.set(lookup);
    }

    fn service_account(&self, token: &str) -> Option<Identity> {
        let now = jiff::Timestamp::now().as_second();
        let claims = self
            .service_account_keys()
            .verify(token, crate::satokens::ISSUER, now)?;
        let lookup = self.live.get()?;
        let ns = &claims.kube.namespace;
        let sa = &claims.kube.serviceaccount;
        if lookup(&format!("/registry/core/serviceaccounts/{ns}/{}", sa.name)).as_deref()
            != Some(sa.uid.as_str())
        {
            return None;
        }
        if let Some(pod) = &claims.kube.pod
            && lookup(&format!("/registry/core/pods/{ns}/{}", pod.name)).as_deref()
                != Some(pod.uid.as_str())
        {
            return None;
        }
        Some(Identity {
            user: format!("system:serviceaccount:{ns}:{}", sa.name),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
        })
    }

    pub fn add_token(&self, token: impl Into<String>, identity: Identity) {
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.into(), identity);
    }

    /// The identity of a request, if it authenticated.
    pub fn authenticate(&self, req: &Request) -> Option<Identity> {
        if let Some(id) = req.extensions().get::<Identity>() {
            return Some(id.clone());
        }
        let auth = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))?
            .trim();
        if let Some(id) = self
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
        {
            return Some(id.clone());
        }
        if token.matches('.').count() == 2 {
            return self.service_account(token);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_extensions_authenticate() {
        let a = Authenticator::new();
        a.add_token("t0k", Identity::new("alice", &["devs"]));
        let req = Request::builder()
            .uri("/api")
            .header("authorization", "Bearer t0k")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(a.authenticate(&req).unwrap().user, "alice");
        let bad = Request::builder()
            .uri("/api")
            .header("authorization", "Bearer nope")
            .body(axum::body::Body::empty())
            .unwrap();
        assert!(a.authenticate(&bad).is_none());
        let mut internal = Request::builder()
            .uri("/api")
            .body(axum::body::Body::empty())
            .unwrap();
        internal
            .extensions_mut()
            .insert(Identity::system("controllers"));
        assert_eq!(
            a.authenticate(&internal).unwrap().user,
            "system:controllers"
        );
    }
}
