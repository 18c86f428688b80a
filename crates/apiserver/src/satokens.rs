//! ServiceAccount tokens: JWTs (ES256) signed with the cluster's service-account key, issued
//! through the TokenRequest subresource (`serviceaccounts/<name>/token`, what
//! `kubectl create token` and projected volumes use) and accepted as bearer tokens while the
//! ServiceAccount (and the pod they are bound to, if any) still exists with the same uid.
//!
//! JWT handling is a few lines over ring (already in the tree for TLS): the tokens use one
//! algorithm and one key, so a general JOSE library would add a second crypto stack for no
//! gain.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde::{Deserialize, Serialize};

/// The issuer and default audience of berth's ServiceAccount tokens (as Kubernetes').
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KubeClaims {
    pub namespace: String,
    pub serviceaccount: Ref,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pod: Option<Ref>,
}

/// The claims of a ServiceAccount token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kube: KubeClaims,
}

/// The signing key.
pub struct TokenKeys {
    pair: EcdsaKeyPair,
    public: Vec<u8>,
    rng: SystemRandom,
}

impl TokenKeys {
    /// A key from PKCS#8 bytes.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Option<TokenKeys> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).ok()?;
        let public = pair.public_key().as_ref().to_vec();
        Some(TokenKeys { pair, public, rng })
    }

    /// New PKCS#8 key bytes (to persist).
    pub fn generate_pkcs8() -> Vec<u8> {
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default()
    }

    /// An in-memory key (tests, servers without a data dir).
    pub fn ephemeral() -> TokenKeys {
        TokenKeys::from_pkcs8(&Self::generate_pkcs8()).expect("a freshly generated key loads")
    }

    /// Signs the claims.
    pub fn issue(&self, claims: &Claims) -> String {
        let header = b64(br#"{"alg":"ES256","typ":"JWT"}"#);
        let payload = b64(&serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let sig = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map(|s| s.as_ref().to_vec())
            .unwrap_or_default();
        format!("{signing_input}.{}", b64(&sig))
    }

    /// The claims of a token this key signed, if it is valid at `now` (unix seconds) for
    /// `audience`.
    pub fn verify(&self, token: &str, audience: &str, now: i64) -> Option<Claims> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: serde_json::Value = serde_json::from_slice(&unb64(h)?).ok()?;
        if header.get("alg")?.as_str()? != "ES256" {
            return None;
        }
        let sig = unb64(s)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .ok()?;
        let claims: Claims = serde_json::from_slice(&unb64(p)?).ok()?;
        let valid = claims.iss == ISSUER
            && claims.nbf <= now + 60
            && now < claims.exp
            && claims.aud.iter().any(|a| a == audience);
        valid.then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            iss: ISSUER.into(),
            sub: "system:serviceaccount:default:web".into(),
            aud: vec![ISSUER.into()],
            exp,
            iat: 100,
            nbf: 100,
            jti: "j".into(),
            kube: KubeClaims {
                namespace: "default".into(),
                serviceaccount: Ref {
                    name: "web".into(),
                    uid: "u1".into(),
                },
                pod: None,
            },
        }
    }

    #[test]
    fn tokens_verify_only_with_their_key_audience_and_lifetime() {
        let k = TokenKeys::ephemeral();
        let t = k.issue(&claims(1000));
        assert_eq!(
            k.verify(&t, ISSUER, 500).unwrap().kube.serviceaccount.uid,
            "u1"
        );
        assert!(k.verify(&t, ISSUER, 1000).is_none(), "expired");
        assert!(k.verify(&t, "other", 500).is_none(), "wrong audience");
        assert!(
            TokenKeys::ephemeral().verify(&t, ISSUER, 500).is_none(),
            "other key"
        );
        let mut tampered = t.clone();
        tampered.insert(t.find('.').unwrap() + 3, 'x');
        assert!(k.verify(&tampered, ISSUER, 500).is_none());
        let persisted = TokenKeys::generate_pkcs8();
        let a = TokenKeys::from_pkcs8(&persisted).unwrap();
        let b = TokenKeys::from_pkcs8(&persisted).unwrap();
        assert!(b.verify(&a.issue(&claims(1000)), ISSUER, 500).is_some());
    }
}
