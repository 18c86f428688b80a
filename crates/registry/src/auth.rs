//! Access control: who is calling (Basic credentials, a registry-issued bearer token, or a
//! bearer token the embedding program understands) and what they may do per repository.
//!
//! The registry knows nothing about where identities come from: it asks an
//! [`Authenticator`]. `berth registry serve` uses [`crate::HtpasswdAuthenticator`]; inside
//! `berth server` the binary implements the trait with cluster credentials.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::token::TokenIssuer;

/// A set of repository actions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);
    pub const PULL: Actions = Actions(1);
    pub const PUSH: Actions = Actions(2);
    pub const DELETE: Actions = Actions(4);
    pub const ALL: Actions = Actions(7);

    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    pub fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses `pull,push,delete` (`*` means all); unknown words are ignored.
    pub fn parse(s: &str) -> Actions {
        s.split(',').fold(Actions::NONE, |a, w| {
            a.union(match w.trim() {
                "pull" => Actions::PULL,
                "push" => Actions::PUSH,
                "delete" => Actions::DELETE,
                "*" => Actions::ALL,
                _ => Actions::NONE,
            })
        })
    }

    /// The action names, in the order clients expect (`pull,push`).
    pub fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.contains(Actions::PULL) {
            v.push("pull");
        }
        if self.contains(Actions::PUSH) {
            v.push("push");
        }
        if self.contains(Actions::DELETE) {
            v.push("delete");
        }
        v
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub groups: Vec<String>,
}

impl Identity {
    pub fn new(name: impl Into<String>) -> Identity {
        Identity {
            name: name.into(),
            groups: Vec::new(),
        }
    }
}

/// Verifies credentials and decides what an identity may do.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Checks a user name and password (HTTP Basic, or the token endpoint's Basic).
    async fn basic(&self, username: &str, password: &str) -> Result<Option<Identity>>;
    /// Checks a bearer token that the registry did not issue itself (for example a cluster
    /// service-account token). The default knows none.
    async fn bearer(&self, _token: &str) -> Result<Option<Identity>> {
        Ok(None)
    }
    /// What `who` may do in `repository`.
    fn permitted(&self, who: &Identity, repository: &str) -> Actions;
    /// Whether `who` may list the catalog.
    fn may_list_catalog(&self, who: &Identity) -> bool {
        let _ = who;
        true
    }
}

/// How the registry challenges clients.
#[derive(Clone, Debug)]
pub enum AuthMode {
    /// Everyone may do everything.
    None,
    /// HTTP Basic on every request.
    Basic { realm: String },
    /// Docker/OCI token auth: clients fetch a bearer token from `realm` (default: this
    /// registry's own `/token` endpoint).
    Token {
        realm: Option<String>,
        service: String,
    },
}

/// Access-control settings of a registry.
#[derive(Clone)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// Anonymous callers may pull every repository.
    pub anonymous_pull: bool,
    pub authenticator: Option<Arc<dyn Authenticator>>,
}

impl AuthConfig {
    pub fn disabled() -> AuthConfig {
        AuthConfig {
            mode: AuthMode::None,
            anonymous_pull: true,
            authenticator: None,
        }
    }
}

/// What a request was found to be allowed to do.
pub(crate) enum Grant {
    /// Auth is off.
    All,
    /// An identity authenticated by credentials checked against the authenticator.
    Identity(Identity),
    /// A registry-issued token with its access list.
    Token(crate::token::Claims),
    /// No credentials.
    Anonymous,
}

pub(crate) struct AuthState {
    pub config: AuthConfig,
    pub issuer: TokenIssuer,
}

impl AuthState {
    /// What `grant` allows in `repository`.
    pub(crate) fn allowed(&self, grant: &Grant, repository: &str) -> Actions {
        let anon = if self.config.anonymous_pull {
            Actions::PULL
        } else {
            Actions::NONE
        };
        match grant {
            Grant::All => Actions::ALL,
            Grant::Anonymous => anon,
            Grant::Identity(id) => match &self.config.authenticator {
                Some(a) => a.permitted(id, repository).union(anon),
                None => anon,
            },
            Grant::Token(c) => c.actions_for(repository).union(anon),
        }
    }

    /// Whether the catalog shows `repository` to `grant`: what its identity may pull (for a
    /// token, the permissions of the token's subject, not only the scopes it carries).
    pub(crate) fn catalog_shows(&self, grant: &Grant, repository: &str) -> bool {
        match grant {
            Grant::Token(c) if !c.sub.is_empty() => self
                .allowed(&Grant::Identity(Identity::new(c.sub.clone())), repository)
                .contains(Actions::PULL),
            Grant::Token(_) => self.config.anonymous_pull,
            other => self.allowed(other, repository).contains(Actions::PULL),
        }
    }

    pub(crate) fn may_list_catalog(&self, grant: &Grant) -> bool {
        match grant {
            Grant::All => true,
            Grant::Anonymous => false,
            Grant::Identity(id) => self
                .config
                .authenticator
                .as_ref()
                .is_some_and(|a| a.may_list_catalog(id)),
            Grant::Token(c) => c.catalog(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_and_print() {
        let a = Actions::parse("push,pull");
        assert!(
            a.contains(Actions::PULL) && a.contains(Actions::PUSH) && !a.contains(Actions::DELETE)
        );
        assert_eq!(a.names(), ["pull", "push"]);
        assert_eq!(Actions::parse("*"), Actions::ALL);
        assert!(Actions::parse("bogus").is_empty());
    }
}
