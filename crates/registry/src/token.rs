//! Registry bearer tokens: JWTs (HS256 with a per-process random key, or a configured one)
//! carrying the Docker token spec's `access` claim. Issued by the registry's own token
//! endpoint, checked on every request in token mode.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::auth::Actions;

/// How long an issued token is valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// One entry of the `access` claim.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// The claims of a registry token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<AccessEntry>,
}

impl Claims {
    pub(crate) fn actions_for(&self, repository: &str) -> Actions {
        self.access
            .iter()
            .filter(|a| a.kind == "repository" && a.name == repository)
            .fold(Actions::NONE, |acc, a| {
                acc.union(Actions::parse(&a.actions.join(",")))
            })
    }

    pub(crate) fn catalog(&self) -> bool {
        self.access
            .iter()
            .any(|a| a.kind == "registry" && a.name == "catalog")
    }
}

/// Signs and verifies tokens.
pub struct TokenIssuer {
    key: hmac::Key,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenIssuer {
    /// A fresh random key: tokens do not survive a restart (clients fetch new ones on 401).
    pub fn random() -> TokenIssuer {
        let mut k = [0u8; 32];
        SystemRandom::new()
            .fill(&mut k)
            .expect("system random generator");
        TokenIssuer::with_key(&k)
    }

    pub fn with_key(key: &[u8]) -> TokenIssuer {
        TokenIssuer {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// Issues a token for `subject` with `access` valid for `service`.
    pub fn issue(&self, subject: &str, service: &str, access: Vec<AccessEntry>) -> (String, u64) {
        let t = now();
        let claims = Claims {
            iss: "berth".into(),
            sub: subject.into(),
            aud: service.into(),
            exp: t + TOKEN_LIFETIME.as_secs(),
            nbf: t.saturating_sub(5),
            iat: t,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let signing_input = format!("{header}.{body}");
        let sig = hmac::sign(&self.key, signing_input.as_bytes());
        (
            format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())),
            t,
        )
    }

    /// The claims of a valid, unexpired token for `service`; `None` for anything else.
    pub fn verify(&self, token: &str, service: &str) -> Option<Claims> {
        let (signing_input, sig) = token.rsplit_once('.')?;
        let (header, body) = signing_input.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        hmac::verify(&self.key, signing_input.as_bytes(), &sig).ok()?;
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg")?.as_str()? != "HS256" {
            return None;
        }
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let t = now();
        (claims.aud == service && claims.exp > t && claims.nbf <= t).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_and_verify() {
        let i = TokenIssuer::random();
        let access = vec![AccessEntry {
            kind: "repository".into(),
            name: "foo".into(),
            actions: vec!["pull".into()],
        }];
        let (tok, _) = i.issue("alice", "svc", access);
        let c = i.verify(&tok, "svc").unwrap();
        assert_eq!(c.actions_for("foo"), Actions::PULL);
        assert!(c.actions_for("bar").is_empty());
        assert!(i.verify(&tok, "other").is_none(), "wrong audience");
        assert!(
            TokenIssuer::random().verify(&tok, "svc").is_none(),
            "wrong key"
        );
        let mut t2 = tok.clone();
        t2.insert(tok.len() / 2, 'x');
        assert!(i.verify(&t2, "svc").is_none(), "tampered");
        assert!(i.verify("garbage", "svc").is_none());
    }
}
