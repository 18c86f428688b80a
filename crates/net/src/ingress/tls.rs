//! TLS for the Ingress proxy: certificates from `kubernetes.io/tls` Secrets chosen by SNI,
//! with a self-signed fallback so a TLS client always gets a handshake.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Secret;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{NetError, Result};
use crate::ingress::routes::RouteTable;

/// Certificates by host name, swapped whole when Ingresses or Secrets change.
#[derive(Debug, Default)]
pub struct CertTable {
    by_host: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` keyed by `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

/// A certified key from PEM certificate chain and key.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8], what: &str) -> Result<Arc<CertifiedKey>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| NetError::Tls {
            what: what.into(),
            reason: format!("tls.crt: {e}"),
        })?;
    if certs.is_empty() {
        return Err(NetError::Tls {
            what: what.into(),
            reason: "tls.crt holds no certificate".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| NetError::Tls {
        what: what.into(),
        reason: format!("tls.key: {e}"),
    })?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| NetError::Tls {
            what: what.into(),
            reason: format!("tls.key: {e}"),
        })?;
    Ok(Arc::new(CertifiedKey::new(certs, signer)))
}

/// A self-signed certificate for requests no Secret covers.
pub fn self_signed() -> Result<Arc<CertifiedKey>> {
    let ck = rcgen::generate_simple_self_signed(vec!["berth-ingress-default".to_string()])
        .map_err(|e| NetError::Tls {
            what: "default certificate".into(),
            reason: e.to_string(),
        })?;
    certified_key(
        ck.cert.pem().as_bytes(),
        ck.signing_key.serialize_pem().as_bytes(),
        "default certificate",
    )
}

impl CertTable {
    /// The certificates the route table's TLS entries name, from the Secrets (bad or
    /// missing Secrets are reported and skipped).
    pub fn build(
        routes: &RouteTable,
        secrets: &[Arc<Secret>],
        fallback: Arc<CertifiedKey>,
    ) -> (CertTable, Vec<NetError>) {
        let mut errors = Vec::new();
        let mut cache: HashMap<String, Option<Arc<CertifiedKey>>> = HashMap::new();
        let mut load = |key: &str, errors: &mut Vec<NetError>| -> Option<Arc<CertifiedKey>> {
            if let Some(c) = cache.get(key) {
                return c.clone();
            }
            let (ns, name) = key.split_once('/').unwrap_or(("", key));
            let secret = secrets.iter().find(|s| {
                s.metadata.namespace.as_deref() == Some(ns)
                    && s.metadata.name.as_deref() == Some(name)
            });
            let what = format!("secret {key}");
            let loaded = match secret {
                None => {
                    errors.push(NetError::Tls {
                        what,
                        reason: "not found (or not of type kubernetes.io/tls)".into(),
                    });
                    None
                }
                Some(s) => {
                    let data = s.data.clone().unwrap_or_default();
                    match (data.get("tls.crt"), data.get("tls.key")) {
                        (Some(c), Some(k)) => match certified_key(&c.0, &k.0, &what) {
                            Ok(ck) => Some(ck),
                            Err(e) => {
                                errors.push(e);
                                None
                            }
                        },
                        _ => {
                            errors.push(NetError::Tls {
                                what,
                                reason: "needs tls.crt and tls.key".into(),
                            });
                            None
                        }
                    }
                }
            };
            cache.insert(key.to_string(), loaded.clone());
            loaded
        };
        let mut t = CertTable {
            default: Some(fallback),
            ..Default::default()
        };
        for (host, secret) in &routes.tls_hosts {
            let Some(ck) = load(secret, &mut errors) else {
                continue;
            };
            match host.strip_prefix("*.") {
                Some(rest) => {
                    t.wildcard.insert(rest.to_string(), ck);
                }
                None => {
                    t.by_host.insert(host.clone(), ck);
                }
            }
        }
        if let Some(d) = &routes.tls_default
            && let Some(ck) = load(d, &mut errors)
        {
            t.default = Some(ck);
        }
        (t, errors)
    }

    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni.map(|s| s.to_ascii_lowercase()) {
            if let Some(c) = self.by_host.get(&name) {
                return Some(c.clone());
            }
            if let Some((_, parent)) = name.split_once('.')
                && let Some(c) = self.wildcard.get(parent)
            {
                return Some(c.clone());
            }
        }
        self.default.clone()
    }
}

/// The rustls resolver over a swappable table.
#[derive(Debug, Default, Clone)]
pub struct SniResolver(pub Arc<RwLock<Arc<CertTable>>>);

impl SniResolver {
    pub fn set(&self, t: CertTable) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(t);
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let t = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        t.pick(hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(name: &str, host: &str) -> Arc<Secret> {
        let ck = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d"}, "type": "kubernetes.io/tls",
            "stringData": null,
            "data": {"tls.crt": k8s_openapi::ByteString(ck.cert.pem().into_bytes()), "tls.key": k8s_openapi::ByteString(ck.signing_key.serialize_pem().into_bytes())}})).unwrap())
    }

    #[test]
    fn certificates_are_chosen_by_sni_with_wildcards_and_a_fallback() {
        let mut routes = RouteTable::default();
        routes
            .tls_hosts
            .insert("a.example.com".into(), "d/a".into());
        routes
            .tls_hosts
            .insert("*.example.org".into(), "d/w".into());
        routes
            .tls_hosts
            .insert("broken.example.com".into(), "d/missing".into());
        let fallback = self_signed().unwrap();
        let (t, errs) = CertTable::build(
            &routes,
            &[secret("a", "a.example.com"), secret("w", "*.example.org")],
            fallback.clone(),
        );
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].to_string().contains("secret d/missing"),
            "{}",
            errs[0]
        );
        let a = t.pick(Some("A.example.com")).unwrap();
        assert!(!Arc::ptr_eq(&a, &fallback));
        let w = t.pick(Some("x.example.org")).unwrap();
        assert!(!Arc::ptr_eq(&w, &a) && !Arc::ptr_eq(&w, &fallback));
        assert!(Arc::ptr_eq(&t.pick(Some("other.net")).unwrap(), &fallback));
        assert!(Arc::ptr_eq(&t.pick(None).unwrap(), &fallback));
    }

    #[test]
    fn bad_pem_is_reported() {
        let e = certified_key(b"nope", b"nope", "secret d/x").unwrap_err();
        assert!(
            e.to_string().contains("secret d/x") && e.to_string().contains("tls.crt"),
            "{e}"
        );
    }
}
